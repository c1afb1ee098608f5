package hub

import (
	"log/slog"
	"sync"

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
	// subs is guarded by t.mu, since it changes together with the trie.
	subs map[string]Subscription

	mu          sync.Mutex
	sink        Sink
	queue       []Delivery
	queuedBytes int
	closed      bool
}

func (s *Session) online() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sink != nil
}

func (s *Session) deliver(d Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		s.t.stats.drop(DropSessionEnded)
	case s.sink != nil:
		// A backlog keeps order: it goes first, and d joins it if it
		// does not drain.
		if len(s.queue) > 0 {
			s.drainLocked()
		}
		if len(s.queue) == 0 && s.send(d) {
			s.t.stats.delivered.Add(1)
			return
		}
		if d.QoS > 0 {
			// QoS 1/2 wait in the session until the connection has room
			// (Drain); QoS 0 is dropped.
			if s.enqueueLocked(d) {
				s.t.stats.delivered.Add(1)
			}
			return
		}
		s.drop(d, DropConnectionFull)
	case d.QoS > 0 || s.hub.opts.QueueQoS0:
		if s.enqueueLocked(d) {
			s.t.stats.delivered.Add(1)
		}
	default:
		s.t.stats.drop(DropOfflineQoS0)
	}
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
	s.sink = sink
	s.drainLocked()
}

// Detach disconnects the session from its sink. When keep is set the session
// stays, and unacked (deliveries the connection had not completed, in order)
// go to the front of its queue, marked as duplicates; otherwise the session
// and its subscriptions are removed.
func (s *Session) Detach(unacked []Delivery, keep bool) {
	if !keep {
		s.t.mu.Lock()
		defer s.t.mu.Unlock()
		if s.t.sessions[s.ID] == s {
			s.discardLocked()
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sink != nil {
		s.t.stats.connected.Add(-1)
	}
	s.sink = nil
	later := s.queue
	s.queue, s.queuedBytes = nil, 0
	for _, d := range unacked {
		d.Dup = true
		s.enqueueLocked(d)
	}
	for _, d := range later {
		s.enqueueLocked(d)
	}
}

// discardLocked removes the session and its subscriptions. t.mu must be held.
func (s *Session) discardLocked() {
	for filter := range s.subs {
		s.t.subs.Remove(filter, s)
	}
	s.subs = nil
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
	s.mu.Unlock()
}

// Subscribe adds or replaces the subscription to sub.Filter and returns the
// retained messages it asks for (none for shared subscriptions
// (MQTT 5 section 4.8.2) and per sub.RetainHandling). The filter must be valid.
func (s *Session) Subscribe(sub Subscription) (retained []Delivery) {
	s.t.mu.Lock()
	if s.subs == nil { // discarded
		s.t.mu.Unlock()
		return nil
	}
	_, existed := s.subs[sub.Filter]
	s.subs[sub.Filter] = sub
	s.t.subs.Add(sub.Filter, s, sub)
	s.t.mu.Unlock()

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
