// Package cluster makes Ferry nodes share one message stream through Kafka,
// for the scale-out mode: N identical nodes behind a TCP load balancer,
// each stateless apart from its open connections.
//
// # Basics
//
// A Cluster is the hub's Relay: every message published on the node's hub
// is produced to one Kafka topic (Options.Topic), while the node's own
// subscribers get it directly. Every node consumes every partition of that
// topic, without a consumer group since every node needs every message,
// from its end at start-up, and hands what other nodes produced to its hub
// (hub.DeliverRemote), which delivers without relaying again.
//
// Retained messages also go to a compacted topic (Options.RetainedTopic),
// a tombstone clearing one. Start reads it from the beginning to its end
// before returning, so that a subscriber on a new node gets the retained
// messages, and the node keeps reading it to stay current
// (hub.ApplyRetained). Every node applies the records of that topic in the
// topic's order, its own included, so all nodes agree on the last retained
// message of a topic even when two nodes set it at once; a node skips what
// is older than a retained message it set itself and has not read back
// yet, so its own subscribers never see an older one in between.
//
// A QoS 1/2 publish completes once Kafka acknowledged its records
// (acks=all, idempotent producer); a failure reaches the publisher as
// hub.Result.Err. QoS 0 does not wait, and is dropped (and counted) when
// the producer's buffer is full, rather than holding up its publisher.
//
// # Caveats
//
// Topics starting with $SYS describe one node and stay on it. Expiry is an
// absolute time: nodes need synchronised clocks. A node ID must be unique
// among running nodes; records carrying the node's own ID are not delivered
// again. Start's catch-up compares record offsets with the end offsets it
// listed; a retained topic whose last records were compacted away
// (tombstones past delete.retention.ms in a rolled segment) never shows
// them, so a catch-up that fetches nothing for catchUpIdle ends anyway,
// with a warning naming the partitions.
//
// The record format is described in record.go and by the Header
// constants.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/kafkatopics"
)

// Default topic names.
const (
	DefaultTopic         = "ferry.messages"
	DefaultRetainedTopic = "ferry.retained"
)

// ErrClosed is the error of a publish relayed after Close: its message may
// not reach the other nodes.
var ErrClosed = errors.New("cluster: closed")

// Options configures a Cluster. Brokers is required.
type Options struct {
	// Brokers are the Kafka bootstrap brokers, host:port.
	Brokers []string
	// Topic carries every message; if empty, DefaultTopic.
	Topic string
	// RetainedTopic, compacted, keeps the retained messages; if empty,
	// DefaultRetainedTopic.
	RetainedTopic string
	// NodeID tells this node's records from others'. It must be unique
	// among running nodes; if empty, the host name and a random suffix.
	NodeID string
	// Partitions and ReplicationFactor apply to topics Start creates; if
	// zero, the brokers' defaults.
	Partitions        int32
	ReplicationFactor int16
	// DeliveryTimeout bounds how long a record may wait for Kafka before
	// its publish fails (at least a second); if zero, 30 s. It also bounds
	// the flush in Close.
	DeliveryTimeout time.Duration
	// Logger receives Kafka client warnings and failures; if nil,
	// slog.Default().
	Logger *slog.Logger
	// TLS, if set, connects to the brokers over TLS with this
	// configuration.
	TLS *tls.Config
	// SASL authenticates the node to the brokers; zero: no SASL.
	SASL SASL
	// Kafka holds further franz-go options for every client.
	Kafka []kgo.Opt

	// partitionCheck is how often the messages topic is checked for new
	// partitions; if zero, a minute.
	partitionCheck time.Duration
}

// SASL names a SASL mechanism and its credentials.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: none.
	Mechanism          string
	Username, Password string
}

