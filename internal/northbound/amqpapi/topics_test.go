package amqpapi

import (
	"testing"
	"time"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/amqpmqtt"
	"github.com/ferry-iot/ferry/internal/hub"
)

// TestTopicEncoded: a delivery as published is encoded once for every
// link; a retained one, a resend or one with an expiry is encoded alone,
// with its own annotations.
func TestTopicEncoded(t *testing.T) {
	m := &hub.Message{Topic: "a/b", Payload: []byte("x"), QoS: 1}
	first, err := topicEncoded(hub.Delivery{Message: m, QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	second, _ := topicEncoded(hub.Delivery{Message: m, QoS: 1})
	if &first[0] != &second[0] {
		t.Error("two plain deliveries of one message were encoded twice")
	}
	retained, _ := topicEncoded(hub.Delivery{Message: m, QoS: 1, Retain: true})
	if &retained[0] == &first[0] {
		t.Fatal("a retained delivery got the shared form")
	}
	var got amqp.Message
	if err := got.Decode(retained); err != nil {
		t.Fatal(err)
	}
	if r, _ := amqpmqtt.Retain(&got); !r || got.Properties.To != "a/b" {
		t.Fatalf("retained delivery: retain %v, to %q", r, got.Properties.To)
	}
	exp := &hub.Message{Topic: "a/c", Payload: []byte("y"), QoS: 1, Expiry: time.Now().Add(time.Minute)}
	e1, _ := topicEncoded(hub.Delivery{Message: exp, QoS: 1})
	e2, _ := topicEncoded(hub.Delivery{Message: exp, QoS: 1})
	if &e1[0] == &e2[0] {
		t.Error("a message with an expiry shared one ttl between deliveries")
	}
}
