package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/node"
)

// startFerry runs a Ferry node on a free loopback port for the test and
// returns its MQTT address.
func startFerry(t *testing.T) string {
	return startNode(t).MQTTAddr().String()
}

// startNode runs a Ferry node (MQTT, northbound AMQP and HTTP on free
// loopback ports) for the test.
func startNode(t *testing.T) *node.Node {
	t.Helper()
	cfg := config.Default()
	cfg.MQTT.Addr = "127.0.0.1:0"
	cfg.AMQP.AppAddr = "127.0.0.1:0"
	cfg.AMQP.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.CoAP.Addr = "127.0.0.1:0"
	n, err := node.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return n
}

// TestHonoCounts runs every mode at QoS 1: at QoS 0 Ferry may drop (and
// count) telemetry the application does not take fast enough, which a
// loaded machine sees, and the counts must be exact.
func TestHonoCounts(t *testing.T) {
	n := startNode(t)
	for _, mode := range []string{"telemetry", "event", "command", "http", "amqp", "coap"} {
		h := Hono{Addr: n.MQTTAddr().String(), AMQPAddr: n.AppAddr().String(), HTTPAddr: n.HTTPAddr().String(),
			DeviceAMQPAddr: n.AMQPAddr().String(), CoAPAddr: n.CoAPAddr(), Mode: mode, Devices: 3, Messages: 300, Payload: 16, Rate: 3000, Idle: 5 * time.Second,
			QoS: 1}
		res, err := h.Run(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		want := 900
		if mode == "command" {
			want = 300
		}
		if res.Sent != want || res.Received != want || res.Samples != want || res.P50 <= 0 || res.P99 < res.P50 {
			t.Errorf("%s: %v, want %d sent, received and sampled", mode, res, want)
		}
	}
}

func TestFanInCounts(t *testing.T) {
	addr := startFerry(t)
	for _, qos := range []byte{0, 1} {
		f := FanIn{Addr: addr, Publishers: 3, Messages: 200, Payload: 64, QoS: qos, Window: 8, Idle: 5 * time.Second}
		res, err := f.Run(context.Background())
		if err != nil {
			t.Fatalf("QoS %d: %v", qos, err)
		}
		if res.Sent != 600 || res.Received != 600 || res.Loss() != 0 {
			t.Errorf("QoS %d: %v, want 600 sent and received", qos, res)
		}
		if res.Elapsed <= 0 || res.Rate() <= 0 {
			t.Errorf("QoS %d: no elapsed time or rate: %v", qos, res)
		}
	}
}

func TestFanOutCounts(t *testing.T) {
	addr := startFerry(t)
	for _, qos := range []byte{0, 1} {
		f := FanOut{Addr: addr, Subscribers: 5, Messages: 100, Payload: 32, QoS: qos, Window: 8, Idle: 5 * time.Second}
		res, err := f.Run(context.Background())
		if err != nil {
			t.Fatalf("QoS %d: %v", qos, err)
		}
		if res.Sent != 500 || res.Received != 500 || res.Loss() != 0 {
			t.Errorf("QoS %d: %v, want 500 deliveries expected and made", qos, res)
		}
	}
}

func TestLatencyCounts(t *testing.T) {
	addr := startFerry(t)
	for _, qos := range []byte{0, 1} {
		l := Latency{Addr: addr, Rate: 1000, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond, QoS: qos, Idle: 5 * time.Second}
		res, err := l.Run(context.Background())
		if err != nil {
			t.Fatalf("QoS %d: %v", qos, err)
		}
		// 200 messages at 1000/s, of which the first 50 are the warm-up.
		if res.Sent != 200 || res.Received != 200 || res.Samples != 150 || res.Loss() != 0 {
			t.Errorf("QoS %d: %v, want 200 sent and received, 150 samples", qos, res)
		}
		if res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max {
			t.Errorf("QoS %d: percentiles out of order: %v", qos, res)
		}
	}
}

func TestIdleCounts(t *testing.T) {
	addr := startFerry(t)
	// Our own process stands in for the broker's: it is the broker here.
	s := Idle{Addr: addr, Conns: 30, KeepAlive: 10 * time.Second, Hold: 10 * time.Millisecond,
		Sources: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2)}, Parallel: 4, PID: os.Getpid()}
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Opened != 30 || res.Alive != 30 || res.Loss() != 0 || res.FirstErr != nil {
		t.Errorf("%v, want 30 opened and alive", res)
	}
	if res.RSSBefore <= 0 || res.RSSAfter <= 0 {
		t.Errorf("RSS not read: %+v", res)
	}
	if ms := res.Metrics("idle"); len(ms) != 2 || ms[0].Unit != "KB" || !ms[0].LowerIsBetter || ms[1].Unit != "conns/s" || ms[1].Value <= 0 {
		t.Errorf("metrics %v", ms)
	}
}

