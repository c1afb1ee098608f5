package hub

import (
	"strconv"
	"sync/atomic"
	"testing"
)

// countSink takes every delivery and only counts it, as a fast consumer
// would.
type countSink struct{ n atomic.Int64 }

func (c *countSink) Deliver(Delivery) bool { c.n.Add(1); return true }

// benchmarkPublish publishes QoS 0 messages from parallel goroutines, one
// device topic each, into a tenant with the given subscribers of
// "telemetry/+".
func benchmarkPublish(b *testing.B, subscribers, tapped int) {
	h := New(Options{})
	for range tapped {
		var n atomic.Int64
		b.Cleanup(mustTap(b, h, "t", "telemetry/+", func(*Message) { n.Add(1) }))
	}
	for i := range subscribers {
		s, _ := h.Open("t", "app-"+strconv.Itoa(i), true)
		s.Attach(&countSink{})
		if _, err := s.Subscribe(Subscription{Filter: "telemetry/+"}); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	payload := []byte(`{"temp":21.5,"hum":40,"seq":12345}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		topic := "telemetry/dev-" + strconv.FormatInt(next.Add(1), 10)
		for pb.Next() {
			h.Publish("t", &Message{Topic: topic, Payload: payload})
		}
	})
}

// BenchmarkPublishNoSubscriber is the cost of a message nobody receives;
// BenchmarkPublishOneSubscriber adds one session that takes everything
// (an application), BenchmarkPublishOneTap a tap instead (an analytics
// query over telemetry).
func BenchmarkPublishNoSubscriber(b *testing.B)  { benchmarkPublish(b, 0, 0) }
func BenchmarkPublishOneSubscriber(b *testing.B) { benchmarkPublish(b, 1, 0) }
func BenchmarkPublishOneTap(b *testing.B)        { benchmarkPublish(b, 0, 1) }