// ClientOpts are the franz-go options that reach brokers with tlsCfg (nil:
// plain TCP) and s, for other Kafka clients of the node that share the
// cluster's connection settings.
// The string says how they connect, for errors: plaintext or TLS, and the
// SASL mechanism and user.
func ClientOpts(brokers []string, tlsCfg *tls.Config, s SASL, clientID string, log *slog.Logger) ([]kgo.Opt, string, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID(clientID), kgo.WithLogger(kafkaLogger{log})}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg.Clone()))
	}
	m, err := s.mechanism()
	if err != nil {
		return nil, "", err
	}
	if m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, connection(tlsCfg != nil, s), nil
}

// connection says how a client connects, for errors.
func connection(tls bool, s SASL) string {
	how := "plaintext"
	if tls {
		how = "TLS"
	}
	if s.Mechanism != "" {
		how += ", SASL " + s.Mechanism + " as " + s.Username
	}
	return how
}

// mechanism returns the franz-go mechanism, nil for none.
func (s SASL) mechanism() (sasl.Mechanism, error) {
	switch s.Mechanism {
	case "":
		return nil, nil
	case "PLAIN":
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("cluster: SASL mechanism %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
}

func (o Options) withDefaults() (Options, error) {
	if len(o.Brokers) == 0 {
		return o, errors.New("cluster: no Kafka brokers")
	}
	if _, err := o.SASL.mechanism(); err != nil {
		return o, err
	}
	if o.Topic == "" {
		o.Topic = DefaultTopic
	}
	if o.RetainedTopic == "" {
		o.RetainedTopic = DefaultRetainedTopic
	}
	if o.Topic == o.RetainedTopic {
		return o, fmt.Errorf("cluster: messages and retained messages need two topics, not %s twice", o.Topic)
	}
	if o.NodeID == "" {
		host, _ := os.Hostname()
		var b [4]byte
		rand.Read(b[:])
		o.NodeID = strings.TrimPrefix(host+"-", "-") + hex.EncodeToString(b[:])
	}
	if o.DeliveryTimeout == 0 {
		o.DeliveryTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.partitionCheck == 0 {
		o.partitionCheck = time.Minute
	}
	return o, nil
}

// Cluster connects one node's hub to the others through Kafka. It is the
// hub's Relay.
type Cluster struct {
	h    *hub.Hub
	opts Options
	log  *slog.Logger

	prod *kgo.Client // produces; administration
	msgs *kgo.Client // consumes the messages topic
	ret  *kgo.Client // consumes the retained topic

	// mu guards closed: Relay holds it shared while it produces, so that
	// Close knows when no more records come.
	mu     sync.RWMutex
	closed bool
	once   sync.Once

	ctx    context.Context // ends at Close: the consumers stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// pending counts, by record key, the retained records this node
	// produced and has not read back yet.
	pendMu  sync.Mutex
	pending map[string]int

	ready chan struct{} // closed when the retained topic is caught up

	stats struct {
		produced, produceErrors, consumed, decodeErrors atomic.Uint64
	}
	lastErrLog atomic.Int64 // unix nanos of the last produce error logged
}

// Start connects h to the cluster: it creates the topics if need be, reads
// the retained topic up to its end, and only then makes itself h's relay
// and returns, so that the node can report ready. ctx bounds the start,
// not the Cluster's life; Close ends that.
func Start(ctx context.Context, h *hub.Hub, opts Options) (*Cluster, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cluster{h: h, opts: o, log: o.Logger.With("node", o.NodeID), pending: make(map[string]int), ready: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	h.SetRelay(c)
	return c, nil
}

func (c *Cluster) start(ctx context.Context) error {
	o := c.opts
	common := []kgo.Opt{
		kgo.SeedBrokers(o.Brokers...),
		kgo.ClientID("ferry-" + o.NodeID),
		kgo.WithLogger(kafkaLogger{c.log}),
	}
	if o.TLS != nil {
		common = append(common, kgo.DialTLSConfig(o.TLS.Clone()))
	}
	if m, _ := o.SASL.mechanism(); m != nil {
		common = append(common, kgo.SASL(m))
	}
	common = append(common, o.Kafka...)
	var err error
	c.prod, err = kgo.NewClient(append(common,
		kgo.RequiredAcks(kgo.AllISRAcks()), // with idempotence, franz-go's default; stated because acks are the point
		kgo.RecordDeliveryTimeout(o.DeliveryTimeout),
	)...)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	// Kafka may still be starting: try until ctx ends, then say why the
	// last try failed (TLS, SASL), which the requests below would not.
	if err := kafkatopics.Ping(ctx, c.prod); err != nil {
		return fmt.Errorf("cluster: no Kafka broker of %v answers (%s): %w", o.Brokers, connection(o.TLS != nil, o.SASL), err)
	}
	createErr := createTopics(ctx, c.prod, o)
	msgSpans, err := kafkatopics.Offsets(ctx, c.prod, o.Topic)
	if err != nil {
		return fmt.Errorf("cluster: topic %s: %w", o.Topic, errors.Join(err, createErr))
	}
	retSpans, err := kafkatopics.Offsets(ctx, c.prod, o.RetainedTopic)
	if err != nil {
		return fmt.Errorf("cluster: topic %s: %w", o.RetainedTopic, errors.Join(err, createErr))
	}

	// Messages from the end as it is now, exactly: whatever is produced
	// once Start returned is consumed. Should the node fall behind the
	// topic's retention, it skips to the end.
	at := make(map[int32]kgo.Offset, len(msgSpans))
	for p, s := range msgSpans {
		at[p] = kgo.NewOffset().At(s.End)
	}
	// No fetch sessions: with them, franz-go v1.22.3's Client.Close races
	// with an in-flight fetch (the race detector sees it, franz-go#1248's
	// family); a node's few partitions gain nothing from them.
	consumer := append(slices.Clip(common), kgo.DisableFetchSessions())
	c.msgs, err = kgo.NewClient(slices.Concat(consumer, []kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.Topic: at}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
	})...)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	c.ret, err = kgo.NewClient(slices.Concat(consumer, []kgo.Opt{
		kgo.ConsumeTopics(o.RetainedTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// franz-go may send its first fetch before every partition's
		// start offset is known; the broker then holds that fetch for
		// its max wait (5 s by default, all of catchUpIdle) over the
		// partitions that have nothing, and the catch-up gave up just
		// as the next fetch would have brought the rest. Several fetches
		// fit in the idle window.
		kgo.FetchMaxWait(catchUpIdle / 5),
	})...)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}

	behind := make(map[int32]int64)
	for p, s := range retSpans {
		if s.End > s.Start {
			behind[p] = s.End
		}
	}
	c.wg.Add(3)
	go c.consumeMessages()
	go c.consumeRetained(behind)
	go c.watchPartitions(msgSpans)

	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: reading retained messages from %s: %w", o.RetainedTopic, ctx.Err())
	}
}

// NodeID returns the node's ID, as its records carry it.
func (c *Cluster) NodeID() string { return c.opts.NodeID }

// local reports whether messages of topic stay on their node.
func local(topic string) bool { return strings.HasPrefix(topic, "$SYS") }

// Relay produces m to the messages topic and, when retained, to the
// retained topic; done (if not nil) learns when Kafka acknowledged both.
// It implements hub.Relay.
func (c *Cluster) Relay(tenant string, m *hub.Message, done func(error)) {
	if local(m.Topic) {
		if done != nil {
			done(nil)
		}
		return
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		c.stats.produceErrors.Add(1)
		if done != nil {
			done(ErrClosed)
		}
		return
	}
	if done != nil && m.Retain {
		done = joinAcks(2, done)
	}
	rec := encode(c.opts.Topic, tenant, c.opts.NodeID, m, false)
	c.produce(rec, done, done == nil && !m.Retain)
	if !m.Retain {
		return
	}
	key := string(rec.Key)
	c.pendMu.Lock()
	c.pending[key]++
	c.pendMu.Unlock()
	c.produce(encode(c.opts.RetainedTopic, tenant, c.opts.NodeID, m, len(m.Payload) == 0), func(err error) {
		if err != nil {
			c.readBack(key) // it will not come back
		}
		if done != nil {
			done(err)
		}
	}, false)
}

// Claim tells the other nodes that clientID of tenant connects here, so
// that they close its older connection. It implements hub.Claimer. A claim
// that cannot be produced is dropped (and counted): the older connection
// then lives until its keep alive expires.
func (c *Cluster) Claim(tenant, clientID string) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return
	}
	c.produce(encodeClaim(c.opts.Topic, tenant, c.opts.NodeID, clientID, time.Now()), nil, true)
}

