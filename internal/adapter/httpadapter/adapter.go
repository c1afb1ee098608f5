// Package httpadapter is Hono's HTTP device adapter: devices POST or PUT
// telemetry and events to /telemetry and /event, upload command responses
// to /command/res/..., and may wait for a command in the response
// (hono-ttd). It is mounted on the node's HTTP listener, beside the
// registry API and the metrics.
//
// Errors are answered with the status codes of Hono's HTTP adapter and an
// RFC 9457 problem body (application/problem+json) that says what was
// wrong.
package httpadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/adapter/downstream"
	"github.com/ferry-iot/ferry/internal/auth"
	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/registry"
)

// Authenticator checks device credentials; *registry.Registry is one.
type Authenticator = auth.PasswordChecker

// JWTChecker checks a device's JSON Web Token; *registry.Registry is one.
type JWTChecker interface {
	AuthenticateJWT(ctx context.Context, tenant, authID, token string) (registry.Identity, error)
}

// Options configures an Adapter.
type Options struct {
	Downstream *downstream.Downstream
	Commands   *command.Router
	// Authenticator checks Basic credentials (auth-id@tenant); nil: they
	// are not checked and every request is unauthenticated.
	Authenticator Authenticator
	// CertLogin, if set, logs in devices by the client certificate of a
	// TLS connection (before any Authorization header is looked at, as
	// Hono does).
	CertLogin *auth.CertLogin
	// JWT, if set, logs in devices with Authorization: Bearer <JWT> whose
	// tid and sub claims name tenant and auth-id, checked against the
	// device's rpk credential.
	JWT JWTChecker
	// RequireAuth refuses requests without credentials (401).
	RequireAuth bool
	// Tenant is the tenant of a bare auth-id. Default DEFAULT_TENANT.
	Tenant string
	// ActsFor reports whether gateway may act for device. Nil: no
	// gateways.
	ActsFor func(ctx context.Context, tenant, gateway, device string) (bool, error)
	// MaxTTD caps hono-ttd when the tenant sets no max-ttd. Default 60s.
	MaxTTD time.Duration
	// MaxBodySize bounds what is read of a request body before the
	// payload limit answers 413. Default 1 MiB.
	MaxBodySize int64
	Logger      *slog.Logger
}

// Adapter serves Hono's HTTP device API.
type Adapter struct {
	opts Options
	log  *slog.Logger
}

