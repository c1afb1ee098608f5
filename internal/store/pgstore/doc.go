// Package pgstore is the PostgreSQL backend of the device registry's
// storage contract, store.RegistryStore, for Ferry's scale-out mode: several
// Ferry nodes share one registry, so the registry cannot live in a node's
// embedded Pebble database.
//
// # Basics
//
// [Open] a DSN (pgx's URL or keyword/value form, for example
// "postgres://ferry@db:5432/ferry?sslmode=verify-full"), use the [Store],
// [Store.Close] it. Open creates the table if it is missing, so the first
// node to start sets up an empty database; nodes starting together take a
// transaction-scoped advisory lock around the CREATE TABLE, which is not
// race-free on its own in PostgreSQL. The table lives in the first schema
// of the connection's search_path, which a DSN can set
// ("...?search_path=ferry"), for example to keep two deployments apart in
// one database. The pgxpool parameter pool_max_conns bounds the
// connections a Store opens (default: the larger of 4 and the number of
// CPUs).
//
// # Table
//
//	CREATE TABLE ferry_registry (key BYTEA PRIMARY KEY, value BYTEA NOT NULL)
//
// Keys are BYTEA, not TEXT COLLATE "C". The registry's keys are arbitrary
// byte strings: the trusted-CA index key is "ca/<subject-dn>\x00<tenant>",
// and an auth-id, which ends the credential index keys, may hold anything.
// TEXT cannot store a NUL byte at all, and in a UTF8 database it rejects
// invalid UTF-8, so some keys would be unstorable. BYTEA stores any bytes,
// and PostgreSQL compares BYTEA values as memcmp followed by length, which
// is exactly Go's string order, the ascending byte order the contract asks
// of Scan; no collation is involved. A prefix scan is the key range
// [prefix, successor(prefix)), an index range scan of the primary key, which
// needs no escaping, unlike LIKE 'prefix%' with '%' and '_' in keys.
//
// # Transactions
//
// [Store.ViewRegistry] runs in a read-only REPEATABLE READ transaction,
// PostgreSQL's snapshot isolation: every read sees the database as of the
// first one, and such a transaction never fails with a serialization
// error. [Store.UpdateRegistry] runs in a SERIALIZABLE transaction, the
// isolation the contract promises; PostgreSQL provides it optimistically, by
// aborting one of two transactions whose outcome no serial order explains
// (SQLSTATE 40001), and deadlocks abort one party too (40P01). On either,
// UpdateRegistry rolls back and runs fn again, in a new transaction, with a
// growing, jittered backoff, 20 runs at most. A statement that fails that way
// marks the transaction for retry whatever fn then returns, so a fn that
// wraps or replaces the store's errors is retried all the same. The
// consequence for callers: fn may run more than once, so it must not leave
// effects outside the transaction that a second run would compound, such as
// appending to a slice declared outside it or mutating its inputs in place.
//
// Scan reads in pages of a bounded number of rows, each page a keyset query
// continuing after the last key seen: fn may read and write through the
// same transaction during the scan (the registry's cascading deletes do),
// which an open result set would not allow on the connection, and a large
// scan never holds more than one page in memory.
package pgstore
