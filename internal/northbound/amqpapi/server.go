// Package amqpapi is Hono's northbound AMQP 1.0 API on Ferry's own
// engine: applications receive telemetry and events on telemetry/<tenant>
// and event/<tenant>, send commands on command/<tenant> and receive the
// responses on command_response/<tenant>/<reply-id>.
//
// Receivers of one address form groups by their subscription-name link
// property (no name: the default group). Every group gets every message;
// inside a group, messages go to the members in turn, to whichever has
// credit. A group is one hub session subscribed to the address's hub
// topics: its queue is the group's backlog, bounded as any session's is,
// so a group without credit slows QoS 1 devices (their PUBACK waits) and
// drops QoS 0 telemetry (counted) instead of growing. Event groups are
// durable sessions: an event is in the store before the device's PUBACK,
// stays there until the group's member settled it (accepted or rejected;
// released and modified send it again), and a group nobody receives for
// keeps its events for the retention time.
//
// With Hono's Kafka messaging (Options.Kafka), telemetry and events are
// not in the hub but in the tenant's Kafka topics, and the links are served
// from there, whichever node the devices are connected to: a group is a
// Kafka consumer group shared by all nodes (KafkaGroup), each link one of
// its members. Its members share the topic's partitions, as Kafka
// consumers of one group do, rather than taking turns with each message.
// A new group starts at the end of the topic; a known one resumes at its
// committed offsets, which settlement moves up to the first message not
// settled yet (accepted and rejected are done, released and modified go
// out again; the messages of a presettled link are done once sent). The
// topic is the event log: the groups' backlogs are not bounded by
// EventRetention but by the topic's retention. A record whose ttl passed
// is not sent.
//
// # Last wills for AMQP clients
//
// At address $lwt (LWTAddress) any logged-in application attaches a
// sender link named after its client id (EnMasse's convention: the link
// name is the identity) and sends its will, which Ferry publishes on the
// hub, so that MQTT subscribers of its topic get it, when the client is
// lost:
//
//   - a will message has subject "will" (or none), to = the MQTT topic,
//     the payload as data (or an amqp-value string or binary), and the
//     message annotations x-opt-retain-message (bool), x-opt-mqtt-qos
//     (0-2; without it, durable means 1, else 0) and x-opt-will-delay (the
//     delay in seconds; default 0). It is accepted once stored, rejected
//     (amqp:invalid-field) when malformed;
//   - the latest will replaces the earlier one; subject "will-clear", or a
//     will with neither to nor a body, removes it;
//   - a detach without error and with closed=true, or a connection close
//     without error, deletes the will; a detach or close with an error, a
//     detach that only suspends the link (closed=false), an idle time-out
//     or a lost socket publishes it, after its delay unless a link of the
//     same client id attaches to $lwt first (whose will then counts). A
//     second link of a client id still attached takes over: the first is
//     detached with amqp:link:stolen and has no say any more;
//   - the will is published in the application's tenant: the first of its
//     tenants, or DEFAULT_TENANT for an application of every tenant ("*":
//     admin, anonymous logins);
//   - wills are kept in the data directory (package lastwill: a hub session
//     "$lwt/<client-id>" per client). When Ferry stops, the wills of the
//     clients attached then stay: after the restart each is published
//     after its delay unless its client attaches again first.
//
// # MQTT topics
//
// Any other address (topics.go) is the MQTT topic of that name in the
// application's tenant: receivers subscribe to a topic filter (wildcards
// allowed), retained messages first, each message with to = its topic and
// the annotations x-opt-mqtt-qos and x-opt-retain-message; senders publish
// to a topic, retained when x-opt-retain-message says so. A receiver whose
// source is durable (durability configuration or unsettled-state, expiry
// policy never, or a timeout) is a persistent session named by
// container-id and link name: it keeps QoS 1/2 messages while the client is away, until a detach
// with closed=true ends it. A topic link is a group of its own (groupKey
// topic), so it shares the groups' delivery and redelivery.
package amqpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/clients"
	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/lastwill"
	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
)

// Application is an application user: it logs in with SASL PLAIN and may
// use the addresses of its tenants.
type Application struct {
	Name string
	// PasswordHash is a bcrypt hash of the password.
	PasswordHash string
	// Tenants it may use; "*" for all.
	Tenants []string
}

// Allows reports whether the application may use tenant's addresses.
func (a *Application) Allows(tenant string) bool {
	return slices.Contains(a.Tenants, "*") || slices.Contains(a.Tenants, tenant)
}

