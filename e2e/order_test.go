package e2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// publishPipelined sends messages 0..count-1 on topic at qos as a fast
// client does: up to window unacknowledged at once (QoS 2: PUBREL sent as
// each PUBREC arrives). It returns once every message is acknowledged.
func publishPipelined(t *testing.T, addr, id, topic string, qos byte, count, window int) {
	t.Helper()
	if err := pipelined(addr, id, topic, qos, count, window); err != nil {
		t.Fatal(err)
	}
}

// pipelined is publishPipelined for any goroutine.
func pipelined(addr, id, topic string, qos byte, count, window int) error {
	c, _, err := dialRaw(addr, id, true)
	if err != nil {
		return err
	}
	defer c.conn.Close()
	slots := make(chan struct{}, window)
	readErr := make(chan error, 1)
	go func() {
		for done := 0; done < count; {
			c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			p, err := c.read()
			if err != nil {
				readErr <- err
				return
			}
			switch p := p.(type) {
			case *packet.Puback:
				done++
				<-slots
			case *packet.Pubrec:
				c.send(&packet.Pubrel{PacketID: p.PacketID})
			case *packet.Pubcomp:
				done++
				<-slots
			}
		}
		readErr <- nil
	}()
	for i := range count {
		select {
		case slots <- struct{}{}:
		case err := <-readErr:
			return fmt.Errorf("publisher: %v after %d messages", err, i)
		}
		pid := uint16(i%60000 + 1)
		if err := c.send(&packet.Publish{Topic: topic, QoS: qos, PacketID: pid, Payload: []byte(strconv.Itoa(i))}); err != nil {
			return err
		}
	}
	if err := <-readErr; err != nil {
		return fmt.Errorf("publisher: %v", err)
	}
	return nil
}

// TestDeliveryOrder: what one publisher sends at QoS 1 or 2 reaches a
// subscriber in the order sent [MQTT-4.6.0-6], to clean and persistent
// sessions, online and as the backlog a persistent session finds when it
// comes back. QoS 2 also arrives exactly once.
func TestDeliveryOrder(t *testing.T) {
	const count = 2000
	n := startFerry(t)
	addr := n.MQTTAddr().String()
	for _, tc := range []struct {
		qos     byte
		clean   bool
		backlog bool
	}{
		{1, true, false}, {1, false, false}, {1, false, true},
		{2, true, false}, {2, false, false}, {2, false, true},
	} {
		name := fmt.Sprintf("qos%d/clean=%v/backlog=%v", tc.qos, tc.clean, tc.backlog)
		t.Run(name, func(t *testing.T) {
			topic := "order/" + name
			sub := &subscriber{id: "order-sub-" + name, filter: topic, qos: tc.qos, counts: map[int]int{},
				held: map[uint16]heldMessage{}, subacked: make(chan struct{}, 2)}
			// Everyone of the earlier cases is gone.
			waitFor(t, "earlier clients gone", func() bool { return n.Hub().Stats().Connected == 0 })
			stop := make(chan struct{})
			ran := make(chan error, 1)
			subscribe := func() {
				// subscriber.run uses clean session 0; a clean subscriber
				// is one whose session is started clean first.
				if tc.clean {
					c, _, err := dialRaw(addr, sub.id, true)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { c.conn.Close() })
					go func() { ran <- sub.runOn(c, stop) }()
				} else {
					go func() { ran <- sub.run(addr, stop) }()
				}
				select {
				case <-sub.subacked:
				case err := <-ran:
					t.Fatalf("subscriber: %v", err)
				case <-time.After(10 * time.Second):
					t.Fatal("no SUBACK")
				}
			}
			subscribe()
			if tc.backlog {
				close(stop)
				<-ran
				waitFor(t, "the subscriber gone", func() bool { return n.Hub().Stats().Connected == 0 })
			}
			publishPipelined(t, addr, "order-pub-"+name, topic, tc.qos, count, 64)
			if tc.backlog {
				stop = make(chan struct{})
				subscribe()
			}
			sub.waitAll(t, count)
			close(stop)
			<-ran
			sub.mu.Lock()
			defer sub.mu.Unlock()
			if b := sub.resentBreaks + sub.unexplainedBreaks; b > 0 {
				t.Errorf("%d of %d messages out of order, e.g. %v", b, count, sub.examples)
			}
			if tc.qos == 2 {
				for m, c := range sub.counts {
					if c > 1 {
						t.Errorf("message %d delivered %d times at QoS 2", m, c)
						break
					}
				}
			}
		})
	}
}
