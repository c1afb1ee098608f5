package pebblestore

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferry-iot/ferry/internal/store"
)

// Numbering of queues and outbound records.
//
// A queue entry's key ends with its sequence number, and an outbound
// record's value starts with its insertion number (order). Both numbers are
// per session, and handing out the next one would take a read of the
// database per write; instead sessionSeqs keeps them in memory, loaded from
// the database the first time a session is touched after Open.
//
// A session's numbers are handed out and its batch submitted under its
// sessionSeqs lock, and the committer commits in submission order, so the
// numbers commit in ascending order. Appends take the next number and trims
// remove a prefix, so a queue's entries are always the contiguous range
// qFirst..qNext-1, on disk too: a crash keeps a prefix of the commits, and
// every prefix of such a history is contiguous. TrimQueue therefore knows
// the keys it deletes without reading them, and the sizes of the entries
// are kept in memory (qSizes) for QueueInfo.Bytes.
//
// DeleteSession holds the session's lock until its deletion has committed,
// then retires the sessionSeqs (removed); a later call loads fresh state
// from the database, where the deletion is visible.

// pointDeleteMax is the most entries TrimQueue deletes one by one; more go
// in one range deletion.
const pointDeleteMax = 64

// sessionSeqs is the numbering state of one session. Fields are guarded by
// mu.
type sessionSeqs struct {
	mu      sync.Mutex
	removed bool // retired from Store.seqs; lock another one

	queueLoaded bool
	qFirst      uint64  // seq of the oldest entry; == qNext when empty
	qNext       uint64  // seq of the next append
	qSizes      []int32 // encoded size of each entry, oldest first
	qBytes      int64   // sum of qSizes

	outLoaded bool
	oNext     uint64 // order of the next new outbound record
}

// seqsKey identifies a session in Store.seqs.
type seqsKey struct{ tenant, clientID string }

// lockSeqs returns the locked numbering state of a session.
func (s *Store) lockSeqs(tenant, clientID string) *sessionSeqs {
	k := seqsKey{tenant, clientID}
	for {
		s.seqMu.Lock()
		st := s.seqs[k]
		if st == nil {
			st = &sessionSeqs{}
			s.seqs[k] = st
		}
		s.seqMu.Unlock()
		st.mu.Lock()
		if !st.removed {
			return st
		}
		st.mu.Unlock()
	}
}

// resetSeqs commits b, the deletion of a session, and retires the session's
// numbering state once the deletion is visible.
func (s *Store) resetSeqs(tenant, clientID string, b *pebble.Batch) error {
	st := s.lockSeqs(tenant, clientID)
	defer st.mu.Unlock()
	if err := s.write(b); err != nil {
		// Nothing is known about the database any more: reload next time.
		st.queueLoaded, st.outLoaded = false, false
		return err
	}
	st.removed = true
	s.seqMu.Lock()
	delete(s.seqs, seqsKey{tenant, clientID})
	s.seqMu.Unlock()
	return nil
}

// loadQueue reads the state of a session's queue, once. st.mu is held.
func (s *Store) loadQueue(st *sessionSeqs, tenant, clientID string) error {
	if st.queueLoaded {
		return nil
	}
	lower := queueKey(tenant, clientID, 0)
	upper := store.PrefixEnd(sessionPrefix(kindQueue, tenant, clientID, 0))
	st.qFirst, st.qNext, st.qSizes, st.qBytes = 1, 1, nil, 0
	first := true
	err := s.scan(context.Background(), lower, upper, func(k, v []byte) error {
		seq := binary.BigEndian.Uint64(k[len(k)-8:])
		if first {
			st.qFirst, st.qNext, first = seq, seq, false
		}
		if seq != st.qNext {
			return fmt.Errorf("%w: queue of %q has entry %d after %d", store.ErrCorrupt, clientID, seq, st.qNext-1)
		}
		st.qNext = seq + 1
		st.qSizes = append(st.qSizes, int32(len(v)))
		st.qBytes += int64(len(v))
		return nil
	})
	if err != nil {
		return err
	}
	st.queueLoaded = true
	return nil
}

// AppendQueue implements store.QueueStore.
func (s *Store) AppendQueue(ctx context.Context, tenant, clientID string, m *store.Message) (uint64, error) {
	return s.AppendQueueBatch(ctx, tenant, clientID, []*store.Message{m})
}

