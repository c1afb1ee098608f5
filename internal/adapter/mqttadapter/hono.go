package mqttadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// HonoOptions turns on Hono's MQTT adapter topics (telemetry, event,
// command) next to plain MQTT.
type HonoOptions struct {
	// Commands routes commands to the connections subscribed for them.
	// Required.
	Commands *command.Router
	// ActsFor reports whether gateway may act for device (the device's
	// via and viaGroups). Nil: no gateways.
	ActsFor func(ctx context.Context, tenant, gateway, device string) (bool, error)
	// OpenEvents makes sure a tenant's events are kept before its first
	// event is published (the default event group). Nil: none.
	OpenEvents func(tenant string) error
	// EventRetention caps an event's ttl (hono-ttl). Default 24h.
	EventRetention time.Duration
	// MaxPayloadSize bounds a telemetry or event payload, bytes (Hono's
	// maxPayloadSize). Default 2048; negative: no bound.
	MaxPayloadSize int
	// CommandAckTimeout is how long a device has to acknowledge a QoS 1
	// command before it counts as released (Hono's
	// sendMessageToDeviceTimeout). Default 1s.
	CommandAckTimeout time.Duration
	// ConnectionEvents sends Hono connection events
	// (connected/disconnected) of authenticated devices as events.
	ConnectionEvents bool
	// Tenant reads a tenant's own Hono settings (its registry record);
	// they are kept until ForgetHonoTenant. Nil: none.
	Tenant func(ctx context.Context, tenant string) (HonoTenant, error)
}

// HonoTenant is what a tenant's registry record says about Hono traffic;
// zero fields leave the adapter's defaults.
type HonoTenant struct {
	// MaxPayloadSize overrides HonoOptions.MaxPayloadSize (the tenant's
	// hono-mqtt adapter entry, ext max-payload-size).
	MaxPayloadSize int
	// ContentType and TTL are the tenant's defaults for messages that
	// name none (Hono's tenant defaults content-type and ttl).
	ContentType string
	TTL         time.Duration
	// MaxTTL caps an event's ttl (resource-limits max-ttl).
	MaxTTL time.Duration
}

