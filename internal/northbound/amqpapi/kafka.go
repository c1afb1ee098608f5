package amqpapi

import (
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
)

// KafkaSource serves receiver links from Kafka topics: the AMQP-Kafka
// bridge (kafkabridge.Bridge) does, with its bounds on consumer links.
type KafkaSource interface {
	// ConsumeLatest serves snd from topic as a member of the consumer
	// group: a group without committed offsets starts at the end of the
	// topic, a known one at its committed offsets, which settlement
	// advances (accepted and rejected are done, released and modified
	// are sent again). convert makes the message of a record; nil skips
	// it as done.
	ConsumeLatest(snd *amqp.Sender, topic, group string, convert func(*kgo.Record) *amqp.Message) error
}

// KafkaGroupPrefix starts the consumer groups of the telemetry and event
// links served from Kafka.
const KafkaGroupPrefix = "ferry-amqp."

// KafkaGroup is the Kafka consumer group of a telemetry or event link:
// ferry-amqp.<endpoint>.<tenant> without a subscription name, and
// ferry-amqp.<endpoint>.<tenant>/<name> with one. Tenant ids may contain
// '.', never '/' (it ends the tenant in the address), so no two groups
// share an id. The ids name no node: the links of one group on every node
// are members of the same Kafka group.
func KafkaGroup(ep hono.Endpoint, tenant, name string) string {
	g := KafkaGroupPrefix + ep.String() + "." + tenant
	if name != "" {
		g += "/" + name
	}
	return g
}

// joinKafka serves snd from the tenant's Kafka topic of ep in its group.
func (s *Server) joinKafka(tenant string, ep hono.Endpoint, name string, snd *amqp.Sender) error {
	topic := s.opts.KafkaTopics.Telemetry(tenant)
	if ep == hono.Event {
		topic = s.opts.KafkaTopics.Event(tenant)
	}
	return s.opts.Kafka.ConsumeLatest(snd, topic, KafkaGroup(ep, tenant, name), func(r *kgo.Record) *amqp.Message {
		return recordMessage(ep, r, time.Now())
	})
}

// headerContentEncoding is Hono's optional content-encoding header.
const headerContentEncoding = "content-encoding"

// recordMessage converts a record of Hono's Kafka messaging (as
// kafkaapi.Record makes them) to the AMQP message of the hub path: the
// record becomes a hub message and toAMQP does the rest, so both paths
// send the same. It returns nil for a record whose ttl passed, which Hono
// tells consumers to drop.
func recordMessage(ep hono.Endpoint, r *kgo.Record, now time.Time) *amqp.Message {
	m := &hub.Message{Payload: r.Value}
	device := string(r.Key)
	var ttl time.Duration
	hasTTL := false
	var encoding string
	seen := make(map[string]bool, len(r.Headers))
	for _, h := range r.Headers {
		// The properties come before the device's user properties, which
		// do not override them (as in toAMQP).
		if seen[h.Key] {
			continue
		}
		seen[h.Key] = true
		v := string(h.Value)
		switch h.Key {
		case kafkaapi.HeaderContentType:
			m.ContentType = v
		case kafkaapi.HeaderCreationTime:
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				m.Created = time.UnixMilli(ms)
			}
		case kafkaapi.HeaderTTL:
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
				ttl, hasTTL = time.Duration(ms)*time.Millisecond, true
			}
		case headerContentEncoding:
			encoding = v
		default:
			if h.Key == hono.PropDeviceID && v != "" {
				device = v
			}
			m.Properties = append(m.Properties, hub.Property{Key: h.Key, Value: propertyValue(h.Key, v)})
		}
	}
	if m.Created.IsZero() {
		m.Created = r.Timestamp
	}
	if hasTTL {
		m.Expiry = m.Created.Add(ttl)
		if now.After(m.Expiry) {
			return nil
		}
	}
	m.Topic = hono.HubTopic(ep, device)
	am := toAMQP(m)
	if encoding != "" {
		am.Properties.ContentEncoding = amqp.Symbol(encoding)
	}
	return am
}

// propertyValue types a header as the hub path types the property: Hono's
// ints as int64 (toAMQP sends them as int), the retain annotation as a
// bool, anything else as the string it is.
func propertyValue(key, v string) any {
	switch key {
	case hono.PropQoS, hono.PropTTD, hono.PropStatus:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	case hono.AnnotationRetain:
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return v
}
