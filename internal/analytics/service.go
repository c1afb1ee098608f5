// Package analytics runs continuous queries inside Ferry: windowed,
// per-device aggregates over a tenant's telemetry, events or MQTT
// traffic, with rows published to MQTT, AMQP, Prometheus and an SSE
// stream (docs/analytics.md).
//
// # Basics
//
// A Service holds the queries of every tenant. Apply starts (or
// replaces) one: it becomes a hub tap of its tenant on the query's source
// (events and durable_input: a durable hub session), whose messages go
// into bounded queues read by one goroutine per shard; each shard owns an
// engine.Operator. Keys are spread over shards by device when the query
// groups by device, else one shard holds them all. Rows go to the outputs
// from the shard goroutine.
//
// Kafka sources (kafkasource.go) replace the hub session by a consumer
// group; exactly-once Kafka queries (kafkatxn.go) run in Kafka
// transactions with a changelog instead of shards and checkpoints.
//
// # Caveats
//
//   - The hub never waits for a query: telemetry that finds the shard's
//     queue full is dropped and counted (reason queue_full), so a slow
//     query loses telemetry rather than slowing devices. Events (and
//     durable_input) go through a durable session instead: refused when
//     the queue is full, kept by the hub, drained later.
//   - State lives in memory; with Checkpoints it is written to Pebble
//     every CheckpointInterval and at Close, and read back by the next
//     Apply of the same query (same SQL). Telemetry that arrived after the
//     last checkpoint before a crash is lost; events are replayed.
package analytics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/analytics/engine"
	"github.com/ferry-iot/ferry/internal/analytics/query"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
)

// Options configures a Service.
type Options struct {
	Hub *hub.Hub
	// Ext reads a device's registry ext for device.ext.<k>; nil: none.
	Ext func(ctx context.Context, tenant, device string) (map[string]any, error)
	// Kafka, if set, sends the rows of Kafka outputs; without it a query
	// with one is refused.
	Kafka KafkaProducer
	// KafkaConsumer, if set, are the connection options of the consumers
	// of Kafka sources; without them FROM kafka is refused.
	KafkaConsumer []kgo.Opt
	// NodeID names this node in the transactional ids of exactly-once
	// queries (ferry-analytics.<tenant>.<query>.<node>); it must be
	// stable across restarts and unique in the cluster. Default "local".
	NodeID string
	// HonoKafkaTopic, if set, names Hono's Kafka topic of an endpoint
	// and tenant: telemetry and events travel on Kafka (Hono's Kafka
	// messaging), so FROM telemetry and FROM event read them there.
	HonoKafkaTopic func(ep hono.Endpoint, tenant string) string
	// Checkpoints, if set, keeps query state and applied queries.
	Checkpoints *Checkpoints
	// CheckpointInterval is the period of state checkpoints. Default 10s.
	CheckpointInterval time.Duration
	// Shards bounds the goroutines of one device-keyed query. Default
	// GOMAXPROCS, at most 8.
	Shards int
	Logger *slog.Logger
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
}

// Service runs the analytics queries of one node.
type Service struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	queries map[queryKey]*running
	closed  bool
}

type queryKey struct{ tenant, name string }

// New returns a Service; Close stops it.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = 10 * time.Second
	}
	if opts.NodeID == "" {
		opts.NodeID = "local"
	}
	if opts.Shards <= 0 {
		opts.Shards = min(runtime.GOMAXPROCS(0), 8)
	}
	return &Service{opts: opts, log: opts.Logger, queries: map[queryKey]*running{}}
}

// ErrNotFound is a query that does not exist.
var ErrNotFound = errors.New("no such query")

// ErrClosed is a Service that was closed.
var ErrClosed = errors.New("analytics stopped")

