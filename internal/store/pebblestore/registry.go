package pebblestore

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferry-iot/ferry/internal/store"
)

// kindRegistry prefixes the device registry's keys (store.RegistryStore):
// kindRegistry | registry key. The registry owns the layout after the
// prefix (internal/registry, registry.go).
const kindRegistry = 'R'

// registryWriteMu serialises registry read-write transactions. Pebble has
// no serializable transactions; a transaction here is an indexed batch
// (reads see its own writes) built while no other registry transaction
// runs, and committed before the next one starts. The mutex is global
// rather than per Store because registry writes are rare operator actions
// and a process opens one store; tests with several stores merely take
// turns.
var registryWriteMu sync.Mutex

var _ store.RegistryStore = (*Store)(nil)

func registryKey(k string) []byte {
	b := make([]byte, 0, 1+len(k))
	return append(append(b, kindRegistry), k...)
}

// ViewRegistry implements store.RegistryStore on a Pebble snapshot.
func (s *Store) ViewRegistry(ctx context.Context, fn func(store.RegistryReader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.read(func(db *pebble.DB) error {
		snap := db.NewSnapshot()
		defer snap.Close()
		return fn(&registryTx{r: snap})
	})
}

// UpdateRegistry implements store.RegistryStore with an indexed batch,
// committed through the store's committer with its durability mode.
func (s *Store) UpdateRegistry(ctx context.Context, fn func(store.RegistryTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	registryWriteMu.Lock()
	defer registryWriteMu.Unlock()
	var b *pebble.Batch
	err := s.read(func(db *pebble.DB) error {
		b = db.NewIndexedBatch()
		tx := &registryTx{r: b, b: b}
		err := fn(tx)
		tx.done = true
		return err
	})
	if err != nil {
		if b != nil {
			_ = b.Close()
		}
		return err
	}
	if b.Empty() {
		return b.Close()
	}
	// Outside s.read: write takes closeMu itself, and a second read lock
	// could deadlock behind a waiting Close.
	return s.write(b)
}

type registryTx struct {
	r    registryReadSource
	b    *pebble.Batch // nil in ViewRegistry
	done bool
}

// registryReadSource is what *pebble.Snapshot and an indexed
// *pebble.Batch have in common.
type registryReadSource interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

func (tx *registryTx) Get(key string) ([]byte, bool, error) {
	v, c, err := tx.r.Get(registryKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	return out, true, c.Close()
}

// registryScanChunk is how many entries Scan copies out of an iterator
// before calling fn; fn may write to the batch, which an open iterator
// must not see half-way.
const registryScanChunk = 256

func (tx *registryTx) Scan(prefix, start string, fn func(string, []byte) bool) error {
	lower := registryKey(max(prefix, start))
	upper := store.PrefixEnd(registryKey(prefix))
	type kv struct {
		k string
		v []byte
	}
	chunk := make([]kv, 0, registryScanChunk)
	for {
		chunk = chunk[:0]
		it, err := tx.r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return err
		}
		for ok := it.First(); ok && len(chunk) < registryScanChunk; ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				_ = it.Close()
				return err
			}
			chunk = append(chunk, kv{string(it.Key()[1:]), append([]byte(nil), v...)})
		}
		if err := it.Close(); err != nil {
			return err
		}
		for _, e := range chunk {
			if !strings.HasPrefix(e.k, prefix) {
				return nil
			}
			if !fn(e.k, e.v) {
				return nil
			}
		}
		if len(chunk) < registryScanChunk {
			return nil
		}
		// Continue after the last key: the smallest key greater than it.
		lower = append(registryKey(chunk[len(chunk)-1].k), 0)
	}
}

func (tx *registryTx) Put(key string, value []byte) error {
	if tx.b == nil || tx.done {
		panic("pebblestore: registry Put outside a read-write transaction")
	}
	return tx.b.Set(registryKey(key), value, nil)
}

func (tx *registryTx) Delete(key string) error {
	if tx.b == nil || tx.done {
		panic("pebblestore: registry Delete outside a read-write transaction")
	}
	return tx.b.Delete(registryKey(key), nil)
}
