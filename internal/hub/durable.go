package hub

import (
	"context"
	"fmt"
	"log/slog"
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
	if err := st.PutSession(context.Background(), s.t.name, rec); err != nil {
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
		if err := st.PutSubscription(context.Background(), s.t.name, s.ID, toStoredSub(sub)); err != nil {
			return err
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
	return st.PutWill(context.Background(), s.t.name, s.ID, store.Will{Message: *toStored(m, nil), Delay: delay})
}

func (s *Session) isDurable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durable
}

// deliverDurable queues d for appending; finish is called once it is
// committed and handed on (or lost).
func (s *Session) deliverDurable(d Delivery, finish func(error, bool)) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.t.stats.drop(DropSessionEnded)
		finish(nil, false)
		return
	}
	s.appends = append(s.appends, pendingAppend{d: d, finish: finish})
	s.startAppenderLocked()
	s.mu.Unlock()
}

func (s *Session) startAppenderLocked() {
	if !s.appending {
		s.appending = true
		go s.appendLoop()
	}
}

// appendLoop is the session's store writer: it exists while there are
// appends or trims to do, and exits when there are none.
func (s *Session) appendLoop() {
	ctx := context.Background()
	st := s.hub.opts.Store
	for {
		s.mu.Lock()
		batch := s.appends
		s.appends = nil
		trimTo := s.trimTo
		closed := s.closed
		unrelease := s.unrelease
		s.unrelease = nil
		if len(batch) == 0 && len(unrelease) == 0 && (trimTo <= s.trimmed || closed) {
			s.appending = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()

		if len(batch) > 0 {
			if closed {
				for _, pa := range batch {
					pa.finish(nil, false)
				}
				continue
			}
			first, err := s.appendBatch(ctx, st, batch)
			s.mu.Lock()
			lost := make([]bool, len(batch))
			for i := range batch {
				if err != nil {
					continue
				}
				d := batch[i].d
				d.Seq = first + uint64(i)
				s.unacked = append(s.unacked, d.Seq)
				if !s.handOnLocked(d) {
					lost[i] = true
					s.ackLocked(d.Seq) // not kept in memory: not kept in the store either
				}
			}
			s.mu.Unlock()
			if err != nil {
				s.hub.opts.Logger.Error("store append failed", slog.String("tenant", s.t.name),
					slog.String("client", s.ID), slog.Any("err", err))
			}
			for i, pa := range batch {
				pa.finish(err, lost[i])
			}
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

// PacketID is the packet identifier a durable delivery goes out with: it
// follows the queue's numbering, so a resend after a restart reuses it.
func PacketID(seq uint64) uint16 { return uint16(seq%65535) + 1 }

// MarkReleased records durably that the client sent PUBREC for the QoS 2
// delivery seq (Delivery.Seq), so that after a restart the exchange resumes
// with PUBREL instead of a PUBLISH the client would take for a new message.
// It returns once the record is committed.
func (s *Session) MarkReleased(seq uint64, m *Message) error {
	st := s.hub.opts.Store
	if st == nil || seq == 0 || !s.isDurable() {
		return nil
	}
	pid := PacketID(seq)
	o := store.Outbound{PacketID: pid, State: store.OutboundReleased, Message: *toStored(m, &Delivery{QoS: 2})}
	if err := st.PutOutbound(context.Background(), s.t.name, s.ID, o); err != nil {
		return err
	}
	s.mu.Lock()
	if s.released == nil {
		s.released = make(map[uint64]uint16)
	}
	s.released[seq] = pid
	s.mu.Unlock()
	return nil
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
	if s.durableState == nil {
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
	if len(s.unacked) == 0 {
		s.unacked = nil
	}
	if (advanced || len(s.unrelease) > 0) && !s.closed {
		s.startAppenderLocked()
	}
}

// loadQueueLocked reads the store's queue of a session recovered after a
// restart into memory (at Recover, before any delivery); s.mu must be held.
func (s *Session) loadQueueLocked() {
	if s.loaded || !s.durable {
		return
	}
	s.loaded = true
	// Everything the store kept is loaded, past the memory bound if need
	// be: it was accepted before, and the bound only limits new messages.
	ctx := context.Background()
	info, err := s.hub.opts.Store.QueueInfo(ctx, s.t.name, s.ID)
	if err != nil || info.Len == 0 {
		return
	}
	entries, err := s.hub.opts.Store.PeekQueue(ctx, s.t.name, s.ID, 0, info.Len)
	if err != nil {
		s.hub.opts.Logger.Error("loading session queue", slog.String("client", s.ID), slog.Any("err", err))
		return
	}
	// QoS 2 deliveries whose PUBREC arrived before the restart resume
	// with PUBREL.
	rel := map[uint16]bool{}
	if outs, err := s.hub.opts.Store.Outbound(ctx, s.t.name, s.ID); err == nil {
		for _, o := range outs {
			if o.State == store.OutboundReleased {
				rel[o.PacketID] = true
			}
		}
	}
	for _, e := range entries {
		m := fromStored(&e.Message)
		d := Delivery{Message: m, QoS: e.Message.QoS, Retain: e.Message.Retain, SubscriptionIDs: e.Message.SubscriptionIDs, Seq: e.Seq}
		if pid := PacketID(e.Seq); d.QoS == 2 && rel[pid] {
			delete(rel, pid)
			d.Released = true
			if s.released == nil {
				s.released = make(map[uint64]uint16)
			}
			s.released[e.Seq] = pid
		}
		s.queue = append(s.queue, d)
		s.queuedBytes += m.size()
		s.unacked = append(s.unacked, e.Seq)
	}
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
		t := h.tenant(tenant)
		s := &Session{ID: r.ClientID, hub: h, t: t, subs: make(map[string]Subscription), durable: true,
			durableState: new(durableState)}
		t.mu.Lock()
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
		r.s.loadQueueLocked()
		if r.s.expiry != Forever {
			gen := r.s.gen
			r.s.expiryTimer = time.AfterFunc(r.s.expiry, func() { r.s.expire(gen) })
		}
		r.s.mu.Unlock()
	}
	for tenant := range known {
		t := h.tenant(tenant)
		err := st.Retained(ctx, tenant, func(m *store.Message) error {
			t.retained.set(fromStored(m))
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
			time.AfterFunc(delay, func() {
				h.Publish(tenant, m)
				st.DeleteWill(context.Background(), tenant, clientID)
			})
			return nil
		}
		s.mu.Lock()
		s.will = m
		s.willStored = true
		gen := s.gen
		s.willTimer = time.AfterFunc(min(delay, s.expiry), func() { s.fireWill(gen) })
		s.mu.Unlock()
		return nil
	})
}

func toStored(m *Message, d *Delivery) *store.Message {
	sm := &store.Message{
		Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, Expiry: m.Expiry,
		ContentType: m.ContentType, ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData,
		PayloadFormat: m.PayloadFormat, Origin: m.Origin,
	}
	if d != nil { // as delivered to one session
		sm.QoS, sm.Retain, sm.SubscriptionIDs = d.QoS, d.Retain, d.SubscriptionIDs
	}
	for _, u := range m.UserProperties {
		sm.UserProperties = append(sm.UserProperties, store.UserProperty{Key: u.Key, Value: u.Value})
	}
	return sm
}

func fromStored(sm *store.Message) *Message {
	m := &Message{
		Topic: sm.Topic, Payload: sm.Payload, QoS: sm.QoS, Retain: sm.Retain, Expiry: sm.Expiry,
		ContentType: sm.ContentType, ResponseTopic: sm.ResponseTopic, CorrelationData: sm.CorrelationData,
		PayloadFormat: sm.PayloadFormat, Origin: sm.Origin,
	}
	for _, u := range sm.UserProperties {
		m.UserProperties = append(m.UserProperties, UserProperty{Key: u.Key, Value: u.Value})
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
