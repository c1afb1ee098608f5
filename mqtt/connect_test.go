package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

func TestConnectV311(t *testing.T) {
	h := newTestHandler()
	keepAlive := make(chan uint16, 1)
	h.open = func(c *mqtt.Conn) bool {
		keepAlive <- c.Connect().KeepAlive
		return false
	}
	_, addr := startServer(t, h, nil)
	c := dial(t, addr, packet.V311)
	// Raw CONNECT: "MQTT" level 4, clean session, keep alive 60, id "a".
	c.raw(0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 'a')
	buf := make([]byte, 4)
	c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := c.br.Read(buf); err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x20, 2, 0, 0}; string(buf) != string(want) {
		t.Fatalf("CONNACK % x, want % x", buf, want)
	}
	sc := recv(t, h.opened, "Open")
	if ka := <-keepAlive; sc.ClientID() != "a" || sc.Version() != packet.V311 || ka != 60 || !sc.CleanStart() {
		t.Fatalf("conn: id %q version %d keep alive %d clean %v", sc.ClientID(), sc.Version(), ka, sc.CleanStart())
	}
	c.ping()
	c.raw(0xE0, 0) // DISCONNECT
	c.expectClosed()
	if ev := recv(t, h.disconnected, "Disconnected"); ev.err != nil {
		t.Fatalf("Disconnected(%v), want nil", ev.err)
	}
	select {
	case <-sc.Done():
	case <-time.After(waitTimeout):
		t.Fatal("Done not closed")
	}
	if err := sc.Send(&packet.Publish{Topic: "x"}); !errors.Is(err, mqtt.ErrClosed) {
		t.Fatalf("Send after close: %v", err)
	}
}

func TestConnectV31(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, h, nil)
	c := dial(t, addr, packet.V31)
	c.connect("old-client")
	c.ping()
}

func TestConnectV5(t *testing.T) {
	h := newTestHandler()
	h.connect = func(c *mqtt.Conn, p *packet.Connect) mqtt.ConnectResult {
		if !strings.HasPrefix(c.ClientID(), "ferry-") {
			t.Errorf("Connect sees client id %q", c.ClientID())
		}
		return mqtt.ConnectResult{Properties: packet.Properties{ReasonString: "welcome"}}
	}
	_, addr := startServer(t, h, func(s *mqtt.Server) { s.MaxPacketSize = 4096; s.ReceiveMaximum = 7 })
	c := dial(t, addr, packet.V5)
	ack := c.connect("", func(p *packet.Connect) { p.KeepAlive = 30 })
	pr := ack.Properties
	if pr.AssignedClientID == "" || pr.ReasonString != "welcome" ||
		pr.ReceiveMaximum == nil || *pr.ReceiveMaximum != 7 ||
		pr.MaximumPacketSize == nil || *pr.MaximumPacketSize != 4096 ||
		pr.TopicAliasMaximum == nil || *pr.TopicAliasMaximum != 10 || pr.ServerKeepAlive != nil {
		t.Fatalf("CONNACK properties %+v", pr)
	}
	sc := recv(t, h.opened, "Open")
	if sc.ClientID() != pr.AssignedClientID {
		t.Fatalf("ClientID %q, assigned %q", sc.ClientID(), pr.AssignedClientID)
	}
	c.ping()
}

func TestConnectRefused(t *testing.T) {
	for _, v := range versions() {
		t.Run(vname(v), func(t *testing.T) {
			h := newTestHandler()
			h.connect = func(c *mqtt.Conn, p *packet.Connect) mqtt.ConnectResult {
				return mqtt.ConnectResult{Code: packet.BadUserNameOrPassword}
			}
			_, addr := startServer(t, h, nil)
			c := dial(t, addr, v)
			c.send(&packet.Connect{ProtocolName: "MQTT", Version: v, CleanStart: true, ClientID: "x"})
			ack := expect[*packet.Connack](c)
			if ack.ReasonCode != packet.BadUserNameOrPassword {
				t.Fatalf("CONNACK %v", ack.ReasonCode)
			}
			c.expectClosed()
			noRecv(t, h.opened, "Open")
		})
	}
}

func TestUnsupportedVersion(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, h, nil)
	for _, level := range []byte{2, 6} {
		c := dial(t, addr, packet.V311)
		c.raw(0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', level, 0x02, 0, 60, 0, 1, 'a')
		buf := make([]byte, 8)
		c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
		n, _ := c.br.Read(buf)
		if want := []byte{0x20, 2, 0, 1}; string(buf[:n]) != string(want) {
			t.Fatalf("level %d: got % x, want CONNACK % x", level, buf[:n], want)
		}
		c.expectClosed()
	}
}

