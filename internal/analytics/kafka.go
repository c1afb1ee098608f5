package analytics

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/analytics/engine"
	"github.com/ferry-iot/ferry/internal/analytics/fields"
	"github.com/ferry-iot/ferry/internal/hono"
)

// KafkaProducer sends the rows of Kafka outputs; *kgo.Client is one.
type KafkaProducer interface {
	TryProduce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// kafkaRecord is a row as a Kafka record: key = the group key (values
// joined by commas), headers device_id (when a key), tenant_id, query and
// window_start, as Hono's topics carry device_id, so that Spark or Kafka
// Streams group by key without parsing the value.
func (o *outputs) kafkaRecord(topic string, row *engine.Row, b []byte) *kgo.Record {
	r := o.r
	hs := []kgo.RecordHeader{
		{Key: hono.PropTenantID, Value: []byte(r.spec.Tenant)},
		{Key: "query", Value: []byte(r.spec.Name)},
		{Key: "window_start", Value: []byte(engine.FormatTime(row.Start))},
		{Key: "content-type", Value: []byte(ContentType)},
	}
	if v, ok := row.Value("device_id"); ok && v.Kind == fields.String {
		hs = append(hs, kgo.RecordHeader{Key: hono.PropDeviceID, Value: []byte(v.Str)})
	}
	return &kgo.Record{Topic: topic, Key: []byte(UserKey(row.Key)), Value: b, Headers: hs}
}

// produce hands a row's records to Kafka without waiting: a full
// producer buffer or a failed send counts the row as lost (output
// "kafka").
func (o *outputs) produce(recs []*kgo.Record) {
	p := o.r.svc.opts.Kafka
	for _, rec := range recs {
		p.TryProduce(o.r.ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				o.kafkaFailed.Add(1)
			}
		})
	}
}
