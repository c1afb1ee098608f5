package analytics

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-iot/ferry/internal/analytics/engine"
	"github.com/ferry-iot/ferry/internal/analytics/fields"
	"github.com/ferry-iot/ferry/internal/analytics/query"
)

// promSeries is a Prometheus output: the last row of each label set, at
// most max of them.
type promSeries struct {
	name     string
	labels   []string
	keyIdx   []int // the key column of each label
	cols     []string
	max      int
	help     string
	mu       sync.Mutex
	series   map[string]*promRow
	overflow atomic.Int64
}

type promRow struct {
	labels []string
	vals   []float64
}

func newPromSeries(p *engine.Plan, out *query.PrometheusOutput) *promSeries {
	ps := &promSeries{name: out.Name, labels: append(out.Labels, "agg"), cols: p.Columns(), max: out.MaxSeries,
		series: map[string]*promRow{}, help: "Analytics query " + p.Name + " of tenant " + p.Tenant + ": the last row's aggregates, by agg."}
	keyText := make([]string, len(p.Query.Keys))
	for i, k := range p.Query.Keys {
		keyText[i] = k.Text
	}
	for _, l := range out.Labels {
		for i, k := range keyText {
			if k == l {
				ps.keyIdx = append(ps.keyIdx, i)
			}
		}
	}
	return ps
}

// prepare reads a row's label set and values; the function it returns
// stores them.
func (ps *promSeries) prepare(row *engine.Row) func() {
	labels := make([]string, len(ps.keyIdx))
	for i, k := range ps.keyIdx {
		labels[i] = levelText(row.KeyVals[k])
	}
	id := strings.Join(labels, "\x00")
	vals := make([]float64, len(ps.cols))
	for i, v := range row.ColumnValues() {
		vals[i] = math.NaN()
		if v.Kind == fields.Number {
			vals[i] = v.Num
		}
	}
	return func() { ps.store(id, labels, vals) }
}

func (ps *promSeries) store(id string, labels []string, vals []float64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	s, ok := ps.series[id]
	if !ok {
		if len(ps.series) >= ps.max {
			ps.overflow.Add(1)
			return
		}
		s = &promRow{labels: labels}
		ps.series[id] = s
	}
	s.vals = vals
}

func (ps *promSeries) collect(ch chan<- prometheus.Metric) {
	desc := prometheus.NewDesc(ps.name, ps.help, ps.labels, nil)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, s := range ps.series {
		for i, v := range s.vals {
			if math.IsNaN(v) {
				continue
			}
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append(s.labels[:len(s.labels):len(s.labels)], ps.cols[i])...)
		}
	}
}

var (
	descIn = prometheus.NewDesc("ferry_analytics_messages_total",
		"Messages offered to an analytics query.", []string{"tenant", "query"}, nil)
	descRows = prometheus.NewDesc("ferry_analytics_rows_total",
		"Result rows an analytics query emitted.", []string{"tenant", "query"}, nil)
	descLate = prometheus.NewDesc("ferry_analytics_late_total",
		"Rows accepted out of order, within the query's lateness.", []string{"tenant", "query"}, nil)
	descParse = prometheus.NewDesc("ferry_analytics_parse_errors_total",
		"Messages whose payload or event time could not be read.", []string{"tenant", "query"}, nil)
	descFiltered = prometheus.NewDesc("ferry_analytics_filtered_total",
		"Messages the query's WHERE refused.", []string{"tenant", "query"}, nil)
	descDropped = prometheus.NewDesc("ferry_analytics_dropped_total",
		"Messages an analytics query lost, by reason: late (past lateness), future (past max_future_skew), "+
			"max_keys, max_windows, queue_full (the query fell behind).", []string{"tenant", "query", "reason"}, nil)
	descKeys = prometheus.NewDesc("ferry_analytics_keys",
		"Keys an analytics query holds.", []string{"tenant", "query"}, nil)
	descWindows = prometheus.NewDesc("ferry_analytics_open_windows",
		"Windows (HOP: panes) an analytics query holds open.", []string{"tenant", "query"}, nil)
	descDelay = prometheus.NewDesc("ferry_analytics_emit_delay_seconds",
		"Wall time from window end + lateness to the window's final row (time windows), by what closed it: "+
			"watermark (a newer row of the key) or idle (the idle close, 1 s later by design).", []string{"tenant", "query", "close"}, nil)
	descDelayMax = prometheus.NewDesc("ferry_analytics_emit_delay_max_seconds",
		"The longest ferry_analytics_emit_delay_seconds seen.", []string{"tenant", "query", "close"}, nil)
	descCheckpoints = prometheus.NewDesc("ferry_analytics_checkpoints_total",
		"Checkpoints of an analytics query's state written since it started.", []string{"tenant", "query"}, nil)
	descOutputLost = prometheus.NewDesc("ferry_analytics_output_lost_total",
		"Rows an output did not take, by output: sse (a slow stream reader), hub (MQTT/AMQP publish failed), "+
			"kafka (producer buffer full or send failed), prometheus (past max_series).", []string{"tenant", "query", "output"}, nil)
)

// Collector returns the Prometheus collector of every query's counters
// and of the Prometheus outputs.
func (s *Service) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Service }

// Describe sends nothing: the Prometheus outputs' families come and go
// with the queries, so the collector is unchecked.
func (collector) Describe(chan<- *prometheus.Desc) {}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.s.all() {
		t, q := r.spec.Tenant, r.spec.Name
		st := r.statsSnapshot()
		counter := func(d *prometheus.Desc, v int64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{t, q}, extra...)...)
		}
		counter(descIn, st.In)
		counter(descRows, st.Rows)
		counter(descLate, st.Late)
		counter(descParse, st.ParseErrors)
		counter(descFiltered, st.Filtered)
		counter(descCheckpoints, r.checkpoints.Load())
		for _, d := range []struct {
			close string
			d     *engine.Delay
		}{{"watermark", &r.stats.Delay}, {"idle", &r.stats.IdleDelay}} {
			ch <- prometheus.MustNewConstSummary(descDelay, uint64(d.d.Count.Load()), float64(d.d.Sum.Load())/1000, nil, t, q, d.close)
			ch <- prometheus.MustNewConstMetric(descDelayMax, prometheus.GaugeValue, float64(d.d.Max.Load())/1000, t, q, d.close)
		}
		for reason, n := range st.Dropped {
			counter(descDropped, n, reason)
		}
		ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(r.limits.Keys()), t, q)
		ch <- prometheus.MustNewConstMetric(descWindows, prometheus.GaugeValue, float64(r.limits.Windows()), t, q)
		o := r.outputs
		counter(descOutputLost, o.dropped.Load(), "sse")
		counter(descOutputLost, o.failed.Load(), "hub")
		if len(o.kafka) > 0 {
			counter(descOutputLost, o.kafkaFailed.Load(), "kafka")
		}
		if o.prom != nil {
			counter(descOutputLost, o.prom.overflow.Load(), "prometheus")
			o.prom.collect(ch)
		}
	}
}
