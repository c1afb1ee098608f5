package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
)

// Durability
//
// With Options.Store set, a durable session (one that outlives its
// connection: Session.MakeDurable) keeps in the store its record, its
// subscriptions, its will, and a queue of every QoS 1/2 delivery not yet
// acknowledged by its client. A delivery to a durable session is appended
// to that queue before it goes to the connection or the memory queue, and
// PublishAsync reports completion only once every such append (and the
// retained message) is committed: a publisher acknowledged after that
// loses nothing to a crash. Appends of one session go through one goroutine
// in order, in batches, so that concurrent publishers share commits.
// Acknowledged entries are trimmed from the head of the queue (not synced:
// a crash may redeliver them, which QoS 1 allows).

// waiter collects the durable work of one publish.
type waiter struct {
	remaining atomic.Int64
	lost      atomic.Int64
	failed    atomic.Pointer[error]
	res       Result
	done      func(Result)
}

func (w *waiter) add() { w.remaining.Add(1) }

func (w *waiter) finish(err error, lost bool) {
	if err != nil {
		w.failed.CompareAndSwap(nil, &err)
	}
	if lost {
		w.lost.Add(1)
	}
	if w.remaining.Add(-1) == 0 {
		res := w.res
		res.Lost += int(w.lost.Load())
		if p := w.failed.Load(); p != nil {
			res.Err = *p
		}
		w.done(res)
	}
}

type pendingAppend struct {
	d      Delivery
	finish func(err error, lost bool)
}

// MakeDurable keeps the session in the store with the given expiry
// (Forever for none): from now on its subscriptions, will and QoS 1/2
// deliveries are persisted. It does nothing without a store.
func (s *Session) MakeDurable(expiry time.Duration) error {
	st := s.hub.opts.Store
	if st == nil || expiry <= 0 {
		return nil
	}
	s.mu.Lock()
	already := s.durable
	if s.durableState == nil {
		s.durableState = new(durableState)
	}
	if s.created.IsZero() {
		s.created = s.hub.opts.Now()
	}
	rec := s.recordLocked(expiry, time.Time{})
	s.mu.Unlock()
	s.waitPredecessor()
	if err := st.PutSession(s.hub.ctx, s.t.name, rec); err != nil {
		return fmt.Errorf("storing session %s: %w", s.ID, err)
	}
	if already {
		// Resumed: its subscriptions are in the store; only the expiry
		// may have changed.
		return nil
	}
	s.t.mu.Lock()
	subs := make([]Subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.t.mu.Unlock()
	for _, sub := range subs { // subscriptions made before it became durable
		if err := st.PutSubscription(s.hub.ctx, s.t.name, s.ID, toStoredSub(sub)); err != nil {
			return fmt.Errorf("storing subscription %s of session %s: %w", sub.Filter, s.ID, err)
		}
	}
	s.mu.Lock()
	s.durable, s.loaded = true, true
	s.mu.Unlock()
	return nil
}

// recordLocked is the session's store record; s.mu must be held.
func (s *Session) recordLocked(expiry time.Duration, disconnected time.Time) store.Session {
	rec := store.Session{ClientID: s.ID, ExpiryInterval: expiry, Created: s.created,
		Updated: s.hub.opts.Now(), Disconnected: disconnected}
	if expiry == Forever {
		rec.ExpiryInterval = store.NeverExpire
	}
	return rec
}

// StoreWill persists the will of the connection now attached, so that a
// crash of the process does not lose it: after a restart it is published
// as if the connection had ended abnormally.
func (s *Session) StoreWill(m *Message, delay time.Duration) error {
	st := s.hub.opts.Store
	if st == nil || m == nil {
		return nil
	}
	s.waitPredecessor()
	if err := st.PutWill(s.hub.ctx, s.t.name, s.ID, store.Will{Message: *toStored(m, nil), Delay: delay}); err != nil {
		return fmt.Errorf("storing the will of %s: %w", s.ID, err)
	}
	s.mu.Lock()
	s.willStored = true
	s.mu.Unlock()
	return nil
}

func (s *Session) isDurable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durable
}

