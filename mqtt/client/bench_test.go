package client

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// BenchmarkPublish publishes 64-byte messages at QoS 0, 1 and 2 to Ferry
// and to Mosquitto, with this package's client (PublishAsync, as many in
// flight as the window allows) and, in the same run, with paho.golang
// (its Publish waits for the acknowledgement, so 64 goroutines keep as
// many in flight), and waits for every acknowledgement. A QoS 0 publish is
// done once written: those figures are the clients' sending rates.
//
//	go test -run x -bench Publish -benchtime 20000x ./mqtt/client/
func BenchmarkPublish(b *testing.B) {
	brokers := []struct {
		name  string
		start func(testing.TB) string
	}{
		{"ferry", func(t testing.TB) string { return startFerry(t, "").addr }},
		{"mosquitto", func(t testing.TB) string {
			return startMosquitto(t, "max_inflight_messages 0\nmax_queued_messages 0\n")
		}},
	}
	for _, br := range brokers {
		addr := br.start(b)
		for _, qos := range []byte{0, 1, 2} {
			b.Run(fmt.Sprintf("%s/client/qos%d", br.name, qos), func(b *testing.B) { benchmarkClient(b, addr, qos) })
			b.Run(fmt.Sprintf("%s/paho/qos%d", br.name, qos), func(b *testing.B) { benchmarkPaho(b, addr, qos) })
		}
	}
}

func benchmarkClient(b *testing.B, addr string, qos byte) {
	c := connect(b, Options{Server: "tcp://" + addr, ClientID: fmt.Sprintf("bench-client-%d", qos), CleanStart: true})
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

// pahoWorkers keep as many paho publishes in flight as the window of
// this package's client (its default, 64).
const pahoWorkers = 64

func benchmarkPaho(b *testing.B, addr string, qos byte) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	cl := paho.NewClient(paho.ClientConfig{Conn: nc})
	ctx := context.Background()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ack, err := cl.Connect(cctx, &paho.Connect{ClientID: fmt.Sprintf("bench-paho-%d", qos), CleanStart: true, KeepAlive: 60}); err != nil || ack.ReasonCode != 0 {
		b.Fatalf("paho connect: %v %v", err, ack)
	}
	b.Cleanup(func() { _ = cl.Disconnect(&paho.Disconnect{}) })
	payload := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, pahoWorkers)
	for w := range pahoWorkers {
		n := b.N / pahoWorkers
		if w < b.N%pahoWorkers {
			n++
		}
		wg.Go(func() {
			for range n {
				if _, err := cl.Publish(ctx, &paho.Publish{Topic: "bench/t", QoS: qos, Payload: payload}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
