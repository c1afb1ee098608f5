package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"maps"

	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/node"
	"github.com/ferry-iot/ferry/mqtt/client"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// mosquittoBroker is a Mosquitto broker on a fixed loopback port that a
// test may stop and start again, with persistence in a temporary
// directory.
type mosquittoBroker struct {
	t    *testing.T
	bin  string
	conf string
	addr string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startMosquittoBroker(t *testing.T) *mosquittoBroker {
	t.Helper()
	bin := requirePeer(t, "mosquitto", "mosquitto")
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	cfg := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nautosave_interval 1\n", port, dir)
	if os.Geteuid() == 0 {
		// Mosquitto started as root would switch to user mosquitto, who
		// cannot write in the test's temporary directory.
		cfg += "user root\n"
	}
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mosquittoBroker{t: t, bin: bin, conf: conf, addr: net.JoinHostPort("127.0.0.1", port)}
	m.start()
	t.Cleanup(m.stop)
	return m
}

func (m *mosquittoBroker) start() {
	m.t.Helper()
	m.out = new(syncBuffer)
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(m.cmd, m.done)
	waitFor(m.t, "mosquitto to listen on "+m.addr, func() bool {
		c, err := net.DialTimeout("tcp", m.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// stop ends the broker with SIGTERM, on which Mosquitto saves its
// persistent state.
func (m *mosquittoBroker) stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
	}
	if m.t.Failed() {
		m.t.Logf("mosquitto output:\n%s", m.out.String())
	}
	m.cmd = nil
}

func bridgeTo(addr string, topics ...config.BridgeTopic) func(*config.Config) {
	return func(c *config.Config) {
		c.Bridges = []config.Bridge{{Name: "remote", Address: "tcp://" + addr, Topics: topics}}
	}
}

// TestBridgeMosquitto forwards at every QoS both ways between Ferry and
// Mosquitto, with the prefixes swapped and the retained flag kept.
func TestBridgeMosquitto(t *testing.T) {
	m := startMosquittoBroker(t)
	remotePub, _ := pahoGo(t, m.addr, "remote-pub")
	// Retained before the bridge exists: the bridge's subscription gets it.
	publish(t, remotePub, &paho.Publish{Topic: "in/retained", QoS: 1, Retain: true, Payload: []byte("kept")})
	remoteSub, remoteGot := pahoGo(t, m.addr, "remote-sub")
	subscribe(t, remoteSub, 0, paho.SubscribeOptions{Topic: "site/out/#", QoS: 2, RetainAsPublished: true})

	n := startFerry(t, bridgeTo(m.addr,
		config.BridgeTopic{Pattern: "out/#", Direction: "out", QoS: 2, RemotePrefix: "site/"},
		config.BridgeTopic{Pattern: "in/#", Direction: "in", QoS: 2, LocalPrefix: "remote/"},
	))
	addr := n.MQTTAddr().String()
	localSub, localGot := pahoGo(t, addr, "local-sub")
	subscribe(t, localSub, 0, paho.SubscribeOptions{Topic: "remote/in/#", QoS: 2, RetainAsPublished: true})
	// Straight from the bridge, or as Ferry's retained message if the
	// bridge was first: retained either way.
	if p := receive(t, localGot); p.Topic != "remote/in/retained" || string(p.Payload) != "kept" || !p.Retain {
		t.Fatalf("retained message from the remote: %s %q retain=%v", p.Topic, p.Payload, p.Retain)
	}
	localPub, _ := pahoGo(t, addr, "local-pub")

	for qos := byte(0); qos <= 2; qos++ {
		payload := []byte("in-" + strconv.Itoa(int(qos)))
		publish(t, remotePub, &paho.Publish{Topic: "in/q", QoS: qos, Payload: payload})
		if p := receive(t, localGot); p.Topic != "remote/in/q" || string(p.Payload) != string(payload) || p.QoS != qos || p.Retain {
			t.Errorf("in at QoS %d: got %s %q QoS %d retain=%v", qos, p.Topic, p.Payload, p.QoS, p.Retain)
		}
		payload = []byte("out-" + strconv.Itoa(int(qos)))
		publish(t, localPub, &paho.Publish{Topic: "out/q", QoS: qos, Payload: payload})
		if p := receive(t, remoteGot); p.Topic != "site/out/q" || string(p.Payload) != string(payload) || p.QoS != qos || p.Retain {
			t.Errorf("out at QoS %d: got %s %q QoS %d retain=%v", qos, p.Topic, p.Payload, p.QoS, p.Retain)
		}
	}
	publish(t, localPub, &paho.Publish{Topic: "out/retained", QoS: 1, Retain: true, Payload: []byte("kept-out")})
	if p := receive(t, remoteGot); p.Topic != "site/out/retained" || !p.Retain {
		t.Errorf("retained out: got %s %q retain=%v", p.Topic, p.Payload, p.Retain)
	}
	// Mosquitto keeps it as the remote topic's retained message.
	late, lateGot := pahoGo(t, m.addr, "remote-late")
	subscribe(t, late, 0, paho.SubscribeOptions{Topic: "site/out/retained", QoS: 1})
	if p := receive(t, lateGot); string(p.Payload) != "kept-out" || !p.Retain {
		t.Errorf("Mosquitto's retained message: %q retain=%v", p.Payload, p.Retain)
	}
	nothing(t, localGot)
	nothing(t, remoteGot)
}

// TestBridgeMosquittoOutage stops and restarts the remote broker while
// QoS 1 messages flow out: every message Ferry acknowledged arrives.
func TestBridgeMosquittoOutage(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) { testBridgeOutage(t, qos) })
	}
}

