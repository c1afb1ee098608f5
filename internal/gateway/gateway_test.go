package gateway

import (
	"errors"
	"testing"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

func TestAddresses(t *testing.T) {
	for _, c := range []struct {
		style               Addresses
		topic, filter       string
		wantTopic, wantFilt string
	}{
		{AddressesMQTT, "a/b.c", "a/+/#", "a/b.c", "a/+/#"},
		{AddressesRabbitMQ, "a/b.c", "a/+/#", "/topic/a.b/c", "/topic/a.*.#"},
		{AddressesRabbitMQ, "plant/line1/temp", "plant/+/temp", "/topic/plant.line1.temp", "/topic/plant.*.temp"},
		{AddressesRabbitMQ, "x", "#", "/topic/x", "/topic/#"},
	} {
		if got := c.style.topic(c.topic); got != c.wantTopic {
			t.Errorf("%s topic(%q) = %q, want %q", c.style, c.topic, got, c.wantTopic)
		}
		if got := c.style.filter(c.filter); got != c.wantFilt {
			t.Errorf("%s filter(%q) = %q, want %q", c.style, c.filter, got, c.wantFilt)
		}
	}
}

func TestTopicOf(t *testing.T) {
	to := func(s string) *amqp.Message { return &amqp.Message{Properties: &amqp.Properties{To: s}} }
	rk := &amqp.Message{MessageAnnotations: amqp.Annotations{routingKeyAnnotation: "a.b/c"}}
	for _, c := range []struct {
		name    string
		style   Addresses
		m       *amqp.Message
		filter  string
		want    string
		wantErr bool
	}{
		{"to", AddressesMQTT, to("a/b"), "a/#", "a/b", false},
		{"rabbit to with prefix", AddressesRabbitMQ, to("/topic/a.b"), "a/#", "a/b", false},
		{"routing key", AddressesRabbitMQ, rk, "a/#", "a/b.c", false},
		{"routing key ignored for mqtt", AddressesMQTT, rk, "a/#", "", true},
		{"literal filter", AddressesMQTT, &amqp.Message{}, "a/b", "a/b", false},
		{"wildcard filter, no to", AddressesMQTT, &amqp.Message{}, "a/+", "", true},
		{"to with a wildcard", AddressesMQTT, to("a/+"), "a/#", "", true},
	} {
		got, err := c.style.topicOf(c.m, c.filter)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("%s: topicOf = %q, %v; want %q, error %v", c.name, got, err, c.want, c.wantErr)
		}
	}
}

func TestOutcomeCode(t *testing.T) {
	rejected := func(c amqp.Symbol) error {
		return &amqp.OutcomeError{State: &amqp.Rejected{Error: &amqp.Error{Condition: c}}}
	}
	for _, c := range []struct {
		err  error
		want packet.ReasonCode
	}{
		{nil, packet.Success},
		{rejected(amqp.CondResourceLimitExceeded), packet.QuotaExceeded},
		{rejected(amqp.CondUnauthorizedAccess), packet.NotAuthorized},
		{rejected(amqp.CondInvalidField), packet.TopicNameInvalid},
		{rejected(amqp.CondInternalError), packet.UnspecifiedError},
		{&amqp.OutcomeError{State: &amqp.Rejected{}}, packet.UnspecifiedError},
		{&amqp.OutcomeError{State: &amqp.Released{}}, packet.QuotaExceeded},
		{errors.New("link ended"), packet.UnspecifiedError},
	} {
		if got := outcomeCode(c.err); got != c.want {
			t.Errorf("outcomeCode(%v) = %#x, want %#x", c.err, byte(got), byte(c.want))
		}
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{{Network: "localhost:5672"}, {Network: "http://x"}, {Network: "amqp://x", Addresses: "kafka"}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
