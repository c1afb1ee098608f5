package amqpapi

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
)

type groupKey struct {
	tenant string
	ep     hono.Endpoint
	name   string
	// topic marks the group of a topic link (topics.go): its session
	// subscribes to the link's MQTT topic filter, not to ep's hub topics,
	// and name is the session's own (ep is unused).
	topic bool
}

// group is the receivers of one address sharing a subscription name, and
// the hub session that holds their backlog.
type group struct {
	srv  *Server
	key  groupKey
	sess *hub.Session
	// filter and keep describe a topic link's group: the filter its
	// session subscribes to, and how long the session outlives its links
	// (0: not at all, hub.Forever).
	filter string
	keep   time.Duration

	mu      sync.Mutex
	members []*member
	next    int // round robin start
	// retry holds event deliveries a member released or lost with its
	// link: they go out again before anything new. Bounded by the credit
	// members had, since only sent deliveries come back.
	retry []hub.Delivery
	// inflight holds the event deliveries sent and not settled, by
	// sequence number: when the last member leaves they go back to the
	// session with the rest of its backlog.
	inflight map[uint64]hub.Delivery
	gone     bool // the last member left; a new one makes a new group
}

type member struct {
	g   *group
	snd *amqp.Sender
}

// sessionID is the hub client id of a group's session. MQTT clients cannot
// take it: the MQTT adapter refuses client ids under hono.HubPrefix.
func (k groupKey) sessionID() string {
	if k.topic {
		return hono.HubPrefix + "amqp/" + k.name
	}
	name := k.name
	if name == "" {
		name = "$default"
	}
	return hono.HubPrefix + k.ep.String() + "/" + name
}

// OpenEventGroup makes sure the default event group of tenant exists as a
// durable session, so that events published before any application
// attached are kept for it (up to the retention time). The MQTT adapter
// calls it before a tenant's first event.
func OpenEventGroup(h *hub.Hub, tenant string, retention time.Duration) error {
	k := groupKey{tenant: tenant, ep: hono.Event}
	s, _ := h.Open(tenant, k.sessionID(), false)
	return makeGroupSession(s, hono.Event, retention)
}

func makeGroupSession(s *hub.Session, ep hono.Endpoint, retention time.Duration) error {
	if ep == hono.Event {
		if err := s.MakeDurable(retention); err != nil {
			return err
		}
	}
	_, err := s.Subscribe(hub.Subscription{Filter: hono.HubFilter(ep), QoS: 1, RetainHandling: 2})
	return err
}

// join adds snd to its group, creating the group (and its hub session)
// for the first member.
func (s *Server) join(tenant string, ep hono.Endpoint, name string, snd *amqp.Sender) error {
	k := groupKey{tenant: tenant, ep: ep, name: name}
	err := s.joinGroup(&group{srv: s, key: k}, snd, ep != hono.Event, func(sess *hub.Session) ([]hub.Delivery, error) {
		return nil, makeGroupSession(sess, ep, s.opts.EventRetention)
	})
	if err != nil {
		return fmt.Errorf("opening the %s group %q: %w", ep, name, err)
	}
	return nil
}

// errOtherFilter refuses a topic link whose group is attached already
// with another filter.
var errOtherFilter = errors.New("attached already with another source address")

// joinGroup adds snd to the group of fresh's key, or to fresh itself when
// there is none yet: then its hub session is opened (clean: without what
// an earlier session of its id left), prepared by setup and attached, and
// the retained messages setup returns go out first.
func (s *Server) joinGroup(fresh *group, snd *amqp.Sender, clean bool, setup func(*hub.Session) ([]hub.Delivery, error)) error {
	k := fresh.key
	s.mu.Lock()
	g := s.groups[k]
	isNew := g == nil
	if isNew {
		g = fresh
		s.groups[k] = g
	} else if g.filter != fresh.filter {
		s.mu.Unlock()
		return errOtherFilter
	}
	m := &member{g: g, snd: snd}
	g.mu.Lock()
	g.members = append(g.members, m)
	g.mu.Unlock()
	s.mu.Unlock()

	snd.OnReady(g.resume)
	if isNew {
		s.sessMu.Lock()
		sess, _ := s.opts.Hub.Open(k.tenant, k.sessionID(), clean)
		retained, err := setup(sess)
		if err != nil {
			var keep time.Duration
			if k.topic {
				keep = g.expiry() // a durable link's backlog stays
			}
			sess.Detach(hub.Departure{Expiry: keep})
			s.sessMu.Unlock()
			s.leave(m)
			return err
		}
		g.mu.Lock()
		g.sess = sess
		g.mu.Unlock()
		sess.Attach(g)
		sess.DeliverRetained(retained)
		s.sessMu.Unlock()
	} else {
		g.resume()
	}
	// After the outcomes of everything sent on the link: what leave hands
	// back to the session cannot be settled any more.
	s.members.Add(1)
	snd.OnDetach(func() {
		defer s.members.Done()
		s.leave(m)
	})
	return nil
}

