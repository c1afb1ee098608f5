// Package kafkatopics creates Kafka topics with plain protocol requests
// (kmsg; kadm is not a dependency of the module), for the CLI and for the
// internal topics nodes create at start.
package kafkatopics

import (
	"context"
	"errors"
	"fmt"

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
