package console

import (
	"context"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ferry-iot/ferry/internal/hub"
)

// The live figures of the overview are read from the node's Prometheus
// registry, the one /metrics serves: the console shows what a scrape
// shows and counts nothing itself. One sampler gathers once per interval
// while at least one browser watches, turns counters into rates and keeps
// a bounded history for browsers that open the overview later.

// Metric names the sampler reads (internal/metrics, internal/node's hub
// collector).
const (
	metricConnections = "ferry_connections"
	metricMessages    = "ferry_messages_total"
	metricDropped     = "ferry_hub_dropped_total"
	metricRefused     = "ferry_connections_refused_total"
	metricQueued      = "ferry_hub_queued_messages"
	metricStoredBytes = "ferry_hub_stored_queue_bytes"
	metricSessions    = "ferry_hub_sessions"
	metricSubs        = "ferry_hub_subscriptions"
	metricRetained    = "ferry_hub_retained_messages"
	metricStore       = "ferry_store_write_seconds"
)

// Snapshot is one sample of the live figures.
type Snapshot struct {
	// T is the sample's time in Unix milliseconds.
	T int64 `json:"t"`
	// Conns are the open connections by tenant and protocol.
	Conns []ConnCount `json:"conns"`
	// Hub holds the hub-wide figures; absent for a user of some tenants
	// only, since they have no tenant label.
	Hub *HubFigures `json:"hub,omitempty"`
	// Tenants are the hub's figures of each tenant (the ones its $SYS
	// topics publish), sorted by tenant.
	Tenants []TenantFigures `json:"tenants"`
}

// TenantFigures are one tenant's figures in a sample; rates are per second
// over the last interval. Published counts every message routed in the
// tenant (wills and Ferry's own included), Sent the deliveries handed to
// connections.
type TenantFigures struct {
	Tenant           string             `json:"tenant"`
	PublishedPerSec  float64            `json:"published_per_s"`
	SentPerSec       float64            `json:"sent_per_s"`
	DropsPerSec      map[string]float64 `json:"drops_per_s"`
	Queued           int                `json:"queued"`
	Sessions         int64              `json:"sessions"`
	Subscriptions    int                `json:"subscriptions"`
	RetainedMessages int                `json:"retained"`
}

// ConnCount is the number of open connections of a tenant over a
// protocol.
type ConnCount struct {
	Tenant   string  `json:"tenant"`
	Protocol string  `json:"protocol"`
	N        float64 `json:"n"`
}

// HubFigures are the hub-wide figures of a sample; rates are per second
// over the last interval.
type HubFigures struct {
	InPerSec      float64            `json:"in_per_s"`
	OutPerSec     float64            `json:"out_per_s"`
	DropsPerSec   map[string]float64 `json:"drops_per_s"`
	RefusedPerSec float64            `json:"refused_per_s"`
	Queued        float64            `json:"queued"`
	StoredBytes   float64            `json:"stored_bytes"`
	Sessions      float64            `json:"sessions"`
	Subscriptions float64            `json:"subscriptions"`
	Retained      float64            `json:"retained"`
	// StoreOpsPerSec counts the store writes messages waited for; their
	// mean and 99th percentile latency (from the histogram's buckets) are
	// null when there was none.
	StoreOpsPerSec float64  `json:"store_ops_per_s"`
	StoreMeanMs    *float64 `json:"store_mean_ms"`
	StoreP99Ms     *float64 `json:"store_p99_ms"`
}

// counters are the cumulative values a rate is made of.
type counters struct {
	at                time.Time
	in, out, refused  float64
	drops             map[string]float64
	storeN, storeSum  float64
	storeBounds       []float64 // upper bounds, ascending
	storeCumul        []float64 // cumulative counts per bound, all ops added up
	conns             []ConnCount
	queued, storedB   float64
	sessions, subs, r float64
	tenants           map[string]hub.Stats
}

