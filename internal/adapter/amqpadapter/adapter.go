// Package amqpadapter is Hono's AMQP 1.0 device adapter on Ferry's own
// engine: devices send telemetry and events on a sender link (usually the
// anonymous relay, each message naming its address in to: telemetry,
// event, t/<tenant>/<device>, t//<device> for a gateway...) and receive
// commands on a receiver link from command, command/<tenant>/<device> or
// command//<device>. Responses go back with to = the command's reply-to.
//
// Settlement follows Hono: an unsettled message is accepted once the
// downstream path took it (telemetry at least once, events written to the
// log), rejected for the device's faults (with the condition) and released
// for Ferry's (the device may send again); a presettled telemetry message
// is at most once. Events must be sent unsettled.
package amqpadapter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/adapter/downstream"
	"github.com/ferry-iot/ferry/internal/auth"
	"github.com/ferry-iot/ferry/internal/clients"
	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/registry"
)

// Authenticator checks device credentials; *registry.Registry is one.
type Authenticator = auth.PasswordChecker

// Options configures an Adapter.
type Options struct {
	Downstream *downstream.Downstream
	Commands   *command.Router
	// Authenticator checks SASL PLAIN credentials (auth-id@tenant); nil:
	// no logins, every device unauthenticated.
	Authenticator Authenticator
	// Anonymous offers SASL ANONYMOUS: unauthenticated devices, which
	// name tenant and device in each address.
	Anonymous bool
	// Tenant is the tenant of a bare auth-id. Default DEFAULT_TENANT.
	Tenant  string
	ActsFor func(ctx context.Context, tenant, gateway, device string) (bool, error)
	// MaxConnections bounds the device connections of each listener; 0:
	// none.
	MaxConnections int
	// CertLogin authenticates SASL EXTERNAL logins on a TLS listener by
	// the client's certificate (the tenant's trusted CAs). Nil: EXTERNAL
	// is not offered.
	CertLogin *auth.CertLogin
	Logger    *slog.Logger
	// Metrics, if set, counts the device connections by tenant (protocol
	// "amqp").
	Metrics clients.Counter
}

// Adapter serves AMQP devices.
type Adapter struct {
	opts  Options
	log   *slog.Logger
	mu    sync.Mutex
	lns   []*amqp.Listener
	conns clients.AMQPConns
	// links counts the device links still being served (upstream
	// readers, command links until their OnDetach ran): Close waits for
	// them, so nothing publishes after the hub closes.
	links sync.WaitGroup
}

