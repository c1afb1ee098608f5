// Package pebblestore is the embedded default backend of Ferry's storage
// contracts: store.Store (broker state) and, in registry.go, the registry's
// store.RegistryStore, in one Pebble database under the node's data
// directory.
//
// # Basics
//
// [Open] a directory, use the [Store], [Store.Close] it. Every write is one
// Pebble batch, committed by a single committer goroutine that merges the
// batches of concurrent writers and commits them together (group commit,
// commit.go). [Options.Durability] says when a write is durable:
// [DurabilitySync] (default) fsyncs before the call returns, one fsync
// shared by every write of the group; [DurabilityBatch] fsyncs at most every
// [Options.SyncInterval]; [DurabilityNone] never.
//
// # Key layout
//
// The first byte of a key is its record kind. Tenants and client ids are
// written with a uvarint length prefix (lp below), so no tenant's or
// session's key range contains another's: tenant "a" with client "bc" and
// tenant "ab" with client "c" have different keys, and the range of client
// "c" does not contain client "c1".
//
//	0x00 "format"                          layout version (uvarint, 1)
//	's' lp(tenant) lp(client)              session record
//	'u' lp(tenant) lp(client) filter       subscription (filter raw, last)
//	'o' lp(tenant) lp(client) pid(2, BE)   outbound QoS 1/2 record
//	'i' lp(tenant) lp(client) pid(2, BE)   inbound QoS 2 id awaiting PUBREL (empty value)
//	'q' lp(tenant) lp(client) seq(8, BE)   offline queue entry (a store.Message)
//	'w' lp(tenant) lp(client)              will
//	'r' lp(tenant) topic                   retained message (topic raw, last)
//	'R' key                                registry (registry.go owns what follows)
//
// Big-endian packet ids and sequence numbers make key order numeric order.
// Values are the store.Message binary form, or the small versioned records
// of records.go. DeleteSession deletes the session's range of every kind
// ('s' through 'w') in one batch.
//
// # Caveats
//
// Queue sequence numbers and outbound insertion order are kept in memory
// per session, loaded from disk the first time a session is used after
// Open (a scan of its queue and of its outbound records), and kept until
// the session is deleted: a small entry per session used since Open; see
// queue.go.
//
// A failed commit is returned to every writer of its group. Pebble treats
// a failed WAL write or sync as fatal, so in practice the process stops.
//
// Expired retained messages stay on disk until the caller clears them.
package pebblestore
