package amqp

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"

	goamqp "github.com/Azure/go-amqp"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// countingHandler accepts every link and counts what its receivers get.
type countingHandler struct {
	n    atomic.Int64
	want int64
	done chan struct{}
	wg   sync.WaitGroup
}

func (h *countingHandler) HandleLink(req *LinkRequest) error {
	r := req.Receiver
	if r == nil {
		return &Error{Condition: frame.CondNotImplemented}
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		ctx := context.Background()
		for {
			d, err := r.Receive(ctx)
			if err != nil {
				return
			}
			_ = d.Accept(ctx)
			if h.n.Add(1) == h.want {
				close(h.done)
			}
		}
	}()
	return nil
}

func benchListener(b *testing.B, h *countingHandler) *Listener {
	b.Helper()
	l := startListener(b, newTestBroker(), &ListenerOptions{Handler: h, Credit: 1000})
	b.Cleanup(h.wg.Wait)
	return l
}

var payload256 = bytes.Repeat([]byte{'m'}, 256)

// BenchmarkSendSettled measures pre-settled 256-byte messages from a Ferry
// Sender to a Ferry Receiver over loopback.
func BenchmarkSendSettled(b *testing.B) { benchFerry(b, true, 1) }

// BenchmarkSendUnsettled measures unsettled messages, each Send waiting
// for its accepted outcome, from 64 goroutines sharing one Sender.
func BenchmarkSendUnsettled(b *testing.B) { benchFerry(b, false, 64) }

func benchFerry(b *testing.B, settled bool, workers int) {
	h := &countingHandler{want: int64(b.N), done: make(chan struct{})}
	l := benchListener(b, h)
	c := dialTest(b, l, nil)
	s := mustSession(b, c)
	ctx := context.Background()
	opts := &SenderOptions{}
	if settled {
		m := frame.SenderSettleSettled
		opts.SettleMode = &m
	}
	snd, err := s.NewSender(ctx, "bench", opts)
	if err != nil {
		b.Fatal(err)
	}
	msg := &Message{Data: [][]byte{payload256}}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range workers {
		n := b.N / workers
		if w < b.N%workers {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if err := snd.Send(ctx, msg, nil); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	<-h.done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkGoAMQPSend measures go-amqp as the client against Ferry's
// Listener: settled sends, and unsettled sends with receipts.
func BenchmarkGoAMQPSend(b *testing.B) {
	for _, settled := range []bool{true, false} {
		name := "unsettled"
		if settled {
			name = "settled"
		}
		b.Run(name, func(b *testing.B) {
			h := &countingHandler{want: int64(b.N), done: make(chan struct{})}
			l := benchListener(b, h)
			ctx := context.Background()
			c, err := goamqp.Dial(ctx, "amqp://"+l.Addr().String(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			s, err := c.NewSession(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			opts := &goamqp.SenderOptions{}
			if settled {
				m := goamqp.SenderSettleModeSettled
				opts.SettlementMode = &m
			}
			snd, err := s.NewSender(ctx, "bench", opts)
			if err != nil {
				b.Fatal(err)
			}
			msg := goamqp.NewMessage(payload256)
			b.ReportAllocs()
			b.ResetTimer()
			receipts := make(chan goamqp.SendReceipt, 1024)
			var wg sync.WaitGroup
			if !settled {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := range receipts {
						if _, err := r.Wait(ctx); err != nil {
							b.Error(err)
						}
					}
				}()
			}
			for range b.N {
				if settled {
					if err := snd.Send(ctx, msg, nil); err != nil {
						b.Fatal(err)
					}
					continue
				}
				r, err := snd.SendWithReceipt(ctx, msg, nil)
				if err != nil {
					b.Fatal(err)
				}
				receipts <- r
			}
			close(receipts)
			wg.Wait()
			<-h.done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
