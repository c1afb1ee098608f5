package amqp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/amqp/frame"
)

func TestSendReceive(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, nil)
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	ctx := testCtx(t)

	snd, err := s.NewSender(ctx, "q1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if snd.RemoteAttach().Properties["ferry-test"] != true {
		t.Errorf("link properties: %v", snd.RemoteAttach().Properties)
	}
	rcv, err := s.NewReceiver(ctx, "q1", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		msg := &Message{Properties: &frame.Properties{MessageID: fmt.Sprint(i)}, Data: [][]byte{[]byte("hello")}}
		if err := snd.Send(ctx, msg, &SendOptions{Settled: i%2 == 0}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		d, err := rcv.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Message.Properties.MessageID; got != fmt.Sprint(i) {
			t.Fatalf("message %d has id %v", i, got)
		}
		if err := d.Accept(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := snd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rcv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLargeMessageMultiFrame(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, &ListenerOptions{MaxFrameSize: 4096})
	c := dialTest(t, l, &ConnOptions{MaxFrameSize: 1024})
	s := mustSession(t, c)
	ctx := testCtx(t)
	snd, err := s.NewSender(ctx, "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16) // 3 MiB
	// 3 MiB in 4 KiB frames is ~770 frames, within the 5000-frame window.
	if err := snd.Send(ctx, &Message{Data: [][]byte{payload}}, nil); err != nil {
		t.Fatal(err)
	}
	d, err := rcv.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.Message.Data[0], payload) {
		t.Fatal("payload mismatch")
	}
	_ = d.Accept(ctx)
}

func TestRefusedLink(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, nil)
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	ctx := testCtx(t)
	for addr, cond := range b.refuse {
		_, err := s.NewSender(ctx, addr, nil)
		var le *LinkError
		if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != cond {
			t.Fatalf("sender to %s: %v", addr, err)
		}
		_, err = s.NewReceiver(ctx, addr, nil)
		if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != cond {
			t.Fatalf("receiver from %s: %v", addr, err)
		}
	}
	// The session survives refusals.
	if _, err := s.NewSender(ctx, "ok", nil); err != nil {
		t.Fatal(err)
	}
}

func TestOutcomes(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, nil)
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	ctx := testCtx(t)
	for addr, want := range map[string]string{"reject": "*frame.Rejected", "release": "*frame.Released"} {
		snd, err := s.NewSender(ctx, addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = snd.Send(ctx, &Message{Value: "x"}, nil)
		var oe *OutcomeError
		if !errors.As(err, &oe) || fmt.Sprintf("%T", oe.State) != want {
			t.Fatalf("%s: %v", addr, err)
		}
	}
}

func TestDynamicAndAnonymousRelay(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, &ListenerOptions{OfferedCapabilities: []Symbol{"ANONYMOUS-RELAY"}})
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	ctx := testCtx(t)
	rcv, err := s.NewReceiver(ctx, "", &ReceiverOptions{DynamicSource: true, Name: "dyn"})
	if err != nil {
		t.Fatal(err)
	}
	if rcv.Address() != "tmp-dyn" {
		t.Fatalf("dynamic address %q", rcv.Address())
	}
	relay, err := s.NewSender(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Send(ctx, &Message{Properties: &frame.Properties{To: rcv.Address()}, Value: int64(42)}, nil); err != nil {
		t.Fatal(err)
	}
	d, err := rcv.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Message.Value != int64(42) {
		t.Fatalf("value %v", d.Message.Value)
	}
}

func TestDrainAndManualCredit(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, nil)
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	ctx := testCtx(t)
	rcv, err := s.NewReceiver(ctx, "empty", &ReceiverOptions{ManualCredit: true, Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.IssueCredit(5); err != nil {
		t.Fatal(err)
	}
	// Nothing to send: the broker's sender completes the drain at once.
	if err := rcv.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	credit := rcv.l.linkCredit
	c.mu.Unlock()
	if credit != 0 {
		t.Fatalf("credit after drain %d", credit)
	}
	if err := rcv.IssueCredit(11); err == nil {
		t.Fatal("credit beyond the buffer must fail")
	}
}

func TestSettleModeSecond(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, nil)
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	ctx := testCtx(t)
	second := frame.ReceiverSettleSecond
	snd, err := s.NewSender(ctx, "q2", &SenderOptions{ReceiverSettleMode: &second})
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, &Message{Value: "a"}, nil); err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, "q2", &ReceiverOptions{ReceiverSettleMode: &second})
	if err != nil {
		t.Fatal(err)
	}
	d, err := rcv.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Accept(ctx); err != nil {
		t.Fatal(err)
	}
	if !d.Settled {
		t.Fatal("not settled after the sender settled")
	}
}

