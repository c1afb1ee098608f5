package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka administration with plain protocol requests (kmsg): kadm is not a
// dependency of the module.

// createTopics creates the messages topic and the compacted retained topic.
// A topic that exists is left as it is. Other failures (such as a missing
// CREATE permission on topics an operator made) are only returned for the
// caller to report if the topics then turn out to be missing.
func createTopics(ctx context.Context, cl *kgo.Client, o Options) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	for _, name := range []string{o.Topic, o.RetainedTopic} {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic = name
		t.NumPartitions = -1 // the broker's default (Kafka 2.4+)
		if o.Partitions > 0 {
			t.NumPartitions = o.Partitions
		}
		t.ReplicationFactor = -1
		if o.ReplicationFactor > 0 {
			t.ReplicationFactor = o.ReplicationFactor
		}
		if name == o.RetainedTopic {
			c := kmsg.NewCreateTopicsRequestTopicConfig()
			c.Name = "cleanup.policy"
			c.Value = kmsg.StringPtr("compact")
			t.Configs = append(t.Configs, c)
		}
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	var errs []error
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("creating topic %s: %w", t.Topic, err))
		}
	}
	return errors.Join(errs...)
}

// kafkaLogger hands franz-go's log lines to slog. Its Info level (a line
// per connection and metadata change) shows only when slog shows Info.
type kafkaLogger struct{ l *slog.Logger }

func (k kafkaLogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case k.l.Enabled(ctx, slog.LevelInfo):
		return kgo.LogLevelInfo
	case k.l.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	case k.l.Enabled(ctx, slog.LevelError):
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (k kafkaLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	case kgo.LogLevelInfo:
		l = slog.LevelInfo
	}
	k.l.Log(context.Background(), l, "kafka: "+msg, keyvals...)
}