// Apply validates spec and runs it, replacing a running query of the
// same tenant and name (whose state is dropped unless the SQL is
// unchanged). persist keeps the query for the next start.
func (s *Service) Apply(spec *query.Spec, persist bool) (created bool, err error) {
	if spec.Query == nil {
		if err := spec.Validate(); err != nil {
			return false, err
		}
	}
	plan, err := engine.Compile(spec)
	if err != nil {
		return false, fmt.Errorf("sql %w", err)
	}
	if _, ok := s.kafkaTopic(spec); spec.ExactlyOnce && !ok {
		return false, fmt.Errorf("exactly_once needs a Kafka source: FROM kafka, or FROM telemetry|event with Hono's Kafka messaging")
	}
	if _, ok := s.kafkaTopic(spec); ok && s.opts.KafkaConsumer == nil {
		return false, fmt.Errorf("sql %s: FROM kafka needs a Kafka cluster (analytics.kafka_brokers, or --kafka-brokers)", spec.Query.From.Pos)
	}
	for i, o := range spec.Outputs {
		if o.Kafka != "" && s.opts.Kafka == nil {
			return false, fmt.Errorf("outputs[%d].kafka: no Kafka cluster configured (analytics.kafka_brokers, or --kafka-brokers)", i)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	k := queryKey{spec.Tenant, spec.Name}
	old := s.queries[k]
	if old != nil {
		mode := stopDiscard
		if old.spec.SQL == spec.SQL {
			mode = stopKeep // only the outputs or limits change
		}
		old.stop(mode)
		delete(s.queries, k)
	}
	if cp := s.opts.Checkpoints; cp != nil {
		if persist {
			if err := cp.SaveSpec(spec); err != nil {
				return false, err
			}
		}
		if old != nil && old.spec.SQL != spec.SQL {
			cp.DeleteState(spec.Tenant, spec.Name)
		}
	}
	r, err := s.start(spec, plan)
	if err != nil {
		return false, err
	}
	s.queries[k] = r
	return old == nil, nil
}

// Delete stops a query and forgets it and its state.
func (s *Service) Delete(tenant, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.queries[queryKey{tenant, name}]
	if r == nil {
		return ErrNotFound
	}
	r.stop(stopDiscard)
	delete(s.queries, queryKey{tenant, name})
	if cp := s.opts.Checkpoints; cp != nil {
		cp.DeleteSpec(tenant, name)
		cp.DeleteState(tenant, name)
	}
	return nil
}

// get returns a running query.
func (s *Service) get(tenant, name string) (*running, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.queries[queryKey{tenant, name}]
	if r == nil {
		return nil, ErrNotFound
	}
	return r, nil
}

// List returns a tenant's queries by name.
func (s *Service) List(tenant string) []*query.Spec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*query.Spec
	for k, r := range s.queries {
		if k.tenant == tenant {
			out = append(out, r.spec)
		}
	}
	slices.SortFunc(out, func(a, b *query.Spec) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

func (s *Service) all() []*running {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*running, 0, len(s.queries))
	for _, r := range s.queries {
		out = append(out, r)
	}
	return out
}

// RestoreSpecs starts the queries applied through the API before the last
// shutdown; a query of the same name given in the configuration file
// replaces its stored form.
func (s *Service) RestoreSpecs() error {
	cp := s.opts.Checkpoints
	if cp == nil {
		return nil
	}
	specs, err := cp.Specs()
	if err != nil {
		return err
	}
	for _, spec := range specs {
		if _, err := s.Apply(spec, false); err != nil {
			s.log.Warn("stored analytics query not started", "tenant", spec.Tenant, "query", spec.Name, "err", err)
		}
	}
	return nil
}

// Close stops every query, writing a last checkpoint of each while ctx
// lasts. It returns once every query's goroutines are gone, so that the
// checkpoint store may be closed after it.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	qs := s.queries
	s.queries = map[queryKey]*running{}
	s.mu.Unlock()
	for _, r := range qs {
		mode := stopKeep
		if ctx.Err() != nil {
			mode = stopAbort
		}
		r.stop(mode)
	}
	return ctx.Err()
}

// running is one started query.
type running struct {
	svc     *Service
	spec    *query.Spec
	plan    *engine.Plan
	stats   engine.Stats
	limits  engine.Limits
	started time.Time
	sessID  string
	sess    atomic.Pointer[hub.Session] // durable hub queries
	untap   func()                      // the others' hub tap; nil for Kafka sources
	shards  []*shard
	outputs *outputs
	// durable: the query reads events through a durable hub session, so
	// that what it has not checkpointed is replayed after a crash.
	durable bool
	// refused says Deliver refused a delivery (durable queries, full
	// queue): the session holds it until a shard calls Drain.
	refused atomic.Bool

	// kafka consumes a Kafka source (FROM kafka, or Hono's topics in
	// Kafka messaging mode); nil for hub sources. pendOffsets wait for
	// the next commit (owned by whoever runs saveState: the checkpoint
	// loop, or stop once the loop has ended).
	kafka       *kgo.Client
	pendOffsets map[string]map[int32]kgo.EpochOffset
	// txn runs an exactly-once Kafka query instead of shards; nil for
	// the others.
	txn *txnRunner

	queueDropped atomic.Int64
	limitLogged  atomic.Int64 // unix nanos of the last limit warning
	checkpoints  atomic.Int64 // checkpoints written

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stopMu sync.Mutex
	done   bool
}

// SessionPrefix starts the hub client ids of queries' sessions. It is
// under hono.HubPrefix, which MQTT clients may not take, so that no client
// can take a query's session over.
const SessionPrefix = hono.HubPrefix + "analytics-query/"

func (s *Service) start(spec *query.Spec, plan *engine.Plan) (*running, error) {
	r := &running{svc: s, spec: spec, plan: plan, started: s.opts.Now(),
		sessID: SessionPrefix + spec.Name, durable: spec.Query.From.Kind == query.FromEvent || spec.DurableInput}
	r.limits = engine.Limits{MaxKeys: int64(spec.MaxKeys), MaxWindows: int64(spec.MaxWindows), OnLimit: r.onLimit}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	n := 1
	topic, fromKafka := s.kafkaTopic(spec)
	if plan.DeviceSharded() && !fromKafka {
		n = s.opts.Shards
	}
	if fromKafka {
		r.durable = false // the consumer group's offsets keep the position
	}
	txn := fromKafka && spec.ExactlyOnce
	if txn {
		n = 0 // one operator per source partition instead of shards
	}
	r.outputs = newOutputs(r)
	perShard := max(spec.Queue/max(n, 1), 16)
	var saved [][]byte
	if cp := s.opts.Checkpoints; cp != nil {
		saved = cp.LoadState(spec.Tenant, spec.Name, spec.SQL, n)
	}
	for i := range n {
		sh := &shard{r: r, idx: i, in: newInbox(perShard), explain: make(chan chan engine.Explain),
			snap: make(chan chan shardSnap), ext: map[string]extEntry{}}
		sh.op = engine.NewOperator(plan, &r.limits, &r.stats, r.outputs.emit)
		if i < len(saved) && saved[i] != nil {
			if err := sh.restore(saved[i]); err != nil {
				s.log.Warn("analytics checkpoint not restored: starting empty", "tenant", spec.Tenant, "query", spec.Name, "err", err)
				sh.op = engine.NewOperator(plan, &r.limits, &r.stats, r.outputs.emit)
				sh.covered = cover{}
			}
		}
		r.shards = append(r.shards, sh)
	}
	for _, sh := range r.shards {
		r.wg.Add(1)
		go sh.run()
	}
	if s.opts.Checkpoints != nil && !txn {
		r.wg.Add(1)
		go r.checkpointLoop()
	}
	if txn {
		if err := r.startTxn(topic); err != nil {
			r.cancel()
			r.wg.Wait()
			return nil, fmt.Errorf("the Kafka source %s: %w", topic, err)
		}
		return r, nil
	}
	if fromKafka {
		if err := r.startKafka(topic); err != nil {
			r.cancel()
			r.wg.Wait()
			return nil, fmt.Errorf("the Kafka source %s: %w", topic, err)
		}
		return r, nil
	}
	filter := ""
	switch spec.Query.From.Kind {
	case query.FromTelemetry:
		filter = hono.HubFilter(hono.Telemetry)
	case query.FromEvent:
		filter = hono.HubFilter(hono.Event)
	case query.FromMQTT:
		filter = spec.Query.From.Arg
	}
	if !r.durable {
		// Telemetry and MQTT topics at most once: a hub tap, which
		// costs the publishers an append to a shard's inbox instead of
		// a session's bookkeeping under a lock every publisher shares
		// (20% of ingest at 600k messages/s). The origin check does what
		// NoLocal does for a subscription: a query's own MQTT output is
		// not its input.
		untap, err := s.opts.Hub.Tap(spec.Tenant, filter, func(m *hub.Message) {
			if m.Origin != r.sessID {
				r.Deliver(hub.Delivery{Message: m})
			}
		})
		if err != nil {
			r.cancel()
			r.wg.Wait()
			return nil, fmt.Errorf("reading %s: %w", filter, err)
		}
		r.untap = untap
		return r, nil
	}
	fail := func(sess *hub.Session, err error) (*running, error) {
		sess.Detach(hub.Departure{})
		r.cancel()
		r.wg.Wait()
		return nil, err
	}
	// Events (and durable_input): a durable session at QoS 1, whose
	// store queue keeps each event until a checkpoint covers it; after a
	// crash the hub hands the rest over again. NoLocal keeps a query off
	// its own MQTT output.
	sess, _ := s.opts.Hub.Open(spec.Tenant, r.sessID, false)
	sub := hub.Subscription{Filter: filter, QoS: 1, NoLocal: true, RetainHandling: 2}
	if err := sess.MakeDurable(hub.Forever); err != nil {
		return fail(sess, err)
	}
	r.sess.Store(sess)
	sess.Attach(r)
	if _, err := sess.Subscribe(sub); err != nil {
		return fail(sess, fmt.Errorf("subscribing to %s: %w", filter, err))
	}
	return r, nil
}

// How a query stops.
type stopMode int

const (
	// stopKeep checkpoints the state and keeps a durable session (and
	// its unprocessed events) for the next start: shutdown, or a
	// replacement with the same SQL.
	stopKeep stopMode = iota
	// stopDiscard drops the state and the session: delete, or a
	// replacement with other SQL.
	stopDiscard
	// stopAbort keeps the session but writes no checkpoint (a shutdown
	// past its deadline): the next start replays what the last one did
	// not cover.
	stopAbort
)

// stop ends the query.
func (r *running) stop(mode stopMode) {
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	if r.done {
		return
	}
	r.done = true
	if r.untap != nil {
		r.untap()
	}
	r.cancel()
	r.wg.Wait()
	// The shards are gone: their state and queues are safe to read here.
	var left []hub.Delivery
	for _, sh := range r.shards {
		for _, it := range sh.in.take(nil) {
			if it.rec == nil {
				left = append(left, it.d)
			}
		}
	}
	slices.SortFunc(left, func(a, b hub.Delivery) int { return cmp.Compare(a.Seq, b.Seq) })
	if mode == stopKeep && r.svc.opts.Checkpoints != nil {
		snaps := make([]shardSnap, len(r.shards))
		for i, sh := range r.shards {
			snaps[i] = sh.snapshot()
		}
		r.saveState(snaps, nil)
	}
	if r.kafka != nil {
		r.kafka.Close() // leaves the group: its partitions go to the other nodes
	}
	if r.txn != nil {
		r.txn.close()
	}
	if sess := r.sess.Load(); sess != nil {
		dep := hub.Departure{}
		if r.durable && mode != stopDiscard {
			// What was queued for the shards goes back to the front of
			// the session's queue.
			dep = hub.Departure{Unacked: left, Expiry: hub.Forever}
		}
		sess.Detach(dep)
	}
	r.outputs.close()
}

// checkpointLoop writes the query's state every CheckpointInterval, each
// shard snapshotting its own operator between messages, then acknowledges
// the events the checkpoint covers.
func (r *running) checkpointLoop() {
	defer r.wg.Done()
	t := time.NewTicker(r.svc.opts.CheckpointInterval)
	defer t.Stop()
	var pending []uint64 // acknowledgements waiting for a written checkpoint
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		snaps := make([]shardSnap, len(r.shards))
		for i, sh := range r.shards {
			reply := make(chan shardSnap, 1)
			select {
			case sh.snap <- reply:
				snaps[i] = <-reply
			case <-r.ctx.Done():
				return
			}
		}
		pending = r.saveState(snaps, pending)
	}
}

