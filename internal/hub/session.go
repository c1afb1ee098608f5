package hub

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/mqtt/topic"
)

// Session is one client's state in a tenant: its subscriptions, the sink of
// its current connection, and its queue while it has none. It outlives
// connections unless it is closed.
type Session struct {
	// ID is the client identifier, unique in the tenant.
	ID string

	hub *Hub
	t   *tenant
	// subs is guarded by t.mu, since it changes together with the trie; it
	// is made by the first subscription (many devices never subscribe).
	// discarded, also guarded by t.mu, is set when the session is removed.
	subs      map[string]Subscription
	discarded bool

	mu          sync.Mutex
	sink        Sink
	attached    time.Time // when sink was attached
	queue       []Delivery
	queuedBytes int
	// blocked are QoS 1/2 deliveries of a session without a store queue
	// that found the memory queue full while a connection was attached:
	// their publishers wait (no PUBACK) until the queue has room again,
	// instead of the messages being dropped. Bounded by the publishers'
	// receive windows.
	blocked []pendingAppend
	closed  bool
	// gen counts attachments and detachments, so that a timer of an
	// earlier detachment does nothing.
	gen         uint64
	will        *Message
	willTimer   *timer
	expiryTimer *timer
	// after, if set, is closed once the store deletion of the previous
	// session of this client ID is done.
	after <-chan struct{}

	// Durability (durable.go); guarded by mu unless noted.
	durable    bool          // kept in the store
	expiry     time.Duration // of a recovered session
	willStored bool          // the store holds a will of this session
	loaded     bool          // the store's queue was read in (recovered sessions)
	// inbound are the client's QoS 2 ids awaiting PUBREL (inbound.go);
	// inboundLoaded says a durable session read them from the store.
	inbound       map[uint16]struct{}
	inboundLoaded bool
	appending     bool // the append goroutine runs
	// The state of a durable session only, set before durable: most
	// sessions of a large fleet are not durable and do without it.
	*durableState
}

// durableState is the bookkeeping of a durable session's store queue;
// guarded by Session.mu unless noted.
type durableState struct {
	created   time.Time // when the durable session was first stored
	appends   []pendingAppend
	unacked   []uint64 // queue sequence numbers handed on, not acknowledged, ascending
	acked     map[uint64]struct{}
	trimTo    uint64            // acknowledged prefix of the store's queue
	trimmed   uint64            // owned by the append goroutine
	released  map[uint64]uint16 // QoS 2 deliveries past PUBREC: seq -> packet id
	unrelease []uint16          // released records to delete from the store
	releases  []pendingRelease  // PUBRECs to record, in arrival order

	// Spilling: past the memory bound, a durable session's deliveries stay
	// in the store queue only, from spillNext on; the appender reads them
	// back (refill) as the memory queue drains, in order.
	spilled   bool
	spillNext uint64
	refill    bool
	lastSeq   uint64  // the highest sequence number appended
	sizes     []int32 // sizes of the store queue's entries, oldest first (quota)
	quotaSaid bool    // the quota drop was logged
}

func (s *Session) online() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sink != nil
}

// deliver hands d to the connection or the queue. It returns false when a
// QoS 1/2 delivery was dropped: the publisher should hear of it.
func (s *Session) deliver(d Delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.t.stats.drop(DropSessionEnded)
		return true
	}
	return s.handOnLocked(d)
}

// deliverWaiting is deliver for a QoS 1/2 delivery whose publisher waits
// (w): when the session has a connection but no room, the delivery waits
// in blocked and the publisher's acknowledgement with it, rather than
// being dropped. Deliveries that find others blocked join them, in order.
func (s *Session) deliverWaiting(d Delivery, w *waiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		s.t.stats.drop(DropSessionEnded)
	case s.sink == nil:
		if !s.handOnLocked(d) {
			w.lost.Add(1)
		}
	case len(s.blocked) > 0 || !s.handOnNoDropLocked(d):
		w.add()
		s.blocked = append(s.blocked, pendingAppend{d: d, finish: w.finish})
		s.t.stats.blocked.Add(1)
	}
}

