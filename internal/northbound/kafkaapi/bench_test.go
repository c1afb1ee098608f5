package kafkaapi

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
)

// BenchmarkKfakeAlone: what kfake takes from a plain idempotent franz-go
// producer (acks=all), 64-byte values, everything in flight at once: the
// bound of every Kafka figure measured on kfake.
func BenchmarkKfakeAlone(b *testing.B) {
	client := cluster(b, "t")
	cl, err := kgo.NewClient(append(client, kgo.DefaultProduceTopic("t"))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	value := make([]byte, 64)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range b.N {
		wg.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Key: []byte("dev"), Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkProduce: device messages through Messaging.Produce (Hono's
// headers, one key per device of 8) into kfake, every one acknowledged.
func BenchmarkProduce(b *testing.B) {
	topics := Topics{}
	client := cluster(b, topics.Telemetry("acme"))
	m := start(b, Options{Client: client, Topics: topics})
	devices := []string{"d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"}
	msgs := make([]*hub.Message, len(devices))
	for i, d := range devices {
		msgs[i] = &hub.Message{Topic: hono.HubTopic(hono.Telemetry, d), Payload: make([]byte, 64), QoS: 1, ContentType: "application/json",
			Created: time.Now(), Properties: []hub.Property{{Key: hono.PropDeviceID, Value: d}, {Key: hono.PropQoS, Value: int64(1)},
				{Key: hono.PropOrigAdapter, Value: hono.AdapterMQTT}, {Key: hono.PropOrigAddress, Value: "telemetry"}}}
	}
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range b.N {
		wg.Add(1)
		m.Produce("acme", msgs[i%len(msgs)], func(err error) {
			if err != nil {
				b.Error(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
