package cluster

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/hub"
)

// The record format
//
// One record per message, in the messages topic and (for retained
// messages) in the retained topic:
//
//	key     tenant + "\x00" + topic: one partition per topic, so each
//	        topic's messages stay in order, and compaction keeps the last
//	        retained message of each topic
//	value   the payload; nil (a tombstone) in the retained topic when the
//	        topic's retained message is cleared
//	headers the fields below, in this order, each at most once except
//	        user properties; absent when unset
//
// Header values are UTF-8 text (numbers in decimal) except the correlation
// data, which is the raw bytes, so that kcat and Kafka-native consumers can
// read them. A decoder ignores headers it does not know, which is how the
// format grows.
const (
	// HeaderTenant is the tenant, also the first part of the key.
	HeaderTenant = "ferry.tenant"
	// HeaderNode is the ID of the node the message was published on; a
	// node skips its own records.
	HeaderNode = "ferry.node"
	// HeaderQoS is the QoS it was published with: "0", "1" or "2".
	HeaderQoS = "ferry.qos"
	// HeaderRetain is "1" for a retained message.
	HeaderRetain = "ferry.retain"
	// HeaderExpiry is when the message expires, in Unix milliseconds: an
	// absolute time, so a message that waited in Kafka past it is not
	// delivered.
	HeaderExpiry = "ferry.expiry"
	// HeaderContentType is the MQTT 5 content type.
	HeaderContentType = "ferry.content-type"
	// HeaderResponseTopic is the MQTT 5 response topic.
	HeaderResponseTopic = "ferry.response-topic"
	// HeaderCorrelation is the MQTT 5 correlation data, raw bytes.
	HeaderCorrelation = "ferry.correlation"
	// HeaderFormat is the MQTT 5 payload format indicator, in decimal.
	HeaderFormat = "ferry.format"
	// HeaderOrigin is the ID of the publishing session, for no-local
	// subscriptions on other nodes.
	HeaderOrigin = "ferry.origin"
	// HeaderUserPrefix followed by the key names an MQTT 5 user property
	// whose value is the header's; repeated and in order.
	HeaderUserPrefix = "ferry.user."
	// HeaderCreated is when the message entered Ferry, in Unix
	// nanoseconds (AMQP creation-time).
	HeaderCreated = "ferry.created"
	// HeaderPropertyPrefix followed by the key names a typed application
	// property (Hono's device_id, qos, ttd): its value is "s:" and the
	// string, "i:" and the decimal int64, or "b:true" / "b:false".
	HeaderPropertyPrefix = "ferry.p."
	// HeaderClaim marks a claim, not a message: the client ID in its value
	// connected on the record's node at HeaderClaimed, and other nodes close
	// that client's older connection. The key is the tenant and
	// ClaimTopicPrefix followed by the client ID; the value is empty.
	HeaderClaim = "ferry.claim"
	// HeaderClaimed is when the claimed connection opened, in Unix
	// nanoseconds: the record timestamp's milliseconds cannot order a
	// reconnection within the same millisecond.
	HeaderClaimed = "ferry.claimed"
)

// ClaimTopicPrefix starts the key topic of a claim record: a $ topic, which
// no wildcard subscription matches, should a decoder that does not know
// claims take it for a message.
const ClaimTopicPrefix = "$ferry/claim/"

// encodeClaim makes the claim record of clientID of tenant, connected on
// node at at, for the messages topic kt.
func encodeClaim(kt, tenant, node, clientID string, at time.Time) *kgo.Record {
	return &kgo.Record{Topic: kt, Key: recordKey(tenant, ClaimTopicPrefix+clientID), Value: []byte{}, Timestamp: at,
		Headers: []kgo.RecordHeader{
			{Key: HeaderTenant, Value: []byte(tenant)},
			{Key: HeaderNode, Value: []byte(node)},
			{Key: HeaderClaim, Value: []byte(clientID)},
			{Key: HeaderClaimed, Value: strconv.AppendInt(nil, at.UnixNano(), 10)},
		}}
}

// recordKey is the key of a tenant's topic.
func recordKey(tenant, topic string) []byte {
	k := make([]byte, 0, len(tenant)+1+len(topic))
	k = append(k, tenant...)
	k = append(k, 0)
	return append(k, topic...)
}

// encode makes the record of m, published in tenant on node, for the Kafka
// topic kt. A tombstone (for the retained topic) has a nil value and only
// the tenant and node headers.
func encode(kt, tenant, node string, m *hub.Message, tombstone bool) *kgo.Record {
	r := &kgo.Record{Topic: kt, Key: recordKey(tenant, m.Topic)}
	add := func(k string, v []byte) { r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: v}) }
	add(HeaderTenant, []byte(tenant))
	add(HeaderNode, []byte(node))
	if tombstone {
		return r
	}
	r.Value = m.Payload
	if r.Value == nil {
		r.Value = []byte{} // an empty payload, not a tombstone
	}
	add(HeaderQoS, []byte{'0' + m.QoS})
	if m.Retain {
		add(HeaderRetain, []byte("1"))
	}
	if !m.Expiry.IsZero() {
		add(HeaderExpiry, strconv.AppendInt(nil, m.Expiry.UnixMilli(), 10))
	}
	if m.ContentType != "" {
		add(HeaderContentType, []byte(m.ContentType))
	}
	if m.ResponseTopic != "" {
		add(HeaderResponseTopic, []byte(m.ResponseTopic))
	}
	if m.CorrelationData != nil {
		add(HeaderCorrelation, m.CorrelationData)
	}
	if m.PayloadFormat != nil {
		add(HeaderFormat, strconv.AppendUint(nil, uint64(*m.PayloadFormat), 10))
	}
	if m.Origin != "" {
		add(HeaderOrigin, []byte(m.Origin))
	}
	for _, u := range m.UserProperties {
		add(HeaderUserPrefix+u.Key, []byte(u.Value))
	}
	if !m.Created.IsZero() {
		add(HeaderCreated, strconv.AppendInt(nil, m.Created.UnixNano(), 10))
	}
	for _, p := range m.Properties {
		var v []byte
		switch x := p.Value.(type) {
		case string:
			v = append([]byte("s:"), x...)
		case int64:
			v = strconv.AppendInt([]byte("i:"), x, 10)
		case bool:
			v = strconv.AppendBool([]byte("b:"), x)
		default:
			continue // not a property type; the hub never makes one
		}
		add(HeaderPropertyPrefix+p.Key, v)
	}
	return r
}

