package mqtt_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// waitTimeout bounds every wait of the tests.
const waitTimeout = 5 * time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		// Every goroutine of the library (and of the paho clients) must
		// have exited.
		deadline := time.Now().Add(waitTimeout)
		for leaked() != "" && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if l := leaked(); l != "" {
			fmt.Fprintf(os.Stderr, "goroutine leak:\n%s\n", l)
			code = 1
		}
	}
	os.Exit(code)
}

// leaked returns the stacks of the goroutines left running by this
// package's code or by paho.
func leaked() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var res []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "mqtt_test.TestMain") {
			continue
		}
		if strings.Contains(g, "ferry-iot/ferry/mqtt") || strings.Contains(g, "eclipse/paho") {
			res = append(res, g)
		}
	}
	return strings.Join(res, "\n\n")
}

type discEvent struct {
	c       *mqtt.Conn
	err     error
	unacked []*packet.Publish
}

// testHandler records the events; its func fields override the defaults
// (accept, no session, Success).
type testHandler struct {
	connect     func(c *mqtt.Conn, p *packet.Connect) mqtt.ConnectResult
	open        func(c *mqtt.Conn) bool
	publish     func(c *mqtt.Conn, p *packet.Publish) packet.ReasonCode
	subscribe   func(c *mqtt.Conn, p *packet.Subscribe) []packet.ReasonCode
	onDisconnct func(c *mqtt.Conn, err error)

	opened       chan *mqtt.Conn
	published    chan packet.Publish
	delivered    chan *packet.Publish
	disconnected chan discEvent
}

func newTestHandler() *testHandler {
	return &testHandler{
		opened:       make(chan *mqtt.Conn, 1000),
		published:    make(chan packet.Publish, 1000),
		delivered:    make(chan *packet.Publish, 1000),
		disconnected: make(chan discEvent, 1000),
	}
}

func (h *testHandler) Connect(c *mqtt.Conn, p *packet.Connect) mqtt.ConnectResult {
	if h.connect != nil {
		return h.connect(c, p)
	}
	return mqtt.ConnectResult{}
}

func (h *testHandler) Open(c *mqtt.Conn) bool {
	present := false
	if h.open != nil {
		present = h.open(c)
	}
	h.opened <- c
	return present
}

func (h *testHandler) Publish(c *mqtt.Conn, p *packet.Publish) packet.ReasonCode {
	cp := *p
	cp.Payload = append([]byte(nil), p.Payload...)
	h.published <- cp
	if h.publish != nil {
		return h.publish(c, p)
	}
	return packet.Success
}

func (h *testHandler) Subscribe(c *mqtt.Conn, p *packet.Subscribe) []packet.ReasonCode {
	if h.subscribe != nil {
		return h.subscribe(c, p)
	}
	codes := make([]packet.ReasonCode, len(p.Subscriptions))
	for i, s := range p.Subscriptions {
		codes[i] = packet.ReasonCode(s.QoS)
	}
	return codes
}

func (h *testHandler) Unsubscribe(c *mqtt.Conn, p *packet.Unsubscribe) []packet.ReasonCode {
	return make([]packet.ReasonCode, len(p.Filters))
}

func (h *testHandler) Disconnected(c *mqtt.Conn, err error) {
	if h.onDisconnct != nil {
		h.onDisconnct(c, err)
	}
	h.disconnected <- discEvent{c: c, err: err, unacked: c.Unacked()}
}

func (h *testHandler) Delivered(c *mqtt.Conn, p *packet.Publish) { h.delivered <- p }

func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func noRecv[T any](t testing.TB, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %+v", what, v)
	default:
	}
}

