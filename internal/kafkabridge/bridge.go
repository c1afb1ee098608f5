// Package kafkabridge is an AMQP 1.0 <-> Kafka bridge on the northbound
// AMQP listener, after Strimzi's (protocols.md 3): applications produce
// to a Kafka topic on a sender link to kafka/<topic> (or on the anonymous
// relay with to = kafka/<topic>) and consume from it on a receiver link
// from kafka/<topic>/group.id/<group>.
//
// Topic names are taken literally: unlike Strimzi, '/' is not rewritten
// to '.', and since Kafka topic names cannot contain '/' an address that
// does is refused with amqp:invalid-field. Topics are never created.
//
// Produce: the message annotations x-opt-bridge.partition (int) and
// x-opt-bridge.key (string or binary) choose the partition and key;
// without them the producer spreads keyless records. A message sent
// unsettled is accepted once Kafka acknowledged the record (acks=all) and
// rejected with io.strimzi:error-to-kafka when it failed; a presettled
// one is at most once (failures are counted). A link has at most
// Options.InFlight records in flight: its credit comes back as Kafka
// acknowledges them.
//
// Consume: with the source filter io.strimzi:partition-filter:int the
// link reads that one partition, from io.strimzi:offset-filter:long or
// else from the group's committed offset; without it the link joins the
// consumer group for the topic. A group without committed offsets starts
// at the beginning of each partition. Settlement drives the commits:
// presettled messages are committed once sent; unsettled ones up to the
// first offset the application has not settled yet (accepted and rejected
// are done, released and modified are sent again), so a link that ends
// leaves the rest to the group (at least once). Kafka is fetched only
// while the link has credit.
//
// The northbound API's telemetry and event links, with Hono's Kafka
// messaging, are consumer links too (Bridge.ConsumeLatest): the same
// consumer with amqpapi's record conversion, whose new groups start at the
// end of the topic. They count against MaxConsumers.
//
// # Caveats
//
// Errors only Kafka can tell (a missing topic, an unknown partition) end
// a consumer link after its attach: the detach carries the condition.
// Each consumer link is a Kafka client of its own (its own connections
// and group membership); produce links share one producer.
package kafkabridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/northbound/amqpapi"
)

// Conditions of Strimzi's bridge that this one sends.
const (
	CondNoGroupID            amqp.Symbol = "io.strimzi:no-group-id"
	CondPartitionNotExists   amqp.Symbol = "io.strimzi:partition-not-exists"
	CondErrorToKafka         amqp.Symbol = "io.strimzi:error-to-kafka"
	CondWrongPartitionFilter amqp.Symbol = "io.strimzi:wrong-partition-filter"
	CondWrongOffsetFilter    amqp.Symbol = "io.strimzi:wrong-offset-filter"
	CondNoPartitionFilter    amqp.Symbol = "io.strimzi:no-partition-filter"
)

// Source filters of a consumer link.
const (
	FilterPartition amqp.Symbol = "io.strimzi:partition-filter:int"
	FilterOffset    amqp.Symbol = "io.strimzi:offset-filter:long"
)

// Message annotations: what a produced message asks for, what a consumed
// one carries.
const (
	AnnotationTopic     amqp.Symbol = "x-opt-bridge.topic"
	AnnotationPartition amqp.Symbol = "x-opt-bridge.partition"
	AnnotationOffset    amqp.Symbol = "x-opt-bridge.offset"
	AnnotationKey       amqp.Symbol = "x-opt-bridge.key"
)

// PropConverter is the link property choosing how messages and records
// convert: "json" for the whole message as a JSON envelope; absent or
// "body" for the body only.
const PropConverter amqp.Symbol = "ferry:converter"

// Defaults of Options.
const (
	DefaultMaxLinks        = 1000
	DefaultMaxConsumers    = 100
	DefaultInFlight        = 1000
	DefaultMaxUnsettled    = 1000
	DefaultDeliveryTimeout = 30 * time.Second
)

