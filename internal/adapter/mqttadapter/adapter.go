// Package mqttadapter connects Ferry's MQTT server library to the hub: it is
// the mqtt.Handler of Ferry's broker. It maps CONNECT to a tenant and a hub
// session, PUBLISH to hub messages, SUBSCRIBE to hub subscriptions, and hub
// deliveries back to PUBLISH packets.
//
// # Caveats
//
// Clients that log in as auth-id@tenant are checked against the device
// registry and live in their tenant; anonymous clients, when allowed, are in
// the configured default tenant. Unacknowledged QoS 1/2 messages of a persistent session are
// redelivered with DUP set on resume, with new packet identifiers; PUBREL
// state is not carried across connections.
package mqttadapter

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ferry-iot/ferry/internal/auth"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/metrics"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
	"github.com/ferry-iot/ferry/mqtt/topic"
)

// Options configures an Adapter.
type Options struct {
	// Tenant is the tenant of unauthenticated clients. If empty,
	// "DEFAULT_TENANT".
	Tenant string
	// Logger; if nil, slog.Default().
	Logger *slog.Logger
	// Now is the clock, for tests. If nil, time.Now.
	Now func() time.Time
	// Metrics counts connections and messages. If nil, nothing is counted.
	Metrics *metrics.Metrics
	// SessionExpiry311 is how long a 3.1.1 session with clean session 0
	// outlives its connection. If zero, forever.
	SessionExpiry311 time.Duration
	// Authenticator checks the credentials of clients that log in with a
	// user name (auth-id@tenant, Hono's form; a bare auth-id is in Tenant).
	// If nil, user names are ignored and every client is in Tenant.
	Authenticator Authenticator
	// JWT, if set, logs in clients whose password is a JSON Web Token and
	// whose client id has Hono's form */<tenant>/*/<auth-id>, against the
	// device's rpk credential (Hono 2.x's JWT logins).
	JWT JWTChecker
	// CertLogin authenticates clients that present a TLS client
	// certificate and no user name. If nil, certificates are not used.
	CertLogin *auth.CertLogin
	// ACL holds the configured access rules; TenantRules, if set, returns a
	// tenant's own rules (read at CONNECT; SetTenantRules replaces them).
	// Without rules, everything is allowed. A client whose tenant's rules
	// cannot be read is refused (Server unavailable): no rules would allow
	// everything.
	ACL         *auth.ACL
	TenantRules func(ctx context.Context, tenant string) ([]auth.Rule, error)
	// RequireAuth refuses clients without a user name or certificate.
	RequireAuth bool
	// Limiter refuses logins from addresses with too many recent failures
	// (MQTT 5: 0x9F Connection rate exceeded). If nil, none are refused.
	Limiter *auth.Limiter
	// AuthConcurrency bounds the credential checks running at once, since a
	// bcrypt check costs tens of milliseconds of CPU. If zero, the number of
	// CPUs.
	AuthConcurrency int
	// ResponseInformation is the prefix of the response topic offered to
	// MQTT 5 clients that request response information; the client id is
	// appended. If empty, "response/".
	ResponseInformation string
	// Hono, if set, turns on Hono's MQTT adapter topics (hono.go):
	// telemetry, event and command topics are Hono's, every other topic
	// plain MQTT.
	Hono *HonoOptions
}

// Authenticator checks device credentials; *registry.Registry is one.
type Authenticator = auth.PasswordChecker

// JWTChecker checks a device's JSON Web Token; *registry.Registry is one.
type JWTChecker interface {
	AuthenticateJWT(ctx context.Context, tenant, authID, token string) (registry.Identity, error)
}

// Adapter is Ferry's MQTT broker logic on top of the hub.
type Adapter struct {
	authSlots chan struct{}
	opts      Options
	hub       *hub.Hub
	tenant    string
	log       *slog.Logger
	now       func() time.Time
	metrics   *metrics.Metrics
	flow      *metrics.Flow // nil without metrics
	conns     registered    // open connections by tenant and device (registered.go)
}