// AppendQueueBatch implements store.QueueStore: one Pebble batch.
func (s *Store) AppendQueueBatch(ctx context.Context, tenant, clientID string, ms []*store.Message) (uint64, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return 0, err
	}
	encs := make([][]byte, len(ms))
	for i, m := range ms {
		enc, err := m.MarshalBinary()
		if err != nil {
			return 0, err
		}
		encs[i] = enc
	}
	if len(ms) == 0 {
		return 0, nil
	}
	st := s.lockSeqs(tenant, clientID)
	if err := s.loadQueue(st, tenant, clientID); err != nil {
		st.mu.Unlock()
		return 0, err
	}
	first := st.qNext
	b := s.db.NewBatch()
	for i, enc := range encs {
		_ = b.Set(queueKey(tenant, clientID, first+uint64(i)), enc, nil)
	}
	r, err := s.submit(b)
	if err != nil {
		st.mu.Unlock()
		_ = b.Close()
		return 0, err
	}
	st.qNext += uint64(len(ms))
	for _, enc := range encs {
		st.qSizes = append(st.qSizes, int32(len(enc)))
		st.qBytes += int64(len(enc))
	}
	st.mu.Unlock()
	if err := r.wait(); err != nil {
		s.forgetSeqs(tenant, clientID)
		return 0, fmt.Errorf("pebblestore: commit: %w", err)
	}
	return first, nil
}

// forgetSeqs makes the next call reload a session's numbering state from
// the database, after a failed commit left the memory ahead of the disk.
func (s *Store) forgetSeqs(tenant, clientID string) {
	st := s.lockSeqs(tenant, clientID)
	st.queueLoaded, st.outLoaded = false, false
	st.mu.Unlock()
}

// PeekQueue implements store.QueueStore.
func (s *Store) PeekQueue(ctx context.Context, tenant, clientID string, from uint64, limit int) ([]store.QueueEntry, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	var out []store.QueueEntry
	err := s.read(func(db *pebble.DB) error {
		it, err := db.NewIter(&pebble.IterOptions{
			LowerBound: queueKey(tenant, clientID, from),
			UpperBound: store.PrefixEnd(sessionPrefix(kindQueue, tenant, clientID, 0)),
		})
		if err != nil {
			return err
		}
		defer it.Close()
		for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				return err
			}
			k := it.Key()
			e := store.QueueEntry{Seq: binary.BigEndian.Uint64(k[len(k)-8:])}
			if err := e.Message.UnmarshalBinary(v); err != nil {
				return err
			}
			out = append(out, e)
		}
		return it.Error()
	})
	return out, err
}

// TrimQueue implements store.QueueStore.
func (s *Store) TrimQueue(ctx context.Context, tenant, clientID string, upTo uint64) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	st := s.lockSeqs(tenant, clientID)
	if err := s.loadQueue(st, tenant, clientID); err != nil {
		st.mu.Unlock()
		return err
	}
	if len(st.qSizes) == 0 || upTo < st.qFirst {
		st.mu.Unlock()
		return nil
	}
	last := min(upTo, st.qNext-1)
	n := int(last - st.qFirst + 1)
	b := s.db.NewBatch()
	if n <= pointDeleteMax {
		// The usual case, a few delivered messages: point deletions keep
		// later reads free of range tombstones.
		for seq := st.qFirst; seq <= last; seq++ {
			_ = b.Delete(queueKey(tenant, clientID, seq), nil)
		}
	} else {
		_ = b.DeleteRange(queueKey(tenant, clientID, 0), queueKey(tenant, clientID, last+1), nil)
	}
	r, err := s.submit(b)
	if err != nil {
		st.mu.Unlock()
		_ = b.Close()
		return err
	}
	for _, size := range st.qSizes[:n] {
		st.qBytes -= int64(size)
	}
	st.qSizes = st.qSizes[n:]
	if cap(st.qSizes) > 64 && len(st.qSizes) < cap(st.qSizes)/4 {
		// Let go of the drained front of a queue that was long.
		st.qSizes = slices.Clone(st.qSizes)
	}
	st.qFirst = last + 1
	st.mu.Unlock()
	if err := r.wait(); err != nil {
		s.forgetSeqs(tenant, clientID)
		return fmt.Errorf("pebblestore: commit: %w", err)
	}
	return nil
}

// QueueInfo implements store.QueueStore.
func (s *Store) QueueInfo(ctx context.Context, tenant, clientID string) (store.QueueInfo, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return store.QueueInfo{}, err
	}
	st := s.lockSeqs(tenant, clientID)
	defer st.mu.Unlock()
	if err := s.loadQueue(st, tenant, clientID); err != nil {
		return store.QueueInfo{}, err
	}
	if len(st.qSizes) == 0 {
		return store.QueueInfo{}, nil
	}
	return store.QueueInfo{Len: len(st.qSizes), Bytes: st.qBytes, First: st.qFirst, Last: st.qNext - 1}, nil
}