// deliverDurable queues d for appending; finish is called once it is
// committed and handed on (or lost). Past the session's store quota
// (Options.MaxStoredMessages) or the hub's (Options.MaxStoredBytes), d is
// dropped and the publisher told (lost).
func (s *Session) deliverDurable(d Delivery, finish func(error, bool)) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.t.stats.drop(DropSessionEnded)
		finish(nil, false)
		return
	}
	size := int64(d.Message.size())
	if len(s.sizes)+len(s.appends) >= s.hub.opts.MaxStoredMessages || s.hub.storedBytes.Load()+size > s.hub.opts.MaxStoredBytes {
		s.t.stats.drop(DropStoreQuota)
		if !s.quotaSaid {
			s.quotaSaid = true
			s.hub.opts.Logger.Warn("session store queue full: QoS 1/2 messages for it are dropped until its client catches up",
				slog.String("tenant", s.t.name), slog.String("client", s.ID), slog.Int("queued", len(s.sizes)),
				slog.Int("max_stored_messages", s.hub.opts.MaxStoredMessages), slog.Int64("stored_bytes_all_sessions", s.hub.storedBytes.Load()))
		}
		s.mu.Unlock()
		finish(nil, true)
		return
	}
	s.appends = append(s.appends, pendingAppend{d: d, finish: finish})
	s.startAppenderLocked()
	s.mu.Unlock()
}

func (s *Session) startAppenderLocked() {
	if !s.appending {
		s.appending = true
		s.hub.wg.Add(1)
		go s.appendLoop()
	}
}

// pendingRelease is a PUBREC to record (Session.Release).
type pendingRelease struct {
	seq  uint64
	m    *Message
	done func(error)
}

