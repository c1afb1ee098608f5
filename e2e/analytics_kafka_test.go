package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ferry-iot/ferry/internal/config"
)

// TestAnalyticsKafka: a query's kafka output, on a kfake cluster, read
// with kcat: one record per (device, window), keyed by the device, with
// the headers device_id, tenant_id, query and window_start, and the row
// as the value.
func TestAnalyticsKafka(t *testing.T) {
	kcat := requirePeer(t, "kcat", "kcat")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	const topic = "ferry.analytics.DEFAULT_TENANT.kq"
	createTopics(t, kc, topic)
	n := startFerry(t, func(c *config.Config) { c.Analytics.KafkaBrokers = kc.ListenAddrs() })
	host, port := hostPort(n)
	applyQuery(t, n, "kq", `sql: |
  SELECT device_id, sum(v) AS s, count(*) AS n FROM telemetry
  GROUP BY device_id, TUMBLE(10s) TIME BY ts
outputs: [{kafka: `+topic+`}]
`)
	t0 := pastWindow()
	for _, dev := range []string{"dev-1", "dev-2"} {
		lines := fmt.Sprintf("{\"ts\":%d,\"v\":2}\n{\"ts\":%d,\"v\":3}\n{\"ts\":%d,\"v\":0}\n",
			t0.Add(time.Second).UnixMilli(), t0.Add(2*time.Second).UnixMilli(), t0.Add(20*time.Second).UnixMilli())
		cmd := exec.Command(pub, "-h", host, "-p", port, "-q", "1", "-t", "telemetry/"+tenant+"/"+dev, "-l")
		cmd.Stdin = strings.NewReader(lines)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v\n%s", err, b)
		}
	}
	var out string
	waitFor(t, "two records on "+topic, func() bool {
		out = kcatRead(t, kcat, strings.Join(kc.ListenAddrs(), ","), topic, "%k|%h|%s\n", 2)
		return strings.Count(out, "\n") >= 2
	})
	start := t0.UTC().Format("2006-01-02T15:04:05.000Z")
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 {
			t.Fatalf("kcat line %q", line)
		}
		key, headers, value := parts[0], parts[1], parts[2]
		for _, h := range []string{"device_id=" + key, "tenant_id=" + tenant, "query=kq", "window_start=" + start} {
			if !strings.Contains(headers, h) {
				t.Errorf("record %s: headers %q lack %s", key, headers, h)
			}
		}
		var r struct {
			DeviceID string  `json:"device_id"`
			S        float64 `json:"s"`
			ID       string  `json:"id"`
		}
		if err := json.Unmarshal([]byte(value), &r); err != nil || r.DeviceID != key || r.S != 5 || r.ID == "" {
			t.Errorf("record %s: value %s (%v)", key, value, err)
		}
		seen[key] = true
	}
	if !seen["dev-1"] || !seen["dev-2"] {
		t.Errorf("records of %v, want dev-1 and dev-2:\n%s", seen, out)
	}
}
