package storetest

import (
	"fmt"
	"sync"

	"github.com/ferry-iot/ferry/internal/store"
)

func queueOrder(c *checker) {
	var want []string
	for i := range 300 {
		want = append(want, fmt.Sprint(i))
	}
	seqs := c.append("t", "c", want...)
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			c.t.Fatalf("AppendQueue returned seq %d after %d", seqs[i], seqs[i-1])
		}
	}
	c.equal(c.queued("t", "c"), want, "queue")
	entries, err := c.s.PeekQueue(c.ctx, "t", "c", 0, 1000)
	c.ok(err, "PeekQueue")
	for i, e := range entries {
		if e.Seq != seqs[i] {
			c.t.Fatalf("entry %d has seq %d, AppendQueue returned %d", i, e.Seq, seqs[i])
		}
	}
	// Peeking does not remove.
	c.equal(c.queued("t", "c"), want, "queue after peeking")
	if got := c.queued("t", "empty"); len(got) != 0 {
		c.t.Fatalf("queue of a missing session = %q", got)
	}
}

func queuePeek(c *checker) {
	seqs := c.append("t", "c", "a", "b", "c", "d", "e")
	peek := func(from uint64, limit int) []string {
		c.t.Helper()
		entries, err := c.s.PeekQueue(c.ctx, "t", "c", from, limit)
		c.ok(err, "PeekQueue")
		var out []string
		for _, e := range entries {
			out = append(out, string(e.Message.Payload))
		}
		return out
	}
	c.equal(peek(0, 2), []string{"a", "b"}, "PeekQueue(0, 2)")
	c.equal(peek(seqs[2], 2), []string{"c", "d"}, "PeekQueue(third, 2)")
	c.equal(peek(seqs[2]+1, 10), []string{"d", "e"}, "PeekQueue(after third, 10)")
	c.equal(peek(seqs[4]+1, 10), nil, "PeekQueue(past the tail)")
	c.equal(peek(0, 0), nil, "PeekQueue(limit 0)")
}

func queueTrim(c *checker) {
	info := func() store.QueueInfo {
		c.t.Helper()
		i, err := c.s.QueueInfo(c.ctx, "t", "c")
		c.ok(err, "QueueInfo")
		return i
	}
	if got := info(); got != (store.QueueInfo{}) {
		c.t.Fatalf("QueueInfo of an empty queue = %+v", got)
	}
	c.ok(c.s.TrimQueue(c.ctx, "t", "c", 100), "TrimQueue of an empty queue")

	payloads := []string{"a", "bb", "ccc", "dddd", "eeeee"}
	seqs := c.append("t", "c", payloads...)
	var size int64
	for _, p := range payloads {
		b, _ := (&store.Message{Topic: "q", Payload: []byte(p), QoS: 1}).MarshalBinary()
		size += int64(len(b))
	}
	want := store.QueueInfo{Len: 5, Bytes: size, First: seqs[0], Last: seqs[4]}
	if got := info(); got != want {
		c.t.Fatalf("QueueInfo = %+v, want %+v", got, want)
	}

	c.ok(c.s.TrimQueue(c.ctx, "t", "c", seqs[1]), "TrimQueue")
	c.equal(c.queued("t", "c"), payloads[2:], "queue after trim")
	b0, _ := (&store.Message{Topic: "q", Payload: []byte("a"), QoS: 1}).MarshalBinary()
	b1, _ := (&store.Message{Topic: "q", Payload: []byte("bb"), QoS: 1}).MarshalBinary()
	want = store.QueueInfo{Len: 3, Bytes: size - int64(len(b0)+len(b1)), First: seqs[2], Last: seqs[4]}
	if got := info(); got != want {
		c.t.Fatalf("QueueInfo after trim = %+v, want %+v", got, want)
	}

	c.ok(c.s.TrimQueue(c.ctx, "t", "c", seqs[1]), "TrimQueue again")
	c.equal(c.queued("t", "c"), payloads[2:], "queue after a repeated trim")

	// Appends after a trim continue the numbering.
	more := c.append("t", "c", "f")
	if more[0] <= seqs[4] {
		c.t.Fatalf("seq after trim = %d, want > %d", more[0], seqs[4])
	}
	c.ok(c.s.TrimQueue(c.ctx, "t", "c", more[0]+1000), "TrimQueue past the tail")
	if got := info(); got != (store.QueueInfo{}) {
		c.t.Fatalf("QueueInfo after trimming everything = %+v", got)
	}
	again := c.append("t", "c", "g")
	if again[0] <= more[0] {
		c.t.Fatalf("seq after emptying = %d, want > %d (numbers are not reused while open)", again[0], more[0])
	}
	c.equal(c.queued("t", "c"), []string{"g"}, "queue after emptying and appending")
}

func queueBatch(c *checker) {
	seqs := c.append("t", "c", "a")
	first, err := c.s.AppendQueueBatch(c.ctx, "t", "c", nil)
	c.ok(err, "AppendQueueBatch (empty)")
	if first != 0 {
		c.t.Fatalf("AppendQueueBatch of nothing = %d, want 0", first)
	}
	var ms []*store.Message
	for _, p := range []string{"b", "c", "d"} {
		ms = append(ms, &store.Message{Topic: "q", Payload: []byte(p)})
	}
	first, err = c.s.AppendQueueBatch(c.ctx, "t", "c", ms)
	c.ok(err, "AppendQueueBatch")
	if first <= seqs[0] {
		c.t.Fatalf("AppendQueueBatch first = %d, want > %d", first, seqs[0])
	}
	entries, err := c.s.PeekQueue(c.ctx, "t", "c", first, 10)
	c.ok(err, "PeekQueue")
	for i, e := range entries {
		if e.Seq != first+uint64(i) {
			c.t.Fatalf("batch entry %d has seq %d, want %d (consecutive)", i, e.Seq, first+uint64(i))
		}
	}
	c.equal(c.queued("t", "c"), []string{"a", "b", "c", "d"}, "queue after a batch")

	// A batch with an invalid message stores nothing.
	bad := []*store.Message{{Topic: "q", Payload: []byte("e")}, {Topic: "q", QoS: 3}}
	c.is(errOnly(c.s.AppendQueueBatch(c.ctx, "t", "c", bad)), store.ErrInvalid, "AppendQueueBatch with QoS 3")
	c.equal(c.queued("t", "c"), []string{"a", "b", "c", "d"}, "queue after a refused batch")
	info, err := c.s.QueueInfo(c.ctx, "t", "c")
	c.ok(err, "QueueInfo")
	if info.Len != 4 {
		c.t.Fatalf("QueueInfo.Len after a refused batch = %d, want 4", info.Len)
	}
}

func queueConcurrent(c *checker) {
	const sessions, per = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i := range sessions {
		wg.Go(func() {
			id := fmt.Sprint("c", i)
			for j := range per {
				m := &store.Message{Topic: "q", Payload: fmt.Append(nil, j), QoS: 1}
				if _, err := c.s.AppendQueue(c.ctx, "t", id, m); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		c.t.Fatalf("AppendQueue: %v", err)
	}
	var want []string
	for j := range per {
		want = append(want, fmt.Sprint(j))
	}
	for i := range sessions {
		c.equal(c.queued("t", fmt.Sprint("c", i)), want, fmt.Sprint("queue of c", i))
	}
}
