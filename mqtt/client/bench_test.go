package client

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func BenchmarkPublishQoS0(b *testing.B) { benchmarkPublish(b, 0) }
func BenchmarkPublishQoS1(b *testing.B) { benchmarkPublish(b, 1) }
func BenchmarkPublishQoS2(b *testing.B) { benchmarkPublish(b, 2) }

// benchmarkPublish publishes b.N messages of 64 bytes to Ferry with
// PublishAsync, as many in flight as the window allows, and waits for
// every acknowledgement.
func benchmarkPublish(b *testing.B, qos byte) {
	f := startFerry(b, "")
	c := connect(b, Options{Server: "tcp://" + f.addr, ClientID: fmt.Sprintf("bench-%d", qos), CleanStart: true})
	ctx := context.Background()
	payload := make([]byte, 64)
	toks := make([]*Token, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		tok, err := c.PublishAsync(ctx, &Message{Topic: "bench/t", Payload: payload, QoS: qos})
		if err != nil {
			b.Fatal(err)
		}
		toks = append(toks, tok)
	}
	for _, tok := range toks {
		if err := tok.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
