package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferry-iot/ferry/internal/store"
)

// Store is the Pebble backend of store.Store, safe for concurrent use. Open
// one per data directory; Pebble locks the directory against a second
// process.
type Store struct {
	db   *pebble.DB
	opts Options
	c    *committer

	// closeMu orders Close after every call in progress: calls hold it for
	// reading while they use db or send to c.reqs; Close takes it for
	// writing, so it never closes c.reqs under a sender nor the database
	// under a reader.
	closeMu sync.RWMutex
	closed  bool

	// seqs holds the numbering state of sessions' queues and outbound
	// records (queue.go).
	seqMu sync.Mutex
	seqs  map[seqsKey]*sessionSeqs
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store in directory dir. opts may be
// nil for the defaults. Close the store to release the directory.
func Open(dir string, opts *Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	cache := pebble.NewCache(o.CacheSize)
	defer cache.Unref() // the DB holds its own reference
	db, err := pebble.Open(dir, &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Cache:              cache,
		Logger:             pebbleLogger{o.Logger},
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	if err := checkFormat(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	s := &Store{
		db:   db,
		opts: o,
		c:    newCommitter(db, o.Durability, o.SyncInterval),
		seqs: make(map[seqsKey]*sessionSeqs),
	}
	go s.c.run()
	return s, nil
}

// checkFormat writes the layout version into a new directory and refuses a
// directory written with another layout.
func checkFormat(db *pebble.DB) error {
	v, closer, err := db.Get(formatKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return db.Set(formatKey, binary.AppendUvarint(nil, formatVersion), pebble.Sync)
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	if got, n := binary.Uvarint(v); n <= 0 || got != formatVersion {
		return fmt.Errorf("%w: data directory format %x, this build reads %d", store.ErrCorrupt, v, formatVersion)
	}
	return nil
}

// Close waits for the calls in progress, commits every queued write (with a
// final fsync in batch mode), stops the committer and closes the database.
// Calls after Close return store.ErrClosed.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.c.reqs)
	s.closeMu.Unlock()
	<-s.c.exit
	return s.db.Close()
}

// Durability returns the store's durability mode.
func (s *Store) Durability() Durability { return s.opts.Durability }

// submit hands b to the committer and returns the request to wait on. The
// order of submits is the order of commits.
func (s *Store) submit(b *pebble.Batch) (*commitReq, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	r := reqPool.Get().(*commitReq)
	r.b = b
	s.c.reqs <- r
	return r, nil
}

// wait returns the commit result of r and releases r and its batch.
func (r *commitReq) wait() error {
	err := <-r.done
	_ = r.b.Close()
	r.b = nil
	reqPool.Put(r)
	return err
}

// write commits b and waits for it (with its durability). It takes
// ownership of b.
func (s *Store) write(b *pebble.Batch) error {
	r, err := s.submit(b)
	if err != nil {
		_ = b.Close()
		return err
	}
	if err := r.wait(); err != nil {
		return fmt.Errorf("pebblestore: commit: %w", err)
	}
	return nil
}

// read runs fn with the database, or returns ErrClosed.
func (s *Store) read(fn func(db *pebble.DB) error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return fn(s.db)
}

// get returns a copy of the value of key, or store.ErrNotFound.
func (s *Store) get(key []byte) ([]byte, error) {
	var v []byte
	err := s.read(func(db *pebble.DB) error {
		val, closer, err := db.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		v = append([]byte(nil), val...)
		return closer.Close()
	})
	return v, err
}

// scanChunk is how many entries scan copies out per pass.
const scanChunk = 256

// scan calls fn for every key in [lower, upper) in order, with copies of
// the key and value. It reads in chunks and calls fn between them without
// holding closeMu, so fn may call the store (even Close); a scan therefore
// sees a consistent state within a chunk but not across chunks.
func (s *Store) scan(ctx context.Context, lower, upper []byte, fn func(k, v []byte) error) error {
	type kv struct{ k, v []byte }
	chunk := make([]kv, 0, scanChunk)
	from := lower
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk = chunk[:0]
		err := s.read(func(db *pebble.DB) error {
			it, err := db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: upper})
			if err != nil {
				return err
			}
			for ok := it.First(); ok && len(chunk) < scanChunk; ok = it.Next() {
				v, err := it.ValueAndErr()
				if err != nil {
					_ = it.Close()
					return err
				}
				chunk = append(chunk, kv{append([]byte(nil), it.Key()...), append([]byte(nil), v...)})
			}
			return it.Close()
		})
		if err != nil {
			return err
		}
		for _, e := range chunk {
			if err := fn(e.k, e.v); err != nil {
				return err
			}
		}
		if len(chunk) < scanChunk {
			return nil
		}
		// Resume just after the last key seen.
		from = append(chunk[len(chunk)-1].k, 0)
	}
}

// PutSession implements store.SessionStore.
func (s *Store) PutSession(ctx context.Context, tenant string, rec store.Session) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := rec.Check(); err != nil {
		return err
	}
	b := s.db.NewBatch()
	_ = b.Set(sessionPrefix(kindSession, tenant, rec.ClientID, 0), encodeSession(&rec), nil)
	return s.write(b)
}

// GetSession implements store.SessionStore.
func (s *Store) GetSession(ctx context.Context, tenant, clientID string) (store.Session, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return store.Session{}, err
	}
	v, err := s.get(sessionPrefix(kindSession, tenant, clientID, 0))
	if err != nil {
		return store.Session{}, fmt.Errorf("session %q: %w", clientID, err)
	}
	return decodeSession(clientID, v)
}

// DeleteSession implements store.SessionStore: one batch of range
// deletions, one per kind of session record.
func (s *Store) DeleteSession(ctx context.Context, tenant, clientID string) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	b := s.db.NewBatch()
	for _, kind := range sessionKinds {
		p := sessionPrefix(kind, tenant, clientID, 0)
		if kind == kindSession || kind == kindWill {
			_ = b.Delete(p, nil)
			continue
		}
		// Keys of this kind extend p: a longer client id or another tenant
		// has a different length prefix, so it never falls in the range.
		_ = b.DeleteRange(p, store.PrefixEnd(p), nil)
	}
	return s.resetSeqs(tenant, clientID, b)
}

// Sessions implements store.SessionStore.
func (s *Store) Sessions(ctx context.Context, fn func(tenant string, rec store.Session) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	lower := []byte{kindSession}
	return s.scan(ctx, lower, store.PrefixEnd(lower), func(k, v []byte) error {
		tenant, clientID, rest, ok := parseSessionKey(k)
		if !ok || len(rest) != 0 {
			return fmt.Errorf("%w: session key %x", store.ErrCorrupt, k)
		}
		rec, err := decodeSession(clientID, v)
		if err != nil {
			return err
		}
		return fn(tenant, rec)
	})
}
