// Package coapadapter is Hono's CoAP device adapter over UDP, on
// github.com/plgd-dev/go-coap: unauthenticated devices PUT telemetry and
// events to /t/<tenant>/<device> (or /telemetry/...) and /e/<tenant>/<device>
// (or /event/...), and command responses to
// /command/res/<tenant>/<device>/<req-id>?hono-cmd-status=<code>. A
// confirmable request (CON) is at least once: it is answered 2.04 Changed
// once the message is taken downstream; a non-confirmable one (NON) is at
// most once.
//
// # Caveats
//
// DTLS with PSK (ListenDTLS) authenticates devices; certificate logins
// over DTLS and commands piggybacked on hono-ttd are not implemented yet.
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
	Logger  *slog.Logger
}

// Adapter serves CoAP devices.
type Adapter struct {
	opts Options
	log  *slog.Logger
	srv  *udpserver.Server
	conn *coapnet.UDPConn
	done chan struct{}
	dtls *dtlsListener // nil without ListenDTLS

	closeOnce sync.Once
	closeErr  error
}

// New returns an Adapter; Listen starts it.
func New(opts Options) *Adapter {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Adapter{opts: opts, log: opts.Logger}
}

// Listen serves CoAP on the UDP address addr until Close.
func (a *Adapter) Listen(addr string) error {
	l, err := coapnet.NewListenUDP("udp", addr)
	if err != nil {
		return err
	}
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(a.serve))
	a.srv = udp.NewServer(options.WithMux(r))
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
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var ep hono.Endpoint
	switch segs[0] {
	case "t", "telemetry":
		ep = hono.Telemetry
	case "e", "event":
		ep = hono.Event
	case "command":
		a.response(w, r, segs, lg)
		return
	default:
		reply(w, codes.NotFound, "use /t/<tenant>/<device>, /e/<tenant>/<device> or /command/res/<tenant>/<device>/<req-id>")
		return
	}
	var tenant, device string
	switch {
	case len(segs) == 1 && lg == nil:
		// The authenticated form needs DTLS.
		reply(w, codes.Unauthorized, "an unauthenticated device must use PUT /"+segs[0]+"/<tenant>/<device>")
		return
	case len(segs) == 1:
		if r.Code() != codes.POST {
			reply(w, codes.MethodNotAllowed, "use POST for /"+path)
			return
		}
	case len(segs) == 3 && segs[2] != "":
		if r.Code() != codes.PUT {
			reply(w, codes.MethodNotAllowed, "use PUT for /"+path)
			return
		}
		tenant, device = segs[1], segs[2]
	default:
		reply(w, codes.NotFound, "use PUT /"+segs[0]+"/<tenant>/<device>")
		return
	}
	tenant, device, gateway, derr := a.target(lg, tenant, device)
	if derr != nil {
		fail(w, derr)
		return
	}
	body, err := r.ReadBody()
	if err != nil {
		reply(w, codes.BadRequest, "cannot read the payload")
		return
	}
	qos := byte(0)
	if r.Type() == message.Confirmable {
		qos = 1
	}
	if ep == hono.Event {
		qos = 1 // events are at least once whatever the message type
	}
	dm := &downstream.Message{Endpoint: ep, Tenant: tenant, Device: device, Gateway: gateway, Adapter: hono.AdapterCoAP,
		Address: path, QoS: qos, Payload: body, ContentType: contentType(r)}
	if s := queries(r)["hono-ttl"]; s != "" && ep == hono.Event {
		secs, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			reply(w, codes.BadRequest, "hono-ttl must be a number of seconds")
			return
		}
		dm.TTL = time.Duration(secs) * time.Second
	}
	hm, derr := a.opts.Downstream.Build(dm)
	if derr != nil {
		fail(w, derr)
		return
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
		fail(w, derr)
		return
	}
	reply(w, codes.Changed, "")
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

// response handles PUT /command/res/<tenant>/<device>/<req-id> and, for
// an authenticated device, POST /command/res/<req-id>
// (?hono-cmd-status=<code>).
func (a *Adapter) response(w mux.ResponseWriter, r *mux.Message, segs []string, lg *login) {
	var tenant, device, reqID string
	switch {
	case len(segs) == 5 && segs[1] == "res":
		tenant, device, reqID = segs[2], segs[3], segs[4]
	case len(segs) == 3 && segs[1] == "res" && lg != nil:
		reqID = segs[2]
	default:
		reply(w, codes.NotFound, "use PUT /command/res/<tenant>/<device>/<req-id>")
		return
	}
	tenant, device, _, derr := a.target(lg, tenant, device)
	if derr != nil {
		fail(w, derr)
		return
	}
	status, err := strconv.Atoi(queries(r)["hono-cmd-status"])
	if err != nil || status < 200 || status > 599 {
		reply(w, codes.BadRequest, "hono-cmd-status must be an HTTP status code")
		return
	}
	id, err := hono.DecodeReqID(reqID, device)
	if err != nil {
		reply(w, codes.BadRequest, "malformed request id")
		return
	}
	body, _ := r.ReadBody()
	if a.opts.Commands == nil {
		reply(w, codes.ServiceUnavailable, "commands are not routed here")
		return
	}
	if err := a.opts.Commands.Respond(&command.Response{Tenant: tenant, Device: device, CorrelationID: id.CorrelationID,
		ReplyID: id.ReplyID, Status: status, ContentType: contentType(r), Payload: body}); err != nil {
		reply(w, codes.ServiceUnavailable, err.Error())
		return
	}
	reply(w, codes.Changed, "")
}