// saveState writes a checkpoint of snaps and then acknowledges the events
// it covers (with pending, those of earlier failed checkpoints); it
// returns what is still to acknowledge.
func (r *running) saveState(snaps []shardSnap, pending []uint64) []uint64 {
	states := make([][]byte, len(snaps))
	for i, sn := range snaps {
		states[i] = sn.state
		pending = append(pending, sn.acks...)
		r.pendOffsets = mergeOffsets(r.pendOffsets, sn.offsets)
	}
	if err := r.svc.opts.Checkpoints.SaveState(r.spec.Tenant, r.spec.Name, r.spec.SQL, states); err != nil {
		r.svc.log.Warn("analytics checkpoint failed", "tenant", r.spec.Tenant, "query", r.spec.Name, "err", err)
		return pending
	}
	r.checkpoints.Add(1)
	r.commitOffsets()
	if sess := r.sess.Load(); sess != nil {
		for _, seq := range pending {
			sess.Acked(seq)
		}
	}
	return pending[:0]
}

// onLimit logs a refused row at most once a minute per query.
func (r *running) onLimit(reason string) {
	now := time.Now().UnixNano()
	last := r.limitLogged.Load()
	if now-last < int64(time.Minute) || !r.limitLogged.CompareAndSwap(last, now) {
		return
	}
	r.svc.log.Warn("analytics query at its limit: rows refused (counted in ferry_analytics_dropped_total)",
		"tenant", r.spec.Tenant, "query", r.spec.Name, "reason", reason,
		"max_keys", r.spec.MaxKeys, "max_windows", r.spec.MaxWindows)
}

