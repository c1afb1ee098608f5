package hub

import (
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
)

// Message is a protocol-neutral application message. Once published it is
// shared by every delivery and must not be modified.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// Expiry is when the message stops being deliverable; zero means never.
	Expiry time.Time

	// MQTT 5 publish properties carried end to end.
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	PayloadFormat   *byte
	UserProperties  []UserProperty

	// Origin is the ID of the publishing session, for no-local
	// subscriptions; empty for messages from no session (wills keep theirs).
	Origin string

	// Created is when the message entered Ferry (AMQP creation-time);
	// zero when unknown.
	Created time.Time
	// Properties are typed application properties (AMQP
	// application-properties, or message annotations for keys starting
	// with "x-opt-"; Kafka headers): Hono's device_id, orig_adapter, qos,
	// ttd. Values are string, int64 or bool.
	Properties []Property

	// shared is a front end's ready-made form of the message, built once
	// for all its plain deliveries (see Shared).
	shared atomic.Pointer[any]
}

// SharedForm returns the value build makes for m, building it once: a front
// end keeps there what every plain delivery of m can share (the MQTT one, a
// QoS 0 PUBLISH without subscription identifiers), so a fan-out to many
// subscribers does not build it once per subscriber. The value must not be
// modified.
func (m *Message) SharedForm(build func() any) any {
	if p := m.shared.Load(); p != nil {
		return *p
	}
	v := build()
	m.shared.CompareAndSwap(nil, &v)
	return *m.shared.Load()
}

// unretained is a copy of m without its retain flag (and without its
// shared form, which may carry the flag).
func (m *Message) unretained() *Message {
	return &Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Expiry: m.Expiry,
		ContentType: m.ContentType, ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData,
		PayloadFormat: m.PayloadFormat, UserProperties: m.UserProperties, Origin: m.Origin,
		Created: m.Created, Properties: m.Properties}
}

// UserProperty is an MQTT 5 user property; order is significant. It is
// the stored form's type, so that storing a message copies no list.
type UserProperty = store.UserProperty

// Property is a typed application property (see Message.Properties).
type Property = store.Property

// Property returns the value of m's first property named key.
func (m *Message) Property(key string) (any, bool) { return store.PropertyValue(m.Properties, key) }

// Expired reports whether the message may no longer be delivered at now.
func (m *Message) Expired(now time.Time) bool {
	return !m.Expiry.IsZero() && !now.Before(m.Expiry)
}

// size approximates the memory a queued message holds, for byte limits.
func (m *Message) size() int {
	n := len(m.Topic) + len(m.Payload) + len(m.ContentType) + len(m.ResponseTopic) + len(m.CorrelationData) + 64
	for _, p := range m.UserProperties {
		n += len(p.Key) + len(p.Value)
	}
	for _, p := range m.Properties {
		n += len(p.Key) + 16
		if v, ok := p.Value.(string); ok {
			n += len(v)
		}
	}
	return n
}

// Subscription is one subscription of a session, with the MQTT 5 options.
type Subscription struct {
	// Filter is the topic filter as subscribed, $share/<group>/ prefix included.
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	// RetainHandling: 0 send retained messages on subscribe, 1 only when the
	// subscription is new, 2 never.
	RetainHandling byte
	// ID is the MQTT 5 subscription identifier; 0 means none.
	ID uint32
}

// Delivery is a message on its way to one session.
type Delivery struct {
	Message *Message
	// QoS is the delivered QoS: the message's, downgraded to the granted one.
	QoS byte
	// Retain is the retain flag as the receiver sees it.
	Retain bool
	// Dup marks a redelivery of a message that was sent before.
	Dup bool
	// SubscriptionIDs lists the identifiers of every matching subscription.
	SubscriptionIDs []uint32
	// Shared is the $share/<group>/<filter> subscription the delivery came
	// through; empty for plain subscriptions. A session that ends with it
	// unacknowledged hands it to another member of the group.
	Shared string
	// Released marks a QoS 2 delivery whose PUBREC the client already sent
	// (on an earlier connection): it resumes with PUBREL.
	Released bool
	// Seq numbers a delivery kept in a durable session's store queue; 0
	// for others. Front ends report it back with Session.Acked.
	Seq uint64
}

// Sink receives a session's deliveries while a connection is attached.
type Sink interface {
	// Deliver hands d to the connection. It must not block: it returns false
	// when the connection cannot take d (its queue is full or it is closing).
	Deliver(d Delivery) bool
}

// Evicter is a Sink whose connection can be closed for a session takeover
// on another node of a cluster (MQTT 5: DISCONNECT 0x8E).
type Evicter interface {
	Evict()
}