// Options configures a Bridge.
type Options struct {
	// Client holds the connection options of every Kafka client: seed
	// brokers, TLS, SASL. Required.
	Client []kgo.Opt
	// HonoTopicPrefix starts Hono's topic names (hono.kafka.topic_prefix):
	// an application scoped to tenants reaches
	// <prefix>hono.{telemetry,event,command,command_response}.<tenant>
	// of its tenants.
	HonoTopicPrefix string
	// AppTopics are the further topics each application (by name) may
	// reach: exact names, or a prefix ending in '*'.
	AppTopics map[string][]string
	// Reserved topics are refused to every application, "*" ones too:
	// Ferry's own cluster topics.
	Reserved []string
	// MaxLinks bounds the bridge's links over all connections; beyond,
	// attaches are refused with amqp:resource-limit-exceeded. Default
	// DefaultMaxLinks.
	MaxLinks int
	// MaxConsumers bounds the consumer links among them, since each is a
	// Kafka client. Default DefaultMaxConsumers.
	MaxConsumers int
	// InFlight is the most records of one produce link waiting for Kafka;
	// the link's credit is as large. Default DefaultInFlight.
	InFlight int
	// MaxUnsettled is the most messages a consumer link has sent and the
	// application not yet settled; past it, Kafka is not fetched. Default
	// DefaultMaxUnsettled.
	MaxUnsettled int
	// DeliveryTimeout bounds how long a record may wait for Kafka.
	// Default DefaultDeliveryTimeout.
	DeliveryTimeout time.Duration
	Logger          *slog.Logger
}

// Bridge serves the bridge's links of an amqpapi.Server.
type Bridge struct {
	opts Options
	log  *slog.Logger
	prod *kgo.Client

	// ctx ends every link's goroutine at Close.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	links     int
	consumers int
	closed    bool
	wg        sync.WaitGroup // the links' goroutines

	dropped atomic.Uint64
}

// New returns a Bridge with its producer; it does not wait for Kafka.
func New(opts Options) (*Bridge, error) {
	if opts.MaxLinks <= 0 {
		opts.MaxLinks = DefaultMaxLinks
	}
	if opts.MaxConsumers <= 0 {
		opts.MaxConsumers = DefaultMaxConsumers
	}
	if opts.InFlight <= 0 {
		opts.InFlight = DefaultInFlight
	}
	if opts.MaxUnsettled <= 0 {
		opts.MaxUnsettled = DefaultMaxUnsettled
	}
	if opts.DeliveryTimeout <= 0 {
		opts.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	prod, err := kgo.NewClient(append(slices.Clone(opts.Client),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(opts.DeliveryTimeout),
		// A missing topic fails its records soon, with the topic's name,
		// instead of holding the message for the delivery timeout.
		kgo.UnknownTopicRetries(2),
		kgo.RecordPartitioner(partitioner{kgo.UniformBytesPartitioner(64<<10, true, true, nil)}),
		// Applications that wait for each outcome would wait out the
		// linger for every message; batches still form while a request
		// is in flight.
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Bridge{opts: opts, log: opts.Logger, prod: prod, ctx: ctx, cancel: cancel}, nil
}

// Dropped counts presettled messages that Kafka did not take.
func (b *Bridge) Dropped() uint64 { return b.dropped.Load() }

// Close ends every link of the bridge (consumers commit what was settled
// and leave their groups), then flushes the producer.
func (b *Bridge) Close() {
	b.mu.Lock()
	closed := b.closed
	b.closed = true
	b.mu.Unlock()
	if closed {
		return
	}
	b.cancel()
	b.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.DeliveryTimeout)
	defer cancel()
	if err := b.prod.Flush(ctx); err != nil {
		b.log.Warn("kafka bridge: records not flushed at close", "err", err)
	}
	b.prod.Close()
}

// HandleLink implements amqpapi.Bridge.
func (b *Bridge) HandleLink(req *amqp.LinkRequest, app *amqpapi.Application) error {
	conv, err := converterOf(req.Attach.Properties)
	if err != nil {
		return err
	}
	if req.Receiver != nil {
		return b.handleProduce(req, app, conv)
	}
	return b.handleConsume(req, app, conv)
}

// acquire counts a new link, false when the bridge has no room for it.
func (b *Bridge) acquire(consumer bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return &amqp.Error{Condition: amqp.CondDetachForced, Description: "the Kafka bridge is closing"}
	case b.links >= b.opts.MaxLinks:
		return &amqp.Error{Condition: amqp.CondResourceLimitExceeded, Description: fmt.Sprintf("%d Kafka bridge links attached, the most allowed", b.links)}
	case consumer && b.consumers >= b.opts.MaxConsumers:
		return &amqp.Error{Condition: amqp.CondResourceLimitExceeded, Description: fmt.Sprintf("%d Kafka bridge consumer links attached, the most allowed", b.consumers)}
	}
	b.links++
	if consumer {
		b.consumers++
	}
	b.wg.Add(1)
	return nil
}

func (b *Bridge) release(consumer bool) {
	b.mu.Lock()
	b.links--
	if consumer {
		b.consumers--
	}
	b.mu.Unlock()
	b.wg.Done()
}

// maxTopicLen is Kafka's limit on topic names.
const maxTopicLen = 249

// checkTopic refuses what Kafka would not take as a topic name.
func checkTopic(topic string) error {
	if topic == "" {
		return &amqp.Error{Condition: amqp.CondInvalidField, Description: "no Kafka topic: use kafka/<topic>"}
	}
	if len(topic) > maxTopicLen {
		return &amqp.Error{Condition: amqp.CondInvalidField, Description: fmt.Sprintf("Kafka topic names have at most %d characters", maxTopicLen)}
	}
	for _, c := range topic {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return &amqp.Error{Condition: amqp.CondInvalidField, Description: fmt.Sprintf("%q is not a Kafka topic name (letters, digits, '.', '_', '-'; '/' is not rewritten to '.')", topic)}
		}
	}
	if topic == "." || topic == ".." {
		return &amqp.Error{Condition: amqp.CondInvalidField, Description: fmt.Sprintf("%q is not a Kafka topic name", topic)}
	}
	return nil
}

