package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-iot/ferry/internal/cluster"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/metrics"
	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
)

// The hub's and the cluster's collectors live here, where both are built,
// rather than in internal/metrics (which must not import them: the MQTT
// adapter imports metrics and would pull in franz-go) or in the packages
// they read (which would then import Prometheus, and the hub is meant to
// be protocol- and exporter-neutral).

// hubCollector reads the hub's counters at scrape time: routed messages,
// drops by reason, queue depth, sessions, subscriptions and retained
// messages.
type hubCollector struct{ hub *hub.Hub }

func hubDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metrics.Namespace+"_hub_"+name, help, labels, nil)
}

var (
	hubPublished  = hubDesc("published_total", "Messages routed by the hub.")
	hubDelivered  = hubDesc("delivered_total", "Deliveries handed to a connection or a session queue.")
	hubDropped    = hubDesc("dropped_total", "Deliveries dropped, by reason.", "reason")
	hubQueued     = hubDesc("queued_messages", "Deliveries waiting in session queues.")
	hubSessions   = hubDesc("sessions", "Sessions held by the hub.")
	hubSubs       = hubDesc("subscriptions", "Subscriptions, plain and shared.")
	hubRetained   = hubDesc("retained_messages", "Retained messages stored.")
	hubBlocked    = hubDesc("blocked_total", "QoS 1/2 deliveries whose publisher waited for a clean session's room.")
	hubSpills     = hubDesc("spills_total", "Times a persistent session's queue passed its memory bound and went on in the store.")
	hubRefills    = hubDesc("refills_total", "Reads of spilled deliveries back from the store.")
	hubRetRefused = hubDesc("retained_refused_total", "Retained messages not kept: their tenant held mqtt.max_retained topics.")
	hubStoredB    = hubDesc("stored_queue_bytes", "Approximate bytes in the stored queues of all sessions.")
)

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

// clusterCollectors are the Kafka counters of the scale-out mode, read at
// scrape time.
func clusterCollectors(c *cluster.Cluster) []prometheus.Collector {
	var cs []prometheus.Collector
	for _, f := range []struct {
		name, help string
		value      func(cluster.Stats) uint64
	}{
		{"produced", "Records Kafka acknowledged.", func(s cluster.Stats) uint64 { return s.Produced }},
		{"produce_errors", "Records Kafka did not take (failed, timed out, buffer full).", func(s cluster.Stats) uint64 { return s.ProduceErrors }},
		{"consumed", "Records of other nodes delivered, and retained records applied.", func(s cluster.Stats) uint64 { return s.Consumed }},
		{"decode_errors", "Records skipped: not in Ferry's format.", func(s cluster.Stats) uint64 { return s.DecodeErrors }},
	} {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "cluster", Name: f.name + "_total", Help: f.help,
		}, func() float64 { return float64(f.value(c.Stats())) }))
	}
	return cs
}

// kafkaMessagingCollectors export what Hono's Kafka messaging could not
// take.
func kafkaMessagingCollectors(m *kafkaapi.Messaging) []prometheus.Collector {
	return []prometheus.Collector{prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: "kafka", Name: "qos0_dropped_total",
		Help: "QoS 0 telemetry dropped because Kafka's producer buffer was full.",
	}, func() float64 { return float64(m.Dropped()) })}
}