// produce hands r to the producer; try drops it when the producer's buffer
// is full instead of waiting for room (QoS 0).
func (c *Cluster) produce(r *kgo.Record, done func(error), try bool) {
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			c.stats.produceErrors.Add(1)
			c.logProduceError(r, err)
		} else {
			c.stats.produced.Add(1)
		}
		if done != nil {
			done(err)
		}
	}
	if try {
		c.prod.TryProduce(context.Background(), r, promise)
		return
	}
	// Blocks while the buffer is full: slows the publisher (QoS 1/2 and
	// retained messages are not dropped). The records time out after
	// DeliveryTimeout, so this ends.
	c.prod.Produce(context.Background(), r, promise)
}

// logProduceError logs at most one produce failure a second: when Kafka is
// away, every record fails.
func (c *Cluster) logProduceError(r *kgo.Record, err error) {
	now := time.Now().UnixNano()
	last := c.lastErrLog.Load()
	if now-last < int64(time.Second) || !c.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	c.log.Warn("kafka produce failed", "topic", r.Topic, "err", err, "failures", c.stats.produceErrors.Load())
}

// joinAcks returns a done for n records that calls done once, after the
// last, with the first failure.
func joinAcks(n int32, done func(error)) func(error) {
	var left atomic.Int32
	left.Store(n)
	var first atomic.Pointer[error]
	return func(err error) {
		if err != nil {
			first.CompareAndSwap(nil, &err)
		}
		if left.Add(-1) == 0 {
			if p := first.Load(); p != nil {
				done(*p)
				return
			}
			done(nil)
		}
	}
}

