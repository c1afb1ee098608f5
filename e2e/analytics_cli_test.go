package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/node"
)

// configQuery puts a query document into the configuration file's
// analytics.queries.
func configQuery(t *testing.T, cfg *config.Config, doc string) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	cfg.Analytics.Queries = append(cfg.Analytics.Queries, *n.Content[0])
}

// TestAnalyticsCLI: a query from the configuration file and one applied
// with `ferry query apply` are listed, explained and tailed with the
// ferry binary, and deleted.
func TestAnalyticsCLI(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	bin := ferryBinary(t)
	n := startFerry(t, func(c *config.Config) {
		configQuery(t, c, `name: from-config
sql: SELECT device_id, count(*) AS n FROM telemetry GROUP BY device_id, TUMBLE(1m)
`)
	})
	host, port := hostPort(n)
	api := []string{"--api-url", "http://" + n.HTTPAddr().String(), "--data-dir", n.DataDir()}
	ferry := func(args ...string) string { return run(t, bin, append(append([]string{"query"}, args...), api...)...) }

	doc := writeFile(t, "q.yaml", `name: max-temp
sql: |
  SELECT device_id, max(temp) AS max FROM telemetry
  GROUP BY device_id, COUNT(2)
outputs:
  - mqtt: {topic: "analytics/max/{device_id}", retain: true}
`)
	if out := ferry("apply", "-f", doc); !strings.Contains(out, "query max-temp created in tenant DEFAULT_TENANT") {
		t.Fatalf("apply: %s", out)
	}
	list := ferry("list")
	for _, s := range []string{"from-config", "max-temp", "running"} {
		if !strings.Contains(list, s) {
			t.Errorf("list lacks %s:\n%s", s, list)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tail := exec.CommandContext(ctx, bin, append([]string{"query", "tail", "max-temp", "-n", "1"}, api...)...)
	var tailOut syncBuffer
	tail.Stdout, tail.Stderr = &tailOut, &tailOut
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the tail's stream", func() bool { return n.Analytics().Subscribers(tenant, "max-temp") > 0 })
	for _, v := range []string{"21.5", "19"} {
		run(t, pub, "-h", host, "-p", port, "-q", "1", "-t", "telemetry/"+tenant+"/dev-1", "-m", `{"temp":`+v+`}`)
	}
	if err := tail.Wait(); err != nil {
		t.Fatalf("tail: %v\n%s", err, tailOut.String())
	}
	if out := tailOut.String(); !strings.Contains(out, `"device_id":"dev-1"`) || !strings.Contains(out, `"max":21.5`) {
		t.Errorf("tail printed %s", out)
	}
	explain := ferry("explain", "max-temp")
	for _, s := range []string{"window: COUNT(2)", "state: 1 keys, 0 open windows", "mqtt analytics/max/{device_id} (retained)", "counters: in 2"} {
		if !strings.Contains(explain, s) {
			t.Errorf("explain lacks %q:\n%s", s, explain)
		}
	}
	if out := ferry("delete", "max-temp"); !strings.Contains(out, "deleted") {
		t.Errorf("delete: %s", out)
	}
	cmd := exec.Command(bin, append([]string{"query", "explain", "max-temp"}, api...)...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not found") {
		t.Errorf("explain after delete: %v %s", err, out)
	}
	bad := writeFile(t, "bad.yaml", "name: bad\nsql: |\n  SELECT avg(t)\n  FROM telemetry GROUP BY TUMBLE(1x)\n")
	cmd = exec.Command(bin, append([]string{"query", "apply", "-f", bad}, api...)...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "sql 2:32: unknown unit") {
		t.Errorf("apply of a bad query: %v %s", err, out)
	}
}

// TestAnalyticsRestart: a graceful shutdown checkpoints the open windows
// and the query applied through the API; the next start on the same data
// directory resumes them, so the window's count covers rows from before
// and after the restart (idle close would take 29 s here: the window
// closes by its watermark).
func TestAnalyticsRestart(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	cfg := config.Default()
	cfg.MQTT.Addr, cfg.HTTP.Addr, cfg.AMQP.AppAddr = "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.MQTT.SysInterval = 0
	cfg.DataDir = t.TempDir()
	log := testLogger(t)
	first, err := node.Start(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	applyQuery(t, first, "restart", `sql: |
  SELECT device_id, count(*) AS n, sum(v) AS s FROM telemetry
  GROUP BY device_id, TUMBLE(10s) TIME BY ts LATENESS 20s
outputs: [{mqtt: "analytics/restart/{device_id}"}]
`)
	t0 := pastWindow()
	send := func(n *node.Node, ts time.Time, v int) {
		host, port := hostPort(n)
		run(t, pub, "-h", host, "-p", port, "-q", "1", "-t", "telemetry/"+tenant+"/dev-r", "-m", fmt.Sprintf(`{"ts":%d,"v":%d}`, ts.UnixMilli(), v))
	}
	send(first, t0.Add(time.Second), 1)
	send(first, t0.Add(2*time.Second), 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	second := startNode(t, cfg)
	host, port := hostPort(second)
	s := startProc(t, sub, "-h", host, "-p", port, "-t", "analytics/restart/+", "-v", "-C", "1", "-W", "20")
	waitSubscriptions(t, second.Hub(), 1) // mosquitto_sub (the query is a hub tap)
	send(second, t0.Add(3*time.Second), 4)
	send(second, t0.Add(40*time.Second), 0) // the watermark passes the window
	rows := rowsOf(t, s.wait(t))
	r, ok := rows["dev-r@"+t0.UTC().Format("2006-01-02T15:04:05.000Z")]
	if !ok || r.N == nil || *r.N != 3 {
		t.Fatalf("after the restart: %+v (all: %v)", r, rows)
	}
}
