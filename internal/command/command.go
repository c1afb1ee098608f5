// Package command routes Hono commands inside one Ferry node: it is the
// Command Router of a Hono deployment without its cache. Device front ends
// register the connections that subscribed for commands; the northbound
// API sends commands, which go to the device's own subscription, or to a
// gateway subscribed for that device, or to a gateway subscribed for all
// its devices that the device's via list allows (preferring the gateway
// the device last sent through). Responses go back to the receivers of
// the command's reply address.
//
// Routing state lives in memory: a connection's subscription dies with
// it, as in Hono's Command Router with ttl-based entries.
package command

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Command is a command on its way to a device.
type Command struct {
	Tenant string
	// Device is the target device.
	Device string
	// Name is the command name (AMQP subject).
	Name string
	// CorrelationID and ReplyID (the <reply-id> of the reply address
	// command_response/<tenant>/<reply-id>) are set for a
	// request/response command; ReplyID is empty for a one-way command.
	CorrelationID string
	ReplyID       string
	ContentType   string
	Payload       []byte
	// Via is the gateway the command is delivered through; set by the
	// router for the consumer.
	Via string
	// Messaging is where the command came from and its response goes
	// (hono.MessagingAMQP or hono.MessagingKafka): adapters put it in the
	// request id, so that the response finds its way back.
	Messaging int
}

// OneWay reports whether the device is not expected to answer.
func (c *Command) OneWay() bool { return c.ReplyID == "" }

// Outcome is what became of a command (the AMQP outcome the application
// gets).
type Outcome int

const (
	// Accepted: the device took the command (QoS 1: its PUBACK).
	Accepted Outcome = iota
	// Released: no subscription for the device, or it did not take the
	// command in time; the application may retry.
	Released
	// Rejected: the command is malformed.
	Rejected
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Released:
		return "released"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}

// Consumer is a connection subscribed for commands.
type Consumer interface {
	// Deliver hands cmd to the device or gateway and calls done once with
	// the outcome. It must not block.
	Deliver(cmd *Command, done func(Outcome))
}

// Response is a device's answer to a command.
type Response struct {
	// Messaging is the command's (from the request id).
	Messaging      int
	Tenant, Device string
	CorrelationID  string
	ReplyID        string
	Status         int
	ContentType    string
	Payload        []byte
}

// ResponseSink receives responses for one reply address.
type ResponseSink interface {
	// Respond hands r to the application; it must not block. It reports
	// whether the application's link took it.
	Respond(r *Response) bool
}

// ErrNoConsumer says that no application receives on a response's reply
// address.
var ErrNoConsumer = errors.New("no application receives on the reply address")

// Options configures a Router.
type Options struct {
	// Via lists the gateways that may act for a device (the registry's
	// via); nil: gateways subscribed with "+" get no commands for other
	// devices.
	Via func(ctx context.Context, tenant, device string) ([]string, error)
	// ActsFor, if set, also lets a gateway subscribed with "+" that is not
	// in the device's via take its commands when it may act for the device
	// otherwise (viaGroups). It is asked for at most MaxGatewayChecks
	// gateways per command.
	ActsFor func(ctx context.Context, tenant, gateway, device string) (bool, error)
	// Logger; nil: slog.Default().
	Logger *slog.Logger
}

// MaxGatewayChecks bounds the gateways ActsFor is asked about for one
// command.
const MaxGatewayChecks = 64

// Router routes commands and responses. Its methods are safe for
// concurrent use.
type Router struct {
	opts Options
	log  *slog.Logger

	mu sync.Mutex
	// devices: subscriptions naming a device (its own, or a gateway's
	// device-specific one), most recent last.
	devices map[key][]*registration
	// gateways: "+" subscriptions of gateways, by tenant and gateway id.
	gateways map[key]*registration
	lastGW   map[key]string
	replies  map[key][]ResponseSink
	// others take every response of a messaging type other than AMQP's
	// reply addresses (Kafka's command_response topics), by type.
	others  map[int]*ResponseSink
	pending map[pendingKey]*time.Timer
	remote  Remote
}

