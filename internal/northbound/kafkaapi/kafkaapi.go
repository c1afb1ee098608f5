// Package kafkaapi is Hono's Kafka-based messaging (Hono 2.x's default):
// devices' telemetry and events are produced to hono.telemetry.<tenant>
// and hono.event.<tenant> with the device id as key and Hono's headers;
// applications' commands are consumed from hono.command.<tenant> by one
// consumer group for all nodes, and command responses and delivery-failure
// notifications are produced to hono.command_response.<tenant>.
//
// One idempotent producer with acks=all carries every record of a node, so
// the records of one device (one key, one partition) keep their order
// whatever their QoS; a QoS 1 message or an event counts as taken only once
// Kafka acknowledged it.
//
// # Caveats
//
// Topics are not created on the fly: a tenant's topics are made by an
// operator (`ferry kafka topics create`) or by brokers with
// auto.create.topics.enable. A record for a missing topic fails, naming
// the topic. A command consumed from Kafka reaches devices connected to
// this node only; the record's offset is committed once every command of
// its batch has an outcome.
package kafkaapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/kafkatopics"
)

// Topics names a tenant's Hono topics, under an optional prefix for
// clusters shared with others (hono#3680).
type Topics struct{ Prefix string }

// Telemetry is <prefix>hono.telemetry.<tenant>.
func (t Topics) Telemetry(tenant string) string { return t.Prefix + "hono.telemetry." + tenant }

// Event is <prefix>hono.event.<tenant>.
func (t Topics) Event(tenant string) string { return t.Prefix + "hono.event." + tenant }

// Command is <prefix>hono.command.<tenant>.
func (t Topics) Command(tenant string) string { return t.Prefix + "hono.command." + tenant }

// CommandResponse is <prefix>hono.command_response.<tenant>.
func (t Topics) CommandResponse(tenant string) string {
	return t.Prefix + "hono.command_response." + tenant
}

// All are a tenant's four topics.
func (t Topics) All(tenant string) []string {
	return []string{t.Telemetry(tenant), t.Event(tenant), t.Command(tenant), t.CommandResponse(tenant)}
}

// commandTopics matches every tenant's command topic.
func (t Topics) commandTopics() string {
	return "^" + regexp.QuoteMeta(t.Prefix+"hono.command.") + ".+$"
}

// commandTenant is the tenant of a command topic.
func (t Topics) commandTenant(topic string) string {
	return strings.TrimPrefix(topic, t.Prefix+"hono.command.")
}

// Header names of Hono's Kafka records.
const (
	HeaderContentType      = "content-type"
	HeaderCreationTime     = "creation-time"
	HeaderTTL              = "ttl"
	HeaderDeviceID         = hono.PropDeviceID
	HeaderTenantID         = hono.PropTenantID
	HeaderStatus           = hono.PropStatus
	HeaderSubject          = "subject"
	HeaderCorrelationID    = "correlation-id"
	HeaderResponseRequired = "response-required"
)

// ContentTypeDeliveryFailure is the content type of the response Ferry
// makes when a command could not be delivered.
const ContentTypeDeliveryFailure = "application/vnd.eclipse-hono-delivery-failure-notification+json"

// MaxBufferedRecords bounds the records waiting for Kafka: past it a QoS 0
// message is dropped (and counted), and a QoS 1 message or an event waits,
// holding its device back.
const MaxBufferedRecords = 50_000

// DefaultCommandGroup is the consumer group of the command topics.
const DefaultCommandGroup = "ferry-command-router"

// Options configures a Messaging.
type Options struct {
	// Client holds the connection options of every client: seed brokers,
	// TLS, SASL. Required.
	Client []kgo.Opt
	Topics Topics
	// Commands routes consumed commands to devices; nil: commands are not
	// consumed.
	Commands *command.Router
	// SkipCommands leaves the command topics to the other nodes' consumers;
	// this node still produces the responses of commands it delivers.
	SkipCommands bool
	// CommandGroup is the consumer group of the command topics; default
	// DefaultCommandGroup. All nodes of a cluster share it.
	CommandGroup string
	// ResponseTimeout is how long a device has to answer a request/response
	// command without a ttl header (ms) before the application gets a 408.
	// Default 60s.
	ResponseTimeout time.Duration
	// DeliveryTimeout bounds how long a record may wait for Kafka. Default
	// 30s.
	DeliveryTimeout time.Duration
	Logger          *slog.Logger
}

