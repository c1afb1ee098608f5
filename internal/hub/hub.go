// Package hub is Ferry's protocol-neutral router: tenants, sessions with
// their subscriptions and offline queues, retained messages, and fan-out.
//
// # Basics
//
// Every publish goes to one tenant's namespace; nothing crosses tenants.
// A protocol front end opens a Session per client, attaches a Sink while the
// client is connected, subscribes, and publishes Messages with Hub.Publish.
// Publish matches the tenant's subscription trie and hands each matching
// session one Delivery (overlapping subscriptions are merged: highest granted
// QoS, all subscription identifiers). Each shared subscription group gets one
// Delivery, to its members in turn, preferring connected ones.
//
// # Caveats
//
// Publish never blocks on a slow consumer. When a Sink refuses a delivery,
// QoS 0 is dropped and counted (see Stats) while QoS 1/2 waits in the
// session's queue until the front end calls Session.Drain. An offline
// persistent session queues QoS 1/2 deliveries (and QoS 0 when
// Options.QueueQoS0 is set). Queues are bounded by Options.MaxQueuedMessages
// and Options.MaxQueuedBytes; beyond that deliveries are dropped, counted and
// logged at debug level.
// Sessions and retained messages live in memory.
//
// # Clusters
//
// Several hubs (one per node) share their messages through a Relay
// (SetRelay): every message published on this hub is handed
// to it as well as routed locally, and what other nodes published comes
// back through DeliverRemote and ApplyRetained, which never relay. The hub
// knows nothing of the transport (internal/cluster uses Kafka).
//
// Locks: Hub.mu guards the tenant map; tenant.mu guards a tenant's trie,
// session map and each session's subscription map; Session.mu guards the
// session's sink and queue. Order: tenant.mu before Session.mu, never the
// reverse; Sink.Deliver is called with Session.mu held and must not call back
// into the hub.
package hub

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/mqtt/topic"
)

// Options configures a Hub. The zero value works.
type Options struct {
	// MaxQueuedMessages bounds each session's queue in memory: its backlog
	// while the connection has no room, or while it is offline. If zero,
	// 1000. Past it, a durable session spills into the store (up to
	// MaxStoredMessages); a session without a store queue slows its
	// publishers while connected (their acknowledgement waits) and drops
	// while offline.
	MaxQueuedMessages int
	// MaxQueuedBytes bounds each session's queue in memory, in
	// (approximate) bytes. If zero, 64 MiB.
	MaxQueuedBytes int
	// MaxStoredMessages bounds each durable session's store queue; past
	// it, QoS 1/2 deliveries to the session are dropped (counted as
	// store_quota, logged once, the publisher told). If zero, 1,000,000.
	MaxStoredMessages int
	// MaxStoredBytes bounds the store queues of all sessions together, in
	// (approximate) bytes. If zero, 4 GiB.
	MaxStoredBytes int64
	// MaxSubscriptions bounds the subscriptions of one session
	// (ErrTooManySubscriptions). If zero, 1000; negative: no bound.
	MaxSubscriptions int
	// MaxRetained bounds the retained topics of one tenant: past it, a
	// retained message for a new topic is routed but not kept
	// (Result.RetainRefused); replacing and clearing still work. Retained
	// messages from the store or the cluster are not refused. If zero,
	// 100,000; negative: no bound.
	MaxRetained int
	// QueueQoS0 makes offline persistent sessions queue QoS 0 messages too.
	QueueQoS0 bool
	// Logger receives drop warnings. If nil, slog.Default().
	Logger *slog.Logger
	// Now is the clock, for tests. If nil, time.Now.
	Now func() time.Time
	// Store keeps durable sessions, retained messages and wills; nil keeps
	// everything in memory (see durable.go).
	Store store.Store
	// ObserveStore, if set, is told how long each store write the hub waits
	// for took ("append", "retain"), for metrics.
	ObserveStore func(op string, d time.Duration)
}

