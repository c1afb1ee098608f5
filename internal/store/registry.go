package store

import "context"

// RegistryStore is the storage contract of the device registry
// (internal/registry): an ordered map from string keys to opaque values with
// serializable transactions.
//
// The contract is deliberately a key-value one. The registry keeps its
// records, secondary indexes (credentials by type and auth-id, trusted CAs by
// subject DN) and counters under its own key layout, so every invariant (the
// unique (type, auth-id) per tenant, resource versions, cascading deletes) is
// written once, in the registry, and a backend only has to provide atomic,
// isolated transactions. Method names carry the Registry prefix so that one
// backend type can implement this contract next to the others.
//
// Implementations must be safe for concurrent use.
type RegistryStore interface {
	// ViewRegistry runs fn with a read-only, consistent snapshot of the
	// registry keys. It returns fn's error, or the store's own.
	ViewRegistry(ctx context.Context, fn func(tx RegistryReader) error) error

	// UpdateRegistry runs fn in a read-write transaction. Transactions are
	// serializable: fn sees its own writes and no concurrent ones. The writes
	// are committed atomically (and durably, for persistent backends) when fn
	// returns nil, and discarded when it returns an error, which
	// UpdateRegistry then returns unchanged. A backend may run fn more than
	// once (PostgreSQL retries a transaction that lost a serialization
	// conflict), so fn must not change anything outside the transaction,
	// its own inputs included.
	UpdateRegistry(ctx context.Context, fn func(tx RegistryTx) error) error
}

// RegistryReader reads registry keys inside a transaction. Neither it nor
// the value slices it hands out may be used after the transaction ends.
type RegistryReader interface {
	// Get returns the value stored under key; ok is false when there is none.
	// The returned slice must not be modified.
	Get(key string) (value []byte, ok bool, err error)

	// Scan calls fn for every key that starts with prefix and is greater than
	// or equal to start (start "" means from the first key of the prefix), in
	// ascending byte order, until fn returns false. The value slice is only
	// valid during the call.
	Scan(prefix, start string, fn func(key string, value []byte) bool) error
}

// RegistryTx reads and writes registry keys inside an UpdateRegistry
// transaction.
type RegistryTx interface {
	RegistryReader

	// Put stores value under key, replacing any previous value. The store
	// keeps its own copy of value.
	Put(key string, value []byte) error

	// Delete removes key; deleting a missing key is not an error.
	Delete(key string) error
}

// PrefixEnd returns the smallest key greater than every key that starts
// with prefix, or nil when there is none (prefix is empty or all 0xff): the
// exclusive upper bound of a prefix scan, for backends that scan key ranges.
func PrefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