var (
	_ mqtt.Handler             = (*Adapter)(nil)
	_ mqtt.DeliveredHandler    = (*Adapter)(nil)
	_ mqtt.AsyncPublishHandler = (*Adapter)(nil)
	_ mqtt.ReleaseHandler      = (*Adapter)(nil)
	_ mqtt.SessionOpener       = (*Adapter)(nil)
)

// New returns an Adapter routing through h.
func New(h *hub.Hub, opts Options) *Adapter {
	if opts.ResponseInformation == "" {
		opts.ResponseInformation = "response/"
	}
	if opts.AuthConcurrency <= 0 {
		opts.AuthConcurrency = runtime.NumCPU()
	}
	if opts.Hono != nil {
		ho := *opts.Hono
		ho.defaults()
		opts.Hono = &ho
	}
	a := &Adapter{authSlots: make(chan struct{}, opts.AuthConcurrency), opts: opts, hub: h, tenant: opts.Tenant, log: opts.Logger, now: opts.Now, metrics: opts.Metrics}
	if a.metrics != nil {
		a.flow = a.metrics.Flow("mqtt", "publish")
	}
	if a.tenant == "" {
		a.tenant = "DEFAULT_TENANT"
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a
}

// connState is the adapter's state of one connection, kept in Conn.Value.
type connState struct {
	tenant    string
	device    string // authenticated device id; empty for anonymous clients
	user      string // auth-id of the login
	who       auth.Who
	rules     atomic.Pointer[[]auth.Rule] // the tenant's own access rules; SetTenantRules replaces them
	epoch     uint64                      // of the registry changes applied when Connect began (registered.go)
	session   *hub.Session
	will      *hub.Message
	willDelay time.Duration
	// openFailed: the session could not be stored and the client was
	// refused; it ends with the connection.
	openFailed bool

	// sent maps the packets of durable or shared deliveries to what the
	// session needs back: the queue sequence number to acknowledge, the
	// shared subscription to hand an unacknowledged one over to.
	mu   sync.Mutex
	sent map[*packet.Publish]sentInfo

	hono honoState // hono.go
}

type sentInfo struct {
	seq      uint64
	shared   string
	released bool // PUBREC received and recorded
}

func (st *connState) peek(p *packet.Publish) sentInfo {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.sent[p]
}

func (st *connState) setReleased(p *packet.Publish) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if info, ok := st.sent[p]; ok {
		info.released = true
		st.sent[p] = info
	}
}

func (st *connState) remember(p *packet.Publish, info sentInfo) {
	st.mu.Lock()
	if st.sent == nil {
		st.sent = make(map[*packet.Publish]sentInfo)
	}
	st.sent[p] = info
	st.mu.Unlock()
}

func (st *connState) take(p *packet.Publish) sentInfo {
	st.mu.Lock()
	defer st.mu.Unlock()
	info := st.sent[p]
	delete(st.sent, p)
	return info
}

func state(c *mqtt.Conn) *connState {
	st, _ := c.Value().(*connState)
	return st
}

