// Package gateway serves MQTT clients on an external AMQP 1.0 network, as
// EnMasse's MQTT gateway did (protocols.md 2): it holds no messages itself.
// Each MQTT client gets its own AMQP connection to the network (container
// id = its client id, idle time-out = its keep-alive):
//
//   - a PUBLISH becomes an AMQP message to the topic's address (Addresses)
//     with to = the topic and the annotations x-opt-mqtt-qos and
//     x-opt-retain-message. QoS 0 goes presettled; QoS 1 is acknowledged
//     (PUBACK) only once the network accepted it; QoS 2 goes on a link in
//     receiver-settle-mode second and PUBREC follows the network's outcome.
//     A rejected or released message gets the matching v5 reason code; a
//     3.1.1 client, which has no negative acknowledgement, is disconnected
//     without PUBACK, so it sends the message again;
//   - a subscription becomes a receiver link whose source is the filter's
//     address; messages go out at min(their QoS, the granted QoS) and are
//     settled with the network once the client acknowledged them (QoS 0:
//     once queued), so unacknowledged ones come back from the network;
//   - a will goes to the network's last-will service at $lwt, on a sender
//     link named after the client id: a clean DISCONNECT detaches it
//     without error (the will is dropped), anything else with
//     amqp:link:detach-forced (the will is published by the network, even
//     if the gateway dies). On a network without $lwt the gateway keeps the
//     will in memory and publishes it itself when the client is lost;
//   - when the network connection goes, the client is disconnected; when the
//     network is down, clients are refused (CONNACK 0x88, 3.1.1: 3).
//
// Sessions are not kept (the gateway has nothing to keep them in): CONNACK
// says session present = 0 to every client.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Options configures a Gateway. Network is required.
type Options struct {
	// Network is the AMQP network's URL: amqp://host:port or
	// amqps://host:port, with user:password@ for a SASL PLAIN login.
	Network string
	// Addresses maps MQTT topics to the network's addresses. Default
	// AddressesMQTT.
	Addresses Addresses
	// TLS configures amqps:// connections; nil: the system's roots.
	TLS *tls.Config
	// ForwardCredentials logs each client in to the network with its own
	// MQTT user name and password (SASL PLAIN) when Network names no user;
	// clients without a user name log in with ANONYMOUS.
	ForwardCredentials bool
	// DialTimeout bounds connecting to the network. Default 10 s.
	DialTimeout time.Duration
	// Window bounds the messages from the network on their way to one
	// client and not yet acknowledged by it. Default 100.
	Window int
	// MaxSenders bounds the sender links a client keeps open to the
	// topics it publishes to; the least recently used one is closed
	// beyond it. Default 32.
	MaxSenders int
	// Logger; nil: slog.Default().
	Logger *slog.Logger
}

// Stats are a gateway's counters.
type Stats struct {
	Connections int64 // clients connected now
	Published   int64 // messages the network accepted from clients
	Delivered   int64 // messages handed to clients
	Refused     int64 // messages the network rejected or released
	Dropped     int64 // QoS 0 messages a client's full queue had no room for
	Unroutable  int64 // messages from the network without a usable topic
}

// Gateway is an mqtt.Handler: serve it with an mqtt.Server.
type Gateway struct {
	opts   Options
	log    *slog.Logger
	netURL *url.URL
	// noSecond: the network refused receiver-settle-mode second.
	noSecond atomic.Bool
	counter  struct {
		connections, published, delivered, refused, dropped, unroutable atomic.Int64
	}
}