type key struct{ tenant, id string }

type pendingKey struct {
	messaging                      int
	tenant, replyID, correlationID string
}

type registration struct {
	c       Consumer
	gateway string    // "" for the device's own subscription
	at      time.Time // when it was made, against other nodes' subscriptions
}

// Remote reaches the devices subscribed on other nodes of a cluster. A
// Router consults it when it has no subscription that beats the other
// nodes', and tells it about its own subscriptions.
type Remote interface {
	// Subscribed says this node now holds (up) or no longer holds a
	// subscription for device id, or, with all, a gateway's subscription
	// for all its devices. It must not block.
	Subscribed(tenant, id string, all, up bool)
	// Device is the most recent device-specific subscription for device
	// on another node, and when it was made.
	Device(tenant, device string) (c Consumer, at time.Time, ok bool)
	// Gateway is a subscription on another node of one of gateways for
	// all their devices, in the order given.
	Gateway(tenant string, gateways []string) (c Consumer, gateway string, ok bool)
	// Respond hands resp to the node its command came from; false when
	// it came from this node.
	Respond(resp *Response) bool
}

// NewRouter returns an empty Router.
func NewRouter(opts Options) *Router {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Router{opts: opts, log: log, devices: map[key][]*registration{}, gateways: map[key]*registration{},
		lastGW: map[key]string{}, replies: map[key][]ResponseSink{}, others: map[int]*ResponseSink{},
		pending: map[pendingKey]*time.Timer{}}
}

// SetRemote makes r reach devices on other nodes through remote. Call it
// before the first subscription.
func (r *Router) SetRemote(remote Remote) {
	r.mu.Lock()
	r.remote = remote
	r.mu.Unlock()
}

func (r *Router) subscribed(tenant, id string, all, up bool) {
	r.mu.Lock()
	remote := r.remote
	r.mu.Unlock()
	if remote != nil {
		remote.Subscribed(tenant, id, all, up)
	}
}

// Subscribe registers c for the commands of device: its own subscription
// (gateway "") or a gateway's subscription for that one device. The most
// recent subscription wins, on this node or another. cancel removes it.
func (r *Router) Subscribe(tenant, device, gateway string, c Consumer) (cancel func()) {
	reg := &registration{c: c, gateway: gateway, at: time.Now()}
	k := key{tenant, device}
	r.mu.Lock()
	r.devices[k] = append(r.devices[k], reg)
	r.mu.Unlock()
	r.subscribed(tenant, device, false, true)
	return func() {
		r.mu.Lock()
		regs := slices.DeleteFunc(r.devices[k], func(x *registration) bool { return x == reg })
		if len(regs) == 0 {
			delete(r.devices, k)
		} else {
			r.devices[k] = regs
		}
		r.mu.Unlock()
		r.subscribed(tenant, device, false, false)
	}
}

// SubscribeAll registers c, the connection of gateway, for the commands
// of every device the gateway may act for. cancel removes it.
func (r *Router) SubscribeAll(tenant, gateway string, c Consumer) (cancel func()) {
	reg := &registration{c: c, gateway: gateway, at: time.Now()}
	k := key{tenant, gateway}
	r.mu.Lock()
	r.gateways[k] = reg
	r.mu.Unlock()
	r.subscribed(tenant, gateway, true, true)
	return func() {
		r.mu.Lock()
		if r.gateways[k] == reg {
			delete(r.gateways, k)
		}
		r.mu.Unlock()
		r.subscribed(tenant, gateway, true, false)
	}
}

// SetLastGateway records that gateway last sent for device, so that a
// command for it prefers that gateway among those subscribed for all
// their devices.
func (r *Router) SetLastGateway(tenant, device, gateway string) {
	k := key{tenant, device}
	r.mu.Lock()
	r.lastGW[k] = gateway
	r.mu.Unlock()
}