// Relay carries the messages published on one node to the other nodes of a
// cluster, so that their subscribers get them too. It is an interface so
// that the hub stays free of any transport.
type Relay interface {
	// Relay hands m, published in tenant on this node, to the other nodes;
	// m must not be modified. done is nil when the publisher does not wait
	// (QoS 0). Otherwise Relay calls it exactly once, from any goroutine,
	// possibly before returning: with nil once the other nodes are sure to
	// get m, or with the reason they may not, which the publisher is told
	// (Result.Err). done must not block. The hub calls Relay holding
	// none of its locks, from the publisher's goroutine: Relay may block
	// to slow a publisher down when its transport is saturated.
	Relay(tenant string, m *Message, done func(error))
}

// Claimer is a Relay that also tells the other nodes when a client opens a
// session here, so that they close its older connection (an MQTT client
// ID is connected at most once [MQTT-3.1.4-3], cluster-wide).
type Claimer interface {
	Claim(tenant, clientID string)
}

func (o Options) withDefaults() Options {
	if o.MaxQueuedMessages == 0 {
		o.MaxQueuedMessages = 1000
	}
	if o.MaxQueuedBytes == 0 {
		o.MaxQueuedBytes = 64 << 20
	}
	if o.MaxStoredMessages == 0 {
		o.MaxStoredMessages = 1_000_000
	}
	if o.MaxStoredBytes == 0 {
		o.MaxStoredBytes = 4 << 30
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = 1000
	}
	switch {
	case o.MaxRetained == 0:
		o.MaxRetained = 100_000
	case o.MaxRetained < 0:
		o.MaxRetained = 0 // retainedStore.set: no bound
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Hub routes messages between sessions of the same tenant.
type Hub struct {
	opts Options

	mu      sync.RWMutex
	tenants map[string]*tenant
	// retired holds the counters of the tenants releaseTenant removed, so
	// that totals and a tenant's figures never go down: a tenant created
	// again takes its counters back. A few hundred bytes per tenant
	// instead of its maps and trees; guarded by mu.
	retired map[string]Stats

	relay atomic.Pointer[Relay] // nil: none
	taps  tapSet

	// ctx ends at Close: the store calls of the hub's goroutines use it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the hub's goroutines: session appenders and running timer
	// callbacks.
	wg          sync.WaitGroup
	storedBytes atomic.Int64 // approximate bytes of all store queues

	timerMu sync.Mutex
	timers  map[*timer]struct{} // pending; nil once closed

	remoteSlots chan struct{} // DeliverRemote's outstanding deliveries
}

// New returns a Hub configured by opts. Close stops it.
func New(opts Options) *Hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{opts: opts.withDefaults(), tenants: make(map[string]*tenant), ctx: ctx, cancel: cancel,
		timers: make(map[*timer]struct{}), remoteSlots: make(chan struct{}, MaxRemotePending)}
}

// timer is a will-delay or session-expiry timer the hub owns.
type timer struct {
	h *Hub
	t *time.Timer
}

// afterFunc runs f after d, unless the timer is stopped or the hub closed
// first. f runs on its own goroutine, which Close waits for.
func (h *Hub) afterFunc(d time.Duration, f func()) *timer {
	tm := &timer{h: h}
	h.timerMu.Lock()
	defer h.timerMu.Unlock()
	if h.timers == nil {
		return tm // closed: never fires
	}
	h.timers[tm] = struct{}{}
	tm.t = time.AfterFunc(d, func() {
		h.timerMu.Lock()
		if _, ok := h.timers[tm]; !ok || h.timers == nil {
			h.timerMu.Unlock()
			return
		}
		delete(h.timers, tm)
		h.wg.Add(1)
		h.timerMu.Unlock()
		defer h.wg.Done()
		f()
	})
	return tm
}

// Stop cancels the timer; it reports nothing, since callers re-check the
// session's generation in f anyway.
func (tm *timer) Stop() {
	h := tm.h
	h.timerMu.Lock()
	defer h.timerMu.Unlock()
	if tm.t != nil {
		tm.t.Stop()
	}
	if h.timers != nil {
		delete(h.timers, tm)
	}
}

// Close stops the hub's timers (pending wills and session expiries stay in
// the store for the next start), ends its store calls and waits until its
// goroutines are gone or ctx ends. Publishers still waiting are not
// answered: their connections are closed before. Close the front ends
// first, the store after.
func (h *Hub) Close(ctx context.Context) error {
	h.timerMu.Lock()
	for tm := range h.timers {
		tm.t.Stop()
	}
	h.timers = nil
	h.timerMu.Unlock()
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		h.cancel()
		return nil
	case <-ctx.Done():
		h.cancel() // store calls in flight end now
		<-done
		return ctx.Err()
	}
}