// Messaging is a node's Hono Kafka messaging.
type Messaging struct {
	opts Options
	log  *slog.Logger
	prod *kgo.Client
	cmds *kgo.Client // nil without Options.Commands

	cancel      context.CancelFunc
	done        chan struct{}
	stopReplies func()
	dropped     atomic.Uint64
}

// Start connects to Kafka and, with Options.Commands, starts consuming
// commands. ctx bounds the connection check.
func Start(ctx context.Context, opts Options) (*Messaging, error) {
	if opts.CommandGroup == "" {
		opts.CommandGroup = DefaultCommandGroup
	}
	if opts.ResponseTimeout <= 0 {
		opts.ResponseTimeout = time.Minute
	}
	if opts.DeliveryTimeout <= 0 {
		opts.DeliveryTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Messaging{opts: opts, log: opts.Logger, done: make(chan struct{})}
	var err error
	m.prod, err = kgo.NewClient(append(opts.Client,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(opts.DeliveryTimeout),
		// A missing topic fails its records soon, with the topic's name,
		// instead of holding the device for the delivery timeout.
		kgo.UnknownTopicRetries(2),
		// Devices wait for the acknowledgement: no lingering (franz-go's
		// default 10ms was the whole latency of a QoS 1 message); records
		// buffered while requests are in flight batch by themselves.
		kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(MaxBufferedRecords),
	)...)
	if err != nil {
		return nil, err
	}
	if err := kafkatopics.Ping(ctx, m.prod); err != nil {
		m.prod.Close()
		return nil, fmt.Errorf("no Kafka broker answers: %w", err)
	}
	if opts.Commands == nil {
		close(m.done)
		return m, nil
	}
	m.stopReplies = opts.Commands.ReceiveMessaging(hono.MessagingKafka, responseSink{m})
	if opts.SkipCommands {
		close(m.done)
		return m, nil
	}
	m.cmds, err = kgo.NewClient(append(opts.Client,
		kgo.ConsumerGroup(opts.CommandGroup),
		kgo.ConsumeRegex(),
		kgo.ConsumeTopics(opts.Topics.commandTopics()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Commands are for devices connected now: an old backlog would
		// reach them long after the application gave up.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.MetadataMaxAge(10*time.Second), // new tenants' command topics are found soon
	)...)
	if err != nil {
		m.stopReplies()
		m.prod.Close()
		return nil, err
	}
	var cctx context.Context
	cctx, m.cancel = context.WithCancel(context.Background())
	go m.consumeCommands(cctx)
	return m, nil
}

// Close stops consuming commands and flushes what is being produced.
func (m *Messaging) Close() {
	if m.stopReplies != nil {
		m.stopReplies()
	}
	if m.cmds != nil {
		m.cancel()
		<-m.done
		m.cmds.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.DeliveryTimeout)
	defer cancel()
	if err := m.prod.Flush(ctx); err != nil {
		m.log.Warn("kafka messaging: records not flushed at close", "err", err)
	}
	m.prod.Close()
}

// Produce sends a device's telemetry message or event (a message of the
// hub topics of internal/hono) to the tenant's topic and calls done with
// nil once Kafka acknowledged it, or with the error. A missing topic is an
// error that names it.
func (m *Messaging) Produce(tenant string, hm *hub.Message, done func(error)) {
	ep, device, ok := hono.ParseHubTopic(hm.Topic)
	if !ok {
		done(fmt.Errorf("kafka messaging: %q is not a Hono telemetry or event topic", hm.Topic))
		return
	}
	topic := m.opts.Topics.Telemetry(tenant)
	if ep == hono.Event {
		topic = m.opts.Topics.Event(tenant)
	}
	r := Record(topic, device, hm)
	cb := func(r *kgo.Record, err error) {
		if errors.Is(err, kgo.ErrMaxBuffered) {
			m.dropped.Add(1)
		}
		done(describe(r.Topic, err))
	}
	if hm.QoS == 0 {
		m.prod.TryProduce(context.Background(), r, cb) // never holds a device up: at most once
		return
	}
	m.prod.Produce(context.Background(), r, cb)
}

// Dropped counts the QoS 0 messages dropped because Kafka could not keep up.
func (m *Messaging) Dropped() uint64 { return m.dropped.Load() }

// describe names the topic of a failed record.
func describe(topic string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return fmt.Errorf("kafka topic %s does not exist (create the tenant's topics: ferry kafka topics create): %w", topic, err)
	}
	return fmt.Errorf("kafka topic %s: %w", topic, err)
}

// Record is the Kafka record of a device message: key the device id,
// value the payload, Hono's headers (content-type, creation-time, ttl in
// ms for a message that expires, the message's properties with non-string
// values JSON-encoded, then its user properties).
func Record(topic, device string, hm *hub.Message) *kgo.Record {
	created := hm.Created
	if created.IsZero() {
		created = time.Now()
	}
	hs := make([]kgo.RecordHeader, 0, 3+len(hm.Properties)+len(hm.UserProperties))
	ct := hm.ContentType
	if ct == "" {
		ct = hono.ContentTypeOctetStream
	}
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderContentType, Value: []byte(ct)},
		kgo.RecordHeader{Key: HeaderCreationTime, Value: strconv.AppendInt(nil, created.UnixMilli(), 10)})
	if !hm.Expiry.IsZero() {
		hs = append(hs, kgo.RecordHeader{Key: HeaderTTL, Value: strconv.AppendInt(nil, max(hm.Expiry.Sub(created).Milliseconds(), 0), 10)})
	}
	for _, p := range hm.Properties {
		hs = append(hs, kgo.RecordHeader{Key: p.Key, Value: headerValue(p.Value)})
	}
	for _, p := range hm.UserProperties {
		hs = append(hs, kgo.RecordHeader{Key: p.Key, Value: []byte(p.Value)})
	}
	// No Timestamp: franz-go sets it at Produce and measures the delivery
	// timeout from it, which an older creation time would cut short.
	return &kgo.Record{Topic: topic, Key: []byte(device), Value: hm.Payload, Headers: hs}
}

