package bench

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// lossyBroker is a tiny MQTT 3.1.1 broker for tests of the loss counting:
// it forwards the n-th PUBLISH it receives (counting from 0, across all
// clients) to every subscriber only when keep(n) holds. Every subscription
// matches every topic.
type lossyBroker struct {
	ln   net.Listener
	keep func(n int) bool

	mu   sync.Mutex
	n    int
	subs []*lossyConn
}

type lossyConn struct {
	mu sync.Mutex
	c  net.Conn
}

func (c *lossyConn) send(p packet.Packet) {
	b, err := p.Append(nil, packet.V311)
	if err != nil {
		panic(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.c.Write(b)
}

func startLossyBroker(t *testing.T, keep func(int) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &lossyBroker{ln: ln, keep: keep}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, s := range b.subs {
			s.c.Close()
		}
		b.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { b.serve(&lossyConn{c: c}) })
		}
	})
	return ln.Addr().String()
}

func (b *lossyBroker) serve(c *lossyConn) {
	defer c.c.Close()
	r := bufio.NewReader(c.c)
	body := make([]byte, 0, 1024)
	for {
		h, err := packet.ReadHeader(r)
		if err != nil {
			return
		}
		body = body[:h.Remaining]
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		p, err := packet.Decode(h, body, packet.V311)
		if err != nil {
			return
		}
		switch p := p.(type) {
		case *packet.Connect:
			c.send(&packet.Connack{})
		case *packet.Subscribe:
			b.mu.Lock()
			b.subs = append(b.subs, c)
			b.mu.Unlock()
			c.send(&packet.Suback{PacketID: p.PacketID, ReasonCodes: []packet.ReasonCode{packet.ReasonCode(p.Subscriptions[0].QoS)}})
		case *packet.Publish:
			if p.QoS == 1 {
				c.send(&packet.Puback{PacketID: p.PacketID})
			}
			b.mu.Lock()
			keep := b.keep(b.n)
			b.n++
			subs := b.subs
			b.mu.Unlock()
			if keep {
				out := &packet.Publish{Topic: p.Topic, QoS: p.QoS, PacketID: 1, Payload: append([]byte(nil), p.Payload...)}
				for _, s := range subs {
					s.send(out)
				}
			}
		case *packet.Pingreq:
			c.send(&packet.Pingresp{})
		case *packet.Disconnect:
			return
		}
	}
}

// everyOther keeps the even-numbered messages. The subscriber waits a
// second after the last one before it counts the rest as lost: the result
// does not depend on timing unless the machine stalls for that long.
func everyOther(n int) bool { return n%2 == 0 }

func TestFanInCountsLoss(t *testing.T) {
	addr := startLossyBroker(t, everyOther)
	for _, qos := range []byte{0, 1} {
		f := FanIn{Addr: addr, Publishers: 2, Messages: 50, QoS: qos, Window: 4, Idle: time.Second}
		res, err := f.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// The broker's counter runs on across runs: 50 of the 100 each time.
		if res.Sent != 100 || res.Received != 50 || res.Loss() != 0.5 {
			t.Errorf("QoS %d: %v, want 100 sent, 50 received, loss 50%%", qos, res)
		}
		if m := res.Metrics("fanin", "msgs/s"); m[0].Loss != 0.5 {
			t.Errorf("metric loss %v", m[0].Loss)
		}
	}
}

func TestFanOutCountsLoss(t *testing.T) {
	addr := startLossyBroker(t, func(n int) bool { return n < 30 })
	f := FanOut{Addr: addr, Subscribers: 4, Messages: 40, Idle: time.Second}
	res, err := f.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 160 || res.Received != 120 || res.Loss() != 0.25 {
		t.Errorf("%v, want 160 expected, 120 delivered, loss 25%%", res)
	}
}

func TestLatencyCountsLoss(t *testing.T) {
	addr := startLossyBroker(t, everyOther)
	l := Latency{Addr: addr, Rate: 1000, Duration: 100 * time.Millisecond, Warmup: 20 * time.Millisecond, Idle: time.Second}
	res, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Messages 0, 2, ..., 98 arrive; of those, 20, 22, ... 98 are past the
	// warm-up.
	if res.Sent != 100 || res.Received != 50 || res.Samples != 40 || res.Loss() != 0.5 {
		t.Errorf("%v, want 100 sent, 50 received, 40 samples", res)
	}
	for _, m := range res.Metrics("lat") {
		if m.Loss != 0.5 {
			t.Errorf("metric %v: loss %v", m.Name, m.Loss)
		}
	}
}
