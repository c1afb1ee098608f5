package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/gateway"
	"github.com/ferry-iot/ferry/mqtt/client"
)

// These tests run `ferry gateway` in front of an AMQP network that is a
// second Ferry (its application listener); MQTT clients (mosquitto, paho,
// Ferry's own client) talk to the gateway, subscribers to the network
// directly.

// startGateway runs a gateway on a free loopback port onto network.
func startGateway(t testing.TB, network string, mutate ...func(*config.Config)) *gateway.Service {
	t.Helper()
	cfg := config.Default()
	cfg.MQTT.Addr = "127.0.0.1:0"
	cfg.Gateway.AMQPNetwork = network
	for _, m := range mutate {
		m(&cfg)
	}
	g, err := gateway.Start(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("gateway shutdown: %v", err)
		}
	})
	return g
}

func gatewayHostPort(g *gateway.Service) (string, string) {
	host, port, _ := net.SplitHostPort(g.Addr().String())
	return host, port
}

// TestGatewayFerryNetwork: QoS 0, 1 and 2 through the gateway both ways,
// retained messages kept by the network, and a will that the network's
// last-will service publishes when the client is killed.
func TestGatewayFerryNetwork(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	n := startFerry(t)
	g := startGateway(t, "amqp://"+n.AppAddr().String())
	host, port := gatewayHostPort(g)

	// A subscriber on the network itself, and one through the gateway.
	direct, received := pahoGo(t, n.MQTTAddr().String(), "direct")
	subscribe(t, direct, 0, paho.SubscribeOptions{Topic: "gw/#", QoS: 2})
	via := startProc(t, sub, "-h", host, "-p", port, "-i", "via-gw", "-t", "gw/#", "-q", "2", "-v", "-C", "3")
	waitSubscriptions(t, n.Hub(), 2)

	for q := range 3 {
		run(t, pub, "-h", host, "-p", port, "-t", "gw/qos"+strconv.Itoa(q), "-m", "m"+strconv.Itoa(q), "-q", strconv.Itoa(q))
	}
	got := map[string]byte{}
	for range 3 {
		m := nextPublish(t, received)
		got[m.Topic+" "+string(m.Payload)] = m.QoS
	}
	for q := range 3 {
		k := "gw/qos" + strconv.Itoa(q) + " m" + strconv.Itoa(q)
		if qos, ok := got[k]; !ok || qos != byte(q) {
			t.Fatalf("the network's subscriber got %v, want %q at QoS %d", got, k, q)
		}
	}
	if out := via.wait(t); out != "gw/qos0 m0\ngw/qos1 m1\ngw/qos2 m2\n" {
		t.Fatalf("the subscriber through the gateway got %q", out)
	}

	// Retained: kept by the network, sent to a later subscriber through
	// the gateway with the retain flag.
	run(t, pub, "-h", host, "-p", port, "-t", "gw/state", "-m", "on", "-q", "1", "-r")
	if out := run(t, sub, "-h", host, "-p", port, "-t", "gw/state", "-q", "1", "-v", "-C", "1", "-W", "10", "--retained-only"); out != "gw/state on\n" {
		t.Fatalf("retained through the gateway: %q", out)
	}

	// A will: the client is killed, the network publishes it. The
	// earlier clients' connections may still be closing: once none is
	// left, the next one is the doomed client's, whose will the network
	// accepted before its CONNACK.
	waitFor(t, "the earlier clients gone", func() bool { return g.Gateway().Stats().Connections == 0 })
	p := startProc(t, sub, "-h", host, "-p", port, "-i", "doomed-gw", "-t", "nothing", "-q", "1",
		"--will-topic", "gw/will", "--will-payload", "gone", "--will-qos", "1")
	waitFor(t, "the gateway's client", func() bool { return g.Gateway().Stats().Connections == 1 })
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for {
		m := nextPublish(t, received)
		if m.Topic == "gw/state" {
			continue // the retained message, as published
		}
		if m.Topic != "gw/will" || string(m.Payload) != "gone" {
			t.Fatalf("got %s %q, want the will", m.Topic, m.Payload)
		}
		break
	}
}

