// Package analytics runs continuous queries inside Ferry: windowed,
// per-device aggregates over a tenant's telemetry, events or MQTT
// traffic, with rows published to MQTT, AMQP, Prometheus and an SSE
// stream (docs/analytics.md).
//
// # Basics
//
// A Service holds the queries of every tenant. Apply starts (or
// replaces) one: it becomes a hub session of its tenant, subscribed to
// the query's source, whose deliveries go into bounded queues read by one
// goroutine per shard; each shard owns an engine.Operator. Keys are
// spread over shards by device when the query groups by device, else one
// shard holds them all. Rows go to the outputs from the shard goroutine.
//
// # Caveats
//
//   - The hub never waits for a query: a delivery that finds the shard's
//     queue full is dropped and counted (reason queue_full), so a slow
//     query loses telemetry rather than slowing devices. Events are read
//     as they are routed, not replayed from the event log.
//   - State lives in memory; with a checkpoint directory it is written
//     to Pebble every CheckpointInterval and at Close, and read back by
//     the next Apply of the same query (same SQL). What arrived after the
//     last checkpoint before a crash is lost.
package analytics

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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
		old.stop(old.spec.SQL == spec.SQL)
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
	r.stop(false)
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
		r.stop(ctx.Err() == nil)
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
	sess    *hub.Session
	shards  []*shard
	outputs *outputs

	queueDropped atomic.Int64
	limitLogged  atomic.Int64 // unix nanos of the last limit warning

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stopMu sync.Mutex
	done   bool
}

// shard is one goroutine's share of a query: its queue and operator,
// owned by that goroutine.
type shard struct {
	r       *running
	idx     int
	ch      chan *hub.Message
	op      *engine.Operator
	explain chan chan engine.Explain
	snap    chan chan []byte
	ext     map[string]extEntry
}

type extEntry struct {
	ext     map[string]any
	fetched time.Time
}

// SessionPrefix starts the hub client ids of queries' sessions. It is
// under hono.HubPrefix, which MQTT clients may not take, so that no client
// can take a query's session over.
const SessionPrefix = hono.HubPrefix + "analytics-query/"

