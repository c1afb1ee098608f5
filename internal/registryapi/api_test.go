package registryapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/memstore"
)

const testPassword = "test-admin-pw"

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	reg, err := registry.New(memstore.NewRegistry(), &registry.Options{BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(reg, Options{AdminPassword: testPassword, MaxBodyBytes: 64 << 10}))
	t.Cleanup(srv.Close)
	return srv
}

// call is one request of a scripted exchange.
type call struct {
	method, path, body string
	header             map[string]string
	noAuth             bool
	want               int
	// wantBody, if set, must be contained in the response body.
	wantBody string
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, srv *httptest.Server, c call) response {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, srv.URL+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if !c.noAuth {
		req.SetBasicAuth(AdminUser, testPassword)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{resp.StatusCode, resp.Header, string(b)}
	if c.want != 0 && r.status != c.want {
		t.Fatalf("%s %s: status %d, body %s; want %d", c.method, c.path, r.status, r.body, c.want)
	}
	if c.wantBody != "" && !strings.Contains(r.body, c.wantBody) {
		t.Fatalf("%s %s: body %s; want it to contain %s", c.method, c.path, r.body, c.wantBody)
	}
	if r.status >= 400 {
		var e struct{ Error string }
		if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
			t.Fatalf("%s %s: error body %q is not {\"error\": ...}", c.method, c.path, b)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s %s: error Content-Type %q", c.method, c.path, ct)
		}
	}
	return r
}

func TestTenantLifecycle(t *testing.T) {
	srv := newTestServer(t)
	r := do(t, srv, call{method: "POST", path: "/v1/tenants/t1", body: `{"ext":{"plan":"gold"}}`, want: 201, wantBody: `"id":"t1"`})
	if r.header.Get("Location") != "/v1/tenants/t1" || r.header.Get("ETag") == "" {
		t.Fatalf("create headers: %v", r.header)
	}
	etag := r.header.Get("ETag")
	do(t, srv, call{method: "POST", path: "/v1/tenants/t1", want: 409})
	gen := do(t, srv, call{method: "POST", path: "/v1/tenants", want: 201})
	var created struct{ ID string }
	json.Unmarshal([]byte(gen.body), &created)
	if created.ID == "" || gen.header.Get("Location") != "/v1/tenants/"+created.ID {
		t.Fatalf("generated id: %s %v", gen.body, gen.header)
	}
	r = do(t, srv, call{method: "GET", path: "/v1/tenants/t1", want: 200, wantBody: `"plan":"gold"`})
	if r.header.Get("ETag") != etag {
		t.Fatalf("GET ETag %q; want %q", r.header.Get("ETag"), etag)
	}
	do(t, srv, call{method: "PUT", path: "/v1/tenants/t1", body: `{"enabled":false}`, header: map[string]string{"If-Match": `"stale"`}, want: 412})
	r = do(t, srv, call{method: "PUT", path: "/v1/tenants/t1", body: `{"enabled":false}`, header: map[string]string{"If-Match": etag}, want: 204})
	newTag := r.header.Get("ETag")
	if newTag == "" || newTag == etag {
		t.Fatalf("PUT ETag %q", newTag)
	}
	// Hono clients may echo the ETag without quotes.
	do(t, srv, call{method: "PUT", path: "/v1/tenants/t1", body: `{}`, header: map[string]string{"If-Match": strings.Trim(newTag, `"`)}, want: 204})
	do(t, srv, call{method: "GET", path: "/v1/tenants/t1", want: 200, wantBody: `"enabled":true`})
	do(t, srv, call{method: "PUT", path: "/v1/tenants/none", body: `{}`, want: 404})
	do(t, srv, call{method: "DELETE", path: "/v1/tenants/t1", header: map[string]string{"If-Match": etag}, want: 412})
	do(t, srv, call{method: "DELETE", path: "/v1/tenants/t1", want: 204})
	do(t, srv, call{method: "GET", path: "/v1/tenants/t1", want: 404})
	do(t, srv, call{method: "DELETE", path: "/v1/tenants/t1", want: 404})
}