// readBack notes that one of this node's retained records of key came back
// (or never will) and returns how many are still on their way.
func (c *Cluster) readBack(key string) int {
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	n := c.pending[key] - 1
	if n <= 0 {
		delete(c.pending, key)
		return 0
	}
	c.pending[key] = n
	return n
}

func (c *Cluster) pendingFor(key string) int {
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	return c.pending[key]
}

// poll runs handle on every record cl fetches until Close.
func (c *Cluster) poll(cl *kgo.Client, handle func(*kgo.Record)) bool {
	fs := cl.PollFetches(c.ctx)
	if c.ctx.Err() != nil || fs.IsClientClosed() {
		return false
	}
	fs.EachError(func(topic string, p int32, err error) {
		c.log.Warn("kafka fetch failed", "topic", topic, "partition", p, "err", err)
	})
	fs.EachRecord(handle)
	return true
}

func (c *Cluster) consumeMessages() {
	defer c.wg.Done()
	for c.poll(c.msgs, c.handleMessage) {
	}
}

func (c *Cluster) handleMessage(r *kgo.Record) {
	d, ok := c.decode(r)
	if !ok || d.node == c.opts.NodeID {
		return // delivered locally when it was published
	}
	c.stats.consumed.Add(1)
	if d.claim != "" {
		c.h.TakeOver(d.tenant, d.claim, d.claimed)
		return
	}
	c.h.DeliverRemote(d.tenant, d.m)
}

// catchUpIdle ends a retained catch-up that fetches nothing for this long:
// the missing end offsets belong to records compaction removed.
var catchUpIdle = 5 * time.Second

