package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/kafkatopics"
	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
)

// newKafkaCmd is `ferry kafka`: Kafka administration for Hono's messaging,
// whose tenant topics Ferry never creates on the fly.
func newKafkaCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "kafka", Short: "Kafka topics of Hono's messaging"}
	topics := &cobra.Command{Use: "topics", Short: "A tenant's Hono topics"}
	var (
		tenant      string
		brokers     []string
		prefix      string
		partitions  int32
		replication int16
		timeout     time.Duration
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a tenant's four topics (hono.telemetry|event|command|command_response.<tenant>)",
		Long: "Create the topics Hono's Kafka messaging uses for a tenant: hono.telemetry.<tenant>, hono.event.<tenant>,\n" +
			"hono.command.<tenant> and hono.command_response.<tenant>, each under --topic-prefix. Topics that exist are\n" +
			"left as they are. Brokers that need TLS or SASL: create the topics with the cluster's own tools.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tenant == "" {
				return errors.New("--tenant is required")
			}
			if len(brokers) == 0 {
				return errors.New("--kafka-brokers is required")
			}
			for _, b := range brokers {
				if _, _, err := net.SplitHostPort(b); err != nil {
					return fmt.Errorf("--kafka-brokers: %q is not host:port", b)
				}
			}
			if partitions < 0 || replication < 0 {
				return errors.New("--partitions and --replication-factor must not be negative")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
			if err != nil {
				return fmt.Errorf("--kafka-brokers %v: %w", brokers, err)
			}
			defer cl.Close()
			res, err := kafkatopics.Create(ctx, cl, kafkaapi.Topics{Prefix: prefix}.All(tenant), kafkatopics.Spec{Partitions: partitions, Replication: replication})
			if err != nil {
				return fmt.Errorf("--kafka-brokers %v: %w", brokers, err)
			}
			var failed error
			for _, r := range res {
				switch {
				case r.Err != nil:
					fmt.Fprintf(cmd.OutOrStdout(), "%s: not created: %v\n", r.Topic, r.Err)
					failed = errors.Join(failed, fmt.Errorf("%s: %w", r.Topic, r.Err))
				case r.Existed:
					fmt.Fprintf(cmd.OutOrStdout(), "%s: exists\n", r.Topic)
				default:
					fmt.Fprintf(cmd.OutOrStdout(), "%s: created\n", r.Topic)
				}
			}
			return failed
		},
	}
	fl := create.Flags()
	fl.StringVar(&tenant, "tenant", "", "the tenant whose topics to create (required)")
	fl.StringSliceVar(&brokers, "kafka-brokers", nil, "Kafka bootstrap servers, host:port,... (required)")
	fl.StringVar(&prefix, "topic-prefix", "", "prefix of the topic names, as hono.kafka.topic_prefix (--kafka-topic-prefix of serve)")
	fl.Int32Var(&partitions, "partitions", 0, "partitions of each topic (0: the brokers' default)")
	fl.Int16Var(&replication, "replication-factor", 0, "replication factor of each topic (0: the brokers' default)")
	fl.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the brokers")
	topics.AddCommand(create)
	cmd.AddCommand(topics)
	return cmd
}
