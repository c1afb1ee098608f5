package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/node"
)

// These tests drive the built-in analytics (docs/analytics.md) with real
// clients: mosquitto_pub and a paho script send telemetry, mosquitto_sub,
// a Qpid Proton receiver and curl read the rows, curl manages the queries
// through the REST API and reads /metrics and the SSE stream.

// analyticsAPI is the base URL of the node's analytics API and its admin
// password.
func analyticsAPI(t *testing.T, n *node.Node) (base, password string) {
	t.Helper()
	pw, err := readAdminPassword(n)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + n.HTTPAddr().String() + "/v1/analytics/" + tenant + "/queries", pw
}

func readAdminPassword(n *node.Node) (string, error) {
	b, err := os.ReadFile(filepath.Join(n.DataDir(), "admin-password"))
	return strings.TrimSpace(string(b)), err
}

// applyQuery PUTs a query document with curl and returns the answer.
func applyQuery(t *testing.T, n *node.Node, name, doc string) string {
	t.Helper()
	curl := requirePeer(t, "curl", "curl")
	base, pw := analyticsAPI(t, n)
	return run(t, curl, "-sS", "-f", "-u", "admin:"+pw, "-X", "PUT", "-H", "Content-Type: application/yaml",
		"--data-binary", doc, base+"/"+name)
}

// row is the part of an analytics row the tests check.
type row struct {
	Query       string   `json:"query"`
	DeviceID    string   `json:"device_id"`
	WindowStart string   `json:"window_start"`
	WindowEnd   string   `json:"window_end"`
	Revision    int      `json:"revision"`
	Final       bool     `json:"final"`
	Avg         *float64 `json:"avg"`
	Min         *float64 `json:"min"`
	Max         *float64 `json:"max"`
	N           *float64 `json:"n"`
	P95         *float64 `json:"p95"`
	Late        int      `json:"late"`
	Dropped     int      `json:"dropped"`
	ParseErrors int      `json:"parse_errors"`
	ID          string   `json:"id"`
}

// rowsOf decodes the rows in mosquitto_sub -v output ("topic {json}").
func rowsOf(t *testing.T, out string) map[string]row {
	t.Helper()
	rows := map[string]row{}
	for _, line := range strings.Split(out, "\n") {
		_, js, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(js, "{") {
			continue
		}
		var r row
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		rows[r.DeviceID+"@"+r.WindowStart] = r
	}
	return rows
}

// pastWindow is the start of a 10 s window a minute ago, so that event
// times in it are neither future nor waiting on the wall clock.
func pastWindow() time.Time {
	return time.Now().Add(-time.Minute).Truncate(10 * time.Second)
}

