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

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-iot/ferry/internal/kafkatopics"
	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
)

// ferryProc is a `ferry serve` process on Kafka (kfake) for the
// exactly-once tests, killed with SIGKILL.
type ferryProc struct {
	t                          *testing.T
	bin, cfg, dir, id, brokers string
	cmd                        *exec.Cmd
	done                       chan struct{}
	httpAddr                   string
}

func (p *ferryProc) start() {
	t := p.t
	t.Helper()
	mqttAddr := "127.0.0.1:" + freePort(t)
	p.httpAddr = "127.0.0.1:" + freePort(t)
	p.cmd = exec.Command(p.bin, "serve", "--config", p.cfg, "--data-dir", p.dir, "--mqtt-addr", mqttAddr, "--http-addr", p.httpAddr,
		"--amqp-app-addr", "", "--amqp-addr", "", "--kafka-brokers", p.brokers, "--node-id", p.id, "--log-level", "warn")
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	p.done = done
	cmd := p.cmd
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	waitFor(t, "ferry listening", func() bool {
		c, err := net.Dial("tcp", mqttAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (p *ferryProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// commits is the query's committed rounds, -1 when unknown.
func (p *ferryProc) commits(curl, query string) int {
	b, err := exec.Command(curl, "-sS", "http://"+p.httpAddr+"/metrics").Output()
	if err != nil {
		return -1
	}
	m := regexp.MustCompile(`ferry_analytics_checkpoints_total\{query="` + query + `",tenant="DEFAULT_TENANT"\} (\d+)`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// eoSetup starts kfake with Hono's topics (partitions each) and the output
// of query eo, and writes the configuration of eo. Ferry creates the
// changelog.
func eoSetup(t *testing.T, partitions int32) (kc *kfake.Cluster, prod *kgo.Client, cfg string) {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	res, err := kafkatopics.Create(honoCtx(t), cl, append(kafkaapi.Topics{}.All(tenant), eoOut),
		kafkatopics.Spec{Partitions: partitions, Replication: 1})
	if err == nil {
		err = kafkatopics.Err(res)
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg = writeFile(t, "ferry.yaml", `analytics:
  queries:
    - name: eo
      exactly_once: true
      sql: |
        SELECT device_id, count(*) AS n, sum(v) AS s FROM telemetry
        GROUP BY device_id, TUMBLE(10s) TIME BY ts LATENESS 30s
      outputs: [{kafka: `+eoOut+`}]
`)
	return kc, cl, cfg
}

const eoOut, eoChangelog = "ferry.analytics.eo", "ferry-analytics.DEFAULT_TENANT.eo.changelog"

// eoProduce writes rows from..to-1 of every device into Hono's telemetry
// topic, keyed by device as Hono's messaging does; row i has ts t0 + i *
// 100 ms and v = i.
func eoProduce(t *testing.T, prod *kgo.Client, t0 time.Time, devices, from, to int) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		for d := range devices {
			dev := fmt.Sprintf("dev-%d", d)
			recs = append(recs, &kgo.Record{Topic: kafkaapi.Topics{}.Telemetry(tenant), Key: []byte(dev),
				Value:   fmt.Appendf(nil, `{"ts":%d,"v":%d}`, t0.Add(time.Duration(i)*100*time.Millisecond).UnixMilli(), i),
				Headers: []kgo.RecordHeader{{Key: "device_id", Value: []byte(dev)}}})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// eoCheck reads the output with kcat under read_committed until every
// device has a row for the window at t0, within deadline, and checks
// that each has exactly one, with rows rows.
func eoCheck(t *testing.T, kcat, brokers string, t0 time.Time, devices, rows int, deadline time.Duration) {
	t.Helper()
	start0 := t0.UTC().Format("2006-01-02T15:04:05.000Z")
	type result struct {
		DeviceID    string  `json:"device_id"`
		WindowStart string  `json:"window_start"`
		N           float64 `json:"n"`
		S           float64 `json:"s"`
	}
	var got []result
	end := time.Now().Add(deadline)
	for {
		lines := run(t, kcat, "-b", brokers, "-X", "isolation.level=read_committed", "-C", "-t", eoOut, "-o", "beginning", "-e", "-q", "-f", "%s\n")
		got = got[:0]
		for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
			var r result
			if json.Unmarshal([]byte(l), &r) == nil && r.WindowStart == start0 {
				got = append(got, r)
			}
		}
		if len(got) >= devices {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d rows of %d devices after %v", len(got), devices, deadline)
		}
		time.Sleep(200 * time.Millisecond) // polling kcat, not waiting for readiness
	}
	seen := map[string]int{}
	wantSum := float64(rows * (rows - 1) / 2)
	bad := 0
	for _, r := range got {
		seen[r.DeviceID]++
		if (r.N != float64(rows) || r.S != wantSum) && bad < 5 {
			bad++
			t.Errorf("%s: n=%v s=%v, want n=%d s=%v", r.DeviceID, r.N, r.S, rows, wantSum)
		}
	}
	dup := 0
	for d := range devices {
		if c := seen[fmt.Sprintf("dev-%d", d)]; c != 1 && dup < 5 {
			dup++
			t.Errorf("dev-%d: %d rows for the window, want 1", d, c)
		}
	}
}

// TestAnalyticsExactlyOnce: an exactly_once query over Hono's telemetry
// topic (kfake), in a ferry process killed with SIGKILL in the middle of
// the input and started again: read with kcat -X
// isolation.level=read_committed, the output topic holds every (device,
// window) exactly once, with the counts of the input.
func TestAnalyticsExactlyOnce(t *testing.T) {
	kcat := requirePeer(t, "kcat", "kcat")
	curl := requirePeer(t, "curl", "curl")
	bin := ferryBinary(t)
	kc, prod, cfg := eoSetup(t, 2)
	brokers := strings.Join(kc.ListenAddrs(), ",")
	node := &ferryProc{t: t, bin: bin, cfg: cfg, dir: t.TempDir(), id: "eo-node", brokers: brokers}
	t0 := pastWindow()
	const devices, rows = 200, 10
	node.start()
	eoProduce(t, prod, t0, devices, 0, 5)
	waitFor(t, "a committed round", func() bool { return node.commits(curl, "eo") > 0 })
	eoProduce(t, prod, t0, devices, 5, rows)
	node.kill() // amid the rounds of the second half
	node.start()
	eoProduce(t, prod, t0.Add(45*time.Second), devices, 0, 1) // every device's watermark passes the window
	eoCheck(t, kcat, brokers, t0, devices, rows, 20*time.Second)
	if got := topicConfig(t, prod, eoChangelog, "cleanup.policy"); got != "compact" {
		t.Errorf("changelog %s has cleanup.policy %q, want compact", eoChangelog, got)
	}
}

// topicConfig returns the value of config name of topic.
func topicConfig(t *testing.T, cl *kgo.Client, topic, name string) string {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = kmsg.ConfigResourceTypeTopic, topic, []string{name}
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(honoCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("describing %s: %v", topic, err)
		}
		for _, c := range r.Configs {
			if c.Name == name && c.Value != nil {
				return *c.Value
			}
		}
	}
	return ""
}

// TestAnalyticsTwoNodes: two ferry nodes share an exactly_once query's
// partitions (10,000 devices); one is killed with SIGKILL amid the input.
// The other takes its partitions over from the changelog and the
// committed offsets: every (device, window) is on the output once, with
// the counts of the input.
func TestAnalyticsTwoNodes(t *testing.T) {
	kcat := requirePeer(t, "kcat", "kcat")
	curl := requirePeer(t, "curl", "curl")
	bin := ferryBinary(t)
	kc, prod, cfg := eoSetup(t, 4)
	brokers := strings.Join(kc.ListenAddrs(), ",")
	a := &ferryProc{t: t, bin: bin, cfg: cfg, dir: t.TempDir(), id: "node-a", brokers: brokers}
	b := &ferryProc{t: t, bin: bin, cfg: cfg, dir: t.TempDir(), id: "node-b", brokers: brokers}
	a.start()
	b.start()
	t0 := pastWindow()
	const devices, rows = 10_000, 4
	eoProduce(t, prod, t0, devices, 0, 2)
	waitFor(t, "both nodes committing", func() bool { return a.commits(curl, "eo") > 0 && b.commits(curl, "eo") > 0 })
	eoProduce(t, prod, t0, devices, 2, rows)
	a.kill()
	eoProduce(t, prod, t0.Add(45*time.Second), devices, 0, 1)
	eoCheck(t, kcat, brokers, t0, devices, rows, 40*time.Second)
}