// Connect authenticates the client and accepts it into its tenant.
func (a *Adapter) Connect(c *mqtt.Conn, p *packet.Connect) mqtt.ConnectResult {
	st := &connState{tenant: a.tenant, epoch: a.conns.currentEpoch()}
	if hono.Reserved(c.ClientID()) {
		return a.refuse(packet.ClientIdentifierNotValid) // the id of a northbound group's session
	}
	jwtTenant, jwtAuthID, jwtForm := registry.JWTClientID(c.ClientID())
	switch {
	case a.opts.JWT != nil && p.PasswordFlag && jwtForm && registry.LooksLikeJWT(string(p.Password)):
		id, code := a.authenticateJWT(c, jwtTenant, jwtAuthID, string(p.Password))
		if code != packet.Success {
			return a.refuse(code)
		}
		st.tenant, st.device, st.user = id.TenantID, id.DeviceID, id.AuthID
	case p.UsernameFlag && a.opts.Authenticator != nil:
		id, code := a.authenticate(c, p)
		if code != packet.Success {
			return a.refuse(code)
		}
		st.tenant, st.device, st.user = id.TenantID, id.DeviceID, id.AuthID
	case a.opts.CertLogin != nil && c.TLS() != nil && len(c.TLS().PeerCertificates) > 0:
		id, code := a.authenticateCert(c)
		if code != packet.Success {
			return a.refuse(code)
		}
		st.tenant, st.device, st.user = id.TenantID, id.DeviceID, id.AuthID
	case a.opts.RequireAuth:
		return a.refuse(packet.NotAuthorized) // anonymous clients are refused
	}
	st.who = auth.Who{Tenant: st.tenant, Device: st.device, User: st.user, ClientID: c.ClientID()}
	if a.opts.TenantRules != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rules, err := a.opts.TenantRules(ctx, st.tenant)
		cancel()
		if err != nil {
			a.log.Error("login refused: the tenant's access rules cannot be read", "tenant", st.tenant,
				"client", c.ClientID(), "err", err)
			return a.refuse(packet.ServerUnavailable) // 3.1.1: 0x03
		}
		st.rules.Store(&rules)
	}
	if p.WillFlag {
		if !a.allowed(st, auth.Publish, p.WillTopic) {
			return a.refuse(packet.NotAuthorized)
		}
		if reserved(p.WillTopic) {
			return a.refuse(packet.TopicNameInvalid)
		}
		if !validPayloadFormat(p.WillProperties.PayloadFormat, p.WillPayload) {
			return a.refuse(packet.PayloadFormatInvalid)
		}
		st.will = a.message(p.WillTopic, p.WillPayload, p.WillQoS, p.WillRetain, &p.WillProperties, c.ClientID())
		if a.opts.Hono != nil {
			// Beyond Hono: a will on a Hono topic is sent as that
			// telemetry or event when the device dies.
			tenant, m, isHono, err := a.honoWill(c, st, p)
			switch {
			case isHono && (err != nil || tenant != st.tenant):
				return a.refuse(packet.TopicNameInvalid)
			case isHono:
				st.will = m
			}
		}
		if d := p.WillProperties.WillDelayInterval; d != nil {
			st.willDelay = time.Duration(*d) * time.Second
		}
	}
	c.SetValue(st)
	res := mqtt.ConnectResult{Code: packet.Success, SessionKey: st.tenant + "\x00" + c.ClientID()}
	if ri := p.Properties.RequestResponseInfo; ri != nil && *ri == 1 {
		res.Properties.ResponseInfo = a.opts.ResponseInformation + c.ClientID()
	}
	return res
}

// authenticate checks the CONNECT's credentials, with at most
// AuthConcurrency checks at once: a flood of logins waits (and then gets
// Server Busy) instead of eating every CPU.
func (a *Adapter) authenticate(c *mqtt.Conn, p *packet.Connect) (registry.Identity, packet.ReasonCode) {
	authID, tenant, ok := registry.SplitUsername(p.Username)
	if !ok {
		authID, tenant = p.Username, a.tenant
	}
	ip := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	if !a.opts.Limiter.Allowed(ip) {
		return registry.Identity{}, packet.ConnectionRateExceeded
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // not c.Context(): it would live as long as the connection
	defer cancel()
	select {
	case a.authSlots <- struct{}{}:
	case <-ctx.Done():
		return registry.Identity{}, packet.ServerBusy
	}
	id, err := a.opts.Authenticator.Authenticate(ctx, tenant, authID, string(p.Password))
	<-a.authSlots
	switch {
	case err == nil:
		return id, packet.Success
	case errors.Is(err, registry.ErrDisabled):
		a.log.Info("login refused: disabled", "user", p.Username, "remote", c.RemoteAddr().String(), "err", err)
		return id, packet.NotAuthorized // 3.1.1: 0x05
	case errors.Is(err, registry.ErrBadCredentials):
		a.opts.Limiter.Failed(ip)
		a.log.Info("login refused: bad credentials", "user", p.Username, "remote", c.RemoteAddr().String())
		return id, packet.BadUserNameOrPassword // 3.1.1: 0x04
	default:
		a.log.Error("authentication failed", "user", p.Username, "err", err)
		return id, packet.ServerUnavailable
	}
}

// authenticateJWT logs a client in by the JWT in its password.
func (a *Adapter) authenticateJWT(c *mqtt.Conn, tenant, authID, token string) (registry.Identity, packet.ReasonCode) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := a.opts.JWT.AuthenticateJWT(ctx, tenant, authID, token)
	switch {
	case err == nil:
		return id, packet.Success
	case errors.Is(err, registry.ErrDisabled):
		a.log.Info("JWT login refused: disabled", "client", c.ClientID(), "err", err)
		return id, packet.NotAuthorized
	case errors.Is(err, registry.ErrBadCredentials):
		a.log.Info("JWT login refused", "client", c.ClientID(), "err", err)
		return id, packet.BadUserNameOrPassword
	default:
		a.log.Error("JWT login failed", "client", c.ClientID(), "err", err)
		return id, packet.ServerUnavailable
	}
}

