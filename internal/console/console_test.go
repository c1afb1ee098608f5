package console

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/internal/adapter/mqttadapter"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/metrics"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/registryapi"
	"github.com/ferry-iot/ferry/internal/store/memstore"
)

const adminPW = "admin-pw"

// fakeClients are the connected clients of a test.
type fakeClients struct {
	mu      sync.Mutex
	clients []mqttadapter.Client
	kicked  []string
}

func (f *fakeClients) Clients(tenant string) []mqttadapter.Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []mqttadapter.Client
	for _, c := range f.clients {
		if tenant == "" || c.Tenant == tenant {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeClients) Kick(tenant, id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.clients {
		if c.Tenant == tenant && c.ClientID == id {
			f.kicked = append(f.kicked, tenant+"/"+id)
			return true
		}
	}
	return false
}

type env struct {
	t       *testing.T
	c       *Console
	hub     *hub.Hub
	clients *fakeClients
	metrics *metrics.Metrics
	reg     *registry.Registry
}

func hash(t *testing.T, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// newEnv builds a console over a hub, fake clients in tenants acme and
// other, the metrics and a registry API, with users admin, app (tenant
// acme) and every (tenant "*").
func newEnv(t *testing.T) *env {
	t.Helper()
	h := hub.New(hub.Options{})
	t.Cleanup(func() { h.Close(context.Background()) })
	reg, err := registry.New(memstore.NewRegistry(), &registry.Options{BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	m.Connected("acme", "mqtt")
	m.Connected("other", "mqtt")
	clients := &fakeClients{clients: []mqttadapter.Client{
		{Tenant: "acme", ClientID: "a-1", Protocol: "mqtt", Device: "dev-a", Version: "5.0", RemoteAddr: "127.0.0.1:1000"},
		{Tenant: "other", ClientID: "o-1", Protocol: "mqtt", Device: "dev-o", Version: "3.1.1", RemoteAddr: "127.0.0.1:2000"},
	}}
	c := New(Options{
		Hub: h, Clients: clients, Metrics: m.Gatherer(),
		Upstream:      registryapi.New(reg, registryapi.Options{AdminPassword: adminPW}),
		AdminPassword: adminPW,
		Users: []User{
			{Name: "app", PasswordHash: hash(t, "app-pw"), Tenants: []string{"acme"}},
			{Name: "every", PasswordHash: hash(t, "every-pw"), Tenants: []string{"*"}},
		},
		Interval: 20 * time.Millisecond,
		Logger:   slog.New(slog.DiscardHandler),
	})
	t.Cleanup(c.Close)
	return &env{t: t, c: c, hub: h, clients: clients, metrics: m, reg: reg}
}

// login returns the cookie and CSRF token of a session of user.
func (e *env) login(user, pw string) (*http.Cookie, string) {
	e.t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/console/api/login", strings.NewReader(`{"user":"`+user+`","password":"`+pw+`"}`))
	req.Header.Set("Content-Type", "application/json")
	e.c.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		e.t.Fatalf("login %s: %d %s", user, rec.Code, rec.Body)
	}
	var me meResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &me); err != nil {
		e.t.Fatal(err)
	}
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == CookieName {
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console" {
				e.t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/console", ck)
			}
			return ck, me.CSRF
		}
	}
	e.t.Fatal("no session cookie")
	return nil, ""
}

// do serves one request; as sets its credentials.
func (e *env) do(method, target, body string, as func(*http.Request)) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if as != nil {
		as(req)
	}
	rec := httptest.NewRecorder()
	e.c.Handler().ServeHTTP(rec, req)
	return rec
}

func withCookie(ck *http.Cookie, csrf string) func(*http.Request) {
	return func(r *http.Request) {
		r.AddCookie(ck)
		if csrf != "" {
			r.Header.Set(CSRFHeader, csrf)
		}
	}
}