// New checks opts and returns a Gateway.
func New(opts Options) (*Gateway, error) {
	u, err := url.Parse(opts.Network)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
		return nil, fmt.Errorf("the AMQP network must be an amqp:// or amqps:// URL with a host, not %q", opts.Network)
	}
	switch opts.Addresses {
	case "":
		opts.Addresses = AddressesMQTT
	case AddressesMQTT, AddressesRabbitMQ:
	default:
		return nil, fmt.Errorf("unknown address style %q: use %s or %s", opts.Addresses, AddressesMQTT, AddressesRabbitMQ)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.Window <= 0 {
		opts.Window = 100
	}
	if opts.MaxSenders <= 0 {
		opts.MaxSenders = 32
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Gateway{opts: opts, log: opts.Logger, netURL: u}, nil
}

// Stats returns the gateway's counters.
func (g *Gateway) Stats() Stats {
	c := &g.counter
	return Stats{Connections: c.connections.Load(), Published: c.published.Load(), Delivered: c.delivered.Load(),
		Refused: c.refused.Load(), Dropped: c.dropped.Load(), Unroutable: c.unroutable.Load()}
}

// Connect implements mqtt.Handler: the network decides about logins, when
// the client's connection to it opens (OpenSession).
func (g *Gateway) Connect(c *mqtt.Conn, p *packet.Connect) mqtt.ConnectResult {
	cl := &client{g: g, c: c, keepAlive: time.Duration(p.KeepAlive) * time.Second, user: p.Username, password: string(p.Password)}
	switch {
	case p.Version == packet.V5 && p.Properties.SessionExpiryInterval != nil && *p.Properties.SessionExpiryInterval > 0:
		cl.persistent = true
		if e := *p.Properties.SessionExpiryInterval; e != 0xFFFFFFFF {
			cl.expiry = e
		}
	case p.Version != packet.V5 && !p.CleanStart:
		cl.persistent = true // 3.1.1 sessions do not expire
	}
	if p.WillFlag {
		cl.will = willMessage(p)
		if d := p.WillProperties.WillDelayInterval; d != nil {
			cl.willDelay = time.Duration(*d) * time.Second
		}
	}
	c.SetValue(cl)
	return mqtt.ConnectResult{Code: packet.Success}
}

// Open implements mqtt.Handler; OpenSession does the work.
func (g *Gateway) Open(c *mqtt.Conn) bool {
	present, _ := g.OpenSession(c)
	return present
}

// OpenSession implements mqtt.SessionOpener: it connects the client to the
// network and hands its will to the last-will service.
func (g *Gateway) OpenSession(c *mqtt.Conn) (bool, packet.ReasonCode) {
	cl := c.Value().(*client)
	if code := cl.open(); code != packet.Success {
		return false, code
	}
	g.counter.connections.Add(1)
	return false, packet.Success
}

// Publish implements mqtt.Handler for QoS 0: the message waits for its
// turn in the client's publish queue (a full queue holds up the client).
func (g *Gateway) Publish(c *mqtt.Conn, p *packet.Publish) packet.ReasonCode {
	cl := c.Value().(*client)
	cl.enqueue(pubRequest{msg: toAMQP(p), topic: p.Topic, qos: p.QoS})
	return packet.Success
}

// PublishAsync implements mqtt.AsyncPublishHandler for QoS 1 and 2: done
// gets the network's outcome.
func (g *Gateway) PublishAsync(c *mqtt.Conn, p *packet.Publish, done func(packet.ReasonCode)) {
	cl := c.Value().(*client)
	cl.enqueue(pubRequest{msg: toAMQP(p), topic: p.Topic, qos: p.QoS, done: done})
}

// Subscribe implements mqtt.Handler: a receiver link per filter.
func (g *Gateway) Subscribe(c *mqtt.Conn, p *packet.Subscribe) []packet.ReasonCode {
	cl := c.Value().(*client)
	codes := make([]packet.ReasonCode, len(p.Subscriptions))
	for i, s := range p.Subscriptions {
		codes[i] = cl.subscribe(s)
	}
	return codes
}

// Unsubscribe implements mqtt.Handler: the filter's receiver link is
// closed.
func (g *Gateway) Unsubscribe(c *mqtt.Conn, p *packet.Unsubscribe) []packet.ReasonCode {
	cl := c.Value().(*client)
	codes := make([]packet.ReasonCode, len(p.Filters))
	for i, f := range p.Filters {
		if !cl.unsubscribe(f) {
			codes[i] = packet.NoSubscriptionExisted
		}
	}
	return codes
}

// Delivered implements mqtt.DeliveredHandler: the client acknowledged a
// message, which is now settled with the network.
func (g *Gateway) Delivered(c *mqtt.Conn, p *packet.Publish) {
	if cl, ok := c.Value().(*client); ok {
		cl.delivered(p)
	}
}

// Disconnected implements mqtt.Handler: the client's will is published or
// dropped by the way it left, and its network connection closed.
func (g *Gateway) Disconnected(c *mqtt.Conn, err error) {
	cl, ok := c.Value().(*client)
	if !ok || cl.conn == nil {
		return
	}
	cl.close(err == nil)
	g.counter.connections.Add(-1)
}

// outcomeCode is the PUBACK or PUBREC code for the network's outcome.
func outcomeCode(err error) packet.ReasonCode {
	if err == nil {
		return packet.Success
	}
	var oe *amqp.OutcomeError
	if errors.As(err, &oe) {
		switch st := oe.State.(type) {
		case *amqp.Rejected:
			if st.Error != nil {
				return conditionCode(st.Error.Condition)
			}
			return packet.UnspecifiedError
		case *amqp.Released, *amqp.Modified:
			// The network did not take it now: the v5 code for a
			// limit, and the client may try again.
			return packet.QuotaExceeded
		}
	}
	return packet.UnspecifiedError
}

// conditionCode maps an AMQP error condition to an MQTT v5 reason code.
func conditionCode(c amqp.Symbol) packet.ReasonCode {
	switch c {
	case amqp.CondUnauthorizedAccess:
		return packet.NotAuthorized
	case amqp.CondResourceLimitExceeded:
		return packet.QuotaExceeded
	case amqp.CondInvalidField, amqp.CondNotFound:
		return packet.TopicNameInvalid
	case amqp.CondDecodeError:
		return packet.PayloadFormatInvalid
	case amqp.CondNotImplemented:
		return packet.ImplementationSpecificError
	}
	return packet.UnspecifiedError
}

// dialCode is the CONNACK code for a failed connection to the network.
func dialCode(err error) packet.ReasonCode {
	var ce *amqp.ConnError
	if errors.As(err, &ce) && ce.RemoteErr != nil && ce.RemoteErr.Condition == amqp.CondUnauthorizedAccess {
		return packet.NotAuthorized
	}
	if errors.Is(err, amqp.ErrAuth) {
		return packet.BadUserNameOrPassword
	}
	return packet.ServerUnavailable
}

// closeCtx bounds the goodbyes to the network.
func closeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}