// authenticateCert logs a client in by its TLS client certificate.
func (a *Adapter) authenticateCert(c *mqtt.Conn) (registry.Identity, packet.ReasonCode) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // not c.Context(): it would live as long as the connection
	defer cancel()
	chain := c.TLS().PeerCertificates
	id, err := a.opts.CertLogin.Authenticate(ctx, chain)
	switch {
	case err == nil:
		return id, packet.Success
	case errors.Is(err, registry.ErrDisabled):
		a.log.Info("certificate login refused: disabled", "subject", chain[0].Subject.String(), "err", err)
		return id, packet.NotAuthorized
	case errors.Is(err, registry.ErrBadCredentials):
		a.log.Info("certificate login refused", "subject", chain[0].Subject.String(), "err", err)
		return id, packet.BadUserNameOrPassword
	default:
		a.log.Error("certificate login failed", "err", err)
		return id, packet.ServerUnavailable
	}
}

func (a *Adapter) refuse(code packet.ReasonCode) mqtt.ConnectResult {
	if a.metrics != nil {
		a.metrics.Refused("mqtt", code.String())
	}
	res := mqtt.ConnectResult{Code: code}
	if why := refusalReasons[code]; why != "" {
		res.Properties.ReasonString = why // MQTT 5 clients see it; 3.1.1 has no room
	}
	return res
}

var refusalReasons = map[packet.ReasonCode]string{
	packet.BadUserNameOrPassword:  "unknown auth-id@tenant or wrong password",
	packet.NotAuthorized:          "not authorized: anonymous client, disabled device or tenant, or a will topic the access rules refuse",
	packet.ConnectionRateExceeded: "too many failed logins from this address; try again later",
	packet.ServerBusy:             "too many logins in progress",
	packet.TopicNameInvalid:       "the will topic is reserved",
	packet.PayloadFormatInvalid:   "the will payload is not UTF-8 as its format indicator says",
	packet.ServerUnavailable:      "the device registry cannot be read; try again later",
}

// Open attaches the client's hub session, resuming it unless clean start is
// set. It is OpenSession without the verdict, for the mqtt.Handler
// interface; the library calls OpenSession.
func (a *Adapter) Open(c *mqtt.Conn) bool {
	present, _ := a.OpenSession(c)
	return present
}