// read gathers the registry into counters.
func read(g prometheus.Gatherer, now time.Time) (counters, error) {
	mfs, err := g.Gather()
	c := counters{at: now, drops: map[string]float64{}, conns: []ConnCount{}}
	if err != nil && len(mfs) == 0 {
		return c, err
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case metricConnections:
				c.conns = append(c.conns, ConnCount{Tenant: label(m, "tenant"), Protocol: label(m, "protocol"), N: m.GetGauge().GetValue()})
			case metricMessages:
				switch label(m, "direction") {
				case "in":
					c.in += m.GetCounter().GetValue()
				case "out":
					c.out += m.GetCounter().GetValue()
				}
			case metricDropped:
				c.drops[label(m, "reason")] += m.GetCounter().GetValue()
			case metricRefused:
				c.refused += m.GetCounter().GetValue()
			case metricQueued:
				c.queued = m.GetGauge().GetValue()
			case metricStoredBytes:
				c.storedB = m.GetGauge().GetValue()
			case metricSessions:
				c.sessions = m.GetGauge().GetValue()
			case metricSubs:
				c.subs = m.GetGauge().GetValue()
			case metricRetained:
				c.r = m.GetGauge().GetValue()
			case metricStore:
				h := m.GetHistogram()
				c.storeN += float64(h.GetSampleCount())
				c.storeSum += h.GetSampleSum()
				for i, b := range h.GetBucket() {
					if i == len(c.storeBounds) {
						c.storeBounds = append(c.storeBounds, b.GetUpperBound())
						c.storeCumul = append(c.storeCumul, 0)
					}
					c.storeCumul[i] += float64(b.GetCumulativeCount())
				}
			}
		}
	}
	// Gauges of tenants without connections stay exported at 0; they are
	// no news.
	c.conns = slices.DeleteFunc(c.conns, func(cc ConnCount) bool { return cc.N == 0 })
	sort.Slice(c.conns, func(i, j int) bool {
		if c.conns[i].Tenant != c.conns[j].Tenant {
			return c.conns[i].Tenant < c.conns[j].Tenant
		}
		return c.conns[i].Protocol < c.conns[j].Protocol
	})
	return c, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// snapshot makes the sample of cur, with rates since prev.
func snapshot(prev, cur counters) Snapshot {
	dt := cur.at.Sub(prev.at).Seconds()
	if dt <= 0 {
		dt = 1
	}
	rate := func(a, b float64) float64 { return math.Max(0, b-a) / dt }
	h := &HubFigures{
		InPerSec: rate(prev.in, cur.in), OutPerSec: rate(prev.out, cur.out),
		DropsPerSec: map[string]float64{}, RefusedPerSec: rate(prev.refused, cur.refused),
		Queued: cur.queued, StoredBytes: cur.storedB, Sessions: cur.sessions, Subscriptions: cur.subs, Retained: cur.r,
		StoreOpsPerSec: rate(prev.storeN, cur.storeN),
	}
	for reason, v := range cur.drops {
		h.DropsPerSec[reason] = rate(prev.drops[reason], v)
	}
	if n := cur.storeN - prev.storeN; n > 0 {
		mean := (cur.storeSum - prev.storeSum) / n * 1000
		h.StoreMeanMs = &mean
		if p, ok := quantile(0.99, cur.storeBounds, prev.storeCumul, cur.storeCumul, n); ok {
			p *= 1000
			h.StoreP99Ms = &p
		}
	}
	snap := Snapshot{T: cur.at.UnixMilli(), Conns: cur.conns, Hub: h, Tenants: []TenantFigures{}}
	for name, st := range cur.tenants {
		was := prev.tenants[name] // zero for a tenant new since
		tf := TenantFigures{Tenant: name,
			PublishedPerSec: rate(float64(was.Published), float64(st.Published)),
			SentPerSec:      rate(float64(was.Sent), float64(st.Sent)),
			DropsPerSec:     map[string]float64{},
			Queued:          st.Queued, Sessions: st.Sessions, Subscriptions: st.Subscripts, RetainedMessages: st.Retained,
		}
		for r := range hub.NumDropReasons {
			tf.DropsPerSec[r.String()] = rate(float64(was.Drops[r]), float64(st.Drops[r]))
		}
		snap.Tenants = append(snap.Tenants, tf)
	}
	slices.SortFunc(snap.Tenants, func(a, b TenantFigures) int { return strings.Compare(a.Tenant, b.Tenant) })
	return snap
}

// hubTenants reads the figures of every tenant of h.
func hubTenants(h *hub.Hub) func() map[string]hub.Stats {
	return func() map[string]hub.Stats {
		out := map[string]hub.Stats{}
		for _, name := range h.Tenants() {
			out[name] = h.TenantStats(name)
		}
		return out
	}
}

// quantile estimates the q-quantile of the observations between two
// readings of a histogram (n of them), interpolating linearly inside the
// bucket it falls in, as Prometheus' histogram_quantile does.
func quantile(q float64, bounds, prev, cur []float64, n float64) (float64, bool) {
	if len(bounds) == 0 || len(prev) > len(cur) {
		return 0, false
	}
	rank := q * n
	lower, below := 0.0, 0.0
	for i, ub := range bounds {
		c := cur[i]
		if i < len(prev) {
			c -= prev[i]
		}
		if c >= rank {
			if c == below {
				return ub, true
			}
			return lower + (ub-lower)*(rank-below)/(c-below), true
		}
		lower, below = ub, c
	}
	return bounds[len(bounds)-1], true // in the +Inf bucket: the highest bound is all we know
}