// SetRelay sets (or, with nil, removes) the hub's relay. It is not an
// Option because a relay needs the hub first: a cluster hands what other
// nodes published to the hub before this node publishes anything of its
// own.
func (h *Hub) SetRelay(r Relay) {
	if r == nil {
		h.relay.Store(nil)
		return
	}
	h.relay.Store(&r)
}

func (h *Hub) loadRelay() Relay {
	if p := h.relay.Load(); p != nil {
		return *p
	}
	return nil
}

// waits reports whether a publish of m has durable work to wait for: store
// appends or the relay's acknowledgement. A delivery's QoS never exceeds
// the message's, and a QoS 0 message is relayed without waiting.
func (h *Hub) waits(m *Message, r Relay) bool {
	// Always for QoS 1/2: a slow subscriber without a store queue makes
	// the publisher wait rather than lose the message.
	return m.QoS > 0
}

type tenant struct {
	name string

	mu       sync.RWMutex
	subs     *topic.Trie[*Session, Subscription]
	sessions map[string]*Session

	retained retainedStore

	// deleting holds, per client ID, the store deletion of a discarded
	// session still running; guarded by mu.
	deleting map[string]chan struct{}

	// removed is set, under Hub.mu and mu, when releaseTenant takes the
	// tenant out of the hub: whoever would add to it looks it up again.
	removed bool

	stats counters
}