// produceTopic is the topic of a produce address, kafka/<topic>.
func produceTopic(addr string) (string, error) {
	topic, ok := strings.CutPrefix(addr, amqpapi.BridgePrefix)
	if !ok {
		return "", &amqp.Error{Condition: amqp.CondInvalidField, Description: fmt.Sprintf("%q is not a Kafka bridge address: use kafka/<topic>", addr)}
	}
	return topic, checkTopic(topic)
}

// consumeAddress splits kafka/<topic>/group.id/<group>.
func consumeAddress(addr string) (topic, group string, err error) {
	rest := strings.TrimPrefix(addr, amqpapi.BridgePrefix)
	topic, tail, _ := strings.Cut(rest, "/")
	if err := checkTopic(topic); err != nil {
		return "", "", err
	}
	group, ok := strings.CutPrefix(tail, "group.id/")
	if !ok || group == "" {
		return "", "", &amqp.Error{Condition: CondNoGroupID, Description: fmt.Sprintf("no consumer group in %q: use kafka/<topic>/group.id/<group>", addr)}
	}
	return topic, group, nil
}

// honoEndpoints are the endpoints of Hono's topics.
var honoEndpoints = []string{"telemetry.", "event.", "command.", "command_response."}

// authorize says whether app may use topic.
func (b *Bridge) authorize(app *amqpapi.Application, topic string) error {
	if slices.Contains(b.opts.Reserved, topic) {
		return &amqp.Error{Condition: amqp.CondUnauthorizedAccess, Description: fmt.Sprintf("Kafka topic %s is Ferry's own", topic)}
	}
	if slices.Contains(app.Tenants, "*") {
		return nil
	}
	if rest, ok := strings.CutPrefix(topic, b.opts.HonoTopicPrefix+"hono."); ok {
		for _, ep := range honoEndpoints {
			if tenant, ok := strings.CutPrefix(rest, ep); ok && tenant != "" && app.Allows(tenant) {
				return nil
			}
		}
	}
	for _, p := range b.opts.AppTopics[app.Name] {
		if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(topic, prefix) || p == topic {
			return nil
		}
	}
	return &amqp.Error{Condition: amqp.CondUnauthorizedAccess, Description: fmt.Sprintf(
		"application %s may not use Kafka topic %s: only the Hono topics of its tenants and its kafka_topics", app.Name, topic)}
}

// describe names the topic of a failed record.
func describe(topic string, err error) string {
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Sprintf("Kafka topic %s does not exist (topics are not created on the fly): %v", topic, err)
	}
	return fmt.Sprintf("Kafka topic %s: %v", topic, err)
}
