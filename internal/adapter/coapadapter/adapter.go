// Package coapadapter is Hono's CoAP device adapter over UDP and DTLS, on
// github.com/plgd-dev/go-coap.
//
// Unauthenticated devices (plain UDP) PUT telemetry to /t/<tenant>/<device>
// (or /telemetry/...) and events to /e/<tenant>/<device> (or /event/...).
// Devices logged in over DTLS (a PSK with identity auth-id@tenant, or a
// client certificate whose issuer is a trusted CA of the tenant) POST to
// /t and /e, and gateways PUT to /t//<device> or /t/<tenant>/<device>.
// A confirmable request (CON) is at least once: it is answered 2.04
// Changed once the message is taken downstream; a non-confirmable one
// (NON) is at most once; events are at least once either way. The query
// parameter empty marks an empty notification, hono-ttl an event's
// time to live.
//
// With hono-ttd=<seconds> (capped by the tenant's max-ttd) the request
// waits for a command: the ttd goes downstream with the message, and a
// command that comes in time is the response's payload, with
// content-format, Location-Query hono-command=<name> and the Location-Path
// to answer on (cr/<req-id>, cr/<tenant>/<device>/<req-id> for an
// unauthenticated device, cr//<device>/<req-id> for a gateway's device;
// c for a one-way command, c//<device> for a gateway's device; spelled
// out as command_response and command after /telemetry and /event).
// Without a command the response is a bare 2.04 after the ttd. The wait
// is a separate response (RFC 7252 section 5.2.2), as Hono's Californium
// does: go-coap acknowledges a confirmable request at once with an empty
// ACK, so the client does not retransmit it into a second publish, and
// the response follows as a confirmable message the device acknowledges
// (the command is accepted then); a non-confirmable request gets a
// non-confirmable response. libcoap's coap-client handles both. While a
// request waits, its connection (for DTLS, its session) is not closed as
// idle.
//
// Command responses go to POST /cr/<req-id> (authenticated device), PUT
// /cr/<tenant>/<device>/<req-id> or /cr//<device>/<req-id> (and
// /command_response/...), with ?hono-cmd-status=<code>: 2.04 when an
// application took the response, 5.03 when none waits for it.
package coapadapter

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpserver "github.com/plgd-dev/go-coap/v3/udp/server"

	"github.com/ferry-iot/ferry/internal/adapter/downstream"
	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
)

// Options configures an Adapter.
type Options struct {
	Downstream *downstream.Downstream
	Commands   *command.Router
	// ActsFor reports whether gateway may act for device (DTLS logins).
	ActsFor func(ctx context.Context, tenant, gateway, device string) (bool, error)
	// MaxTTD caps hono-ttd when the tenant sets no max-ttd. Default 60s.
	MaxTTD time.Duration
	Logger *slog.Logger
}

// Adapter serves CoAP devices.
type Adapter struct {
	opts Options
	log  *slog.Logger
	srv  *udpserver.Server
	conn *coapnet.UDPConn
	done chan struct{}
	dtls *dtlsListener // nil without ListenDTLS

	// ctx ends the requests that wait for a command (wg) on Close.
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	waiting waiting

	closeOnce sync.Once
	closeErr  error
}

// New returns an Adapter; Listen starts it.
func New(opts Options) *Adapter {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxTTD <= 0 {
		opts.MaxTTD = 60 * time.Second
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Adapter{opts: opts, log: opts.Logger, ctx: ctx, stop: stop}
}

// Listen serves CoAP on the UDP address addr until Close.
func (a *Adapter) Listen(addr string) error {
	l, err := coapnet.NewListenUDP("udp", addr)
	if err != nil {
		return err
	}
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(a.serve))
	a.srv = udp.NewServer(options.WithMux(r), idleOption{&a.waiting})
	a.conn = l
	a.done = make(chan struct{})
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(l); err != nil {
			a.log.Debug("coap server ended", "err", err)
		}
	}()
	return nil
}

