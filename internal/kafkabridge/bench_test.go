package kafkabridge

import (
	"bytes"
	"context"
	"sync"
	"testing"

	goamqp "github.com/Azure/go-amqp"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The benchmarks move 100-byte messages between go-amqp and kfake, all
// in this process; the kfake ones show what Kafka's side alone costs.

var payload = bytes.Repeat([]byte("x"), 100)

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkProduce: unsettled messages through the bridge, each accepted
// after Kafka's ack; the sender keeps the link's credit busy.
func BenchmarkProduce(b *testing.B) {
	e := newEnv(b, 1, "t")
	s := e.session("all")
	ctx := testCtx(b)
	snd, err := s.NewSender(ctx, "kafka/t", nil)
	if err != nil {
		b.Fatal(err)
	}
	receipts := make(chan goamqp.SendReceipt, DefaultInFlight)
	var failed error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := range receipts {
			st, err := r.Wait(ctx)
			if _, ok := st.(*goamqp.StateAccepted); (err != nil || !ok) && failed == nil {
				failed = err
				if failed == nil {
					failed = context.Canceled
				}
			}
		}
	}()
	b.ResetTimer()
	for range b.N {
		r, err := snd.SendWithReceipt(ctx, &goamqp.Message{Data: [][]byte{payload}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		receipts <- r
	}
	close(receipts)
	wg.Wait()
	reportRate(b)
	if failed != nil {
		b.Fatalf("not accepted: %v", failed)
	}
}

// BenchmarkConsume: a group member with 1000 credit accepts each message.
func BenchmarkConsume(b *testing.B) {
	e := newEnv(b, 1, "t")
	fill(b, e, b.N)
	s := e.session("all")
	ctx := testCtx(b)
	b.ResetTimer()
	r, err := s.NewReceiver(ctx, "kafka/t/group.id/bench", &goamqp.ReceiverOptions{Credit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		m, err := r.Receive(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.AcceptMessage(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// fill produces n records with the bridge's producer settings.
func fill(b *testing.B, e *env, n int) {
	b.Helper()
	cl, err := kgo.NewClient(append(e.client, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	produceAll(b, cl, n)
}

func produceAll(b *testing.B, cl *kgo.Client, n int) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	wg.Add(n)
	for range n {
		cl.Produce(context.Background(), &kgo.Record{Topic: "t", Value: payload}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

// BenchmarkKfakeProduce: franz-go alone, producing as the bridge does
// (acks=all, no linger, unbounded in flight).
func BenchmarkKfakeProduce(b *testing.B) {
	e := newEnv(b, 1, "t")
	cl, err := kgo.NewClient(append(e.client, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	b.ResetTimer()
	produceAll(b, cl, b.N)
	reportRate(b)
}

// BenchmarkKfakeConsume: franz-go alone, consuming in a group with the
// bridge's fetch bounds.
func BenchmarkKfakeConsume(b *testing.B) {
	e := newEnv(b, 1, "t")
	fill(b, e, b.N)
	ctx := testCtx(b)
	b.ResetTimer()
	cl, err := kgo.NewClient(append(e.client, kgo.ConsumerGroup("bench"), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(fetchMaxBytes), kgo.FetchMaxPartitionBytes(fetchMaxBytes))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	for n := 0; n < b.N; {
		fs := cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil {
			b.Fatal(ctx.Err())
		}
		n += fs.NumRecords()
	}
	reportRate(b)
}