// TestGatewayRefusals: a message the network rejects reaches an MQTT 5
// client as PUBACK 0x97, and a 3.1.1 client is disconnected without
// PUBACK; a network that is down refuses clients with CONNACK 0x88.
func TestGatewayRefusals(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t, func(c *config.Config) { c.MQTT.MaxRetained = 1 })
	g := startGateway(t, "amqp://"+n.AppAddr().String())
	host, port := gatewayHostPort(g)

	cl, _ := pahoGo(t, g.Addr().String(), "v5-publisher")
	retained := func(topic string) (byte, error) {
		r, err := cl.Publish(ctx5(t), &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte("x")})
		if r == nil {
			return 0, err
		}
		return r.ReasonCode, err
	}
	if code, err := retained("limits/a"); code != 0 {
		t.Fatalf("first retained message: code %#x, %v", code, err)
	}
	if code, _ := retained("limits/b"); code != 0x97 {
		t.Fatalf("a retained message past the network's limit: code %#x, want 0x97 Quota exceeded", code)
	}
	out, err := runErr(t, pub, "-h", host, "-p", port, "-V", "mqttv311", "-t", "limits/c", "-m", "x", "-q", "1", "-r")
	if err == nil {
		t.Fatalf("mosquitto_pub 3.1.1 succeeded past the limit: %s", out)
	}

	// The network goes away: new clients are refused as server unavailable.
	down := startGateway(t, "amqp://"+closedAddr(t))
	_, ack, err := pahoConnectErr(t, down.Addr().String(), &paho.Connect{ClientID: "refused", CleanStart: true, KeepAlive: 30})
	if ack == nil || ack.ReasonCode != 0x88 {
		t.Fatalf("connect with the network down: %v %v, want CONNACK 0x88 Server unavailable", ack, err)
	}
}

// TestGatewayNetworkOutage: the network restarts while a client publishes
// at QoS 1 through the gateway; the client is disconnected, reconnects
// once the network is back, and every message it had acknowledged is at
// the network's durable subscriber.
func TestGatewayNetworkOutage(t *testing.T) {
	dir := t.TempDir()
	n := startFerry(t, func(c *config.Config) { c.DataDir = dir })
	appAddr := n.AppAddr().String()
	_, s := dialContainer(t, n, "outage-watcher")
	_ = durableReceiver(t, s, "outage/#", "all")
	g := startGateway(t, "amqp://"+appAddr)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{Server: "tcp://" + g.Addr().String(), ClientID: "outage-pub", CleanStart: true,
		Reconnect: true, ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	const total = 200
	var mu sync.Mutex
	acked := map[int]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			if err := c.Publish(ctx, &client.Message{Topic: "outage/" + strconv.Itoa(i), QoS: 1, Payload: []byte(strconv.Itoa(i))}); err != nil {
				t.Logf("publish %d: %v", i, err)
				return
			}
			mu.Lock()
			acked[i] = true
			mu.Unlock()
		}
	}()
	waitFor(t, "some messages acknowledged", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 20 })
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := n.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	scancel()
	n = startFerry(t, func(c *config.Config) { c.DataDir = dir; c.AMQP.AppAddr = appAddr })
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the publisher did not finish after the network came back")
	}
	if len(acked) != total {
		t.Fatalf("%d of %d messages acknowledged", len(acked), total)
	}
	_, s2 := dialContainer(t, n, "outage-watcher")
	r := durableReceiver(t, s2, "outage/#", "all")
	seen := map[int]bool{}
	for len(seen) < total {
		m := receiveAMQP(t, r)
		i, _ := strconv.Atoi(string(m.GetData()))
		seen[i] = true
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func runErr(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	p := startProc(t, name, args...)
	select {
	case err := <-p.done:
		p.done <- err
		return p.out.String(), err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not finish", name)
	}
	return "", nil
}

// pahoConnectErr connects a paho.golang client and returns the CONNACK
// and the error instead of failing.
func pahoConnectErr(t *testing.T, addr string, cp *paho.Connect) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	cl := paho.NewClient(paho.ClientConfig{Conn: nc})
	ack, err := cl.Connect(ctx5(t), cp)
	return cl, ack, err
}

// TestGatewayLogin: the gateway logs in to the network with SASL PLAIN,
// as the URL's user or, with forwarded credentials, as each client's; a
// login the network refuses is CONNACK 0x86 Bad user name or password.
func TestGatewayLogin(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("gw-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	n := startFerry(t, func(c *config.Config) {
		c.Applications = []config.Application{{Name: "gw", PasswordHash: string(hash), Tenants: []string{config.DefaultTenant}}}
	})
	ok := startGateway(t, "amqp://gw:gw-secret@"+n.AppAddr().String())
	cl, _ := pahoGo(t, ok.Addr().String(), "logged-in")
	if r, err := cl.Publish(ctx5(t), &paho.Publish{Topic: "login/ok", QoS: 1, Payload: []byte("x")}); err != nil || r.ReasonCode != 0 {
		t.Fatalf("publish as gw: %v %v", r, err)
	}
	bad := startGateway(t, "amqp://gw:wrong@"+n.AppAddr().String())
	if _, ack, _ := pahoConnectErr(t, bad.Addr().String(), &paho.Connect{ClientID: "bad", CleanStart: true, KeepAlive: 30}); ack == nil || ack.ReasonCode != 0x86 {
		t.Fatalf("a wrong network password: CONNACK %v, want 0x86", ack)
	}
	fwd := startGateway(t, "amqp://"+n.AppAddr().String(), func(c *config.Config) { c.Gateway.ForwardCredentials = true })
	if _, ack, _ := pahoConnectErr(t, fwd.Addr().String(), &paho.Connect{ClientID: "fwd", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "gw", PasswordFlag: true, Password: []byte("gw-secret")}); ack == nil || ack.ReasonCode != 0 {
		t.Fatalf("forwarded credentials: CONNACK %v, want success", ack)
	}
	if _, ack, _ := pahoConnectErr(t, fwd.Addr().String(), &paho.Connect{ClientID: "fwd-bad", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "gw", PasswordFlag: true, Password: []byte("nope")}); ack == nil || ack.ReasonCode != 0x86 {
		t.Fatalf("forwarded wrong credentials: CONNACK %v, want 0x86", ack)
	}
}