// Send routes cmd and calls done once with its outcome: Released when no
// subscription, on this node or (with a Remote) another, can take it.
func (r *Router) Send(ctx context.Context, cmd *Command, done func(Outcome)) {
	r.send(ctx, cmd, done, true)
}

// SendLocal routes cmd to this node's subscriptions only: for a command
// another node's Remote forwarded here.
func (r *Router) SendLocal(ctx context.Context, cmd *Command, done func(Outcome)) {
	r.send(ctx, cmd, done, false)
}

func (r *Router) send(ctx context.Context, cmd *Command, done func(Outcome), remote bool) {
	reg := r.resolve(ctx, cmd.Tenant, cmd.Device, remote)
	if reg == nil {
		done(Released)
		return
	}
	cmd.Via = reg.gateway
	reg.c.Deliver(cmd, done)
}

// resolve finds the subscription for a command to device: the most recent
// device-specific one, here or (remote) on another node; else a gateway's
// for all its devices, here first.
func (r *Router) resolve(ctx context.Context, tenant, device string, remote bool) *registration {
	r.mu.Lock()
	rem := r.remote
	if !remote {
		rem = nil
	}
	var local *registration
	if regs := r.devices[key{tenant, device}]; len(regs) > 0 {
		local = regs[len(regs)-1]
	}
	r.mu.Unlock()
	if rem != nil {
		if c, at, ok := rem.Device(tenant, device); ok && (local == nil || at.After(local.at)) {
			return &registration{c: c, at: at}
		}
	}
	if local != nil {
		return local
	}
	r.mu.Lock()
	noGateways := len(r.gateways) == 0 && rem == nil
	last := r.lastGW[key{tenant, device}]
	r.mu.Unlock()
	if noGateways || r.opts.Via == nil {
		return nil
	}
	via, err := r.opts.Via(ctx, tenant, device)
	if err != nil {
		r.log.Warn("command not routed: the device's gateways cannot be read", "tenant", tenant, "device", device, "err", err)
		return nil
	}
	if reg := r.resolveGateway(ctx, tenant, device, last, via); reg != nil {
		return reg
	}
	if rem != nil {
		gws := via
		if last != "" && !slices.Contains(via, last) {
			gws = append([]string{last}, via...)
		}
		if c, gw, ok := rem.Gateway(tenant, gws); ok {
			return &registration{c: c, gateway: gw}
		}
	}
	return nil
}

// resolveGateway finds a local gateway subscription for all devices that
// may take a command for device.
func (r *Router) resolveGateway(ctx context.Context, tenant, device, last string, via []string) *registration {
	// The candidates in order: the last gateway the device used, the
	// gateways of its via, then (with ActsFor) the other subscribed
	// gateways of the tenant, by id.
	r.mu.Lock()
	var candidates []*registration
	inVia := map[*registration]bool{}
	if reg := r.gateways[key{tenant, last}]; reg != nil && last != "" {
		candidates = append(candidates, reg)
		inVia[reg] = slices.Contains(via, last)
	}
	for _, gw := range via {
		if reg := r.gateways[key{tenant, gw}]; reg != nil && gw != last {
			candidates = append(candidates, reg)
			inVia[reg] = true
		}
	}
	if r.opts.ActsFor != nil {
		var others []*registration
		for k, reg := range r.gateways {
			if k.tenant == tenant && k.id != last && !slices.Contains(via, k.id) {
				others = append(others, reg)
			}
		}
		slices.SortFunc(others, func(a, b *registration) int { return strings.Compare(a.gateway, b.gateway) })
		candidates = append(candidates, others...)
	}
	r.mu.Unlock()
	checks := 0
	for _, reg := range candidates {
		if inVia[reg] {
			return reg
		}
		if r.opts.ActsFor == nil || checks == MaxGatewayChecks {
			continue
		}
		checks++
		ok, err := r.opts.ActsFor(ctx, tenant, reg.gateway, device)
		if err != nil {
			r.log.Warn("gateway authority not checked", "tenant", tenant, "gateway", reg.gateway, "device", device, "err", err)
			continue
		}
		if ok {
			return reg
		}
	}
	return nil
}

