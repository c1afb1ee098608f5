package amqp

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/amqp/frame"
	"github.com/ferry-iot/ferry/internal/peertest"
)

// These tests run Ferry's client role against RabbitMQ with the AMQP 1.0
// plugin (Debian package rabbitmq-server), started per test on loopback
// with its own node name, ports and data directory.

func TestRabbitMQ(t *testing.T) {
	addr := peertest.RabbitMQ(t)
	checkGoroutines(t)
	if os.Getenv("FERRY_TRACE") != "" {
		traceIncoming = func(ch uint16, fb frame.Body) {
			if tr, ok := fb.(*frame.Transfer); ok {
				t.Logf("<- transfer handle %d id %v more %v settled %v len %d", tr.Handle, deref(tr.DeliveryID), tr.More, tr.Settled, len(tr.Payload))
				return
			}
			if fl, ok := fb.(*frame.Flow); ok && fl.Handle != nil {
				t.Logf("<- flow handle %d delivery-count %v credit %v available %v drain %v", *fl.Handle, deref(fl.DeliveryCount), deref(fl.LinkCredit), deref(fl.Available), fl.Drain)
				return
			}
			t.Logf("<- %d %T %+v", ch, fb, fb)
		}
		traceOutgoing = func(ch uint16, fb frame.Body) {
			fl := fb.(*frame.Flow)
			if fl.Handle != nil {
				t.Logf("-> flow handle %d delivery-count %v credit %v drain %v", *fl.Handle, deref(fl.DeliveryCount), deref(fl.LinkCredit), fl.Drain)
			}
		}
		defer func() { traceIncoming, traceOutgoing = nil, nil }()
	}
	ctx := testCtx(t)
	c, err := Dial(ctx, addr, &ConnOptions{MaxFrameSize: 4096, IdleTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := mustSession(t, c)
	const q = "/queue/ferry-interop"
	snd, err := s.NewSender(ctx, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("rabbit"), 200_000) // 1.2 MB over 4 KiB frames
	for i := range 10 {
		m := &Message{Properties: &frame.Properties{MessageID: uint64(i)},
			ApplicationProperties: map[string]any{"i": int64(i)}, Data: [][]byte{[]byte(fmt.Sprint(i))}}
		if i == 9 {
			m.Data = [][]byte{big}
		}
		if err := snd.Send(ctx, m, &SendOptions{Settled: i%2 == 1}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	rcv, err := s.NewReceiver(ctx, q, &ReceiverOptions{Credit: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		d, err := rcv.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d.Message.ApplicationProperties["i"] != int64(i) {
			t.Fatalf("message %d: %v", i, d.Message.ApplicationProperties)
		}
		if i == 9 && !bytes.Equal(d.Message.Data[0], big) {
			t.Fatal("large message mismatch")
		}
		if err := d.Accept(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// No drain here: RabbitMQ 3.10's classic queues crash on it now and
	// then (function_clause in rabbit_classic_queue:handle_event
	// send_drained), ending the session with amqp:internal-error.
	if err := rcv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	// A node that does not exist: RabbitMQ 3.10 refuses by ending the
	// session with amqp:not-found (not with a detach).
	s2 := mustSession(t, c)
	_, err = s2.NewSender(ctx, "/exchange/ferry-no-such-exchange/key", nil)
	var se *SessionError
	if !errors.As(err, &se) || se.RemoteErr == nil || se.RemoteErr.Condition != frame.CondNotFound {
		t.Fatalf("attach to a missing exchange: %v", err)
	}
	// The connection survives.
	if _, err := mustSession(t, c).NewReceiver(ctx, q, nil); err != nil {
		t.Fatal(err)
	}
}

func deref(p *uint32) any {
	if p == nil {
		return nil
	}
	return *p
}