// appendLoop is the session's store writer: it exists while there are
// appends, releases, refills or trims to do, and exits when there are none.
// Being one goroutine per session, it keeps the session's store work in
// order: appends in delivery order, PUBREC records (and so the PUBRELs) in
// arrival order, refills in queue order.
func (s *Session) appendLoop() {
	defer s.hub.wg.Done()
	ctx := s.hub.ctx
	st := s.hub.opts.Store
	for {
		s.mu.Lock()
		batch := s.appends
		s.appends = nil
		releases := s.releases
		s.releases = nil
		trimTo := s.trimTo
		closed := s.closed
		unrelease := s.unrelease
		s.unrelease = nil
		if !s.spilled || closed {
			s.refill = false
		}
		refill := s.refill
		from, room := s.spillNext, max(1, s.hub.opts.MaxQueuedMessages-len(s.queue))
		if len(batch) == 0 && len(releases) == 0 && len(unrelease) == 0 && !refill && (trimTo <= s.trimmed || closed) {
			s.appending = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()

		if len(releases) > 0 {
			s.recordReleases(ctx, st, releases, closed)
		}
		if len(batch) > 0 {
			if closed {
				for _, pa := range batch {
					pa.finish(nil, false)
				}
				continue
			}
			s.appendAndHandOn(ctx, st, batch)
		}
		if refill {
			s.refillFrom(ctx, st, from, room)
		}
		if trimTo > s.trimmed && !closed {
			if err := st.TrimQueue(ctx, s.t.name, s.ID, trimTo); err != nil {
				s.hub.opts.Logger.Warn("store trim failed", slog.String("client", s.ID), slog.Any("err", err))
			}
			s.trimmed = trimTo
		}
		for _, pid := range unrelease {
			if closed {
				break
			}
			if err := st.DeleteOutbound(ctx, s.t.name, s.ID, pid); err != nil {
				s.hub.opts.Logger.Warn("store release cleanup failed", slog.String("client", s.ID), slog.Any("err", err))
			}
		}
	}
}

// appendAndHandOn commits a batch of deliveries to the store queue and
// hands them on: to the connection or the memory queue, or, once the
// session spills, nowhere (they wait in the store for a refill).
func (s *Session) appendAndHandOn(ctx context.Context, st store.Store, batch []pendingAppend) {
	first, err := s.appendBatch(ctx, st, batch)
	if err != nil {
		s.hub.opts.Logger.Error("store append failed", slog.String("tenant", s.t.name),
			slog.String("client", s.ID), slog.Any("err", err))
		for _, pa := range batch {
			pa.finish(err, false)
		}
		return
	}
	s.mu.Lock()
	for i := range batch {
		d := batch[i].d
		d.Seq = first + uint64(i)
		size := int32(d.Message.size())
		s.sizes = append(s.sizes, size)
		s.hub.storedBytes.Add(int64(size))
		s.lastSeq = d.Seq
		if s.spilled {
			continue // in the store only, until a refill reads it
		}
		s.handOnLocked(d) // keeps every QoS 1/2 delivery of the store queue
		if !s.spilled {
			s.unacked = append(s.unacked, d.Seq)
		}
	}
	s.mu.Unlock()
	for _, pa := range batch {
		pa.finish(nil, false)
	}
}

// refillFrom reads spilled entries back from the store queue into memory,
// from sequence number from, at most room of them, and hands them on.
func (s *Session) refillFrom(ctx context.Context, st store.Store, from uint64, room int) {
	entries, err := st.PeekQueue(ctx, s.t.name, s.ID, from, room)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refill = false
	if err != nil {
		// The next drain asks again.
		s.hub.opts.Logger.Error("reading spilled messages back", slog.String("client", s.ID), slog.Any("err", err))
		return
	}
	if !s.spilled || s.spillNext != from || s.closed {
		return
	}
	s.takeSpilledLocked(entries)
	s.t.stats.refills.Add(1)
	if s.sink != nil {
		s.drainLocked()
	}
}

// queuedDelivery is the delivery of a store queue entry; s.mu must be held.
func (s *Session) queuedDelivery(e store.QueueEntry) Delivery {
	m := fromStored(&e.Message)
	return Delivery{Message: m, QoS: e.Message.QoS, Retain: e.Message.Retain, SubscriptionIDs: e.Message.SubscriptionIDs,
		Seq: e.Seq, Released: s.released[e.Seq] != 0 && e.Message.QoS == 2}
}

// recordReleases writes the PUBREC records of a batch, concurrently so
// that they share commits, and reports each outcome in arrival order.
func (s *Session) recordReleases(ctx context.Context, st store.Store, rs []pendingRelease, closed bool) {
	errs := make([]error, len(rs))
	if closed {
		for i := range errs {
			errs[i] = errSessionEnded
		}
	} else {
		var wg sync.WaitGroup
		for i, r := range rs {
			if r.m == nil {
				continue // an order placeholder: nothing to record
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := store.Outbound{PacketID: PacketID(r.seq), State: store.OutboundReleased, Message: *toStored(r.m, &Delivery{QoS: 2})}
				errs[i] = st.PutOutbound(ctx, s.t.name, s.ID, o)
			}()
		}
		wg.Wait()
		s.mu.Lock()
		for i, r := range rs {
			if errs[i] == nil && r.m != nil {
				if s.released == nil {
					s.released = make(map[uint64]uint16)
				}
				s.released[r.seq] = PacketID(r.seq)
			}
		}
		s.mu.Unlock()
	}
	for i, r := range rs {
		r.done(errs[i])
	}
}

var errSessionEnded = errors.New("hub: the session ended")

// PacketID is the packet identifier a durable delivery goes out with: it
// follows the queue's numbering, so a resend after a restart reuses it.
func PacketID(seq uint64) uint16 { return uint16(seq%65535) + 1 }

// Release records durably that the client sent PUBREC for the QoS 2
// delivery seq (Delivery.Seq), so that after a restart the exchange resumes
// with PUBREL instead of a PUBLISH the client would take for a new message.
// done is called once the record is committed (or failed), and the done
// calls of one session come in the order of the Release calls, so the
// PUBRELs, and with them the messages the client completes, keep the
// order of the PUBLISHes [MQTT-4.6.0-6]. done is called at once when
// there is nothing to record.
func (s *Session) Release(seq uint64, m *Message, done func(error)) {
	s.mu.Lock()
	if s.hub.opts.Store == nil || seq == 0 || !s.durable {
		if s.appending && s.durableState != nil {
			// Behind the releases already queued, to keep their order.
			s.releases = append(s.releases, pendingRelease{done: done})
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		done(nil)
		return
	}
	s.releases = append(s.releases, pendingRelease{seq: seq, m: m, done: done})
	s.startAppenderLocked()
	s.mu.Unlock()
}

func (s *Session) appendBatch(ctx context.Context, st store.Store, batch []pendingAppend) (uint64, error) {
	msgs := make([]*store.Message, len(batch))
	for i, pa := range batch {
		msgs[i] = toStored(pa.d.Message, &pa.d)
	}
	start := time.Now()
	defer s.hub.observe("append", start)
	return st.AppendQueueBatch(ctx, s.t.name, s.ID, msgs)
}

// Acked records that the client acknowledged the delivery with sequence
// number seq (Delivery.Seq): once every earlier one is acknowledged too,
// the store's queue is trimmed up to it.
func (s *Session) Acked(seq uint64) {
	if seq == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ackLocked(seq)
}

func (s *Session) ackLocked(seq uint64) {
	if seq == 0 || s.durableState == nil {
		return // not durable: nothing in the store to trim
	}
	if s.acked == nil {
		s.acked = make(map[uint64]struct{})
	}
	s.acked[seq] = struct{}{}
	advanced := false
	for len(s.unacked) > 0 {
		head := s.unacked[0]
		if _, ok := s.acked[head]; !ok {
			break
		}
		delete(s.acked, head)
		if pid, ok := s.released[head]; ok {
			delete(s.released, head)
			s.unrelease = append(s.unrelease, pid)
		}
		s.unacked = s.unacked[1:]
		s.trimTo = head
		advanced = true
	}
	if advanced {
		s.popSizesLocked()
	}
	if len(s.unacked) == 0 {
		s.unacked = nil
	}
	if (advanced || len(s.unrelease) > 0) && !s.closed {
		s.startAppenderLocked()
	}
}

// popSizesLocked forgets the sizes of the store queue's entries up to
// trimTo; s.mu must be held.
func (s *Session) popSizesLocked() {
	// sizes covers lastSeq-len(sizes)+1 .. lastSeq.
	firstSeq := s.lastSeq - uint64(len(s.sizes)) + 1
	n := 0
	for ; n < len(s.sizes) && firstSeq+uint64(n) <= s.trimTo; n++ {
		s.hub.storedBytes.Add(-int64(s.sizes[n]))
	}
	s.sizes = s.sizes[n:]
	if len(s.sizes) == 0 {
		s.sizes = nil
	}
}

// loadQueueLocked reads the head of the store's queue of a session
// recovered after a restart into memory (at Recover, before any delivery),
// as far as the memory bound allows; the rest stays spilled in the store.
// s.mu must be held.
func (s *Session) loadQueueLocked(ctx context.Context) error {
	if s.loaded || !s.durable {
		return nil
	}
	st := s.hub.opts.Store
	info, err := st.QueueInfo(ctx, s.t.name, s.ID)
	if err != nil {
		return fmt.Errorf("reading the queue of session %s: %w", s.ID, err)
	}
	// QoS 2 deliveries whose PUBREC arrived before the restart resume
	// with PUBREL. Records of packet ids without a queue entry are left
	// over from a trim that committed before their deletion: removed, so
	// that a later message with the same id is not taken for released.
	outs, err := st.Outbound(ctx, s.t.name, s.ID)
	if err != nil {
		return fmt.Errorf("reading the outbound state of session %s: %w", s.ID, err)
	}
	rel := map[uint16]bool{}
	for _, o := range outs {
		if o.State == store.OutboundReleased {
			rel[o.PacketID] = true
		}
	}
	s.loaded = true
	if info.Len > 0 {
		avg := int32(info.Bytes / int64(info.Len))
		s.sizes = make([]int32, info.Len)
		for i := range s.sizes {
			s.sizes[i] = avg
		}
		s.hub.storedBytes.Add(int64(avg) * int64(info.Len))
		s.lastSeq = info.Last
		s.trimTo, s.trimmed = info.First-1, info.First-1
		s.spilled, s.spillNext = true, info.First
		// A released record can only belong to an entry in flight when
		// the process stopped, within the first 65535 of the queue.
		for seq := info.First; seq <= info.Last && seq < info.First+65535; seq++ {
			if pid := PacketID(seq); rel[pid] {
				delete(rel, pid)
				if s.released == nil {
					s.released = make(map[uint64]uint16)
				}
				s.released[seq] = pid
			}
		}
		entries, err := st.PeekQueue(ctx, s.t.name, s.ID, info.First, s.hub.opts.MaxQueuedMessages)
		if err != nil {
			return fmt.Errorf("loading the queue of session %s: %w", s.ID, err)
		}
		s.takeSpilledLocked(entries)
	}
	for pid := range rel {
		if err := st.DeleteOutbound(ctx, s.t.name, s.ID, pid); err != nil {
			return fmt.Errorf("removing stale outbound state of session %s: %w", s.ID, err)
		}
	}
	return nil
}

// Recover loads the durable state from the store into the hub: sessions
// with their subscriptions (disconnected, expiring from now), retained
// messages of the known tenants, and wills, which are scheduled as if their
// connections had just ended abnormally. Call it once, before clients
// connect.
func (h *Hub) Recover(ctx context.Context, tenants []string) error {
	st := h.opts.Store
	if st == nil {
		return nil
	}
	known := map[string]bool{}
	for _, t := range tenants {
		known[t] = true
	}
	type rec struct {
		tenant string
		s      *Session
	}
	var sessions []rec
	err := st.Sessions(ctx, func(tenant string, r store.Session) error {
		known[tenant] = true
		t := h.lockTenant(tenant)
		s := &Session{ID: r.ClientID, hub: h, t: t, subs: make(map[string]Subscription), durable: true,
			durableState: new(durableState)}
		t.sessions[s.ID] = s
		t.mu.Unlock()
		t.stats.sessions.Add(1)
		sessions = append(sessions, rec{tenant, s})
		expiry := r.ExpiryInterval
		if expiry == store.NeverExpire {
			expiry = Forever
		}
		s.expiry, s.created = expiry, r.Created
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovering sessions: %w", err)
	}
	for _, r := range sessions {
		subs, err := st.Subscriptions(ctx, r.tenant, r.s.ID)
		if err != nil {
			return fmt.Errorf("recovering subscriptions of %s: %w", r.s.ID, err)
		}
		r.s.t.mu.Lock()
		for _, ss := range subs {
			sub := fromStoredSub(ss)
			r.s.subs[sub.Filter] = sub
			r.s.t.subs.Add(sub.Filter, r.s, sub)
		}
		r.s.t.mu.Unlock()
		r.s.mu.Lock()
		err = r.s.loadQueueLocked(ctx)
		if r.s.expiry != Forever {
			gen := r.s.gen
			r.s.expiryTimer = h.afterFunc(r.s.expiry, func() { r.s.expire(gen) })
		}
		r.s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	for tenant := range known {
		t := h.tenant(tenant)
		err := st.Retained(ctx, tenant, func(m *store.Message) error {
			h.setRetained(t, fromStored(m), 0)
			return nil
		})
		if err != nil {
			return fmt.Errorf("recovering retained messages of %s: %w", tenant, err)
		}
	}
	return st.Wills(ctx, func(tenant, clientID string, w store.Will) error {
		m := fromStored(&w.Message)
		t := h.tenant(tenant)
		t.mu.RLock()
		s := t.sessions[clientID]
		t.mu.RUnlock()
		delay := w.Delay
		if !w.Deadline.IsZero() {
			delay = max(0, w.Deadline.Sub(h.opts.Now()))
		}
		if s == nil { // the session ended with the process: the will is due
			h.afterFunc(delay, func() {
				h.PublishAsync(tenant, m, func(Result) {})
				if err := st.DeleteWill(h.ctx, tenant, clientID); err != nil {
					h.opts.Logger.Warn("deleting a published will", slog.String("client", clientID), slog.Any("err", err))
				}
			})
			return nil
		}
		s.mu.Lock()
		s.will = m
		s.willStored = true
		gen := s.gen
		s.willTimer = h.afterFunc(min(delay, s.expiry), func() { s.fireWill(gen) })
		s.mu.Unlock()
		return nil
	})
}

func toStored(m *Message, d *Delivery) *store.Message {
	sm := &store.Message{
		Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, Expiry: m.Expiry,
		ContentType: m.ContentType, ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData,
		PayloadFormat: m.PayloadFormat, Origin: m.Origin, UserProperties: m.UserProperties,
		Created: m.Created, Properties: m.Properties,
	}
	if d != nil { // as delivered to one session
		sm.QoS, sm.Retain, sm.SubscriptionIDs = d.QoS, d.Retain, d.SubscriptionIDs
	}
	return sm
}

func fromStored(sm *store.Message) *Message {
	m := &Message{
		Topic: sm.Topic, Payload: sm.Payload, QoS: sm.QoS, Retain: sm.Retain, Expiry: sm.Expiry,
		ContentType: sm.ContentType, ResponseTopic: sm.ResponseTopic, CorrelationData: sm.CorrelationData,
		PayloadFormat: sm.PayloadFormat, Origin: sm.Origin, UserProperties: sm.UserProperties,
		Created: sm.Created, Properties: sm.Properties,
	}
	return m
}

func toStoredSub(s Subscription) store.Subscription {
	return store.Subscription{Filter: s.Filter, QoS: s.QoS, NoLocal: s.NoLocal,
		RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling, ID: s.ID}
}

func fromStoredSub(s store.Subscription) Subscription {
	return Subscription{Filter: s.Filter, QoS: s.QoS, NoLocal: s.NoLocal,
		RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling, ID: s.ID}
}

// takeSpilledLocked queues the store entries read back for the session,
// skipping those it holds already, and ends the spill once the memory
// queue has caught up with the store's; s.mu must be held.
func (s *Session) takeSpilledLocked(entries []store.QueueEntry) {
	for _, e := range entries {
		if e.Seq < s.spillNext {
			continue
		}
		d := s.queuedDelivery(e)
		s.queue = append(s.queue, d)
		s.queuedBytes += d.Message.size()
		s.unacked = append(s.unacked, e.Seq)
		s.spillNext = e.Seq + 1
	}
	if s.spillNext > s.lastSeq {
		s.spilled = false
	}
}
