package analytics

import (
	"context"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-iot/ferry/internal/analytics/query"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
)

// Kafka sources: a query FROM kafka '<topic>', or FROM telemetry or event
// when Hono's messaging runs on Kafka (Options.HonoKafkaTopic), reads
// its topic through a consumer group of its own,
// ferry-analytics.<tenant>.<query>, so that the nodes of a cluster share
// the partitions (Hono's topics are keyed by device, so a device's rows
// stay on one node). A Kafka query has one shard; it never drops: the
// consumer waits for room. Offsets are committed after each checkpoint
// (what the state covers); without checkpoints, automatically.

// kafkaTopic returns the Kafka topic a query reads, if it reads one.
func (s *Service) kafkaTopic(spec *query.Spec) (string, bool) {
	q := spec.Query
	switch {
	case q.From.Kind == query.FromKafka:
		return q.From.Arg, true
	case s.opts.HonoKafkaTopic == nil:
		return "", false
	case q.From.Kind == query.FromTelemetry:
		return s.opts.HonoKafkaTopic(hono.Telemetry, spec.Tenant), true
	case q.From.Kind == query.FromEvent:
		return s.opts.HonoKafkaTopic(hono.Event, spec.Tenant), true
	}
	return "", false
}

// GroupPrefix starts the consumer group of a Kafka query:
// ferry-analytics.<tenant>.<query>.
const GroupPrefix = "ferry-analytics."

// startKafka starts the consumer of a query's Kafka source.
func (r *running) startKafka(topic string) error {
	opts := append([]kgo.Opt{}, r.svc.opts.KafkaConsumer...)
	opts = append(opts, kgo.ConsumerGroup(GroupPrefix+r.spec.Tenant+"."+r.spec.Name), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	if r.svc.opts.Checkpoints != nil {
		opts = append(opts, kgo.DisableAutoCommit())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	r.kafka = cl
	r.wg.Add(1)
	go r.consume(topic)
	return nil
}

// consume polls the source and hands the records to the shard, waiting
// for room rather than dropping.
func (r *running) consume(topic string) {
	defer r.wg.Done()
	sh := r.shards[0]
	ep, hubTopic := hono.Endpoint(0), false
	if r.spec.Query.From.Kind != query.FromKafka {
		ep, hubTopic = hono.Telemetry, true
		if r.spec.Query.From.Kind == query.FromEvent {
			ep = hono.Event
		}
	}
	var lastErr time.Time
	for {
		fs := r.kafka.PollRecords(r.ctx, 1024)
		if r.ctx.Err() != nil {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			if time.Since(lastErr) > time.Minute {
				lastErr = time.Now()
				r.svc.log.Warn("analytics Kafka source: fetch failed", "tenant", r.spec.Tenant, "query", r.spec.Name,
					"topic", t, "partition", p, "err", err)
			}
		})
		stopped := false
		fs.EachRecord(func(rec *kgo.Record) {
			if stopped {
				return
			}
			m := recordMessage(rec, ep, hubTopic)
			if !sh.in.pushWait(r.ctx, item{d: hub.Delivery{Message: m}, rec: rec}) {
				stopped = true
			}
		})
		if stopped {
			return
		}
	}
}

// recordMessage is a Kafka record as the shards take messages: Hono's
// key (the device) and headers (creation-time, content-type, device_id)
// become the hub message's topic, creation time and properties.
func recordMessage(rec *kgo.Record, ep hono.Endpoint, hubTopic bool) *hub.Message {
	m := &hub.Message{Payload: rec.Value, Created: rec.Timestamp, Topic: rec.Topic}
	device := string(rec.Key)
	hasDevice := false
	for _, h := range rec.Headers {
		switch h.Key {
		case "creation-time":
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				m.Created = time.UnixMilli(ms)
			}
		case "content-type":
			m.ContentType = string(h.Value)
		case hono.PropDeviceID:
			device, hasDevice = string(h.Value), true
		}
		m.Properties = append(m.Properties, hub.Property{Key: h.Key, Value: string(h.Value)})
	}
	if !hasDevice && device != "" {
		m.Properties = append(m.Properties, hub.Property{Key: hono.PropDeviceID, Value: device})
	}
	if hubTopic {
		m.Topic = hono.HubTopic(ep, device)
	}
	return m
}

// processed records a Kafka record's offset for the next commit.
func (sh *shard) processed(rec *kgo.Record) {
	if sh.offsets == nil {
		sh.offsets = map[string]map[int32]kgo.EpochOffset{}
	}
	ps := sh.offsets[rec.Topic]
	if ps == nil {
		ps = map[int32]kgo.EpochOffset{}
		sh.offsets[rec.Topic] = ps
	}
	ps[rec.Partition] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}
}

func mergeOffsets(dst, src map[string]map[int32]kgo.EpochOffset) map[string]map[int32]kgo.EpochOffset {
	for t, ps := range src {
		if dst == nil {
			dst = map[string]map[int32]kgo.EpochOffset{}
		}
		if dst[t] == nil {
			dst[t] = map[int32]kgo.EpochOffset{}
		}
		for p, o := range ps {
			dst[t][p] = o
		}
	}
	return dst
}

// commitOffsets commits what the last checkpoint covers; a failure keeps
// the offsets for the next one (a crash meanwhile replays records onto
// the checkpoint that counted them: at least once in that gap).
func (r *running) commitOffsets() {
	if r.kafka == nil || len(r.pendOffsets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var failed error
	r.kafka.CommitOffsetsSync(ctx, r.pendOffsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		failed = err
		if err == nil {
			failed = commitErr(resp)
		}
	})
	if failed != nil {
		r.svc.log.Warn("analytics Kafka source: offsets not committed", "tenant", r.spec.Tenant, "query", r.spec.Name, "err", failed)
		return
	}
	r.pendOffsets = nil
}

// commitErr is the first partition error of an offset commit.
func commitErr(resp *kmsg.OffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return err
			}
		}
	}
	return nil
}
