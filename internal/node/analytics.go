package node

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/ferry-iot/ferry/internal/analytics"
	"github.com/ferry-iot/ferry/internal/analytics/query"
	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
)

// startAnalytics starts the analytics service: the queries applied
// through the API before (kept in data_dir/analytics with the Pebble
// store), then those of the configuration file, which replace stored ones
// of the same name.
func (n *Node) startAnalytics() error {
	cfg := n.cfg
	specs := make([]*query.Spec, 0, len(cfg.Analytics.Queries))
	for i, doc := range cfg.Analytics.Queries {
		raw, err := yaml.Marshal(&doc)
		if err != nil {
			return fmt.Errorf("analytics.queries[%d]: %w", i, err)
		}
		spec, err := query.ParseSpec(raw, config.DefaultTenant)
		if err != nil {
			return fmt.Errorf("analytics.queries[%d] (line %d): %w", i, doc.Line, err)
		}
		specs = append(specs, spec)
	}
	// Exactly-once queries' transactional ids need a name that stays the
	// node's across restarts: the configured node id, else the host's.
	nodeID := cfg.Cluster.NodeID
	if nodeID == "" {
		nodeID, _ = os.Hostname()
	}
	opts := analytics.Options{
		Hub:                n.hub,
		NodeID:             nodeID,
		CheckpointInterval: time.Duration(cfg.Analytics.CheckpointInterval),
		Logger:             n.log,
		Ext: func(ctx context.Context, tenant, device string) (map[string]any, error) {
			d, _, err := n.registry.GetDevice(ctx, tenant, device)
			if err != nil {
				return nil, err
			}
			return d.Ext, nil
		},
	}
	if cfg.Store.Engine == "pebble" {
		cp, err := analytics.OpenCheckpoints(filepath.Join(cfg.DataDir, "analytics"), n.log)
		if err != nil {
			return err
		}
		n.closers = append(n.closers, func(context.Context) error { return cp.Close() })
		opts.Checkpoints = cp
	}
	if err := n.analyticsKafka(&opts); err != nil {
		return err
	}
	if cfg.ScaleOut() && !cfg.Hono.Disabled {
		// Hono's messaging is on Kafka: telemetry and events are there,
		// not in the hub.
		topics := kafkaapi.Topics{Prefix: cfg.Hono.Kafka.TopicPrefix}
		opts.HonoKafkaTopic = func(ep hono.Endpoint, tenant string) string {
			if ep == hono.Event {
				return topics.Event(tenant)
			}
			return topics.Telemetry(tenant)
		}
	}
	svc := analytics.New(opts)
	n.closers = append(n.closers, svc.Close)
	n.analytics = svc
	n.metrics.Register(svc.Collector())
	if err := svc.RestoreSpecs(); err != nil {
		return fmt.Errorf("analytics: stored queries: %w", err)
	}
	for _, spec := range specs {
		if _, err := svc.Apply(spec, false); err != nil {
			return fmt.Errorf("analytics query %s: %w", spec.Name, err)
		}
		n.hub.AddTenant(spec.Tenant)
	}
	return nil
}

// analyticsKafka sets the producer of the queries' kafka outputs and the
// connection of their Kafka sources: analytics.kafka_brokers, else the
// cluster's brokers, else none.
func (n *Node) analyticsKafka(opts *analytics.Options) error {
	var kopts []kgo.Opt
	switch {
	case len(n.cfg.Analytics.KafkaBrokers) > 0:
		kopts = []kgo.Opt{kgo.SeedBrokers(n.cfg.Analytics.KafkaBrokers...), kgo.ClientID("ferry-analytics")}
	case n.cfg.ScaleOut():
		var err error
		if kopts, _, err = n.kafkaClient("ferry-analytics"); err != nil {
			return err
		}
	default:
		return nil
	}
	opts.KafkaConsumer = append([]kgo.Opt{}, kopts...)
	cl, err := kgo.NewClient(append(kopts, kgo.AllowAutoTopicCreation(), kgo.MaxBufferedRecords(100_000))...)
	if err != nil {
		return fmt.Errorf("analytics.kafka_brokers: %w", err)
	}
	n.closers = append(n.closers, func(ctx context.Context) error {
		err := cl.Flush(ctx)
		cl.Close()
		return err
	})
	opts.Kafka = cl
	return nil
}

// mountAnalytics serves the analytics API under /v1/analytics/, with the
// registry API's admin password.
func (n *Node) mountAnalytics(mux *http.ServeMux) error {
	pw, err := n.adminPassword()
	if err != nil {
		return fmt.Errorf("admin password (--admin-password): %w", err)
	}
	mux.Handle("/v1/analytics/", n.analytics.Handler(analytics.APIOptions{AdminPassword: pw, Logger: n.log}))
	return nil
}

// Analytics is the node's analytics service.
func (n *Node) Analytics() *analytics.Service { return n.analytics }