// headerValue encodes a property as Hono does: strings as UTF-8, anything
// else as JSON.
func headerValue(v any) []byte {
	switch v := v.(type) {
	case string:
		return []byte(v)
	case int64:
		return strconv.AppendInt(nil, v, 10)
	case bool:
		return strconv.AppendBool(nil, v)
	}
	b, _ := json.Marshal(v)
	return b
}

// header returns the value of the first header named key.
func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// kafkaReplyID is the reply id of request/response commands from Kafka:
// their responses all go to the tenant's command_response topic, told
// apart by correlation id.
const kafkaReplyID = "kafka"

// consumeCommands routes the commands of every tenant's command topic
// until ctx ends. A batch's offsets are committed once each of its
// commands has an outcome, so that a node that stops in between leaves
// them to the group's next member (at least once).
func (m *Messaging) consumeCommands(ctx context.Context) {
	defer close(m.done)
	for {
		fs := m.cmds.PollFetches(ctx)
		if ctx.Err() != nil {
			m.cmds.AllowRebalance()
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			m.log.Warn("kafka messaging: fetching commands", "topic", topic, "partition", p, "err", err)
		})
		var wg sync.WaitGroup
		var recs []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, r)
			wg.Add(1)
			m.route(ctx, r, wg.Done)
		})
		wg.Wait()
		if len(recs) > 0 {
			if err := m.cmds.CommitRecords(ctx, recs...); err != nil && ctx.Err() == nil {
				m.log.Warn("kafka messaging: command offsets not committed", "err", err)
			}
		}
		m.cmds.AllowRebalance()
	}
}

