// Package console is Ferry's web console: a small single-page application
// served from files embedded in the binary under /console/, and the JSON
// and Server-Sent Events API it runs on under /console/api/.
//
// # Basics
//
// [New] returns a [Console]; its [Console.Handler] serves both trees and is
// mounted on the node's --http-addr mux. What the console shows comes from
// what already exists: live figures from the node's Prometheus registry
// (gathered in-process once a second while somebody watches), clients from
// the MQTT adapter, sessions and retained messages from the hub, the
// registry and the analytics through the node's own /v1 handlers (proxied
// under /console/api/v1/ so that the browser never holds the admin
// password), and the topic inspector through an internal hub subscription.
//
// Every API call needs a login: the admin user (the registry API's admin
// password) or an application user of the configuration (applications[]),
// who sees and changes only its tenants. A login sets an HttpOnly,
// SameSite=Strict session cookie; calls that change something also need
// the session's CSRF token in the X-CSRF-Token header. Scripts may use HTTP
// Basic authentication instead of the cookie, and then send any
// X-CSRF-Token on changes (a custom header is what a cross-site page
// cannot send without a CORS preflight, which the console never grants).
// docs/console.md documents the API.
//
// # Caveats
//
//   - Sessions live in memory: a restart logs everybody out.
//   - Hub-wide figures (client message rates, store latency) have no
//     tenant label; an application user sees its tenants' connections and
//     their hub figures (published, sent, dropped, queued) only.
//   - A topic inspector is a hub session (client ID under $hono/console/)
//     with a QoS 0 subscription; it drops, and counts, what the browser
//     does not read in time.
package console

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-iot/ferry/docs/openapi"
	"github.com/ferry-iot/ferry/internal/auth"
	"github.com/ferry-iot/ferry/internal/clients"
	"github.com/ferry-iot/ferry/internal/hub"
)

// Clients lists and closes client connections; *mqttadapter.Adapter is
// one.
type Clients interface {
	Clients(tenant string) []clients.Client
	Kick(tenant, clientID string) bool
}

// User is an application user who may log in to the console and sees only
// its tenants.
type User struct {
	Name string
	// PasswordHash is a bcrypt hash of the password.
	PasswordHash string
	// Tenants the user may see and change; "*" for every tenant.
	Tenants []string
}

// Options configure a Console.
type Options struct {
	// Hub is the node's router: sessions, retained messages, the topic
	// inspector.
	Hub *hub.Hub
	// Clients are the open connections; nil shows none.
	Clients Clients
	// Metrics is the registry /metrics serves, read for the live figures.
	Metrics prometheus.Gatherer
	// Upstream serves the /v1 API (registry, analytics); the console
	// forwards /console/api/v1/... to it as user admin.
	Upstream http.Handler
	// AdminPassword is the password of user admin, the registry API's.
	// Empty: admin cannot log in.
	AdminPassword string
	// Users are the application users.
	Users []User
	// DefaultTenant is the tenant of anonymous clients; the console opens
	// on it.
	DefaultTenant string
	// Logger; if nil, slog.Default().
	Logger *slog.Logger
	// Interval is the period of the live figures. If zero, one second.
	Interval time.Duration
	// History is how many samples of live figures are kept for a browser
	// that opens the overview. If zero, 600 (ten minutes at one second).
	History int
	// SessionTTL is how long a login lasts without use. If zero, 12 hours.
	SessionTTL time.Duration
	// Now is the clock, for tests. If nil, time.Now.
	Now func() time.Time
}

// Console serves the web console. Close ends its live streams.
type Console struct {
	opts   Options
	log    *slog.Logger
	users  *users
	live   *sampler
	static fs.FS
	mux    *http.ServeMux
	// limiter slows password guessing per remote address, as for device
	// logins.
	limiter *auth.Limiter
	// inspectors bounds the topic inspectors open at once.
	inspectors chan struct{}

	// ctx ends at Close: the live streams and the sampler end with it.
	ctx    context.Context
	cancel context.CancelFunc
}

// MaxInspectors bounds the topic inspectors open at once, hub-wide.
const MaxInspectors = 32

// New returns a console over opts.
func New(opts Options) *Console {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.History <= 0 {
		opts.History = 600
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DefaultTenant == "" {
		opts.DefaultTenant = "DEFAULT_TENANT"
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Console{
		opts:       opts,
		log:        opts.Logger,
		users:      newUsers(opts.AdminPassword, opts.Users, opts.SessionTTL, opts.Now),
		limiter:    &auth.Limiter{Burst: 10, Interval: time.Second, Max: 10_000},
		inspectors: make(chan struct{}, MaxInspectors),
		ctx:        ctx,
		cancel:     cancel,
	}
	var tenants func() map[string]hub.Stats
	if opts.Hub != nil {
		tenants = hubTenants(opts.Hub)
	}
	c.live = newSampler(opts.Metrics, tenants, opts.Interval, opts.History, opts.Now)
	c.static = staticFiles()
	c.mux = c.routes()
	return c
}

// Handler serves /console/ (the application) and /console/api/ (its API).
func (c *Console) Handler() http.Handler { return c.mux }

// Close ends the live streams (SSE) and the sampler and waits for the
// sampler: an HTTP server's Shutdown does not end long requests by itself.
// Register it with http.Server.RegisterOnShutdown.
func (c *Console) Close() {
	c.cancel()
	c.live.wait()
}

func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
	})
	mux.Handle("/console/", c.staticHandler())

	mux.HandleFunc("GET /console/api/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openapi.ConsoleV1)
	})
	mux.HandleFunc("POST /console/api/login", c.login)
	mux.HandleFunc("POST /console/api/logout", c.logout)
	api := func(pattern string, h func(http.ResponseWriter, *http.Request, *session)) {
		mux.Handle(pattern, c.authed(h))
	}
	api("GET /console/api/me", c.me)
	api("GET /console/api/clients", c.listClients)
	api("GET /console/api/clients/{tenant}/{client}", c.getClient)
	api("POST /console/api/clients/{tenant}/{client}/kick", c.kickClient)
	api("GET /console/api/sessions", c.listSessions)
	api("GET /console/api/retained", c.listRetained)
	api("DELETE /console/api/retained", c.deleteRetained)
	api("GET /console/api/live", c.streamLive)
	api("GET /console/api/inspect", c.inspect)
	api("/console/api/v1/", c.proxy)
	mux.Handle("/console/api/", c.authed(func(w http.ResponseWriter, r *http.Request, _ *session) {
		writeError(w, http.StatusNotFound, "no such resource: "+r.Method+" "+r.URL.Path)
	}))
	return mux
}
