// Package clients describes the open client connections of Ferry's front
// ends (MQTT, Hono's AMQP device adapter, the northbound AMQP listener) in
// one form, for operators: the web console and `ferry clients`.
package clients

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/amqp"
)

// Client is one open connection. It holds no credential.
type Client struct {
	Tenant string
	// ClientID is the MQTT client id, or the AMQP container id.
	ClientID string
	// Protocol is "mqtt", "amqp" (a device) or "amqp-app" (an
	// application).
	Protocol string
	// Device and User are the registry device and the name it logged in
	// with (an application's name); empty for anonymous clients.
	Device, User string
	// Version is the protocol version: "3.1", "3.1.1", "5.0" or "1.0".
	Version    string
	RemoteAddr string
	TLS        bool
	// CleanStart is MQTT's Clean Start (3.1.1: Clean Session).
	CleanStart bool
	// ConnectedAt is when the connection opened; zero when not known.
	ConnectedAt time.Time
	// Inflight and Queued are the outbound QoS 1/2 messages not yet
	// acknowledged and the packets waiting to be written (MQTT).
	Inflight, Queued int
	// Dropped counts outbound messages the client's Maximum Packet Size
	// refused (MQTT).
	Dropped uint64
}

// Source lists and closes the connections of one front end.
type Source interface {
	// Clients returns the open connections of tenant (every tenant's
	// when tenant is empty).
	Clients(tenant string) []Client
	// Kick closes the connection of clientID in tenant and reports
	// whether there was one.
	Kick(tenant, clientID string) bool
}

// All is the sources of every front end as one.
type All []Source

// Clients returns every source's connections of tenant, sorted by tenant,
// client id and protocol.
func (a All) Clients(tenant string) []Client {
	var out []Client
	for _, s := range a {
		out = append(out, s.Clients(tenant)...)
	}
	Sort(out)
	return out
}

// Kick closes the connections of clientID in tenant in every source.
func (a All) Kick(tenant, clientID string) bool {
	kicked := false
	for _, s := range a {
		kicked = s.Kick(tenant, clientID) || kicked
	}
	return kicked
}

// Sort orders cs by tenant, client id and protocol.
func Sort(cs []Client) {
	slices.SortFunc(cs, func(a, b Client) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.ClientID, b.ClientID), cmp.Compare(a.Protocol, b.Protocol))
	})
}

// AMQPConns is the index of an AMQP listener's open connections. The zero
// value is empty and ready.
type AMQPConns struct {
	mu    sync.Mutex
	conns map[*amqp.Conn]Client
}

// Counter counts open connections by tenant and protocol
// (metrics.Metrics).
type Counter interface {
	Connected(tenant, protocol string)
	Disconnected(tenant, protocol string)
}

// Track lists c as cl, counted by m unless it is nil, until c ends. The
// goroutine that waits for the end is in wg, which its owner waits on at
// close.
func (x *AMQPConns) Track(c *amqp.Conn, cl Client, m Counter, wg *sync.WaitGroup) {
	x.mu.Lock()
	if x.conns == nil {
		x.conns = map[*amqp.Conn]Client{}
	}
	x.conns[c] = cl
	x.mu.Unlock()
	if m != nil {
		m.Connected(cl.Tenant, cl.Protocol)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-c.Done()
		x.mu.Lock()
		delete(x.conns, c)
		x.mu.Unlock()
		if m != nil {
			m.Disconnected(cl.Tenant, cl.Protocol)
		}
	}()
}

// Clients implements Source.
func (x *AMQPConns) Clients(tenant string) []Client {
	x.mu.Lock()
	out := make([]Client, 0, len(x.conns))
	for _, cl := range x.conns {
		if tenant == "" || cl.Tenant == tenant {
			out = append(out, cl)
		}
	}
	x.mu.Unlock()
	Sort(out)
	return out
}

// Kick implements Source: the connections are closed with
// amqp:connection:forced.
func (x *AMQPConns) Kick(tenant, clientID string) bool {
	x.mu.Lock()
	var found []*amqp.Conn
	for c, cl := range x.conns {
		if cl.Tenant == tenant && cl.ClientID == clientID {
			found = append(found, c)
		}
	}
	x.mu.Unlock()
	for _, c := range found {
		_ = c.CloseWithError(&amqp.Error{Condition: amqp.CondConnectionForced, Description: "closed by an operator"})
	}
	return len(found) > 0
}