func TestBadRequests(t *testing.T) {
	srv := newTestServer(t)
	do(t, srv, call{method: "POST", path: "/v1/tenants/t", want: 201})
	do(t, srv, call{method: "POST", path: "/v1/devices/t/d", want: 201})
	big := `{"ext":{"x":"` + strings.Repeat("a", 70<<10) + `"}}`
	tests := []call{
		{method: "POST", path: "/v1/tenants/t2", body: `{"enabled":`, want: 400},
		{method: "POST", path: "/v1/tenants/t2", body: `{"unknown":1}`, want: 400, wantBody: "unknown"},
		{method: "POST", path: "/v1/tenants/t2", body: `{}`, header: map[string]string{"Content-Type": "text/plain"}, want: 400, wantBody: "Content-Type"},
		{method: "POST", path: "/v1/tenants/bad~id", want: 400},
		{method: "POST", path: "/v1/tenants/t2", body: big, want: 413},
		{method: "POST", path: "/v1/devices/t/d2", body: `{"via":["x"],"memberOf":["g"]}`, want: 400},
		{method: "PUT", path: "/v1/devices/t/d", body: `[]`, want: 400},
		{method: "PUT", path: "/v1/credentials/t/d", body: `{}`, want: 400},
		{method: "PUT", path: "/v1/credentials/t/d", want: 400},
		{method: "PUT", path: "/v1/credentials/t/d", body: `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-hash":"x","hash-function":"md5"}]}]`, want: 400},
		{method: "GET", path: "/v1/tenants?pageSize=0", want: 400},
		{method: "GET", path: "/v1/tenants?pageSize=201", want: 400},
		{method: "GET", path: "/v1/tenants?pageSize=x", want: 400},
		{method: "GET", path: "/v1/tenants?pageOffset=-1", want: 400},
		{method: "GET", path: "/v1/tenants?filterJson=" + url.QueryEscape(`{"field":"id"}`), want: 400},
		{method: "GET", path: "/v1/tenants?sortJson=" + url.QueryEscape(`{"field":"/id","direction":"sideways"}`), want: 400},
		{method: "GET", path: "/v1/devices/t?isGateway=maybe", want: 400},
	}
	for _, c := range tests {
		t.Run(c.method+" "+c.path[:min(len(c.path), 40)], func(t *testing.T) { do(t, srv, c) })
	}
}

func TestUnauthorized(t *testing.T) {
	srv := newTestServer(t)
	for _, c := range []call{
		{method: "GET", path: "/v1/tenants", noAuth: true},
		{method: "GET", path: "/v1/tenants", noAuth: true, header: map[string]string{"Authorization": "Basic YWRtaW46d3Jvbmc="}}, // admin:wrong
		{method: "GET", path: "/v1/tenants", noAuth: true, header: map[string]string{"Authorization": "Basic " + basic("root", testPassword)}},
		{method: "GET", path: "/v1/nothing", noAuth: true},
		{method: "PATCH", path: "/v1/tenants/t", noAuth: true},
	} {
		r := do(t, srv, call{method: c.method, path: c.path, noAuth: true, header: c.header, want: 401})
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("401 without WWW-Authenticate: %v", r.header)
		}
	}
	// Without an admin password the API is closed, even to an empty one.
	reg, _ := registry.New(memstore.NewRegistry(), nil)
	closed := httptest.NewServer(New(reg, Options{}))
	defer closed.Close()
	req, _ := http.NewRequest("GET", closed.URL+"/v1/tenants", nil)
	req.SetBasicAuth(AdminUser, "")
	resp, err := closed.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("API without admin password answered %d", resp.StatusCode)
	}
}

func basic(user, pw string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pw)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

func TestNotFoundAndMethods(t *testing.T) {
	srv := newTestServer(t)
	do(t, srv, call{method: "GET", path: "/v1/tenants", want: 404}) // empty search, as in Hono
	do(t, srv, call{method: "GET", path: "/v1/nothing", want: 404})
	do(t, srv, call{method: "GET", path: "/v1/devices/none/d", want: 404})
	do(t, srv, call{method: "POST", path: "/v1/devices/none", want: 404})
	do(t, srv, call{method: "GET", path: "/v1/devices/none", want: 404})
	do(t, srv, call{method: "DELETE", path: "/v1/devices/none", want: 404})
	do(t, srv, call{method: "GET", path: "/v1/credentials/none/d", want: 404})
	r := do(t, srv, call{method: "PATCH", path: "/v1/tenants/t", want: 405})
	if r.header.Get("Allow") != "GET, POST, PUT, DELETE" {
		t.Fatalf("Allow = %q", r.header.Get("Allow"))
	}
	do(t, srv, call{method: "POST", path: "/v1/credentials/t/d", want: 405})
	do(t, srv, call{method: "PUT", path: "/v1/tenants", want: 405})
}