// Explain is what explain shows of a running query.
type Explain struct {
	Plan        []string         `json:"plan"`
	Shards      int              `json:"shards"`
	Keys        int              `json:"keys"`
	OpenWindows int              `json:"open_windows"`
	StateBytes  int64            `json:"state_bytes"`
	Stats       Stats            `json:"stats"`
	Started     time.Time        `json:"started"`
	Outputs     []string         `json:"outputs"`
	Limits      map[string]int64 `json:"limits"`
}

// Stats are a query's counters.
type Stats struct {
	In          int64            `json:"in"`
	Filtered    int64            `json:"filtered"`
	Late        int64            `json:"late"`
	ParseErrors int64            `json:"parse_errors"`
	Rows        int64            `json:"rows"`
	Dropped     map[string]int64 `json:"dropped"`
	// EmitDelayAvgMs and EmitDelayMaxMs: wall time from window end +
	// lateness to the final row, for windows a newer row closed;
	// IdleDelay* for those the idle close emitted (1 s later by design).
	EmitDelayAvgMs  float64 `json:"emit_delay_avg_ms"`
	EmitDelayMaxMs  int64   `json:"emit_delay_max_ms"`
	IdleDelayAvgMs  float64 `json:"idle_close_delay_avg_ms"`
	IdleDelayMaxMs  int64   `json:"idle_close_delay_max_ms"`
	WatermarkCloses int64   `json:"watermark_closes"`
	IdleCloses      int64   `json:"idle_closes"`
}