// handOnNoDropLocked gives d to the connection or the memory queue if either
// has room, and reports whether it did; s.mu must be held.
func (s *Session) handOnNoDropLocked(d Delivery) bool {
	if len(s.queue) > 0 {
		s.drainLocked()
	}
	if len(s.queue) == 0 && len(s.blocked) == 0 && s.send(d) {
		s.t.stats.delivered.Add(1)
		return true
	}
	if s.fitsLocked(d) {
		s.queue = append(s.queue, d)
		s.queuedBytes += d.Message.size()
		s.t.stats.delivered.Add(1)
		return true
	}
	return false
}

// handOnLocked gives d to the connection, or queues it; s.mu must be held.
func (s *Session) handOnLocked(d Delivery) bool {
	switch {
	case s.sink != nil:
		// A backlog keeps order: it goes first, and d joins it if it
		// does not drain.
		if len(s.queue) > 0 {
			s.drainLocked()
		}
		if len(s.queue) == 0 && len(s.blocked) == 0 && !s.spilledLocked() && s.send(d) {
			s.t.stats.delivered.Add(1)
			return true
		}
		if d.QoS > 0 {
			// QoS 1/2 wait in the session until the connection has room
			// (Drain); QoS 0 is dropped.
			if !s.enqueueLocked(d) {
				return false
			}
			s.t.stats.delivered.Add(1)
			return true
		}
		s.drop(d, DropConnectionFull)
	case d.QoS > 0 || s.hub.opts.QueueQoS0:
		if !s.enqueueLocked(d) {
			return d.QoS == 0
		}
		s.t.stats.delivered.Add(1)
	default:
		s.t.stats.drop(DropOfflineQoS0)
	}
	return true
}

func (s *Session) spilledLocked() bool { return s.durableState != nil && s.spilled }

// fitsLocked reports whether d fits the memory queue's bounds.
func (s *Session) fitsLocked(d Delivery) bool {
	return len(s.queue) < s.hub.opts.MaxQueuedMessages && s.queuedBytes+d.Message.size() <= s.hub.opts.MaxQueuedBytes
}

// enqueueLocked queues d for a later connection and reports whether it was
// kept; s.mu must be held. Past the memory bound, a delivery of the store
// queue (Seq set) is kept there alone: the session spills, and the
// appender reads it back when the memory queue drains. Other deliveries
// are dropped.
func (s *Session) enqueueLocked(d Delivery) bool {
	if s.spilledLocked() && d.Seq >= s.spillNext {
		return true
	}
	if !s.fitsLocked(d) {
		if d.Seq != 0 && s.durableState != nil && d.Seq > s.lastUnackedLocked() {
			s.spilled, s.spillNext = true, d.Seq
			s.t.stats.spills.Add(1)
			return true
		}
		s.drop(d, DropSessionQueueFull)
		return false
	}
	s.queue = append(s.queue, d)
	s.queuedBytes += d.Message.size()
	return true
}

// lastUnackedLocked is the highest sequence number in memory (0: none).
func (s *Session) lastUnackedLocked() uint64 {
	if n := len(s.unacked); n > 0 {
		return s.unacked[n-1]
	}
	return 0
}

func (s *Session) drop(d Delivery, why DropReason) {
	s.t.stats.drop(why)
	s.hub.opts.Logger.Debug("delivery dropped", slog.String("tenant", s.t.name), slog.String("client", s.ID),
		slog.String("topic", d.Message.Topic), slog.Int("qos", int(d.QoS)), slog.String("reason", why.String()))
}

// Drain hands the session's backlog to its connection, as far as the
// connection takes it. Front ends call it when the connection has room
// again, e.g. when an outbound QoS 1/2 message is acknowledged.
func (s *Session) Drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sink != nil {
		s.drainLocked()
	}
}

// send hands d to the sink and counts it; s.mu must be held.
func (s *Session) send(d Delivery) bool {
	if !s.sink.Deliver(d) {
		return false
	}
	s.t.stats.sent.Add(1)
	s.t.stats.bytesSent.Add(uint64(len(d.Message.Payload)))
	return true
}