func TestDevicesAndCredentials(t *testing.T) {
	srv := newTestServer(t)
	do(t, srv, call{method: "POST", path: "/v1/tenants/t", body: `{"registration-limits":{"max-devices":3,"max-credentials-per-device":2}}`, want: 201})
	r := do(t, srv, call{method: "POST", path: "/v1/devices/t/d1", body: `{"ext":{"brand":"acme"}}`, want: 201})
	if r.header.Get("Location") != "/v1/devices/t/d1" {
		t.Fatalf("Location %q", r.header.Get("Location"))
	}
	devTag := r.header.Get("ETag")
	do(t, srv, call{method: "POST", path: "/v1/devices/t/d1", want: 409})
	gen := do(t, srv, call{method: "POST", path: "/v1/devices/t", body: `{"via":["d1"]}`, want: 201})
	if !strings.HasPrefix(gen.header.Get("Location"), "/v1/devices/t/") {
		t.Fatalf("generated Location %q", gen.header.Get("Location"))
	}
	do(t, srv, call{method: "POST", path: "/v1/devices/t/d3", want: 201})
	do(t, srv, call{method: "POST", path: "/v1/devices/t/d4", want: 403})

	do(t, srv, call{method: "GET", path: "/v1/devices/t/d1", want: 200, wantBody: `"brand":"acme"`})
	do(t, srv, call{method: "PUT", path: "/v1/devices/t/d1", body: `{"enabled":false}`, header: map[string]string{"If-Match": `"x"`}, want: 412})
	do(t, srv, call{method: "PUT", path: "/v1/devices/t/d1", body: `{"enabled":false}`, header: map[string]string{"If-Match": devTag}, want: 204})
	do(t, srv, call{method: "PUT", path: "/v1/devices/t/none", body: `{}`, want: 404})

	search := do(t, srv, call{method: "GET", path: "/v1/devices/t?pageSize=1&sortJson=" + url.QueryEscape(`{"field":"/id","direction":"desc"}`) + "&filterJson=" + url.QueryEscape(`{"field":"/id","value":"d?"}`), want: 200})
	var res struct {
		Total  int
		Result []map[string]any
	}
	json.Unmarshal([]byte(search.body), &res)
	if res.Total != 2 || len(res.Result) != 1 || res.Result[0]["id"] != "d3" {
		t.Fatalf("search: %s", search.body)
	}
	do(t, srv, call{method: "GET", path: "/v1/devices/t?isGateway=true", want: 200, wantBody: `"id":"d1"`})
	do(t, srv, call{method: "GET", path: "/v1/devices/t?filterJson=" + url.QueryEscape(`{"field":"/ext/brand","value":"none"}`), want: 404})

	// Credentials: plain password in, no secret material out.
	creds := `[{"type":"hashed-password","auth-id":"sensor1","secrets":[{"pwd-plain":"hunter2-pw"}]},{"type":"x509-cert","auth-id":"CN=d1"}]`
	r = do(t, srv, call{method: "GET", path: "/v1/credentials/t/d1", want: 200, wantBody: "[]"})
	credTag := r.header.Get("ETag")
	do(t, srv, call{method: "PUT", path: "/v1/credentials/t/d1", body: creds, header: map[string]string{"If-Match": `"old"`}, want: 412})
	do(t, srv, call{method: "PUT", path: "/v1/credentials/t/d1", body: creds, header: map[string]string{"If-Match": credTag}, want: 204})
	do(t, srv, call{method: "PUT", path: "/v1/credentials/t/d3", body: creds, want: 409})
	three := `[{"type":"psk","auth-id":"a","secrets":[{"key":"AAEC"}]},{"type":"psk","auth-id":"b","secrets":[{"key":"AAEC"}]},{"type":"psk","auth-id":"c","secrets":[{"key":"AAEC"}]}]`
	do(t, srv, call{method: "PUT", path: "/v1/credentials/t/d3", body: three, want: 403})
	r = do(t, srv, call{method: "GET", path: "/v1/credentials/t/d1", want: 200, wantBody: "sensor1"})
	for _, leak := range []string{"pwd-hash", "salt", "pwd-plain", "hunter2"} {
		if strings.Contains(r.body, leak) {
			t.Fatalf("credentials GET leaks %s: %s", leak, r.body)
		}
	}
	// Patch mode: PUT back what GET returned; the password survives.
	do(t, srv, call{method: "PUT", path: "/v1/credentials/t/d1", body: r.body, want: 204})
	do(t, srv, call{method: "PUT", path: "/v1/credentials/t/none", body: `[]`, want: 404})

	do(t, srv, call{method: "DELETE", path: "/v1/devices/t/d1", header: map[string]string{"If-Match": devTag}, want: 412})
	do(t, srv, call{method: "DELETE", path: "/v1/devices/t/d1", want: 204})
	do(t, srv, call{method: "DELETE", path: "/v1/devices/t/d1", want: 404})
	do(t, srv, call{method: "GET", path: "/v1/credentials/t/d1", want: 404})
	do(t, srv, call{method: "DELETE", path: "/v1/devices/t", want: 204})
	do(t, srv, call{method: "GET", path: "/v1/devices/t", want: 404})
}

