package httpadapter

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/adapter/downstream"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
)

// TestRouting: the adapter answers its own paths with Hono's statuses and
// a problem body, and hands every other path to the next handler, with
// the gateway form's empty segment intact (a ServeMux would redirect it).
func TestRouting(t *testing.T) {
	h := hub.New(hub.Options{})
	d := downstream.New(downstream.Options{Hub: h})
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewServer(New(Options{Downstream: d}).Wrap(next))
	defer srv.Close()
	// A consumer for telemetry, so that QoS 1 is accepted.
	s, _ := h.Open("acme", hono.HubPrefix+"test", true)
	if _, err := s.Subscribe(hub.Subscription{Filter: hono.HubFilter(hono.Telemetry), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path, body, ct string
		header                 map[string]string
		want                   int
	}{
		{"PUT", "/telemetry/acme/d1", "x", "", nil, 202},
		{"PUT", "/telemetry/acme/d1", "x", "", map[string]string{"qos-level": "1"}, 202},
		{"PUT", "/telemetry/acme/d1", "x", "", map[string]string{"qos-level": "7"}, 400},
		{"PUT", "/event/nobody/d1", "x", "", nil, 503},
		{"PUT", "/telemetry//d1", "x", "", nil, 401}, // a gateway form needs a login
		{"POST", "/telemetry", "x", "", nil, 401},
		{"GET", "/telemetry/acme/d1", "", "", nil, 405},
		{"PUT", "/telemetry/acme/d1", "", "", nil, 400}, // empty without content type
		{"PUT", "/telemetry/acme/d1", strings.Repeat("x", 3000), "", nil, 413},
		{"PUT", "/command/res/acme/d1/bad?hono-cmd-status=200", "", "", nil, 400},
		{"GET", "/metrics", "", "", nil, http.StatusTeapot},
		{"GET", "/telemetryx", "", "", nil, http.StatusTeapot},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		if resp.StatusCode >= 400 && resp.StatusCode != http.StatusTeapot {
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("%s %s: content type %q", tc.method, tc.path, ct)
			}
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.Status != resp.StatusCode || p.Detail == "" {
				t.Errorf("%s %s: problem body %+v (%v)", tc.method, tc.path, p, err)
			}
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d (%s), want %d", tc.method, tc.path, resp.StatusCode, p.Detail, tc.want)
		}
	}
}
