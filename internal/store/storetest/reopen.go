package storetest

import (
	"fmt"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
)

// concurrentWriters drives every kind of write from several goroutines, for
// the race detector and for group-commit paths, then checks the result.
func concurrentWriters(c *checker) {
	const workers, rounds = 6, 30
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			id := fmt.Sprint("c", w)
			if err := c.writeRounds(id, rounds); err != nil {
				errs <- fmt.Errorf("%s: %w", id, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		c.t.Fatal(err)
	}
	for w := range workers {
		id := fmt.Sprint("c", w)
		c.equal(c.filters("t", id), []string{id}, "subscriptions of "+id)
		info, err := c.s.QueueInfo(c.ctx, "t", id)
		c.ok(err, "QueueInfo")
		if info.Len != rounds/2 {
			c.t.Fatalf("queue of %s holds %d entries, want %d", id, info.Len, rounds/2)
		}
		if got := c.outbound("t", id); len(got) != 1 {
			c.t.Fatalf("outbound of %s = %q, want one record", id, got)
		}
	}
	if got := c.retainedTopics("t"); len(got) != workers {
		c.t.Fatalf("retained = %q, want %d topics", got, workers)
	}
}

func (c *checker) writeRounds(id string, rounds int) error {
	ctx := c.ctx
	if err := c.s.PutSession(ctx, "t", store.Session{ClientID: id}); err != nil {
		return err
	}
	if err := c.s.PutSubscription(ctx, "t", id, store.Subscription{Filter: id}); err != nil {
		return err
	}
	var seqs []uint64
	for i := range rounds {
		m := &store.Message{Topic: id, Payload: fmt.Append(nil, i), QoS: 1}
		seq, err := c.s.AppendQueue(ctx, "t", id, m)
		if err != nil {
			return err
		}
		seqs = append(seqs, seq)
		if i%2 == 1 { // trim the oldest entry: half of the appends stay
			if err := c.s.TrimQueue(ctx, "t", id, seqs[i/2]); err != nil {
				return err
			}
		}
		if err := c.s.PutOutbound(ctx, "t", id, store.Outbound{PacketID: uint16(i + 1), State: store.OutboundPublished, Message: *m}); err != nil {
			return err
		}
		if i > 0 {
			if err := c.s.DeleteOutbound(ctx, "t", id, uint16(i)); err != nil {
				return err
			}
		}
		if err := c.s.SetRetained(ctx, "t", m); err != nil {
			return err
		}
	}
	return nil
}

func reopenSurvives(c *checker) {
	for _, k := range [][2]string{{"a", "bc"}, {"ab", "c"}} {
		c.fill(k[0], k[1])
	}
	c.fill("t", "gone")
	c.ok(c.s.DeleteSession(c.ctx, "t", "gone"), "DeleteSession")
	m := fullMessage("all/fields")
	c.ok(c.s.SetRetained(c.ctx, "t", &m), "SetRetained")
	_, err := c.s.AppendQueue(c.ctx, "t", "c", &m)
	c.ok(err, "AppendQueue")
	c.ok(c.s.PutOutbound(c.ctx, "t", "c", store.Outbound{PacketID: 9, State: store.OutboundPublished, Message: m}), "PutOutbound")
	c.ok(c.s.PutWill(c.ctx, "t", "c", store.Will{Message: m}), "PutWill")
	rec := store.Session{ClientID: "c", ExpiryInterval: store.NeverExpire, Created: time.Unix(1, 2), Updated: time.Unix(3, 4), Disconnected: time.Unix(5, 6)}
	c.ok(c.s.PutSession(c.ctx, "t", rec), "PutSession")

	c.reopen()

	c.check("a", "bc")
	c.check("ab", "c")
	c.checkGone("t", "gone")
	c.checkFull(m)
	got, err := c.s.GetSession(c.ctx, "t", "c")
	c.ok(err, "GetSession")
	if !sameSession(got, rec) {
		c.t.Fatalf("session after reopen = %+v, want %+v", got, rec)
	}
	n := 0
	c.ok(c.s.Sessions(c.ctx, func(string, store.Session) error { n++; return nil }), "Sessions")
	if n != 3 {
		c.t.Fatalf("Sessions after reopen visited %d, want 3", n)
	}
}

func reopenOrder(c *checker) {
	seqs := c.append("t", "c", "a", "b", "c")
	c.ok(c.s.TrimQueue(c.ctx, "t", "c", seqs[0]), "TrimQueue")
	for _, pid := range []uint16{9, 3, 7} {
		c.putOutbound("t", "c", pid, store.OutboundPublished)
	}
	info, err := c.s.QueueInfo(c.ctx, "t", "c")
	c.ok(err, "QueueInfo")

	c.reopen()

	after, err := c.s.QueueInfo(c.ctx, "t", "c")
	c.ok(err, "QueueInfo after reopen")
	if after != info {
		c.t.Fatalf("QueueInfo after reopen = %+v, want %+v", after, info)
	}
	more := c.append("t", "c", "d")
	if more[0] <= seqs[2] {
		c.t.Fatalf("seq after reopen = %d, want > %d", more[0], seqs[2])
	}
	c.equal(c.queued("t", "c"), []string{"b", "c", "d"}, "queue after reopen")

	c.equal(c.outbound("t", "c"), []string{"9:1", "3:1", "7:1"}, "Outbound after reopen")
	c.ok(c.s.PutOutbound(c.ctx, "t", "c", store.Outbound{PacketID: 3, State: store.OutboundReleased}), "PutOutbound")
	c.putOutbound("t", "c", 1, store.OutboundPublished)
	c.equal(c.outbound("t", "c"), []string{"9:1", "3:2", "7:1", "1:1"}, "Outbound after reopen and writes")
}
