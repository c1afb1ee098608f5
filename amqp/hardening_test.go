package amqp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// These tests cover issue 11's AMQP items: bounded defaults and limits,
// sessions offered to the handler, contained handler panics, an accept
// loop that survives errors, and closes the peer can read.

func TestListenerDefaults(t *testing.T) {
	checkGoroutines(t)
	l := startListener(t, newTestBroker(), nil)
	p := dialFake(t, l)
	p.write(frame.Proto(frame.ProtoAMQP).AppendTo(nil))
	p.header()
	p.send(frame.TypeAMQP, 0, &frame.Open{ContainerID: "fake", MaxFrameSize: 1 << 16, ChannelMax: 100})
	o := expect[*frame.Open](p)
	if o.ChannelMax != DefaultChannelMax {
		t.Errorf("channel-max %d, want %d", o.ChannelMax, DefaultChannelMax)
	}
	if o.IdleTimeout != DefaultIdleTimeout {
		t.Errorf("idle-time-out %v, want %v", o.IdleTimeout, DefaultIdleTimeout)
	}
	p.send(frame.TypeAMQP, 0, &frame.Begin{IncomingWindow: 100, OutgoingWindow: 100, HandleMax: 1000})
	b := expect[*frame.Begin](p)
	if b.HandleMax != DefaultHandleMax {
		t.Errorf("handle-max %d, want %d", b.HandleMax, DefaultHandleMax)
	}
}

func TestListenerIdleTimeoutDisabled(t *testing.T) {
	checkGoroutines(t)
	l := startListener(t, newTestBroker(), &ListenerOptions{IdleTimeout: -1})
	p := dialFake(t, l)
	p.write(frame.Proto(frame.ProtoAMQP).AppendTo(nil))
	p.header()
	p.send(frame.TypeAMQP, 0, &frame.Open{ContainerID: "fake", MaxFrameSize: 1 << 16})
	if o := expect[*frame.Open](p); o.IdleTimeout != 0 {
		t.Fatalf("idle-time-out %v, want none", o.IdleTimeout)
	}
}

// sessionBroker is a testBroker that also decides on sessions.
type sessionBroker struct {
	*testBroker
	mu    sync.Mutex
	seen  []*SessionRequest
	allow func(req *SessionRequest) error
}

func (b *sessionBroker) HandleSession(req *SessionRequest) error {
	b.mu.Lock()
	b.seen = append(b.seen, req)
	b.mu.Unlock()
	return b.allow(req)
}

func TestSessionHandler(t *testing.T) {
	checkGoroutines(t)
	refused := &Error{Condition: frame.CondUnauthorizedAccess, Description: "no sessions for you"}
	n := 0
	b := &sessionBroker{testBroker: newTestBroker(), allow: func(req *SessionRequest) error {
		n++ // the reader goroutine of one connection: no lock needed
		if n == 2 {
			return refused
		}
		if n == 3 {
			return errors.New("boom")
		}
		return nil
	}}
	l := startListener(t, b.testBroker, &ListenerOptions{Handler: b})
	c := dialTest(t, l, nil)
	ctx := testCtx(t)
	s1, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []frame.Condition{frame.CondUnauthorizedAccess, frame.CondInternalError} {
		err := refusedSession(t, c)
		var se *SessionError
		if !errors.As(err, &se) || se.RemoteErr == nil || se.RemoteErr.Condition != want {
			t.Fatalf("refused session: %v, want %s", err, want)
		}
	}
	// The connection and the accepted session live on.
	snd, err := s1.NewSender(ctx, "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, &Message{Value: "hi"}, nil); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) != 3 || b.seen[0].Conn == nil || b.seen[0].Begin == nil {
		t.Fatalf("requests %+v", b.seen)
	}
}

// refusedSession begins a session the peer is expected to refuse and
// returns the error it ended with. A refusal is a begin followed by an
// end, so NewSession may fail or succeed just before the session ends.
func refusedSession(t *testing.T, c *Conn) error {
	t.Helper()
	ctx := testCtx(t)
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		return err
	}
	select {
	case <-s.Done():
		return s.Err()
	case <-ctx.Done():
		t.Fatal("session accepted")
		return nil
	}
}