// OpenSession attaches the client's hub session, resuming it unless clean
// start is set, and makes it durable when it outlives the connection. When
// the store cannot keep the session or the will, the client is refused
// (0x80 Unspecified error; 3.1.1: Server unavailable) instead of being
// promised a session that a restart would lose.
func (a *Adapter) OpenSession(c *mqtt.Conn) (bool, packet.ReasonCode) {
	st := state(c)
	defer a.opened(c, st) // registered.go
	s, present := a.hub.Open(st.tenant, c.ClientID(), c.CleanStart())
	st.session = s
	if a.metrics != nil {
		a.metrics.Connected(st.tenant, "mqtt")
	}
	s.Attach(sink{c: c, now: a.now, flow: a.flow, st: st})
	if a.opts.Hono != nil && a.opts.Hono.ConnectionEvents && st.device != "" {
		a.connectionEvent(st, "connected")
	}
	if exp := a.sessionExpiry(c); exp > 0 {
		if err := s.MakeDurable(exp); err != nil {
			a.log.Error("connection refused: session not stored", "client", c.ClientID(), "err", err)
			st.openFailed = true
			return false, packet.UnspecifiedError
		}
	}
	if st.will != nil {
		if err := s.StoreWill(st.will, st.willDelay); err != nil {
			a.log.Error("connection refused: will not stored", "client", c.ClientID(), "err", err)
			st.openFailed = true
			return false, packet.UnspecifiedError
		}
	}
	return present, packet.Success
}

// Publish routes an inbound QoS 0 message to the hub (QoS 1 and 2 go
// through PublishAsync).
func (a *Adapter) Publish(c *mqtt.Conn, p *packet.Publish) packet.ReasonCode {
	if u, ok, perr := a.honoTopic(p); ok {
		code := packet.Success
		done := make(chan struct{})
		a.honoPublish(c, state(c), u, perr, p, func(rc packet.ReasonCode) { code = rc; close(done) })
		<-done // QoS 0: the hub routes it synchronously
		return code
	}
	st, m, code := a.inbound(c, p)
	if m == nil {
		return code
	}
	return a.ackCode(c, m, a.hub.Publish(st.tenant, m))
}

// PublishAsync routes an inbound message and reports its acknowledgement
// code once every durable copy is committed.
func (a *Adapter) PublishAsync(c *mqtt.Conn, p *packet.Publish, done func(packet.ReasonCode)) {
	if u, ok, perr := a.honoTopic(p); ok {
		a.honoPublish(c, state(c), u, perr, p, done)
		return
	}
	st, m, code := a.inbound(c, p)
	if m == nil {
		done(code)
		return
	}
	a.hub.PublishAsync(st.tenant, m, func(res hub.Result) { done(a.ackCode(c, m, res)) })
}

// honoTopic reports whether p is on a Hono topic (with Hono on), which, and
// whether that topic is malformed (honoPublish refuses it).
func (a *Adapter) honoTopic(p *packet.Publish) (hono.Upstream, bool, error) {
	if a.opts.Hono == nil {
		return hono.Upstream{}, false, nil
	}
	return hono.ParseUpstream(p.Topic)
}

// inbound checks an inbound PUBLISH and turns it into a hub message; a nil
// message comes with the refusal code.
func (a *Adapter) inbound(c *mqtt.Conn, p *packet.Publish) (*connState, *hub.Message, packet.ReasonCode) {
	st := state(c)
	if reserved(p.Topic) || !a.allowed(st, auth.Publish, p.Topic) {
		return st, nil, packet.NotAuthorized // 3.1.1: acknowledged and dropped
	}
	if !validPayloadFormat(p.Properties.PayloadFormat, p.Payload) {
		return st, nil, packet.PayloadFormatInvalid // [MQTT-3.3.2-4]
	}
	a.flow.In(p.QoS, len(p.Payload))
	return st, a.message(p.Topic, p.Payload, p.QoS, p.Retain, &p.Properties, c.ClientID()), packet.Success
}

// ackCode is the PUBACK/PUBREC code for what became of a message.
func (a *Adapter) ackCode(c *mqtt.Conn, m *hub.Message, res hub.Result) packet.ReasonCode {
	switch {
	case res.Err != nil:
		a.log.Error("publish not stored", "client", c.ClientID(), "topic", m.Topic, "err", res.Err)
		return packet.ImplementationSpecificError
	case res.Lost > 0, res.RetainRefused:
		// Some subscriber's quota was reached (not every copy was
		// taken), or the tenant's retained quota (delivered, not kept).
		return packet.QuotaExceeded
	}
	return packet.Success
}

