package systopics

import (
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hub"
)

type recorder struct{ got map[string]string }

func (r *recorder) Deliver(d hub.Delivery) bool {
	r.got[d.Message.Topic] = string(d.Message.Payload)
	return true
}

func TestPublishOncePerTenant(t *testing.T) {
	h := hub.New(hub.Options{})
	start := time.Unix(1000, 0)
	p := &Publisher{Hub: h, Version: "v1", Start: start, Now: func() time.Time { return start.Add(42 * time.Second) }}

	a, _ := h.Open("A", "c1", true)
	ra := &recorder{got: map[string]string{}}
	a.Attach(ra)
	a.Subscribe(hub.Subscription{Filter: "data/#"})
	h.Publish("A", &hub.Message{Topic: "data/1", Payload: []byte("12345")})
	b, _ := h.Open("B", "c1", true)
	b.Attach(&recorder{got: map[string]string{}})

	p.PublishOnce()
	// A subscriber to $SYS/# gets the retained figures of its own tenant.
	ret, _ := a.Subscribe(hub.Subscription{Filter: "$SYS/#"})
	for _, d := range ret {
		ra.Deliver(d)
	}
	want := map[string]string{
		"$SYS/broker/version":                 "ferry v1",
		"$SYS/broker/uptime":                  "42 seconds",
		"$SYS/broker/clients/connected":       "1",
		"$SYS/broker/messages/sent":           "1",
		"$SYS/broker/bytes/received":          "5",
		"$SYS/broker/subscriptions/count":     "1",
		"$SYS/broker/retained messages/count": "0",
	}
	for topic, v := range want {
		if ra.got[topic] != v {
			t.Errorf("%s = %q, want %q", topic, ra.got[topic], v)
		}
	}
	// Tenant B has figures of its own.
	if got := h.TenantStats("B"); got.Retained == 0 {
		t.Errorf("tenant B got no $SYS topics of its own")
	}
}
