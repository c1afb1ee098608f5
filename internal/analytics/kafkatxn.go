package analytics

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/analytics/engine"
	"github.com/ferry-iot/ferry/internal/analytics/query"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/kafkatopics"
)

// Exactly-once Kafka queries (exactly_once: true, a Kafka source). The
// query is a franz-go GroupTransactSession: each round polls records,
// runs them through one operator per source partition, and in one Kafka
// transaction produces the rows of its kafka outputs, a snapshot of each
// changed partition's state to the changelog topic
// ferry-analytics.<tenant>.<query>.changelog (key: the partition), and
// commits the consumed offsets. A node that takes a partition over
// (rebalance, the previous owner gone) reads the partition's last
// committed snapshot from the changelog and goes on from the committed
// offset, so every (key, window) is emitted once on the kafka outputs as
// read_committed consumers see them. An aborted round rolls the
// operators back to their last committed snapshot. The other outputs
// (MQTT, AMQP, Prometheus, SSE) get the rows after the commit: at least
// once.

// txnRunner owns an exactly-once query's session and operators.
type txnRunner struct {
	r         *running
	topic     string
	changelog string
	sess      *kgo.GroupTransactSession
	lastTick  time.Time

	// mu guards parts and pending: the session's assignment callbacks
	// run on its own goroutines.
	mu      sync.Mutex
	parts   map[int32]*txnPart
	pending []*prepared
}

// txnPart is one source partition's operator and its last committed
// snapshot.
type txnPart struct {
	sh        *shard
	committed []byte
	dirty     bool
}

// ChangelogSuffix ends the changelog topic of an exactly-once query.
const ChangelogSuffix = ".changelog"

