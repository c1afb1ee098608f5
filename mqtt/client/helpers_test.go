package client

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/peertest"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Ferry runs as a child process built from cmd/ferry: internal/lint lets
// the engines' tests import nothing of internal/ but internal/peertest, so
// internal/node cannot be started in-process here.
var ferryBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if ferryBuild.dir != "" {
		os.RemoveAll(ferryBuild.dir)
	}
	os.Exit(code)
}

func ferryBinary(t testing.TB) string {
	t.Helper()
	b := &ferryBuild
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "ferry-client-test-")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "ferry")
		goBin, err := exec.LookPath("go")
		if err != nil {
			b.err = err
			return
		}
		out, err := exec.Command(goBin, "build", "-o", b.path, "github.com/ferry-iot/ferry/cmd/ferry").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build ./cmd/ferry: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ferry is a running Ferry: its MQTT address and, if asked for, its
// WebSocket one.
type ferry struct{ addr, wsAddr string }

// startFerry runs Ferry until the test ends; mqttYAML is added to the mqtt
// section of its configuration (indented by four spaces).
func startFerry(t testing.TB, mqttYAML string) ferry {
	t.Helper()
	bin := ferryBinary(t)
	dir := t.TempDir()
	f := ferry{addr: freePort(t), wsAddr: freePort(t)}
	cfg := fmt.Sprintf(`data_dir: %s
log:
  level: warn
http:
  addr: ""
amqp:
  addr: ""
  app_addr: ""
mqtt:
  addr: %s
  sys_interval: 0s
  disconnect_linger: 0s
  websocket:
    addr: %s
%s`, filepath.Join(dir, "data"), f.addr, f.wsAddr, mqttYAML)
	path := filepath.Join(dir, "ferry.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, f.addr, bin, "serve", "--config", path)
	waitDial(t, f.wsAddr)
	return f
}

// startMosquitto runs the mosquitto broker on a free port until the test
// ends, or ends the test through peertest when it is not installed.
func startMosquitto(t testing.TB, conf string) string {
	t.Helper()
	bin := peertest.Program(t, "mosquitto", "mosquitto")
	addr := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	path := filepath.Join(t.TempDir(), "mosquitto.conf")
	cfg := "listener " + port + " 127.0.0.1\nallow_anonymous true\npersistence false\n" + conf
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, addr, bin, "-c", path)
	return addr
}

// syncBuffer is the output of a child process, read by the test while
// the process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProcess(t testing.TB, addr, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), out.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited: %s", bin, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s: %s", bin, addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitDial(t testing.TB, addr string) {
	t.Helper()
	waitFor(t, "listener "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// waitFor polls cond until it holds or 10 s passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect connects with opts until the test ends.
func connect(t testing.TB, opts Options) *Client {
	t.Helper()
	c, err := Connect(testContext(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// collector gathers inbound messages.
type collector struct {
	mu   sync.Mutex
	msgs []*Message
}

func (c *collector) handle(m *Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
}

func (c *collector) list() []*Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Message(nil), c.msgs...)
}

func (c *collector) count(payload string) int {
	n := 0
	for _, m := range c.list() {
		if string(m.Payload) == payload {
			n++
		}
	}
	return n
}

func subscribe(t testing.TB, c *Client, filter string, qos byte) {
	t.Helper()
	ack, err := c.Subscribe(testContext(t), &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}})
	if err != nil {
		t.Fatal(err)
	}
	if ack.ReasonCodes[0].IsError() {
		t.Fatalf("subscribe %s: %v", filter, ack.ReasonCodes[0])
	}
}

// proxy relays TCP connections to a server. The test may drop every
// connection, or mute the server's direction so that acknowledgements get
// lost while the server has the messages.
type proxy struct {
	ln     net.Listener
	target string
	mute   atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.drop() })
	go p.accept()
	return p
}

func (p *proxy) addr() string { return "tcp://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { io.Copy(s, c); s.Close() }()
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 && !p.mute.Load() {
					c.Write(buf[:n])
				}
				if err != nil {
					c.Close()
					return
				}
			}
		}()
	}
}

// drop closes every connection, as a server or a network that fails.
func (p *proxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// fakeServer is the server side of a net.Pipe, for tests that need a
// server that misbehaves: Options.Dial hands the client the other side.
type fakeServer struct {
	t     testing.TB
	conns chan net.Conn
}

func newFakeServer(t testing.TB) *fakeServer {
	return &fakeServer{t: t, conns: make(chan net.Conn, 4)}
}

func (f *fakeServer) dial(ctx context.Context) (net.Conn, error) {
	c, s := net.Pipe()
	f.conns <- s
	return c, nil
}

// fakeConn is one accepted connection of a fakeServer.
type fakeConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
	v  packet.Version
}

func (f *fakeServer) accept() *fakeConn {
	f.t.Helper()
	select {
	case nc := <-f.conns:
		f.t.Cleanup(func() { nc.Close() })
		return &fakeConn{t: f.t, nc: nc, br: bufio.NewReader(nc), v: packet.V5}
	case <-time.After(10 * time.Second):
		f.t.Fatal("client did not dial")
		return nil
	}
}

func (c *fakeConn) read() packet.Packet {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := packet.Read(c.br, c.v)
	if err != nil {
		c.t.Fatalf("fake server read: %v", err)
	}
	return p
}

func (c *fakeConn) write(p packet.Packet) {
	c.t.Helper()
	b, err := p.Append(nil, c.v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("fake server write: %v", err)
	}
}

// handshake reads CONNECT and answers ack.
func (c *fakeConn) handshake(ack *packet.Connack) *packet.Connect {
	c.t.Helper()
	p, ok := c.read().(*packet.Connect)
	if !ok {
		c.t.Fatal("first packet is not CONNECT")
	}
	c.v = p.Version
	c.write(ack)
	return p
}

// connectFake connects a client to a new fake server and returns both.
func connectFake(t testing.TB, opts Options, ack *packet.Connack) (*Client, *fakeConn) {
	t.Helper()
	f := newFakeServer(t)
	opts.Dial = f.dial
	type result struct {
		c   *Client
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := Connect(testContext(t), opts)
		res <- result{c, err}
	}()
	fc := f.accept()
	fc.handshake(ack)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { fc.nc.Close(); r.c.Close() })
	return r.c, fc
}

func propsWithCorrelation(b []byte) packet.Properties {
	return packet.Properties{CorrelationData: b}
}