// Addr is the UDP address the adapter listens on.
func (a *Adapter) Addr() string {
	if a.conn == nil {
		return ""
	}
	return a.conn.LocalAddr().String()
}

// Close stops the server; a second Close does nothing.
func (a *Adapter) Close() error {
	a.closeOnce.Do(func() {
		a.stop()
		a.wg.Wait()
		if a.dtls != nil {
			a.dtls.close()
		}
		if a.srv == nil {
			return
		}
		a.srv.Stop()
		<-a.done
		a.closeErr = a.conn.Close()
	})
	return a.closeErr
}

// statusCodes maps Hono's statuses to CoAP response codes.
var statusCodes = map[int]codes.Code{
	400: codes.BadRequest, 401: codes.Unauthorized, 403: codes.Forbidden, 404: codes.NotFound,
	405: codes.MethodNotAllowed, 413: codes.RequestEntityTooLarge, 503: codes.ServiceUnavailable,
}

func reply(w mux.ResponseWriter, code codes.Code, diagnostic string) {
	if diagnostic != "" {
		_ = w.SetResponse(code, message.TextPlain, bytes.NewReader([]byte(diagnostic)))
		return
	}
	_ = w.SetResponse(code, message.TextPlain, nil)
}

func fail(w mux.ResponseWriter, e *downstream.Error) {
	code, ok := statusCodes[e.Status]
	if !ok {
		code = codes.InternalServerError
	}
	reply(w, code, e.Msg)
}

func queries(r *mux.Message) map[string]string {
	q := map[string]string{}
	qs, _ := r.Queries()
	for _, kv := range qs {
		k, v, _ := strings.Cut(kv, "=")
		q[k] = v
	}
	return q
}

func (a *Adapter) serve(w mux.ResponseWriter, r *mux.Message) { a.serveAs(w, r, nil) }

// target resolves the tenant and device a request is for: the login's
// (authenticated form), or those of the URI, checking a gateway's
// authority.
func (a *Adapter) target(lg *login, tenant, device string) (string, string, string, *downstream.Error) {
	var lt, ld string
	if lg != nil {
		lt, ld = lg.tenant, lg.device
	}
	return downstream.Target(lt, ld, tenant, device, func(dev string) (bool, error) {
		if a.opts.ActsFor == nil {
			return false, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return a.opts.ActsFor(ctx, lt, ld, dev)
	})
}

// serveAs handles a request of lg (nil: an unauthenticated device on the
// plain UDP listener).
func (a *Adapter) serveAs(w mux.ResponseWriter, r *mux.Message, lg *login) {
	path, err := r.Path()
	if err != nil {
		reply(w, codes.BadRequest, "no path")
		return
	}
	rt, derr := parseRoute(path)
	if derr != nil {
		fail(w, derr)
		return
	}
	if rt.bare && lg == nil {
		// The authenticated form needs DTLS.
		reply(w, codes.Unauthorized, "an unauthenticated device must name tenant and device: PUT "+path+"/<tenant>/<device>")
		return
	}
	want := codes.PUT
	if rt.bare {
		want = codes.POST
	}
	if r.Code() != want {
		reply(w, codes.MethodNotAllowed, "use "+want.String()+" for "+path)
		return
	}
	if rt.response {
		a.response(w, r, rt, lg)
		return
	}
	a.upstream(w, r, rt, path, lg)
}

// upstream handles telemetry and events, and the wait for a command of a
// request with hono-ttd.
func (a *Adapter) upstream(w mux.ResponseWriter, r *mux.Message, rt route, path string, lg *login) {
	tenant, device, gateway, derr := a.target(lg, rt.tenant, rt.device)
	if derr != nil {
		fail(w, derr)
		return
	}
	body, err := r.ReadBody()
	if err != nil {
		reply(w, codes.BadRequest, "cannot read the payload")
		return
	}
	q := queries(r)
	ct := contentType(r)
	if _, empty := q["empty"]; empty {
		if len(body) > 0 {
			reply(w, codes.BadRequest, "an empty notification (empty) must have no payload")
			return
		}
		ct = hono.ContentTypeEmptyNotification
	}
	qos := byte(0)
	if r.Type() == message.Confirmable {
		qos = 1
	}
	if rt.ep == hono.Event {
		qos = 1 // events are at least once whatever the message type
	}
	dm := &downstream.Message{Endpoint: rt.ep, Tenant: tenant, Device: device, Gateway: gateway, Adapter: hono.AdapterCoAP,
		Address: path, QoS: qos, Payload: body, ContentType: ct}
	if s := q["hono-ttl"]; s != "" && rt.ep == hono.Event {
		secs, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			reply(w, codes.BadRequest, "hono-ttl must be a number of seconds")
			return
		}
		dm.TTL = time.Duration(secs) * time.Second
	}
	var ttd time.Duration
	if s, ok := q["hono-ttd"]; ok {
		if ttd, derr = a.opts.Downstream.TTD(dm, s, a.opts.MaxTTD); derr != nil {
			fail(w, derr)
			return
		}
	}
	hm, derr := a.opts.Downstream.Build(dm)
	if derr != nil {
		fail(w, derr)
		return
	}
	// Subscribe before the message goes out: an application that answers
	// its ttd at once must find the device waiting.
	var waiter *command.Waiter
	cancelWait := func() {}
	if ttd > 0 && a.opts.Commands != nil {
		waiter, cancelWait = a.opts.Commands.Wait(tenant, device, gateway)
	}
	done := make(chan *downstream.Error, 1)
	a.opts.Downstream.Publish(tenant, hm, func(e *downstream.Error) { done <- e })
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	select {
	case derr = <-done:
	case <-ctx.Done():
		derr = downstream.Errorf(503, "the message was not taken in time")
	}
	if derr != nil {
		cancelWait()
		fail(w, derr)
		return
	}
	if waiter == nil {
		reply(w, codes.Changed, "")
		return
	}
	wr := waitRequest{cc: w.Conn(), token: bytes.Clone(r.Token()), confirmable: r.Type() == message.Confirmable,
		long: rt.long, ttd: ttd, waiter: waiter, cancel: cancelWait}
	if lg != nil {
		wr.loginDevice = lg.device
	}
	a.answerLater(wr)
}