func withBasic(user, pw, csrf string) func(*http.Request) {
	return func(r *http.Request) {
		r.SetBasicAuth(user, pw)
		if csrf != "" {
			r.Header.Set(CSRFHeader, csrf)
		}
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	ck, csrf := e.login(AdminUser, adminPW)
	stale := &http.Cookie{Name: CookieName, Value: "not-a-session"}
	for _, tc := range []struct {
		name   string
		method string
		target string
		as     func(*http.Request)
		want   int
	}{
		{"no login", http.MethodGet, "/console/api/clients", nil, http.StatusUnauthorized},
		{"unknown cookie", http.MethodGet, "/console/api/clients", withCookie(stale, ""), http.StatusUnauthorized},
		{"session", http.MethodGet, "/console/api/clients", withCookie(ck, ""), http.StatusOK},
		{"basic admin", http.MethodGet, "/console/api/clients", withBasic(AdminUser, adminPW, ""), http.StatusOK},
		{"basic wrong password", http.MethodGet, "/console/api/clients", withBasic(AdminUser, "nope", ""), http.StatusUnauthorized},
		{"basic application user", http.MethodGet, "/console/api/me", withBasic("app", "app-pw", ""), http.StatusOK},
		{"basic unknown user", http.MethodGet, "/console/api/me", withBasic("ghost", "app-pw", ""), http.StatusUnauthorized},
		{"unknown API path", http.MethodGet, "/console/api/nothing", withCookie(ck, csrf), http.StatusNotFound},
		{"unknown API path without login", http.MethodGet, "/console/api/nothing", nil, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do(tc.method, tc.target, "", tc.as)
			if rec.Code != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.target, rec.Code, rec.Body, tc.want)
			}
			if rec.Code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") != "" {
				t.Error("401 with WWW-Authenticate: the browser would offer its Basic prompt")
			}
		})
	}

	t.Run("login refused", func(t *testing.T) {
		for _, body := range []string{`{"user":"admin","password":"wrong"}`, `{"user":"app","password":"admin-pw"}`, `{"user":"admin"}`} {
			if rec := e.do(http.MethodPost, "/console/api/login", body, nil); rec.Code != http.StatusUnauthorized {
				t.Errorf("login %s: %d, want 401", body, rec.Code)
			}
		}
		req := httptest.NewRequest(http.MethodPost, "/console/api/login", strings.NewReader("user=admin&password="+adminPW))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		e.c.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusUnsupportedMediaType {
			t.Errorf("form login: %d, want 415 (a cross-site form could send it)", rec.Code)
		}
	})

	t.Run("logout", func(t *testing.T) {
		ck, csrf := e.login(AdminUser, adminPW)
		if rec := e.do(http.MethodPost, "/console/api/logout", "", withCookie(ck, csrf)); rec.Code != http.StatusNoContent {
			t.Fatalf("logout: %d", rec.Code)
		}
		if rec := e.do(http.MethodGet, "/console/api/me", "", withCookie(ck, "")); rec.Code != http.StatusUnauthorized {
			t.Fatalf("after logout: %d, want 401", rec.Code)
		}
	})

	t.Run("no admin password", func(t *testing.T) {
		c := New(Options{Hub: e.hub})
		defer c.Close()
		req := httptest.NewRequest(http.MethodGet, "/console/api/me", nil)
		req.SetBasicAuth(AdminUser, "")
		rec := httptest.NewRecorder()
		c.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("empty admin password: %d, want 401", rec.Code)
		}
	})
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	ck, csrf := e.login(AdminUser, adminPW)
	kick := "/console/api/clients/acme/a-1/kick"
	for _, tc := range []struct {
		name string
		as   func(*http.Request)
		want int
	}{
		{"session without token", withCookie(ck, ""), http.StatusForbidden},
		{"session with a wrong token", withCookie(ck, "forged"), http.StatusForbidden},
		{"session with its token", withCookie(ck, csrf), http.StatusNoContent},
		{"basic without the header", withBasic(AdminUser, adminPW, ""), http.StatusForbidden},
		{"basic with the header", withBasic(AdminUser, adminPW, "any"), http.StatusNoContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rec := e.do(http.MethodPost, kick, "", tc.as); rec.Code != tc.want {
				t.Fatalf("POST %s: %d %s, want %d", kick, rec.Code, rec.Body, tc.want)
			}
		})
	}
	// The /v1 proxy is under the same rule.
	if rec := e.do(http.MethodPost, "/console/api/v1/tenants/t1", "{}", withCookie(ck, "")); rec.Code != http.StatusForbidden {
		t.Errorf("create tenant without the token: %d, want 403", rec.Code)
	}
	if got := len(e.clients.kicked); got != 2 {
		t.Errorf("%d kicks went through, want 2", got)
	}
}

