// Package metrics defines Ferry's Prometheus metrics and serves them.
//
// Hot-path counters (messages and bytes) are resolved to plain
// prometheus.Counter values once, so counting costs an atomic add; state
// that already exists elsewhere (the hub's queues, drops and retained
// messages) is read at scrape time by a collector instead of being counted
// twice.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferry-iot/ferry/internal/cluster"
	"github.com/ferry-iot/ferry/internal/hub"
)

const namespace = "ferry"

// Metrics holds every metric of one Ferry process.
type Metrics struct {
	reg *prometheus.Registry

	connections      *prometheus.GaugeVec   // tenant, protocol
	connectionsTotal *prometheus.CounterVec // tenant, protocol
	connectRefused   *prometheus.CounterVec // protocol, reason
	messages         *prometheus.CounterVec // direction, protocol, kind, qos
	bytes            *prometheus.CounterVec // direction, protocol, kind
	storeLatency     *prometheus.HistogramVec
}

// New creates the metrics, registered with a fresh registry that also holds
// the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "connections",
		Help: "Open client connections.",
	}, []string{"tenant", "protocol"})
	m.connectionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "connections_total",
		Help: "Client connections accepted.",
	}, []string{"tenant", "protocol"})
	m.connectRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "connections_refused_total",
		Help: "Connection attempts refused, by protocol and reason (authentication failures among them).",
	}, []string{"protocol", "reason"})
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "messages_total",
		Help: "Messages received from (in) and sent to (out) clients.",
	}, []string{"direction", "protocol", "kind", "qos"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "payload_bytes_total",
		Help: "Payload bytes received from (in) and sent to (out) clients.",
	}, []string{"direction", "protocol", "kind"})
	m.storeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "store_write_seconds",
		Help:    "Time of the store writes messages wait for (append: a durable session's batch; retain), fsync included.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
	}, []string{"op"})
	m.reg.MustRegister(m.connections, m.connectionsTotal, m.connectRefused, m.messages, m.bytes, m.storeLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry the metrics are in, for components that add
// their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Connected counts a new connection of a tenant over a protocol.
func (m *Metrics) Connected(tenant, protocol string) {
	m.connections.WithLabelValues(tenant, protocol).Inc()
	m.connectionsTotal.WithLabelValues(tenant, protocol).Inc()
}

// Disconnected counts the end of a connection counted by Connected.
func (m *Metrics) Disconnected(tenant, protocol string) {
	m.connections.WithLabelValues(tenant, protocol).Dec()
}

// Refused counts a refused connection attempt.
func (m *Metrics) Refused(protocol, reason string) {
	m.connectRefused.WithLabelValues(protocol, reason).Inc()
}

// ObserveStore records the duration of a store write (hub.Options.ObserveStore).
func (m *Metrics) ObserveStore(op string, d time.Duration) {
	m.storeLatency.WithLabelValues(op).Observe(d.Seconds())
}

// Flow is the set of counters of one protocol and kind of message, resolved
// once so that counting a message is an atomic add.
type Flow struct {
	in, out   [3]prometheus.Counter
	inB, outB prometheus.Counter
}

// Flow returns the counters of a protocol ("mqtt") and kind ("publish",
// "telemetry", "event", ...).
func (m *Metrics) Flow(protocol, kind string) *Flow {
	f := &Flow{
		inB:  m.bytes.WithLabelValues("in", protocol, kind),
		outB: m.bytes.WithLabelValues("out", protocol, kind),
	}
	for q := range 3 {
		qos := strconv.Itoa(q)
		f.in[q] = m.messages.WithLabelValues("in", protocol, kind, qos)
		f.out[q] = m.messages.WithLabelValues("out", protocol, kind, qos)
	}
	return f
}

// In counts a message received from a client. A nil Flow counts nothing.
func (f *Flow) In(qos byte, payload int) {
	if f == nil || qos > 2 {
		return
	}
	f.in[qos].Inc()
	f.inB.Add(float64(payload))
}

// Out counts a message handed to a client's connection.
func (f *Flow) Out(qos byte, payload int) {
	if f == nil || qos > 2 {
		return
	}
	f.out[qos].Inc()
	f.outB.Add(float64(payload))
}

// WatchHub registers a collector that reads the hub's counters at scrape
// time: routed messages, drops by reason, queue depth, sessions,
// subscriptions and retained messages.
func (m *Metrics) WatchHub(h *hub.Hub) {
	m.reg.MustRegister(&hubCollector{hub: h})
}

var (
	hubPublished  = prometheus.NewDesc(namespace+"_hub_published_total", "Messages routed by the hub.", nil, nil)
	hubDelivered  = prometheus.NewDesc(namespace+"_hub_delivered_total", "Deliveries handed to a connection or a session queue.", nil, nil)
	hubDropped    = prometheus.NewDesc(namespace+"_hub_dropped_total", "Deliveries dropped, by reason.", []string{"reason"}, nil)
	hubQueued     = prometheus.NewDesc(namespace+"_hub_queued_messages", "Deliveries waiting in session queues.", nil, nil)
	hubSessions   = prometheus.NewDesc(namespace+"_hub_sessions", "Sessions held by the hub.", nil, nil)
	hubSubs       = prometheus.NewDesc(namespace+"_hub_subscriptions", "Subscriptions, plain and shared.", nil, nil)
	hubRetained   = prometheus.NewDesc(namespace+"_hub_retained_messages", "Retained messages stored.", nil, nil)
	hubBlocked    = prometheus.NewDesc(namespace+"_hub_blocked_total", "QoS 1/2 deliveries whose publisher waited for a clean session's room.", nil, nil)
	hubSpills     = prometheus.NewDesc(namespace+"_hub_spills_total", "Times a persistent session's queue passed its memory bound and went on in the store.", nil, nil)
	hubRefills    = prometheus.NewDesc(namespace+"_hub_refills_total", "Reads of spilled deliveries back from the store.", nil, nil)
	hubRetRefused = prometheus.NewDesc(namespace+"_hub_retained_refused_total", "Retained messages not kept: their tenant held mqtt.max_retained topics.", nil, nil)
	hubStoredB    = prometheus.NewDesc(namespace+"_hub_stored_queue_bytes", "Approximate bytes in the stored queues of all sessions.", nil, nil)
)

type hubCollector struct{ hub *hub.Hub }

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{hubPublished, hubDelivered, hubDropped, hubQueued, hubSessions, hubSubs, hubRetained,
		hubBlocked, hubSpills, hubRefills, hubStoredB, hubRetRefused} {
		ch <- d
	}
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.hub.Stats()
	ch <- prometheus.MustNewConstMetric(hubPublished, prometheus.CounterValue, float64(st.Published))
	ch <- prometheus.MustNewConstMetric(hubDelivered, prometheus.CounterValue, float64(st.Delivered))
	for r := range hub.NumDropReasons {
		ch <- prometheus.MustNewConstMetric(hubDropped, prometheus.CounterValue, float64(st.Drops[r]), r.String())
	}
	ch <- prometheus.MustNewConstMetric(hubQueued, prometheus.GaugeValue, float64(st.Queued))
	ch <- prometheus.MustNewConstMetric(hubSessions, prometheus.GaugeValue, float64(st.Sessions))
	ch <- prometheus.MustNewConstMetric(hubSubs, prometheus.GaugeValue, float64(st.Subscripts))
	ch <- prometheus.MustNewConstMetric(hubRetained, prometheus.GaugeValue, float64(st.Retained))
	ch <- prometheus.MustNewConstMetric(hubBlocked, prometheus.CounterValue, float64(st.Blocked))
	ch <- prometheus.MustNewConstMetric(hubSpills, prometheus.CounterValue, float64(st.Spills))
	ch <- prometheus.MustNewConstMetric(hubRefills, prometheus.CounterValue, float64(st.Refills))
	ch <- prometheus.MustNewConstMetric(hubStoredB, prometheus.GaugeValue, float64(st.StoredB))
	ch <- prometheus.MustNewConstMetric(hubRetRefused, prometheus.CounterValue, float64(st.RetainRefused))
}

// WatchCluster registers the Kafka counters of the scale-out mode, read at
// scrape time.
func (m *Metrics) WatchCluster(c *cluster.Cluster) {
	for _, f := range []struct {
		name, help string
		value      func(cluster.Stats) uint64
	}{
		{"produced", "Records Kafka acknowledged.", func(s cluster.Stats) uint64 { return s.Produced }},
		{"produce_errors", "Records Kafka did not take (failed, timed out, buffer full).", func(s cluster.Stats) uint64 { return s.ProduceErrors }},
		{"consumed", "Records of other nodes delivered, and retained records applied.", func(s cluster.Stats) uint64 { return s.Consumed }},
		{"decode_errors", "Records skipped: not in Ferry's format.", func(s cluster.Stats) uint64 { return s.DecodeErrors }},
	} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "cluster", Name: f.name + "_total", Help: f.help,
		}, func() float64 { return float64(f.value(c.Stats())) }))
	}
}

// WatchParked registers the number of parked MQTT connections (idle, with
// no goroutine), read at scrape time.
func (m *Metrics) WatchParked(parked func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "mqtt", Name: "parked_connections",
		Help: "MQTT connections idle for mqtt.idle_park, waiting without a goroutine.",
	}, func() float64 { return float64(parked()) }))
}