// leave removes m; the last member to leave detaches the group's session
// (a telemetry group's ends, an event group's keeps its backlog for the
// retention time).
func (s *Server) leave(m *member) {
	g := m.g
	s.mu.Lock()
	g.mu.Lock()
	for i, x := range g.members {
		if x == m {
			g.members = append(g.members[:i], g.members[i+1:]...)
			break
		}
	}
	last := len(g.members) == 0 && !g.gone
	var unacked []hub.Delivery
	if last {
		g.gone = true
		if s.groups[g.key] == g {
			delete(s.groups, g.key)
		}
		unacked, g.retry = g.retry, nil
		for _, d := range g.inflight {
			unacked = append(unacked, d)
		}
		g.inflight = nil
		slices.SortFunc(unacked, func(a, b hub.Delivery) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	sess := g.sess
	g.mu.Unlock()
	s.mu.Unlock()
	if !last || sess == nil {
		if sess != nil {
			g.resume() // its queue goes to the others
		}
		return
	}
	dep := hub.Departure{Unacked: unacked, Expiry: g.expiry()}
	if g.key.topic && unsubscribed(m.snd.Err()) {
		dep.Expiry = 0
	}
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	sess.Detach(dep)
}

// unsubscribed reports whether a topic link ended with the peer's
// detach closing it (closed=true, no error): as for JMS durable
// subscribers on Artemis or Qpid, that ends a durable subscription, while
// a suspending detach (closed=false) or a closed connection keeps it.
func unsubscribed(err error) bool {
	var le *amqp.LinkError
	return errors.As(err, &le) && le.Closed && le.RemoteErr == nil
}

// expiry is how long the group's session outlives its last member: an
// event group's the retention time, a durable topic link's as its source
// asked.
func (g *group) expiry() time.Duration {
	switch {
	case g.key.topic:
		return g.keep
	case !g.key.topic && g.key.ep == hono.Event:
		return g.srv.opts.EventRetention
	}
	return 0
}

// redelivers reports whether what a member released goes out again:
// events, and a topic link's QoS 1 and 2 messages.
func (g *group) redelivers(d hub.Delivery) bool {
	if g.key.topic {
		return d.QoS > 0
	}
	return g.key.ep == hono.Event
}

// Deliver implements hub.Sink: it hands d to the next member with credit.
// Called with the hub session's lock held; never blocks.
func (g *group) Deliver(d hub.Delivery) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone {
		return false
	}
	if len(g.retry) > 0 && !g.flushRetryLocked() {
		return false
	}
	return g.sendLocked(d)
}

// resume offers the retried deliveries, then the session's backlog. It
// runs when a member has credit again (amqp OnReady) or joined.
func (g *group) resume() {
	g.mu.Lock()
	ok := g.gone || g.flushRetryLocked()
	sess := g.sess
	g.mu.Unlock()
	if ok && sess != nil {
		sess.Drain()
	}
}

func (g *group) flushRetryLocked() bool {
	for len(g.retry) > 0 {
		if !g.sendLocked(g.retry[0]) {
			return false
		}
		g.retry[0] = hub.Delivery{}
		g.retry = g.retry[1:]
	}
	g.retry = nil
	return true
}

// sendLocked offers d to the members in turn; g.mu must be held.
func (g *group) sendLocked(d hub.Delivery) bool {
	n := len(g.members)
	if n == 0 {
		return false
	}
	var payload []byte
	var err error
	if g.key.topic {
		payload, err = topicEncoded(d)
	} else {
		payload, err = encoded(d.Message)
	}
	if err != nil {
		g.srv.log.Warn("message not encodable for AMQP: dropped", "tenant", g.key.tenant, "err", err)
		g.settled(d)
		return true
	}
	for i := range n {
		m := g.members[(g.next+i)%n]
		ok, err := m.snd.TrySendEncoded(payload, nil, func(err error) { g.outcome(d, err) })
		if err != nil || !ok {
			continue // detached (its leave is on the way) or no credit
		}
		g.next = (g.next + i + 1) % n
		if d.Seq != 0 {
			if g.inflight == nil {
				g.inflight = make(map[uint64]hub.Delivery)
			}
			g.inflight[d.Seq] = d
		}
		return true
	}
	return false
}

// outcome handles a member's settlement of d: accepted and rejected are
// done with it (Hono: a rejected event is not sent again); released,
// modified and a link that ended first send it again.
func (g *group) outcome(d hub.Delivery, err error) {
	var oe *amqp.OutcomeError
	switch {
	case err == nil:
		g.settled(d)
		return
	case errors.As(err, &oe):
		if _, rejected := oe.State.(*amqp.Rejected); rejected {
			g.settled(d)
			return
		}
	}
	if !g.redelivers(d) {
		return // telemetry is at most once past the consumer's credit
	}
	d.Dup = true
	g.mu.Lock()
	if _, ok := g.inflight[d.Seq]; (!ok && d.Seq != 0) || g.gone {
		g.mu.Unlock()
		// The last member left: d went back to the session with the
		// rest of the backlog.
		return
	}
	delete(g.inflight, d.Seq)
	g.retry = append(g.retry, d)
	g.mu.Unlock()
	g.resume()
}

func (g *group) settled(d hub.Delivery) {
	g.mu.Lock()
	delete(g.inflight, d.Seq)
	sess := g.sess
	g.mu.Unlock()
	if sess != nil && d.Seq != 0 {
		sess.Acked(d.Seq)
	}
}

// encoded returns m as an AMQP message in Hono's format (protocols.md
// 1.6), built once per message for all groups.
func encoded(m *hub.Message) ([]byte, error) {
	v := m.SharedForm(func() any {
		b, err := toAMQP(m).AppendTo(nil)
		if err != nil {
			return nil // not kept: each delivery hears the error below
		}
		return amqpForm(b)
	})
	if f, ok := v.(amqpForm); ok {
		return f, nil
	}
	// Another front end's form is there, or encoding failed.
	return toAMQP(m).AppendTo(nil)
}

// amqpForm is the encoded AMQP form of a message.
type amqpForm []byte

// toAMQP converts a Hono message from the hub.
func toAMQP(m *hub.Message) *amqp.Message {
	ct := m.ContentType
	if ct == "" {
		ct = hono.ContentTypeOctetStream
	}
	am := &amqp.Message{
		Properties: &amqp.Properties{
			ContentType:  amqp.Symbol(ct),
			CreationTime: m.Created,
		},
		ApplicationProperties: map[string]any{},
		Data:                  [][]byte{m.Payload},
	}
	if len(m.CorrelationData) > 0 {
		am.Properties.CorrelationID = m.CorrelationData
	}
	event := strings.HasPrefix(m.Topic, hono.HubPrefix+"event/")
	if event || !m.Expiry.IsZero() {
		am.Header = &amqp.MessageHeader{Durable: event, Priority: 4} // telemetry is never durable
		if !m.Expiry.IsZero() && !m.Created.IsZero() {
			am.Header.TTL = m.Expiry.Sub(m.Created)
		}
	}
	for _, p := range m.Properties {
		if len(p.Key) > 6 && p.Key[:6] == "x-opt-" {
			if am.MessageAnnotations == nil {
				am.MessageAnnotations = amqp.Annotations{}
			}
			am.MessageAnnotations[amqp.Symbol(p.Key)] = p.Value
			continue
		}
		switch v := p.Value.(type) {
		case int64:
			if v >= -1<<31 && v < 1<<31 {
				am.ApplicationProperties[p.Key] = int32(v) // Hono's ttd, qos and status are ints
				continue
			}
		}
		am.ApplicationProperties[p.Key] = p.Value
	}
	for _, u := range m.UserProperties {
		if _, taken := am.ApplicationProperties[u.Key]; !taken {
			am.ApplicationProperties[u.Key] = u.Value
		}
	}
	return am
}
