package memstore

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/ferry-iot/ferry/internal/store"
)

// Registry is an in-memory store.RegistryStore, for tests and for nodes that
// run without a data directory. Its zero value is not usable; call
// NewRegistry.
//
// One read-write transaction runs at a time and excludes readers; a
// registry is written rarely (by operators) and read on every device login,
// so a sync.RWMutex is all the concurrency control it needs.
type Registry struct {
	mu   sync.RWMutex
	data map[string][]byte
	keys []string // sorted keys of data, for Scan
}

var _ store.RegistryStore = (*Registry)(nil)

// NewRegistry returns an empty in-memory registry store.
func NewRegistry() *Registry {
	return &Registry{data: make(map[string][]byte)}
}

// ViewRegistry implements store.RegistryStore.
func (r *Registry) ViewRegistry(ctx context.Context, fn func(store.RegistryReader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return fn(&registryTx{r: r})
}

// UpdateRegistry implements store.RegistryStore. Writes go straight to the
// map and are recorded in an undo log, replayed backwards when fn fails.
func (r *Registry) UpdateRegistry(ctx context.Context, fn func(store.RegistryTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	tx := &registryTx{r: r, writable: true}
	err := fn(tx)
	tx.done = true
	if err != nil {
		for i := len(tx.undo) - 1; i >= 0; i-- {
			u := tx.undo[i]
			if u.existed {
				r.set(u.key, u.value)
			} else {
				r.del(u.key)
			}
		}
	}
	return err
}

type undoEntry struct {
	key     string
	value   []byte
	existed bool
}

type registryTx struct {
	r        *Registry
	writable bool
	done     bool
	undo     []undoEntry
}

func (tx *registryTx) Get(key string) ([]byte, bool, error) {
	v, ok := tx.r.data[key]
	return v, ok, nil
}

func (tx *registryTx) Scan(prefix, start string, fn func(string, []byte) bool) error {
	from := max(prefix, start)
	i, _ := slices.BinarySearch(tx.r.keys, from)
	// Copy the matching keys first: fn may write (inside UpdateRegistry), and
	// that would shift tx.r.keys under the loop.
	var keys []string
	for ; i < len(tx.r.keys) && strings.HasPrefix(tx.r.keys[i], prefix); i++ {
		keys = append(keys, tx.r.keys[i])
	}
	for _, k := range keys {
		v, ok := tx.r.data[k]
		if !ok {
			continue
		}
		if !fn(k, v) {
			break
		}
	}
	return nil
}

func (tx *registryTx) Put(key string, value []byte) error {
	if !tx.writable || tx.done {
		panic("memstore: Put outside a read-write transaction")
	}
	old, existed := tx.r.data[key]
	tx.undo = append(tx.undo, undoEntry{key: key, value: old, existed: existed})
	tx.r.set(key, slices.Clone(value))
	return nil
}

func (tx *registryTx) Delete(key string) error {
	if !tx.writable || tx.done {
		panic("memstore: Delete outside a read-write transaction")
	}
	old, existed := tx.r.data[key]
	if !existed {
		return nil
	}
	tx.undo = append(tx.undo, undoEntry{key: key, value: old, existed: true})
	tx.r.del(key)
	return nil
}

func (r *Registry) set(key string, value []byte) {
	if _, ok := r.data[key]; !ok {
		i, _ := slices.BinarySearch(r.keys, key)
		r.keys = slices.Insert(r.keys, i, key)
	}
	r.data[key] = value
}

func (r *Registry) del(key string) {
	if _, ok := r.data[key]; !ok {
		return
	}
	delete(r.data, key)
	if i, found := slices.BinarySearch(r.keys, key); found {
		r.keys = slices.Delete(r.keys, i, i+1)
	}
}