func TestSearchTenantsAPI(t *testing.T) {
	srv := newTestServer(t)
	for _, id := range []string{"a", "b", "c"} {
		do(t, srv, call{method: "POST", path: "/v1/tenants/" + id, want: 201})
	}
	r := do(t, srv, call{method: "GET", path: "/v1/tenants?pageSize=2&pageOffset=1", want: 200})
	var res registry.SearchResult[map[string]any]
	json.Unmarshal([]byte(r.body), &res)
	if res.Total != 3 || len(res.Result) != 2 || res.Result[0]["id"] != "b" {
		t.Fatalf("search: %s", r.body)
	}
}

// failingStore fails every transaction, to reach the 500 path.
type failingStore struct{}

func (failingStore) ViewRegistry(context.Context, func(store.RegistryReader) error) error {
	return errors.New("disk on fire")
}

func (failingStore) UpdateRegistry(context.Context, func(store.RegistryTx) error) error {
	return errors.New("disk on fire")
}

func TestInternalError(t *testing.T) {
	reg, _ := registry.New(failingStore{}, nil)
	var logged strings.Builder
	srv := httptest.NewServer(New(reg, Options{AdminPassword: testPassword, Logger: slog.New(slog.NewTextHandler(&logged, nil))}))
	defer srv.Close()
	r := do(t, srv, call{method: "GET", path: "/v1/tenants/t", want: 500})
	if strings.Contains(r.body, "fire") || !strings.Contains(logged.String(), "disk on fire") {
		t.Fatalf("500 body %q, log %q: the cause belongs in the log, not the response", r.body, logged.String())
	}
}

// TestOpenAPI checks that the served document is the committed one, is
// YAML, and documents every route the handler serves.
func TestOpenAPI(t *testing.T) {
	srv := newTestServer(t)
	r := do(t, srv, call{method: "GET", path: "/v1/openapi.yaml", noAuth: true, want: 200})
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal([]byte(r.body), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	routes := map[string][]string{
		"/v1/tenants":                           {"get", "post"},
		"/v1/tenants/{tenantId}":                {"get", "post", "put", "delete"},
		"/v1/devices/{tenantId}":                {"get", "post", "delete"},
		"/v1/devices/{tenantId}/{deviceId}":     {"get", "post", "put", "delete"},
		"/v1/credentials/{tenantId}/{deviceId}": {"get", "put"},
		"/v1/openapi.yaml":                      {"get"},
	}
	for path, methods := range routes {
		for _, m := range methods {
			if _, ok := doc.Paths[path][m]; !ok {
				t.Errorf("OpenAPI document lacks %s %s", m, path)
			}
		}
	}
}
