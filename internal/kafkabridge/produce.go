package kafkabridge

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/northbound/amqpapi"
)

// producer serves one link the application sends on.
type producer struct {
	b     *Bridge
	rcv   *amqp.Receiver
	app   *amqpapi.Application
	topic string // "": the anonymous relay, each message's to names it
	conv  converter
}

func (b *Bridge) handleProduce(req *amqp.LinkRequest, app *amqpapi.Application, conv converter) error {
	var topic string
	if req.Address != "" {
		var err error
		if topic, err = produceTopic(req.Address); err != nil {
			return err
		}
		if err := b.authorize(app, topic); err != nil {
			return err
		}
	}
	if err := b.acquire(false); err != nil {
		return err
	}
	req.Credit = uint32(b.opts.InFlight)
	// We settle each delivery with its outcome: an application asking to
	// settle second would make the producer's callbacks wait for it.
	first := amqp.ReceiverSettleFirst
	req.RcvSettleMode = &first
	p := &producer{b: b, rcv: req.Receiver, app: app, topic: topic, conv: conv}
	go p.run()
	return nil
}

// run produces the link's messages until it ends. A slot is taken before
// each Receive and given back when Kafka answers, so the link's credit,
// granted as Receive takes messages, comes back with Kafka's acks.
// Records still in flight when the link ends settle into the void.
func (p *producer) run() {
	defer p.b.release(false)
	ctx := p.b.ctx
	slots := make(chan struct{}, p.b.opts.InFlight)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		d, err := p.rcv.Receive(ctx)
		if err != nil {
			return
		}
		rec, aerr := p.record(&d.Message)
		if aerr != nil {
			<-slots
			_ = d.Reject(context.Background(), aerr)
			continue
		}
		settled := d.Settled
		// Not ctx: what is buffered when the bridge closes still goes out
		// with Close's flush.
		p.b.prod.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
			<-slots
			// Settling never waits: the link settles first, so the
			// disposition is only queued for the socket.
			ctx := context.Background()
			switch {
			case settled && err != nil:
				p.b.dropped.Add(1)
				p.b.log.Debug("kafka bridge: presettled message dropped", "topic", r.Topic, "err", err)
			case settled:
			case err != nil:
				_ = d.Reject(ctx, &amqp.Error{Condition: CondErrorToKafka, Description: describe(r.Topic, err)})
			default:
				_ = d.Accept(ctx)
			}
		})
	}
}

// record converts a message for its topic: the link's, or the one its
// to names on the anonymous relay.
func (p *producer) record(m *amqp.Message) (*kgo.Record, *amqp.Error) {
	topic := p.topic
	if topic == "" {
		var to string
		if m.Properties != nil {
			to = m.Properties.To
		}
		t, err := produceTopic(to)
		if err != nil {
			return nil, asError(err)
		}
		if err := p.b.authorize(p.app, t); err != nil {
			return nil, asError(err)
		}
		topic = t
	}
	rec, err := p.conv.record(m)
	if err != nil {
		return nil, err
	}
	rec.Topic = topic
	if err := routing(m, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

func asError(err error) *amqp.Error {
	if e, ok := err.(*amqp.Error); ok {
		return e
	}
	return &amqp.Error{Condition: amqp.CondInternalError, Description: err.Error()}
}

// routing applies the message's x-opt-bridge.partition and
// x-opt-bridge.key annotations.
func routing(m *amqp.Message, rec *kgo.Record) *amqp.Error {
	if v, ok := m.MessageAnnotations.Get(AnnotationKey); ok {
		switch k := v.(type) {
		case string:
			rec.Key = []byte(k)
		case []byte:
			rec.Key = k
		default:
			return &amqp.Error{Condition: amqp.CondInvalidField, Description: fmt.Sprintf("%s must be a string, not %T", AnnotationKey, v)}
		}
	}
	if v, ok := m.MessageAnnotations.Get(AnnotationPartition); ok {
		n, ok := amqp.Integer(v)
		if !ok || n < 0 || n > 1<<31-1 {
			return &amqp.Error{Condition: amqp.CondInvalidField, Description: fmt.Sprintf("%s must be a partition number (int), not %v", AnnotationPartition, v)}
		}
		rec.Partition = int32(n)
		rec.Context = manualPartition
	}
	return nil
}

// manualPartition marks records whose partition the message chose: the
// partitioner keeps it.
var manualPartition = context.WithValue(context.Background(), manualKey{}, true)

type manualKey struct{}

func isManual(r *kgo.Record) bool { return r.Context == manualPartition }

// partitioner is the default one (uniform bytes, sticky for keyless
// records, hashing keys) except for records with a partition of their
// own: those require consistency, so the client indexes all partitions
// (not only the writable ones) and the record's number is the index.
// A number past the topic's partitions fails the record.
type partitioner struct{ def kgo.Partitioner }

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return topicPartitioner{p.def.ForTopic(topic)}
}

// topicPartitioner keeps the optional interfaces of the default one,
// which franz-go looks for.
type topicPartitioner struct{ def kgo.TopicPartitioner }

func (t topicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return isManual(r) || t.def.RequiresConsistency(r)
}

func (t topicPartitioner) Partition(r *kgo.Record, n int) int {
	if isManual(r) {
		return int(r.Partition)
	}
	return t.def.Partition(r, n)
}

func (t topicPartitioner) OnNewBatch() {
	if nb, ok := t.def.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}

func (t topicPartitioner) PartitionByBackup(r *kgo.Record, n int, backup kgo.TopicBackupIter) int {
	if isManual(r) {
		return int(r.Partition)
	}
	if bp, ok := t.def.(kgo.TopicBackupPartitioner); ok {
		return bp.PartitionByBackup(r, n, backup)
	}
	return t.def.Partition(r, n)
}
