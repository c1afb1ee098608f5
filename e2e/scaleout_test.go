package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/node"
	"github.com/ferry-iot/ferry/internal/store/pgstore/pgtest"
)

// TestScaleOut runs three Ferry nodes of one cluster (Kafka: franz-go's
// kfake; registry: a real PostgreSQL) and drives them with mosquitto
// clients: devices log in on any node with credentials created through
// another, messages and retained messages cross nodes, a node that starts
// later has the retained messages.
func TestScaleOut(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	dsn := pgtest.Schema(t, pgtest.Start(t))
	kc, err := kfake.NewCluster(kfake.NumBrokers(1)) // on 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	startScaleOutNode := func(id string) *node.Node {
		return startFerry(t, func(c *config.Config) {
			c.Auth = true
			c.AdminPassword = "admin-pw"
			c.Store.Engine = "memory"
			c.Registry.PostgresDSN = dsn
			c.Cluster.NodeID = id
			c.Cluster.Kafka.Brokers = kc.ListenAddrs()
		})
	}
	a, b := startScaleOutNode("a"), startScaleOutNode("b")
	hostA, portA := hostPort(a)
	hostB, portB := hostPort(b)

	// One registry: a device created through node A logs in on node B, and
	// node B's registry API lists it.
	provision(t, a, "acme", "dev-1", "sensor-1", "pw-acme", true)
	req, _ := http.NewRequest(http.MethodGet, "http://"+b.HTTPAddr().String()+"/v1/devices/acme/dev-1", nil)
	req.SetBasicAuth("admin", "admin-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("node B's registry API: GET dev-1 = %d %s", resp.StatusCode, body)
	}

	login := []string{"-u", "sensor-1@acme", "-P", "pw-acme"}
	s := startProc(t, sub, append([]string{"-h", hostB, "-p", portB, "-t", "plant/#", "-C", "2", "-v", "-q", "1"}, login...)...)
	waitSubscriptions(t, b.Hub(), 1)
	run(t, pub, append([]string{"-h", hostA, "-p", portA, "-t", "plant/line-1", "-m", "qos1 from A", "-q", "1"}, login...)...)
	run(t, pub, append([]string{"-h", hostA, "-p", portA, "-t", "plant/line-2", "-m", "qos0 from A"}, login...)...)
	// Two topics, two partitions: no order between them.
	got := strings.Split(strings.TrimSpace(s.wait(t)), "\n")
	slices.Sort(got)
	if want := []string{"plant/line-1 qos1 from A", "plant/line-2 qos0 from A"}; !slices.Equal(got, want) {
		t.Errorf("subscriber on node B got %q, want %q", got, want)
	}

	// A retained message set on node A is there for a subscriber on node B
	// and on a node started afterwards; clearing it clears it everywhere.
	run(t, pub, append([]string{"-h", hostA, "-p", portA, "-t", "plant/state", "-m", "running", "-r", "-q", "1"}, login...)...)
	waitFor(t, "the retained message on node B", func() bool { return b.Hub().TenantStats("acme").Retained == 1 })
	if out := strings.TrimSpace(run(t, sub, append([]string{"-h", hostB, "-p", portB, "-t", "plant/state", "-C", "1", "-v"}, login...)...)); out != "plant/state running" {
		t.Errorf("retained on node B: %q", out)
	}
	c := startScaleOutNode("c")
	hostC, portC := hostPort(c)
	if out := strings.TrimSpace(run(t, sub, append([]string{"-h", hostC, "-p", portC, "-t", "plant/state", "-C", "1", "-v"}, login...)...)); out != "plant/state running" {
		t.Errorf("retained on node C, started later: %q", out)
	}
	run(t, pub, append([]string{"-h", hostB, "-p", portB, "-t", "plant/state", "-m", "", "-r", "-q", "1"}, login...)...)
	for _, n := range []*node.Node{a, c} {
		waitFor(t, "the retained message cleared", func() bool { return n.Hub().TenantStats("acme").Retained == 0 })
	}

	// One connection per client ID, cluster-wide: connecting on node B
	// closes the older connection on node A with DISCONNECT 0x8E.
	disconnected := make(chan byte, 1)
	nc, err := net.DialTimeout("tcp", a.MQTTAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	first := paho.NewClient(paho.ClientConfig{Conn: nc,
		OnServerDisconnect: func(d *paho.Disconnect) { disconnected <- d.ReasonCode }})
	cp := &paho.Connect{ClientID: "dev-x", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "sensor-1@acme", PasswordFlag: true, Password: []byte("pw-acme")}
	if ack, err := first.Connect(ctx5(t), cp); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("connect on node A: %v %v", err, ack)
	}
	second, _, _, _ := pahoConnect(t, b.MQTTAddr().String(), cp)
	t.Cleanup(func() { second.Disconnect(&paho.Disconnect{}) })
	select {
	case code := <-disconnected:
		if code != 0x8E {
			t.Errorf("node A's connection closed with %#x, want 0x8E session taken over", code)
		}
	case <-time.After(10 * time.Second):
		t.Error("node A's connection of dev-x still open after dev-x connected on node B")
		first.Disconnect(&paho.Disconnect{})
	}
	select {
	case <-first.Done():
	case <-time.After(10 * time.Second):
		t.Error("node A's client of dev-x did not end")
	}

	// The Kafka counters are in node A's metrics.
	resp, err = http.Get("http://" + a.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "ferry_cluster_produced_total") || strings.Contains(string(body), "ferry_cluster_produced_total 0\n") {
		t.Errorf("node A's /metrics lacks produced records:\n%s", body)
	}
}

