package e2e

import (
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
)

// TestAnalyticsCrash: a query over events and one over QoS 1 telemetry
// with durable_input, in a ferry process killed with SIGKILL twice while
// their window is open. Messages acknowledged before a kill are all
// counted once in the window after the restarts: those the last
// checkpoint covered from the checkpoint, the rest replayed from the
// query's durable session, none twice.
func TestAnalyticsCrash(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	curl := requirePeer(t, "curl", "curl")
	bin := ferryBinary(t)
	dir := t.TempDir()
	cfg := writeFile(t, "ferry.yaml", `analytics:
  checkpoint_interval: 300ms
  queries:
    - name: doors
      sql: |
        SELECT device_id, count(*) AS n, sum(v) AS s FROM event
        GROUP BY device_id, TUMBLE(10s) TIME BY ts LATENESS 30s
      outputs: [{mqtt: "analytics/doors/{device_id}"}]
    - name: temps
      durable_input: true
      sql: |
        SELECT device_id, count(*) AS n, sum(v) AS s FROM telemetry
        GROUP BY device_id, TUMBLE(10s) TIME BY ts LATENESS 30s
      outputs: [{mqtt: "analytics/temps/{device_id}"}]
`)
	var cmd *exec.Cmd
	var done chan struct{}
	var mqttAddr, httpAddr string
	start := func() {
		t.Helper()
		mqttAddr, httpAddr = "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
		cmd = exec.Command(bin, "serve", "--config", cfg, "--data-dir", dir, "--mqtt-addr", mqttAddr,
			"--http-addr", httpAddr, "--amqp-app-addr", "", "--amqp-addr", "", "--log-level", "warn")
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
	t0 := pastWindow()
	sent, sum := 0, 0 // per endpoint
	publish := func(from, to int) {
		t.Helper()
		var lines []string
		for i := from; i < to; i++ {
			lines = append(lines, fmt.Sprintf(`{"ts":%d,"v":%d}`, t0.Add(time.Duration(i)*100*time.Millisecond).UnixMilli(), i))
			sum += i
		}
		host, port, _ := net.SplitHostPort(mqttAddr)
		for _, ep := range []string{"event", "telemetry"} {
			c := exec.Command(pub, "-h", host, "-p", port, "-q", "1", "-t", ep+"/"+tenant+"/dev-k", "-l")
			c.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
			if b, err := c.CombinedOutput(); err != nil { // exits 0 once every PUBACK came
				t.Fatalf("mosquitto_pub: %v\n%s", err, b)
			}
		}
		sent += to - from
	}
	// metric reads one value from /metrics, -1 when it is not there.
	metric := func(re string) int {
		out, err := exec.Command(curl, "-sS", "http://"+httpAddr+"/metrics").Output()
		if err != nil {
			return -1
		}
		m := regexp.MustCompile(re + ` (\d+)`).FindSubmatch(out)
		if m == nil {
			return -1
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	checkpoints := func() int {
		return metric(`ferry_analytics_checkpoints_total\{query="doors",tenant="DEFAULT_TENANT"\}`)
	}

	kill := func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	start()
	publish(0, 20)
	// Killed once every event is checkpointed and acknowledged: nothing
	// is replayed, and the store numbers the emptied queue from 1 again.
	c := checkpoints()
	waitFor(t, "checkpoints after the first events", func() bool { return checkpoints() > c+1 })
	kill()
	start()
	publish(20, 30)
	c = checkpoints()
	waitFor(t, "a checkpoint after the next events", func() bool { return checkpoints() > c })
	publish(30, 45) // acknowledged; the kill comes before, or during, their checkpoint
	kill()

	start()
	host, port, _ := net.SplitHostPort(mqttAddr)
	subs := func() int { return metric(`ferry_hub_subscriptions`) }
	waitFor(t, "the query's subscription", func() bool { return subs() >= 1 })
	before := subs()
	s := startProc(t, sub, "-h", host, "-p", port, "-t", "analytics/+/+", "-v", "-C", "2", "-W", "20")
	waitFor(t, "the subscriber", func() bool { return subs() > before })
	// The closing message moves the device's watermark past the window.
	for _, ep := range []string{"event", "telemetry"} {
		closer := exec.Command(pub, "-h", host, "-p", port, "-q", "1", "-t", ep+"/"+tenant+"/dev-k", "-m",
			fmt.Sprintf(`{"ts":%d,"v":0}`, t0.Add(45*time.Second).UnixMilli()))
		if b, err := closer.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v\n%s", err, b)
		}
	}
	out := s.wait(t)
	for _, q := range []string{"doors", "temps"} {
		var line string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "analytics/"+q+"/dev-k ") {
				line = l
			}
		}
		rows := rowsOf(t, line)
		r, ok := rows["dev-k@"+t0.UTC().Format("2006-01-02T15:04:05.000Z")]
		if !ok || r.N == nil || int(*r.N) != sent {
			t.Fatalf("%s: window after the crashes: %+v, want n=%d (output: %s)", q, r, sent, out)
		}
		if got := rowSum(t, line); got != float64(sum) {
			t.Errorf("%s: sum after the crashes = %v, want %d", q, got, sum)
		}
	}
}

// rowSum reads column s of the first row in mosquitto_sub -v output.
func rowSum(t *testing.T, out string) float64 {
	t.Helper()
	m := regexp.MustCompile(`"s":(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no s in %s", out)
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	return f
}
