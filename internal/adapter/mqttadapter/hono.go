package mqttadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/adapter/downstream"
	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// HonoOptions turns on Hono's MQTT adapter topics (telemetry, event,
// command) next to plain MQTT.
type HonoOptions struct {
	// Downstream publishes telemetry, events and notifications. Required.
	Downstream *downstream.Downstream
	// Commands routes commands to the connections subscribed for them.
	// Required.
	Commands *command.Router
	// ActsFor reports whether gateway may act for device (the device's
	// via and viaGroups). Nil: no gateways.
	ActsFor func(ctx context.Context, tenant, gateway, device string) (bool, error)
	// CommandAckTimeout is how long a device has to acknowledge a QoS 1
	// command before it counts as released (Hono's
	// sendMessageToDeviceTimeout). Default 1s.
	CommandAckTimeout time.Duration
	// ConnectionEvents sends Hono connection events
	// (connected/disconnected) of authenticated devices as events.
	ConnectionEvents bool
}

func (o *HonoOptions) defaults() {
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
	t, d, gw, derr := downstream.Target(st.tenant, st.device, tenant, device, func(dev string) (bool, error) { return a.actsFor(st, dev), nil })
	if derr != nil {
		return "", "", "", mqttError(derr)
	}
	return t, d, gw, nil
}

// mqttError gives a downstream refusal the reason code a PUBACK can carry.
func mqttError(e *downstream.Error) *honoError {
	code := packet.UnspecifiedError
	switch {
	case e.Status == 400:
		code = packet.TopicNameInvalid
	case e.Status == 401, e.Status == 403:
		code = packet.NotAuthorized
	case e.Status == 413, e.Full:
		code = packet.QuotaExceeded
	}
	return &honoError{e.Status, code, e.Msg, false}
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
	tenant, device, gateway, herr := a.honoTarget(st, u.Tenant, u.Device)
	if herr != nil {
		return "", nil, herr
	}
	switch {
	case p.QoS == 2:
		return "", nil, &honoError{400, packet.QoSNotSupported, "QoS 2 is not supported on Hono topics", true}
	case u.Endpoint == hono.Event && p.QoS != 1:
		return "", nil, &honoError{400, packet.QoSNotSupported, "events must be published with QoS 1", true}
	}
	dm := &downstream.Message{
		Endpoint: u.Endpoint, Tenant: tenant, Device: device, Gateway: gateway,
		Adapter: hono.AdapterMQTT, Address: p.Topic, QoS: p.QoS,
		Payload: append([]byte(nil), p.Payload...), ContentType: u.Bag.Get("content-type"),
		Retain: p.Retain, Origin: c.ClientID(),
	}
	if dm.ContentType == "" {
		dm.ContentType = p.Properties.ContentType
	}
	if s := u.Bag.Get("hono-ttl"); s != "" && u.Endpoint == hono.Event {
		secs, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return "", nil, badRequest("hono-ttl must be a number of seconds")
		}
		dm.TTL = time.Duration(secs) * time.Second
	}
	if exp := p.Properties.MessageExpiry; exp != nil {
		dm.Expiry = time.Duration(*exp) * time.Second
	}
	for _, up := range p.Properties.User {
		dm.UserProperties = append(dm.UserProperties, hub.UserProperty{Key: up.Key, Value: up.Value})
	}
	m, derr := a.opts.Hono.Downstream.Build(dm)
	if derr != nil {
		return "", nil, mqttError(derr)
	}
	return tenant, m, nil
}

// honoPublish handles a publish on a Hono topic; done gets the PUBACK
// code. A refused publish closes a 3.1.1 connection, as Hono does without
// an error subscription: 3.1.1 has no other way to say it.
func (a *Adapter) honoPublish(c *mqtt.Conn, st *connState, u hono.Upstream, perr error, p *packet.Publish, done func(packet.ReasonCode)) {
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
	if perr != nil {
		fail(badRequest("malformed Hono topic " + p.Topic))
		return
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
	a.opts.Hono.Downstream.Publish(tenant, m, func(derr *downstream.Error) {
		if derr != nil {
			fail(mqttError(derr))
			return
		}
		done(packet.Success)
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
	resp := &command.Response{Messaging: id.Messaging, Tenant: tenant, Device: device, CorrelationID: id.CorrelationID, ReplyID: id.ReplyID,
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
	a.opts.Hono.Downstream.Notify(tenant, device, hono.AdapterMQTT, ttd)
}

// connectionEvent publishes a Hono connection event of an authenticated
// device.
func (a *Adapter) connectionEvent(st *connState, cause string) {
	a.opts.Hono.Downstream.ConnectionEvent(st.tenant, st.device, hono.AdapterMQTT, st.who.ClientID, cause)
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
		id, err := hono.EncodeReqID(cmd.CorrelationID, cmd.ReplyID, cmd.Device, cmd.Messaging)
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