func TestIdleCountsRefused(t *testing.T) {
	// A listener that closes every connection: nothing opens, all is lost.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	res, err := Idle{Addr: ln.Addr().String(), Conns: 5, Parallel: 2}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Opened != 0 || res.Alive != 0 || res.Loss() != 1 || res.FirstErr == nil {
		t.Errorf("%v, want nothing opened, loss 100%% and an error", res)
	}
	for _, m := range res.Metrics("idle") {
		if m.Name == "rss-per-conn" {
			t.Errorf("memory metric without a PID")
		}
		if m.Loss != 1 {
			t.Errorf("%s: loss %v, want 1", m.Name, m.Loss)
		}
	}
}

func TestPingPings(t *testing.T) {
	// Holding past half the keep alive pings in between; the final check
	// then expects every PINGRESP.
	addr := startFerry(t)
	s := Idle{Addr: addr, Conns: 3, KeepAlive: 2 * time.Second, Hold: 1500 * time.Millisecond}
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Alive != 3 || res.FirstErr != nil {
		t.Errorf("%v, want 3 alive", res)
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tferry\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads:\t8\n"
	got, err := parseVmRSS(strings.NewReader(status))
	if err != nil || got != 12345*1024 {
		t.Errorf("got %d, %v; want %d", got, err, 12345*1024)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tx kB\n"} {
		if _, err := parseVmRSS(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := percentile(d, c.q); got != c.want {
			t.Errorf("percentile %v = %v, want %v", c.q, got, c.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing")
	}
}

func TestReport(t *testing.T) {
	lines := strings.Join([]string{
		"noise that is skipped",
		"broker=ferry run=1 scenario=fanin-qos0 metric=rate value=300 unit=msgs/s loss=0 better=higher",
		"broker=mosq run=1 scenario=fanin-qos0 metric=rate value=100 unit=msgs/s loss=0 better=higher",
		"broker=mochi run=1 scenario=fanin-qos0 metric=rate value=500 unit=msgs/s loss=0.49 better=higher",
		"broker=ferry run=2 scenario=fanin-qos0 metric=rate value=100 unit=msgs/s loss=0 better=higher",
		"broker=mosq run=2 scenario=fanin-qos0 metric=rate value=200 unit=msgs/s loss=0 better=higher",
		"broker=ferry run=3 scenario=fanin-qos0 metric=rate value=200 unit=msgs/s loss=0 better=higher",
		"broker=ferry run=4 scenario=fanin-qos0 metric=rate value=900 unit=msgs/s loss=0.01 better=higher",
		"broker=ferry run=1 scenario=lat metric=p99 value=0.5 unit=ms loss=0 better=lower",
		"broker=mosq run=1 scenario=lat metric=p99 value=0.25 unit=ms loss=0 better=lower",
	}, "\n")
	rows, brokers, err := Table(strings.NewReader(lines))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(brokers, ",") != "ferry,mosq,mochi" || len(rows) != 2 {
		t.Fatalf("brokers %v, %d rows", brokers, len(rows))
	}
	fanin := rows[0]
	if c := fanin.Cells["ferry"]; c.Runs != 4 || c.Lossless != 3 || c.Median != 200 || c.MaxLoss != 0.01 {
		t.Errorf("ferry cell %+v: the lossy run must not count", c)
	}
	if c := fanin.Cells["mosq"]; c.Median != 150 {
		t.Errorf("mosq median %v, want 150 (even count)", c.Median)
	}
	if r, ok := fanin.Ratio("ferry", "mosq"); !ok || r < 1.33 || r > 1.34 {
		t.Errorf("ratio %v %v", r, ok)
	}
	if _, ok := fanin.Ratio("ferry", "mochi"); ok {
		t.Error("ratio against a broker without a lossless run")
	}
	if r, ok := rows[1].Ratio("ferry", "mosq"); !ok || r != 2 || !rows[1].LowerIsBetter {
		t.Errorf("latency ratio %v %v", r, ok)
	}
	var out strings.Builder
	if err := Report(&out, strings.NewReader(lines), "ferry"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ferry/mosq", "ferry/mochi", "1.33", "no lossless run (loss up to 49.00%)", "3/4 lossless", "0.500"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if _, _, err := Table(strings.NewReader("broker=x scenario=s value=1")); err == nil {
		t.Error("a line without metric= and loss= was accepted")
	}
}

func TestMetricRoundTrip(t *testing.T) {
	m := Metric{Scenario: "fanout-qos0", Name: "rate", Unit: "deliveries/s", Value: 123456.5, Loss: 0.25}
	b, got, err := ParseMetric("broker=mochi run=2 " + m.String())
	if err != nil || b != "mochi" || got != m {
		t.Errorf("got %q %+v %v, want %+v", b, got, err, m)
	}
}