// route sends one command record to its device and calls done once it
// has an outcome. A command that is not delivered and wants a response
// gets a delivery-failure notification.
func (m *Messaging) route(ctx context.Context, r *kgo.Record, done func()) {
	tenant := m.opts.Topics.commandTenant(r.Topic)
	cmd, err := parseCommand(tenant, r)
	if err != nil {
		m.log.Info("kafka messaging: command dropped", "topic", r.Topic, "offset", r.Offset, "err", err)
		done()
		return
	}
	m.opts.Commands.Send(ctx, cmd, func(o command.Outcome) {
		defer done()
		if cmd.OneWay() {
			return
		}
		if o == command.Accepted {
			timeout := m.opts.ResponseTimeout
			if v, ok := header(r, HeaderTTL); ok {
				if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 {
					timeout = time.Duration(ms) * time.Millisecond
				}
			}
			m.opts.Commands.ExpectResponse(cmd, timeout)
			return
		}
		status, why := 503, "the device is not connected"
		if o == command.Rejected {
			status, why = 400, "the device rejected the command"
		}
		m.failure(cmd, r, status, why)
	})
}

// parseCommand reads a command record (Hono's headers device_id, subject,
// content-type, correlation-id, response-required).
func parseCommand(tenant string, r *kgo.Record) (*command.Command, error) {
	device, _ := header(r, HeaderDeviceID)
	if device == "" {
		device = string(r.Key)
	}
	name, _ := header(r, HeaderSubject)
	if device == "" || name == "" {
		return nil, errors.New("a command needs the headers device_id and subject")
	}
	cmd := &command.Command{Messaging: hono.MessagingKafka, Tenant: tenant, Device: device, Name: name, Payload: r.Value}
	cmd.ContentType, _ = header(r, HeaderContentType)
	if req, _ := header(r, HeaderResponseRequired); req == "true" {
		cmd.CorrelationID, _ = header(r, HeaderCorrelationID)
		if cmd.CorrelationID == "" {
			return nil, errors.New("a command with response-required needs a correlation-id")
		}
		cmd.ReplyID = kafkaReplyID
	}
	return cmd, nil
}

// failure produces the delivery-failure notification of cmd, copying the
// command's delivery-failure-notification-metadata headers as Hono does.
func (m *Messaging) failure(cmd *command.Command, r *kgo.Record, status int, why string) {
	body, _ := json.Marshal(map[string]string{"error": why})
	resp := &command.Response{Messaging: hono.MessagingKafka, Tenant: cmd.Tenant, Device: cmd.Device,
		CorrelationID: cmd.CorrelationID, ReplyID: cmd.ReplyID, Status: status, ContentType: ContentTypeDeliveryFailure, Payload: body}
	rec := m.responseRecord(resp)
	for _, h := range r.Headers {
		if strings.HasPrefix(h.Key, "delivery-failure-notification-metadata") {
			rec.Headers = append(rec.Headers, h)
		}
	}
	m.produceResponse(rec)
}

func (m *Messaging) responseRecord(resp *command.Response) *kgo.Record {
	now := time.Now()
	hs := []kgo.RecordHeader{
		{Key: HeaderCorrelationID, Value: []byte(resp.CorrelationID)},
		{Key: HeaderCreationTime, Value: strconv.AppendInt(nil, now.UnixMilli(), 10)},
		{Key: HeaderDeviceID, Value: []byte(resp.Device)},
		{Key: HeaderStatus, Value: strconv.AppendInt(nil, int64(resp.Status), 10)},
		{Key: HeaderTenantID, Value: []byte(resp.Tenant)},
	}
	if resp.ContentType != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderContentType, Value: []byte(resp.ContentType)})
	}
	return &kgo.Record{Topic: m.opts.Topics.CommandResponse(resp.Tenant), Key: []byte(resp.Device), Value: resp.Payload, Headers: hs}
}

func (m *Messaging) produceResponse(rec *kgo.Record) {
	m.prod.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
		if err != nil {
			m.log.Warn("kafka messaging: command response lost", "err", describe(r.Topic, err))
		}
	})
}

// responseSink takes the responses of Kafka commands.
type responseSink struct{ m *Messaging }

func (s responseSink) Respond(resp *command.Response) bool {
	s.m.produceResponse(s.m.responseRecord(resp))
	return true
}
