package pebblestore

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Group commit.
//
// Every write of the store is a pebble.Batch handed to one committer
// goroutine. The committer takes the first waiting batch and every other
// batch already queued behind it (up to maxGroupBatches or maxGroupBytes),
// merges them into the first, commits the merged batch once, with one fsync
// in sync mode, and wakes every writer of the group with the result. While
// it waits on the disk, more batches queue up and form the next group, so
// the number of fsyncs per second stays near the disk's limit whatever the
// number of writers, and each writer waits for at most two fsyncs.
//
// The single committer also fixes the order of commits: batches commit in
// the order they were queued, which the queue and outbound numbering rely
// on (see queue.go).

const (
	maxGroupBatches = 1024
	maxGroupBytes   = 4 << 20
	// reqQueueLen bounds the batches waiting for the committer; beyond it
	// writers block in submit, which is the backpressure of a slow disk.
	reqQueueLen = 4096
)

type commitReq struct {
	b    *pebble.Batch
	done chan error // buffered; receives the commit's result once
}

var reqPool = sync.Pool{New: func() any { return &commitReq{done: make(chan error, 1)} }}

type committer struct {
	db       *pebble.DB
	opts     *pebble.WriteOptions
	interval time.Duration // batch mode: fsync at most this often; 0 otherwise

	reqs chan *commitReq // closed by Store.Close, after which no one sends
	exit chan struct{}   // closed when run returns

	// Counters for tests and benchmarks.
	commits atomic.Uint64 // pebble commits (groups)
	batches atomic.Uint64 // writer batches committed
	syncs   atomic.Uint64 // interval fsyncs in batch mode
}

func newCommitter(db *pebble.DB, d Durability, interval time.Duration) *committer {
	c := &committer{
		db:   db,
		opts: pebble.NoSync,
		reqs: make(chan *commitReq, reqQueueLen),
		exit: make(chan struct{}),
	}
	switch d {
	case DurabilitySync:
		c.opts = pebble.Sync
	case DurabilityBatch:
		c.interval = interval
	}
	return c
}

// run is the committer goroutine, started by Open. It returns once reqs is
// closed and drained, after a last fsync in batch mode.
func (c *committer) run() {
	defer close(c.exit)
	var tick <-chan time.Time
	if c.interval > 0 {
		t := time.NewTicker(c.interval)
		defer t.Stop()
		tick = t.C
	}
	dirty := false // batch mode: commits since the last fsync
	group := make([]*commitReq, 0, maxGroupBatches)
	for {
		select {
		case r, ok := <-c.reqs:
			if !ok {
				if dirty {
					c.sync()
				}
				return
			}
			group = append(group[:0], r)
			size := len(r.b.Repr())
		gather:
			for len(group) < maxGroupBatches && size < maxGroupBytes {
				select {
				case r, ok := <-c.reqs:
					if !ok {
						// Closed: commit what we have; the outer loop
						// then sees the close again and exits.
						break gather
					}
					group = append(group, r)
					size += len(r.b.Repr())
				default:
					break gather
				}
			}
			c.commit(group)
			clear(group) // drop references to batches their writers close
			dirty = c.interval > 0
		case <-tick:
			if dirty {
				c.sync()
				dirty = false
			}
		}
	}
}

func (c *committer) commit(group []*commitReq) {
	b := group[0].b
	var err error
	for _, r := range group[1:] {
		if err = b.Apply(r.b, nil); err != nil {
			break
		}
	}
	if err == nil {
		err = b.Commit(c.opts)
	}
	c.commits.Add(1)
	c.batches.Add(uint64(len(group)))
	for _, r := range group {
		r.done <- err
	}
}

// sync makes every commit so far durable. A failure is not reported to the
// writers, who were already told their writes succeeded: that is the
// window batch mode accepts. Pebble itself treats a failed WAL sync as
// fatal.
func (c *committer) sync() {
	_ = c.db.LogData(nil, pebble.Sync)
	c.syncs.Add(1)
}

// Stats counts the store's commits since Open.
type Stats struct {
	// Writes is the number of write calls committed; Commits the number of
	// Pebble commits they were grouped into. Writes/Commits is the group
	// commit factor: in sync mode, writes per fsync.
	Writes, Commits uint64
	// IntervalSyncs is the number of fsyncs of batch mode's timer.
	IntervalSyncs uint64
}

// Stats returns the commit counters.
func (s *Store) Stats() Stats {
	return Stats{Writes: s.c.batches.Load(), Commits: s.c.commits.Load(), IntervalSyncs: s.c.syncs.Load()}
}
