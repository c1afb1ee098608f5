package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-iot/ferry/internal/store"
)

// scanPage is how many rows Scan reads per query: enough that typical
// registry scans (a tenant's devices, one CA's tenants) take one round
// trip, few enough that a page of credential sets stays small in memory.
const scanPage = 256

var errTxDone = errors.New("pgstore: registry transaction used after it ended")

// registryTx is the store.RegistryTx handed to ViewRegistry's and
// UpdateRegistry's fn. Like a pgx.Tx it is used by one goroutine.
type registryTx struct {
	ctx   context.Context
	tx    pgx.Tx
	write bool
	done  bool
	// channel is the Store's notification channel (notify.go).
	channel string
	// conflict is the first serialization failure or deadlock a statement
	// met: PostgreSQL has aborted the transaction, so it is retried
	// whatever fn returns.
	conflict error
}

// fail records a conflict and adds context to err. Once the transaction's
// context has ended, statements fail in ways that do not all say so (pgx
// closes the connection of a canceled query: the next statement meets a
// closed connection), so the error then also wraps ctx.Err().
func (t *registryTx) fail(op string, err error) error {
	if t.conflict == nil && isConflict(err) {
		t.conflict = err
	}
	if cerr := t.ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("pgstore: %s: %w (%w)", op, err, cerr)
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}

// Get implements store.RegistryReader. The returned slice is the caller's.
func (t *registryTx) Get(key string) ([]byte, bool, error) {
	if t.done {
		return nil, false, errTxDone
	}
	var v []byte
	// pgx scans BYTEA into a new slice, not into its read buffer.
	err := t.tx.QueryRow(t.ctx, sqlGet, keyBytes(key)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, t.fail("get", err)
	}
	return v, true, nil
}

// Scan implements store.RegistryReader, one page of rows per query (see
// the package documentation).
func (t *registryTx) Scan(prefix, start string, fn func(key string, value []byte) bool) error {
	if t.done {
		return errTxDone
	}
	// The keys starting with prefix are exactly [prefix, prefixEnd); from
	// a start within or after the prefix, [start, prefixEnd).
	lower := keyBytes(max(prefix, start))
	upper := store.PrefixEnd([]byte(prefix))
	type kv struct {
		k string
		v []byte
	}
	page := make([]kv, 0, scanPage)
	for {
		var rows pgx.Rows
		var err error
		if upper == nil {
			rows, err = t.tx.Query(t.ctx, sqlScanFrom, lower, scanPage)
		} else {
			rows, err = t.tx.Query(t.ctx, sqlScanRange, lower, upper, scanPage)
		}
		if err != nil {
			return t.fail("scan", err)
		}
		page = page[:0]
		for rows.Next() {
			var k, v []byte
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return t.fail("scan", err)
			}
			page = append(page, kv{string(k), v})
		}
		// The rows are closed before fn runs: fn may use the
		// transaction, and the connection runs one query at a time.
		if err := rows.Err(); err != nil {
			return t.fail("scan", err)
		}
		for _, e := range page {
			if !fn(e.k, e.v) {
				return nil
			}
		}
		if len(page) < scanPage {
			return nil
		}
		// Continue after the last key: the smallest key greater than it.
		lower = append([]byte(page[len(page)-1].k), 0)
	}
}

// Put implements store.RegistryTx. pgx has encoded value into the query
// by the time Put returns, so the caller may reuse it.
func (t *registryTx) Put(key string, value []byte) error {
	if !t.write {
		panic("pgstore: registry Put outside a read-write transaction")
	}
	if t.done {
		return errTxDone
	}
	if value == nil {
		value = []byte{} // pgx sends a nil slice as NULL
	}
	if _, err := t.tx.Exec(t.ctx, sqlPut, keyBytes(key), value); err != nil {
		return t.fail("put", err)
	}
	return nil
}

// Delete implements store.RegistryTx.
func (t *registryTx) Delete(key string) error {
	if !t.write {
		panic("pgstore: registry Delete outside a read-write transaction")
	}
	if t.done {
		return errTxDone
	}
	if _, err := t.tx.Exec(t.ctx, sqlDelete, keyBytes(key)); err != nil {
		return t.fail("delete", err)
	}
	return nil
}

// keyBytes converts a key for a BYTEA parameter. The slice is never nil,
// even for "": pgx sends a nil slice as NULL, and key >= NULL matches no
// row.
func keyBytes(k string) []byte {
	return append(make([]byte, 0, len(k)), k...)
}
