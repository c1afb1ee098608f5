package node

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-iot/ferry/internal/bridge"
	"github.com/ferry-iot/ferry/internal/metrics"
	"github.com/ferry-iot/ferry/internal/systopics"
)

// startBridges starts the configured bridges once the hub has recovered,
// so that their sessions find what they left in the store, and registers
// their closer and metrics.
func (n *Node) startBridges() error {
	if len(n.cfg.Bridges) == 0 {
		return nil
	}
	var bridges []*bridge.Bridge
	stop := func(ctx context.Context) error {
		var errs []error
		for _, b := range bridges {
			errs = append(errs, b.Close(ctx))
		}
		return errors.Join(errs...)
	}
	// Before the hub's closer runs: the bridges detach their sessions.
	n.closers = append(n.closers, stop)
	for _, c := range n.cfg.Bridges {
		dir := ""
		if n.store != nil {
			dir = filepath.Join(n.cfg.DataDir, "bridges", c.Name)
		}
		b, err := bridge.Start(bridge.Options{Config: c, Hub: n.hub, Dir: dir, Logger: n.log})
		if err != nil {
			return err
		}
		bridges = append(bridges, b)
	}
	n.metrics.Register(&bridgeCollector{bridges: bridges})
	n.bridges = bridges
	return nil
}

// bridgeSysTopics are the bridges' figures of a tenant under
// $SYS/broker/connection/<name>/, as Mosquitto publishes a bridge's state
// (1 connected, 0 not) there.
func (n *Node) bridgeSysTopics(tenant string) []systopics.Topic {
	var ts []systopics.Topic
	for _, b := range n.bridges {
		if b.Tenant() != tenant {
			continue
		}
		st := b.Stats()
		state := "0"
		if st.Connected {
			state = "1"
		}
		base := "connection/" + st.Name + "/"
		ts = append(ts,
			systopics.Topic{Name: base + "state", Value: state},
			systopics.Topic{Name: base + "reconnects", Value: strconv.FormatUint(st.Reconnects, 10)},
			systopics.Topic{Name: base + "forwarded/in", Value: strconv.FormatUint(st.ForwardedIn, 10)},
			systopics.Topic{Name: base + "forwarded/out", Value: strconv.FormatUint(st.ForwardedOut, 10)},
			systopics.Topic{Name: base + "dropped", Value: strconv.FormatUint(st.Dropped, 10)},
			systopics.Topic{Name: base + "queued", Value: strconv.Itoa(st.Queued)})
	}
	return ts
}

// bridgeCollector reads the bridges' counters at scrape time.
type bridgeCollector struct{ bridges []*bridge.Bridge }

func bridgeDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metrics.Namespace+"_bridge_"+name, help, labels, nil)
}

var (
	bridgeConnected  = bridgeDesc("connected", "1 while the bridge is connected to its remote broker.", "bridge")
	bridgeReconnects = bridgeDesc("reconnects_total", "Connections to the remote broker after the first.", "bridge")
	bridgeForwarded  = bridgeDesc("forwarded_total", "Messages forwarded: in (remote to local), out (local to remote, acknowledged by the remote).", "bridge", "direction")
	bridgeDropped    = bridgeDesc("dropped_total", "Messages not forwarded: refused by the remote, expired, or QoS 0 while disconnected.", "bridge")
	bridgeQueued     = bridgeDesc("queued", "Messages waiting to go out, in memory (more may wait in the store).", "bridge")
)

func (c *bridgeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{bridgeConnected, bridgeReconnects, bridgeForwarded, bridgeDropped, bridgeQueued} {
		ch <- d
	}
}

func (c *bridgeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.bridges {
		st := b.Stats()
		connected := 0.0
		if st.Connected {
			connected = 1
		}
		ch <- prometheus.MustNewConstMetric(bridgeConnected, prometheus.GaugeValue, connected, st.Name)
		ch <- prometheus.MustNewConstMetric(bridgeReconnects, prometheus.CounterValue, float64(st.Reconnects), st.Name)
		ch <- prometheus.MustNewConstMetric(bridgeForwarded, prometheus.CounterValue, float64(st.ForwardedIn), st.Name, "in")
		ch <- prometheus.MustNewConstMetric(bridgeForwarded, prometheus.CounterValue, float64(st.ForwardedOut), st.Name, "out")
		ch <- prometheus.MustNewConstMetric(bridgeDropped, prometheus.CounterValue, float64(st.Dropped), st.Name)
		ch <- prometheus.MustNewConstMetric(bridgeQueued, prometheus.GaugeValue, float64(st.Queued), st.Name)
	}
}