// view is what s may see of snap.
func view(snap Snapshot, s *session) Snapshot {
	if s.admin() {
		return snap
	}
	out := Snapshot{T: snap.T, Conns: []ConnCount{}, Tenants: []TenantFigures{}}
	for _, cc := range snap.Conns {
		if s.allows(cc.Tenant) {
			out.Conns = append(out.Conns, cc)
		}
	}
	for _, tf := range snap.Tenants {
		if s.allows(tf.Tenant) {
			out.Tenants = append(out.Tenants, tf)
		}
	}
	return out
}

// sampler gathers the live figures while somebody watches.
type sampler struct {
	gather   prometheus.Gatherer
	tenants  func() map[string]hub.Stats // nil: no tenant figures
	interval time.Duration
	max      int
	now      func() time.Time
	wg       sync.WaitGroup // the sampling goroutine

	mu       sync.Mutex
	history  []Snapshot // trimmed
	watchers map[chan sample]struct{}
	running  bool
}

// sample is one sample in full, for users of some tenants, and trimmed
// (trim.go), for users of every tenant.
type sample struct {
	full, kept Snapshot
}

func newSampler(g prometheus.Gatherer, tenants func() map[string]hub.Stats, interval time.Duration, max int, now func() time.Time) *sampler {
	return &sampler{gather: g, tenants: tenants, interval: interval, max: max, now: now, watchers: make(map[chan sample]struct{})}
}

// read gathers the registry and the tenants' figures.
func (s *sampler) read() (counters, error) {
	c, err := read(s.gather, s.now())
	if s.tenants != nil {
		c.tenants = s.tenants()
	}
	return c, err
}

// watch returns the samples kept so far (trimmed) and a channel of the
// next ones, starting the sampling goroutine if it is not running; unwatch
// ends the watch. A watcher that does not keep up misses samples.
func (s *sampler) watch(ctx context.Context) ([]Snapshot, chan sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan sample, 8)
	s.watchers[ch] = struct{}{}
	if !s.running && ctx.Err() == nil {
		s.running = true
		s.wg.Go(func() { s.run(ctx) })
	}
	return append([]Snapshot{}, s.history...), ch
}

func (s *sampler) unwatch(ch chan sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.watchers, ch)
}

// run samples every interval until ctx ends or nobody watches.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	prev, err := s.read()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.running = false
			s.mu.Unlock()
			return
		case <-t.C:
		}
		cur, cerr := s.read()
		s.mu.Lock()
		if len(s.watchers) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		if err == nil && cerr == nil {
			full := snapshot(prev, cur)
			snap := sample{full: full, kept: trim(full, maxTenantsKept)}
			s.history = append(s.history, snap.kept)
			if len(s.history) > s.max {
				s.history = slices.Delete(s.history, 0, len(s.history)-s.max)
			}
			for ch := range s.watchers {
				select {
				case ch <- snap:
				default: // a slow browser misses this sample
				}
			}
		}
		s.mu.Unlock()
		prev, err = cur, cerr
	}
}

// wait waits for the sampling goroutine (after its context ended).
func (s *sampler) wait() { s.wg.Wait() }

// streamLive: GET /console/api/live, an event stream: one "history"
// event (the samples kept, oldest first), then a "sample" event per
// interval. Users of every tenant get the busiest tenants (trim.go);
// others get theirs, out of the full sample.
func (c *Console) streamLive(w http.ResponseWriter, r *http.Request, s *session) {
	if c.opts.Metrics == nil {
		writeError(w, http.StatusNotFound, "no metrics on this node")
		return
	}
	if c.ctx.Err() != nil {
		writeError(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	es, err := startStream(w)
	if err != nil {
		return
	}
	hist, ch := c.live.watch(c.ctx)
	defer c.live.unwatch(ch)
	for i := range hist {
		hist[i] = view(hist[i], s)
	}
	if es.send("history", hist) != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.ctx.Done():
			return
		case snap := <-ch:
			out := snap.kept
			if !s.admin() {
				out = trim(view(snap.full, s), maxTenantsKept)
			}
			if es.send("sample", out) != nil {
				return
			}
		}
	}
}