// parseProperty reads a HeaderPropertyPrefix value.
func parseProperty(v string) (any, error) {
	typ, s, ok := strings.Cut(v, ":")
	if !ok {
		return nil, errors.New("no type")
	}
	switch typ {
	case "s":
		return s, nil
	case "i":
		return strconv.ParseInt(s, 10, 64)
	case "b":
		return strconv.ParseBool(s)
	}
	return nil, fmt.Errorf("type %q", typ)
}

// decoded is what a record says.
type decoded struct {
	tenant, node string
	m            *hub.Message
	// tombstone is set for a nil value: in the retained topic, the topic's
	// retained message was cleared.
	tombstone bool
	// claim is the client ID of a claim record (HeaderClaim), made at
	// claimed; m is then not a message.
	claim   string
	claimed time.Time
}

var errNotFerry = errors.New("not a Ferry record")

// decode reads a record made by encode. The message's payload is the
// record's value (kgo does not reuse fetch buffers); strings are copies.
func decode(r *kgo.Record) (decoded, error) {
	var d decoded
	tenant, topic, ok := strings.Cut(string(r.Key), "\x00")
	if !ok || topic == "" {
		return d, fmt.Errorf("%w: key %q is not tenant NUL topic", errNotFerry, r.Key)
	}
	d.tenant = tenant
	m := &hub.Message{Topic: topic}
	d.m = m
	seen := map[string]bool{}
	for _, h := range r.Headers {
		k := h.Key
		if u, ok := strings.CutPrefix(k, HeaderUserPrefix); ok {
			m.UserProperties = append(m.UserProperties, hub.UserProperty{Key: u, Value: string(h.Value)})
			continue
		}
		if p, ok := strings.CutPrefix(k, HeaderPropertyPrefix); ok {
			v, err := parseProperty(string(h.Value))
			if err != nil {
				return d, fmt.Errorf("%w: property %s: %v", errNotFerry, p, err)
			}
			m.Properties = append(m.Properties, hub.Property{Key: p, Value: v})
			continue
		}
		if !strings.HasPrefix(k, "ferry.") {
			continue // someone else's
		}
		if seen[k] {
			return d, fmt.Errorf("%w: header %s repeated", errNotFerry, k)
		}
		seen[k] = true
		v := string(h.Value)
		switch k {
		case HeaderTenant:
			if v != tenant {
				return d, fmt.Errorf("%w: header tenant %q, key tenant %q", errNotFerry, v, tenant)
			}
		case HeaderNode:
			d.node = v
		case HeaderQoS:
			if len(v) != 1 || v[0] < '0' || v[0] > '2' {
				return d, fmt.Errorf("%w: QoS %q", errNotFerry, v)
			}
			m.QoS = v[0] - '0'
		case HeaderRetain:
			switch v {
			case "0":
			case "1":
				m.Retain = true
			default:
				return d, fmt.Errorf("%w: retain %q", errNotFerry, v)
			}
		case HeaderExpiry:
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return d, fmt.Errorf("%w: expiry %q", errNotFerry, v)
			}
			m.Expiry = time.UnixMilli(ms)
		case HeaderContentType:
			m.ContentType = v
		case HeaderResponseTopic:
			m.ResponseTopic = v
		case HeaderCorrelation:
			m.CorrelationData = append([]byte{}, h.Value...)
		case HeaderFormat:
			f, err := strconv.ParseUint(v, 10, 8)
			if err != nil {
				return d, fmt.Errorf("%w: payload format %q", errNotFerry, v)
			}
			b := byte(f)
			m.PayloadFormat = &b
		case HeaderOrigin:
			m.Origin = v
		case HeaderCreated:
			ns, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return d, fmt.Errorf("%w: creation time %q", errNotFerry, v)
			}
			m.Created = time.Unix(0, ns)
		case HeaderClaim:
			if v == "" || topic != ClaimTopicPrefix+v {
				return d, fmt.Errorf("%w: claim of %q under key topic %q", errNotFerry, v, topic)
			}
			d.claim = v
		case HeaderClaimed:
			ns, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return d, fmt.Errorf("%w: claim time %q", errNotFerry, v)
			}
			d.claimed = time.Unix(0, ns)
		}
	}
	if d.claim != "" && d.claimed.IsZero() {
		d.claimed = r.Timestamp
	}
	d.tombstone = r.Value == nil
	m.Payload = r.Value
	return d, nil
}
