package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

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

// span is a partition's offsets: the first record's and the next one's.
type span struct{ start, end int64 }

// offsets returns the partitions of topic with their offsets, retrying
// while Kafka answers with retriable errors (a topic just created has no
// leaders yet) until ctx ends.
func offsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]span, error) {
	backoff := 20 * time.Millisecond
	for {
		spans, err := listOffsets(ctx, cl, topic)
		if err == nil || !kerr.IsRetriable(err) {
			return spans, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

func listOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]span, error) {
	parts, err := partitions(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	spans := make(map[int32]span, len(parts))
	for _, ts := range []int64{-2, -1} { // earliest, latest
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for _, p := range parts {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p
			rp.Timestamp = ts
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return nil, fmt.Errorf("listing offsets of %s: %w", topic, err)
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return nil, fmt.Errorf("listing offsets of %s/%d: %w", topic, p.Partition, err)
				}
				s := spans[p.Partition]
				if ts == -2 {
					s.start = p.Offset
				} else {
					s.end = p.Offset
				}
				spans[p.Partition] = s
			}
		}
	}
	if len(spans) != len(parts) {
		return nil, fmt.Errorf("listing offsets of %s: %d of %d partitions answered: %w", topic, len(spans), len(parts), kerr.LeaderNotAvailable)
	}
	return spans, nil
}

// partitions returns the partition numbers of topic.
func partitions(ctx context.Context, cl *kgo.Client, topic string) ([]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	if len(resp.Topics) != 1 {
		return nil, fmt.Errorf("metadata of %s: %d topics in the answer", topic, len(resp.Topics))
	}
	t := resp.Topics[0]
	if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	if len(t.Partitions) == 0 {
		return nil, fmt.Errorf("metadata of %s: no partitions: %w", topic, kerr.LeaderNotAvailable)
	}
	out := make([]int32, 0, len(t.Partitions))
	for _, p := range t.Partitions {
		out = append(out, p.Partition)
	}
	return out, nil
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