// honoTenant returns tenant's settings, reading them once.
func (a *Adapter) honoTenant(tenant string) HonoTenant {
	if v, ok := a.honoTenants.Load(tenant); ok {
		return v.(HonoTenant)
	}
	if a.opts.Hono.Tenant == nil {
		return HonoTenant{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t, err := a.opts.Hono.Tenant(ctx, tenant)
	if err != nil {
		// Not kept: the next message tries again.
		a.log.Warn("tenant's Hono settings not read: using the defaults", "tenant", tenant, "err", err)
		return HonoTenant{}
	}
	a.honoTenants.Store(tenant, t)
	return t
}

// ForgetHonoTenant drops what is known of a tenant's Hono settings, after
// a change of its registry record.
func (a *Adapter) ForgetHonoTenant(tenant string) { a.honoTenants.Delete(tenant) }

func (o *HonoOptions) defaults() {
	if o.EventRetention <= 0 {
		o.EventRetention = 24 * time.Hour
	}
	if o.MaxPayloadSize == 0 {
		o.MaxPayloadSize = 2048
	}
	if o.CommandAckTimeout <= 0 {
		o.CommandAckTimeout = time.Second
	}
}

// honoState is a connection's Hono state.
type honoState struct {
	mu       sync.Mutex
	commands map[string]*commandSub // by filter
	pending  map[*packet.Publish]*pendingCommand
	actsFor  map[string]bool // gateway authority already checked, by device
	errors   *hono.ErrorFilter
	errorSub string // the filter as subscribed
}

type commandSub struct {
	filter hono.CommandFilter
	qos    byte
	device string // the device the notification is about; "" for "+"
	cancel func()
}

type pendingCommand struct {
	done  func(command.Outcome)
	timer *time.Timer
	once  sync.Once
}

func (p *pendingCommand) finish(o command.Outcome) {
	p.once.Do(func() {
		if p.timer != nil {
			p.timer.Stop()
		}
		p.done(o)
	})
}

// honoError is a refused Hono publish: the HTTP-like status Hono reports
// and the MQTT 5 reason code (one PUBACK and PUBREC may carry). With
// disconnect set, the connection is closed in any case, with code in an
// MQTT 5 DISCONNECT: a QoS the topic does not take (0x9B) has no
// acknowledgement to carry it.
type honoError struct {
	status     int
	code       packet.ReasonCode
	msg        string
	disconnect bool
}

func (e *honoError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

func badRequest(msg string) *honoError {
	return &honoError{400, packet.TopicNameInvalid, msg, false}
}

// honoTarget resolves the tenant and device a Hono topic is for, checking
// gateway authority.
func (a *Adapter) honoTarget(st *connState, tenant, device string) (string, string, string, *honoError) {
	if st.device == "" {
		// Unauthenticated: the topic names both.
		if tenant == "" || device == "" {
			return "", "", "", &honoError{401, packet.NotAuthorized, "an unauthenticated device must name tenant and device in the topic", false}
		}
		return tenant, device, "", nil
	}
	if tenant != "" && tenant != st.tenant {
		return "", "", "", &honoError{403, packet.NotAuthorized, "the topic names another tenant", false}
	}
	if device == "" || device == st.device {
		return st.tenant, st.device, "", nil
	}
	if !a.actsFor(st, device) {
		return "", "", "", &honoError{403, packet.NotAuthorized, "gateway " + st.device + " may not act for device " + device, false}
	}
	return st.tenant, device, st.device, nil
}

func (a *Adapter) actsFor(st *connState, device string) bool {
	h := &st.hono
	h.mu.Lock()
	ok, known := h.actsFor[device]
	h.mu.Unlock()
	if known {
		return ok
	}
	if a.opts.Hono == nil || a.opts.Hono.ActsFor == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ok, err := a.opts.Hono.ActsFor(ctx, st.tenant, st.device, device)
	if err != nil {
		a.log.Warn("gateway authority not checked", "tenant", st.tenant, "gateway", st.device, "device", device, "err", err)
		return false
	}
	h.mu.Lock()
	if h.actsFor == nil {
		h.actsFor = map[string]bool{}
	}
	if len(h.actsFor) < 10000 {
		h.actsFor[device] = ok
	}
	h.mu.Unlock()
	return ok
}

// honoMessage turns a telemetry or event publish into the hub message the
// northbound API delivers.
func (a *Adapter) honoMessage(c *mqtt.Conn, st *connState, u hono.Upstream, p *packet.Publish) (tenant string, m *hub.Message, herr *honoError) {
	ho := a.opts.Hono
	tenant, device, gateway, herr := a.honoTarget(st, u.Tenant, u.Device)
	if herr != nil {
		return "", nil, herr
	}
	ts := a.honoTenant(tenant)
	limit := ho.MaxPayloadSize
	if ts.MaxPayloadSize > 0 {
		limit = ts.MaxPayloadSize
	}
	switch {
	case p.QoS == 2:
		return "", nil, &honoError{400, packet.QoSNotSupported, "QoS 2 is not supported on Hono topics", true}
	case u.Endpoint == hono.Event && p.QoS != 1:
		return "", nil, &honoError{400, packet.QoSNotSupported, "events must be published with QoS 1", true}
	case limit > 0 && len(p.Payload) > limit:
		return "", nil, &honoError{413, packet.QuotaExceeded, fmt.Sprintf("payload of %d bytes exceeds the limit of %d", len(p.Payload), limit), false}
	}
	ct := u.Bag.Get("content-type")
	if ct == "" {
		ct = p.Properties.ContentType
	}
	if ct == "" && len(p.Payload) > 0 {
		ct = ts.ContentType
	}
	if len(p.Payload) == 0 && ct == "" {
		return "", nil, badRequest("an empty payload needs a content type")
	}
	if ct == "" {
		ct = hono.ContentTypeOctetStream
	}
	now := a.now()
	m = &hub.Message{
		Topic:       hono.HubTopic(u.Endpoint, device),
		Payload:     append([]byte(nil), p.Payload...),
		QoS:         p.QoS,
		ContentType: ct,
		Created:     now,
		Origin:      c.ClientID(),
		Properties: []hub.Property{
			{Key: hono.PropDeviceID, Value: device},
			{Key: hono.PropOrigAdapter, Value: hono.AdapterMQTT},
			{Key: hono.PropOrigAddress, Value: p.Topic},
			{Key: hono.PropQoS, Value: int64(p.QoS)},
		},
	}
	if p.Retain {
		m.Properties = append(m.Properties, hub.Property{Key: hono.AnnotationRetain, Value: true})
	}
	for _, up := range p.Properties.User {
		m.UserProperties = append(m.UserProperties, hub.UserProperty{Key: up.Key, Value: up.Value})
	}
	if u.Endpoint == hono.Event {
		// The device's hono-ttl, else the tenant's default; capped by
		// the tenant's max-ttl and the retention.
		ttl := ho.EventRetention
		if s := u.Bag.Get("hono-ttl"); s != "" {
			secs, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return "", nil, badRequest("hono-ttl must be a number of seconds")
			}
			ttl = min(ttl, time.Duration(secs)*time.Second)
		} else if ts.TTL > 0 {
			ttl = min(ttl, ts.TTL)
		}
		if exp := p.Properties.MessageExpiry; exp != nil {
			ttl = min(ttl, time.Duration(*exp)*time.Second)
		}
		if ts.MaxTTL > 0 {
			ttl = min(ttl, ts.MaxTTL)
		}
		m.Expiry = now.Add(ttl)
		if ho.OpenEvents != nil {
			if err := a.openEvents(tenant); err != nil {
				a.log.Error("event refused: the tenant's event log cannot be opened", "tenant", tenant, "err", err)
				return "", nil, &honoError{503, packet.UnspecifiedError, "the event log is unavailable", false}
			}
		}
	}
	if gateway != "" {
		ho.Commands.SetLastGateway(tenant, device, gateway)
	}
	return tenant, m, nil
}

// openEvents opens a tenant's default event group once per process.
func (a *Adapter) openEvents(tenant string) error {
	if _, ok := a.eventTenants.Load(tenant); ok {
		return nil
	}
	if err := a.opts.Hono.OpenEvents(tenant); err != nil {
		return err
	}
	a.eventTenants.Store(tenant, true)
	return nil
}

// honoPublish handles a publish on a Hono topic; done gets the PUBACK
// code. A refused publish closes a 3.1.1 connection, as Hono does without
// an error subscription: 3.1.1 has no other way to say it.
func (a *Adapter) honoPublish(c *mqtt.Conn, st *connState, u hono.Upstream, p *packet.Publish, done func(packet.ReasonCode)) {
	if u.Endpoint == 0 {
		u.Endpoint = hono.Telemetry // for the error's sake
		e := badRequest("malformed Hono topic " + p.Topic)
		a.log.Debug("Hono publish refused", "client", c.ClientID(), "topic", p.Topic, "why", e.msg)
		if c.Version() != packet.V5 {
			c.CloseWithReason(e.code, e.msg)
		}
		done(e.code)
		return
	}
	fail := func(e *honoError) {
		a.log.Debug("Hono publish refused", "client", c.ClientID(), "topic", p.Topic, "status", e.status, "why", e.msg)
		onError := u.Bag.Get("on-error")
		// With an error subscription the device reads the error there
		// and stays connected (Hono's default then); without one,
		// 3.1.1 has no way to hear it but the connection's end.
		reported := onError != "disconnect" && a.reportError(c, st, u, p, e)
		switch {
		case e.disconnect || onError == "disconnect" || (!reported && onError != "ignore" && c.Version() != packet.V5):
			c.CloseWithReason(e.code, e.msg)
			done(e.code)
		case onError == "ignore" || (reported && c.Version() != packet.V5):
			done(packet.Success)
		default:
			done(e.code)
		}
	}
	if u.Endpoint == hono.CommandResponse {
		if herr := a.honoResponse(st, u, p); herr != nil {
			fail(herr)
			return
		}
		done(packet.Success)
		return
	}
	tenant, m, herr := a.honoMessage(c, st, u, p)
	if herr != nil {
		fail(herr)
		return
	}
	a.flow.In(p.QoS, len(p.Payload))
	a.hub.PublishAsync(tenant, m, func(res hub.Result) {
		switch {
		case res.Err != nil:
			a.log.Error("event not stored", "client", c.ClientID(), "err", res.Err)
			fail(&honoError{503, packet.ImplementationSpecificError, "the event could not be stored", false})
		case res.Lost > 0:
			fail(&honoError{503, packet.QuotaExceeded, "the event log or a consumer's queue is full", false})
		case res.Matched == 0 && p.QoS > 0:
			// No application receives: telemetry QoS 1 is refused as
			// in Hono (503); QoS 0 is dropped, counted by the hub.
			fail(&honoError{503, packet.UnspecifiedError, "no application receives " + u.Endpoint.String() + " of tenant " + tenant, false})
		default:
			done(packet.Success)
		}
	})
}

// reportError publishes e on the connection's error topic, if it
// subscribed to one, and reports whether it did.
func (a *Adapter) reportError(c *mqtt.Conn, st *connState, u hono.Upstream, p *packet.Publish, e *honoError) bool {
	h := &st.hono
	h.mu.Lock()
	f := h.errors
	h.mu.Unlock()
	if f == nil {
		return false
	}
	corr := u.Bag.Get("correlation-id")
	if corr == "" {
		corr = "-1"
		if p.QoS > 0 {
			corr = strconv.Itoa(int(p.PacketID))
		}
	}
	device := u.Device
	if device == "" {
		device = st.device
	}
	body, _ := json.Marshal(map[string]any{"code": e.status, "message": e.msg,
		"timestamp": a.now().UTC().Format(time.RFC3339Nano), "correlation-id": corr})
	ep := hono.ErrorEndpoint(p.Topic)
	return c.Send(&packet.Publish{Topic: f.ErrorTopic(device, ep, corr, e.status), Payload: body}) == nil
}

// honoErrorSubscribe records a subscription to the error topic; it returns
// the SUBACK code.
func (a *Adapter) honoErrorSubscribe(st *connState, f hono.ErrorFilter, filter string) packet.ReasonCode {
	if f.Tenant != "" && st.device != "" && f.Tenant != st.tenant {
		return packet.NotAuthorized
	}
	h := &st.hono
	h.mu.Lock()
	h.errors, h.errorSub = &f, filter
	h.mu.Unlock()
	return packet.GrantedQoS0 // errors go out at QoS 0, as in Hono
}

// honoResponse forwards a command response to the application.
func (a *Adapter) honoResponse(st *connState, u hono.Upstream, p *packet.Publish) *honoError {
	tenant, device, _, herr := a.honoTarget(st, u.Tenant, u.Device)
	if herr != nil {
		return herr
	}
	status, err := strconv.Atoi(u.Status)
	if err != nil || status < 200 || status > 599 {
		return badRequest("the status of a command response must be an HTTP status code")
	}
	id, err := hono.DecodeReqID(u.ReqID, device)
	if err != nil {
		return badRequest("malformed request id")
	}
	resp := &command.Response{Tenant: tenant, Device: device, CorrelationID: id.CorrelationID, ReplyID: id.ReplyID,
		Status: status, ContentType: p.Properties.ContentType, Payload: append([]byte(nil), p.Payload...)}
	if err := a.opts.Hono.Commands.Respond(resp); err != nil {
		return &honoError{503, packet.UnspecifiedError, err.Error(), false}
	}
	return nil
}

// honoSubscribe handles a subscription on command/ or c/; it returns the
// SUBACK code.
func (a *Adapter) honoSubscribe(c *mqtt.Conn, st *connState, f hono.CommandFilter, filter string, qos byte) packet.ReasonCode {
	ho := a.opts.Hono
	h := &st.hono
	var cancel func()
	var device string
	cons := &commandConsumer{a: a, c: c, st: st, filter: f, qos: min(qos, 1)}
	switch {
	case f.Device == "+":
		if st.device == "" {
			return packet.NotAuthorized
		}
		if f.Tenant != "" && f.Tenant != st.tenant {
			return packet.NotAuthorized
		}
		// "+" covers the gateway's own commands too (their topic has an
		// empty device segment), as in Hono.
		cancelAll := ho.Commands.SubscribeAll(st.tenant, st.device, cons)
		cancelOwn := ho.Commands.Subscribe(st.tenant, st.device, "", cons)
		cancel = func() { cancelAll(); cancelOwn() }
		device = st.device
	default:
		tenant, dev, gateway, herr := a.honoTarget(st, f.Tenant, f.Device)
		if herr != nil {
			return packet.NotAuthorized
		}
		cons.tenant = tenant
		cancel = ho.Commands.Subscribe(tenant, dev, gateway, cons)
		device = dev
	}
	if cons.tenant == "" {
		cons.tenant = st.tenant
	}
	h.mu.Lock()
	if h.commands == nil {
		h.commands = map[string]*commandSub{}
	}
	if old := h.commands[filter]; old != nil {
		old.cancel()
	}
	h.commands[filter] = &commandSub{filter: f, qos: cons.qos, device: device, cancel: cancel}
	h.mu.Unlock()
	a.notify(cons.tenant, device, hono.TTDUntilFurtherNotice)
	return packet.ReasonCode(cons.qos)
}

// honoUnsubscribe ends a command subscription; false when filter is none.
func (a *Adapter) honoUnsubscribe(st *connState, filter string) bool {
	h := &st.hono
	h.mu.Lock()
	if h.errors != nil && h.errorSub == filter {
		h.errors, h.errorSub = nil, ""
		h.mu.Unlock()
		return true
	}
	sub := h.commands[filter]
	delete(h.commands, filter)
	h.mu.Unlock()
	if sub == nil {
		return false
	}
	sub.cancel()
	tenant := sub.filter.Tenant
	if tenant == "" {
		tenant = st.tenant
	}
	a.notify(tenant, sub.device, hono.TTDGone)
	return true
}

// honoDisconnected ends the connection's command subscriptions and
// releases the commands it did not acknowledge.
func (a *Adapter) honoDisconnected(st *connState) {
	h := &st.hono
	h.mu.Lock()
	subs := h.commands
	h.commands = nil
	pending := h.pending
	h.pending = nil
	h.mu.Unlock()
	for filter := range subs {
		sub := subs[filter]
		sub.cancel()
		tenant := sub.filter.Tenant
		if tenant == "" {
			tenant = st.tenant
		}
		a.notify(tenant, sub.device, hono.TTDGone)
	}
	for _, pc := range pending {
		pc.finish(command.Released)
	}
	if a.opts.Hono.ConnectionEvents && st.device != "" {
		a.connectionEvent(st, "disconnected")
	}
}

// honoDelivered completes a QoS 1 command the device acknowledged; it
// reports whether p was one.
func (a *Adapter) honoDelivered(st *connState, p *packet.Publish) bool {
	h := &st.hono
	h.mu.Lock()
	pc := h.pending[p]
	delete(h.pending, p)
	h.mu.Unlock()
	if pc == nil {
		return false
	}
	pc.finish(command.Accepted)
	return true
}

// notify publishes an empty notification (ttd) event for device.
func (a *Adapter) notify(tenant, device string, ttd int64) {
	if device == "" {
		return
	}
	m := &hub.Message{
		Topic:       hono.HubTopic(hono.Event, device),
		QoS:         1,
		ContentType: hono.ContentTypeEmptyNotification,
		Created:     a.now(),
		Expiry:      a.now().Add(a.opts.Hono.EventRetention),
		Properties: []hub.Property{
			{Key: hono.PropDeviceID, Value: device},
			{Key: hono.PropOrigAdapter, Value: hono.AdapterMQTT},
			{Key: hono.PropTTD, Value: ttd},
		},
	}
	a.publishEvent(tenant, m)
}

// connectionEvent publishes a Hono connection event of an authenticated
// device.
func (a *Adapter) connectionEvent(st *connState, cause string) {
	body := fmt.Sprintf(`{"cause":%q,"remote-id":%q,"source":%q,"data":{}}`, cause, st.who.ClientID, hono.AdapterMQTT)
	m := &hub.Message{
		Topic:       hono.HubTopic(hono.Event, st.device),
		Payload:     []byte(body),
		QoS:         1,
		ContentType: hono.ContentTypeConnection,
		Created:     a.now(),
		Expiry:      a.now().Add(a.opts.Hono.EventRetention),
		Properties: []hub.Property{
			{Key: hono.PropDeviceID, Value: st.device},
			{Key: hono.PropOrigAdapter, Value: hono.AdapterMQTT},
		},
	}
	a.publishEvent(st.tenant, m)
}

func (a *Adapter) publishEvent(tenant string, m *hub.Message) {
	if a.opts.Hono.OpenEvents != nil {
		if err := a.openEvents(tenant); err != nil {
			a.log.Warn("notification not sent: no event log", "tenant", tenant, "err", err)
			return
		}
	}
	a.hub.PublishAsync(tenant, m, func(res hub.Result) {
		if res.Err != nil || res.Lost > 0 {
			a.log.Warn("notification event not kept", "tenant", tenant, "err", res.Err, "lost", res.Lost)
		}
	})
}

// honoWill converts a will on a Hono telemetry or event topic into the
// message the northbound API delivers when the device dies (Hono ignores
// wills). ok is false for other wills.
func (a *Adapter) honoWill(c *mqtt.Conn, st *connState, p *packet.Connect) (tenant string, m *hub.Message, ok bool, err error) {
	u, isHono, perr := hono.ParseUpstream(p.WillTopic)
	if !isHono {
		return "", nil, false, nil
	}
	if perr != nil || u.Endpoint == hono.CommandResponse {
		return "", nil, true, errors.New("a will on a Hono topic must be telemetry or an event")
	}
	pub := &packet.Publish{Topic: p.WillTopic, Payload: p.WillPayload, QoS: min(p.WillQoS, 1), Retain: p.WillRetain, Properties: p.WillProperties}
	if u.Endpoint == hono.Event {
		pub.QoS = 1
	}
	tenant, m, herr := a.honoMessage(c, st, u, pub)
	if herr != nil {
		return "", nil, true, herr
	}
	return tenant, m, true, nil
}

// commandConsumer delivers commands to one MQTT connection.
type commandConsumer struct {
	a      *Adapter
	c      *mqtt.Conn
	st     *connState
	filter hono.CommandFilter
	qos    byte
	tenant string
}

func (cc *commandConsumer) Deliver(cmd *command.Command, done func(command.Outcome)) {
	reqID := ""
	if !cmd.OneWay() {
		id, err := hono.EncodeReqID(cmd.CorrelationID, cmd.ReplyID, cmd.Device, hono.MessagingAMQP)
		if err != nil {
			done(command.Rejected)
			return
		}
		reqID = id
	}
	target := ""
	if cmd.Via != "" {
		target = cmd.Device // through a gateway: the topic names the device
	}
	p := &packet.Publish{
		Topic:   cc.filter.CommandTopic(target, reqID, cmd.Name),
		Payload: cmd.Payload,
		QoS:     cc.qos,
	}
	p.Properties.ContentType = cmd.ContentType
	if cc.c.Version() == packet.V5 && !cmd.OneWay() {
		// Beyond Hono: a plain MQTT 5 request/response client answers
		// on the Response Topic with the Correlation Data.
		dev := cc.filter.Device
		if dev == "+" {
			dev = target
		}
		res := "command/" + cc.filter.Tenant + "/" + dev + "/res/" + reqID + "/200"
		if cc.filter.Short {
			res = "c/" + cc.filter.Tenant + "/" + dev + "/s/" + reqID + "/200"
		}
		p.Properties.ResponseTopic = res
		p.Properties.CorrelationData = []byte(cmd.CorrelationID)
	}
	if p.QoS == 0 {
		if cc.c.Send(p) != nil {
			done(command.Released)
			return
		}
		done(command.Accepted)
		return
	}
	pc := &pendingCommand{done: done}
	h := &cc.st.hono
	h.mu.Lock()
	if h.pending == nil {
		h.pending = map[*packet.Publish]*pendingCommand{}
	}
	h.pending[p] = pc
	h.mu.Unlock()
	pc.timer = time.AfterFunc(cc.a.opts.Hono.CommandAckTimeout, func() {
		h.mu.Lock()
		delete(h.pending, p)
		h.mu.Unlock()
		pc.finish(command.Released)
	})
	if cc.c.Send(p) != nil {
		h.mu.Lock()
		delete(h.pending, p)
		h.mu.Unlock()
		pc.finish(command.Released)
	}
}