func TestMaxSessions(t *testing.T) {
	checkGoroutines(t)
	l := startListener(t, newTestBroker(), &ListenerOptions{MaxSessions: 2})
	p := dialFake(t, l)
	p.open(nil)
	p.begin(0)
	p.begin(1)
	p.send(frame.TypeAMQP, 2, &frame.Begin{IncomingWindow: 100, OutgoingWindow: 100})
	b := expect[*frame.Begin](p)
	if b.RemoteChannel == nil || *b.RemoteChannel != 2 {
		t.Fatalf("begin answers %v", b.RemoteChannel)
	}
	e := expect[*frame.End](p)
	if e.Error == nil || e.Error.Condition != frame.CondResourceLimitExceeded {
		t.Fatalf("end error %v", e.Error)
	}
	p.send(frame.TypeAMQP, 2, &frame.End{})
	// Ending a session makes room for another.
	p.send(frame.TypeAMQP, 0, &frame.End{})
	expect[*frame.End](p)
	p.begin(3)
	p.attachSender(3, 0, "q")
}

func TestMaxLinks(t *testing.T) {
	checkGoroutines(t)
	l := startListener(t, newTestBroker(), &ListenerOptions{MaxLinks: 2})
	p := dialFake(t, l)
	p.open(nil)
	p.begin(0)
	p.begin(1)
	p.attachSender(0, 0, "a")
	p.attachSender(1, 0, "b")
	p.send(frame.TypeAMQP, 1, &frame.Attach{Name: "c", Handle: 1, Role: frame.RoleSender,
		Source: &frame.Source{}, Target: &frame.Target{Address: "c"}, InitialDeliveryCount: new(uint32)})
	a := expect[*frame.Attach](p)
	if a.Target != nil {
		t.Fatalf("attach beyond the limit accepted: %+v", a.Target)
	}
	d := expect[*frame.Detach](p)
	if d.Error == nil || d.Error.Condition != frame.CondResourceLimitExceeded {
		t.Fatalf("detach error %v", d.Error)
	}
	p.send(frame.TypeAMQP, 1, &frame.Detach{Handle: 1, Closed: true})
	// Detaching a link makes room for another.
	p.send(frame.TypeAMQP, 0, &frame.Detach{Handle: 0, Closed: true})
	expect[*frame.Detach](p)
	p.attachSender(1, 2, "d")
}

func TestMaxLinksIgnoredRefusals(t *testing.T) {
	checkGoroutines(t)
	l := startListener(t, newTestBroker(), &ListenerOptions{MaxLinks: 1})
	p := dialFake(t, l)
	p.open(nil)
	p.begin(0)
	p.attachSender(0, 0, "a")
	// A peer that keeps attaching without answering the refusals holds
	// handles; past twice the limit the connection is closed.
	for h := uint32(1); h <= 3; h++ {
		p.send(frame.TypeAMQP, 0, &frame.Attach{Name: "x" + string(rune('0'+h)), Handle: h, Role: frame.RoleSender,
			Source: &frame.Source{}, Target: &frame.Target{Address: "x"}, InitialDeliveryCount: new(uint32)})
	}
	p.expectClose(frame.CondResourceLimitExceeded)
}

