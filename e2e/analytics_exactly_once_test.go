package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
)

// TestAnalyticsExactlyOnce: an exactly_once query over Hono's telemetry
// topic (kfake), in a ferry process killed with SIGKILL in the middle of
// the input and started again: read with kcat -X
// isolation.level=read_committed, the output topic holds every (device,
// window) exactly once, with the counts of the input.
func TestAnalyticsExactlyOnce(t *testing.T) {
	kcat := requirePeer(t, "kcat", "kcat")
	curl := requirePeer(t, "curl", "curl")
	bin := ferryBinary(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	const out, changelog = "ferry.analytics.eo", "ferry-analytics.DEFAULT_TENANT.eo.changelog"
	topics := kafkaapi.Topics{}
	createTopics(t, kc, append(topics.All(tenant), out, changelog)...)
	brokers := strings.Join(kc.ListenAddrs(), ",")
	cfg := writeFile(t, "ferry.yaml", `analytics:
  queries:
    - name: eo
      exactly_once: true
      sql: |
        SELECT device_id, count(*) AS n, sum(v) AS s FROM telemetry
        GROUP BY device_id, TUMBLE(10s) TIME BY ts LATENESS 30s
      outputs: [{kafka: `+out+`}]
`)
	dir := t.TempDir()
	var cmd *exec.Cmd
	var done chan struct{}
	var httpAddr string
	start := func() {
		t.Helper()
		mqttAddr := "127.0.0.1:" + freePort(t)
		httpAddr = "127.0.0.1:" + freePort(t)
		cmd = exec.Command(bin, "serve", "--config", cfg, "--data-dir", dir, "--mqtt-addr", mqttAddr, "--http-addr", httpAddr,
			"--amqp-app-addr", "", "--amqp-addr", "", "--kafka-brokers", brokers, "--node-id", "eo-node", "--log-level", "warn")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done = make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		waitFor(t, "ferry listening", func() bool {
			c, err := net.Dial("tcp", mqttAddr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	commits := func() int {
		b, err := exec.Command(curl, "-sS", "http://"+httpAddr+"/metrics").Output()
		if err != nil {
			return -1
		}
		m := regexp.MustCompile(`ferry_analytics_checkpoints_total\{query="eo",tenant="DEFAULT_TENANT"\} (\d+)`).FindSubmatch(b)
		if m == nil {
			return -1
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	t0 := pastWindow()
	const devices, rows = 200, 10
	produce := func(from, to int) {
		t.Helper()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			for d := range devices {
				dev := fmt.Sprintf("dev-%d", d)
				recs = append(recs, &kgo.Record{Topic: topics.Telemetry(tenant), Key: []byte(dev),
					Value:   fmt.Appendf(nil, `{"ts":%d,"v":%d}`, t0.Add(time.Duration(i)*100*time.Millisecond).UnixMilli(), i),
					Headers: []kgo.RecordHeader{{Key: "device_id", Value: []byte(dev)}}})
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	start()
	produce(0, 5)
	waitFor(t, "a committed round", func() bool { return commits() > 0 })
	produce(5, rows)
	cmd.Process.Signal(syscall.SIGKILL) // amid the rounds of the second half
	<-done
	start()
	// Every device's watermark passes the window.
	var closers []*kgo.Record
	for d := range devices {
		dev := fmt.Sprintf("dev-%d", d)
		closers = append(closers, &kgo.Record{Topic: topics.Telemetry(tenant), Key: []byte(dev),
			Value: fmt.Appendf(nil, `{"ts":%d,"v":0}`, t0.Add(45*time.Second).UnixMilli())})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := prod.ProduceSync(ctx, closers...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	start0 := t0.UTC().Format("2006-01-02T15:04:05.000Z")
	type result struct {
		DeviceID    string  `json:"device_id"`
		WindowStart string  `json:"window_start"`
		N           float64 `json:"n"`
		S           float64 `json:"s"`
	}
	var got []result
	waitFor(t, "a row per device", func() bool {
		lines := run(t, kcat, "-b", brokers, "-X", "isolation.level=read_committed", "-C", "-t", out, "-o", "beginning", "-e", "-q", "-f", "%s\n")
		got = got[:0]
		for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
			var r result
			if json.Unmarshal([]byte(l), &r) == nil && r.WindowStart == start0 {
				got = append(got, r)
			}
		}
		return len(got) >= devices
	})
	seen := map[string]int{}
	wantSum := float64(rows * (rows - 1) / 2)
	for _, r := range got {
		seen[r.DeviceID]++
		if r.N != rows || r.S != wantSum {
			t.Errorf("%s: n=%v s=%v, want n=%d s=%v", r.DeviceID, r.N, r.S, rows, wantSum)
		}
	}
	for d := range devices {
		if c := seen[fmt.Sprintf("dev-%d", d)]; c != 1 {
			t.Errorf("dev-%d: %d rows for the window, want 1", d, c)
		}
	}
}
