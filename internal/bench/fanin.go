// Package bench generates MQTT load against any broker and measures
// throughput, latency, memory per connection and loss. It backs
// `ferry bench`.
package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// FanIn describes the fan-in scenario: Publishers clients each publish
// Messages messages of Payload bytes to their own topic under bench/, and one
// subscriber receives them all through the wildcard bench/#.
type FanIn struct {
	Addr       string
	Publishers int
	Messages   int // per publisher
	Payload    int // bytes
	QoS        byte
	// Window bounds unacknowledged QoS 1 publishes per publisher.
	Window int
	// Idle is how long the subscriber waits for the next message before it
	// counts the rest as lost.
	Idle time.Duration
}

// Result is the outcome of one throughput run.
type Result struct {
	// Sent is the number of deliveries expected: messages published times
	// the subscribers that should receive each.
	Sent, Received int
	Elapsed        time.Duration // first publish to last delivery
}

// Rate is delivered messages per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Received) / r.Elapsed.Seconds()
}

// Loss is the fraction of expected deliveries that did not happen.
func (r Result) Loss() float64 { return loss(r.Sent, r.Received) }

func (r Result) String() string {
	return fmt.Sprintf("sent %d received %d in %v: %.0f msgs/s, loss %.2f%%",
		r.Sent, r.Received, r.Elapsed.Round(time.Millisecond), r.Rate(), 100*r.Loss())
}

func loss(expected, got int) float64 {
	if expected <= 0 || got >= expected {
		return 0
	}
	return float64(expected-got) / float64(expected)
}

func (f *FanIn) defaults() {
	if f.Window <= 0 {
		f.Window = 64
	}
	if f.Idle <= 0 {
		f.Idle = 3 * time.Second
	}
}

// runID tells one run's client identifiers and topics from another's.
func runID() string { return strconv.FormatInt(time.Now().UnixNano(), 36) }

// Run runs the scenario once.
func (f FanIn) Run(ctx context.Context) (Result, error) {
	f.defaults()
	run := runID()
	sub, err := dial(f.Addr, "bench-sub-"+run, true)
	if err != nil {
		return Result{}, fmt.Errorf("subscriber: %w", err)
	}
	defer sub.conn.Close()
	if err := sub.subscribe("bench/"+run+"/#", f.QoS); err != nil {
		return Result{}, err
	}
	pubs := make([]*client, f.Publishers)
	for i := range pubs {
		if pubs[i], err = dial(f.Addr, fmt.Sprintf("bench-pub-%s-%d", run, i), true); err != nil {
			return Result{}, fmt.Errorf("publisher %d: %w", i, err)
		}
		defer pubs[i].conn.Close()
	}

	total := f.Publishers * f.Messages
	var received int
	var last time.Time
	subDone := make(chan error, 1)
	go func() {
		subDone <- sub.receive(total, f.Idle, func(*packet.Publish) {
			received++
			last = time.Now()
		})
	}()

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, f.Publishers)
	payload := make([]byte, f.Payload)
	for i, c := range pubs {
		wg.Go(func() {
			if err := f.publish(ctx, c, fmt.Sprintf("bench/%s/%d", run, i), payload); err != nil {
				errs <- fmt.Errorf("publisher %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return Result{}, err
	}
	if err := <-subDone; err != nil {
		return Result{}, err
	}
	res := Result{Sent: total, Received: received}
	if !last.IsZero() {
		res.Elapsed = last.Sub(start)
	}
	for _, c := range pubs {
		c.close()
	}
	sub.close()
	return res, nil
}

func (f FanIn) publish(ctx context.Context, c *client, topic string, payload []byte) error {
	p := newPublisher(c, f.QoS, f.Window, f.Messages)
	pub := &packet.Publish{Topic: topic, Payload: payload}
	for i := range f.Messages {
		if i%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := p.publish(ctx, pub); err != nil {
			return err
		}
	}
	return p.finish()
}
