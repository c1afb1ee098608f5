package e2e

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// pausedSubscriber subscribes as sub on a new connection and then reads
// nothing until resume is closed; it returns the channel its receive
// loop's end is sent on.
func pausedSubscriber(t *testing.T, addr string, sub *subscriber, clean bool, resume, stop <-chan struct{}) <-chan error {
	t.Helper()
	c, _, err := dialRaw(addr, sub.id, clean)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.conn.Close() })
	if err := c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: sub.filter, QoS: sub.qos}}}); err != nil {
		t.Fatal(err)
	}
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if p, err := c.read(); err != nil {
		t.Fatalf("no SUBACK: %v", err)
	} else if _, ok := p.(*packet.Suback); !ok {
		t.Fatalf("got %v, want SUBACK", p)
	}
	c.conn.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		select {
		case <-resume:
		case <-stop:
			done <- nil
			return
		}
		done <- sub.runOn(c, stop)
	}()
	return done
}

// TestSlowPersistentSubscriber: a persistent subscriber that stops reading
// while 100,000 QoS 1 messages are acknowledged to their publisher gets
// every one, in order, once it reads again; meanwhile the hub keeps no
// more of them in memory than mqtt.max_queued_offline (the rest waits in
// the store).
func TestSlowPersistentSubscriber(t *testing.T) {
	count := 100_000
	if testing.Short() {
		count = 20_000
	}
	const memoryBound = 1000
	n := startFerry(t, func(c *config.Config) { c.MQTT.MaxQueuedOffline = memoryBound })
	addr := n.MQTTAddr().String()
	sub := &subscriber{id: "slow-sub", filter: "slow/#", qos: 1, counts: map[int]int{}, held: map[uint16]heldMessage{}}
	resume, stop := make(chan struct{}), make(chan struct{})
	done := pausedSubscriber(t, addr, sub, false, resume, stop)

	var peak atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if q := int64(n.Hub().Stats().Queued); q > peak.Load() {
				peak.Store(q)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	publishPipelined(t, addr, "slow-pub", "slow/x", 1, count, 64)
	st := n.Hub().Stats()
	if st.Spills == 0 {
		t.Errorf("the subscriber's queue never spilled into the store: %+v", st)
	}
	close(resume)
	sub.waitAll(t, count)
	close(stop)
	<-done
	<-sampled
	if p := peak.Load(); p > memoryBound {
		t.Errorf("the hub held %d messages in memory, over the bound of %d", p, memoryBound)
	}
	if b := sub.resentBreaks + sub.unexplainedBreaks; b > 0 {
		t.Errorf("%d messages out of order, e.g. %v", b, sub.examples)
	}
	if d := n.Hub().Stats().Dropped; d != 0 {
		t.Errorf("%d deliveries dropped", d)
	}
	t.Logf("%d messages; peak in memory %d; spills %d, refills %d", count, peak.Load(), st.Spills, n.Hub().Stats().Refills)
}

// TestSlowCleanSubscriber: a clean-session subscriber that stops reading
// slows its QoS 1 publisher (PUBACKs wait) instead of losing messages; once
// it reads again, every message arrives and the publisher finishes.
func TestSlowCleanSubscriber(t *testing.T) {
	const count = 20_000
	n := startFerry(t, func(c *config.Config) { c.MQTT.MaxQueuedOffline = 500 })
	addr := n.MQTTAddr().String()
	sub := &subscriber{id: "slow-clean", filter: "slowc/#", qos: 1, counts: map[int]int{}, held: map[uint16]heldMessage{}}
	resume, stop := make(chan struct{}), make(chan struct{})
	done := pausedSubscriber(t, addr, sub, true, resume, stop)
	published := make(chan error, 1)
	go func() { published <- pipelined(addr, "slowc-pub", "slowc/x", 1, count, 64) }()
	waitFor(t, "the publisher made to wait", func() bool { return n.Hub().Stats().Blocked > 0 })
	select {
	case <-published:
		t.Fatal("the publisher finished while the subscriber read nothing: messages were dropped or held without bound")
	default:
	}
	close(resume)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	sub.waitAll(t, count)
	close(stop)
	<-done
	if d := n.Hub().Stats().Dropped; d != 0 {
		t.Errorf("%d deliveries dropped", d)
	}
	if b := sub.resentBreaks + sub.unexplainedBreaks; b > 0 {
		t.Errorf("%d messages out of order, e.g. %v", b, sub.examples)
	}
}
