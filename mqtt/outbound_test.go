package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

func mustSend(t *testing.T, c *mqtt.Conn, p *packet.Publish) {
	t.Helper()
	if err := c.Send(p); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

func expectPublish(t *testing.T, c *client, id uint16, payload string) *packet.Publish {
	t.Helper()
	p := expect[*packet.Publish](c)
	if p.PacketID != id || string(p.Payload) != payload {
		t.Fatalf("PUBLISH id %d %q, want id %d %q", p.PacketID, p.Payload, id, payload)
	}
	return p
}

func TestOutboundQoS1Window(t *testing.T) {
	h := newTestHandler()
	c, sc, _ := connected(t, h, packet.V311, func(s *mqtt.Server) { s.MaxInflight = 2 })
	for i := range 5 {
		mustSend(t, sc, &packet.Publish{QoS: 1, Topic: "t", Payload: fmt.Appendf(nil, "m%d", i)})
	}
	expectPublish(t, c, 1, "m0")
	expectPublish(t, c, 2, "m1")
	c.ping() // nothing beyond the window was sent
	c.send(&packet.Puback{PacketID: 1})
	expectPublish(t, c, 3, "m2")
	if p := recv(t, h.delivered, "Delivered"); string(p.Payload) != "m0" {
		t.Fatalf("Delivered %q", p.Payload)
	}
	c.send(&packet.Puback{PacketID: 2}, &packet.Puback{PacketID: 3})
	expectPublish(t, c, 4, "m3")
	expectPublish(t, c, 5, "m4")
	c.send(&packet.Puback{PacketID: 4}, &packet.Puback{PacketID: 5})
	for i := 1; i < 5; i++ {
		if p := recv(t, h.delivered, "Delivered"); string(p.Payload) != fmt.Sprintf("m%d", i) {
			t.Fatalf("Delivered %q", p.Payload)
		}
	}
	c.send(&packet.Puback{PacketID: 9}) // unknown: ignored
	c.ping()
}

func TestOutboundQoS2(t *testing.T) {
	h := newTestHandler()
	c, sc, _ := connected(t, h, packet.V5, nil, func(p *packet.Connect) {
		p.Properties.ReceiveMaximum = u16(1) // the client's window wins over MaxInflight
	})
	mustSend(t, sc, &packet.Publish{QoS: 2, Topic: "t", Payload: []byte("a")})
	mustSend(t, sc, &packet.Publish{QoS: 2, Topic: "t", Payload: []byte("b")})
	expectPublish(t, c, 1, "a")
	c.ping()
	c.send(&packet.Pubrec{PacketID: 1})
	if rel := expect[*packet.Pubrel](c); rel.PacketID != 1 {
		t.Fatalf("PUBREL %+v", rel)
	}
	c.ping() // still in the window until PUBCOMP
	c.send(&packet.Pubcomp{PacketID: 1})
	expectPublish(t, c, 2, "b")
	recv(t, h.delivered, "Delivered")
	// A v5 PUBREC with an error code ends the exchange.
	c.send(&packet.Pubrec{PacketID: 2, ReasonCode: packet.QuotaExceeded})
	recv(t, h.delivered, "Delivered")
	c.send(&packet.Pubrec{PacketID: 77})
	if rel := expect[*packet.Pubrel](c); rel.PacketID != 77 || rel.ReasonCode != packet.PacketIdentifierNotFound {
		t.Fatalf("PUBREL %+v", rel)
	}
}

func TestOutboundIDsSkipInUse(t *testing.T) {
	h := newTestHandler()
	c, sc, _ := connected(t, h, packet.V311, nil)
	// A retransmission keeps its id; allocation skips it.
	mustSend(t, sc, &packet.Publish{QoS: 1, Dup: true, PacketID: 3, Topic: "t", Payload: []byte("r")})
	if p := expectPublish(t, c, 3, "r"); !p.Dup {
		t.Fatal("retransmission without DUP")
	}
	for i, id := range []uint16{1, 2, 4, 5} {
		mustSend(t, sc, &packet.Publish{QoS: 1, Topic: "t", Payload: fmt.Appendf(nil, "%d", i)})
		if p := expectPublish(t, c, id, fmt.Sprint(i)); p.Dup {
			t.Fatal("DUP on a new message")
		}
	}
}

func TestOutboundQoS0AndOversize(t *testing.T) {
	h := newTestHandler()
	c, sc, _ := connected(t, h, packet.V5, nil, func(p *packet.Connect) {
		p.Properties.MaximumPacketSize = u32(64)
	})
	mustSend(t, sc, &packet.Publish{Topic: "t", Payload: make([]byte, 100)}) // dropped
	mustSend(t, sc, &packet.Publish{QoS: 1, Topic: "t", Payload: make([]byte, 100)})
	mustSend(t, sc, &packet.Publish{Topic: "t", Payload: []byte("small")})
	expectPublish(t, c, 0, "small")
	if n := sc.Dropped(); n != 2 {
		t.Fatalf("Dropped %d, want 2", n)
	}
	// The dropped QoS 1 message freed its id.
	mustSend(t, sc, &packet.Publish{QoS: 1, Topic: "t", Payload: []byte("q")})
	expectPublish(t, c, 2, "q")
}

func TestSendDuringOpenAndQueueFull(t *testing.T) {
	h := newTestHandler()
	errs := make(chan error, 10)
	h.open = func(c *mqtt.Conn) bool {
		for i := range 4 {
			errs <- c.Send(&packet.Publish{QoS: byte(i % 2), Topic: "t", Payload: fmt.Appendf(nil, "%d", i)})
		}
		return false
	}
	_, addr := startServer(t, h, func(s *mqtt.Server) { s.MaxQueued = 3 })
	c := dial(t, addr, packet.V311)
	c.connect("q") // CONNACK comes first
	for i := range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := <-errs; !errors.Is(err, mqtt.ErrQueueFull) {
		t.Fatalf("4th Send: %v, want ErrQueueFull", err)
	}
	expectPublish(t, c, 0, "0")
	expectPublish(t, c, 1, "1")
	expectPublish(t, c, 0, "2")
}

func TestUnacked(t *testing.T) {
	h := newTestHandler()
	c, sc, _ := connected(t, h, packet.V311, func(s *mqtt.Server) { s.MaxInflight = 2 })
	mustSend(t, sc, &packet.Publish{QoS: 1, Topic: "t", Payload: []byte("a")})
	mustSend(t, sc, &packet.Publish{QoS: 2, Topic: "t", Payload: []byte("b")})
	mustSend(t, sc, &packet.Publish{QoS: 1, Topic: "t", Payload: []byte("c")})
	mustSend(t, sc, &packet.Publish{QoS: 0, Topic: "t", Payload: []byte("d")})
	expectPublish(t, c, 1, "a")
	expectPublish(t, c, 2, "b")
	expectPublish(t, c, 0, "d")
	c.send(&packet.Pubrec{PacketID: 2})
	expect[*packet.Pubrel](c)
	c.nc.Close() // dropped without DISCONNECT
	ev := recv(t, h.disconnected, "Disconnected")
	if ev.err == nil {
		t.Fatal("Disconnected(nil) after a drop")
	}
	got := ev.unacked
	if len(got) != 3 {
		t.Fatalf("Unacked: %d messages", len(got))
	}
	for i, want := range []struct {
		payload string
		id      uint16
		dup     bool
	}{{"a", 1, true}, {"b", 2, true}, {"c", 0, false}} {
		if p := got[i]; string(p.Payload) != want.payload || p.PacketID != want.id || p.Dup != want.dup {
			t.Fatalf("Unacked[%d] = %q id %d dup %v, want %+v", i, p.Payload, p.PacketID, p.Dup, want)
		}
	}
}

func TestCloseFromHandler(t *testing.T) {
	h := newTestHandler()
	c, sc, _ := connected(t, h, packet.V5, nil)
	mustSend(t, sc, &packet.Publish{Topic: "t", Payload: []byte("last")})
	sc.Close(packet.AdministrativeAction)
	expectPublish(t, c, 0, "last") // queued output is flushed first
	c.expectDisconnect(packet.AdministrativeAction)
	ev := recv(t, h.disconnected, "Disconnected")
	var de *mqtt.DisconnectError
	if !errors.As(ev.err, &de) || de.Code != packet.AdministrativeAction || de.Remote {
		t.Fatalf("Disconnected(%v)", ev.err)
	}
	select {
	case <-sc.Context().Done():
	default:
		t.Fatal("Context not cancelled")
	}
}

func TestTakeover(t *testing.T) {
	for _, v := range versions() {
		t.Run(vname(v), func(t *testing.T) {
			h := newTestHandler()
			var first *mqtt.Conn
			openedAfterOld := make(chan bool, 2)
			h.open = func(c *mqtt.Conn) bool {
				if first != nil {
					select {
					case <-first.Done():
						openedAfterOld <- true
					default:
						openedAfterOld <- false
					}
				}
				return false
			}
			_, addr := startServer(t, h, nil)
			a := dial(t, addr, v)
			a.connect("same")
			first = recv(t, h.opened, "Open")
			b := dial(t, addr, v)
			b.connect("same")
			a.expectDisconnect(packet.SessionTakenOver)
			ev := recv(t, h.disconnected, "Disconnected")
			var de *mqtt.DisconnectError
			if ev.c != first || !errors.As(ev.err, &de) || de.Code != packet.SessionTakenOver {
				t.Fatalf("Disconnected(%v)", ev.err)
			}
			if !recv(t, openedAfterOld, "Open") {
				t.Fatal("new connection opened before the old one's Disconnected returned")
			}
			recv(t, h.opened, "Open")
			b.ping()
		})
	}
}

func TestShutdown(t *testing.T) {
	h := newTestHandler()
	srv, addr := startServer(t, h, nil)
	c5 := dial(t, addr, packet.V5)
	c5.connect("five")
	c3 := dial(t, addr, packet.V311)
	c3.connect("three")
	idle := dial(t, addr, packet.V311) // never sends CONNECT
	recv(t, h.opened, "Open")
	recv(t, h.opened, "Open")

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	c5.expectDisconnect(packet.ServerShuttingDown)
	c3.expectClosed()
	idle.expectClosed()
	if err := recv(t, done, "Shutdown"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range 2 {
		ev := recv(t, h.disconnected, "Disconnected")
		if !errors.Is(ev.err, mqtt.ErrServerClosed) {
			t.Fatalf("Disconnected(%v)", ev.err)
		}
	}
	if _, err := dialErr(addr); err == nil {
		t.Fatal("listener still accepting")
	}
}

func dialErr(addr string) (any, error) {
	nc, err := (&netDialer{}).dial(addr)
	if err == nil {
		nc.Close()
	}
	return nil, err
}

func TestShutdownBounded(t *testing.T) {
	h := newTestHandler()
	release := make(chan struct{})
	h.onDisconnct = func(c *mqtt.Conn, err error) { <-release }
	srv, addr := startServer(t, h, nil)
	c := dial(t, addr, packet.V311)
	c.connect("slow")
	recv(t, h.opened, "Open")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want DeadlineExceeded", err)
	}
	close(release)
	recv(t, h.disconnected, "Disconnected")
}

func TestWriteTimeout(t *testing.T) {
	h := newTestHandler()
	_, sc, _ := connected(t, h, packet.V311, func(s *mqtt.Server) {
		s.WriteTimeout = 200 * time.Millisecond
		s.MaxQueued = 1 << 20
	})
	// The client reads nothing: the socket buffers fill up and a write stalls.
	payload := make([]byte, 64<<10)
	for i := 0; i < 1024; i++ {
		if err := sc.Send(&packet.Publish{Topic: "t", Payload: payload}); err != nil {
			if !errors.Is(err, mqtt.ErrClosed) {
				t.Fatalf("Send: %v", err)
			}
			break
		}
	}
	ev := recv(t, h.disconnected, "Disconnected")
	var ne net.Error
	if !errors.As(ev.err, &ne) || !ne.Timeout() {
		t.Fatalf("Disconnected(%v), want a write timeout", ev.err)
	}
}

// TestConcurrentSend has several goroutines Send QoS 1 messages through a
// small window while the client acknowledges: everything arrives once, in
// each sender's order.
func TestConcurrentSend(t *testing.T) {
	const senders, each = 4, 200
	h := newTestHandler()
	c, sc, _ := connected(t, h, packet.V5, func(s *mqtt.Server) { s.MaxInflight = 8; s.MaxQueued = senders * each })
	errs := make(chan error, senders)
	for g := range senders {
		go func() {
			for i := range each {
				if err := sc.Send(&packet.Publish{QoS: 1, Topic: "t", Payload: []byte{byte(g), byte(i >> 8), byte(i)}}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	next := make([]int, senders)
	for range senders * each {
		p := expect[*packet.Publish](c)
		g, i := int(p.Payload[0]), int(p.Payload[1])<<8|int(p.Payload[2])
		if i != next[g] {
			t.Fatalf("sender %d: got message %d, want %d", g, i, next[g])
		}
		next[g]++
		c.send(&packet.Puback{PacketID: p.PacketID})
	}
	for range senders {
		if err := recv(t, errs, "sender"); err != nil {
			t.Fatal(err)
		}
	}
	for range senders * each {
		recv(t, h.delivered, "Delivered")
	}
}

func TestOutboundTopicAliases(t *testing.T) {
	tests := []struct {
		name      string
		clientMax *uint16
		enabled   bool
		// want lists, per message sent, the topic on the wire and the alias
		// (0: none).
		topics []string
		want   []struct {
			topic string
			alias uint16
		}
	}{
		{name: "client takes two", clientMax: u16(2), enabled: true, topics: []string{"a", "b", "a", "c", "b", "c"},
			want: []struct {
				topic string
				alias uint16
			}{{"a", 1}, {"b", 2}, {"", 1}, {"c", 0}, {"", 2}, {"c", 0}}},
		{name: "client takes none", enabled: true, topics: []string{"a", "a"},
			want: []struct {
				topic string
				alias uint16
			}{{"a", 0}, {"a", 0}}},
		{name: "off by default", clientMax: u16(5), topics: []string{"a", "a"},
			want: []struct {
				topic string
				alias uint16
			}{{"a", 0}, {"a", 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler()
			cl, conn, _ := connected(t, h, packet.V5, func(s *mqtt.Server) { s.OutboundTopicAliases = tt.enabled },
				func(p *packet.Connect) { p.Properties.TopicAliasMaximum = tt.clientMax })
			for _, topic := range tt.topics {
				if err := conn.Send(&packet.Publish{Topic: topic, Payload: []byte("x")}); err != nil {
					t.Fatal(err)
				}
			}
			for i, w := range tt.want {
				p := expect[*packet.Publish](cl)
				var alias uint16
				if p.Properties.TopicAlias != nil {
					alias = *p.Properties.TopicAlias
				}
				if p.Topic != w.topic || alias != w.alias {
					t.Errorf("message %d: topic %q alias %d, want %q alias %d", i, p.Topic, alias, w.topic, w.alias)
				}
			}
		})
	}
}
