package hub

import (
	"context"
	"errors"
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
	closed      bool
	// gen counts attachments and detachments, so that a timer of an
	// earlier detachment does nothing.
	gen         uint64
	will        *Message
	willTimer   *time.Timer
	expiryTimer *time.Timer

	// Durability (durable.go); guarded by mu unless noted.
	durable    bool          // kept in the store
	expiry     time.Duration // of a recovered session
	willStored bool          // the store holds a will of this session
	loaded     bool          // the store's queue was read in (recovered sessions)
	appending  bool          // the append goroutine runs
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

// handOnLocked gives d to the connection, or queues it; s.mu must be held.
func (s *Session) handOnLocked(d Delivery) bool {
	switch {
	case s.sink != nil:
		// A backlog keeps order: it goes first, and d joins it if it
		// does not drain.
		if len(s.queue) > 0 {
			s.drainLocked()
		}
		if len(s.queue) == 0 && s.send(d) {
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

// enqueueLocked queues d for a later connection and reports whether it fit
// the queue's limits; s.mu must be held.
func (s *Session) enqueueLocked(d Delivery) bool {
	size := d.Message.size()
	if len(s.queue) >= s.hub.opts.MaxQueuedMessages || s.queuedBytes+size > s.hub.opts.MaxQueuedBytes {
		s.drop(d, DropSessionQueueFull)
		return false
	}
	s.queue = append(s.queue, d)
	s.queuedBytes += size
	return true
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
	if s.sink != nil && len(s.queue) > 0 {
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

func (s *Session) drainLocked() {
	now := s.hub.opts.Now()
	i := 0
	for ; i < len(s.queue); i++ {
		d := s.queue[i]
		if d.Message.Expired(now) {
			s.t.stats.drop(DropExpired)
		} else if !s.send(d) {
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
}

// Attach connects the session to sink: queued deliveries are handed to it in
// order as far as it takes them (the rest waits for Drain), then new ones as
// they arrive. Expired queued messages are dropped.
func (s *Session) Attach(sink Sink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sink == nil {
		s.t.stats.connected.Add(1)
	}
	s.t.stats.connects.Add(1)
	// Resumed in time: the pending will is not sent and the session does
	// not expire.
	s.gen++
	s.stopTimersLocked()
	s.will = nil
	if s.willStored {
		s.willStored = false
		s.deleteStoredWill()
	}
	s.sink = sink
	s.attached = s.hub.opts.Now()
	s.drainLocked()
}

func (s *Session) deleteStoredWill() {
	if err := s.hub.opts.Store.DeleteWill(context.Background(), s.t.name, s.ID); err != nil {
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
// member of their group when there is one (MQTT 5 section 4.8.2).
func (s *Session) Detach(d Departure) {
	d.Unacked = s.handOverShared(d.Unacked)
	if d.Expiry <= 0 {
		s.t.mu.Lock()
		var will *Message
		if s.t.sessions[s.ID] == s {
			will = s.discardLocked()
		}
		s.t.mu.Unlock()
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
	later := s.queue
	s.queue, s.queuedBytes = nil, 0
	for _, u := range d.Unacked {
		u.Dup = true
		s.enqueueLocked(u)
	}
	for _, q := range later {
		s.enqueueLocked(q)
	}
	var now *Message
	if d.Will != nil {
		if d.WillDelay <= 0 {
			now = d.Will
		} else {
			s.will = d.Will
			s.willTimer = time.AfterFunc(min(d.WillDelay, d.Expiry), func() { s.fireWill(gen) })
		}
	}
	if d.Expiry != Forever {
		s.expiryTimer = time.AfterFunc(d.Expiry, func() { s.expire(gen) })
	}
	storedWill := s.willStored
	if storedWill && s.will != nil {
		// Keep it in the store with its deadline, for a restart.
		w := store.Will{Message: *toStored(s.will, nil), Delay: d.WillDelay, Deadline: s.hub.opts.Now().Add(min(d.WillDelay, d.Expiry))}
		if err := s.hub.opts.Store.PutWill(context.Background(), s.t.name, s.ID, w); err != nil {
			s.hub.opts.Logger.Warn("storing will deadline", slog.String("client", s.ID), slog.Any("err", err))
		}
	} else if storedWill {
		s.willStored = false
		s.deleteStoredWill()
	}
	if s.durable {
		rec := s.recordLocked(d.Expiry, s.hub.opts.Now())
		if err := s.hub.opts.Store.PutSession(context.Background(), s.t.name, rec); err != nil {
			s.hub.opts.Logger.Warn("storing session", slog.String("client", s.ID), slog.Any("err", err))
		}
	}
	s.mu.Unlock()
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
	if current && s.t.sessions[s.ID] == s {
		will = s.discardLocked()
	}
	s.t.mu.Unlock()
	s.publishWill(will)
}

func (s *Session) publishWill(will *Message) {
	if will != nil {
		s.hub.Publish(s.t.name, will)
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
// will still pending, which the caller publishes once it released t.mu.
// t.mu must be held.
func (s *Session) discardLocked() *Message {
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
	s.gen++
	s.stopTimersLocked()
	will := s.will
	s.will = nil
	if s.hub.opts.Store != nil && (s.durable || s.willStored) {
		// Under t.mu, so that a new session of the same id cannot be
		// stored before this one is deleted.
		if err := s.hub.opts.Store.DeleteSession(context.Background(), s.t.name, s.ID); err != nil {
			s.hub.opts.Logger.Warn("deleting session", slog.String("client", s.ID), slog.Any("err", err))
		}
		s.durable, s.willStored = false, false
	}
	s.mu.Unlock()
	return will
}

// Subscribe adds or replaces the subscription to sub.Filter and returns the
// retained messages it asks for (none for shared subscriptions
// (MQTT 5 section 4.8.2) and per sub.RetainHandling). The filter must be valid.
func (s *Session) Subscribe(sub Subscription) (retained []Delivery) {
	s.t.mu.Lock()
	if s.discarded {
		s.t.mu.Unlock()
		return nil
	}
	if s.subs == nil {
		s.subs = make(map[string]Subscription)
	}
	_, existed := s.subs[sub.Filter]
	s.subs[sub.Filter] = sub
	s.t.subs.Add(sub.Filter, s, sub)
	s.t.mu.Unlock()
	if s.isDurable() {
		if err := s.hub.opts.Store.PutSubscription(context.Background(), s.t.name, s.ID, toStoredSub(sub)); err != nil {
			s.hub.opts.Logger.Error("storing subscription", slog.String("client", s.ID), slog.Any("err", err))
		}
	}

	if _, _, shared, _ := topic.ParseShared(sub.Filter); shared {
		return nil
	}
	if sub.RetainHandling == 2 || (sub.RetainHandling == 1 && existed) {
		return nil
	}
	now := s.hub.opts.Now()
	for _, m := range s.t.retained.match(sub.Filter, now) {
		d := Delivery{Message: m, QoS: min(m.QoS, sub.QoS), Retain: true}
		if sub.ID != 0 {
			d.SubscriptionIDs = []uint32{sub.ID}
		}
		retained = append(retained, d)
	}
	return retained
}

// Unsubscribe removes the subscription to filter and reports whether there
// was one.
func (s *Session) Unsubscribe(filter string) bool {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	if _, ok := s.subs[filter]; !ok {
		return false
	}
	delete(s.subs, filter)
	s.t.subs.Remove(filter, s)
	if s.isDurable() {
		if err := s.hub.opts.Store.DeleteSubscription(context.Background(), s.t.name, s.ID, filter); err != nil && !errors.Is(err, store.ErrNotFound) {
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