// Subscribe adds the subscriptions and sends the retained messages they ask
// for.
func (a *Adapter) Subscribe(c *mqtt.Conn, p *packet.Subscribe) []packet.ReasonCode {
	st := state(c)
	codes := make([]packet.ReasonCode, len(p.Subscriptions))
	var id uint32
	if len(p.Properties.SubscriptionIdentifier) > 0 {
		id = p.Properties.SubscriptionIdentifier[0]
	}
	for i, sub := range p.Subscriptions {
		filter := sub.Filter
		if _, inner, shared, _ := topic.ParseShared(filter); shared {
			filter = inner
		}
		if !a.allowed(st, auth.Subscribe, filter) || hono.Reserved(filter) {
			codes[i] = packet.NotAuthorized // 3.1.1: 0x80
			continue
		}
		if a.opts.Hono != nil {
			if f, ok, err := hono.ParseErrorFilter(sub.Filter); ok {
				if err != nil {
					codes[i] = packet.TopicFilterInvalid
				} else {
					codes[i] = a.honoErrorSubscribe(st, f, sub.Filter)
				}
				continue
			}
			if f, ok, err := hono.ParseCommandFilter(sub.Filter); ok {
				if err != nil {
					codes[i] = packet.TopicFilterInvalid
				} else {
					codes[i] = a.honoSubscribe(c, st, f, sub.Filter, sub.QoS)
				}
				continue
			}
		}
		if strings.HasPrefix(sub.Filter, "$share/") && sub.NoLocal {
			// No Local on a shared subscription is a protocol error
			// [MQTT-3.8.3-4]; refuse this subscription only.
			codes[i] = packet.TopicFilterInvalid
			continue
		}
		qos := min(sub.QoS, 2)
		retained, err := st.session.Subscribe(hub.Subscription{
			Filter:            sub.Filter,
			QoS:               qos,
			NoLocal:           sub.NoLocal,
			RetainAsPublished: sub.RetainAsPublished,
			RetainHandling:    sub.RetainHandling,
			ID:                id,
		})
		switch {
		case errors.Is(err, hub.ErrTooManySubscriptions):
			codes[i] = packet.QuotaExceeded // 3.1.1: 0x80
			continue
		case err != nil:
			a.log.Error("subscription refused: not stored", "client", c.ClientID(), "filter", sub.Filter, "err", err)
			codes[i] = packet.UnspecifiedError // 3.1.1: 0x80
			continue
		}
		// Through the session's queue: what the connection cannot take
		// now waits instead of being lost.
		st.session.DeliverRetained(retained)
		codes[i] = packet.ReasonCode(qos) // GrantedQoS0..2
	}
	return codes
}

// Unsubscribe removes subscriptions.
func (a *Adapter) Unsubscribe(c *mqtt.Conn, p *packet.Unsubscribe) []packet.ReasonCode {
	st := state(c)
	codes := make([]packet.ReasonCode, len(p.Filters))
	for i, f := range p.Filters {
		if a.opts.Hono != nil && a.honoUnsubscribe(st, f) {
			continue
		}
		if !st.session.Unsubscribe(f) {
			codes[i] = packet.NoSubscriptionExisted
		}
	}
	return codes
}

// Delivered is called when the client acknowledged an outbound QoS 1/2
// message: the connection has room again for the session's backlog.
func (a *Adapter) Delivered(c *mqtt.Conn, p *packet.Publish) {
	if st := state(c); st != nil && st.session != nil {
		if a.opts.Hono != nil && a.honoDelivered(st, p) {
			return
		}
		if info := st.take(p); info.seq != 0 {
			st.session.Acked(info.seq)
		}
		st.session.Drain()
	}
}