// drainLocked sends the memory queue as far as the connection takes it,
// then lets blocked deliveries in (their publishers are acknowledged), and
// asks the appender for spilled entries once the queue runs low.
func (s *Session) drainLocked() {
	now := s.hub.opts.Now()
	i := 0
	for ; i < len(s.queue); i++ {
		d := s.queue[i]
		if d.Message.Expired(now) {
			s.t.stats.drop(DropExpired)
			s.ackLocked(d.Seq) // never to be sent: done with it
		} else if s.sink == nil || !s.send(d) {
			break
		}
		s.queuedBytes -= d.Message.size()
		s.queue[i] = Delivery{}
	}
	if i == len(s.queue) {
		s.queue = nil // let the backing array go
	} else {
		s.queue = s.queue[i:]
	}
	n := 0
	for _, b := range s.blocked {
		if sent := len(s.queue) == 0 && s.sink != nil && s.send(b.d); !sent {
			if !s.fitsLocked(b.d) {
				break
			}
			s.queue = append(s.queue, b.d)
			s.queuedBytes += b.d.Message.size()
		}
		s.t.stats.delivered.Add(1)
		b.finish(nil, false)
		n++
	}
	if n > 0 {
		clear(s.blocked[:n])
		s.blocked = s.blocked[n:]
		if len(s.blocked) == 0 {
			s.blocked = nil
		}
	}
	if s.spilledLocked() && !s.refill && !s.closed && len(s.queue) <= s.hub.opts.MaxQueuedMessages/2 {
		s.refill = true
		s.startAppenderLocked()
	}
}

// releaseBlockedLocked ends the wait of blocked deliveries when the
// connection goes: they are queued as far as the bounds allow, the rest is
// lost and the publishers hear it; s.mu must be held.
func (s *Session) releaseBlockedLocked(keep bool) {
	for _, b := range s.blocked {
		if keep && s.fitsLocked(b.d) {
			s.queue = append(s.queue, b.d)
			s.queuedBytes += b.d.Message.size()
			b.finish(nil, false)
			continue
		}
		if keep {
			s.drop(b.d, DropSessionQueueFull)
		} else {
			s.t.stats.drop(DropSessionEnded)
		}
		b.finish(nil, keep)
	}
	s.blocked = nil
}

// Attach connects the session to sink: queued deliveries are handed to it in
// order as far as it takes them (the rest waits for Drain), then new ones as
// they arrive. Expired queued messages are dropped.
func (s *Session) Attach(sink Sink) {
	s.mu.Lock()
	if s.sink == nil {
		s.t.stats.connected.Add(1)
	}
	s.t.stats.connects.Add(1)
	// Resumed in time: the pending will is not sent and the session does
	// not expire.
	s.gen++
	s.stopTimersLocked()
	s.will = nil
	delWill := s.willStored
	s.willStored = false
	s.sink = sink
	s.attached = s.hub.opts.Now()
	s.drainLocked()
	s.mu.Unlock()
	if delWill {
		s.deleteStoredWill()
	}
}

func (s *Session) deleteStoredWill() {
	if err := s.hub.opts.Store.DeleteWill(s.hub.ctx, s.t.name, s.ID); err != nil {
		s.hub.opts.Logger.Warn("deleting stored will", slog.String("client", s.ID), slog.Any("err", err))
	}
}

// Forever is a session expiry that never ends.
const Forever time.Duration = math.MaxInt64

// Departure says how a connection left its session.
type Departure struct {
	// Unacked are the deliveries the connection had not completed, in
	// order; they go to the front of the queue, marked as duplicates.
	Unacked []Delivery
	// Expiry is how long the session outlives the connection: 0 ends it
	// now, Forever keeps it until it is discarded.
	Expiry time.Duration
	// Will, if set, is published after WillDelay or when the session ends,
	// whichever comes first, unless a connection attaches before
	// [MQTT-3.1.3-9].
	Will      *Message
	WillDelay time.Duration
}

