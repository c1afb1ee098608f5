package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// FanOut describes the fan-out scenario: one publisher publishes Messages
// messages of Payload bytes to one topic, and Subscribers clients subscribed
// to it each receive them all. The rate is deliveries per second.
type FanOut struct {
	Addr        string
	Subscribers int
	Messages    int
	Payload     int // bytes
	QoS         byte
	// Window bounds unacknowledged QoS 1 publishes.
	Window int
	// Idle is how long a subscriber waits for the next message before it
	// counts the rest as lost.
	Idle time.Duration
}

// Run runs the scenario once. Sent in the result is Messages times
// Subscribers, the deliveries expected.
func (f FanOut) Run(ctx context.Context) (Result, error) {
	if f.Window <= 0 {
		f.Window = 64
	}
	if f.Idle <= 0 {
		f.Idle = 3 * time.Second
	}
	run := runID()
	topic := "bench/" + run + "/out"
	subs := make([]*client, f.Subscribers)
	for i := range subs {
		c, err := dial(f.Addr, fmt.Sprintf("bench-sub-%s-%d", run, i), true)
		if err != nil {
			return Result{}, fmt.Errorf("subscriber %d: %w", i, err)
		}
		defer c.conn.Close()
		if err := c.subscribe(topic, f.QoS); err != nil {
			return Result{}, fmt.Errorf("subscriber %d: %w", i, err)
		}
		subs[i] = c
	}
	pc, err := dial(f.Addr, "bench-pub-"+run, true)
	if err != nil {
		return Result{}, fmt.Errorf("publisher: %w", err)
	}
	defer pc.conn.Close()

	type tally struct {
		n    int
		last time.Time
		err  error
	}
	tallies := make([]tally, len(subs))
	var wg sync.WaitGroup
	for i, c := range subs {
		wg.Go(func() {
			t := &tallies[i]
			t.err = c.receive(f.Messages, f.Idle, func(*packet.Publish) {
				t.n++
				t.last = time.Now()
			})
		})
	}

	start := time.Now()
	p := newPublisher(pc, f.QoS, f.Window, f.Messages)
	pub := &packet.Publish{Topic: topic, Payload: make([]byte, f.Payload)}
	for i := range f.Messages {
		if i%1024 == 0 && ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		if err := p.publish(ctx, pub); err != nil {
			return Result{}, fmt.Errorf("publisher: %w", err)
		}
	}
	if err := p.finish(); err != nil {
		return Result{}, fmt.Errorf("publisher: %w", err)
	}
	wg.Wait()

	res := Result{Sent: f.Messages * f.Subscribers}
	var last time.Time
	for i, t := range tallies {
		if t.err != nil {
			return Result{}, fmt.Errorf("subscriber %d: %w", i, t.err)
		}
		res.Received += t.n
		if t.last.After(last) {
			last = t.last
		}
	}
	if !last.IsZero() {
		res.Elapsed = last.Sub(start)
	}
	pc.close()
	for _, c := range subs {
		c.close()
	}
	return res, nil
}
