package pebblestore

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestGroupCommit queues batches before the committer runs, so that they
// are all waiting when it starts: they must commit as one group, with one
// Pebble commit, and every writer must see the result.
func TestGroupCommit(t *testing.T) {
	for _, d := range []Durability{DurabilitySync, DurabilityBatch, DurabilityNone} {
		t.Run(d.String(), func(t *testing.T) {
			db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: pebbleLogger{slog.New(slog.DiscardHandler)}})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			c := newCommitter(db, d, 0)
			const n = 100
			reqs := make([]*commitReq, n)
			for i := range reqs {
				b := db.NewBatch()
				_ = b.Set(fmt.Appendf(nil, "k%03d", i), []byte("v"), nil)
				reqs[i] = &commitReq{b: b, done: make(chan error, 1)}
				c.reqs <- reqs[i]
			}
			close(c.reqs)
			c.run()
			for i, r := range reqs {
				if err := r.wait(); err != nil {
					t.Fatalf("writer %d: %v", i, err)
				}
			}
			if got := c.commits.Load(); got != 1 {
				t.Errorf("%d batches queued together took %d commits, want 1", n, got)
			}
			if got := c.batches.Load(); got != n {
				t.Errorf("batches = %d, want %d", got, n)
			}
			for i := range n {
				v, closer, err := db.Get(fmt.Appendf(nil, "k%03d", i))
				if err != nil || string(v) != "v" {
					t.Fatalf("key %d after the group commit: %q, %v", i, v, err)
				}
				_ = closer.Close()
			}
		})
	}
}

// TestGroupLimits checks that a group stops at maxGroupBatches, so one
// commit never grows without bound.
func TestGroupLimits(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: pebbleLogger{slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := newCommitter(db, DurabilityNone, 0)
	n := maxGroupBatches + 10
	reqs := make([]*commitReq, n)
	for i := range reqs {
		b := db.NewBatch()
		_ = b.Set(fmt.Appendf(nil, "k%05d", i), nil, nil)
		reqs[i] = &commitReq{b: b, done: make(chan error, 1)}
		c.reqs <- reqs[i]
	}
	close(c.reqs)
	c.run()
	for _, r := range reqs {
		if err := r.wait(); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.commits.Load(); got != 2 {
		t.Errorf("%d queued batches took %d commits, want 2", n, got)
	}
}
