package kafkaapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicResult is what became of one topic CreateTopics asked for.
type TopicResult struct {
	Topic   string
	Existed bool  // it was there already, and is left as it was
	Err     error // it could not be created
}

// CreateTopics creates topics with partitions and replication factor
// (zero: the brokers' defaults), leaving those that exist as they are.
// err is for the request as a whole; each topic's fate is in the results.
func CreateTopics(ctx context.Context, client []kgo.Opt, topics []string, partitions int32, replication int16) ([]TopicResult, error) {
	cl, err := kgo.NewClient(client...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
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
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("creating topics: %w", err)
	}
	res := make([]TopicResult, 0, len(resp.Topics))
	for _, t := range resp.Topics {
		r := TopicResult{Topic: t.Topic}
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
