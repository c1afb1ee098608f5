package e2e

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/gateway"
	"github.com/ferry-iot/ferry/internal/peertest"
	"github.com/ferry-iot/ferry/mqtt/client"
)

// BenchmarkGatewayRabbitMQ measures messages per second from one
// publisher into RabbitMQ, counted when a native AMQP receiver on RabbitMQ
// (go-amqp) got them: through the gateway from an MQTT client at QoS 0
// and 1, and, beside it, the same load sent straight to RabbitMQ by an
// AMQP client (Ferry's engine; presettled, and unsettled with 64 in
// flight), so that the gateway's own cost shows.
//
//	go test -run x -bench GatewayRabbitMQ -benchtime 20000x ./e2e/
func BenchmarkGatewayRabbitMQ(b *testing.B) {
	network := peertest.RabbitMQ(b)
	g := startGateway(b, network, func(c *config.Config) { c.Gateway.Addresses = string(gateway.AddressesRabbitMQ) })
	payload := make([]byte, 64)

	count := func(b *testing.B, key string) (wait func()) {
		b.Helper()
		ctx := context.Background()
		conn, err := goamqp.Dial(ctx, network, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		s, err := conn.NewSession(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		r, err := s.NewReceiver(ctx, "/topic/"+key, &goamqp.ReceiverOptions{Credit: 1000, RequestedSenderSettleMode: goamqp.SenderSettleModeSettled.Ptr()})
		if err != nil {
			b.Fatal(err)
		}
		var got atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			for got.Load() < int64(b.N) {
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := r.Receive(rctx, nil)
				cancel()
				if err != nil {
					return
				}
				got.Add(1)
			}
		}()
		return func() {
			<-done
			if n := got.Load(); n < int64(b.N) {
				b.Fatalf("the receiver got %d of %d messages", n, b.N)
			}
		}
	}
	report := func(b *testing.B, start time.Time) {
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	}

	for _, qos := range []byte{0, 1} {
		name := map[byte]string{0: "gateway-qos0", 1: "gateway-qos1"}[qos]
		b.Run(name, func(b *testing.B) {
			key := "bench." + name
			wait := count(b, key)
			ctx := context.Background()
			c, err := client.Connect(ctx, client.Options{Server: "tcp://" + g.Addr().String(), ClientID: name, CleanStart: true})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			topic := "bench/" + name
			b.ResetTimer()
			start := time.Now()
			var last *client.Token
			for range b.N {
				tok, err := c.PublishAsync(ctx, &client.Message{Topic: topic, QoS: qos, Payload: payload})
				if err != nil {
					b.Fatal(err)
				}
				last = tok
			}
			if err := last.Wait(ctx); err != nil {
				b.Fatal(err)
			}
			wait()
			report(b, start)
		})
	}

	for _, settled := range []bool{true, false} {
		name := map[bool]string{true: "direct-presettled", false: "direct-unsettled"}[settled]
		b.Run(name, func(b *testing.B) {
			key := "bench." + name
			wait := count(b, key)
			ctx := context.Background()
			conn, err := amqp.Dial(ctx, network, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			s, err := conn.NewSession(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			snd, err := s.NewSender(ctx, "/topic/"+key, nil)
			if err != nil {
				b.Fatal(err)
			}
			window := make(chan struct{}, 64)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				m := &amqp.Message{Properties: &amqp.Properties{To: "bench/" + name}, Data: [][]byte{payload}}
				if settled {
					if err := snd.Send(ctx, m, &amqp.SendOptions{Settled: true}); err != nil {
						b.Fatal(err)
					}
					continue
				}
				window <- struct{}{}
				for {
					ok, err := snd.TrySend(m, nil, func(err error) {
						if err != nil {
							b.Error(err)
						}
						<-window
					})
					if err != nil {
						b.Fatal(err)
					}
					if ok {
						break
					}
					<-snd.CreditAvailable()
				}
			}
			for range cap(window) {
				window <- struct{}{}
			}
			wait()
			report(b, start)
		})
	}
}