// New returns an Adapter.
func New(opts Options) *Adapter {
	if opts.Tenant == "" {
		opts.Tenant = "DEFAULT_TENANT"
	}
	if opts.MaxTTD <= 0 {
		opts.MaxTTD = 60 * time.Second
	}
	if opts.MaxBodySize <= 0 {
		opts.MaxBodySize = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Adapter{opts: opts, log: opts.Logger}
}

// Wrap serves the adapter's paths and hands every other request to next.
// The adapter must come before an http.ServeMux: a mux would redirect
// Hono's gateway URIs (/telemetry//<device>) to a cleaned path.
func (a *Adapter) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		for _, prefix := range []string{"/telemetry", "/event", "/command/res/"} {
			if rest, ok := strings.CutPrefix(p, prefix); ok && (rest == "" || rest[0] == '/' || prefix[len(prefix)-1] == '/') {
				a.ServeHTTP(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// problem writes an RFC 9457 problem body.
func problem(w http.ResponseWriter, status int, detail string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="Hono"`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail,
	})
}

func fail(w http.ResponseWriter, e *downstream.Error) { problem(w, e.Status, e.Msg) }

// login is who sent a request: a device, or nobody (unauthenticated).
type login struct{ tenant, device string }

func (a *Adapter) login(r *http.Request) (login, *downstream.Error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && a.opts.CertLogin != nil {
		id, err := a.opts.CertLogin.Authenticate(r.Context(), r.TLS.PeerCertificates)
		return a.loggedIn(id, err, "client certificate "+r.TLS.PeerCertificates[0].Subject.String())
	}
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && a.opts.JWT != nil {
		tenant, authID, ok := registry.JWTIdentity(token)
		if !ok {
			return login{}, downstream.Errorf(401, "the bearer token is not a JWT with tid (tenant) and sub (auth-id) claims")
		}
		id, err := a.opts.JWT.AuthenticateJWT(r.Context(), tenant, authID, token)
		return a.loggedIn(id, err, "JWT of "+authID+"@"+tenant)
	}
	user, pw, ok := r.BasicAuth()
	if !ok || a.opts.Authenticator == nil {
		if a.opts.RequireAuth {
			return login{}, downstream.Errorf(401, "credentials required: Basic auth-id@tenant, a Bearer JWT or a client certificate")
		}
		return login{}, nil
	}
	authID, tenant, ok := registry.SplitUsername(user)
	if !ok {
		authID, tenant = user, a.opts.Tenant
	}
	id, err := a.opts.Authenticator.Authenticate(r.Context(), tenant, authID, pw)
	return a.loggedIn(id, err, "auth-id@tenant "+user)
}

// loggedIn maps the result of a login to the device or Hono's status.
func (a *Adapter) loggedIn(id registry.Identity, err error, who string) (login, *downstream.Error) {
	switch {
	case err == nil:
		return login{tenant: id.TenantID, device: id.DeviceID}, nil
	case errors.Is(err, registry.ErrDisabled):
		return login{}, downstream.Errorf(403, "the device or its tenant is disabled")
	case errors.Is(err, registry.ErrBadCredentials):
		return login{}, downstream.Errorf(401, "%s: unknown or wrong credentials", who)
	default:
		a.log.Error("authentication failed", "who", who, "err", err)
		return login{}, downstream.Errorf(503, "the device registry cannot be read")
	}
}

func (a *Adapter) target(r *http.Request, l login, tenant, device string) (string, string, string, *downstream.Error) {
	return downstream.Target(l.tenant, l.device, tenant, device, func(dev string) (bool, error) {
		if a.opts.ActsFor == nil {
			return false, nil
		}
		return a.opts.ActsFor(r.Context(), l.tenant, l.device, dev)
	})
}

// param is a Hono request parameter: the header, else the query parameter.
func param(r *http.Request, name string) string {
	if v := r.Header.Get(name); v != "" {
		return v
	}
	return r.URL.Query().Get(name)
}

// ServeHTTP implements http.Handler.
func (a *Adapter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch segs[0] {
	case "telemetry", "event":
		a.upstream(w, r, segs)
	case "command":
		a.response(w, r, segs)
	default:
		problem(w, http.StatusNotFound, "no such resource")
	}
}

// method checks that r uses POST for the bare form (an authenticated
// device) and PUT for the forms that name tenant and device.
func method(w http.ResponseWriter, r *http.Request, bare bool) bool {
	want := http.MethodPut
	if bare {
		want = http.MethodPost
	}
	if r.Method != want {
		w.Header().Set("Allow", want)
		problem(w, http.StatusMethodNotAllowed, fmt.Sprintf("use %s for %s", want, r.URL.Path))
		return false
	}
	return true
}

// upstream handles telemetry and events: /telemetry (POST),
// /telemetry/<tenant>/<device> and /telemetry//<device> (PUT).
func (a *Adapter) upstream(w http.ResponseWriter, r *http.Request, segs []string) {
	ep := hono.Telemetry
	if segs[0] == "event" {
		ep = hono.Event
	}
	var tenant, device string
	switch len(segs) {
	case 1:
		if !method(w, r, true) {
			return
		}
	case 3:
		if !method(w, r, false) {
			return
		}
		tenant, device = segs[1], segs[2]
		if device == "" {
			problem(w, http.StatusNotFound, "the URI names no device")
			return
		}
	default:
		problem(w, http.StatusNotFound, "use /"+segs[0]+", /"+segs[0]+"/<tenant>/<device> or /"+segs[0]+"//<device>")
		return
	}
	l, derr := a.login(r)
	if derr != nil {
		fail(w, derr)
		return
	}
	tenant, device, gateway, derr := a.target(r, l, tenant, device)
	if derr != nil {
		fail(w, derr)
		return
	}
	qos := byte(1)
	if ep == hono.Telemetry {
		switch q := param(r, "qos-level"); q {
		case "", "0":
			qos = 0
		case "1":
		default:
			problem(w, http.StatusBadRequest, "qos-level must be 0 or 1, not "+q)
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, a.opts.MaxBodySize+1))
	if err != nil {
		problem(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if int64(len(body)) > a.opts.MaxBodySize {
		problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body exceeds %d bytes", a.opts.MaxBodySize))
		return
	}
	dm := &downstream.Message{Endpoint: ep, Tenant: tenant, Device: device, Gateway: gateway,
		Adapter: hono.AdapterHTTP, Address: r.URL.Path, QoS: qos, Payload: body, ContentType: r.Header.Get("Content-Type")}
	if ep == hono.Event {
		if s := param(r, "hono-ttl"); s != "" {
			secs, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				problem(w, http.StatusBadRequest, "hono-ttl must be a number of seconds")
				return
			}
			dm.TTL = time.Duration(secs) * time.Second
		}
	}
	var ttd time.Duration
	if s := param(r, "hono-ttd"); s != "" {
		var derr *downstream.Error
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
	if ttd > 0 && a.opts.Commands != nil {
		var cancel func()
		waiter, cancel = a.opts.Commands.Wait(tenant, device, gateway)
		defer cancel()
	}
	done := make(chan *downstream.Error, 1)
	a.opts.Downstream.Publish(tenant, hm, func(e *downstream.Error) { done <- e })
	select {
	case derr = <-done:
	case <-r.Context().Done():
		return
	}
	if derr != nil {
		fail(w, derr)
		return
	}
	if waiter == nil {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	t := time.NewTimer(ttd)
	defer t.Stop()
	select {
	case c := <-waiter.C():
		writeCommand(w, c)
	case <-t.C:
		w.WriteHeader(http.StatusAccepted)
	case <-r.Context().Done():
	}
}

// response handles a command response: POST /command/res/<req-id>,
// PUT /command/res/<tenant>/<device>/<req-id> or /command/res//<device>/<req-id>.
func (a *Adapter) response(w http.ResponseWriter, r *http.Request, segs []string) {
	var tenant, device, reqID string
	switch {
	case len(segs) == 3 && segs[1] == "res":
		if !method(w, r, true) {
			return
		}
		reqID = segs[2]
	case len(segs) == 5 && segs[1] == "res":
		if !method(w, r, false) {
			return
		}
		tenant, device, reqID = segs[2], segs[3], segs[4]
	default:
		problem(w, http.StatusNotFound, "use /command/res/<req-id> or /command/res/[<tenant>]/<device>/<req-id>")
		return
	}
	l, derr := a.login(r)
	if derr != nil {
		fail(w, derr)
		return
	}
	tenant, device, _, derr = a.target(r, l, tenant, device)
	if derr != nil {
		fail(w, derr)
		return
	}
	status, err := strconv.Atoi(param(r, "hono-cmd-status"))
	if err != nil || status < 200 || status > 599 {
		problem(w, http.StatusBadRequest, "hono-cmd-status must be an HTTP status code")
		return
	}
	id, err := hono.DecodeReqID(reqID, device)
	if err != nil {
		problem(w, http.StatusBadRequest, "malformed request id "+reqID)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, a.opts.MaxBodySize+1))
	if err != nil || int64(len(body)) > a.opts.MaxBodySize {
		problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body exceeds %d bytes", a.opts.MaxBodySize))
		return
	}
	if a.opts.Commands == nil {
		problem(w, http.StatusServiceUnavailable, "commands are not routed here")
		return
	}
	if err := a.opts.Commands.Respond(&command.Response{Messaging: id.Messaging, Tenant: tenant, Device: device, CorrelationID: id.CorrelationID,
		ReplyID: id.ReplyID, Status: status, ContentType: r.Header.Get("Content-Type"), Payload: body}); err != nil {
		problem(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