// remoteCounter counts, by payload, the messages a subscriber of site/#
// at the remote broker gets.
type remoteCounter struct {
	mu      sync.Mutex
	arrived map[string]int
}

func (r *remoteCounter) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.arrived)
}

// countAtRemote subscribes to site/# at the broker at addr with a session
// that outlives the broker's restart: what Mosquitto took from the bridge
// while the subscriber was away waits for it there. In 3.1.1: Mosquitto
// 2.0.11 came back without an MQTT 5 client's session (CONNACK session
// present 0) though it kept the bridge's.
func countAtRemote(t *testing.T, ctx context.Context, addr, id string, qos byte) *remoteCounter {
	t.Helper()
	r := &remoteCounter{arrived: map[string]int{}}
	sub, err := client.Connect(ctx, client.Options{
		Server: "tcp://" + addr, ClientID: id, Version: packet.V311,
		Reconnect: true, MaxBackoff: 200 * time.Millisecond,
		OnMessage: func(msg *client.Message) {
			r.mu.Lock()
			r.arrived[string(msg.Payload)]++
			r.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	if _, err := sub.Subscribe(ctx, &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: "site/#", QoS: qos}}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// testBridgeOutage: every message acknowledged locally at qos reaches the
// remote across its restart; at QoS 2, exactly once.
func testBridgeOutage(t *testing.T, qos byte) {
	m := startMosquittoBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	remote := countAtRemote(t, ctx, m.addr, fmt.Sprintf("outage-sub-%d", qos), qos)

	n := startFerry(t, bridgeTo(m.addr, config.BridgeTopic{Pattern: "load/#", Direction: "out", QoS: qos, RemotePrefix: "site/"}))
	pub, err := client.Connect(ctx, client.Options{Server: "tcp://" + n.MQTTAddr().String(), ClientID: "outage-pub"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	var acked []string
	send := func(count int) {
		t.Helper()
		for range count {
			p := "m" + strconv.Itoa(len(acked))
			if err := pub.Publish(ctx, &client.Message{Topic: "load/x", QoS: qos, Payload: []byte(p)}); err != nil {
				t.Fatalf("publish %s: %v", p, err)
			}
			acked = append(acked, p)
		}
	}
	send(50)
	m.stop()
	send(100)
	m.start()
	send(50)

	deadline := time.Now().Add(45 * time.Second)
	for {
		arrived := remote.counts()
		var missing []string
		for _, p := range acked {
			if arrived[p] == 0 {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages never reached the remote, e.g. %v (hub: %+v)", len(missing), len(acked), missing[:min(5, len(missing))], n.Hub().Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if qos == 2 {
		for p, k := range remote.counts() {
			if k != 1 {
				t.Errorf("QoS 2 message %s arrived %d times", p, k)
			}
		}
	}
}

// TestBridgeNoLoop bridges two Ferry nodes both ways on the same topics:
// a message published on either arrives once on the other and does not
// come back.
func TestBridgeNoLoop(t *testing.T) {
	b := startFerry(t)
	a := startFerry(t, bridgeTo(b.MQTTAddr().String(), config.BridgeTopic{Pattern: "loop/#", Direction: "both", QoS: 1}))
	aSub, aGot := pahoGo(t, a.MQTTAddr().String(), "a-sub")
	bSub, bGot := pahoGo(t, b.MQTTAddr().String(), "b-sub")
	subscribe(t, aSub, 0, paho.SubscribeOptions{Topic: "loop/#", QoS: 1})
	subscribe(t, bSub, 0, paho.SubscribeOptions{Topic: "loop/#", QoS: 1})
	aPub, _ := pahoGo(t, a.MQTTAddr().String(), "a-pub")
	bPub, _ := pahoGo(t, b.MQTTAddr().String(), "b-pub")
	// The bridge's subscription on b (its "in" side) is made once it
	// connected: probe until a message from b reaches a.
	waitFor(t, "the bridge to subscribe on b", func() bool {
		publish(t, bPub, &paho.Publish{Topic: "loop/probe", QoS: 0, Payload: []byte("probe")})
		select {
		case <-aGot:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	drain := func(ch chan *paho.Publish) {
		for {
			select {
			case <-ch:
			case <-time.After(500 * time.Millisecond):
				return
			}
		}
	}
	drain(aGot)
	drain(bGot)

	for _, c := range []struct {
		from *paho.Client
		name string
	}{{aPub, "from-a"}, {bPub, "from-b"}} {
		publish(t, c.from, &paho.Publish{Topic: "loop/" + c.name, QoS: 1, Payload: []byte(c.name)})
		for side, ch := range map[string]chan *paho.Publish{"a": aGot, "b": bGot} {
			if p := receive(t, ch); string(p.Payload) != c.name {
				t.Errorf("%s: %s got %q", c.name, side, p.Payload)
			}
		}
	}
	// A loop would bring each message back within milliseconds.
	select {
	case p := <-aGot:
		t.Errorf("a got %s %q again", p.Topic, p.Payload)
	case p := <-bGot:
		t.Errorf("b got %s %q again", p.Topic, p.Payload)
	case <-time.After(time.Second):
	}
}

// TestBridgeObservability: a bridge's state and counts are in /metrics
// and, as Mosquitto publishes them, under $SYS/broker/connection/<name>/.
func TestBridgeObservability(t *testing.T) {
	b := startFerry(t)
	a := startFerry(t, bridgeTo(b.MQTTAddr().String(), config.BridgeTopic{Pattern: "obs/#", Direction: "out", QoS: 1}),
		func(c *config.Config) { c.MQTT.SysInterval = config.Duration(time.Second) })
	bSub, bGot := pahoGo(t, b.MQTTAddr().String(), "obs-sub")
	subscribe(t, bSub, 0, paho.SubscribeOptions{Topic: "obs/#", QoS: 1})
	aPub, _ := pahoGo(t, a.MQTTAddr().String(), "obs-pub")
	publish(t, aPub, &paho.Publish{Topic: "obs/1", QoS: 1, Payload: []byte("x")})
	select {
	case <-bGot:
	case <-time.After(20 * time.Second):
		t.Fatal("nothing forwarded")
	}
	base := "http://" + a.HTTPAddr().String()
	waitFor(t, "the bridge's metrics", func() bool {
		_, m := httpGet(t, base+"/metrics")
		return strings.Contains(m, `ferry_bridge_connected{bridge="remote"} 1`) &&
			strings.Contains(m, `ferry_bridge_forwarded_total{bridge="remote",direction="out"} 1`)
	})
	sys, sysGot := pahoGo(t, a.MQTTAddr().String(), "obs-sys")
	subscribe(t, sys, 0, paho.SubscribeOptions{Topic: "$SYS/broker/connection/remote/#", QoS: 0})
	seen := map[string]string{}
	waitFor(t, "the bridge's $SYS topics", func() bool {
		select {
		case p := <-sysGot:
			seen[p.Topic] = string(p.Payload)
		case <-time.After(100 * time.Millisecond):
		}
		return seen["$SYS/broker/connection/remote/state"] == "1" && seen["$SYS/broker/connection/remote/forwarded/out"] == "1"
	})
}

// TestBridgeLocalRestart: messages acknowledged locally while the remote
// is away wait in Ferry's store, survive a restart of Ferry, and reach
// the remote once it is back.
func TestBridgeLocalRestart(t *testing.T) {
	m := startMosquittoBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	remote := countAtRemote(t, ctx, m.addr, "restart-sub", 1)
	m.stop()

	cfg := config.Default()
	cfg.MQTT.Addr, cfg.AMQP.AppAddr, cfg.AMQP.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "", "", ""
	cfg.MQTT.SysInterval = 0
	cfg.DataDir = t.TempDir()
	bridgeTo(m.addr, config.BridgeTopic{Pattern: "load/#", Direction: "out", QoS: 1, RemotePrefix: "site/"})(&cfg)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))
	first, err := node.Start(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := client.Connect(ctx, client.Options{Server: "tcp://" + first.MQTTAddr().String(), ClientID: "restart-pub", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if err := pub.Publish(ctx, &client.Message{Topic: "load/x", QoS: 1, Payload: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	pub.Close()
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	if err := first.Shutdown(sctx); err != nil {
		t.Logf("first shutdown: %v", err)
	}
	scancel()

	startNode(t, cfg) // the same data directory
	m.start()
	waitFor(t, "every message at the remote", func() bool {
		arrived := remote.counts()
		for i := range n {
			if arrived[strconv.Itoa(i)] == 0 {
				return false
			}
		}
		return true
	})
}