// Detach disconnects the session from its sink and keeps it for
// d.Expiry, or removes it (with its subscriptions) when that is 0.
// Unacknowledged deliveries of shared subscriptions go to another connected
// member of their group when there is one (MQTT 5 section 4.8.2). Store
// writes happen after the session's locks are released, before Detach
// returns.
func (s *Session) Detach(d Departure) {
	d.Unacked = s.handOverShared(d.Unacked)
	if d.Expiry <= 0 {
		s.t.mu.Lock()
		var will *Message
		cleanup := func() {}
		if s.t.sessions[s.ID] == s {
			will, cleanup = s.discardLocked()
		}
		s.t.mu.Unlock()
		cleanup()
		s.hub.releaseTenant(s.t)
		s.publishWill(firstWill(d.Will, will))
		return
	}
	s.mu.Lock()
	if s.sink != nil {
		s.t.stats.connected.Add(-1)
	}
	s.sink = nil
	s.gen++
	gen := s.gen
	// The unacknowledged deliveries go first, then the backlog. Both were
	// in memory already: the memory bound does not apply to them again
	// (dropping one would stall the store queue's trimming and lose what
	// the client never got). Their number is bounded by the connection's
	// inflight window.
	q := make([]Delivery, 0, len(d.Unacked)+len(s.queue))
	size := 0
	for _, u := range d.Unacked {
		u.Dup = true
		q = append(q, u)
		size += u.Message.size()
	}
	q = append(q, s.queue...)
	s.queue, s.queuedBytes = q, size+s.queuedBytes
	if len(s.queue) == 0 {
		s.queue = nil
	}
	s.releaseBlockedLocked(true)
	var now *Message
	if d.Will != nil {
		if d.WillDelay <= 0 {
			now = d.Will
		} else {
			s.will = d.Will
			s.willTimer = s.hub.afterFunc(min(d.WillDelay, d.Expiry), func() { s.fireWill(gen) })
		}
	}
	if d.Expiry != Forever {
		s.expiryTimer = s.hub.afterFunc(d.Expiry, func() { s.expire(gen) })
	}
	var writes []func() error
	what := []string{}
	if s.willStored && s.will != nil {
		// Keep it in the store with its deadline, for a restart.
		w := store.Will{Message: *toStored(s.will, nil), Delay: d.WillDelay, Deadline: s.hub.opts.Now().Add(min(d.WillDelay, d.Expiry))}
		writes = append(writes, func() error { return s.hub.opts.Store.PutWill(s.hub.ctx, s.t.name, s.ID, w) })
		what = append(what, "storing will deadline")
	} else if s.willStored {
		s.willStored = false
		writes = append(writes, func() error { return s.hub.opts.Store.DeleteWill(s.hub.ctx, s.t.name, s.ID) })
		what = append(what, "deleting stored will")
	}
	if s.durable {
		rec := s.recordLocked(d.Expiry, s.hub.opts.Now())
		writes = append(writes, func() error { return s.hub.opts.Store.PutSession(s.hub.ctx, s.t.name, rec) })
		what = append(what, "storing session")
	}
	s.mu.Unlock()
	for i, w := range writes {
		if err := w(); err != nil {
			s.hub.opts.Logger.Warn(what[i], slog.String("client", s.ID), slog.Any("err", err))
		}
	}
	s.publishWill(now)
}

// handOverShared gives the shared-subscription deliveries among unacked to
// other connected members of their groups and returns the rest.
func (s *Session) handOverShared(unacked []Delivery) []Delivery {
	kept := unacked[:0:0]
	for _, d := range unacked {
		if d.Shared == "" || d.QoS == 0 || d.Released {
			kept = append(kept, d)
			continue
		}
		s.t.mu.RLock()
		var other *Session
		if g := s.t.subs.Group(d.Shared); g != nil {
			for _, m := range g.Members {
				if m.Key != s && m.Key.online() {
					other = m.Key
					break
				}
			}
		}
		s.t.mu.RUnlock()
		if other == nil {
			kept = append(kept, d)
			continue
		}
		// The store copy (Seq) belongs to this session's queue: the other
		// member gets a fresh delivery, and this session's entry is done.
		seq := d.Seq
		d.Seq, d.Dup = 0, false
		if other.isDurable() && d.QoS > 0 && s.hub.opts.Store != nil {
			other.deliverDurable(d, func(err error, lost bool) {
				if err == nil && !lost {
					s.Acked(seq)
				}
			})
			continue
		}
		if other.deliver(d) {
			s.Acked(seq)
			continue
		}
		d.Seq = seq
		kept = append(kept, d)
	}
	return kept
}

func firstWill(a, b *Message) *Message {
	if a != nil {
		return a
	}
	return b
}