func TestTenantScoping(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tenant := range []string{"acme", "other"} {
		if _, _, err := e.reg.CreateTenant(ctx, tenant, registry.Tenant{}); err != nil {
			t.Fatal(err)
		}
		e.hub.Publish(tenant, &hub.Message{Topic: "state/" + tenant, Payload: []byte("x"), Retain: true})
	}
	app, appCSRF := e.login("app", "app-pw")
	every, _ := e.login("every", "every-pw")
	as := withCookie(app, appCSRF)

	var list struct {
		Clients []ClientInfo `json:"clients"`
	}
	rec := e.do(http.MethodGet, "/console/api/clients", "", as)
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Clients) != 1 || list.Clients[0].Tenant != "acme" {
		t.Fatalf("clients of app: %s, want acme's only", rec.Body)
	}
	rec = e.do(http.MethodGet, "/console/api/clients", "", withCookie(every, ""))
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Clients) != 2 {
		t.Fatalf("clients of every: %s, want both tenants'", rec.Body)
	}

	for _, tc := range []struct {
		method, target, body string
		want                 int
	}{
		{http.MethodGet, "/console/api/clients?tenant=other", "", http.StatusNotFound},
		{http.MethodGet, "/console/api/clients/other/o-1", "", http.StatusNotFound},
		{http.MethodGet, "/console/api/clients/acme/a-1", "", http.StatusOK},
		{http.MethodPost, "/console/api/clients/other/o-1/kick", "", http.StatusNotFound},
		{http.MethodGet, "/console/api/sessions?tenant=other", "", http.StatusNotFound},
		{http.MethodGet, "/console/api/retained?tenant=other", "", http.StatusNotFound},
		{http.MethodGet, "/console/api/retained", "", http.StatusOK}, // the user's first tenant
		{http.MethodDelete, "/console/api/retained?tenant=other&topic=state/other", "", http.StatusNotFound},
		{http.MethodGet, "/console/api/inspect?tenant=other&filter=%23", "", http.StatusNotFound},
		{http.MethodGet, "/console/api/v1/tenants/other", "", http.StatusNotFound},
		{http.MethodGet, "/console/api/v1/tenants/acme", "", http.StatusOK},
		{http.MethodGet, "/console/api/v1/devices/other", "", http.StatusNotFound},
		{http.MethodPost, "/console/api/v1/devices/other/d1", "{}", http.StatusNotFound},
		{http.MethodPost, "/console/api/v1/devices/acme/d1", "{}", http.StatusCreated},
		{http.MethodPost, "/console/api/v1/tenants", "{}", http.StatusForbidden},
		{http.MethodPost, "/console/api/v1/tenants/new", "{}", http.StatusNotFound},
		{http.MethodGet, "/console/api/v1/analytics/other/queries", "", http.StatusNotFound},
		{http.MethodGet, "/console/api/v1/other", "", http.StatusNotFound},
	} {
		if rec := e.do(tc.method, tc.target, tc.body, as); rec.Code != tc.want {
			t.Errorf("app: %s %s: %d %s, want %d", tc.method, tc.target, rec.Code, strings.TrimSpace(rec.Body.String()), tc.want)
		}
	}
	if len(e.clients.kicked) != 0 {
		t.Errorf("kicked %v", e.clients.kicked)
	}

	// The tenant list of an application user holds its tenants only.
	rec = e.do(http.MethodGet, "/console/api/v1/tenants", "", as)
	var tenants struct {
		Total  int `json:"total"`
		Result []struct {
			ID string `json:"id"`
		} `json:"result"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &tenants); err != nil || tenants.Total != 1 || tenants.Result[0].ID != "acme" {
		t.Fatalf("tenants of app: %d %s, want acme only", rec.Code, rec.Body)
	}
	// The retained messages of the user's tenant.
	rec = e.do(http.MethodGet, "/console/api/retained", "", as)
	if !strings.Contains(rec.Body.String(), "state/acme") || strings.Contains(rec.Body.String(), "state/other") {
		t.Fatalf("retained of app: %s", rec.Body)
	}
	// Live figures: the user's tenants' connections, no hub-wide figures.
	snap := view(snapshot(counters{}, counters{at: time.Unix(1, 0), conns: []ConnCount{{"acme", "mqtt", 1}, {"other", "mqtt", 1}},
		tenants: map[string]hub.Stats{"acme": {Published: 1}, "other": {Published: 2}}}),
		&session{tenants: []string{"acme"}})
	if snap.Hub != nil || len(snap.Conns) != 1 || snap.Conns[0].Tenant != "acme" || len(snap.Tenants) != 1 || snap.Tenants[0].Tenant != "acme" {
		t.Fatalf("view of app: %+v", snap)
	}
}

func TestNoSecrets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, _, err := e.reg.CreateTenant(ctx, "acme", registry.Tenant{}); err != nil {
		t.Fatal(err)
	}
	as := withBasic(AdminUser, adminPW, "x")
	if rec := e.do(http.MethodPost, "/console/api/v1/devices/acme/d1", "{}", as); rec.Code != http.StatusCreated {
		t.Fatalf("create device: %d %s", rec.Code, rec.Body)
	}
	creds := `[{"type":"hashed-password","auth-id":"d1","secrets":[{"pwd-plain":"device-secret"}]}]`
	if rec := e.do(http.MethodPut, "/console/api/v1/credentials/acme/d1", creds, as); rec.Code != http.StatusNoContent {
		t.Fatalf("set credentials: %d %s", rec.Code, rec.Body)
	}
	for _, target := range []string{"/console/api/v1/credentials/acme/d1", "/console/api/me", "/console/api/clients", "/console/api/sessions"} {
		rec := e.do(http.MethodGet, target, "", as)
		body := rec.Body.String()
		for _, secret := range []string{"device-secret", "$2", "pwd-hash", adminPW, "app-pw"} {
			if strings.Contains(body, secret) {
				t.Errorf("GET %s returns %q: %s", target, secret, body)
			}
		}
	}
}

func TestRetained(t *testing.T) {
	e := newEnv(t)
	as := withBasic(AdminUser, adminPW, "x")
	e.hub.Publish("DEFAULT_TENANT", &hub.Message{Topic: "a/b", Payload: []byte("text"), Retain: true, QoS: 1})
	e.hub.Publish("DEFAULT_TENANT", &hub.Message{Topic: "a/bin", Payload: []byte{0xff, 0xfe}, Retain: true})
	e.hub.Publish("DEFAULT_TENANT", &hub.Message{Topic: "c", Payload: []byte(strings.Repeat("é", maxShownPayload)), Retain: true})

	var res struct {
		Retained []RetainedInfo `json:"retained"`
	}
	rec := e.do(http.MethodGet, "/console/api/retained?filter=%23", "", as)
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || len(res.Retained) != 3 {
		t.Fatalf("retained: %d %s", rec.Code, rec.Body)
	}
	got := res.Retained
	if got[0].Topic != "a/b" || got[0].Payload != "text" || got[0].QoS != 1 {
		t.Errorf("text message: %+v", got[0])
	}
	if got[1].PayloadB64 != "//4=" || got[1].Payload != "" {
		t.Errorf("binary message: %+v", got[1])
	}
	if !got[2].Truncated || got[2].Size != 2*maxShownPayload || len(got[2].Payload) > maxShownPayload || got[2].Payload == "" {
		t.Errorf("long message: truncated %v, size %d, shown %d bytes", got[2].Truncated, got[2].Size, len(got[2].Payload))
	}

	for _, tc := range []struct {
		target string
		want   int
	}{
		{"/console/api/retained?filter=a/%2B/%23/x", http.StatusBadRequest},
		{"/console/api/retained?filter=%23&limit=1", http.StatusOK},
	} {
		if rec := e.do(http.MethodGet, tc.target, "", as); rec.Code != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.target, rec.Code, tc.want)
		}
	}
	for _, tc := range []struct {
		target string
		want   int
	}{
		{"/console/api/retained?topic=a/%2B", http.StatusBadRequest},
		{"/console/api/retained?topic=", http.StatusBadRequest},
		{"/console/api/retained?topic=no/such", http.StatusNotFound},
		{"/console/api/retained?topic=a/b", http.StatusNoContent},
		{"/console/api/retained?topic=a/b", http.StatusNotFound},
	} {
		if rec := e.do(http.MethodDelete, tc.target, "", as); rec.Code != tc.want {
			t.Errorf("DELETE %s: %d %s, want %d", tc.target, rec.Code, rec.Body, tc.want)
		}
	}
	if n := len(e.hub.Retained("DEFAULT_TENANT", "#", 0)); n != 2 {
		t.Errorf("%d retained messages left, want 2", n)
	}
}

func TestClientsAndSessions(t *testing.T) {
	e := newEnv(t)
	as := withBasic(AdminUser, adminPW, "")
	s, _ := e.hub.Open("acme", "a-1", true)
	if _, err := s.Subscribe(hub.Subscription{Filter: "cmd/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	e.hub.Open("acme", "offline", true)

	rec := e.do(http.MethodGet, "/console/api/clients/acme/a-1", "", as)
	var ci ClientInfo
	if err := json.Unmarshal(rec.Body.Bytes(), &ci); err != nil {
		t.Fatal(err)
	}
	if ci.Device != "dev-a" || ci.Version != "5.0" || ci.NumSubscriptions != 1 || len(ci.Subscriptions) != 1 || ci.Subscriptions[0].Filter != "cmd/#" {
		t.Fatalf("client details: %s", rec.Body)
	}
	var list struct {
		Total   int          `json:"total"`
		Clients []ClientInfo `json:"clients"`
	}
	for q, want := range map[string]int{"": 2, "dev-o": 1, "127.0.0.1:1000": 1, "DEV-A": 1, "none": 0} {
		rec := e.do(http.MethodGet, "/console/api/clients?q="+q, "", as)
		if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || list.Total != want || len(list.Clients) != want {
			t.Errorf("search %q: %s, want %d", q, rec.Body, want)
		}
	}
	if rec := e.do(http.MethodGet, "/console/api/clients/acme/none", "", as); rec.Code != http.StatusNotFound {
		t.Errorf("unknown client: %d", rec.Code)
	}
	var sessions struct {
		Sessions []SessionInfo `json:"sessions"`
	}
	rec = e.do(http.MethodGet, "/console/api/sessions?tenant=acme", "", as)
	if err := json.Unmarshal(rec.Body.Bytes(), &sessions); err != nil || len(sessions.Sessions) != 2 || sessions.Sessions[1].ClientID != "offline" {
		t.Fatalf("sessions: %s", rec.Body)
	}
	rec = e.do(http.MethodGet, "/console/api/sessions?q=cmd/", "", as)
	if err := json.Unmarshal(rec.Body.Bytes(), &sessions); err != nil || len(sessions.Sessions) != 1 || sessions.Sessions[0].ClientID != "a-1" {
		t.Fatalf("sessions subscribed to cmd/: %s", rec.Body)
	}
	if rec := e.do(http.MethodPost, "/console/api/clients/acme/none/kick", "", withBasic(AdminUser, adminPW, "x")); rec.Code != http.StatusNotFound {
		t.Errorf("kick of an unknown client: %d", rec.Code)
	}
}

// events reads the events of an SSE stream until stop returns true.
func events(t *testing.T, body io.Reader, stop func(event, data string) bool) {
	t.Helper()
	sc := bufio.NewScanner(body)
	var event string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if stop(event, strings.TrimPrefix(line, "data: ")) {
				return
			}
		}
	}
	t.Fatalf("stream ended: %v", sc.Err())
}

func stream(t *testing.T, srv *httptest.Server, target string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(AdminUser, adminPW)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", target, resp.Status, b)
	}
	return resp
}

func TestInspect(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.c.Handler())
	t.Cleanup(srv.Close) // after the streams' bodies are closed
	e.hub.Publish("acme", &hub.Message{Topic: "s/retained", Payload: []byte("old"), Retain: true})
	resp := stream(t, srv, "/console/api/inspect?tenant=acme&filter=s/%23")
	var got []InspectedMessage
	events(t, resp.Body, func(event, data string) bool {
		switch event {
		case "subscribed":
			e.hub.Publish("acme", &hub.Message{Topic: "s/live", Payload: []byte("new")})
			e.hub.Publish("other", &hub.Message{Topic: "s/live", Payload: []byte("other tenant")})
		case "message":
			var m InspectedMessage
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				t.Fatal(err)
			}
			got = append(got, m)
		}
		return len(got) == 2
	})
	if got[0].Topic != "s/retained" || !got[0].Retain || got[1].Topic != "s/live" || got[1].Payload != "new" {
		t.Fatalf("inspected %+v", got)
	}
	// The inspector's session is the hub's internal business.
	if n := len(e.hub.Sessions("acme", "")); n != 1 {
		t.Fatalf("%d sessions in acme, want the inspector's", n)
	}
	var sessions struct {
		Sessions []SessionInfo `json:"sessions"`
	}
	rec := e.do(http.MethodGet, "/console/api/sessions", "", withBasic(AdminUser, adminPW, ""))
	if err := json.Unmarshal(rec.Body.Bytes(), &sessions); err != nil || len(sessions.Sessions) != 0 {
		t.Fatalf("sessions shown: %s", rec.Body)
	}
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(e.hub.Sessions("acme", "")) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the inspector's session outlived its stream")
		}
		time.Sleep(5 * time.Millisecond)
	}

	for _, target := range []string{"/console/api/inspect?filter=a/%23/b", "/console/api/inspect?filter=", "/console/api/inspect?filter=$share/g/a"} {
		if rec := e.do(http.MethodGet, target, "", withBasic(AdminUser, adminPW, "")); rec.Code != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", target, rec.Code)
		}
	}
}

func TestInspectSinkDrops(t *testing.T) {
	s := &inspectSink{ch: make(chan inspected, 2)}
	m := &hub.Message{Topic: "t"}
	for range 5 {
		if !s.Deliver(hub.Delivery{Message: m}) {
			t.Fatal("Deliver refused: the hub would queue for the inspector")
		}
	}
	if len(s.ch) != 2 || s.dropped.Load() != 3 {
		t.Fatalf("%d buffered, %d dropped; want 2 and 3", len(s.ch), s.dropped.Load())
	}
}

func TestLive(t *testing.T) {
	e := newEnv(t)
	e.hub.AddTenant("acme")
	srv := httptest.NewServer(e.c.Handler())
	t.Cleanup(srv.Close) // after the streams' bodies are closed
	resp := stream(t, srv, "/console/api/live")
	samples := 0
	events(t, resp.Body, func(event, data string) bool {
		if event != "sample" {
			return false
		}
		var s Snapshot
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			t.Fatal(err)
		}
		if s.Hub == nil || len(s.Conns) != 2 {
			t.Fatalf("sample %s: want hub-wide figures and two tenants' connections", data)
		}
		if len(s.Tenants) == 0 {
			t.Fatalf("sample %s: no tenant figures", data)
		}
		samples++
		return samples == 2
	})
	resp.Body.Close()
	// A later watcher gets the history first.
	resp = stream(t, srv, "/console/api/live")
	events(t, resp.Body, func(event, data string) bool {
		var hist []Snapshot
		if event != "history" || json.Unmarshal([]byte(data), &hist) != nil || len(hist) < 2 {
			t.Fatalf("first event %s %s: want the history", event, data)
		}
		return true
	})
	resp.Body.Close()
}

func TestSnapshot(t *testing.T) {
	bounds := []float64{0.001, 0.01, 0.1}
	prev := counters{at: time.Unix(100, 0), in: 10, out: 5, drops: map[string]float64{"expired": 1},
		storeN: 10, storeSum: 0.01, storeBounds: bounds, storeCumul: []float64{10, 10, 10}}
	cur := counters{at: time.Unix(102, 0), in: 30, out: 9, drops: map[string]float64{"expired": 5, "store_quota": 2},
		storeN: 110, storeSum: 0.51, storeBounds: bounds, storeCumul: []float64{10, 60, 110}, queued: 7}
	s := snapshot(prev, cur)
	h := s.Hub
	if s.T != 102000 || h.InPerSec != 10 || h.OutPerSec != 2 || h.DropsPerSec["expired"] != 2 || h.DropsPerSec["store_quota"] != 1 || h.Queued != 7 {
		t.Fatalf("snapshot %+v %+v", s, *h)
	}
	if h.StoreOpsPerSec != 50 || h.StoreMeanMs == nil || *h.StoreMeanMs != 5 {
		t.Fatalf("store: %v ops/s, mean %v", h.StoreOpsPerSec, h.StoreMeanMs)
	}
	// 100 writes: 50 in (1 ms, 10 ms], 50 in (10 ms, 100 ms]; the 99th is
	// 98% of the way through the second bucket.
	if h.StoreP99Ms == nil || *h.StoreP99Ms < 98 || *h.StoreP99Ms > 98.3 {
		t.Fatalf("p99 %v ms, want about 98.2", h.StoreP99Ms)
	}
	if s := snapshot(cur, cur); s.Hub.StoreMeanMs != nil || s.Hub.StoreP99Ms != nil {
		t.Fatal("latency without writes: want null")
	}

	// Tenants' figures: rates since the last sample, or since nothing for
	// a tenant new since.
	var drops [hub.NumDropReasons]uint64
	drops[hub.DropExpired] = 4
	prev.tenants = map[string]hub.Stats{"b": {Published: 10, Sent: 10}}
	cur.tenants = map[string]hub.Stats{"b": {Published: 14, Sent: 20, Queued: 3, Drops: drops}, "a": {Published: 2}}
	ts := snapshot(prev, cur).Tenants
	if len(ts) != 2 || ts[0].Tenant != "a" || ts[0].PublishedPerSec != 1 || ts[1].PublishedPerSec != 2 || ts[1].SentPerSec != 5 ||
		ts[1].Queued != 3 || ts[1].DropsPerSec["expired"] != 2 {
		t.Fatalf("tenants %+v", ts)
	}
}

func TestStatic(t *testing.T) {
	e := newEnv(t)
	rec := e.do(http.MethodGet, "/console/", "", nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "app.js") {
		t.Fatalf("GET /console/: %d", rec.Code)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, f := range []string{"app.js", "app.css", "vendor/uplot-1.6.32/uPlot.iife.min.js", "vendor/uplot-1.6.32/LICENSE"} {
		if rec := e.do(http.MethodGet, "/console/"+f, "", nil); rec.Code != http.StatusOK {
			t.Errorf("GET /console/%s: %d", f, rec.Code)
		}
	}
	if rec := e.do(http.MethodGet, "/console", "", nil); rec.Code != http.StatusMovedPermanently {
		t.Errorf("GET /console: %d, want a redirect", rec.Code)
	}
	if rec := e.do(http.MethodPost, "/console/", "", nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /console/: %d", rec.Code)
	}
}

func TestProxy(t *testing.T) {
	var got *http.Request
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("event: row\ndata: {}\n\n"))
	})
	c := New(Options{Hub: hub.New(hub.Options{}), Upstream: upstream, AdminPassword: adminPW,
		Users: []User{{Name: "app", PasswordHash: hash(t, "app-pw"), Tenants: []string{"a/b"}}}})
	defer c.Close()
	req := httptest.NewRequest(http.MethodGet, "/console/api/v1/analytics/a%2Fb/queries/q1/stream?key=dev-1", nil)
	req.SetBasicAuth("app", "app-pw")
	req.AddCookie(&http.Cookie{Name: CookieName, Value: "x"})
	rec := httptest.NewRecorder()
	c.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || got == nil {
		t.Fatalf("proxied stream: %d %s", rec.Code, rec.Body)
	}
	if got.URL.EscapedPath() != "/v1/analytics/a%2Fb/queries/q1/stream" || got.URL.RawQuery != "key=dev-1" {
		t.Errorf("upstream got %s ? %s", got.URL.EscapedPath(), got.URL.RawQuery)
	}
	if user, pw, _ := got.BasicAuth(); user != AdminUser || pw != adminPW {
		t.Errorf("upstream credentials %s:%s, want admin's", user, pw)
	}
	if got.Header.Get("Cookie") != "" {
		t.Error("the console's cookie reached the upstream")
	}
	if !strings.Contains(rec.Body.String(), "event: row") {
		t.Errorf("body %q", rec.Body)
	}
}

// TestOpenAPI checks that the OpenAPI document parses and names every
// route of the API.
func TestOpenAPI(t *testing.T) {
	e := newEnv(t)
	rec := e.do(http.MethodGet, "/console/api/openapi.yaml", "", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /console/api/openapi.yaml: %d", rec.Code)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, route := range []string{"POST /console/api/login", "POST /console/api/logout", "GET /console/api/me",
		"GET /console/api/clients", "GET /console/api/clients/{tenant}/{client}", "POST /console/api/clients/{tenant}/{client}/kick",
		"GET /console/api/sessions", "GET /console/api/retained", "DELETE /console/api/retained", "GET /console/api/live",
		"GET /console/api/inspect", "GET /console/api/v1/{path}", "PUT /console/api/v1/{path}"} {
		method, path, _ := strings.Cut(route, " ")
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("console-v1.yaml lacks %s", route)
		}
	}
}

// TestInspectManyRetained: a filter that matches more retained messages
// than an answer holds gets the first maxList and the number left out.
func TestInspectManyRetained(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.c.Handler())
	t.Cleanup(srv.Close)
	for i := range maxList + 2 {
		e.hub.Publish("acme", &hub.Message{Topic: fmt.Sprintf("r/%d", i), Payload: []byte("x"), Retain: true})
	}
	resp := stream(t, srv, "/console/api/inspect?tenant=acme&filter=r/%23")
	n := 0
	events(t, resp.Body, func(event, data string) bool {
		switch event {
		case "message":
			n++
		case "retained_more":
			if data != `{"more":2}` {
				t.Errorf("retained_more %s", data)
			}
			return true
		}
		return false
	})
	if n != maxList {
		t.Fatalf("%d retained messages shown, want %d", n, maxList)
	}
	resp.Body.Close()
}
