// Package lastwill keeps the last wills of clients that are not MQTT
// clients (AMQP clients of the northbound API, see amqpapi): each client,
// named by an id unique in its tenant, registers a will, and the way it
// leaves decides whether the will is published on the hub.
//
// A client's will lives in a hub session of its own, "$lwt/<client-id>",
// so that the hub's MQTT will machinery does the work: the delay, the
// cancellation by a client that comes back in time, the store (the
// session is durable while its will has a delay) and the publication
// after a restart of the wills whose clients did not come back within
// their delay. The session has no subscriptions; it counts as a connected
// client of its tenant while the client is attached.
package lastwill

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/hub"
)

// SessionPrefix starts the hub session id of a will client.
const SessionPrefix = "$lwt/"

// ErrTakenOver is returned by the methods of a Client replaced by a later
// Attach of the same id.
var ErrTakenOver = errors.New("lastwill: another attachment of this client id took over")

// Service keeps the wills of the clients attached to it.
type Service struct {
	hub *hub.Hub
	log *slog.Logger

	// mu serialises the hub work of all clients: wills change seldom, and
	// one lock keeps a takeover and the departure of the client it
	// replaces in order.
	mu      sync.Mutex
	clients map[key]*Client
}

type key struct{ tenant, id string }

// New returns a Service publishing on h. log may be nil.
func New(h *hub.Hub, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{hub: h, log: log, clients: map[key]*Client{}}
}

// Client is one attachment of a will client.
type Client struct {
	svc      *Service
	k        key
	takeover func()

	// Guarded by svc.mu.
	sess  *hub.Session
	will  *hub.Message
	delay time.Duration
	gone  bool
}

// sink is the will session's connection: it subscribes to nothing, so
// nothing is ever delivered to it.
type sink struct{}

func (sink) Deliver(hub.Delivery) bool { return false }

// Attach attaches the client id of tenant. A will of an earlier
// attachment still waiting for its delay is cancelled, as an MQTT
// client's is when it reconnects in time. An attachment of the same id
// still in place is replaced: its takeover function (may be nil) is
// called, on its own goroutine, and its methods do nothing from then on.
// The new attachment has no will until Set.
func (s *Service) Attach(tenant, clientID string, takeover func()) *Client {
	k := key{tenant, clientID}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.clients[k]; old != nil {
		old.gone = true
		if old.takeover != nil {
			go old.takeover()
		}
	}
	sess, _ := s.hub.Open(tenant, SessionPrefix+clientID, false)
	// Deletes a stored will of the previous attachment too.
	sess.Attach(sink{})
	c := &Client{svc: s, k: k, takeover: takeover, sess: sess}
	s.clients[k] = c
	return c
}

// Set replaces the client's will by m, published delay after the client
// is lost (0: at once). It returns once the will is in the store.
func (c *Client) Set(m *hub.Message, delay time.Duration) error {
	if m == nil {
		return c.Clear()
	}
	c.svc.mu.Lock()
	defer c.svc.mu.Unlock()
	if c.gone {
		return ErrTakenOver
	}
	sess := c.reopenLocked()
	if delay > 0 {
		// Durable for the delay, so that after a restart the will waits
		// for the client to come back rather than going out at once.
		if err := sess.MakeDurable(delay); err != nil {
			return fmt.Errorf("lastwill: %w", err)
		}
	}
	if err := sess.StoreWill(m, delay); err != nil {
		return fmt.Errorf("lastwill: %w", err)
	}
	c.will, c.delay = m, delay
	return nil
}

// Clear removes the client's will.
func (c *Client) Clear() error {
	c.svc.mu.Lock()
	defer c.svc.mu.Unlock()
	if c.gone {
		return ErrTakenOver
	}
	c.reopenLocked()
	c.will, c.delay = nil, 0
	return nil
}

// reopenLocked replaces the client's session by a fresh one: the hub has
// no call to drop the stored will of an attached session or to change its
// expiry, and ending the session (attached, so its will is not pending)
// deletes its whole store record. svc.mu must be held.
func (c *Client) reopenLocked() *hub.Session {
	sess, _ := c.svc.hub.Open(c.k.tenant, SessionPrefix+c.k.id, true)
	sess.Attach(sink{})
	c.sess = sess
	return sess
}

// Leave ends the attachment: with lost set (the client went away with an
// error, or its connection broke) its will is published after its delay,
// unless the same id attaches again first; otherwise the will is deleted.
func (c *Client) Leave(lost bool) {
	c.svc.mu.Lock()
	defer c.svc.mu.Unlock()
	if c.gone {
		return
	}
	c.gone = true
	delete(c.svc.clients, c.k)
	if !lost || c.will == nil {
		c.sess.Detach(hub.Departure{})
		return
	}
	c.svc.log.Info("client lost: its will is due", "tenant", c.k.tenant, "client", c.k.id,
		"topic", c.will.Topic, "delay", c.delay)
	// The session lives for the delay only: long enough to be resumed.
	c.sess.Detach(hub.Departure{Expiry: c.delay, Will: c.will, WillDelay: c.delay})
}

// Abandon forgets the attachment without deciding about its will: the
// server is shutting down, which is not the client's doing. The stored
// will stays, and after a restart it is published after its delay unless
// the client attaches again first.
func (c *Client) Abandon() {
	c.svc.mu.Lock()
	defer c.svc.mu.Unlock()
	if !c.gone {
		c.gone = true
		delete(c.svc.clients, c.k)
	}
}