// fireWill publishes the pending will of detachment gen, if the session
// was not resumed since.
func (s *Session) fireWill(gen uint64) {
	s.mu.Lock()
	if s.gen != gen || s.will == nil {
		s.mu.Unlock()
		return
	}
	will := s.will
	s.will = nil
	stored := s.willStored
	s.willStored = false
	s.mu.Unlock()
	s.publishWill(will)
	if stored {
		s.deleteStoredWill()
	}
}

// expire ends the session of detachment gen, if it was not resumed since.
func (s *Session) expire(gen uint64) {
	s.t.mu.Lock()
	s.mu.Lock()
	current := s.gen == gen && s.sink == nil && !s.closed
	s.mu.Unlock()
	var will *Message
	cleanup := func() {}
	if current && s.t.sessions[s.ID] == s {
		will, cleanup = s.discardLocked()
	}
	s.t.mu.Unlock()
	cleanup()
	s.hub.releaseTenant(s.t)
	s.publishWill(will)
}

// publishWill publishes a will without waiting for it: its subscribers may
// be slow, and the caller is a timer or a departing connection.
func (s *Session) publishWill(will *Message) {
	if will != nil {
		s.hub.PublishAsync(s.t.name, will, func(Result) {})
	}
}

// stopTimersLocked cancels the pending will and expiry; s.mu must be held.
func (s *Session) stopTimersLocked() {
	if s.willTimer != nil {
		s.willTimer.Stop()
		s.willTimer = nil
	}
	if s.expiryTimer != nil {
		s.expiryTimer.Stop()
		s.expiryTimer = nil
	}
}

// discardLocked removes the session and its subscriptions and returns the
// will still pending, which the caller publishes once it released t.mu,
// and the store cleanup, which the caller runs then too (store writes stay
// out of the tenant's lock). t.mu must be held. Until the cleanup is done,
// a new session of the same client ID waits for it before it writes to
// the store (waitPredecessor).
func (s *Session) discardLocked() (*Message, func()) {
	for filter := range s.subs {
		s.t.subs.Remove(filter, s)
	}
	s.subs = nil
	s.discarded = true
	delete(s.t.sessions, s.ID)
	s.t.stats.sessions.Add(-1)
	s.mu.Lock()
	s.closed = true
	if s.sink != nil {
		s.t.stats.connected.Add(-1)
	}
	s.sink = nil
	s.t.stats.drops[DropSessionEnded].Add(uint64(len(s.queue)))
	s.queue, s.queuedBytes = nil, 0
	s.releaseBlockedLocked(false)
	s.gen++
	s.stopTimersLocked()
	will := s.will
	s.will = nil
	del := s.hub.opts.Store != nil && (s.durable || s.willStored || s.durableState != nil)
	s.durable, s.willStored = false, false
	s.mu.Unlock()
	if !del {
		return will, func() {}
	}
	done := make(chan struct{})
	if s.t.deleting == nil {
		s.t.deleting = make(map[string]chan struct{})
	}
	s.t.deleting[s.ID] = done
	return will, func() {
		if err := s.hub.opts.Store.DeleteSession(s.hub.ctx, s.t.name, s.ID); err != nil {
			s.hub.opts.Logger.Warn("deleting session", slog.String("client", s.ID), slog.Any("err", err))
		}
		s.t.mu.Lock()
		if s.t.deleting[s.ID] == done {
			delete(s.t.deleting, s.ID)
		}
		s.t.mu.Unlock()
		close(done)
	}
}

// waitPredecessor waits until the store deletion of an earlier session of
// the same client ID is done, so that it cannot delete this one's records.
func (s *Session) waitPredecessor() {
	if s.after != nil {
		select {
		case <-s.after:
		case <-s.hub.ctx.Done():
		}
	}
}

