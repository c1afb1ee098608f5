package analytics

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/analytics/engine"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
)

// shard is one goroutine's share of a query: its inbox and operator,
// owned by that goroutine.
type shard struct {
	r       *running
	idx     int
	in      *inbox
	op      *engine.Operator
	explain chan chan engine.Explain
	snap    chan chan shardSnap
	ext     map[string]extEntry
	// Durable queries: the shard's state covers every delivery with a
	// sequence number up to covered.seq that was created by covered.at
	// (Unix ms), so that those the hub hands over again after a crash
	// are skipped. The creation time tells them from new deliveries: the
	// store numbers an emptied queue from 1 again after a restart. last is
	// the sequence number last processed, acks those processed since the
	// last snapshot.
	covered cover
	last    uint64
	acks    []uint64
	// offsets are the Kafka offsets to commit once a checkpoint covers
	// what was processed (Kafka sources).
	offsets map[string]map[int32]kgo.EpochOffset
}

// item is one message for a shard: a hub delivery, or a Kafka record
// (whose offset the shard commits once a checkpoint covers it).
type item struct {
	d   hub.Delivery
	rec *kgo.Record
}

// cover is what a shard's state covers of a durable query's deliveries.
type cover struct {
	seq uint64
	at  int64
}

func (c cover) covers(d hub.Delivery) bool {
	return d.Seq <= c.seq && d.Message.Created.UnixMilli() <= c.at
}

// shardSnap is a shard's state for a checkpoint and the deliveries it
// covers.
type shardSnap struct {
	state   []byte
	acks    []uint64
	offsets map[string]map[int32]kgo.EpochOffset
}

type extEntry struct {
	ext     map[string]any
	fetched time.Time
}

// snapshot is the shard's state with what it covers; it hands over the
// acknowledgements gathered since the last one.
func (sh *shard) snapshot() shardSnap {
	if sh.acks != nil && sh.last != 0 {
		// Deliveries are processed in order: everything up to last, and
		// created before now, is in the state.
		sh.covered = cover{seq: sh.last, at: sh.r.svc.opts.Now().UnixMilli()}
	}
	b := binary.AppendUvarint(nil, sh.covered.seq)
	b = binary.AppendVarint(b, sh.covered.at)
	sn := shardSnap{state: append(b, sh.op.Snapshot()...), acks: sh.acks, offsets: sh.offsets}
	sh.acks, sh.offsets = nil, nil
	return sn
}

func (sh *shard) restore(b []byte) error {
	seq, n := binary.Uvarint(b)
	if n <= 0 {
		return engine.ErrSnapshot
	}
	at, m := binary.Varint(b[n:])
	if m <= 0 {
		return engine.ErrSnapshot
	}
	if err := sh.op.Restore(b[n+m:]); err != nil {
		return err
	}
	sh.covered = cover{seq: seq, at: at}
	return nil
}

// Deliver implements hub.Sink for durable queries' sessions and takes the
// hub tap's messages of the others. It never blocks: past a full queue,
// telemetry is dropped and counted; an event is refused, and the durable
// session keeps it until a shard has room (Drain).
func (r *running) Deliver(d hub.Delivery) bool {
	sh := r.shards[0]
	if len(r.shards) > 1 {
		_, device, _ := hono.ParseHubTopic(d.Message.Topic)
		sh = r.shards[fnv32a(device)%uint32(len(r.shards))]
	}
	if !sh.in.push(item{d: d}) {
		if r.durable && d.Seq != 0 {
			r.refused.Store(true)
			return false
		}
		r.queueDropped.Add(1)
	}
	return true
}