func TestCloseErrors(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, nil)
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	ctx := testCtx(t)
	rcv, err := s.NewReceiver(ctx, "q3", nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	_, err = rcv.Receive(ctx)
	var ce *ConnError
	if !errors.As(err, &ce) {
		t.Fatalf("receive after listener close: %v", err)
	}
	<-c.Done()
	if _, err := c.NewSession(ctx, nil); err == nil {
		t.Fatal("session on a closed connection")
	}
	_ = context.Canceled
}

func TestMessageBeyondSessionWindow(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, &ListenerOptions{MaxFrameSize: 512, Session: SessionOptions{IncomingWindow: 4}})
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	ctx := testCtx(t)
	snd, err := s.NewSender(ctx, "w", nil)
	if err != nil {
		t.Fatal(err)
	}
	// About 10 frames of 512 bytes against a window of 4: it can never go.
	err = snd.Send(ctx, &Message{Data: [][]byte{make([]byte, 5000)}}, nil)
	var le *LinkError
	if !errors.As(err, &le) {
		t.Fatalf("send: %v", err)
	}
	// Messages that fit still go, the window being replenished as they
	// arrive.
	for range 20 {
		if err := snd.Send(ctx, &Message{Data: [][]byte{make([]byte, 1000)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLinkErr: Err is nil while a link is attached and says why once it
// ended, by our detach or by the end of its connection.
func TestLinkErr(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, nil)
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	ctx := testCtx(t)
	snd, err := s.NewSender(ctx, "ok", nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, "ok", nil)
	if err != nil {
		t.Fatal(err)
	}
	if snd.Err() != nil || rcv.Err() != nil {
		t.Fatalf("attached links report %v, %v", snd.Err(), rcv.Err())
	}
	if err := snd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := snd.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("closed sender: Err() = %v, want ErrClosed", err)
	}
	c.Close()
	<-rcv.Done()
	if rcv.Err() == nil {
		t.Error("receiver of a closed connection: Err() = nil")
	}
}

// TestSASLMechanismsChosen: a listener that offers PLAIN alone refuses an
// ANONYMOUS client and admits one that logs in; an unknown mechanism is a
// configuration error.
func TestSASLMechanismsChosen(t *testing.T) {
	checkGoroutines(t)
	auth := func(_ context.Context, req *AuthRequest) (string, error) {
		if req.Mechanism != SASLPlain || req.Username != "u" || req.Password != "p" {
			return "", errors.New("no")
		}
		return "u", nil
	}
	b := newTestBroker()
	l := startListener(t, b, &ListenerOptions{Authenticate: auth, SASLMechanisms: []Symbol{SASLPlain}})
	if c, err := Dial(testCtx(t), "amqp://"+l.Addr().String(), &ConnOptions{SASL: SASLAnonymous}); err == nil {
		c.Close()
		t.Fatal("an ANONYMOUS client got in where only PLAIN is offered")
	} else if !strings.Contains(err.Error(), "does not offer") {
		t.Errorf("ANONYMOUS refused with %v, want the offer named", err)
	}
	dialTest(t, l, &ConnOptions{SASL: SASLPlain, Username: "u", Password: "p"})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Listen(ln, &ListenerOptions{Handler: b, Authenticate: auth, SASLMechanisms: []Symbol{"SCRAM-SHA-1"}}); err == nil {
		t.Error("an unsupported mechanism was accepted")
	}
}

// TestSenderCredit: a sender sees the credit its receiver granted, and
// CreditAvailable wakes a caller when credit arrives.
func TestSenderCredit(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, &ListenerOptions{Credit: 7})
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	ctx := testCtx(t)
	snd, err := s.NewSender(ctx, "ok", nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-snd.CreditAvailable():
	case <-ctx.Done():
		t.Fatal("no credit arrived")
	}
	if got := snd.Credit(); got != 7 {
		t.Errorf("credit %d, want the listener's 7", got)
	}
	if err := snd.Send(ctx, &Message{Data: [][]byte{[]byte("x")}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := snd.Credit(); got > 7 {
		t.Errorf("credit %d after a send, want at most 7", got)
	}
}