func TestEmptyClientIDV311(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, h, nil)
	c := dial(t, addr, packet.V311)
	// CONNECT "MQTT" level 4 without clean session, empty client id.
	c.raw(0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 60, 0, 0)
	ack := expect[*packet.Connack](c)
	if packet.ConnackReturnCodeV3(ack.ReasonCode) != 2 {
		t.Fatalf("CONNACK %v, want return code 2", ack.ReasonCode)
	}
	c.expectClosed()

	c = dial(t, addr, packet.V311)
	c.connect("")
	if sc := recv(t, h.opened, "Open"); sc.ClientID() == "" {
		t.Fatal("no client id assigned")
	}
}

func TestConnectTimeout(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, h, func(s *mqtt.Server) { s.ConnectTimeout = 100 * time.Millisecond })
	c := dial(t, addr, packet.V311)
	start := time.Now()
	c.expectClosed()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

func TestFirstPacketNotConnect(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, h, nil)
	c := dial(t, addr, packet.V311)
	c.raw(0xC0, 0) // PINGREQ
	c.expectClosed()
}

func TestSecondConnect(t *testing.T) {
	for _, v := range versions() {
		t.Run(vname(v), func(t *testing.T) {
			h := newTestHandler()
			c, _, _ := connected(t, h, v, nil)
			c.send(&packet.Connect{ProtocolName: "MQTT", Version: v, CleanStart: true, ClientID: "c1"})
			c.expectDisconnect(packet.ProtocolError)
			ev := recv(t, h.disconnected, "Disconnected")
			var de *mqtt.DisconnectError
			if !errors.As(ev.err, &de) || de.Code != packet.ProtocolError || de.Remote {
				t.Fatalf("Disconnected(%v)", ev.err)
			}
		})
	}
}

func TestKeepAlive(t *testing.T) {
	for _, v := range versions() {
		t.Run(vname(v), func(t *testing.T) {
			h := newTestHandler()
			c, _, _ := connected(t, h, v, nil, func(p *packet.Connect) { p.KeepAlive = 1 })
			c.ping() // resets nothing in the test, but must be answered
			start := time.Now()
			c.expectDisconnect(packet.KeepAliveTimeout)
			if d := time.Since(start); d < time.Second || d > 3*time.Second {
				t.Fatalf("keep alive expired after %v, want about 1.5 s", d)
			}
			ev := recv(t, h.disconnected, "Disconnected")
			var de *mqtt.DisconnectError
			if !errors.As(ev.err, &de) || de.Code != packet.KeepAliveTimeout {
				t.Fatalf("Disconnected(%v)", ev.err)
			}
		})
	}
}

func TestServerKeepAlive(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, h, func(s *mqtt.Server) { s.MaxKeepAlive = 1 })
	c := dial(t, addr, packet.V5)
	ack := c.connect("k", func(p *packet.Connect) { p.KeepAlive = 600 })
	if ka := ack.Properties.ServerKeepAlive; ka == nil || *ka != 1 {
		t.Fatalf("Server Keep Alive %v", ka)
	}
	c.expectDisconnect(packet.KeepAliveTimeout)
}

func TestClientDisconnect(t *testing.T) {
	h := newTestHandler()
	c, sc, _ := connected(t, h, packet.V5, nil, func(p *packet.Connect) {
		p.Properties.SessionExpiryInterval = u32(60)
	})
	if sc.SessionExpiry() != 60 {
		t.Fatalf("SessionExpiry %d", sc.SessionExpiry())
	}
	c.send(&packet.Disconnect{ReasonCode: packet.DisconnectWithWill, Properties: packet.Properties{SessionExpiryInterval: u32(5)}})
	c.expectClosed()
	ev := recv(t, h.disconnected, "Disconnected")
	var de *mqtt.DisconnectError
	if !errors.As(ev.err, &de) || de.Code != packet.DisconnectWithWill || !de.Remote {
		t.Fatalf("Disconnected(%v)", ev.err)
	}
	if sc.SessionExpiry() != 5 {
		t.Fatalf("SessionExpiry %d after DISCONNECT", sc.SessionExpiry())
	}
}

func TestDisconnectSessionExpiryAfterZero(t *testing.T) {
	h := newTestHandler()
	c, _, _ := connected(t, h, packet.V5, nil)
	c.send(&packet.Disconnect{Properties: packet.Properties{SessionExpiryInterval: u32(5)}})
	c.expectDisconnect(packet.ProtocolError)
}

