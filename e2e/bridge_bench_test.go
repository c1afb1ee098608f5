package e2e

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/mqtt/client"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// benchNode starts a Ferry node for a benchmark, on loopback ports.
func benchNode(b *testing.B, mutate func(*config.Config)) string {
	cfg := config.Default()
	cfg.MQTT.Addr, cfg.AMQP.AppAddr, cfg.AMQP.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "", "", ""
	cfg.MQTT.SysInterval = 0
	cfg.DataDir = b.TempDir()
	if mutate != nil {
		mutate(&cfg)
	}
	return startNode(b, cfg).MQTTAddr().String()
}

// BenchmarkBridgeForward: a publisher sends QoS 1 messages of 64 bytes to
// Ferry a, whose bridge forwards bench/# (out, QoS 1) to Ferry b, where a
// subscriber counts them: the bridge's forwarding rate, publish of the
// first to arrival of the last.
//
//	go test -run x -bench BridgeForward -benchtime 50000x ./e2e/
func BenchmarkBridgeForward(b *testing.B) {
	remote := benchNode(b, nil)
	local := benchNode(b, func(c *config.Config) {
		c.Bridges = []config.Bridge{{Name: "bench", Address: "tcp://" + remote,
			Topics: []config.BridgeTopic{{Pattern: "bench/#", Direction: "out", QoS: 1}}}}
	})
	ctx := context.Background()
	var got, probes atomic.Int64
	all := make(chan struct{})
	n := int64(b.N)
	sub, err := client.Connect(ctx, client.Options{Server: "tcp://" + remote, ClientID: "bench-sub", CleanStart: true,
		OnMessage: func(m *client.Message) {
			if m.Topic != "bench/t" {
				probes.Add(1)
				return
			}
			if got.Add(1) == n {
				close(all)
			}
		}})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Subscribe(ctx, &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: "bench/#", QoS: 1}}}); err != nil {
		b.Fatal(err)
	}
	pub, err := client.Connect(ctx, client.Options{Server: "tcp://" + local, ClientID: "bench-pub", CleanStart: true})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	// The bridge connects in the background: one message through first.
	deadline := time.Now().Add(20 * time.Second)
	for probes.Load() == 0 {
		if time.Now().After(deadline) {
			b.Fatal("the bridge forwarded nothing")
		}
		if err := pub.Publish(ctx, &client.Message{Topic: "bench/probe", QoS: 1, Payload: []byte("p")}); err != nil {
			b.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // pacing the probe, not readiness
	}
	payload := make([]byte, 64)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := pub.PublishAsync(ctx, &client.Message{Topic: "bench/t", QoS: 1, Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		b.Fatalf("%d of %d forwarded", got.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