// startTxn starts an exactly-once query on topic.
func (r *running) startTxn(topic string) error {
	group := GroupPrefix + r.spec.Tenant + "." + r.spec.Name
	t := &txnRunner{r: r, topic: topic, changelog: group + ChangelogSuffix, parts: map[int32]*txnPart{}}
	if err := t.createChangelog(); err != nil {
		return err
	}
	opts := append([]kgo.Opt{}, r.svc.opts.KafkaConsumer...)
	opts = append(opts,
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		// From the start of the topic: a new exactly-once query counts
		// what the topic holds, so that no record is missed.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.TransactionalID(group+"."+r.svc.opts.NodeID),
		kgo.TransactionTimeout(10*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.SessionTimeout(10*time.Second), kgo.HeartbeatInterval(time.Second),
		// Static membership: a node that restarts takes its partitions
		// back at once instead of after the dead member's session timeout.
		kgo.InstanceID(group+"."+r.svc.opts.NodeID),
		kgo.OnPartitionsAssigned(t.assigned), kgo.OnPartitionsRevoked(t.revoked), kgo.OnPartitionsLost(t.revoked),
		kgo.AllowAutoTopicCreation(),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return err
	}
	t.sess = sess
	r.txn = t
	r.wg.Add(1)
	go t.run()
	return nil
}

// changelogWait bounds the creation of the changelog topic and the reading
// of it when partitions are assigned.
const changelogWait = 30 * time.Second

// createChangelog creates the changelog topic, compacted, unless it is
// there: a snapshot per source partition is all a reader needs. A topic
// that can be neither created nor found refuses the query: without it no
// state survives a move.
func (t *txnRunner) createChangelog() error {
	cl, err := kgo.NewClient(t.r.svc.opts.KafkaConsumer...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.r.ctx, changelogWait)
	defer cancel()
	res, err := kafkatopics.Create(ctx, cl, []string{t.changelog}, kafkatopics.Spec{Configs: map[string]string{"cleanup.policy": "compact"}})
	if err == nil {
		err = kafkatopics.Err(res)
	}
	if err != nil {
		if _, perr := kafkatopics.Partitions(ctx, cl, t.changelog); perr != nil {
			return fmt.Errorf("creating the changelog topic %s: %w", t.changelog, err)
		}
	}
	return nil
}

// newPart returns a partition's operator, restored from snap when given.
func (t *txnRunner) newPart(snap []byte) *txnPart {
	r := t.r
	p := &txnPart{committed: snap}
	p.sh = &shard{r: r, ext: map[string]extEntry{}}
	p.sh.op = engine.NewOperator(r.plan, &r.limits, &r.stats, t.emit)
	if snap != nil {
		if err := p.sh.op.Restore(snap); err != nil {
			r.svc.log.Warn("analytics changelog snapshot not restored: the partition starts empty", "query", r.spec.Name, "err", err)
			p.sh.op = engine.NewOperator(r.plan, &r.limits, &r.stats, t.emit)
			p.committed = nil
		}
	}
	return p
}

// emit keeps a row for the running transaction; mu is held.
func (t *txnRunner) emit(row *engine.Row) {
	t.pending = append(t.pending, t.r.outputs.prepare(row))
}

// rollback puts a partition's state back to its last commit.
func (t *txnRunner) rollback(p *txnPart) {
	p.sh.op.Release()
	fresh := t.newPart(p.committed)
	p.sh, p.dirty = fresh.sh, false
}

// assigned restores the new partitions' state from the changelog before
// their records are fetched.
func (t *txnRunner) assigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	parts := assigned[t.topic]
	if len(parts) == 0 {
		return
	}
	snaps, err := t.readChangelog(ctx)
	if err != nil {
		t.r.svc.log.Warn("analytics changelog unreadable: new partitions start empty", "query", t.r.spec.Name, "err", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range parts {
		if old := t.parts[p]; old != nil {
			old.sh.op.Release()
		}
		t.parts[p] = t.newPart(snaps[p])
	}
}

// revoked forgets the partitions the node no longer owns.
func (t *txnRunner) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range revoked[t.topic] {
		if old := t.parts[p]; old != nil {
			old.sh.op.Release()
			delete(t.parts, p)
		}
	}
}

// changelogIdle ends a changelog read that fetches nothing for this long:
// the records up to the end were compacted away.
const changelogIdle = 5 * time.Second

// readChangelog returns the last committed snapshot of every partition. It
// reads the changelog up to the last stable offsets it has now: the
// offsets just committed with the snapshots belong to the same
// transactions, and a transaction still open (a dead node's, until it
// times out) commits neither.
func (t *txnRunner) readChangelog(ctx context.Context) (map[int32][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, changelogWait)
	defer cancel()
	spans, err := kafkatopics.CommittedOffsets(ctx, t.sess.Client(), t.changelog)
	if err != nil {
		return nil, err
	}
	ends, from := map[int32]int64{}, map[int32]kgo.Offset{}
	for p, s := range spans {
		if s.End > s.Start {
			ends[p], from[p] = s.End, kgo.NewOffset().At(s.Start)
		}
	}
	if len(ends) == 0 {
		return nil, nil
	}
	opts := append([]kgo.Opt{}, t.r.svc.opts.KafkaConsumer...)
	opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{t.changelog: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.FetchMaxWait(changelogIdle/5)) // several fetches in the idle window
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	snaps := map[int32][]byte{}
	left, err := kafkatopics.ReadTo(ctx, cl, ends, changelogIdle, func(rec *kgo.Record) {
		if rec.Attrs.IsControl() {
			return
		}
		if p, err := strconv.ParseInt(string(rec.Key), 10, 32); err == nil {
			snaps[int32(p)] = rec.Value
		}
	}, func(topic string, p int32, err error) {
		t.r.svc.log.Warn("analytics changelog: fetch failed", "query", t.r.spec.Name, "topic", topic, "partition", p, "err", err)
	})
	if err != nil {
		return snaps, err
	}
	if len(left) > 0 {
		t.r.svc.log.Warn("analytics changelog: no records up to its end offsets (compacted away?); read without them",
			"query", t.r.spec.Name, "topic", t.changelog, "partitions_and_ends", left)
	}
	return snaps, nil
}

// txnTick is how often an exactly-once query advances the wall clock
// (idle close, EMIT EVERY) in a round of its own.
const txnTick = time.Second

// run is the query's goroutine: poll, process, produce and commit, in
// rounds.
func (t *txnRunner) run() {
	r := t.r
	defer r.wg.Done()
	ep, hubTopic := hono.Endpoint(0), false
	if r.spec.Query.From.Kind != query.FromKafka {
		ep, hubTopic = hono.Telemetry, true
		if r.spec.Query.From.Kind == query.FromEvent {
			ep = hono.Event
		}
	}
	var in engine.Input
	var lastErr time.Time
	for {
		pctx, cancel := context.WithTimeout(r.ctx, 250*time.Millisecond)
		fs := t.sess.PollRecords(pctx, 4096)
		cancel()
		if r.ctx.Err() != nil {
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && time.Since(lastErr) > time.Minute {
				lastErr = time.Now()
				r.svc.log.Warn("analytics Kafka source: fetch failed", "query", r.spec.Name, "topic", topic, "partition", p, "err", err)
			}
		})
		recs := fs.Records()
		now := r.svc.opts.Now()
		tick := now.Sub(t.lastTick) >= txnTick
		if len(recs) == 0 && !tick {
			continue
		}
		if err := t.sess.Begin(); err != nil {
			r.svc.log.Warn("analytics transaction not begun", "query", r.spec.Name, "err", err)
			continue
		}
		t.mu.Lock()
		for _, rec := range recs {
			p := t.parts[rec.Partition]
			if p == nil { // assigned before the callback ran: start empty
				p = t.newPart(nil)
				t.parts[rec.Partition] = p
			}
			p.sh.process(item{d: hub.Delivery{Message: recordMessage(rec, ep, hubTopic)}}, &in, now)
			p.dirty = true
		}
		if tick {
			t.lastTick = now
			for _, p := range t.parts {
				before := len(t.pending)
				p.sh.op.Tick(now.UnixMilli())
				p.dirty = p.dirty || len(t.pending) > before
			}
		}
		pending := t.pending
		t.pending = nil
		snaps := map[int32][]byte{}
		for id, p := range t.parts {
			if p.dirty {
				snaps[id] = p.sh.op.Snapshot()
			}
		}
		t.mu.Unlock()
		for _, pr := range pending {
			for _, rec := range pr.kafka {
				t.sess.Produce(r.ctx, rec, nil)
			}
		}
		for id, snap := range snaps {
			t.sess.Produce(r.ctx, &kgo.Record{Topic: t.changelog, Key: []byte(strconv.Itoa(int(id))), Value: snap}, nil)
		}
		committed, err := t.sess.End(r.ctx, kgo.TryCommit)
		t.mu.Lock()
		for id, snap := range snaps {
			p := t.parts[id]
			switch {
			case p == nil: // revoked meanwhile
			case committed && err == nil:
				p.committed, p.dirty = snap, false
			default:
				t.rollback(p)
			}
		}
		t.mu.Unlock()
		if !committed || err != nil {
			if err != nil && r.ctx.Err() == nil {
				r.svc.log.Warn("analytics transaction aborted: the round is done again", "query", r.spec.Name, "err", err)
			}
			continue
		}
		r.checkpoints.Add(1)
		for _, pr := range pending {
			r.outputs.deliver(pr, false)
		}
	}
}

// explain measures the partitions' operators.
func (t *txnRunner) explain() engine.Explain {
	t.mu.Lock()
	defer t.mu.Unlock()
	var e engine.Explain
	for _, p := range t.parts {
		x := p.sh.op.Explain()
		e.Keys += x.Keys
		e.OpenWindows += x.OpenWindows
		e.StateBytes += x.StateBytes
	}
	return e
}

// close ends the session: an open transaction is aborted, the group
// left.
func (t *txnRunner) close() {
	t.sess.Close()
}
