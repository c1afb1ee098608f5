package amqp

import (
	"context"
	"errors"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
)

// connRefuser refuses connections whose container id is "bad".
type connRefuser struct{ *testBroker }

func (r connRefuser) HandleConn(c *Conn) error {
	if c.ContainerID() == "bad" {
		return &Error{Condition: CondUnauthorizedAccess, Description: "not you"}
	}
	return nil
}

func TestConnHandlerAndMaxConnections(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, &ListenerOptions{Handler: connRefuser{b}, MaxConnections: 1})
	ctx := testCtx(t)
	// go-amqp's Dial returns once opens are exchanged; the close follows.
	dial := func(opts *goamqp.ConnOptions) error {
		c, err := goamqp.Dial(ctx, "amqp://"+l.Addr().String(), opts)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.NewSession(ctx, nil)
		return err
	}
	err := dial(&goamqp.ConnOptions{ContainerID: "bad"})
	var ce *goamqp.ConnError
	if !errors.As(err, &ce) || ce.RemoteErr == nil || ce.RemoteErr.Condition != goamqp.ErrCondUnauthorizedAccess {
		t.Fatalf("refused container: %v, want a close with amqp:unauthorized-access", err)
	}
	c := goDial(t, l, nil) // the one allowed
	if _, err := c.NewSession(ctx, nil); err != nil {
		t.Fatal(err)
	}
	err = dial(nil)
	if !errors.As(err, &ce) || ce.RemoteErr == nil || ce.RemoteErr.Condition != goamqp.ErrCondResourceLimitExceeded {
		t.Fatalf("connection beyond MaxConnections: %v, want amqp:resource-limit-exceeded", err)
	}
}

// TestLinkRequestAttachFields: a handler answers with its own settle mode
// and source (distribution-mode, the filters it applied).
func TestLinkRequestAttachFields(t *testing.T) {
	checkGoroutines(t)
	settled := SenderSettleSettled
	l := startListener(t, newTestBroker(), &ListenerOptions{Handler: HandlerFunc(func(req *LinkRequest) error {
		src := *req.Attach.Source
		src.DistributionMode = "copy"
		src.Filter = nil // none applied
		req.Source = &src
		req.SndSettleMode = &settled
		return nil
	})})
	ctx := testCtx(t)
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	r, err := s.NewReceiver(ctx, "q", &ReceiverOptions{Filter: map[Symbol]any{"x-filter": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	ra := r.RemoteAttach()
	if ra.SndSettleMode != SenderSettleSettled || ra.Source == nil || ra.Source.DistributionMode != "copy" || ra.Source.Filter != nil {
		t.Fatalf("remote attach: settle %v, source %+v", ra.SndSettleMode, ra.Source)
	}
}

// TestCloseWithError: a server detaches links it accepted with a
// condition the peer reads, in both roles.
func TestCloseWithError(t *testing.T) {
	checkGoroutines(t)
	cond := &Error{Condition: "io.example:gone", Description: "not any more"}
	l := startListener(t, newTestBroker(), &ListenerOptions{Handler: HandlerFunc(func(req *LinkRequest) error {
		called := make(chan struct{})
		go func() {
			ctx := context.Background()
			close(called)
			if req.Sender != nil {
				_ = req.Sender.CloseWithError(ctx, cond)
			} else {
				_ = req.Receiver.CloseWithError(ctx, cond)
			}
		}()
		// The close is under way before the attach is answered: its
		// detach must still follow the attach on the wire (go-amqp
		// refuses a detach of a handle it does not know).
		<-called
		time.Sleep(20 * time.Millisecond) // widens the race, not readiness
		return nil
	})})
	ctx := testCtx(t)
	c := goDial(t, l, nil)
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		wait func() error
	}{
		{"receiver", func() error {
			r, err := s.NewReceiver(ctx, "q", nil)
			if err != nil {
				return err
			}
			_, err = r.Receive(ctx, nil)
			return err
		}},
		{"sender", func() error {
			snd, err := s.NewSender(ctx, "q", nil)
			if err != nil {
				return err
			}
			for {
				if err := snd.Send(ctx, &goamqp.Message{Data: [][]byte{[]byte("x")}}, nil); err != nil {
					return err
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.wait()
			var le *goamqp.LinkError
			if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != "io.example:gone" || le.RemoteErr.Description != "not any more" {
				t.Fatalf("got %v, want a detach with io.example:gone", err)
			}
		})
	}
}