func TestConnectWillOwned(t *testing.T) {
	h := newTestHandler()
	kept := make(chan *packet.Connect, 1)
	h.connect = func(c *mqtt.Conn, p *packet.Connect) mqtt.ConnectResult {
		kept <- p
		return mqtt.ConnectResult{}
	}
	c, _, _ := connected(t, h, packet.V311, nil, func(p *packet.Connect) {
		p.WillFlag, p.WillTopic, p.WillPayload = true, "will", []byte("bye")
	})
	// Overwrite the read buffer with other packets.
	for range 5 {
		c.send(&packet.Publish{Topic: "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", Payload: []byte("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")})
	}
	c.ping()
	if p := <-kept; p.WillTopic != "will" || string(p.WillPayload) != "bye" {
		t.Fatalf("will %q %q", p.WillTopic, p.WillPayload)
	}
}

func TestPipelinedAfterConnect(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, h, nil)
	c := dial(t, addr, packet.V5)
	// CONNECT, PUBLISH and PINGREQ in one write, before any CONNACK.
	c.send(&packet.Connect{ProtocolName: "MQTT", Version: packet.V5, CleanStart: true, ClientID: "p"},
		&packet.Publish{Topic: "early", Payload: []byte("x")},
		&packet.Pingreq{})
	if ack := expect[*packet.Connack](c); ack.ReasonCode != packet.Success {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	expect[*packet.Pingresp](c)
	if p := recv(t, h.published, "Publish"); p.Topic != "early" {
		t.Fatalf("published %+v", p)
	}
}

// TestIdleConnectionsPark checks that idle connections park (no reader
// goroutine) and that parked connections still read, write, time out and
// close.
func TestIdleConnectionsPark(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("connections park on Linux only")
	}
	h := newTestHandler()
	srv, addr := startServer(t, h, func(s *mqtt.Server) { s.IdlePark = 10 * time.Millisecond })
	const n = 10
	clients := make([]*client, n)
	conns := make([]*mqtt.Conn, n)
	for i := range n {
		c := dial(t, addr, packet.V311)
		c.connect(fmt.Sprint("idle-", i))
		conns[i] = recv(t, h.opened, "Open")
		c.ping()
		c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a"}}})
		expect[*packet.Suback](c)
		clients[i] = c
	}
	waitParked(t, srv, n)

	// A parked connection wakes for bytes, and parks again.
	for _, c := range clients {
		c.ping()
	}
	// Sends reach parked connections (the writer is independent).
	for i, sc := range conns {
		if err := sc.Send(&packet.Publish{Topic: "a", Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range clients {
		if p := expect[*packet.Publish](c); p.Payload[0] != byte(i) {
			t.Fatalf("client %d got %v", i, p.Payload)
		}
	}
	waitParked(t, srv, n)
	// A packet split across a park: the reader keeps the first half.
	raw, _ := (&packet.Publish{Topic: "split", Payload: []byte("halves")}).Append(nil, packet.V311)
	clients[0].raw(raw[:5]...)
	waitParked(t, srv, n)
	clients[0].raw(raw[5:]...)
	if p := recv(t, h.published, "Publish"); p.Topic != "split" || string(p.Payload) != "halves" {
		t.Fatalf("published %q %q", p.Topic, p.Payload)
	}
	waitParked(t, srv, n)

	// Closing by the server ends parked connections.
	conns[1].Close(packet.AdministrativeAction)
	clients[1].expectClosed()
	recv(t, h.disconnected, "Disconnected")
	// So does the client's hang-up.
	clients[2].nc.Close()
	recv(t, h.disconnected, "Disconnected")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients[3:] {
		c.expectClosed()
	}
}

// TestParkedKeepAlive checks that the keep alive of a parked connection is
// enforced.
func TestParkedKeepAlive(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, h, func(s *mqtt.Server) { s.IdlePark = 10 * time.Millisecond })
	c := dial(t, addr, packet.V5)
	c.connect("ka", func(p *packet.Connect) { p.KeepAlive = 1 })
	start := time.Now()
	c.expectDisconnect(packet.KeepAliveTimeout)
	if d := time.Since(start); d < time.Second {
		t.Fatalf("closed after %v, keep alive 1 s (1.5 s with grace)", d)
	}
	if ev := recv(t, h.disconnected, "Disconnected"); ev.err == nil {
		t.Fatal("Disconnected without error")
	}
}

func waitParked(t *testing.T, srv *mqtt.Server, want int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for srv.Parked() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections parked, want %d", srv.Parked(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMalformedConnect(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, h, nil)
	// v5 CONNECT with the reserved flag set: a v5 CONNACK 0x81.
	c := dial(t, addr, packet.V5)
	c.raw(0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x03, 0, 60, 0, 0, 1, 'a')
	if ack := expect[*packet.Connack](c); ack.ReasonCode != packet.MalformedPacket {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	c.expectClosed()
	// The same in 3.1.1: closed without CONNACK.
	c = dial(t, addr, packet.V311)
	c.raw(0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x03, 0, 60, 0, 1, 'a')
	c.expectClosed()
	noRecv(t, h.opened, "Open")
}