// consumeRetained applies the retained topic; behind holds the end offsets
// of the partitions to read before the node is ready.
func (c *Cluster) consumeRetained(behind map[int32]int64) {
	defer c.wg.Done()
	left, err := kafkatopics.ReadTo(c.ctx, c.ret, behind, catchUpIdle, c.handleRetained, func(topic string, p int32, err error) {
		c.log.Warn("kafka fetch failed", "topic", topic, "partition", p, "err", err)
	})
	if err != nil {
		return // closed
	}
	if len(left) > 0 {
		c.log.Warn("retained topic: no records up to its end offsets (compacted away?); ready without them",
			"topic", c.opts.RetainedTopic, "partitions_and_ends", left)
	}
	close(c.ready)
	for c.poll(c.ret, c.handleRetained) {
	}
}

func (c *Cluster) handleRetained(r *kgo.Record) {
	d, ok := c.decode(r)
	if !ok {
		return
	}
	key := string(r.Key)
	if d.node == c.opts.NodeID {
		if c.readBack(key) > 0 {
			return // this node set a newer one since
		}
	} else if c.pendingFor(key) > 0 {
		return // older than the one this node set and will read back
	}
	c.stats.consumed.Add(1)
	c.h.ApplyRetained(d.tenant, d.m) // a tombstone has no payload: it clears
}

func (c *Cluster) decode(r *kgo.Record) (decoded, bool) {
	d, err := decode(r)
	if err != nil {
		if c.stats.decodeErrors.Add(1) == 1 {
			c.log.Warn("skipping records not in Ferry's format", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
		}
		return d, false
	}
	return d, true
}

// watchPartitions adds partitions added to the messages topic to its
// consumer, from their start: everything in them is new.
func (c *Cluster) watchPartitions(known map[int32]kafkatopics.Span) {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.partitionCheck)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		parts, err := kafkatopics.Partitions(c.ctx, c.prod, c.opts.Topic)
		if err != nil {
			continue // the next tick tries again
		}
		added := map[int32]kgo.Offset{}
		for _, p := range parts {
			if _, ok := known[p]; !ok {
				known[p] = kafkatopics.Span{}
				added[p] = kgo.NewOffset().AtStart()
			}
		}
		if len(added) > 0 {
			c.log.Info("consuming new partitions", "topic", c.opts.Topic, "partitions", len(added))
			c.msgs.AddConsumePartitions(map[string]map[int32]kgo.Offset{c.opts.Topic: added})
		}
	}
}

// Close stops relaying (later publishes fail with ErrClosed), waits up to
// DeliveryTimeout for the records produced so far, and stops the
// consumers. The hub keeps the Cluster as its relay: a node closes its
// front ends first.
func (c *Cluster) Close() {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		if c.prod != nil {
			ctx, cancel := context.WithTimeout(context.Background(), c.opts.DeliveryTimeout)
			if err := c.prod.Flush(ctx); err != nil {
				c.log.Warn("kafka flush at close", "err", err)
			}
			cancel()
		}
		c.cancel()
		c.wg.Wait()
		for _, cl := range []*kgo.Client{c.msgs, c.ret, c.prod} {
			if cl != nil {
				cl.Close() // fails what is still buffered: its publishers hear of it
			}
		}
	})
}

// Stats counts what the Cluster did, for metrics.
type Stats struct {
	// Produced is the number of records Kafka acknowledged.
	Produced uint64
	// ProduceErrors is the number of records Kafka did not take: failed,
	// timed out, dropped with the producer's buffer full (QoS 0), or
	// relayed after Close.
	ProduceErrors uint64
	// Consumed is the number of records handed to the hub: other nodes'
	// messages delivered, and retained records applied (this node's own
	// too when they are the latest, such as those of an earlier run).
	Consumed uint64
	// DecodeErrors is the number of records skipped because they are not
	// in Ferry's format.
	DecodeErrors uint64
}

// Stats returns the counters.
func (c *Cluster) Stats() Stats {
	return Stats{
		Produced:      c.stats.produced.Load(),
		ProduceErrors: c.stats.produceErrors.Load(),
		Consumed:      c.stats.consumed.Load(),
		DecodeErrors:  c.stats.decodeErrors.Load(),
	}
}
