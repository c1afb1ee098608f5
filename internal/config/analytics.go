package config

import "go.yaml.in/yaml/v3"

// Analytics configures the built-in streaming analytics (docs/analytics.md).
type Analytics struct {
	// CheckpointInterval (analytics.checkpoint_interval) is the period of
	// the queries' state checkpoints in data_dir/analytics (Pebble store
	// only), besides the one at shutdown. Default 10s.
	CheckpointInterval Duration `yaml:"checkpoint_interval"`
	// KafkaBrokers (analytics.kafka_brokers) are the Kafka bootstrap
	// servers of the queries' kafka outputs (plain TCP, no SASL). Default
	// none: the cluster's (cluster.kafka, --kafka-brokers) when set, else
	// kafka outputs are refused.
	KafkaBrokers []string `yaml:"kafka_brokers"`
	// Queries (analytics.queries[]) are query documents as `ferry query
	// apply` takes them (name, tenant, sql, outputs...); tenant defaults
	// to DEFAULT_TENANT. They are checked when the node starts.
	Queries []yaml.Node `yaml:"queries"`
}
