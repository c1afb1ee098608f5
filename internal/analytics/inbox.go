package analytics

import (
	"context"
	"runtime"
	"sync"
)

// inbox is a shard's bounded queue. A mutex and a slice rather than a
// channel: the router's goroutines append under a short lock, and the
// shard takes everything queued at once by swapping slices, so that a
// message costs the router an append, not a channel operation (the
// channel was 5% of the CPU at 500k messages/s).
type inbox struct {
	mu    sync.Mutex
	buf   []item
	limit int
	// ready is signalled when the inbox becomes non-empty, space when the
	// shard took what was queued; each holds at most one signal.
	ready, space chan struct{}
}

func newInbox(limit int) *inbox {
	return &inbox{limit: limit, ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// push queues it; false when the inbox is full.
func (q *inbox) push(it item) bool {
	q.mu.Lock()
	if len(q.buf) >= q.limit {
		q.mu.Unlock()
		return false
	}
	q.buf = append(q.buf, it)
	n := len(q.buf)
	q.mu.Unlock()
	if n == 1 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	if n >= q.limit/2 {
		// The shard is behind: on a machine whose cores the publishers
		// keep busy, it may wait tens of milliseconds for its turn, long
		// enough for the queue to overflow. Yielding lets it run now
		// without making the publisher wait for it.
		runtime.Gosched()
	}
	return true
}

// pushWait queues it, waiting for room until ctx ends (Kafka sources:
// the consumer waits rather than drop).
func (q *inbox) pushWait(ctx context.Context, it item) bool {
	for !q.push(it) {
		select {
		case <-q.space:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// take returns everything queued, handing spare (emptied) back as the
// next buffer.
func (q *inbox) take(spare []item) []item {
	q.mu.Lock()
	out := q.buf
	q.buf = spare[:0]
	q.mu.Unlock()
	if len(out) > 0 {
		select {
		case q.space <- struct{}{}:
		default:
		}
	}
	return out
}