// fnv32a is FNV-1a of s, without the allocation of hash/fnv's hasher on
// the router's path.
func fnv32a(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// A shard that found fewer than batchPause messages queued waits
// batchWait before reading again, so that under load it takes messages
// in batches (a queue of 65536 holds 30 ms at 2M messages/s).
const (
	batchPause = 256
	batchWait  = time.Millisecond
)

// extRefresh is how long a device's registry ext is used before it is
// read again.
const extRefresh = 30 * time.Second

// run is the shard's goroutine: it owns the operator until the query
// stops.
func (sh *shard) run() {
	r := sh.r
	defer r.wg.Done()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	pause := time.NewTimer(batchWait)
	defer pause.Stop()
	var in engine.Input
	var batch []item
	for {
		select {
		case <-sh.in.ready:
			batch = sh.in.take(batch)
			n := len(batch)
			if n == 0 {
				continue
			}
			now := r.svc.opts.Now()
			for i := range batch {
				sh.process(batch[i], &in, now)
				batch[i] = item{} // let the messages go
			}
			if r.refused.Swap(false) {
				if sess := r.sess.Load(); sess != nil {
					sess.Drain() // the refused events, now that there is room
				}
			}
			if n < batchPause {
				// Let messages gather: woken for each one, the goroutine
				// costs the router more in wake-ups than in work.
				pause.Reset(batchWait)
				select {
				case <-pause.C:
				case <-r.ctx.Done():
					return
				}
			}
		case <-tick.C:
			sh.op.Tick(r.svc.opts.Now().UnixMilli())
		case reply := <-sh.explain:
			reply <- sh.op.Explain()
		case reply := <-sh.snap:
			reply <- sh.snapshot()
		case <-r.ctx.Done():
			return
		}
	}
}

func (sh *shard) process(it item, in *engine.Input, now time.Time) {
	r := sh.r
	d := it.d
	if it.rec != nil {
		sh.processed(it.rec)
	}
	if d.Seq != 0 && r.durable {
		sh.acks = append(sh.acks, d.Seq)
		if sh.covered.covers(d) {
			return // counted before the restart: its checkpoint covers it
		}
		sh.last = d.Seq
	}
	m := d.Message
	*in = engine.Input{Tenant: r.spec.Tenant, Payload: m.Payload, Props: props{m}}
	if ep, device, ok := hono.ParseHubTopic(m.Topic); ok {
		in.Device = device
		if r.plan.NeedsTopic() {
			in.Topic = ep.String() + "/" + r.spec.Tenant + "/" + device
		}
	} else {
		in.Topic = m.Topic
		if v, ok := m.Property(hono.PropDeviceID); ok {
			in.Device, _ = v.(string)
		}
	}
	in.Arrival = now.UnixMilli()
	if !m.Created.IsZero() {
		in.Arrival = m.Created.UnixMilli()
	}
	if r.plan.NeedsExt() && in.Device != "" {
		in.Ext = sh.deviceExt(in.Device, now)
	}
	sh.op.Process(in, now.UnixMilli())
}

// deviceExt reads a device's ext through a cache refreshed every
// extRefresh; a registry error keeps the last value.
func (sh *shard) deviceExt(device string, now time.Time) map[string]any {
	e, ok := sh.ext[device]
	if ok && now.Sub(e.fetched) < extRefresh {
		return e.ext
	}
	ext := sh.r.svc.opts.Ext
	if ext == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(sh.r.ctx, 2*time.Second)
	v, err := ext(ctx, sh.r.spec.Tenant, device)
	cancel()
	if err != nil && ok {
		v = e.ext
	}
	if len(sh.ext) >= sh.r.spec.MaxKeys {
		clear(sh.ext)
	}
	sh.ext[device] = extEntry{ext: v, fetched: now}
	return v
}

// props reads prop.<name> from a hub message: its application
// properties, then its MQTT 5 user properties.
type props struct{ m *hub.Message }

func (p props) Property(key string) (any, bool) {
	if v, ok := p.m.Property(key); ok {
		return v, true
	}
	for _, u := range p.m.UserProperties {
		if u.Key == key {
			return u.Value, true
		}
	}
	return nil, false
}