// startServer serves h on 127.0.0.1:0 until the test ends.
func startServer(t testing.TB, h mqtt.Handler, configure func(*mqtt.Server)) (*mqtt.Server, string) {
	t.Helper()
	srv := &mqtt.Server{Handler: h}
	if configure != nil {
		configure(srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return srv, serveOn(t, srv, l)
}

// serveOn serves srv on l until the test ends, and returns l's address.
func serveOn(t testing.TB, srv *mqtt.Server, l net.Listener) string {
	t.Helper()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, mqtt.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return l.Addr().String()
}

// client is a scripted raw-socket MQTT client.
type client struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
	v  packet.Version
}

func dial(t testing.TB, addr string, v packet.Version) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, br: bufio.NewReader(nc), v: v}
}

func (c *client) raw(b ...byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(ps ...packet.Packet) {
	c.t.Helper()
	var b []byte
	for _, p := range ps {
		var err error
		if b, err = p.Append(b, c.v); err != nil {
			c.t.Fatalf("encode %v: %v", p.Type(), err)
		}
	}
	c.raw(b...)
}

// readPacket reads one packet; err is io.EOF-like when the server closed.
func (c *client) readPacket() (packet.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	return packet.Read(c.br, c.v)
}

func (c *client) read() packet.Packet {
	c.t.Helper()
	p, err := c.readPacket()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

func expect[T packet.Packet](c *client) T {
	c.t.Helper()
	p := c.read()
	v, ok := p.(T)
	if !ok {
		c.t.Fatalf("got %v %+v, want %T", p.Type(), p, v)
	}
	return v
}

// expectClosed waits for the server to close the connection (or its side
// of it), then closes the client's side as a real client would: the server
// lingers until then.
func (c *client) expectClosed() {
	c.t.Helper()
	p, err := c.readPacket()
	if err == nil {
		c.t.Fatalf("got %v %+v, want the connection closed", p.Type(), p)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatalf("connection not closed: %v", err)
	}
	c.nc.Close()
}

// expectDisconnect expects a v5 DISCONNECT with code then the close (3.1.1:
// just the close).
func (c *client) expectDisconnect(code packet.ReasonCode) {
	c.t.Helper()
	if c.v == packet.V5 {
		d := expect[*packet.Disconnect](c)
		if d.ReasonCode != code {
			c.t.Fatalf("DISCONNECT %v, want %v", d.ReasonCode, code)
		}
	}
	c.expectClosed()
}

// connect sends CONNECT (clean start) and expects an accepting CONNACK.
func (c *client) connect(id string, modify ...func(*packet.Connect)) *packet.Connack {
	c.t.Helper()
	p := &packet.Connect{ProtocolName: "MQTT", Version: c.v, CleanStart: true, ClientID: id}
	if c.v == packet.V31 {
		p.ProtocolName = "MQIsdp"
	}
	for _, m := range modify {
		m(p)
	}
	c.send(p)
	ack := expect[*packet.Connack](c)
	if ack.ReasonCode != packet.Success {
		c.t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	return ack
}

// ping checks the connection is served.
func (c *client) ping() {
	c.t.Helper()
	c.send(&packet.Pingreq{})
	expect[*packet.Pingresp](c)
}

func u16(v uint16) *uint16 { return &v }
func u32(v uint32) *uint32 { return &v }

func versions() []packet.Version { return []packet.Version{packet.V311, packet.V5} }

func vname(v packet.Version) string {
	return strings.NewReplacer("4", "v3.1.1", "5", "v5", "3", "v3.1").Replace(fmt.Sprint(byte(v)))
}

// connected starts a server with h and returns a connected client and its
// server-side Conn.
func connected(t *testing.T, h *testHandler, v packet.Version, configure func(*mqtt.Server), modify ...func(*packet.Connect)) (*client, *mqtt.Conn, *mqtt.Server) {
	t.Helper()
	srv, addr := startServer(t, h, configure)
	c := dial(t, addr, v)
	c.connect("c1", modify...)
	sc := recv(t, h.opened, "Open")
	return c, sc, srv
}

var _ = sync.Mutex{}

type netDialer struct{}

func (netDialer) dial(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, time.Second)
}