// Options configures a Server.
type Options struct {
	Hub      *hub.Hub
	Commands *command.Router
	// Applications may log in with SASL PLAIN.
	Applications []Application
	// AdminPassword, if set, lets user "admin" log in for every tenant.
	AdminPassword string
	// Anonymous accepts SASL ANONYMOUS (or no SASL) logins with access to
	// every tenant: only for authentication off on a loopback listener.
	Anonymous bool
	// EventRetention is how long an event group nobody receives for keeps
	// its events, and the longest an event is kept. Default 24h.
	EventRetention time.Duration
	// Logger; nil: slog.Default().
	Logger *slog.Logger
	// ContainerID of the listener. Default "ferry".
	ContainerID string
	// MaxConnections bounds the application connections; 0: no bound.
	MaxConnections int
	// Bridge, if set, serves the links of addresses under BridgePrefix
	// (the AMQP 1.0 <-> Kafka bridge) for logged-in applications.
	Bridge Bridge
	// Kafka, if set, serves the telemetry and event links from the
	// tenants' Kafka topics (named by KafkaTopics) instead of the hub.
	Kafka       KafkaSource
	KafkaTopics kafkaapi.Topics
	// Wills, if set, serves the last-will address $lwt (LWTAddress).
	Wills *lastwill.Service
	// Metrics, if set, counts the application connections (protocol
	// "amqp-app"), in the tenant their wills and topics are in.
	Metrics clients.Counter
}

// HandleConn implements amqp.ConnHandler: it lists and counts the
// connection, in the tenant of the application's wills and topics, until
// it ends.
func (s *Server) HandleConn(c *amqp.Conn) error {
	app := s.app(c)
	if app == nil {
		return nil
	}
	s.conns.Track(c, clients.Client{Tenant: willTenant(app), ClientID: c.ContainerID(), Protocol: "amqp-app", User: app.Name,
		Version: "1.0", RemoteAddr: c.RemoteAddr().String(), TLS: c.TLSState() != nil, ConnectedAt: time.Now()}, s.opts.Metrics, &s.members)
	return nil
}

// Clients lists the open application connections of tenant (every
// tenant's when empty), for operators.
func (s *Server) Clients(tenant string) []clients.Client { return s.conns.Clients(tenant) }

// Kick closes the connections of the container clientID in tenant, as an
// operator asked (amqp:connection:forced).
func (s *Server) Kick(tenant, clientID string) bool { return s.conns.Kick(tenant, clientID) }

// BridgePrefix starts the addresses a Bridge serves: kafka/<topic>...
const BridgePrefix = "kafka/"

// Bridge serves links of the bridge's addresses. It checks what app may
// reach, and returns an *amqp.Error to refuse the link.
type Bridge interface {
	HandleLink(req *amqp.LinkRequest, app *Application) error
}

// Server serves the northbound API.
type Server struct {
	opts Options
	log  *slog.Logger
	apps map[string]*Application

	mu     sync.Mutex
	groups map[groupKey]*group
	lns    []*amqp.Listener
	// topicLinks numbers the hub sessions of non-durable topic links.
	topicLinks atomic.Uint64
	conns      clients.AMQPConns
	// sessMu orders the opening of a group's hub session after the
	// detach of the previous group of the same name.
	sessMu sync.Mutex
	// members counts the goroutines waiting for a member's link to end;
	// Close waits for them, so that the groups' sessions are detached
	// before the hub closes.
	members sync.WaitGroup
}

