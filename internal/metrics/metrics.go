// Package metrics defines Ferry's Prometheus metrics and serves them.
//
// Hot-path counters (messages and bytes) are resolved to plain
// prometheus.Counter values once, so counting costs an atomic add; state
// that already exists elsewhere (the hub's queues, drops and retained
// messages) is read at scrape time by a collector instead of being counted
// twice.
//
// The package imports no other Ferry package: components that own state
// bring their collectors and hand them to Register (internal/node does it
// for the hub and the cluster). Otherwise every importer of metrics, the
// MQTT adapter among them, would pull in the hub's and the Kafka client's
// whole dependency trees.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name: ferry_connections, ferry_hub_...
const Namespace = "ferry"

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
		Namespace: Namespace, Name: "connections",
		Help: "Open client connections.",
	}, []string{"tenant", "protocol"})
	m.connectionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "connections_total",
		Help: "Client connections accepted.",
	}, []string{"tenant", "protocol"})
	m.connectRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "connections_refused_total",
		Help: "Connection attempts refused, by protocol and reason (authentication failures among them).",
	}, []string{"protocol", "reason"})
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "messages_total",
		Help: "Messages received from (in) and sent to (out) clients.",
	}, []string{"direction", "protocol", "kind", "qos"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "payload_bytes_total",
		Help: "Payload bytes received from (in) and sent to (out) clients.",
	}, []string{"direction", "protocol", "kind"})
	m.storeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "store_write_seconds",
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

// Register adds collectors of other components to the registry /metrics
// serves. Like prometheus.MustRegister it panics on a duplicate or
// inconsistent metric: that is a programming error, found by any test that
// starts a node.
func (m *Metrics) Register(cs ...prometheus.Collector) {
	m.reg.MustRegister(cs...)
}

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

// WatchParked registers the number of parked MQTT connections (idle, with
// no goroutine), read at scrape time.
func (m *Metrics) WatchParked(parked func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: "mqtt", Name: "parked_connections",
		Help: "MQTT connections idle for mqtt.idle_park, waiting without a goroutine.",
	}, func() float64 { return float64(parked()) }))
}
