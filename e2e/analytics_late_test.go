package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestAnalyticsLateAndQuiet plays a fixed out-of-order sequence with a
// paho client: a row within the lateness is counted in its window's
// late, a row past it is dropped and counted in the device's next window
// and in /metrics; a device whose clock is a day fast has its row dropped
// as future without making another device late; and a device that falls
// silent gets its last window within lateness + 2 s of the window's end.
func TestAnalyticsLateAndQuiet(t *testing.T) {
	py := requirePython(t, "paho.mqtt.client", "python3-paho-mqtt")
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	curl := requirePeer(t, "curl", "curl")
	n := startFerry(t)
	host, port := hostPort(n)
	applyQuery(t, n, "late", `sql: |
  SELECT device_id, count(*) AS n FROM telemetry
  GROUP BY device_id, TUMBLE(10s) TIME BY ts LATENESS 5s
outputs: [{mqtt: "analytics/late/{device_id}"}]
`)
	applyQuery(t, n, "quiet", `sql: |
  SELECT device_id, count(*) AS n FROM telemetry WHERE quiet = true
  GROUP BY device_id, TUMBLE(2s) LATENESS 1s
outputs: [{mqtt: "analytics/quiet/{device_id}"}]
`)
	s := startProc(t, sub, "-h", host, "-p", port, "-t", "analytics/#", "-v", "-W", "40")
	waitSubscriptions(t, n.Hub(), 1) // mosquitto_sub (the queries are hub taps)

	t0 := pastWindow()
	at := func(sec float64) int64 { return t0.Add(time.Duration(sec * float64(time.Second))).UnixMilli() }
	type p = map[string]any
	seq := [][2]any{
		{"dev-a", p{"ts": at(1)}},
		{"dev-a", p{"ts": at(5)}},
		{"dev-a", p{"ts": at(12)}}, // watermark t0+7s: window 0 open
		{"dev-a", p{"ts": at(3)}},  // out of order, within lateness: late
		{"dev-fast", p{"ts": time.Now().Add(24 * time.Hour).UnixMilli()}},
		{"dev-b", p{"ts": at(2)}},  // the fast device did not move b's clock
		{"dev-a", p{"ts": at(16)}}, // watermark t0+11s: window 0 closes (3 rows, 1 late)
		{"dev-a", p{"ts": at(8)}},  // past lateness: dropped
		{"dev-b", p{"ts": at(4)}},
		{"dev-b", p{"ts": at(15)}}, // watermark t0+10s: b's window 0 closes (2 rows)
		{"dev-a", p{"ts": at(30)}}, // watermark t0+25s: window 1 closes (2 rows, 1 dropped)
	}
	raw, _ := json.Marshal(seq)
	if out := run(t, py, "testdata/analytics_paho.py", host, port, tenant, string(raw)); !strings.Contains(out, "OK") {
		t.Fatalf("paho: %s", out)
	}
	w0, w1 := t0.UTC().Format("2006-01-02T15:04:05.000Z"), t0.Add(10*time.Second).UTC().Format("2006-01-02T15:04:05.000Z")
	want := map[string]string{
		"dev-a@" + w0: "n=3 late=1 dropped=0",
		"dev-a@" + w1: "n=2 late=0 dropped=1",
		"dev-b@" + w0: "n=2 late=0 dropped=0",
	}
	waitFor(t, "the rows of dev-a and dev-b", func() bool {
		rows := rowsOf(t, s.out.String())
		for k := range want {
			if _, ok := rows[k]; !ok {
				return false
			}
		}
		return true
	})
	rows := rowsOf(t, s.out.String())
	for k, w := range want {
		r := rows[k]
		if got := "n=" + ftoa(*r.N) + " late=" + itoa(r.Late) + " dropped=" + itoa(r.Dropped); got != w {
			t.Errorf("%s: %s, want %s", k, got, w)
		}
	}
	for k := range rows {
		if strings.HasPrefix(k, "dev-fast@") {
			t.Errorf("a row of the fast device: %s", k)
		}
	}
	metrics := run(t, curl, "-sS", "-f", "http://"+n.HTTPAddr().String()+"/metrics")
	for _, m := range []string{
		`ferry_analytics_dropped_total{query="late",reason="late",tenant="DEFAULT_TENANT"} 1`,
		`ferry_analytics_dropped_total{query="late",reason="future",tenant="DEFAULT_TENANT"} 1`,
		`ferry_analytics_late_total{query="late",tenant="DEFAULT_TENANT"} 1`,
	} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	// The quiet device sends one row on arrival time and nothing more.
	if out := run(t, py, "testdata/analytics_paho.py", host, port, tenant, `[["dev-quiet", {"quiet": true}]]`); !strings.Contains(out, "OK") {
		t.Fatalf("paho: %s", out)
	}
	var arrived time.Time
	waitFor(t, "the quiet device's row", func() bool {
		if strings.Contains(s.out.String(), "analytics/quiet/dev-quiet ") {
			arrived = time.Now()
			return true
		}
		return false
	})
	var end time.Time
	for _, line := range strings.Split(s.out.String(), "\n") {
		if js, ok := strings.CutPrefix(line, "analytics/quiet/dev-quiet "); ok {
			var r row
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				t.Fatal(err)
			}
			end, _ = time.Parse(time.RFC3339Nano, r.WindowEnd)
		}
	}
	if late := arrived.Sub(end); late > 3*time.Second { // lateness 1 s + 2 s
		t.Errorf("the quiet device's window came %v after its end, want at most 3s", late)
	}
}

func itoa(i int) string { return ftoa(float64(i)) }

func ftoa(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}
