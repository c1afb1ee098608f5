package hub

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ferry-iot/ferry/internal/store/memstore"
)

func durableSession(t *testing.T, h *Hub, id string, filter string) *Session {
	t.Helper()
	s, _ := h.Open("t", id, true)
	if err := s.MakeDurable(Forever); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(Subscription{Filter: filter, QoS: 1}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSpillAndRefill: an offline durable session keeps no more than
// MaxQueuedMessages in memory; the rest waits in the store and comes back,
// in order, when the session drains.
func TestSpillAndRefill(t *testing.T) {
	h := New(Options{Store: memstore.New(), MaxQueuedMessages: 10})
	t.Cleanup(func() { h.Close(context.Background()) })
	s := durableSession(t, h, "c", "x")
	s.Detach(Departure{Expiry: Forever})
	const count = 200
	for i := range count {
		if res := h.Publish("t", &Message{Topic: "x", QoS: 1, Payload: []byte(strconv.Itoa(i))}); res.Lost != 0 || res.Err != nil {
			t.Fatalf("publish %d: %+v", i, res)
		}
		if q := s.Queued(); q > 10 {
			t.Fatalf("%d deliveries in memory, over the bound of 10", q)
		}
	}
	if st := h.Stats(); st.Spills == 0 || st.Dropped != 0 {
		t.Fatalf("stats %+v: want a spill and no drop", st)
	}
	s2, present := h.Open("t", "c", false)
	if !present {
		t.Fatal("session lost")
	}
	r := &recorder{}
	s2.Attach(r)
	waitUntil(t, "every delivery", func() bool {
		s2.Drain()
		return len(r.topics()) >= count
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) != count {
		t.Fatalf("%d deliveries, want %d", len(r.got), count)
	}
	for i, d := range r.got {
		if string(d.Message.Payload) != strconv.Itoa(i) {
			t.Fatalf("delivery %d is %q: out of order", i, d.Message.Payload)
		}
	}
	if h.Stats().Refills == 0 {
		t.Error("no refill from the store counted")
	}
}

// TestStoreQuota: past MaxStoredMessages, deliveries to a durable session
// are dropped as store_quota and the publisher is told.
func TestStoreQuota(t *testing.T) {
	h := New(Options{Store: memstore.New(), MaxQueuedMessages: 2, MaxStoredMessages: 5, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { h.Close(context.Background()) })
	s := durableSession(t, h, "c", "x")
	s.Detach(Departure{Expiry: Forever})
	lost := 0
	for range 8 {
		lost += h.Publish("t", &Message{Topic: "x", QoS: 1}).Lost
	}
	st := h.Stats()
	if lost != 3 || st.Drops[DropStoreQuota] != 3 {
		t.Errorf("lost %d, store_quota drops %d; want 3 and 3", lost, st.Drops[DropStoreQuota])
	}
}

// TestReleaseOrder: the done calls of a session's Releases come in the
// order of the calls, whatever the store's latency, so PUBRELs keep the
// order of the PUBLISHes.
func TestReleaseOrder(t *testing.T) {
	h := New(Options{Store: memstore.New()})
	t.Cleanup(func() { h.Close(context.Background()) })
	s := durableSession(t, h, "c", "x")
	r := &recorder{}
	s.Attach(r)
	const count = 100
	for i := range count {
		h.Publish("t", &Message{Topic: "x", QoS: 2, Payload: []byte(strconv.Itoa(i))})
	}
	waitUntil(t, "deliveries", func() bool { return len(r.topics()) == count })
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	r.mu.Lock()
	got := append([]Delivery(nil), r.got...)
	r.mu.Unlock()
	for i, d := range got {
		wg.Add(1)
		s.Release(d.Seq, d.Message, func(err error) {
			defer wg.Done()
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		})
	}
	wg.Wait()
	for i, n := range order {
		if n != i {
			t.Fatalf("release %d completed in place %d: %v", n, i, order[:i+1])
		}
	}
}

// TestCloseStopsTimers: after Close no timer of the hub fires: a session
// whose expiry is due stays in the store for the next start.
// It runs in a synctest bubble, so the hour it waits is fake and the
// stopped timer would have fired for certain.
func TestCloseStopsTimers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memstore.New()
		h := New(Options{Store: st})
		s := durableSession(t, h, "c", "x")
		s.Detach(Departure{Expiry: 50 * time.Millisecond})
		if err := h.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if _, err := st.GetSession(context.Background(), "t", "c"); err != nil {
			t.Errorf("the session expired after Close: %v", err)
		}
	})
}
