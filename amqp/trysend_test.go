package amqp

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// pump is a server-side producer built the way a router uses TrySend:
// it offers messages from a backlog and resumes from OnReady.
type pump struct {
	snd      *Sender
	mu       sync.Mutex
	next, n  int
	sent     atomic.Int64
	outcomes chan outcome
}

type outcome struct {
	i   int
	err error
}

func (p *pump) run() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.next < p.n {
		i := p.next
		ok, err := p.snd.TrySend(&Message{Data: [][]byte{[]byte(strconv.Itoa(i))}}, nil, func(err error) {
			p.outcomes <- outcome{i, err}
		})
		if err != nil {
			p.outcomes <- outcome{i, err}
			return
		}
		if !ok {
			return // OnReady calls run again
		}
		p.next++
		p.sent.Add(1)
	}
}

// TestTrySendOrderAndOutcomes pipelines unsettled deliveries to go-amqp's
// receiver: every message arrives once and in order, each outcome is
// reported once, and a receiver with little credit makes TrySend refuse
// and OnReady resume instead of blocking.
func TestTrySendOrderAndOutcomes(t *testing.T) {
	checkGoroutines(t)
	const n = 20000
	ctx := testCtx(t)
	snd, rcv := goReceiverLink(t, 50)
	p := &pump{snd: snd, n: n, outcomes: make(chan outcome, n)}
	snd.OnReady(p.run)
	go p.run()

	for i := range n {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(m.GetData()); got != strconv.Itoa(i) {
			t.Fatalf("message %d: got %s (reordered)", i, got)
		}
		var settle error
		if i%10 == 9 {
			settle = rcv.RejectMessage(ctx, m, &goamqp.Error{Condition: "test:bad"})
		} else {
			settle = rcv.AcceptMessage(ctx, m)
		}
		if settle != nil {
			t.Fatal(settle)
		}
	}
	seen := make([]bool, n)
	for range n {
		select {
		case o := <-p.outcomes:
			if seen[o.i] {
				t.Fatalf("outcome of %d reported twice", o.i)
			}
			seen[o.i] = true
			var oe *OutcomeError
			switch {
			case o.i%10 == 9 && !errors.As(o.err, &oe):
				t.Fatalf("message %d: want rejected, got %v", o.i, o.err)
			case o.i%10 == 9:
				if _, ok := oe.State.(*frame.Rejected); !ok {
					t.Fatalf("message %d: outcome %T", o.i, oe.State)
				}
			case o.err != nil:
				t.Fatalf("message %d: %v", o.i, o.err)
			}
		case <-ctx.Done():
			t.Fatal("outcomes missing")
		}
	}
}

// TestTrySendNoCredit: without credit TrySend refuses at once, and the
// callbacks of messages in flight hear the link's end.
func TestTrySendNoCredit(t *testing.T) {
	checkGoroutines(t)
	ctx := testCtx(t)
	snd, rcv := goReceiverLink(t, -1)
	ready := make(chan struct{}, 8)
	snd.OnReady(func() { ready <- struct{}{} })
	ok, err := snd.TrySend(&Message{Data: [][]byte{[]byte("x")}}, nil, nil)
	if ok || err != nil {
		t.Fatalf("TrySend without credit: %v, %v", ok, err)
	}
	if err := rcv.IssueCredit(2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("OnReady not called when credit came")
	}
	done := make(chan error, 2)
	for i := range 2 {
		ok, err := snd.TrySend(&Message{Data: [][]byte{[]byte(fmt.Sprint(i))}}, nil, func(err error) { done <- err })
		if !ok || err != nil {
			t.Fatalf("TrySend %d with credit: %v, %v", i, ok, err)
		}
	}
	if _, err := rcv.Receive(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Leave both unsettled and detach: their callbacks report the end.
	if err := rcv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("an unsettled delivery of a detached link reported success")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("callback not called after detach")
		}
	}
	if ok, err := snd.TrySend(&Message{}, nil, nil); ok || err == nil {
		t.Fatalf("TrySend on a detached link: %v, %v", ok, err)
	}
}

// goReceiverLink attaches a go-amqp receiver with credit (-1: none until
// IssueCredit) to a Listener and returns the server's Sender for it.
func goReceiverLink(t *testing.T, credit int32) (*Sender, *goamqp.Receiver) {
	t.Helper()
	reqs := make(chan *LinkRequest, 1)
	l := startListener(t, newTestBroker(), &ListenerOptions{Handler: HandlerFunc(func(req *LinkRequest) error {
		reqs <- req
		return nil
	})})
	ctx := testCtx(t)
	s, err := goDial(t, l, nil).NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, "q", &goamqp.ReceiverOptions{Credit: credit})
	if err != nil {
		t.Fatal(err)
	}
	return (<-reqs).Sender, rcv
}
