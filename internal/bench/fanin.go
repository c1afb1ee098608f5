// Package bench generates MQTT load against any broker and measures
// delivered messages per second and loss. It backs `ferry bench`.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
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

// Result is the outcome of one run.
type Result struct {
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

// Loss is the fraction of sent messages that were not delivered.
func (r Result) Loss() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.Sent-r.Received) / float64(r.Sent)
}

func (r Result) String() string {
	return fmt.Sprintf("sent %d received %d in %v: %.0f msgs/s, loss %.2f%%",
		r.Sent, r.Received, r.Elapsed.Round(time.Millisecond), r.Rate(), 100*r.Loss())
}

// Run runs the scenario once.
func (f FanIn) Run(ctx context.Context) (Result, error) {
	if f.Window <= 0 {
		f.Window = 64
	}
	if f.Idle <= 0 {
		f.Idle = 3 * time.Second
	}
	run := fmt.Sprintf("%d", time.Now().UnixNano())
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
	var received atomic.Int64
	var last atomic.Int64
	subDone := make(chan error, 1)
	go func() { subDone <- f.receive(sub, total, &received, &last) }()

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, f.Publishers)
	payload := make([]byte, f.Payload)
	for i, c := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.publish(ctx, c, fmt.Sprintf("bench/%s/%d", run, i), payload); err != nil {
				errs <- fmt.Errorf("publisher %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return Result{}, err
	}
	if err := <-subDone; err != nil {
		return Result{}, err
	}
	res := Result{Sent: total, Received: int(received.Load())}
	if l := last.Load(); l > 0 {
		res.Elapsed = time.Unix(0, l).Sub(start)
	}
	for _, c := range pubs {
		c.close()
	}
	sub.close()
	return res, nil
}

func (f FanIn) publish(ctx context.Context, c *client, topic string, payload []byte) error {
	p := &packet.Publish{Topic: topic, QoS: f.QoS, Payload: payload}
	if f.QoS == 0 {
		for i := 0; i < f.Messages; i++ {
			if i%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			if err := c.write(p); err != nil {
				return err
			}
		}
		return c.flush()
	}
	// QoS 1: keep up to Window publishes unacknowledged; a reader goroutine
	// returns credits as PUBACKs arrive.
	credits := make(chan struct{}, f.Window)
	for range f.Window {
		credits <- struct{}{}
	}
	readErr := make(chan error, 1)
	go func() {
		for acked := 0; acked < f.Messages; {
			pk, err := c.read()
			if err != nil {
				readErr <- err
				return
			}
			if _, ok := pk.(*packet.Puback); ok {
				acked++
				credits <- struct{}{}
			}
		}
		readErr <- nil
	}()
	for i := 0; i < f.Messages; i++ {
		select {
		case <-credits:
		default:
			if err := c.flush(); err != nil {
				return err
			}
			select {
			case <-credits:
			case err := <-readErr:
				return fmt.Errorf("reading acks: %v", err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		p.PacketID = uint16(i%65535) + 1
		if err := c.write(p); err != nil {
			return err
		}
	}
	if err := c.flush(); err != nil {
		return err
	}
	return <-readErr
}

func (f FanIn) receive(c *client, total int, received, last *atomic.Int64) error {
	for received.Load() < int64(total) {
		c.conn.SetReadDeadline(time.Now().Add(f.Idle))
		p, err := c.read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, io.EOF) {
				return nil // the rest is lost
			}
			return fmt.Errorf("subscriber: %w", err)
		}
		pub, ok := p.(*packet.Publish)
		if !ok {
			continue
		}
		received.Add(1)
		last.Store(time.Now().UnixNano())
		if pub.QoS == 1 {
			if err := c.write(&packet.Puback{PacketID: pub.PacketID}); err != nil {
				return err
			}
			if c.r.Buffered() == 0 {
				if err := c.flush(); err != nil {
					return err
				}
			}
		}
	}
	return c.flush()
}
