package analytics

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-iot/ferry/internal/analytics/query"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
)

func newService(t *testing.T, opts Options) (*Service, *hub.Hub) {
	t.Helper()
	h := hub.New(hub.Options{})
	opts.Hub = h
	s := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Close(ctx)
		h.Close(ctx)
	})
	return s, h
}

func apply(t *testing.T, s *Service, doc string) {
	t.Helper()
	spec, err := query.ParseSpec([]byte(doc), "T")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(spec, true); err != nil {
		t.Fatal(err)
	}
}

func telemetry(h *hub.Hub, device, payload string) {
	h.Publish("T", &hub.Message{Topic: hono.HubTopic(hono.Telemetry, device), Payload: []byte(payload), Created: time.Now(),
		Properties: []hub.Property{{Key: hono.PropDeviceID, Value: device}}})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNeverBlocksTheHub: a query that cannot keep up loses messages past
// its queue, counted as queue_full, while Publish returns at once.
func TestNeverBlocksTheHub(t *testing.T) {
	release := make(chan struct{})
	s, h := newService(t, Options{Shards: 1, Ext: func(ctx context.Context, _, _ string) (map[string]any, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return map[string]any{"site": "x"}, nil
	}})
	apply(t, s, "name: slow\nqueue: 16\nsql: SELECT count(*) AS n FROM telemetry GROUP BY device.ext.site, TUMBLE(1s)\n")
	start := time.Now()
	for i := range 200 {
		telemetry(h, "dev-"+string(rune('a'+i%26)), `{}`)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("200 publishes took %v: the hub waited for the query", d)
	}
	close(release)
	r, _ := s.get("T", "slow")
	waitUntil(t, "every message handled or dropped", func() bool {
		return r.stats.In.Load()+r.queueDropped.Load() == 200
	})
	if r.queueDropped.Load() < 100 {
		t.Fatalf("queue_full drops = %d", r.queueDropped.Load())
	}
	if st := r.statsSnapshot(); st.Dropped["queue_full"] != r.queueDropped.Load() || st.In != 200 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTenantScoped: a query sees its tenant's messages only.
func TestTenantScoped(t *testing.T) {
	s, h := newService(t, Options{})
	apply(t, s, "name: q\nsql: SELECT device_id, count(*) AS n FROM telemetry GROUP BY device_id, COUNT(1)\n")
	h.Publish("other", &hub.Message{Topic: hono.HubTopic(hono.Telemetry, "dev-x"), Payload: []byte(`{}`)})
	telemetry(h, "dev-t", `{}`)
	waitUntil(t, "the row", func() bool { rows, _ := s.Latest("T", "q", ""); return len(rows) == 1 })
	rows, _ := s.Latest("T", "q", "")
	if !strings.Contains(string(rows[0]), `"device_id":"dev-t"`) {
		t.Fatalf("row %s", rows[0])
	}
	if rows, _ := s.Latest("T", "q", "dev-x"); len(rows) != 0 {
		t.Fatal("a row of another tenant")
	}
}

func TestPrometheusOutput(t *testing.T) {
	s, h := newService(t, Options{Shards: 1}) // a's row first
	apply(t, s, `name: prom
sql: SELECT device_id, max(v) AS max, count(*) AS n FROM telemetry GROUP BY device_id, COUNT(1)
outputs: [{prometheus: {name: test_gauge, max_series: 1}}]
`)
	telemetry(h, "a", `{"v":3}`)
	telemetry(h, "b", `{"v":4}`)
	r, _ := s.get("T", "prom")
	waitUntil(t, "two rows", func() bool { return r.stats.Rows.Load() == 2 })
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			labels := []string{}
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	want := map[string]float64{
		"test_gauge{agg=max,device_id=a}":                                          3,
		"test_gauge{agg=n,device_id=a}":                                            1,
		"ferry_analytics_output_lost_total{output=prometheus,query=prom,tenant=T}": 1,
		"ferry_analytics_rows_total{query=prom,tenant=T}":                          2,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if _, ok := got["test_gauge{agg=max,device_id=b}"]; ok {
		t.Error("a series past max_series")
	}
}

func TestAPI(t *testing.T) {
	s, _ := newService(t, Options{})
	srv := httptest.NewServer(s.Handler(APIOptions{AdminPassword: "pw"}))
	defer srv.Close()
	do := func(method, path, body string, auth bool) (int, string, http.Header) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if auth {
			req.SetBasicAuth("admin", "pw")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	const q = "/v1/analytics/T/queries"
	doc := "sql: SELECT device_id, count(*) AS n FROM telemetry GROUP BY device_id, TUMBLE(1m)\n"
	if code, _, h := do("GET", q, "", false); code != 401 || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("without credentials: %d %v", code, h)
	}
	if code, body, _ := do("PUT", q+"/a", doc, true); code != 201 || !strings.Contains(body, `"tenant": "T"`) {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, _, _ := do("PUT", q+"/a", doc, true); code != 200 {
		t.Fatalf("second PUT: %d", code)
	}
	if code, body, _ := do("PUT", q+"/b", "name: c\n"+doc, true); code != 400 || !strings.Contains(body, `names query \"c\"`) {
		t.Fatalf("PUT with another name: %d %s", code, body)
	}
	code, body, h := do("PUT", q+"/b", "sql: SELECT count(*) FROM telemetry GROUP BY TUMBLE(1m) EMIT SOON\n", true)
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil || code != 400 || p.Status != 400 ||
		h.Get("Content-Type") != "application/problem+json" || !strings.Contains(p.Detail, "1:57: expected ON CLOSE or EVERY, found 'SOON'") {
		t.Fatalf("bad SQL: %d %s", code, body)
	}
	if code, body, _ := do("GET", q, "", true); code != 200 || !strings.Contains(body, `"total": 1`) {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, body, _ := do("GET", q+"/a/explain", "", true); code != 200 || !strings.Contains(body, `"plan"`) {
		t.Fatalf("explain: %d %s", code, body)
	}
	if code, _, _ := do("GET", q+"/a/latest?key=nobody", "", true); code != 404 {
		t.Fatalf("latest of an unknown key: %d", code)
	}
	if code, _, _ := do("DELETE", q+"/a", "", true); code != 204 {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _, _ := do("GET", q+"/a", "", true); code != 404 {
		t.Fatalf("GET after DELETE: %d", code)
	}
}

// TestDeviceExt: GROUP BY device.ext.site groups the devices of a site,
// read from the registry once per device.
func TestDeviceExt(t *testing.T) {
	var reads atomic.Int64
	sites := map[string]string{"d1": "north", "d2": "north", "d3": "south"}
	s, h := newService(t, Options{Ext: func(_ context.Context, tenant, device string) (map[string]any, error) {
		reads.Add(1)
		return map[string]any{"site": sites[device]}, nil
	}})
	apply(t, s, "name: sites\nsql: SELECT device.ext.site AS site, count(*) AS n FROM telemetry GROUP BY device.ext.site, COUNT(2)\n")
	for _, d := range []string{"d1", "d3", "d2", "d1", "d3"} {
		telemetry(h, d, `{}`)
	}
	waitUntil(t, "two rows", func() bool { rows, _ := s.Latest("T", "sites", ""); return len(rows) == 2 })
	for site, want := range map[string]string{"north": `"n":2`, "south": `"n":2`} {
		rows, _ := s.Latest("T", "sites", site)
		if len(rows) != 1 || !strings.Contains(string(rows[0]), `"site":"`+site+`"`) || !strings.Contains(string(rows[0]), want) {
			t.Errorf("site %s: %s", site, rows)
		}
	}
	if n := reads.Load(); n != 3 {
		t.Errorf("%d registry reads for 3 devices", n)
	}
}