func (s *Service) start(spec *query.Spec, plan *engine.Plan) (*running, error) {
	r := &running{svc: s, spec: spec, plan: plan, started: s.opts.Now(),
		sessID: SessionPrefix + spec.Name}
	r.limits = engine.Limits{MaxKeys: int64(spec.MaxKeys), MaxWindows: int64(spec.MaxWindows), OnLimit: r.onLimit}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	n := 1
	if plan.DeviceSharded() {
		n = s.opts.Shards
	}
	r.outputs = newOutputs(r)
	perShard := max(spec.Queue/n, 16)
	var saved [][]byte
	if cp := s.opts.Checkpoints; cp != nil {
		saved = cp.LoadState(spec.Tenant, spec.Name, spec.SQL, n)
	}
	for i := range n {
		sh := &shard{r: r, idx: i, ch: make(chan *hub.Message, perShard), explain: make(chan chan engine.Explain),
			snap: make(chan chan []byte), ext: map[string]extEntry{}}
		sh.op = engine.NewOperator(plan, &r.limits, &r.stats, r.outputs.emit)
		if i < len(saved) && saved[i] != nil {
			if err := sh.op.Restore(saved[i]); err != nil {
				s.log.Warn("analytics checkpoint not restored: starting empty", "tenant", spec.Tenant, "query", spec.Name, "err", err)
				sh.op = engine.NewOperator(plan, &r.limits, &r.stats, r.outputs.emit)
			}
		}
		r.shards = append(r.shards, sh)
	}
	for _, sh := range r.shards {
		r.wg.Add(1)
		go sh.run()
	}
	if s.opts.Checkpoints != nil {
		r.wg.Add(1)
		go r.checkpointLoop()
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
	sess, _ := s.opts.Hub.Open(spec.Tenant, r.sessID, true)
	sess.Attach(r)
	// QoS 0: the hub hands every message over at once and never holds a
	// device's acknowledgement for the query. NoLocal keeps a query off
	// its own MQTT output.
	if _, err := sess.Subscribe(hub.Subscription{Filter: filter, QoS: 0, NoLocal: true, RetainHandling: 2}); err != nil {
		sess.Detach(hub.Departure{})
		r.cancel()
		r.wg.Wait()
		return nil, fmt.Errorf("subscribing to %s: %w", filter, err)
	}
	r.sess = sess
	return r, nil
}

// stop ends the query; with checkpoint, its state is written first.
func (r *running) stop(checkpoint bool) {
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	if r.done {
		return
	}
	r.done = true
	if r.sess != nil {
		r.sess.Detach(hub.Departure{})
	}
	r.cancel()
	r.wg.Wait()
	if cp := r.svc.opts.Checkpoints; cp != nil && checkpoint {
		r.checkpoint()
	}
	r.outputs.close()
}

// checkpointLoop writes the query's state every CheckpointInterval, each
// shard snapshotting its own operator between messages.
func (r *running) checkpointLoop() {
	defer r.wg.Done()
	t := time.NewTicker(r.svc.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		snaps := make([][]byte, len(r.shards))
		for i, sh := range r.shards {
			reply := make(chan []byte, 1)
			select {
			case sh.snap <- reply:
				snaps[i] = <-reply
			case <-r.ctx.Done():
				return
			}
		}
		r.saveState(snaps)
	}
}

// checkpoint writes the state of a stopped query (its shards are gone,
// so their operators are safe to read here).
func (r *running) checkpoint() {
	snaps := make([][]byte, len(r.shards))
	for i, sh := range r.shards {
		snaps[i] = sh.op.Snapshot()
	}
	r.saveState(snaps)
}

func (r *running) saveState(snaps [][]byte) {
	if err := r.svc.opts.Checkpoints.SaveState(r.spec.Tenant, r.spec.Name, r.spec.SQL, snaps); err != nil {
		r.svc.log.Warn("analytics checkpoint failed", "tenant", r.spec.Tenant, "query", r.spec.Name, "err", err)
	}
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

// Deliver implements hub.Sink. It never blocks and never refuses: past a
// full queue the message is dropped and counted.
func (r *running) Deliver(d hub.Delivery) bool {
	sh := r.shards[0]
	if len(r.shards) > 1 {
		_, device, _ := hono.ParseHubTopic(d.Message.Topic)
		h := fnv.New32a()
		h.Write([]byte(device))
		sh = r.shards[h.Sum32()%uint32(len(r.shards))]
	}
	select {
	case sh.ch <- d.Message:
	default:
		r.queueDropped.Add(1)
	}
	return true
}

// A shard that found fewer than batchPause messages queued waits
// batchWait before reading again, so that under load it takes messages
// in batches (a queue of 16384 holds 8 ms at 2M messages/s).
const (
	batchPause = 256
	batchWait  = time.Millisecond
)

// extRefresh is how long a device's registry ext is used before it is
// read again.
const extRefresh = 30 * time.Second

// run is the shard's goroutine: it owns the operator until the query
// stops.
func (sh *shard) run() {
	r := sh.r
	defer r.wg.Done()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	pause := time.NewTimer(batchWait)
	defer pause.Stop()
	var in engine.Input
	for {
		select {
		case m := <-sh.ch:
			now := r.svc.opts.Now()
			sh.process(m, &in, now)
			// Drain what is queued before looking at the timers.
			n := len(sh.ch)
			for range n {
				sh.process(<-sh.ch, &in, now)
			}
			if n < batchPause {
				// Let messages gather: woken for each one, the goroutine
				// costs the router more in wake-ups than in work.
				pause.Reset(batchWait)
				select {
				case <-pause.C:
				case <-r.ctx.Done():
					return
				}
			}
		case <-tick.C:
			sh.op.Tick(r.svc.opts.Now().UnixMilli())
		case reply := <-sh.explain:
			reply <- sh.op.Explain()
		case reply := <-sh.snap:
			reply <- sh.op.Snapshot()
		case <-r.ctx.Done():
			return
		}
	}
}

func (sh *shard) process(m *hub.Message, in *engine.Input, now time.Time) {
	r := sh.r
	*in = engine.Input{Tenant: r.spec.Tenant, Payload: m.Payload, Props: props{m}}
	if ep, device, ok := hono.ParseHubTopic(m.Topic); ok {
		in.Device = device
		if r.plan.NeedsTopic() {
			in.Topic = ep.String() + "/" + r.spec.Tenant + "/" + device
		}
	} else {
		in.Topic = m.Topic
		if v, ok := m.Property(hono.PropDeviceID); ok {
			in.Device, _ = v.(string)
		}
	}
	in.Arrival = now.UnixMilli()
	if !m.Created.IsZero() {
		in.Arrival = m.Created.UnixMilli()
	}
	if r.plan.NeedsExt() && in.Device != "" {
		in.Ext = sh.deviceExt(in.Device, now)
	}
	sh.op.Process(in, now.UnixMilli())
}

// deviceExt reads a device's ext through a cache refreshed every
// extRefresh; a registry error keeps the last value.
func (sh *shard) deviceExt(device string, now time.Time) map[string]any {
	e, ok := sh.ext[device]
	if ok && now.Sub(e.fetched) < extRefresh {
		return e.ext
	}
	ext := sh.r.svc.opts.Ext
	if ext == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(sh.r.ctx, 2*time.Second)
	v, err := ext(ctx, sh.r.spec.Tenant, device)
	cancel()
	if err != nil && ok {
		v = e.ext
	}
	if len(sh.ext) >= sh.r.spec.MaxKeys {
		clear(sh.ext)
	}
	sh.ext[device] = extEntry{ext: v, fetched: now}
	return v
}

// props reads prop.<name> from a hub message: its application
// properties, then its MQTT 5 user properties.
type props struct{ m *hub.Message }

func (p props) Property(key string) (any, bool) {
	if v, ok := p.m.Property(key); ok {
		return v, true
	}
	for _, u := range p.m.UserProperties {
		if u.Key == key {
			return u.Value, true
		}
	}
	return nil, false
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
}

func (r *running) statsSnapshot() Stats {
	st := Stats{In: r.stats.In.Load() + r.queueDropped.Load(), Filtered: r.stats.Filtered.Load(), Late: r.stats.Late.Load(),
		ParseErrors: r.stats.ParseErrors.Load(), Rows: r.stats.Rows.Load(), Dropped: map[string]int64{}}
	for i, reason := range engine.DropReasons {
		st.Dropped[reason] = r.stats.Dropped[i].Load()
	}
	st.Dropped["queue_full"] = r.queueDropped.Load()
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
