package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/eclipse/paho.golang/paho"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/node"
)

// These tests use AMQP clients (go-amqp, Qpid Proton) as broker clients:
// an address that is not Hono's is the MQTT topic of that name, shared
// with MQTT clients (mosquitto, paho) in the application's tenant.

// dialContainer connects go-amqp to the application listener under a
// container id; closing the connection leaves durable links suspended.
func dialContainer(t *testing.T, n *node.Node, container string) (*goamqp.Conn, *goamqp.Session) {
	t.Helper()
	c, err := goamqp.Dial(honoCtx(t), "amqp://"+n.AppAddr().String(), &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), ContainerID: container})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := c.NewSession(honoCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func durableReceiver(t *testing.T, s *goamqp.Session, filter, name string) *goamqp.Receiver {
	t.Helper()
	r, err := s.NewReceiver(honoCtx(t), filter, &goamqp.ReceiverOptions{
		Name:               name,
		SourceDurability:   goamqp.DurabilityUnsettledState,
		SourceExpiryPolicy: goamqp.ExpiryPolicyNever,
		Credit:             10,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func annotation(m *goamqp.Message, key string) any {
	return m.Annotations[key]
}

// TestAMQPTopicsShared: an AMQP receiver with a wildcard source gets what
// MQTT clients publish, with the topic in to and QoS and retain as
// annotations, and retained messages on attach; an MQTT subscriber gets
// what an AMQP sender sends, retained when it says so.
func TestAMQPTopicsShared(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	n := startFerry(t)
	host, port := hostPort(n)
	run(t, pub, "-h", host, "-p", port, "-t", "sensors/kitchen/temp", "-m", "21.5", "-q", "1", "-r")

	_, s := dialContainer(t, n, "app-shared")
	r := receiver(t, s, "sensors/+/temp", "", 10)
	m := receiveAMQP(t, r)
	if string(m.GetData()) != "21.5" || m.Properties.To == nil || *m.Properties.To != "sensors/kitchen/temp" || annotation(m, "x-opt-retain-message") != true {
		t.Fatalf("retained on attach: %q to %v annotations %v, want 21.5 to sensors/kitchen/temp retained", m.GetData(), m.Properties.To, m.Annotations)
	}
	run(t, pub, "-h", host, "-p", port, "-t", "sensors/hall/temp", "-m", "19", "-q", "1")
	run(t, pub, "-h", host, "-p", port, "-t", "sensors/hall/humidity", "-m", "40", "-q", "1") // not matched
	run(t, pub, "-h", host, "-p", port, "-t", "sensors/cellar/temp", "-m", "12", "-q", "0")
	for _, want := range []struct {
		to, body string
		qos      int32
	}{{"sensors/hall/temp", "19", 1}, {"sensors/cellar/temp", "12", 0}} {
		m := receiveAMQP(t, r)
		if *m.Properties.To != want.to || string(m.GetData()) != want.body || annotation(m, "x-opt-mqtt-qos") != want.qos || annotation(m, "x-opt-retain-message") != false {
			t.Fatalf("got %q to %s annotations %v, want %q to %s QoS %d", m.GetData(), *m.Properties.To, m.Annotations, want.body, want.to, want.qos)
		}
	}

	// An AMQP sender: a retained QoS 1 message reaches a later MQTT
	// subscriber as retained.
	snd, err := s.NewSender(honoCtx(t), "actuators/door", nil)
	if err != nil {
		t.Fatal(err)
	}
	am := goamqp.NewMessage([]byte("open"))
	am.Annotations = goamqp.Annotations{"x-opt-retain-message": true, "x-opt-mqtt-qos": int32(1)}
	if err := snd.Send(honoCtx(t), am, nil); err != nil {
		t.Fatalf("send to actuators/door: %v", err)
	}
	out := run(t, sub, "-h", host, "-p", port, "-t", "actuators/#", "-C", "1", "-W", "10", "-v", "--retained-only", "-q", "1")
	if out != "actuators/door open\n" {
		t.Fatalf("mosquitto_sub got %q, want the retained message", out)
	}
	// A topic with wildcards takes no messages.
	if _, err := s.NewSender(honoCtx(t), "actuators/+", nil); err == nil {
		t.Fatal("a sender to a topic filter was attached")
	}
}

// TestAMQPDurableSubscription: a durable receiver (terminus durability,
// expiry never) under a stable container id and link name is a persistent
// session: what MQTT publishes while its connection is gone, and while
// Ferry restarts, it gets in order when it comes back.
func TestAMQPDurableSubscription(t *testing.T) {
	dir := t.TempDir()
	mutate := func(c *config.Config) { c.DataDir = dir }
	n := startFerry(t, mutate)
	c, s := dialContainer(t, n, "app-durable")
	r := durableReceiver(t, s, "orders/#", "orders-sub")
	cl, _ := pahoGo(t, n.MQTTAddr().String(), "producer")
	publish := func(cl *paho.Client, i int) {
		t.Helper()
		if _, err := cl.Publish(ctx5(t), &paho.Publish{Topic: "orders/" + strconv.Itoa(i), QoS: 1, Payload: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	publish(cl, 0)
	if m := receiveAMQP(t, r); string(m.GetData()) != "0" {
		t.Fatalf("live: %q", m.GetData())
	}
	c.Close() // suspends the link: the subscription stays
	for i := 1; i <= 5; i++ {
		publish(cl, i)
	}
	c2, s2 := dialContainer(t, n, "app-durable")
	r2 := durableReceiver(t, s2, "orders/#", "orders-sub")
	for i := 1; i <= 3; i++ {
		if m := receiveAMQP(t, r2); string(m.GetData()) != strconv.Itoa(i) || *m.Properties.To != fmt.Sprintf("orders/%d", i) {
			t.Fatalf("after reattach: %q to %s, want %d", m.GetData(), *m.Properties.To, i)
		}
	}
	c2.Close()

	// Across a restart: 4 and 5 wait in the store, 6 comes while Ferry is
	// back but the receiver is not.
	cl.Disconnect(&paho.Disconnect{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	n = startFerry(t, mutate)
	cl2, _ := pahoGo(t, n.MQTTAddr().String(), "producer")
	publish(cl2, 6)
	_, s3 := dialContainer(t, n, "app-durable")
	r3 := durableReceiver(t, s3, "orders/#", "orders-sub")
	for i := 4; i <= 6; i++ {
		if m := receiveAMQP(t, r3); string(m.GetData()) != strconv.Itoa(i) {
			t.Fatalf("after restart: %q, want %d", m.GetData(), i)
		}
	}
	// Closing the link (detach closed=true) ends the subscription.
	if err := r3.Close(honoCtx(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscription to end", func() bool { return n.Hub().Stats().Subscripts == 0 })
}

// TestAMQPReceivesMQTTWill: the will of an MQTT client killed with
// SIGKILL reaches an AMQP receiver of its topic, as it reaches MQTT
// subscribers.
func TestAMQPReceivesMQTTWill(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	n := startFerry(t)
	host, port := hostPort(n)
	_, s := dialContainer(t, n, "will-watcher")
	r := receiver(t, s, "wills/#", "", 10)
	watcher, received := pahoGo(t, n.MQTTAddr().String(), "mqtt-watcher")
	subscribe(t, watcher, 0, paho.SubscribeOptions{Topic: "wills/#", QoS: 1})
	waitSubscriptions(t, n.Hub(), 2)

	p := startProc(t, sub, "-h", host, "-p", port, "-i", "doomed", "-t", "nothing", "-q", "1",
		"--will-topic", "wills/doomed", "--will-payload", "doomed is gone", "--will-qos", "1")
	waitFor(t, "mosquitto_sub connected", func() bool { return n.Hub().Stats().Subscripts >= 3 })
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	m := receiveAMQP(t, r)
	if *m.Properties.To != "wills/doomed" || string(m.GetData()) != "doomed is gone" || annotation(m, "x-opt-mqtt-qos") != int32(1) {
		t.Fatalf("AMQP receiver got %q to %s %v, want the will", m.GetData(), *m.Properties.To, m.Annotations)
	}
	if pm := nextPublish(t, received); string(pm.Payload) != "doomed is gone" {
		t.Fatalf("MQTT subscriber got %q", pm.Payload)
	}
}

// TestAMQPConnectionsCounted: AMQP applications and devices count in
// ferry_connections by protocol, as MQTT clients do, and leave it when
// they go.
func TestAMQPConnectionsCounted(t *testing.T) {
	n := startFerry(t, func(c *config.Config) { c.AdminPassword = "console-pw" })
	base := "http://" + n.HTTPAddr().String()
	gauge := func(protocol string) string {
		_, m := httpGet(t, base+"/metrics")
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, `ferry_connections{protocol="`+protocol+`",tenant="DEFAULT_TENANT"}`) {
				return strings.Fields(l)[1]
			}
		}
		return "none"
	}
	app, _ := dialContainer(t, n, "counted-app")
	dev, err := goamqp.Dial(honoCtx(t), "amqp://"+n.AMQPAddr().String(), &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both counted", func() bool { return gauge("amqp-app") == "1" && gauge("amqp") == "1" })

	// Both are in the console's list of clients, and the operator may
	// close one.
	console := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		req.SetBasicAuth("admin", "console-pw")
		req.Header.Set("X-CSRF-Token", "basic")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, list := console("GET", "/console/api/clients")
	if code != 200 || !strings.Contains(list, `"client_id":"counted-app"`) || !strings.Contains(list, `"protocol":"amqp-app"`) || !strings.Contains(list, `"protocol":"amqp"`) {
		t.Fatalf("console clients: %d %s", code, list)
	}
	if code, body := console("POST", "/console/api/clients/DEFAULT_TENANT/counted-app/kick"); code != http.StatusNoContent {
		t.Fatalf("kick: %d %s", code, body)
	}
	select {
	case <-app.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the kicked application is still connected")
	}
	dev.Close()
	waitFor(t, "both gone", func() bool { return gauge("amqp-app") == "0" && gauge("amqp") == "0" })
}