// New returns an Adapter; Serve starts it.
func New(opts Options) *Adapter {
	if opts.Tenant == "" {
		opts.Tenant = "DEFAULT_TENANT"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Adapter{opts: opts, log: opts.Logger}
}

// Serve accepts device connections on ln until Close.
func (a *Adapter) Serve(ln net.Listener) error { return a.serve(ln, nil) }

// ServeTLS accepts device connections over TLS on ln until Close (direct
// TLS, or the AMQP TLS header), offering SASL EXTERNAL to clients that
// present a certificate when CertLogin is set.
func (a *Adapter) ServeTLS(ln net.Listener, cfg *tls.Config) error { return a.serve(ln, cfg) }

func (a *Adapter) serve(ln net.Listener, tlsCfg *tls.Config) error {
	var mechs []amqp.Symbol
	if tlsCfg != nil && a.opts.CertLogin != nil {
		mechs = append(mechs, amqp.SASLExternal)
	}
	if a.opts.Authenticator != nil || a.opts.Anonymous {
		mechs = append(mechs, amqp.SASLPlain)
	}
	if a.opts.Anonymous {
		mechs = append(mechs, amqp.SASLAnonymous)
	}
	l, err := amqp.Listen(ln, &amqp.ListenerOptions{
		Handler:        a,
		ContainerID:    "ferry-amqp-adapter",
		Authenticate:   a.authenticate,
		SASLMechanisms: mechs,
		Logger:         a.log,
		Credit:         100,
		MaxConnections: a.opts.MaxConnections,
		TLSConfig:      tlsCfg,
		// Devices send on the anonymous relay (Hono's recommendation).
		OfferedCapabilities: []amqp.Symbol{"ANONYMOUS-RELAY"},
	})
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.lns = append(a.lns, l)
	a.mu.Unlock()
	return nil
}

// Close stops the listener and closes the device connections. A second
// Close does nothing.
func (a *Adapter) Close() error {
	a.mu.Lock()
	lns := a.lns
	a.lns = nil
	a.mu.Unlock()
	var err error
	for _, l := range lns {
		err = errors.Join(err, l.Close())
	}
	a.links.Wait()
	return err
}

// identity strings returned by authenticate: "<tenant>\x00<device>", or
// "" for an anonymous device.
func (a *Adapter) authenticate(ctx context.Context, req *amqp.AuthRequest) (string, error) {
	switch req.Mechanism {
	case amqp.SASLExternal:
		if a.opts.CertLogin == nil || req.TLS == nil || len(req.TLS.PeerCertificates) == 0 {
			return "", errors.New("EXTERNAL needs a client certificate")
		}
		id, err := a.opts.CertLogin.Authenticate(ctx, req.TLS.PeerCertificates)
		if err != nil {
			a.log.Info("device certificate login refused", "subject", req.TLS.PeerCertificates[0].Subject.String(), "err", err)
			return "", err
		}
		return id.TenantID + "\x00" + id.DeviceID, nil
	case amqp.SASLAnonymous:
		if !a.opts.Anonymous {
			return "", errors.New("anonymous devices are not accepted")
		}
		return "", nil
	case amqp.SASLPlain:
		if a.opts.Authenticator == nil {
			if a.opts.Anonymous {
				return "", nil // logins are not checked: an unauthenticated device, as on MQTT
			}
			return "", errors.New("no logins here")
		}
		authID, tenant, ok := registry.SplitUsername(req.Username)
		if !ok {
			authID, tenant = req.Username, a.opts.Tenant
		}
		id, err := a.opts.Authenticator.Authenticate(ctx, tenant, authID, req.Password)
		if err != nil {
			a.log.Info("device login refused", "user", req.Username, "err", err)
			return "", err
		}
		return id.TenantID + "\x00" + id.DeviceID, nil
	}
	return "", errors.New("mechanism not offered")
}

// device is who logged in on c: an empty device for an anonymous one.
func device(c *amqp.Conn) (tenant, dev string) {
	t, d, _ := strings.Cut(c.AuthIdentity(), "\x00")
	return t, d
}

func (a *Adapter) target(c *amqp.Conn, tenant, dev string) (string, string, string, *downstream.Error) {
	lt, ld := device(c)
	return downstream.Target(lt, ld, tenant, dev, func(d string) (bool, error) {
		if a.opts.ActsFor == nil {
			return false, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return a.opts.ActsFor(ctx, lt, ld, d)
	})
}

// HandleConn implements amqp.ConnHandler: it lists and counts the
// connection, in its device's tenant (an anonymous device's:
// Options.Tenant), until it ends.
func (a *Adapter) HandleConn(c *amqp.Conn) error {
	tenant, dev := device(c)
	if tenant == "" {
		tenant = a.opts.Tenant
	}
	cl := clients.Client{Tenant: tenant, ClientID: c.ContainerID(), Protocol: "amqp", Device: dev, User: dev,
		Version: "1.0", RemoteAddr: c.RemoteAddr().String(), TLS: c.TLSState() != nil, ConnectedAt: time.Now()}
	a.conns.Track(c, cl, a.opts.Metrics, &a.links)
	return nil
}

// Clients lists the open device connections of tenant (every tenant's
// when empty), for operators.
func (a *Adapter) Clients(tenant string) []clients.Client { return a.conns.Clients(tenant) }

// Kick closes the connections of the container clientID in tenant, as an
// operator asked (amqp:connection:forced).
func (a *Adapter) Kick(tenant, clientID string) bool { return a.conns.Kick(tenant, clientID) }

// HandleLink implements amqp.Handler.
func (a *Adapter) HandleLink(req *amqp.LinkRequest) error {
	switch {
	case req.Receiver != nil:
		a.links.Add(1)
		go func() {
			defer a.links.Done()
			a.serveUpstream(req.Conn, req.Receiver, req.Address)
		}()
		return nil
	case req.Sender != nil:
		return a.serveCommands(req)
	}
	return &amqp.Error{Condition: amqp.CondNotAllowed, Description: "unsupported link"}
}

// condition is the rejection condition for a downstream refusal.
func condition(e *downstream.Error) amqp.Symbol {
	switch e.Status {
	case 401, 403:
		return amqp.CondUnauthorizedAccess
	case 413:
		return amqp.CondResourceLimitExceeded
	}
	return amqp.CondInvalidField
}

// serveUpstream reads a device's messages until its link ends.
// Receive returns once the link ends (after what it buffered), so the
// loop needs no watcher of its own; cancel ends settlements still waiting.
func (a *Adapter) serveUpstream(c *amqp.Conn, rcv *amqp.Receiver, linkAddr string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for {
		d, err := rcv.Receive(ctx)
		if err != nil {
			return
		}
		a.upstream(ctx, c, d, linkAddr)
	}
}

func settle(ctx context.Context, d *amqp.Delivery, e *downstream.Error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	switch {
	case e == nil:
		_ = d.Accept(ctx)
	case e.Status >= 500:
		_ = d.Release(ctx) // Ferry's trouble: the device may send again
	default:
		_ = d.Reject(ctx, &amqp.Error{Condition: condition(e), Description: e.Msg})
	}
}

// upstream handles one message: telemetry, an event or a command
// response.
func (a *Adapter) upstream(ctx context.Context, c *amqp.Conn, d *amqp.Delivery, linkAddr string) {
	m := &d.Message
	addr := linkAddr
	if m.Properties != nil && m.Properties.To != "" {
		addr = m.Properties.To
	}
	refuse := func(e *downstream.Error) {
		if d.Settled {
			a.log.Debug("presettled device message dropped", "address", addr, "why", e.Msg)
			return
		}
		settle(ctx, d, e)
	}
	payload, derr := body(m)
	if derr != nil {
		refuse(derr)
		return
	}
	if rb, ok := hono.ParseNorthbound(addr); ok && rb.Endpoint == hono.CommandResponse {
		if e := a.response(c, rb, m, payload); e != nil {
			refuse(e)
		} else if !d.Settled {
			settle(ctx, d, nil)
		}
		return
	}
	u, ok, err := hono.ParseUpstream(addr)
	if !ok || err != nil || u.Endpoint == hono.CommandResponse {
		refuse(downstream.Errorf(400, "address %q is not telemetry, event or a command response", addr))
		return
	}
	tenant, dev, gateway, derr := a.target(c, u.Tenant, u.Device)
	if derr != nil {
		refuse(derr)
		return
	}
	qos := byte(1)
	if d.Settled {
		qos = 0
		if u.Endpoint == hono.Event {
			a.log.Debug("presettled event dropped: events must be sent unsettled", "tenant", tenant, "device", dev)
			return
		}
	}
	dm := &downstream.Message{Endpoint: u.Endpoint, Tenant: tenant, Device: dev, Gateway: gateway,
		Adapter: hono.AdapterAMQP, Address: addr, QoS: qos, Payload: payload}
	if m.Properties != nil {
		dm.ContentType = string(m.Properties.ContentType)
	}
	if m.Header != nil && m.Header.TTL > 0 && u.Endpoint == hono.Event {
		dm.TTL = m.Header.TTL
	}
	hm, derr := a.opts.Downstream.Build(dm)
	if derr != nil {
		refuse(derr)
		return
	}
	a.opts.Downstream.Publish(tenant, hm, func(e *downstream.Error) {
		if !d.Settled {
			settle(ctx, d, e)
		}
	})
}

// body is the payload of a message: one Data section, or an amqp-value
// holding a string or binary (Hono's rule).
func body(m *amqp.Message) ([]byte, *downstream.Error) {
	switch {
	case len(m.Data) == 1:
		return m.Data[0], nil
	case len(m.Data) > 1:
		return nil, downstream.Errorf(400, "the body must be one data section")
	case m.Value != nil:
		switch v := m.Value.(type) {
		case string:
			return []byte(v), nil
		case []byte:
			return v, nil
		}
		return nil, downstream.Errorf(400, "an amqp-value body must be a string or binary")
	case m.Sequence != nil:
		return nil, downstream.Errorf(400, "the body must be one data section")
	}
	return nil, nil
}

// response forwards a command response: to = command_response/<tenant>/<req-id>
// as the command's reply-to said, status in the application properties.
func (a *Adapter) response(c *amqp.Conn, rb hono.Northbound, m *amqp.Message, payload []byte) *downstream.Error {
	tenant, dev, _, derr := a.target(c, rb.Tenant, deviceOf(m))
	if derr != nil {
		return derr
	}
	status, ok := intProp(m.ApplicationProperties["status"])
	if !ok || status < 200 || status > 599 {
		return downstream.Errorf(400, "a command response needs an application property status (an HTTP status code)")
	}
	id, err := hono.DecodeReqID(rb.ReplyID, dev)
	if err != nil {
		return downstream.Errorf(400, "the response's to is not a reply-to of a command")
	}
	resp := &command.Response{Messaging: id.Messaging, Tenant: tenant, Device: dev, CorrelationID: id.CorrelationID, ReplyID: id.ReplyID, Status: status, Payload: payload}
	if m.Properties != nil {
		resp.ContentType = string(m.Properties.ContentType)
	}
	if a.opts.Commands == nil {
		return downstream.Errorf(503, "commands are not routed here")
	}
	if err := a.opts.Commands.Respond(resp); err != nil {
		return downstream.Errorf(503, "%v", err)
	}
	return nil
}

// deviceOf is the device_id application property a gateway sets on a
// response for one of its devices; "" for the device itself.
func deviceOf(m *amqp.Message) string {
	s, _ := m.ApplicationProperties[hono.PropDeviceID].(string)
	return s
}

func intProp(v any) (int, bool) {
	switch n := v.(type) {
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case int:
		return n, true
	case uint32:
		return int(n), true
	case string:
		i, err := strconv.Atoi(n)
		return i, err == nil
	}
	return 0, false
}

// serveCommands attaches a device's command receiver: source command (the
// device itself, or a gateway for all its devices), command/<tenant>/<device>
// or command//<device>.
func (a *Adapter) serveCommands(req *amqp.LinkRequest) error {
	lt, ld := device(req.Conn)
	var tenant, dev, gateway string
	all := false
	switch {
	case req.Address == "command":
		if ld == "" {
			return &amqp.Error{Condition: amqp.CondUnauthorizedAccess, Description: "an unauthenticated device receives on command/<tenant>/<device>"}
		}
		tenant, dev, all = lt, ld, true
	case strings.HasPrefix(req.Address, "command/"):
		rest := strings.Split(strings.TrimPrefix(req.Address, "command/"), "/")
		if len(rest) != 2 || rest[1] == "" {
			return &amqp.Error{Condition: amqp.CondNotFound, Description: "use command, command/<tenant>/<device> or command//<device>"}
		}
		var derr *downstream.Error
		tenant, dev, gateway, derr = a.target(req.Conn, rest[0], rest[1])
		if derr != nil {
			return &amqp.Error{Condition: condition(derr), Description: derr.Msg}
		}
	default:
		return &amqp.Error{Condition: amqp.CondNotFound, Description: fmt.Sprintf("no such source %q: devices receive commands from command", req.Address)}
	}
	if a.opts.Commands == nil {
		return &amqp.Error{Condition: amqp.CondNotFound, Description: "commands are not routed here"}
	}
	cons := &consumer{snd: req.Sender, toGateway: gateway != "" || all, self: ld}
	var cancels []func()
	if all {
		// The device's own commands, and a gateway's for every device it
		// acts for.
		cancels = append(cancels, a.opts.Commands.Subscribe(tenant, dev, "", cons), a.opts.Commands.SubscribeAll(tenant, dev, cons))
	} else {
		cancels = append(cancels, a.opts.Commands.Subscribe(tenant, dev, gateway, cons))
	}
	// The device is ready for commands once its receiver granted credit,
	// not at attach: a command sent on the notification before the credit
	// came would only be released (TrySend, below).
	var (
		mu    sync.Mutex
		ready bool // the notification went out
		gone  bool // the link ended
	)
	a.links.Add(2)
	go func() {
		defer a.links.Done()
		select {
		case <-req.Sender.CreditAvailable():
		case <-req.Sender.Done():
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !gone {
			ready = true
			a.opts.Downstream.Notify(tenant, dev, hono.AdapterAMQP, hono.TTDUntilFurtherNotice)
		}
	}()
	req.Sender.OnDetach(func() {
		defer a.links.Done()
		for _, c := range cancels {
			c()
		}
		mu.Lock()
		defer mu.Unlock()
		gone = true
		if ready {
			a.opts.Downstream.Notify(tenant, dev, hono.AdapterAMQP, hono.TTDGone)
		}
	})
	return nil
}

// consumer delivers commands on a device's receiver link.
type consumer struct {
	snd       *amqp.Sender
	toGateway bool
	self      string
}

func (c *consumer) Deliver(cmd *command.Command, done func(command.Outcome)) {
	m := &amqp.Message{
		Properties: &amqp.Properties{Subject: cmd.Name, ContentType: amqp.Symbol(cmd.ContentType)},
		Data:       [][]byte{cmd.Payload},
	}
	if !cmd.OneWay() {
		id, err := hono.EncodeReqID(cmd.CorrelationID, cmd.ReplyID, cmd.Device, cmd.Messaging)
		if err != nil {
			done(command.Rejected)
			return
		}
		m.Properties.CorrelationID = cmd.CorrelationID
		m.Properties.ReplyTo = "command_response/" + cmd.Tenant + "/" + id
	}
	if c.toGateway && cmd.Device != c.self {
		m.ApplicationProperties = map[string]any{hono.PropDeviceID: cmd.Device}
	}
	ok, err := c.snd.TrySend(m, nil, func(err error) {
		var oe *amqp.OutcomeError
		switch {
		case err == nil:
			done(command.Accepted)
		case errors.As(err, &oe):
			if _, rejected := oe.State.(*amqp.Rejected); rejected {
				done(command.Rejected)
				return
			}
			done(command.Released)
		default:
			done(command.Released)
		}
	})
	if err != nil || !ok {
		done(command.Released) // no credit: Hono releases too
	}
}