// Released records the PUBREC of a durable QoS 2 delivery before the PUBREL
// goes out, so a restart resumes the exchange instead of repeating it.
func (a *Adapter) Released(c *mqtt.Conn, p *packet.Publish, done func()) {
	st := state(c)
	if st == nil || st.session == nil {
		done()
		return
	}
	info := st.peek(p)
	if info.seq == 0 {
		// Nothing to record, but behind the PUBRECs being recorded.
		st.session.Release(0, nil, func(error) { done() })
		return
	}
	m := a.message(p.Topic, p.Payload, p.QoS, p.Retain, &p.Properties, "")
	// The session records PUBRECs in arrival order and reports them in
	// that order, so the PUBRELs (with which the client completes the
	// messages) keep the order of the PUBLISHes.
	st.session.Release(info.seq, m, func(err error) {
		if err != nil {
			a.log.Error("PUBREC not recorded", "client", c.ClientID(), "err", err)
		} else {
			st.setReleased(p)
		}
		done()
	})
}

// Disconnected detaches the session, keeping it with its unacknowledged
// messages when it is persistent, and publishes the will after an abnormal
// disconnect.
func (a *Adapter) Disconnected(c *mqtt.Conn, err error) {
	st := state(c)
	if st == nil || st.session == nil {
		return
	}
	a.conns.remove(c, st) // registered.go
	if a.opts.Hono != nil {
		a.honoDisconnected(st)
	}
	dep := hub.Departure{Expiry: a.sessionExpiry(c)}
	if st.openFailed {
		dep.Expiry = 0 // the client was told there is no session
	}
	// Unacknowledged messages stay with a persistent session; those of
	// shared subscriptions go to another member in any case.
	for _, p := range c.Unacked() {
		m := a.message(p.Topic, p.Payload, p.QoS, p.Retain, &p.Properties, "")
		info := st.take(p)
		dep.Unacked = append(dep.Unacked, hub.Delivery{Message: m, QoS: p.QoS, Retain: p.Retain,
			SubscriptionIDs: p.Properties.SubscriptionIdentifier, Seq: info.seq, Shared: info.shared, Released: info.released})
	}
	if err != nil && st.will != nil {
		// Not after a normal DISCONNECT [MQTT-3.1.2-8], [MQTT-3.14.4-3].
		dep.Will, dep.WillDelay = st.will, st.willDelay
	}
	st.session.Detach(dep)
	if a.metrics != nil {
		a.metrics.Disconnected(st.tenant, "mqtt")
	}
}

// sessionExpiry is how long the session outlives the connection: the v5
// Session Expiry Interval (as the DISCONNECT may have changed it), or for
// 3.1.1 the configured default when clean session is 0.
func (a *Adapter) sessionExpiry(c *mqtt.Conn) time.Duration {
	if c.Version() == packet.V5 {
		secs := c.SessionExpiry()
		if secs == 0xFFFFFFFF { // [MQTT-3.1.2.11.2]: never expires
			return hub.Forever
		}
		return time.Duration(secs) * time.Second
	}
	if c.CleanStart() {
		return 0
	}
	if a.opts.SessionExpiry311 <= 0 {
		return hub.Forever
	}
	return a.opts.SessionExpiry311
}

// message converts MQTT publish fields into a hub message, copying what
// aliases the connection's read buffer.
func (a *Adapter) message(topic string, payload []byte, qos byte, retain bool, props *packet.Properties, origin string) *hub.Message {
	m := &hub.Message{
		Topic:         topic,
		Payload:       append([]byte(nil), payload...),
		QoS:           qos,
		Retain:        retain,
		ContentType:   props.ContentType,
		ResponseTopic: props.ResponseTopic,
		PayloadFormat: props.PayloadFormat,
		Origin:        origin,
	}
	if props.CorrelationData != nil {
		m.CorrelationData = append([]byte(nil), props.CorrelationData...)
	}
	if props.MessageExpiry != nil {
		m.Expiry = a.now().Add(time.Duration(*props.MessageExpiry) * time.Second)
	}
	for _, u := range props.User {
		m.UserProperties = append(m.UserProperties, hub.UserProperty{Key: u.Key, Value: u.Value})
	}
	return m
}