// New returns a Server; Serve starts it.
func New(opts Options) *Server {
	if opts.EventRetention <= 0 {
		opts.EventRetention = 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ContainerID == "" {
		opts.ContainerID = "ferry"
	}
	s := &Server{opts: opts, log: opts.Logger, apps: map[string]*Application{}, groups: map[groupKey]*group{}}
	for i := range opts.Applications {
		a := &opts.Applications[i]
		s.apps[a.Name] = a
	}
	if opts.AdminPassword != "" {
		if h, err := bcrypt.GenerateFromPassword([]byte(opts.AdminPassword), bcrypt.MinCost); err == nil {
			s.apps["admin"] = &Application{Name: "admin", PasswordHash: string(h), Tenants: []string{"*"}}
		}
	}
	return s
}

// anonymousApp is the identity of an anonymous login.
const anonymousApp = "\x00anonymous"

// Serve accepts application connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, nil) }

// ServeTLS is Serve with TLS (direct, or the AMQP TLS protocol header).
// Applications log in as on a plain listener; a server may serve both.
func (s *Server) ServeTLS(ln net.Listener, cfg *tls.Config) error { return s.serve(ln, cfg) }

func (s *Server) serve(ln net.Listener, tlsCfg *tls.Config) error {
	mechs := []amqp.Symbol{amqp.SASLPlain}
	if s.opts.Anonymous {
		mechs = append(mechs, amqp.SASLAnonymous)
	}
	l, err := amqp.Listen(ln, &amqp.ListenerOptions{
		Handler:        s,
		ContainerID:    s.opts.ContainerID,
		Authenticate:   s.authenticate,
		SASLMechanisms: mechs,
		Logger:         s.log,
		Credit:         100,
		MaxConnections: s.opts.MaxConnections,
		TLSConfig:      tlsCfg,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.lns = append(s.lns, l)
	s.mu.Unlock()
	return nil
}

// Addr is the address of the first listener served, once Serve ran.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lns) == 0 {
		return nil
	}
	return s.lns[0].Addr()
}

// Close stops the listener and closes every application connection; the
// groups' hub sessions are detached (event groups keep their events).
func (s *Server) Close() error {
	s.mu.Lock()
	lns := s.lns
	s.lns = nil
	s.mu.Unlock()
	if len(lns) == 0 {
		return nil
	}
	var err error
	for _, l := range lns {
		err = errors.Join(err, l.Close())
	}
	s.members.Wait()
	return err
}

var errBadLogin = errors.New("unknown application or wrong password")

func (s *Server) authenticate(_ context.Context, req *amqp.AuthRequest) (string, error) {
	switch req.Mechanism {
	case amqp.SASLAnonymous:
		if !s.opts.Anonymous {
			return "", errBadLogin
		}
		return anonymousApp, nil
	case amqp.SASLPlain:
		a := s.apps[req.Username]
		if a == nil || bcrypt.CompareHashAndPassword([]byte(a.PasswordHash), []byte(req.Password)) != nil {
			s.log.Info("application login refused", "user", req.Username)
			return "", errBadLogin
		}
		return a.Name, nil
	}
	return "", errBadLogin
}

// app is the application of a connection; nil refuses everything.
func (s *Server) app(c *amqp.Conn) *Application {
	id := c.AuthIdentity()
	if id == anonymousApp || (id == "" && s.opts.Anonymous) {
		return &Application{Name: "anonymous", Tenants: []string{"*"}}
	}
	return s.apps[id]
}

// bridged reports whether a link is the bridge's: its address is under
// BridgePrefix, or it is an anonymous sender link (the bridge's relay
// with a "to" per message; Hono's own API has no anonymous links).
func bridged(req *amqp.LinkRequest) bool {
	return strings.HasPrefix(req.Address, BridgePrefix) || (req.Receiver != nil && req.Address == "" && !req.Dynamic)
}

// SubscriptionName is the link property naming a receiver's group.
const SubscriptionName amqp.Symbol = "subscription-name"

// HandleLink implements amqp.Handler.
func (s *Server) HandleLink(req *amqp.LinkRequest) error {
	app := s.app(req.Conn)
	if app == nil {
		return &amqp.Error{Condition: amqp.CondUnauthorizedAccess, Description: "not logged in"}
	}
	if req.Address == LWTAddress {
		return s.handleLWT(req, app)
	}
	if strings.HasPrefix(req.Address, AnalyticsPrefix) {
		return s.handleAnalytics(req, app) // analytics.go
	}
	if s.opts.Bridge != nil && bridged(req) {
		return s.opts.Bridge.HandleLink(req, app)
	}
	nb, ok := hono.ParseNorthbound(req.Address)
	if !ok {
		if req.Dynamic || hono.NorthboundAddress(req.Address) || (req.Address == "" && req.Sender != nil) {
			return &amqp.Error{Condition: amqp.CondNotFound, Description: fmt.Sprintf("no such address %q: use telemetry/<tenant>, event/<tenant>, command/<tenant>, command_response/<tenant>/<reply-id> or an MQTT topic", req.Address)}
		}
		return s.handleTopic(req, app)
	}
	if !app.Allows(nb.Tenant) {
		return &amqp.Error{Condition: amqp.CondUnauthorizedAccess, Description: fmt.Sprintf("application %s may not use tenant %s", app.Name, nb.Tenant)}
	}
	if (nb.Endpoint == hono.Command || nb.Endpoint == hono.CommandResponse) && s.opts.Commands == nil {
		return &amqp.Error{Condition: amqp.CondNotFound, Description: "commands are not routed here"}
	}
	switch {
	case req.Sender != nil && (nb.Endpoint == hono.Telemetry || nb.Endpoint == hono.Event):
		name, _ := req.Attach.Properties[SubscriptionName].(string)
		if s.opts.Kafka != nil {
			return s.joinKafka(nb.Tenant, nb.Endpoint, name, req.Sender)
		}
		return s.join(nb.Tenant, nb.Endpoint, name, req.Sender)
	case req.Sender != nil && nb.Endpoint == hono.CommandResponse:
		// Until the link ends.
		req.Sender.OnDetach(s.opts.Commands.Receive(nb.Tenant, nb.ReplyID, responseSink{snd: req.Sender, s: s}))
		return nil
	case req.Receiver != nil && nb.Endpoint == hono.Command && nb.Device == "":
		go s.serveCommands(nb.Tenant, req.Receiver)
		return nil
	}
	return &amqp.Error{Condition: amqp.CondNotFound, Description: fmt.Sprintf("address %q does not take links in this direction", req.Address)}
}
