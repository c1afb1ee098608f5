package amqp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// These tests drive Ferry's Listener with github.com/Azure/go-amqp, a
// client nobody here wrote.

func goDial(t testing.TB, l *Listener, opts *goamqp.ConnOptions) *goamqp.Conn {
	t.Helper()
	c, err := goamqp.Dial(testCtx(t), "amqp://"+l.Addr().String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestGoAMQPSendReceive(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	auth := func(_ context.Context, req *AuthRequest) (string, error) {
		if req.Mechanism == frame.SASLPlain && (req.Username != "dev@tenant" || req.Password != "secret") {
			return "", errors.New("bad password")
		}
		return req.Username, nil
	}
	l := startListener(t, b, &ListenerOptions{Authenticate: auth, MaxFrameSize: 8192})
	ctx := testCtx(t)
	for _, sasl := range []struct {
		name string
		t    goamqp.SASLType
	}{
		{"PLAIN", goamqp.SASLTypePlain("dev@tenant", "secret")},
		{"ANONYMOUS", goamqp.SASLTypeAnonymous()},
	} {
		t.Run(sasl.name, func(t *testing.T) {
			c := goDial(t, l, &goamqp.ConnOptions{SASLType: sasl.t, MaxFrameSize: 4096})
			s, err := c.NewSession(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			q := "go-" + sasl.name
			snd, err := s.NewSender(ctx, q, nil)
			if err != nil {
				t.Fatal(err)
			}
			big := bytes.Repeat([]byte{'z'}, 1<<20) // multi-frame both ways
			for i := range 20 {
				m := goamqp.NewMessage([]byte(fmt.Sprint(i)))
				if i == 19 {
					m = goamqp.NewMessage(big)
				}
				m.ApplicationProperties = map[string]any{"i": int64(i)}
				if err := snd.Send(ctx, m, &goamqp.SendOptions{Settled: i%3 == 0}); err != nil {
					t.Fatal(err)
				}
			}
			rcv, err := s.NewReceiver(ctx, q, &goamqp.ReceiverOptions{Credit: 7})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				m, err := rcv.Receive(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				if m.ApplicationProperties["i"] != int64(i) {
					t.Fatalf("message %d: %v", i, m.ApplicationProperties)
				}
				if i == 19 && !bytes.Equal(m.GetData(), big) {
					t.Fatal("large payload mismatch")
				}
				if err := rcv.AcceptMessage(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			if err := rcv.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := snd.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("bad password", func(t *testing.T) {
		_, err := goamqp.Dial(ctx, "amqp://"+l.Addr().String(), &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("dev@tenant", "wrong")})
		if err == nil {
			t.Fatal("want SASL failure")
		}
	})
	t.Run("no SASL when required", func(t *testing.T) {
		_, err := goamqp.Dial(ctx, "amqp://"+l.Addr().String(), nil)
		if err == nil {
			t.Fatal("want failure")
		}
	})
}

func TestGoAMQPRefusalsAndFeatures(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, &ListenerOptions{OfferedCapabilities: []Symbol{"ANONYMOUS-RELAY"}})
	ctx := testCtx(t)
	c := goDial(t, l, nil)
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("refused", func(t *testing.T) {
		// go-amqp reports a refused attach as the remote *Error itself.
		_, err := s.NewSender(ctx, "missing", nil)
		var ae *goamqp.Error
		if !errors.As(err, &ae) || ae.Condition != goamqp.ErrCondNotFound {
			t.Fatalf("sender: %v", err)
		}
		_, err = s.NewReceiver(ctx, "forbidden", nil)
		if !errors.As(err, &ae) || ae.Condition != goamqp.ErrCondUnauthorizedAccess {
			t.Fatalf("receiver: %v", err)
		}
	})
	t.Run("rejected", func(t *testing.T) {
		snd, err := s.NewSender(ctx, "reject", nil)
		if err != nil {
			t.Fatal(err)
		}
		err = snd.Send(ctx, goamqp.NewMessage([]byte("x")), nil)
		var ae *goamqp.Error
		if !errors.As(err, &ae) || ae.Condition != goamqp.ErrCondPreconditionFailed {
			t.Fatalf("send: %v", err)
		}
	})
	t.Run("dynamic and relay", func(t *testing.T) {
		rcv, err := s.NewReceiver(ctx, "", &goamqp.ReceiverOptions{DynamicAddress: true, Name: "d1"})
		if err != nil {
			t.Fatal(err)
		}
		if rcv.Address() != "tmp-d1" {
			t.Fatalf("address %q", rcv.Address())
		}
		snd, err := s.NewSender(ctx, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		to := rcv.Address()
		m := goamqp.NewMessage([]byte("relayed"))
		m.Properties = &goamqp.MessageProperties{To: &to}
		if err := snd.Send(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
		got, err := rcv.Receive(ctx, nil)
		if err != nil || string(got.GetData()) != "relayed" {
			t.Fatalf("%v %v", got, err)
		}
		_ = rcv.AcceptMessage(ctx, got)
	})
	t.Run("drain", func(t *testing.T) {
		rcv, err := s.NewReceiver(ctx, "nothing-here", &goamqp.ReceiverOptions{Credit: -1})
		if err != nil {
			t.Fatal(err)
		}
		if err := rcv.IssueCredit(10); err != nil {
			t.Fatal(err)
		}
		if err := rcv.DrainCredit(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("properties", func(t *testing.T) {
		snd, err := s.NewSender(ctx, "props", nil)
		if err != nil {
			t.Fatal(err)
		}
		if snd.Properties()["ferry-test"] != true {
			t.Fatalf("properties %v", snd.Properties())
		}
	})
	t.Run("settle second", func(t *testing.T) {
		second := goamqp.ReceiverSettleModeSecond
		snd, err := s.NewSender(ctx, "second", &goamqp.SenderOptions{RequestedReceiverSettleMode: &second})
		if err != nil {
			t.Fatal(err)
		}
		if err := snd.Send(ctx, goamqp.NewMessage([]byte("2")), nil); err != nil {
			t.Fatal(err)
		}
		rcv, err := s.NewReceiver(ctx, "second", &goamqp.ReceiverOptions{SettlementMode: &second})
		if err != nil {
			t.Fatal(err)
		}
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := rcv.AcceptMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	})
}

func TestGoAMQPIdleTimeout(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	// The listener closes peers silent for 300 ms; go-amqp must send
	// heartbeats, and must accept ours (it announces 1 s).
	l := startListener(t, b, &ListenerOptions{IdleTimeout: 300 * time.Millisecond})
	ctx := testCtx(t)
	c := goDial(t, l, &goamqp.ConnOptions{IdleTimeout: time.Second})
	timer := time.NewTimer(1500 * time.Millisecond)
	select {
	case <-c.Done():
		t.Fatalf("connection closed while idle: %v", c.Err())
	case <-timer.C:
	}
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close(ctx)
}