// allowed applies the access rules to the client.
func (a *Adapter) allowed(st *connState, action auth.Action, t string) bool {
	var rules []auth.Rule
	if p := st.rules.Load(); p != nil {
		rules = *p
	}
	return a.opts.ACL.Allowed(st.who, action, t, rules)
}

// reserved reports whether a topic belongs to the server: clients neither
// publish to $SYS nor leave wills there.
func reserved(topic string) bool {
	return strings.HasPrefix(topic, "$SYS") || hono.Reserved(topic)
}

func validPayloadFormat(indicator *byte, payload []byte) bool {
	return indicator == nil || *indicator != 1 || utf8.Valid(payload)
}

// sink hands hub deliveries to an MQTT connection.
type sink struct {
	c    *mqtt.Conn
	now  func() time.Time
	flow *metrics.Flow
	st   *connState
}

// Evict closes the connection: its client connected again through another
// node of the cluster.
func (s sink) Evict() { s.c.Close(packet.SessionTakenOver) }

func (s sink) Deliver(d hub.Delivery) bool {
	m := d.Message
	if d.QoS == 0 && !d.Retain && len(d.SubscriptionIDs) == 0 && m.Expiry.IsZero() {
		// The same PUBLISH serves every such delivery of m: Send does not
		// modify a QoS 0 packet, and a fan-out builds it once.
		p, ok := m.SharedForm(func() any { return s.publish(d) }).(*packet.Publish)
		if !ok {
			p = s.publish(d) // another front end's form is there
		}
		if s.c.Send(p) != nil {
			return false
		}
		s.flow.Out(0, len(p.Payload))
		return true
	}
	p := s.publish(d)
	if p == nil {
		return true // expired on the way: never delivered, nothing to retry
	}
	track := d.QoS > 0 && (d.Seq != 0 || d.Shared != "")
	if track {
		s.st.remember(p, sentInfo{seq: d.Seq, shared: d.Shared, released: d.Released})
	}
	send := s.c.Send
	if d.Released && d.QoS == 2 && p.PacketID != 0 {
		send = s.c.SendRelease
	}
	if send(p) != nil {
		if track {
			s.st.take(p)
		}
		return false
	}
	s.flow.Out(p.QoS, len(p.Payload))
	return true
}

// publish builds the PUBLISH of a delivery; nil when the message expired
// on the way.
func (s sink) publish(d hub.Delivery) *packet.Publish {
	m := d.Message
	p := &packet.Publish{
		Topic:   m.Topic,
		Payload: m.Payload,
		QoS:     d.QoS,
		Retain:  d.Retain,
		Dup:     d.Dup && d.QoS > 0,
		Properties: packet.Properties{
			ContentType:            m.ContentType,
			ResponseTopic:          m.ResponseTopic,
			CorrelationData:        m.CorrelationData,
			PayloadFormat:          m.PayloadFormat,
			SubscriptionIdentifier: d.SubscriptionIDs,
		},
	}
	if d.Seq != 0 && d.QoS > 0 {
		// The packet id follows the durable queue's numbering: after a
		// restart the same message goes out with the same id, so a QoS 2
		// receiver still holding it does not take it for a new one.
		p.PacketID = hub.PacketID(d.Seq)
	}
	if !m.Expiry.IsZero() {
		// The receiver sees the remaining lifetime [MQTT-3.3.2-6].
		left := m.Expiry.Sub(s.now())
		if left <= 0 {
			return nil
		}
		secs := uint32((left + time.Second - 1) / time.Second)
		p.Properties.MessageExpiry = &secs
	}
	if len(m.UserProperties) > 0 {
		p.Properties.User = make([]packet.UserProperty, len(m.UserProperties))
		for i, u := range m.UserProperties {
			p.Properties.User[i] = packet.UserProperty{Key: u.Key, Value: u.Value}
		}
	}
	return p
}
