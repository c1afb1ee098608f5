// Package kafkatopics is the Kafka administration Ferry needs, with plain
// protocol requests (kmsg; kadm is not a dependency of the module):
// waiting for brokers, creating topics (for the CLI and for the internal
// topics nodes create at start), reading partition offsets, and reading a
// topic up to the offsets it had (a node catching up with its state).
package kafkatopics

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Result is what became of one topic Create asked for.
type Result struct {
	Topic   string
	Existed bool  // it was there already, and is left as it was
	Err     error // it could not be created
}

// Spec is how topics are to be made: partitions and replication factor
// (zero: the brokers' defaults) and topic configs (e.g. cleanup.policy).
type Spec struct {
	Partitions  int32
	Replication int16
	Configs     map[string]string
}

// Create creates topics as spec says through cl, leaving those that exist
// as they are. err is for the request as a whole; each topic's fate is in
// the results.
func Create(ctx context.Context, cl *kgo.Client, topics []string, spec Spec) ([]Result, error) {
	partitions, replication := spec.Partitions, spec.Replication
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	for _, name := range topics {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic = name
		t.NumPartitions, t.ReplicationFactor = -1, -1 // the brokers' defaults (Kafka 2.4+)
		if partitions > 0 {
			t.NumPartitions = partitions
		}
		if replication > 0 {
			t.ReplicationFactor = replication
		}
		for k, v := range spec.Configs {
			c := kmsg.NewCreateTopicsRequestTopicConfig()
			c.Name, c.Value = k, kmsg.StringPtr(v)
			t.Configs = append(t.Configs, c)
		}
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("creating topics: %w", err)
	}
	res := make([]Result, 0, len(resp.Topics))
	for _, t := range resp.Topics {
		r := Result{Topic: t.Topic}
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case errors.Is(err, kerr.TopicAlreadyExists):
			r.Existed = true
		case err != nil:
			msg := ""
			if t.ErrorMessage != nil {
				msg = ": " + *t.ErrorMessage
			}
			r.Err = fmt.Errorf("%w%s", err, msg)
		}
		res = append(res, r)
	}
	return res, nil
}

// Err joins the errors of the topics that could not be created.
func Err(res []Result) error {
	var errs []error
	for _, r := range res {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("topic %s: %w", r.Topic, r.Err))
		}
	}
	return errors.Join(errs...)
}

// Span is a partition's offsets: the first record's and the next one's.
type Span struct{ Start, End int64 }

// Offsets returns the partitions of topic with their offsets, retrying
// while Kafka answers with retriable errors (a topic just created has no
// leaders yet) until ctx ends.
func Offsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]Span, error) {
	return offsets(ctx, cl, topic, readUncommitted)
}

// CommittedOffsets is Offsets as read_committed consumers see them: End is
// the partition's last stable offset, below which every transaction is
// decided (committed or aborted).
func CommittedOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]Span, error) {
	return offsets(ctx, cl, topic, readCommitted)
}

// The isolation levels of ListOffsets.
const (
	readUncommitted int8 = 0
	readCommitted   int8 = 1
)

func offsets(ctx context.Context, cl *kgo.Client, topic string, isolation int8) (map[int32]Span, error) {
	backoff := 20 * time.Millisecond
	for {
		spans, err := listOffsets(ctx, cl, topic, isolation)
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

func listOffsets(ctx context.Context, cl *kgo.Client, topic string, isolation int8) (map[int32]Span, error) {
	parts, err := Partitions(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	spans := make(map[int32]Span, len(parts))
	for _, ts := range []int64{-2, -1} { // earliest, latest
		req := kmsg.NewPtrListOffsetsRequest()
		req.IsolationLevel = isolation
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
					s.Start = p.Offset
				} else {
					s.End = p.Offset
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

// Partitions returns the partition numbers of topic.
func Partitions(ctx context.Context, cl *kgo.Client, topic string) ([]int32, error) {
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

// Ping waits for a broker to answer until ctx ends, since Kafka may be
// starting with the node, and returns the last failure then: the last one
// that says why (a certificate, a login), not the deadline that cut the
// last try short.
func Ping(ctx context.Context, cl *kgo.Client) error {
	var last error
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		err := cl.Ping(ctx)
		if err == nil {
			return nil
		}
		if last == nil || ctx.Err() == nil {
			last = err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return last
		case <-t.C:
		}
	}
}

// ReadTo hands handle every record cl fetches until, in each partition of
// ends, the record just before its end offset came (cl consumes those
// partitions from where the caller wants them read). It returns the
// partitions it did not finish: those that brought nothing for idle,
// because the records up to their end were compacted away. cl must keep
// control records when a topic is transactional: its last record before
// the end offset is then a commit marker. Its FetchMaxWait must be well
// under idle: a fetch the broker holds over partitions that have nothing
// must not use the whole window up. Fetch failures go to failed
// (franz-go retries them); ReadTo ends early only with ctx or cl closed,
// and says so in err.
func ReadTo(ctx context.Context, cl *kgo.Client, ends map[int32]int64, idle time.Duration,
	handle func(*kgo.Record), failed func(topic string, partition int32, err error)) (map[int32]int64, error) {
	left := make(map[int32]int64, len(ends))
	for p, end := range ends {
		left[p] = end
	}
	for len(left) > 0 {
		pctx, cancel := context.WithTimeout(ctx, idle)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return left, err
		}
		if fs.IsClientClosed() {
			return left, kgo.ErrClientClosed
		}
		if fs.NumRecords() == 0 && pctx.Err() != nil {
			return left, nil
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				failed(topic, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			handle(r)
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
	return nil, nil
}
