package cluster

import (
	"context"
	"errors"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/kafkatopics"
)

// createTopics creates the messages topic and the compacted retained topic.
// A topic that exists is left as it is. Other failures (such as a missing
// CREATE permission on topics an operator made) are only returned for the
// caller to report if the topics then turn out to be missing.
func createTopics(ctx context.Context, cl *kgo.Client, o Options) error {
	spec := kafkatopics.Spec{Partitions: o.Partitions, Replication: o.ReplicationFactor}
	res, err := kafkatopics.Create(ctx, cl, []string{o.Topic}, spec)
	if err != nil {
		return err
	}
	errs := kafkatopics.Err(res)
	spec.Configs = map[string]string{"cleanup.policy": "compact"}
	if res, err = kafkatopics.Create(ctx, cl, []string{o.RetainedTopic}, spec); err != nil {
		return errors.Join(errs, err)
	}
	return errors.Join(errs, kafkatopics.Err(res))
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