// contentType is the request's content-format as a media type; empty
// without one.
func contentType(r *mux.Message) string {
	mt, err := r.ContentFormat()
	if err != nil {
		return ""
	}
	if _, err := message.MediaTypeFromNumber(mt); err != nil {
		return hono.ContentTypeOctetStream // a number without a registered name
	}
	return mt.String()
}

// response handles a command response: POST /cr/<req-id>, PUT
// /cr/<tenant>/<device>/<req-id> or /cr//<device>/<req-id>
// (?hono-cmd-status=<code>).
func (a *Adapter) response(w mux.ResponseWriter, r *mux.Message, rt route, lg *login) {
	tenant, device, _, derr := a.target(lg, rt.tenant, rt.device)
	if derr != nil {
		fail(w, derr)
		return
	}
	status, err := strconv.Atoi(queries(r)["hono-cmd-status"])
	if err != nil || status < 200 || status > 599 {
		reply(w, codes.BadRequest, "hono-cmd-status must be an HTTP status code")
		return
	}
	id, err := hono.DecodeReqID(rt.reqID, device)
	if err != nil {
		reply(w, codes.BadRequest, "malformed request id")
		return
	}
	body, err := r.ReadBody()
	if err != nil {
		reply(w, codes.BadRequest, "cannot read the payload")
		return
	}
	if a.opts.Commands == nil {
		reply(w, codes.ServiceUnavailable, "commands are not routed here")
		return
	}
	if err := a.opts.Commands.Respond(&command.Response{Messaging: id.Messaging, Tenant: tenant, Device: device, CorrelationID: id.CorrelationID,
		ReplyID: id.ReplyID, Status: status, ContentType: contentType(r), Payload: body}); err != nil {
		reply(w, codes.ServiceUnavailable, err.Error())
		return
	}
	reply(w, codes.Changed, "")
}