// TestScaleOutKafkaTLSAndSASL starts nodes against a Kafka that wants TLS
// (a CA file, as Strimzi's cluster CA) and SCRAM-SHA-512 (as a KafkaUser):
// configured, they start and share messages; with a wrong password the
// node does not start and says with what it tried.
func TestScaleOutKafkaTLSAndSASL(t *testing.T) {
	pki := newTestPKI(t)
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "ferry-node", "kafka-pw"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	dsn := pgtest.Schema(t, pgtest.Start(t))
	scaleOut := func(id, password string) func(*config.Config) {
		return func(c *config.Config) {
			c.AdminPassword = "admin-pw"
			c.Store.Engine = "memory"
			c.Registry.PostgresDSN = dsn
			c.Cluster.NodeID = id
			c.Cluster.Kafka.Brokers = kc.ListenAddrs()
			c.Cluster.Kafka.TLS = true
			c.Cluster.Kafka.CAFile = pki.CA
			c.Cluster.Kafka.SASL = config.KafkaSASL{Mechanism: "SCRAM-SHA-512", Username: "ferry-node", Password: password}
		}
	}
	a := startFerry(t, scaleOut("a", "kafka-pw"))
	b := startFerry(t, scaleOut("b", "kafka-pw"))
	sub, received := pahoGo(t, b.MQTTAddr().String(), "sub")
	subscribe(t, sub, 0, paho.SubscribeOptions{Topic: "line/#", QoS: 1})
	waitSubscriptions(t, b.Hub(), 1)
	pub, _ := pahoGo(t, a.MQTTAddr().String(), "pub")
	if _, err := pub.Publish(ctx5(t), &paho.Publish{Topic: "line/1", QoS: 1, Payload: []byte("over tls")}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-received:
		if string(p.Payload) != "over tls" {
			t.Errorf("node b's subscriber got %q", p.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing crossed from node a to node b")
	}

	cfg := config.Default()
	cfg.MQTT.Addr, cfg.HTTP.Addr, cfg.DataDir = "127.0.0.1:0", "", t.TempDir()
	cfg.AMQP.AppAddr = "127.0.0.1:0"
	cfg.AMQP.Addr = "127.0.0.1:0"
	scaleOut("c", "wrong")(&cfg)
	cfg.Cluster.Kafka.StartTimeout = config.Duration(time.Second)
	if n, err := node.Start(cfg, slog.New(slog.DiscardHandler)); err == nil {
		n.Shutdown(context.Background())
		t.Fatal("a node with a wrong Kafka password started")
	} else if !strings.Contains(err.Error(), "--kafka-brokers") || !strings.Contains(err.Error(), "TLS, SASL SCRAM-SHA-512 as ferry-node") {
		t.Errorf("start: %v; want it to name the flag and how it logged in", err)
	}
}