func (r *running) statsSnapshot() Stats {
	st := Stats{In: r.stats.In.Load() + r.queueDropped.Load(), Filtered: r.stats.Filtered.Load(), Late: r.stats.Late.Load(),
		ParseErrors: r.stats.ParseErrors.Load(), Rows: r.stats.Rows.Load(), Dropped: map[string]int64{}}
	for i, reason := range engine.DropReasons {
		st.Dropped[reason] = r.stats.Dropped[i].Load()
	}
	st.Dropped["queue_full"] = r.queueDropped.Load()
	st.EmitDelayAvgMs, st.EmitDelayMaxMs, st.WatermarkCloses = r.stats.Delay.Avg(), r.stats.Delay.Max.Load(), r.stats.Delay.Count.Load()
	st.IdleDelayAvgMs, st.IdleDelayMaxMs, st.IdleCloses = r.stats.IdleDelay.Avg(), r.stats.IdleDelay.Max.Load(), r.stats.IdleDelay.Count.Load()
	return st
}

// Explain returns a query's plan and the size of its state.
func (s *Service) Explain(ctx context.Context, tenant, name string) (Explain, error) {
	r, err := s.get(tenant, name)
	if err != nil {
		return Explain{}, err
	}
	e := Explain{Plan: r.plan.Describe(), Shards: len(r.shards), Stats: r.statsSnapshot(), Started: r.started,
		Outputs: r.outputs.describe(),
		Limits:  map[string]int64{"max_keys": int64(r.spec.MaxKeys), "max_windows": int64(r.spec.MaxWindows), "queue": int64(r.spec.Queue)}}
	if r.txn != nil {
		x := r.txn.explain()
		e.Keys, e.OpenWindows, e.StateBytes = x.Keys, x.OpenWindows, x.StateBytes
	}
	for _, sh := range r.shards {
		reply := make(chan engine.Explain, 1)
		select {
		case sh.explain <- reply:
		case <-r.ctx.Done():
			return Explain{}, ErrNotFound
		case <-ctx.Done():
			return Explain{}, ctx.Err()
		}
		select {
		case x := <-reply:
			e.Keys += x.Keys
			e.OpenWindows += x.OpenWindows
			e.StateBytes += x.StateBytes
		case <-ctx.Done():
			return Explain{}, ctx.Err()
		}
	}
	return e, nil
}