// TestAnalyticsMosquitto: a query applied with curl aggregates the JSON
// telemetry mosquitto_pub sends for three devices; mosquitto_sub on the
// MQTT output and a Proton receiver on the AMQP output get exact
// avg/min/max/count and a p95 within 1%; curl reads the same rows from
// the SSE stream and /latest, the counters from /metrics, the plan from
// explain.
func TestAnalyticsMosquitto(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	curl := requirePeer(t, "curl", "curl")
	py := requireProton(t)
	n := startFerry(t)
	host, port := hostPort(n)
	base, pw := analyticsAPI(t, n)

	out := applyQuery(t, n, "temp", `sql: |
  SELECT device_id, avg(temp) AS avg, min(temp) AS min, max(temp) AS max,
         count(*) AS n, p95(temp) AS p95
  FROM telemetry
  WHERE temp IS NOT NULL
  GROUP BY device_id, TUMBLE(10s)
  TIME BY ts LATENESS 1s
outputs:
  - mqtt: analytics/temp/{device_id}
  - amqp: analytics/DEFAULT_TENANT/temp
  - prometheus: {name: ferry_e2e_temp, max_series: 100}
`)
	if !strings.Contains(out, `"name": "temp"`) || !strings.Contains(out, `"status": "running"`) {
		t.Fatalf("PUT answered %s", out)
	}
	s := startProc(t, sub, "-h", host, "-p", port, "-t", "analytics/temp/+", "-v", "-C", "3", "-W", "30")
	amqp := protonReceiver(t, py, n, "analytics/"+tenant+"/temp", 3, "")
	sse := startProc(t, curl, "-sS", "-N", "-u", "admin:"+pw, "--max-time", "30", base+"/temp/stream")
	waitSubscriptions(t, n.Hub(), 2) // mosquitto_sub, the AMQP link (the query is a hub tap)
	waitFor(t, "the SSE stream", func() bool { return sseSubscribed(n) })

	t0 := pastWindow()
	want := map[string][]float64{}
	for d := 1; d <= 3; d++ {
		dev := fmt.Sprintf("dev-%d", d)
		var lines []string
		for i := range 40 {
			v := float64(15+(i*7+d*3)%23) + float64(i%4)/4 // 15.00 .. 37.75
			want[dev] = append(want[dev], v)
			ts := t0.Add(time.Duration(i) * 200 * time.Millisecond).UnixMilli()
			lines = append(lines, fmt.Sprintf(`{"ts":%d,"temp":%g}`, ts, v))
		}
		lines = append(lines, `{"ts":`+fmt.Sprint(t0.Add(8*time.Second).UnixMilli())+`}`) // no temp: WHERE drops it
		// The window closes when the device's watermark passes its end.
		lines = append(lines, fmt.Sprintf(`{"ts":%d,"temp":0}`, t0.Add(30*time.Second).UnixMilli()))
		cmd := exec.Command(pub, "-h", host, "-p", port, "-q", "1", "-t", "telemetry/"+tenant+"/"+dev, "-l")
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v\n%s", err, b)
		}
	}
	check := func(via string, rows map[string]row) {
		t.Helper()
		for dev, vals := range want {
			r, ok := rows[dev+"@"+t0.UTC().Format("2006-01-02T15:04:05.000Z")]
			if !ok {
				t.Errorf("%s: no row for %s; got %v", via, dev, rows)
				continue
			}
			sorted := slices.Sorted(slices.Values(vals))
			sum := 0.0
			for _, v := range vals {
				sum += v
			}
			p95 := sorted[int(0.95*float64(len(sorted)-1))]
			if r.N == nil || *r.N != 40 || *r.Min != sorted[0] || *r.Max != sorted[len(sorted)-1] || math.Abs(*r.Avg-sum/40) > 1e-9 {
				t.Errorf("%s: %s row %+v, want n=40 min=%v max=%v avg=%v", via, dev, r, sorted[0], sorted[len(sorted)-1], sum/40)
			}
			if r.P95 == nil || math.Abs(*r.P95-p95) > 0.01*p95 {
				t.Errorf("%s: %s p95 = %v, want %v ± 1%%", via, dev, r.P95, p95)
			}
			if !r.Final || r.Revision != 0 || r.Late != 0 || r.Dropped != 0 || r.ID == "" {
				t.Errorf("%s: %s row %+v", via, dev, r)
			}
		}
	}
	check("mosquitto_sub", rowsOf(t, s.wait(t)))
	amqpRows := map[string]row{}
	for _, m := range protonLines(t, amqp.wait(t)) {
		var r row
		if err := json.Unmarshal([]byte(m.Body), &r); err != nil {
			t.Fatalf("AMQP body %q: %v", m.Body, err)
		}
		if m.ContentType == nil || *m.ContentType != "application/json" || m.AppProps["device_id"] != r.DeviceID || m.AppProps["query"] != "temp" {
			t.Errorf("AMQP message properties: %v %v", m.ContentType, m.AppProps)
		}
		amqpRows[r.DeviceID+"@"+r.WindowStart] = r
	}
	check("proton", amqpRows)
	waitFor(t, "three rows on the SSE stream", func() bool { return strings.Count(sse.out.String(), "event: row\n") >= 3 })
	sseRows := map[string]row{}
	for _, line := range strings.Split(sse.out.String(), "\n") {
		if js, ok := strings.CutPrefix(line, "data: "); ok {
			var r row
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				t.Fatal(err)
			}
			sseRows[r.DeviceID+"@"+r.WindowStart] = r
		}
	}
	check("sse", sseRows)

	latest := run(t, curl, "-sS", "-f", "-u", "admin:"+pw, base+"/temp/latest?key=dev-2")
	var lr row
	if err := json.Unmarshal([]byte(latest), &lr); err != nil || lr.DeviceID != "dev-2" {
		t.Errorf("latest: %v %s", err, latest)
	}
	explain := run(t, curl, "-sS", "-f", "-u", "admin:"+pw, base+"/temp/explain")
	for _, s := range []string{`"keys": 3`, `"state_bytes"`, "window: TUMBLE(10s)", `"filtered": 3`} {
		if !strings.Contains(explain, s) {
			t.Errorf("explain lacks %s:\n%s", s, explain)
		}
	}
	metrics := run(t, curl, "-sS", "-f", "http://"+n.HTTPAddr().String()+"/metrics")
	for _, s := range []string{
		`ferry_analytics_messages_total{query="temp",tenant="DEFAULT_TENANT"} 126`,
		`ferry_analytics_rows_total{query="temp",tenant="DEFAULT_TENANT"} `,
		`ferry_analytics_dropped_total{query="temp",reason="late",tenant="DEFAULT_TENANT"} 0`,
		`ferry_analytics_dropped_total{query="temp",reason="queue_full",tenant="DEFAULT_TENANT"} 0`,
		`ferry_e2e_temp{agg="n",device_id="dev-1"} 40`,
	} {
		if !strings.Contains(metrics, s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}
	list := run(t, curl, "-sS", "-f", "-u", "admin:"+pw, base)
	if !strings.Contains(list, `"total": 1`) {
		t.Errorf("list: %s", list)
	}
	run(t, curl, "-sS", "-f", "-u", "admin:"+pw, "-X", "DELETE", base+"/temp")
	if code := run(t, curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "admin:"+pw, base+"/temp"); code != "404" {
		t.Errorf("GET after DELETE: %s", code)
	}
	bad := run(t, curl, "-s", "-u", "admin:"+pw, "-X", "PUT", "--data-binary", "sql: SELECT avg(t) FORM telemetry", base+"/bad")
	if !strings.Contains(bad, `"status":400`) || !strings.Contains(bad, "1:15: expected ',' or FROM, found 'FORM'") {
		t.Errorf("bad query answered %s", bad)
	}
}

// sseSubscribed reports whether a stream reader is attached to query temp.
func sseSubscribed(n *node.Node) bool { return n.Analytics().Subscribers(tenant, "temp") > 0 }