// TestGatewayTLS: the gateway reaches the network over amqps://, checking
// its certificate against --amqp-network-ca; the network is Ferry's
// northbound listener over TLS (--amqps-app-addr), which go-amqp reads
// over TLS too.
func TestGatewayTLS(t *testing.T) {
	pki := newTestPKI(t)
	n := startFerry(t, func(c *config.Config) {
		c.AMQP.AppTLSAddr = "127.0.0.1:0"
		c.MQTT.TLS.CertFile, c.MQTT.TLS.KeyFile = pki.ServerCert, pki.ServerKey
	})
	pem, err := os.ReadFile(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	conn, err := goamqp.Dial(honoCtx(t), "amqps://"+n.AppTLSAddr().String(), &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), TLSConfig: &tls.Config{RootCAs: roots}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s, err := conn.NewSession(honoCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := receiver(t, s, "secure/#", "", 10)

	if _, err := gateway.Start(config.Config{Gateway: config.Gateway{AMQPNetwork: "amqps://" + n.AppTLSAddr().String(), CAFile: "/nonexistent"}}, testLogger(t)); err == nil {
		t.Fatal("a gateway with a missing CA file started")
	}
	g := startGateway(t, "amqps://"+n.AppTLSAddr().String(), func(c *config.Config) { c.Gateway.CAFile = pki.CA })
	cl, _ := pahoGo(t, g.Addr().String(), "tls-publisher")
	if r, err := cl.Publish(ctx5(t), &paho.Publish{Topic: "secure/a", QoS: 1, Payload: []byte("sealed")}); err != nil || r.ReasonCode != 0 {
		t.Fatalf("publish through the gateway over TLS: %v %v", r, err)
	}
	if m := receiveAMQP(t, r); string(m.GetData()) != "sealed" {
		t.Fatalf("got %q", m.GetData())
	}
	// Without the CA the network's certificate is not trusted.
	untrusted := startGateway(t, "amqps://"+n.AppTLSAddr().String())
	if _, ack, _ := pahoConnectErr(t, untrusted.Addr().String(), &paho.Connect{ClientID: "untrusted", CleanStart: true, KeepAlive: 30}); ack == nil || ack.ReasonCode != 0x88 {
		t.Fatalf("an untrusted network certificate: CONNACK %v, want 0x88", ack)
	}
}

// TestGatewayPersistentSession: an MQTT 5 client with a session expiry
// gets durable links at a Ferry network, which keeps what is published
// while the client is away; subscribing again after the reconnection (the
// gateway says session present = 0) delivers it.
func TestGatewayPersistentSession(t *testing.T) {
	n := startFerry(t)
	g := startGateway(t, "amqp://"+n.AppAddr().String())
	expiry := uint32(300)
	connect := func() (*paho.Client, net.Conn, chan *paho.Publish) {
		cl, _, nc, received := pahoConnect(t, g.Addr().String(), &paho.Connect{ClientID: "persistent", KeepAlive: 30,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
		subscribe(t, cl, 0, paho.SubscribeOptions{Topic: "persist/#", QoS: 1})
		return cl, nc, received
	}
	_, nc, _ := connect()
	nc.Close() // lost, not disconnected
	waitFor(t, "the gateway's client gone", func() bool { return g.Gateway().Stats().Connections == 0 })

	direct, _ := pahoGo(t, n.MQTTAddr().String(), "direct-publisher")
	for i := range 3 {
		if _, err := direct.Publish(ctx5(t), &paho.Publish{Topic: "persist/" + strconv.Itoa(i), QoS: 1, Payload: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	cl, _, received := connect()
	t.Cleanup(func() { cl.Disconnect(&paho.Disconnect{}) })
	for i := range 3 {
		if m := nextPublish(t, received); string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("after the reconnection: %s %q, want %d", m.Topic, m.Payload, i)
		}
	}
}