func (h *Hub) tenant(name string) *tenant {
	h.mu.RLock()
	t := h.tenants[name]
	h.mu.RUnlock()
	if t != nil {
		return t
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if t = h.tenants[name]; t == nil {
		t = &tenant{
			name:     name,
			subs:     topic.NewTrie[*Session, Subscription](),
			sessions: make(map[string]*Session),
			retained: retainedStore{},
		}
		if r, ok := h.retired[name]; ok {
			t.stats.restore(r)
			delete(h.retired, name)
		}
		h.tenants[name] = t
	}
	return t
}

// target is one session a publish goes to, with the merged options of the
// subscriptions that matched.
type target struct {
	s      *Session
	qos    byte
	retain bool
	ids    []uint32
	shared string // the $share filter, for a shared group's copy
}

// Result tells a publisher what became of its message.
type Result struct {
	// Matched is the number of sessions the message was handed to.
	Matched int
	// Lost is the number of QoS 1/2 deliveries dropped because a queue
	// was full: a publisher that needs every copy should be told (MQTT 5:
	// PUBACK 0x97).
	Lost int
	// Err is a store or relay failure: the message may not survive a
	// crash, or may not reach the other nodes of a cluster.
	Err error
	// RetainRefused says that m was not kept as its topic's retained
	// message: the tenant holds Options.MaxRetained retained topics
	// (MQTT 5: PUBACK 0x97). It was routed all the same.
	RetainRefused bool
}

// Publish routes m to every matching session of the tenant and, when
// m.Retain is set, stores it as the topic's retained message (an empty
// payload clears it). With a store, it returns once every durable copy is
// committed; with a relay, a QoS 1/2 message also waits for the relay.
func (h *Hub) Publish(tenantName string, m *Message) Result {
	r := h.loadRelay()
	if !h.waits(m, r) {
		// A retained message is stored synchronously.
		return h.publish(tenantName, m, nil, r)
	}
	ch := make(chan Result, 1)
	h.publishAsync(tenantName, m, r, func(r Result) { ch <- r })
	return <-ch
}

// PublishAsync is Publish for callers that must not wait: done is called
// (possibly before PublishAsync returns, possibly from another goroutine)
// once every durable copy of m is committed and the relay, if any, has
// taken it.
func (h *Hub) PublishAsync(tenantName string, m *Message, done func(Result)) {
	h.publishAsync(tenantName, m, h.loadRelay(), done)
}

func (h *Hub) publishAsync(tenantName string, m *Message, r Relay, done func(Result)) {
	if !h.waits(m, r) {
		done(h.publish(tenantName, m, nil, r))
		return
	}
	w := &waiter{done: done}
	w.remaining.Store(1)
	w.res = h.publish(tenantName, m, w, r)
	w.finish(w.res.Err, false)
}

// publish routes m and hands it to the relay r (nil: none); durable
// deliveries and the relay's acknowledgement register with w (nil: none).
func (h *Hub) publish(tenantName string, m *Message, w *waiter, r Relay) Result {
	t := h.tenant(tenantName)
	t.stats.published.Add(1)
	t.stats.bytesIn.Add(uint64(len(m.Payload)))
	now := h.opts.Now()
	if m.Expired(now) {
		t.stats.drop(DropExpired)
		return Result{}
	}
	var res Result
	if m.Retain && !h.setRetained(t, m, h.opts.MaxRetained) {
		// The tenant has MaxRetained topics retained: m goes to its
		// subscribers but is not kept, and the publisher is told.
		res.RetainRefused = true
		t.stats.retainRefused.Add(1)
		m = m.unretained()
	}
	if m.Retain {
		if st := h.opts.Store; st != nil {
			var err error
			start := time.Now()
			if len(m.Payload) == 0 {
				err = st.ClearRetained(h.ctx, tenantName, m.Topic)
			} else {
				err = st.SetRetained(h.ctx, tenantName, toStored(m, nil))
			}
			h.observe("retain", start)
			if err != nil {
				res.Err = fmt.Errorf("storing retained message: %w", err)
			}
		}
	}
	if r != nil {
		if w == nil {
			r.Relay(tenantName, m, nil)
		} else {
			w.add()
			r.Relay(tenantName, m, func(err error) {
				if err != nil {
					err = fmt.Errorf("relaying to the cluster: %w", err)
				}
				w.finish(err, false)
			})
		}
	}
	res.Matched, res.Lost = h.route(t, m, w)
	return res
}

// DeliverRemote routes m, which another node published in tenant and
// relayed, to this hub's matching sessions. It neither relays m again nor
// touches the retained messages: those arrive through ApplyRetained, in
// the order the cluster agreed on. Durable sessions get their copy
// committed to the store, and slow subscribers hold a QoS 1/2 copy back
// as they would a local publisher; at most MaxRemotePending such
// deliveries are outstanding, then DeliverRemote blocks, which slows the
// cluster consumer that calls it instead of growing memory. An expired m
// is dropped.
func (h *Hub) DeliverRemote(tenantName string, m *Message) {
	h.mu.RLock()
	t := h.tenants[tenantName]
	h.mu.RUnlock()
	if m.Expired(h.opts.Now()) {
		if t != nil {
			t.stats.drop(DropExpired)
		}
		return
	}
	if t == nil {
		// No session of the tenant here; its taps may still want m.
		h.taps.tapped(tenantName, m)
		return
	}
	if m.QoS == 0 {
		h.route(t, m, nil)
		return
	}
	select {
	case h.remoteSlots <- struct{}{}:
	case <-h.ctx.Done():
		return
	}
	w := &waiter{done: func(Result) { <-h.remoteSlots }}
	w.remaining.Store(1)
	h.route(t, m, w)
	w.finish(nil, false)
}

// MaxRemotePending is how many QoS 1/2 messages from other nodes may wait
// for slow local subscribers or store commits at once.
const MaxRemotePending = 1024

// TakeOver closes the connection of clientID in tenant on this node, if
// it has one that was attached before at: the client connected again
// through another node of the cluster at that time. A session attached
// later is a newer connection of the client, which stays.
func (h *Hub) TakeOver(tenantName, clientID string, at time.Time) {
	h.mu.RLock()
	t := h.tenants[tenantName]
	h.mu.RUnlock()
	if t == nil {
		return
	}
	t.mu.RLock()
	s := t.sessions[clientID]
	t.mu.RUnlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	sink := s.sink
	newer := s.attached.After(at)
	s.mu.Unlock()
	if e, ok := sink.(Evicter); ok && !newer {
		e.Evict()
	}
}

// ApplyRetained makes m the retained message of m.Topic in tenant, or
// clears the topic when m has no payload or has expired, without
// delivering or relaying it: a cluster keeps every node's retained messages
// in step with it. The store, if any, is not written: the cluster is where
// retained messages survive.
func (h *Hub) ApplyRetained(tenantName string, m *Message) {
	t := h.tenant(tenantName)
	if m.Expired(h.opts.Now()) {
		m = &Message{Topic: m.Topic}
	}
	h.setRetained(t, m, 0) // the cluster agreed on it: no local cap
}

// lockTenant returns the tenant, created if need be, with its mu locked,
// for adding a session: never one that releaseTenant has just removed.
func (h *Hub) lockTenant(name string) *tenant {
	for {
		t := h.tenant(name)
		t.mu.Lock()
		if !t.removed {
			return t
		}
		t.mu.Unlock()
	}
}

// setRetained sets m as a retained message of t (see retainedStore.set),
// or of the tenant that replaced t if t was removed meanwhile. A clear may
// leave the tenant empty, which is then removed.
func (h *Hub) setRetained(t *tenant, m *Message, max int) bool {
	for {
		t.mu.RLock()
		if !t.removed {
			ok := t.retained.set(m, max)
			t.mu.RUnlock()
			if len(m.Payload) == 0 {
				h.releaseTenant(t)
			}
			return ok
		}
		t.mu.RUnlock()
		t = h.tenant(t.name)
	}
}

// releaseTenant removes t from the hub once it holds nothing (no session,
// subscription, retained message or store deletion in progress), so that
// tenants that come and go (deleted from the registry, one-off logins) do
// not stay in memory. Its counters are kept in the hub's totals.
func (h *Hub) releaseTenant(t *tenant) {
	t.mu.RLock()
	empty := len(t.sessions) == 0 && len(t.deleting) == 0 && t.subs.Len() == 0 && t.retained.len() == 0
	t.mu.RUnlock()
	if !empty {
		return // the common case: no hub-wide lock
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tenants[t.name] != t {
		return
	}
	t.mu.Lock()
	if len(t.sessions) > 0 || len(t.deleting) > 0 || t.subs.Len() > 0 || t.retained.len() > 0 {
		t.mu.Unlock()
		return
	}
	t.removed = true
	delete(h.tenants, t.name)
	t.mu.Unlock()
	// Nothing is added to a removed tenant; its last counters join the
	// totals (statsSnapshot takes t.mu itself).
	if h.retired == nil {
		h.retired = make(map[string]Stats)
	}
	h.retired[t.name] = t.statsSnapshot()
}

// route hands m to every matching session of t and returns how many
// sessions matched and how many QoS 1/2 copies were lost.
func (h *Hub) route(t *tenant, m *Message, w *waiter) (matched, lost int) {
	var targets []target
	add := func(s *Session, sub Subscription, merge bool) {
		if merge {
			for i := range targets {
				if targets[i].s == s {
					tg := &targets[i]
					tg.qos = max(tg.qos, sub.QoS)
					tg.retain = tg.retain || sub.RetainAsPublished
					if sub.ID != 0 {
						tg.ids = append(tg.ids, sub.ID)
					}
					return
				}
			}
		}
		tg := target{s: s, qos: sub.QoS, retain: sub.RetainAsPublished}
		if sub.ID != 0 {
			tg.ids = []uint32{sub.ID}
		}
		targets = append(targets, tg)
	}
	t.mu.RLock()
	t.subs.Match(m.Topic, func(s *Session, sub Subscription) {
		if sub.NoLocal && m.Origin != "" && s.ID == m.Origin {
			return
		}
		add(s, sub, true)
	}, func(g *topic.Group[*Session, Subscription]) {
		// Each group gets one copy; prefer a member that is connected.
		n := len(g.Members)
		start := g.Next()
		pick := g.Members[start]
		for i := range n {
			m := g.Members[(start+i)%n]
			if m.Key.online() {
				pick = m
				break
			}
		}
		add(pick.Key, pick.Val, false)
		targets[len(targets)-1].shared = pick.Val.Filter
	})
	t.mu.RUnlock()
	matched = h.taps.tapped(t.name, m)

	for i := range targets {
		tg := &targets[i]
		d := Delivery{
			Message:         m,
			QoS:             min(m.QoS, tg.qos),
			Retain:          m.Retain && tg.retain,
			SubscriptionIDs: tg.ids,
			Shared:          tg.shared,
		}
		if w != nil && d.QoS > 0 && tg.s.isDurable() {
			w.add()
			tg.s.deliverDurable(d, w.finish)
			continue
		}
		if w != nil && d.QoS > 0 {
			tg.s.deliverWaiting(d, w)
			continue
		}
		if !tg.s.deliver(d) {
			lost++
		}
	}
	return matched + len(targets), lost
}

// Open returns the session of clientID in the tenant, creating it when there
// is none. With clean set, any existing session is discarded first. present
// reports whether an existing session was resumed. The caller must make sure
// no connection of the same client is still attached (session takeover).
func (h *Hub) Open(tenantName, clientID string, clean bool) (s *Session, present bool) {
	if c, ok := h.loadRelay().(Claimer); ok {
		c.Claim(tenantName, clientID)
	}
	t := h.lockTenant(tenantName)
	var will *Message
	cleanup := func() {}
	if old := t.sessions[clientID]; old != nil {
		if !clean {
			t.mu.Unlock()
			return old, true
		}
		will, cleanup = old.discardLocked() // the old session ends: its will goes now
	}
	s = &Session{ID: clientID, hub: h, t: t, after: t.deleting[clientID]}
	t.sessions[clientID] = s
	t.stats.sessions.Add(1)
	t.mu.Unlock()
	cleanup()
	if will != nil {
		h.PublishAsync(tenantName, will, func(Result) {})
	}
	return s, false
}

// Stats is a snapshot of the hub's counters, of one tenant or of all.
type Stats struct {
	Published     uint64                 // messages handed to Publish
	BytesIn       uint64                 // their payload bytes
	Delivered     uint64                 // deliveries accepted by a connection or a session queue
	Sent          uint64                 // deliveries handed to a connection
	BytesSent     uint64                 // their payload bytes
	Dropped       uint64                 // deliveries dropped, for every reason
	Drops         [NumDropReasons]uint64 // dropped deliveries by reason
	Queued        int                    // deliveries waiting in session queues
	Retained      int                    // retained messages stored
	Sessions      int64                  // sessions
	Connected     int64                  // sessions with a connection attached
	Connects      uint64                 // connections attached since start
	Subscripts    int                    // subscriptions, plain and shared
	Blocked       uint64                 // deliveries that made their publisher wait for room
	Spills        uint64                 // times a session's queue spilled into the store
	Refills       uint64                 // reads of spilled deliveries back from the store
	StoredB       int64                  // approximate bytes in the store queues of all sessions (hub-wide)
	RetainRefused uint64                 // retained messages not kept: the tenant's MaxRetained was reached
}

type counters struct {
	published, bytesIn  atomic.Uint64
	delivered           atomic.Uint64
	sent, bytesSent     atomic.Uint64
	connects            atomic.Uint64
	sessions, connected atomic.Int64
	drops               [NumDropReasons]atomic.Uint64
	blocked             atomic.Uint64
	spills, refills     atomic.Uint64
	retainRefused       atomic.Uint64
}

// restore sets the cumulative counters from st, the figures of a tenant
// that was removed and is created again.
func (c *counters) restore(st Stats) {
	c.published.Store(st.Published)
	c.bytesIn.Store(st.BytesIn)
	c.delivered.Store(st.Delivered)
	c.sent.Store(st.Sent)
	c.bytesSent.Store(st.BytesSent)
	c.connects.Store(st.Connects)
	for i := range c.drops {
		c.drops[i].Store(st.Drops[i])
	}
	c.blocked.Store(st.Blocked)
	c.spills.Store(st.Spills)
	c.refills.Store(st.Refills)
	c.retainRefused.Store(st.RetainRefused)
}

// Stats returns the counters of every tenant added up.
func (h *Hub) Stats() Stats {
	// Under the read lock throughout, so that a tenant being retired is
	// counted once, either live or in retired.
	h.mu.RLock()
	var st Stats
	for _, r := range h.retired {
		st.add(r)
	}
	for _, t := range h.tenants {
		st.add(t.statsSnapshot())
	}
	h.mu.RUnlock()
	st.StoredB = h.storedBytes.Load()
	return st
}

// TenantStats returns one tenant's counters.
func (h *Hub) TenantStats(name string) Stats {
	h.mu.RLock()
	t := h.tenants[name]
	r := h.retired[name]
	h.mu.RUnlock()
	if t == nil {
		return r
	}
	return t.statsSnapshot()
}

func (h *Hub) observe(op string, start time.Time) {
	if h.opts.ObserveStore != nil {
		h.opts.ObserveStore(op, time.Since(start))
	}
}

// AddTenant makes sure the tenant exists, so that tenant-wide work (such as
// $SYS topics) covers it before its first client arrives.
func (h *Hub) AddTenant(name string) { h.tenant(name) }

// Tenants returns the names of the tenants the hub has seen.
func (h *Hub) Tenants() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	names := make([]string, 0, len(h.tenants))
	for name := range h.tenants {
		names = append(names, name)
	}
	return names
}

func (t *tenant) statsSnapshot() Stats {
	c := &t.stats
	st := Stats{
		Published:     c.published.Load(),
		BytesIn:       c.bytesIn.Load(),
		Delivered:     c.delivered.Load(),
		Sent:          c.sent.Load(),
		BytesSent:     c.bytesSent.Load(),
		Sessions:      c.sessions.Load(),
		Connected:     c.connected.Load(),
		Connects:      c.connects.Load(),
		Retained:      t.retained.len(),
		Blocked:       c.blocked.Load(),
		Spills:        c.spills.Load(),
		Refills:       c.refills.Load(),
		RetainRefused: c.retainRefused.Load(),
	}
	for i := range st.Drops {
		st.Drops[i] = c.drops[i].Load()
		st.Dropped += st.Drops[i]
	}
	t.mu.RLock()
	st.Subscripts = t.subs.Len()
	for _, s := range t.sessions {
		st.Queued += s.Queued()
	}
	t.mu.RUnlock()
	return st
}

func (st *Stats) add(o Stats) {
	st.Published += o.Published
	st.BytesIn += o.BytesIn
	st.Delivered += o.Delivered
	st.Sent += o.Sent
	st.BytesSent += o.BytesSent
	st.Dropped += o.Dropped
	for i := range st.Drops {
		st.Drops[i] += o.Drops[i]
	}
	st.Queued += o.Queued
	st.Retained += o.Retained
	st.Sessions += o.Sessions
	st.Connected += o.Connected
	st.Connects += o.Connects
	st.Subscripts += o.Subscripts
	st.Blocked += o.Blocked
	st.Spills += o.Spills
	st.Refills += o.Refills
	st.RetainRefused += o.RetainRefused
}

// DropReason says why a delivery was dropped.
type DropReason int

// Reasons for dropping a delivery.
const (
	// DropConnectionFull: a QoS 0 message for a connection whose queue was full.
	DropConnectionFull DropReason = iota
	// DropSessionQueueFull: the session's queue reached its bounds.
	DropSessionQueueFull
	// DropOfflineQoS0: a QoS 0 message for a disconnected session.
	DropOfflineQoS0
	// DropExpired: the message expired while it waited.
	DropExpired
	// DropSessionEnded: the session ended with deliveries still queued.
	DropSessionEnded
	// DropStoreQuota: a durable session's store queue, or all of them
	// together, reached Options.MaxStoredMessages or MaxStoredBytes.
	DropStoreQuota
	// NumDropReasons is the number of reasons.
	NumDropReasons
)

var dropReasonNames = [NumDropReasons]string{"connection_queue_full", "session_queue_full", "offline_qos0", "expired", "session_ended", "store_quota"}

func (r DropReason) String() string {
	if r >= 0 && r < NumDropReasons {
		return dropReasonNames[r]
	}
	return "unknown"
}

func (c *counters) drop(r DropReason) { c.drops[r].Add(1) }