// Subscribe adds or replaces the subscription to sub.Filter and returns the
// retained messages it asks for (none for shared subscriptions
// (MQTT 5 section 4.8.2) and per sub.RetainHandling). The filter must be
// valid. It fails, changing nothing, when the session has
// Options.MaxSubscriptions subscriptions already (ErrTooManySubscriptions)
// or a durable session's subscription cannot be stored.
func (s *Session) Subscribe(sub Subscription) (retained []Delivery, err error) {
	s.t.mu.Lock()
	if s.discarded {
		s.t.mu.Unlock()
		return nil, nil
	}
	if s.subs == nil {
		s.subs = make(map[string]Subscription)
	}
	old, existed := s.subs[sub.Filter]
	if !existed && s.hub.opts.MaxSubscriptions > 0 && len(s.subs) >= s.hub.opts.MaxSubscriptions {
		s.t.mu.Unlock()
		return nil, ErrTooManySubscriptions
	}
	s.subs[sub.Filter] = sub
	s.t.subs.Add(sub.Filter, s, sub)
	s.t.mu.Unlock()
	if s.isDurable() {
		if err := s.hub.opts.Store.PutSubscription(s.hub.ctx, s.t.name, s.ID, toStoredSub(sub)); err != nil {
			// Not stored: not granted. The previous subscription, if
			// any, stays.
			s.t.mu.Lock()
			if !s.discarded {
				if existed {
					s.subs[sub.Filter] = old
					s.t.subs.Add(sub.Filter, s, old)
				} else {
					delete(s.subs, sub.Filter)
					s.t.subs.Remove(sub.Filter, s)
				}
			}
			s.t.mu.Unlock()
			return nil, fmt.Errorf("storing subscription %s: %w", sub.Filter, err)
		}
	}

	if _, _, shared, _ := topic.ParseShared(sub.Filter); shared {
		return nil, nil
	}
	if sub.RetainHandling == 2 || (sub.RetainHandling == 1 && existed) {
		return nil, nil
	}
	now := s.hub.opts.Now()
	for _, m := range s.t.retained.match(sub.Filter, now) {
		d := Delivery{Message: m, QoS: min(m.QoS, sub.QoS), Retain: true}
		if sub.ID != 0 {
			d.SubscriptionIDs = []uint32{sub.ID}
		}
		retained = append(retained, d)
	}
	return retained, nil
}

// ErrTooManySubscriptions refuses a subscription past
// Options.MaxSubscriptions (MQTT 5: SUBACK 0x97 Quota exceeded).
var ErrTooManySubscriptions = errors.New("hub: too many subscriptions in the session")

// DeliverRetained hands the retained messages a subscription asked for to
// the session, through its queue: those the connection cannot take now
// wait like any backlog instead of being lost. Retained messages are
// bounded per tenant, so the queue's memory bound does not apply to them.
// It returns how many QoS 1/2 deliveries could not be kept (the session
// ended meanwhile).
func (s *Session) DeliverRetained(ds []Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		if s.closed {
			s.t.stats.drop(DropSessionEnded)
			continue
		}
		if s.sink != nil && len(s.queue) == 0 && len(s.blocked) == 0 && !s.spilledLocked() && s.send(d) {
			s.t.stats.delivered.Add(1)
			continue
		}
		if d.QoS == 0 && s.sink != nil {
			s.drop(d, DropConnectionFull)
			continue
		}
		// In memory only, past the bound: a retained message is sent
		// again to the next subscription anyway, and the tenant's
		// retained messages are bounded.
		s.queue = append(s.queue, d)
		s.queuedBytes += d.Message.size()
		s.t.stats.delivered.Add(1)
	}
}

// Unsubscribe removes the subscription to filter and reports whether there
// was one.
func (s *Session) Unsubscribe(filter string) bool {
	s.t.mu.Lock()
	if _, ok := s.subs[filter]; !ok {
		s.t.mu.Unlock()
		return false
	}
	delete(s.subs, filter)
	s.t.subs.Remove(filter, s)
	s.t.mu.Unlock()
	if s.isDurable() {
		// Out of the tenant's lock: a synced write must not stall routing.
		if err := s.hub.opts.Store.DeleteSubscription(s.hub.ctx, s.t.name, s.ID, filter); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.hub.opts.Logger.Error("deleting subscription", slog.String("client", s.ID), slog.Any("err", err))
		}
	}
	return true
}

// Subscriptions returns a copy of the session's subscriptions.
func (s *Session) Subscriptions() []Subscription {
	s.t.mu.RLock()
	defer s.t.mu.RUnlock()
	out := make([]Subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		out = append(out, sub)
	}
	return out
}

// Queued returns the number of deliveries waiting for a connection.
func (s *Session) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}