func TestClientLimits(t *testing.T) {
	checkGoroutines(t)
	l := startListener(t, newTestBroker(), nil)
	c := dialTest(t, l, &ConnOptions{MaxSessions: 1, MaxLinks: 1})
	ctx := testCtx(t)
	s := mustSession(t, c)
	if _, err := c.NewSession(ctx, nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("second session: %v", err)
	}
	if _, err := s.NewSender(ctx, "q", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewReceiver(ctx, "q", nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("second link: %v", err)
	}
}

func TestIDAlloc(t *testing.T) {
	a := idAlloc{limit: 3}
	var got []uint32
	for {
		id, ok := a.get()
		if !ok {
			break
		}
		got = append(got, id)
	}
	if len(got) != 4 || got[0] != 0 || got[3] != 3 {
		t.Fatalf("allocated %v", got)
	}
	a.put(2)
	a.put(0)
	x, _ := a.get()
	y, _ := a.get()
	if x+y != 2 || x == y {
		t.Fatalf("reused %d, %d; want 0 and 2", x, y)
	}
	if _, ok := a.get(); ok {
		t.Fatal("allocated beyond the limit")
	}
	full := idAlloc{limit: 1<<32 - 1}
	full.next = 1<<32 - 1
	if id, ok := full.get(); !ok || id != 1<<32-1 {
		t.Fatalf("last id %d, %v", id, ok)
	}
	if _, ok := full.get(); ok {
		t.Fatal("wrapped around")
	}
}

func TestChannelReuse(t *testing.T) {
	checkGoroutines(t)
	l := startListener(t, newTestBroker(), &ListenerOptions{ChannelMax: 2})
	c := dialTest(t, l, nil)
	ctx := testCtx(t)
	var ss []*Session
	for range 3 {
		ss = append(ss, mustSession(t, c))
	}
	if _, err := c.NewSession(ctx, nil); err == nil {
		t.Fatal("fourth session on channel-max 2")
	}
	if err := ss[1].End(ctx); err != nil {
		t.Fatal(err)
	}
	s := mustSession(t, c)
	if s.channel != ss[1].channel {
		t.Fatalf("channel %d, want the freed %d", s.channel, ss[1].channel)
	}
}

// syncBuffer is a bytes.Buffer for a logger written by other goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestHandlerPanic(t *testing.T) {
	checkGoroutines(t)
	var logs syncBuffer
	b := newTestBroker()
	h := HandlerFunc(func(req *LinkRequest) error {
		if req.Address == "panic" {
			panic("handler bug")
		}
		return b.HandleLink(req)
	})
	l := startListener(t, b, &ListenerOptions{Handler: h, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := testCtx(t)
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	if _, err := s.NewSender(ctx, "panic", nil); err == nil {
		t.Fatal("attach succeeded")
	}
	<-c.Done()
	var ce *ConnError
	if !errors.As(c.Err(), &ce) || ce.RemoteErr == nil || ce.RemoteErr.Condition != frame.CondInternalError {
		t.Fatalf("connection error %v, want amqp:internal-error from the peer", c.Err())
	}
	out := logs.String()
	if !strings.Contains(out, "handler bug") || !strings.Contains(out, "hardening_test.go") {
		t.Fatalf("log lacks the panic and its stack:\n%s", out)
	}
	// The listener serves other connections.
	c2 := dialTest(t, l, nil)
	snd, err := mustSession(t, c2).NewSender(ctx, "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, &Message{Value: "after"}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSessionHandlerPanic(t *testing.T) {
	checkGoroutines(t)
	var logs syncBuffer
	b := &sessionBroker{testBroker: newTestBroker(), allow: func(*SessionRequest) error { panic("session bug") }}
	l := startListener(t, b.testBroker, &ListenerOptions{Handler: b, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c := dialTest(t, l, nil)
	if _, err := c.NewSession(testCtx(t), nil); err == nil {
		t.Fatal("session begun")
	}
	<-c.Done()
	var ce *ConnError
	if !errors.As(c.Err(), &ce) || ce.RemoteErr == nil || ce.RemoteErr.Condition != frame.CondInternalError {
		t.Fatalf("connection error %v", c.Err())
	}
	if !strings.Contains(logs.String(), "session bug") {
		t.Fatalf("log: %s", logs.String())
	}
}

// flakyListener fails its first fails Accept calls (as when the process
// is out of file descriptors), or every call when fails is negative.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
	calls int
}

func (f *flakyListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	f.calls++
	fail := f.fails != 0
	if f.fails > 0 {
		f.fails--
	}
	f.mu.Unlock()
	if fail {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return f.Listener.Accept()
}

func flakyListen(t *testing.T, fails int, opts *ListenerOptions) (*Listener, *flakyListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: ln, fails: fails}
	o := *opts
	if o.Handler == nil {
		o.Handler = newTestBroker()
	}
	l, err := Listen(fl, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, fl
}

func TestAcceptErrorsBackOff(t *testing.T) {
	checkGoroutines(t)
	var logs syncBuffer
	l, _ := flakyListen(t, 3, &ListenerOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, l.Addr().String(), nil)
	if err != nil {
		t.Fatalf("dial after accept errors: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if got := strings.Count(logs.String(), "too many open files"); got != 3 {
		t.Fatalf("%d accept errors logged, want 3:\n%s", got, logs.String())
	}
}

func TestAcceptErrorsUntilClose(t *testing.T) {
	checkGoroutines(t)
	l, fl := flakyListen(t, -1, &ListenerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	// Wait until the loop has backed off a few times, then Close must end
	// it without waiting out the back-off.
	deadline := time.Now().Add(5 * time.Second)
	for {
		fl.mu.Lock()
		n := fl.calls
		fl.mu.Unlock()
		if n >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("accept loop stopped after %d calls", n)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
	start := time.Now()
	l.Close()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Close took %v", d)
	}
}

// expectCleanEOF reads until the end of the stream and fails unless it
// ends with the peer's FIN rather than a reset: a reset can destroy the
// close frame before the peer's application reads it.
func (p *fakePeer) expectCleanEOF() {
	p.t.Helper()
	for {
		var b [4096]byte
		_, err := p.br.Read(b[:])
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) {
			p.t.Fatalf("stream ended with %v, want EOF", err)
		}
		return
	}
}

func TestCloseWithErrorLingers(t *testing.T) {
	checkGoroutines(t)
	l := startListener(t, newTestBroker(), nil)
	p := dialFake(t, l)
	p.open(nil)
	// A violation, then frames the peer keeps sending before it has read
	// the close: they must not be processed (no begin answers them), and
	// must not make the server's socket reset the connection.
	bad, _ := frame.Append(nil, frame.TypeAMQP, 0, transfer(0, 0, oneMsg))
	begin, _ := frame.Append(nil, frame.TypeAMQP, 0, &frame.Begin{IncomingWindow: 100, OutgoingWindow: 100})
	var more []byte
	for len(more) < 1<<20 {
		more = append(more, begin...)
	}
	// One write, so that the junk is already in the server's receive
	// buffer when it reads the violation: closing the socket then would
	// reset the connection.
	first := append(bad, more...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := p.nc.Write(first); err != nil {
			return
		}
		for range 3 {
			if _, err := p.nc.Write(more); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { <-done })
	_, fb := p.next()
	c, ok := fb.(*frame.Close)
	if !ok {
		t.Fatalf("got %T, want close", fb)
	}
	if c.Error == nil || c.Error.Condition != frame.CondNotAllowed {
		t.Fatalf("close error %v", c.Error)
	}
	p.expectCleanEOF()
}

func TestCloseLingerBounded(t *testing.T) {
	checkGoroutines(t)
	l := startListener(t, newTestBroker(), &ListenerOptions{CloseLinger: 100 * time.Millisecond})
	p := dialFake(t, l)
	p.open(nil)
	p.send(frame.TypeAMQP, 0, &frame.Open{ContainerID: "again"})
	c := expect[*frame.Close](p)
	if c.Error == nil || c.Error.Condition != frame.CondNotAllowed {
		t.Fatalf("close error %v", c.Error)
	}
	p.expectCleanEOF()
	// The peer never closes; the server does once the linger is over.
	deadline := time.Now().Add(5 * time.Second)
	for l.connCount() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("connection still open after the linger")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
}

// waitConns waits until the listener holds n connections.
func waitConns(t *testing.T, l *Listener, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for l.connCount() != n {
		if time.Now().After(deadline) {
			t.Fatalf("listener holds %d connections after %v, want %d", l.connCount(), within, n)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
}

func TestCloseLingersUntilPeerCloses(t *testing.T) {
	tests := []struct {
		name    string
		opts    ListenerOptions
		provoke func(p *fakePeer)
		cond    frame.Condition
		desc    string
		hangUp  func(p *fakePeer)
		hangsUp string
	}{
		{
			name:    "violation, peer answers close",
			provoke: func(p *fakePeer) { p.send(frame.TypeAMQP, 0, &frame.Open{ContainerID: "again"}) },
			cond:    frame.CondNotAllowed, desc: "second open",
			hangUp: func(p *fakePeer) { p.send(frame.TypeAMQP, 0, &frame.Close{}) },
		},
		{
			name:    "idle time-out, peer closes its socket",
			opts:    ListenerOptions{IdleTimeout: 100 * time.Millisecond},
			provoke: func(*fakePeer) {}, // silence
			cond:    frame.CondResourceLimitExceeded, desc: "idle time-out of 100ms",
			hangUp: func(p *fakePeer) { _ = p.nc.(*net.TCPConn).CloseWrite() },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			o := tc.opts
			o.CloseLinger = 10 * time.Second // far longer than the test waits
			l := startListener(t, newTestBroker(), &o)
			p := dialFake(t, l)
			p.t = t
			p.open(nil)
			tc.provoke(p)
			c := expect[*frame.Close](p)
			if c.Error == nil || c.Error.Condition != tc.cond || !strings.Contains(c.Error.Description, tc.desc) {
				t.Fatalf("close error %v, want %s naming %q", c.Error, tc.cond, tc.desc)
			}
			p.expectCleanEOF()
			// The server has shut its write side but still reads, so that
			// whatever the peer sends meanwhile cannot cause a reset.
			if n := l.connCount(); n != 1 {
				t.Fatalf("listener holds %d connections while lingering, want 1", n)
			}
			tc.hangUp(p)
			waitConns(t, l, 0, 5*time.Second)
		})
	}
}

func TestCloseWithErrorStopsProcessing(t *testing.T) {
	checkGoroutines(t)
	conns := make(chan *Conn, 1)
	var mu sync.Mutex
	var late []string
	b := newTestBroker()
	h := HandlerFunc(func(req *LinkRequest) error {
		switch req.Address {
		case "evict":
			conns <- req.Conn
		case "late":
			mu.Lock()
			late = append(late, req.Address)
			mu.Unlock()
		}
		return b.HandleLink(req)
	})
	l := startListener(t, b, &ListenerOptions{Handler: h, CloseLinger: 10 * time.Second})
	p := dialFake(t, l)
	p.open(nil)
	p.begin(0)
	p.attachSender(0, 0, "evict")
	server := <-conns
	closed := make(chan error, 1)
	go func() {
		closed <- server.CloseWithError(&Error{Condition: frame.CondConnectionForced, Description: "evicted"})
	}()
	c := expect[*frame.Close](p)
	if c.Error == nil || c.Error.Condition != frame.CondConnectionForced {
		t.Fatalf("close error %v", c.Error)
	}
	// A peer that has not read the close yet may still ask for things:
	// they are not processed.
	p.send(frame.TypeAMQP, 0, &frame.Attach{Name: "late", Handle: 1, Role: frame.RoleSender,
		Source: &frame.Source{}, Target: &frame.Target{Address: "late"}, InitialDeliveryCount: new(uint32)})
	p.expectCleanEOF()
	select {
	case err := <-closed:
		t.Fatalf("CloseWithError returned %v before the peer closed", err)
	default:
	}
	p.send(frame.TypeAMQP, 0, &frame.Close{})
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("CloseWithError: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("CloseWithError still lingering after the peer's close")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(late) > 0 {
		t.Fatal("attach sent after the close was offered to the handler")
	}
	if !errors.Is(server.Err(), ErrClosed) {
		t.Fatalf("server conn error %v", server.Err())
	}
}

// connCount reports the connections the listener holds.
func (l *Listener) connCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}