// Receive registers s for the responses sent to
// command_response/<tenant>/<replyID>. Several sinks of one address share
// its responses, the most recent first. cancel removes it.
func (r *Router) Receive(tenant, replyID string, s ResponseSink) (cancel func()) {
	k := key{tenant, replyID}
	r.mu.Lock()
	r.replies[k] = append(r.replies[k], s)
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		ss := slices.DeleteFunc(r.replies[k], func(x ResponseSink) bool { return x == s })
		if len(ss) == 0 {
			delete(r.replies, k)
		} else {
			r.replies[k] = ss
		}
	}
}

// ReceiveMessaging registers s for every response of commands that came
// by another messaging than AMQP (messaging, e.g. hono.MessagingKafka),
// whatever their tenant and reply id. cancel removes it.
func (r *Router) ReceiveMessaging(messaging int, s ResponseSink) (cancel func()) {
	reg := &s // a pointer of its own: cancel must not compare sinks, which may not be comparable
	r.mu.Lock()
	r.others[messaging] = reg
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.others[messaging] == reg {
			delete(r.others, messaging)
		}
	}
}

// Respond hands a device's response to the application receiving on its
// reply address (through the node its command came from, with a Remote),
// or returns ErrNoConsumer.
func (r *Router) Respond(resp *Response) error {
	r.mu.Lock()
	remote := r.remote
	r.mu.Unlock()
	if remote != nil && remote.Respond(resp) {
		return nil
	}
	return r.RespondLocal(resp)
}

// RespondLocal hands resp to this node's applications only: for a
// response another node's Remote forwarded here.
func (r *Router) RespondLocal(resp *Response) error {
	r.mu.Lock()
	pk := pendingKey{resp.Messaging, resp.Tenant, resp.ReplyID, resp.CorrelationID}
	if t := r.pending[pk]; t != nil {
		t.Stop()
		delete(r.pending, pk)
	}
	var sinks []ResponseSink
	if resp.Messaging == 0 {
		sinks = slices.Clone(r.replies[key{resp.Tenant, resp.ReplyID}])
	} else if s := r.others[resp.Messaging]; s != nil {
		sinks = []ResponseSink{*s}
	}
	r.mu.Unlock()
	for i := len(sinks) - 1; i >= 0; i-- {
		if sinks[i].Respond(resp) {
			return nil
		}
	}
	return ErrNoConsumer
}

// StatusTimeout is the status of the response the router makes up when
// the device does not answer within a command's response timeout.
const StatusTimeout = 408

// ExpectResponse arms the response timeout of a request/response command:
// unless the device answers within d, the application gets a response
// with status 408 (Request Timeout) and an empty body.
func (r *Router) ExpectResponse(cmd *Command, d time.Duration) {
	if cmd.OneWay() || d <= 0 {
		return
	}
	pk := pendingKey{cmd.Messaging, cmd.Tenant, cmd.ReplyID, cmd.CorrelationID}
	resp := &Response{Messaging: cmd.Messaging, Tenant: cmd.Tenant, Device: cmd.Device, CorrelationID: cmd.CorrelationID,
		ReplyID: cmd.ReplyID, Status: StatusTimeout}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.pending[pk]; old != nil {
		old.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		r.mu.Lock()
		if r.pending[pk] != t {
			r.mu.Unlock()
			return
		}
		delete(r.pending, pk)
		r.mu.Unlock()
		_ = r.Respond(resp)
	})
	r.pending[pk] = t
}

// Close stops the response timers.
func (r *Router) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, t := range r.pending {
		t.Stop()
		delete(r.pending, k)
	}
}
