package amqp

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// TestEndedCleanly checks how the server side of a link tells a peer's
// deliberate, error-free end from everything else, as a last-will
// service needs to.
func TestEndedCleanly(t *testing.T) {
	checkGoroutines(t)
	rcvs := make(chan *Receiver, 1)
	l := startListener(t, newTestBroker(), &ListenerOptions{Handler: HandlerFunc(func(req *LinkRequest) error {
		if req.Receiver == nil {
			return &Error{Condition: frame.CondNotAllowed}
		}
		rcvs <- req.Receiver
		return nil
	})})
	// attach dials (over nc, when set) and attaches a sender; it returns
	// the client's connection and sender and the server's receiver.
	attach := func(t *testing.T, nc net.Conn) (*Conn, *Sender, *Receiver) {
		t.Helper()
		ctx := testCtx(t)
		var c *Conn
		var err error
		if nc != nil {
			c, err = NewConn(ctx, nc, nil)
		} else {
			c, err = Dial(ctx, "amqp://"+l.Addr().String(), nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := c.NewSession(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		snd, err := s.NewSender(ctx, "q", nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-rcvs:
			return c, snd, r
		case <-ctx.Done():
			t.Fatal("no link at the server")
		}
		return nil, nil, nil
	}
	ended := func(t *testing.T, r *Receiver) error {
		t.Helper()
		select {
		case <-r.Done():
			return r.Err()
		case <-time.After(10 * time.Second):
			t.Fatal("the server's link did not end")
		}
		return nil
	}
	cases := []struct {
		name  string
		end   func(c *Conn, snd *Sender, nc net.Conn)
		clean bool
	}{
		{"detach", func(_ *Conn, snd *Sender, _ net.Conn) { _ = snd.Close(context.Background()) }, true},
		{"detach with error", func(_ *Conn, snd *Sender, _ net.Conn) {
			_ = snd.CloseWithError(context.Background(), &Error{Condition: frame.CondDetachForced})
		}, false},
		{"close", func(c *Conn, _ *Sender, _ net.Conn) { _ = c.Close() }, true},
		{"close with error", func(c *Conn, _ *Sender, _ net.Conn) {
			go func() { _ = c.CloseWithError(&Error{Condition: frame.CondConnectionForced}) }()
		}, false},
		{"socket lost", func(_ *Conn, _ *Sender, nc net.Conn) { nc.Close() }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c, snd, r := attach(t, nc)
			tc.end(c, snd, nc)
			if err := ended(t, r); EndedCleanly(err) != tc.clean {
				t.Errorf("EndedCleanly(%v) = %v, want %v", err, !tc.clean, tc.clean)
			}
		})
	}
	t.Run("server closes", func(t *testing.T) {
		// The peer answers our close at once: still our decision.
		_, _, r := attach(t, nil)
		l.Close()
		if err := ended(t, r); EndedCleanly(err) {
			t.Errorf("EndedCleanly(%v) after the listener's Close", err)
		}
	})
	if EndedCleanly(nil) {
		t.Error("EndedCleanly(nil)")
	}
}
