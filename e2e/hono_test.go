package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/node"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// These tests run Ferry as a Hono deployment: devices are mosquitto and
// paho clients on Hono's MQTT topics, applications go-amqp clients on
// Hono's northbound addresses.

const tenant = config.DefaultTenant

func honoCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dialApp connects an application to the northbound listener.
func dialApp(t *testing.T, n *node.Node, sasl goamqp.SASLType) *goamqp.Session {
	t.Helper()
	if sasl == nil {
		sasl = goamqp.SASLTypeAnonymous()
	}
	opts := &goamqp.ConnOptions{SASLType: sasl}
	c, err := goamqp.Dial(honoCtx(t), "amqp://"+n.AppAddr().String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := c.NewSession(honoCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func receiver(t *testing.T, s *goamqp.Session, addr, group string, credit int32) *goamqp.Receiver {
	t.Helper()
	opts := &goamqp.ReceiverOptions{Credit: credit}
	if group != "" {
		opts.Properties = map[string]any{"subscription-name": group}
	}
	r, err := s.NewReceiver(honoCtx(t), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func receiveAMQP(t *testing.T, r *goamqp.Receiver) *goamqp.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := r.Receive(ctx, nil)
	if err != nil {
		t.Fatalf("receive on %s: %v", r.Address(), err)
	}
	if err := r.AcceptMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestHonoTelemetry: telemetry and events of an unauthenticated device
// reach the application with Hono's properties; every group gets every
// message and members of one group share them.
func TestHonoTelemetry(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t)
	host, port := hostPort(n)
	s := dialApp(t, n, nil)
	tele := receiver(t, s, "telemetry/"+tenant, "", 10)
	ev := receiver(t, s, "event/"+tenant, "", 10)
	evB := receiver(t, s, "event/"+tenant, "b", 10)

	run(t, pub, "-h", host, "-p", port, "-q", "1", "-t", "telemetry/"+tenant+"/dev-1", "-m", `{"temp":5}`)
	m := receiveAMQP(t, tele)
	if got := string(m.GetData()); got != `{"temp":5}` {
		t.Fatalf("payload %q", got)
	}
	want := map[string]any{"device_id": "dev-1", "orig_adapter": "hono-mqtt", "orig_address": "telemetry/" + tenant + "/dev-1", "qos": int32(1)}
	for k, v := range want {
		if m.ApplicationProperties[k] != v {
			t.Errorf("application property %s = %v (%T), want %v", k, m.ApplicationProperties[k], m.ApplicationProperties[k], v)
		}
	}
	if m.Properties == nil || m.Properties.ContentType == nil || *m.Properties.ContentType != "application/octet-stream" || m.Properties.CreationTime == nil {
		t.Errorf("properties %+v: want content-type application/octet-stream and a creation-time", m.Properties)
	}

	run(t, pub, "-h", host, "-p", port, "-q", "1", "-t", "e/"+tenant+"/dev-1/?content-type=text%2Fplain", "-m", "ev-1")
	for _, r := range []*goamqp.Receiver{ev, evB} {
		m := receiveAMQP(t, r)
		if string(m.GetData()) != "ev-1" || *m.Properties.ContentType != "text/plain" || m.Header == nil || !m.Header.Durable {
			t.Errorf("%s: event %q, properties %+v, header %+v", r.Address(), m.GetData(), m.Properties, m.Header)
		}
	}

	// Two members of group "b" share its events.
	evB2 := receiver(t, s, "event/"+tenant, "b", 10)
	for i := range 4 {
		run(t, pub, "-h", host, "-p", port, "-q", "1", "-t", "event/"+tenant+"/dev-2", "-m", fmt.Sprint(i))
	}
	for range 4 {
		receiveAMQP(t, ev)
	}
	got := 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for got < 4 {
		select {
		case <-ctx.Done():
			t.Fatalf("group b got %d of 4 events", got)
		default:
		}
		for _, r := range []*goamqp.Receiver{evB, evB2} {
			short, c := context.WithTimeout(ctx, 100*time.Millisecond)
			m, err := r.Receive(short, nil)
			c()
			if err == nil {
				_ = r.AcceptMessage(ctx, m)
				got++
			}
		}
	}
}

// TestHonoRefusals: unknown addresses, wrong tenants, QoS rules and a
// missing consumer get Hono's answers.
func TestHonoRefusals(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	hash, err := bcrypt.GenerateFromPassword([]byte("secret-a"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	n := startFerry(t, func(c *config.Config) {
		c.Applications = []config.Application{{Name: "app-a", PasswordHash: string(hash), Tenants: []string{"A"}}}
	})
	host, port := hostPort(n)
	s := dialApp(t, n, goamqp.SASLTypePlain("app-a", "secret-a"))
	_, err = s.NewReceiver(honoCtx(t), "telemetry/B", nil)
	var le *goamqp.Error
	if !errors.As(err, &le) || le.Condition != goamqp.ErrCondUnauthorizedAccess {
		t.Fatalf("telemetry/B for an application of tenant A: %v, want a detach with amqp:unauthorized-access", err)
	}
	_, err = s.NewReceiver(honoCtx(t), "command_response/A", nil)
	if !errors.As(err, &le) || le.Condition != goamqp.ErrCondNotFound {
		t.Fatalf("an unknown address: %v, want a detach with amqp:not-found", err)
	}
	// The session survived both refusals.
	if _, err := s.NewReceiver(honoCtx(t), "telemetry/A", nil); err != nil {
		t.Fatalf("after refusals: %v", err)
	}
	if _, err := goamqp.Dial(honoCtx(t), "amqp://"+n.AppAddr().String(), &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("app-a", "wrong")}); err == nil {
		t.Fatal("a wrong password was accepted")
	}

	// QoS 1 telemetry without a consumer is refused (MQTT 5: a PUBACK
	// error; mosquitto_pub reports it and fails).
	out, err := exec.Command(pub, "-h", host, "-p", port, "-V", "mqttv5", "-q", "1", "-t", "telemetry/nobody/dev-1", "-m", "x").CombinedOutput()
	if err == nil && !strings.Contains(string(out), "rror") {
		t.Fatalf("QoS 1 telemetry without a consumer was acknowledged: %s", out)
	}
	// Plain MQTT clients cannot reach Ferry's internal Hono topics.
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	out, _ = exec.Command(sub, "-h", host, "-p", port, "-V", "mqttv5", "-t", "$hono/telemetry/#", "-C", "1", "-W", "2", "-d").CombinedOutput()
	if !strings.Contains(string(out), "135") {
		t.Errorf("subscribe to $hono/telemetry/#: want SUBACK 135 (not authorized):\n%s", out)
	}
}

// TestHonoCommands: an application sends request/response and one-way
// commands to a paho device (MQTT 3.1.1, Hono topics) and to a plain MQTT
// 5 client (Response Topic and Correlation Data); outcomes follow Hono.
func TestHonoCommands(t *testing.T) {
	py := requirePython(t, "paho.mqtt.client", "python3-paho-mqtt")
	n := startFerry(t)
	host, port := hostPort(n)
	dev := startProc(t, py, "testdata/hono_device.py", host, port, tenant, "dev-1")
	waitFor(t, "the device's command subscription", func() bool { return strings.Contains(dev.out.String(), "ready 1") })

	s := dialApp(t, n, nil)
	ctx := honoCtx(t)
	responses := receiver(t, s, "command_response/"+tenant+"/app-1", "", 10)
	snd, err := s.NewSender(ctx, "command/"+tenant, nil)
	if err != nil {
		t.Fatal(err)
	}
	// command sends a command and returns nil when it was accepted.
	command := func(device, name, replyTo string, corr any, body string) error {
		m := goamqp.NewMessage([]byte(body))
		m.Properties = &goamqp.MessageProperties{To: ptr("command/" + tenant + "/" + device), Subject: &name}
		if replyTo != "" {
			m.Properties.ReplyTo = &replyTo
			m.Properties.CorrelationID = corr
		}
		return outcome(ctx, snd, m)
	}
	reply := "command_response/" + tenant + "/app-1"
	if err := command("dev-1", "setBrightness", reply, "corr-1", "80"); err != nil {
		t.Fatalf("request/response command: %v (want accepted)", err)
	}
	m := receiveAMQP(t, responses)
	if string(m.GetData()) != "done:setBrightness:80" || m.Properties.CorrelationID != "corr-1" ||
		m.ApplicationProperties["status"] != int32(200) || m.ApplicationProperties["device_id"] != "dev-1" {
		t.Fatalf("response %q, properties %+v, application properties %v", m.GetData(), m.Properties, m.ApplicationProperties)
	}
	if err := command("dev-1", "reboot", "", nil, "now"); err != nil {
		t.Fatalf("one-way command: %v", err)
	}
	waitFor(t, "the one-way command", func() bool { return strings.Contains(dev.out.String(), "one-way reboot now") })

	// Malformed: no subject. Rejected.
	bad := goamqp.NewMessage([]byte("x"))
	bad.Properties = &goamqp.MessageProperties{To: ptr("command/" + tenant + "/dev-1")}
	if err := outcome(ctx, snd, bad); !errors.Is(err, errRejected) {
		t.Fatalf("a command without subject: %v, want rejected", err)
	}
	// Nobody subscribed for dev-2: released.
	if err := command("dev-2", "setBrightness", reply, "corr-2", "1"); !errors.Is(err, errReleased) {
		t.Fatalf("a command for a device without subscription: %v, want released", err)
	}

	// A plain MQTT 5 client answers on the Response Topic.
	cl, _, _, received := pahoConnect(t, n.MQTTAddr().String(), &paho.Connect{ClientID: "mqtt5-dev", CleanStart: true, KeepAlive: 30})
	t.Cleanup(func() { cl.Disconnect(&paho.Disconnect{}) })
	subscribe(t, cl, 0, paho.SubscribeOptions{Topic: "command/" + tenant + "/dev-5/req/#", QoS: 1})
	done := make(chan error, 1)
	go func() { done <- command("dev-5", "ping", reply, "corr-5", "p") }()
	var p *paho.Publish
	select {
	case p = <-received:
	case <-time.After(10 * time.Second):
		t.Fatal("the MQTT 5 device got no command")
	}
	if p.Properties == nil || p.Properties.ResponseTopic == "" || string(p.Properties.CorrelationData) != "corr-5" {
		t.Fatalf("command %s without Response Topic / Correlation Data: %+v", p.Topic, p.Properties)
	}
	publish(t, cl, &paho.Publish{Topic: p.Properties.ResponseTopic, QoS: 1, Payload: []byte("pong"),
		Properties: &paho.PublishProperties{CorrelationData: p.Properties.CorrelationData}})
	if err := <-done; err != nil {
		t.Fatalf("command to the MQTT 5 device: %v", err)
	}
	m = receiveAMQP(t, responses)
	if string(m.GetData()) != "pong" || m.Properties.CorrelationID != "corr-5" || m.ApplicationProperties["status"] != int32(200) {
		t.Fatalf("MQTT 5 response %q %+v %v", m.GetData(), m.Properties, m.ApplicationProperties)
	}

	// The device goes away: its commands are released, and the
	// application saw the device's notifications (ttd -1, then 0).
	events := receiver(t, s, "event/"+tenant, "", 10)
	dev.cmd.Process.Kill()
	waitFor(t, "the device's subscription to end", func() bool {
		return command("dev-1", "setBrightness", reply, "corr-3", "1") != nil
	})
	var ttds []any
	for len(ttds) < 2 {
		m := receiveAMQP(t, events)
		if m.ApplicationProperties["device_id"] == "dev-1" && *m.Properties.ContentType == "application/vnd.eclipse-hono-empty-notification" {
			ttds = append(ttds, m.ApplicationProperties["ttd"])
		}
	}
	if ttds[0] != int32(-1) || ttds[1] != int32(0) {
		t.Fatalf("notifications of dev-1: ttd %v, want -1 then 0", ttds)
	}
}

func ptr[T any](v T) *T { return &v }

var (
	errRejected = errors.New("rejected")
	errReleased = errors.New("released")
)

// outcome sends m and returns nil when accepted, errRejected or
// errReleased for those outcomes (go-amqp's Send takes released for
// success).
func outcome(ctx context.Context, snd *goamqp.Sender, m *goamqp.Message) error {
	r, err := snd.SendWithReceipt(ctx, m, nil)
	if err != nil {
		return err
	}
	st, err := r.Wait(ctx)
	if err != nil {
		return err
	}
	switch st := st.(type) {
	case *goamqp.StateAccepted:
		return nil
	case *goamqp.StateRejected:
		return fmt.Errorf("%w: %v", errRejected, st.Error)
	case *goamqp.StateReleased:
		return errReleased
	}
	return fmt.Errorf("outcome %T", st)
}

// TestHonoCreditFlowControl: an application that grants no credit slows
// a QoS 1 device (its PUBACKs wait once the group's queue is full) without
// the router blocking or growing; credit lets everything through, in
// order.
func TestHonoCreditFlowControl(t *testing.T) {
	n := startFerry(t, func(c *config.Config) { c.MQTT.MaxQueuedOffline = 20 })
	s := dialApp(t, n, nil)
	rcv := receiver(t, s, "telemetry/"+tenant, "", -1) // no credit until IssueCredit
	dev, _, err := dialRaw(n.MQTTAddr().String(), "dev-slow", true)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.conn.Close()
	const total = 60
	for i := 1; i <= total; i++ {
		if err := dev.queue(&packet.Publish{Topic: "telemetry/" + tenant + "/dev-slow", QoS: 1, PacketID: uint16(i), Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := dev.flush(); err != nil {
		t.Fatal(err)
	}
	acks := 0
	// readAcks reads PUBACKs until want arrived or the time is up.
	readAcks := func(want int, until time.Duration) {
		dev.conn.SetReadDeadline(time.Now().Add(until))
		for acks < want {
			p, err := dev.read()
			if err != nil {
				return
			}
			if pa, ok := p.(*packet.Puback); ok {
				if pa.ReasonCode != 0 {
					t.Fatalf("PUBACK %d: reason %#x", pa.PacketID, pa.ReasonCode)
				}
				acks++
			}
		}
	}
	readAcks(20, 10*time.Second)
	readAcks(total, 300*time.Millisecond) // and no more: checking an absence
	if acks != 20 {
		t.Fatalf("%d PUBACKs without credit, want 20 (the group's queue)", acks)
	}
	if st := n.Hub().Stats(); st.Blocked == 0 {
		t.Errorf("hub stats %+v: no blocked deliveries counted", st)
	}
	if err := rcv.IssueCredit(total); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= total; i++ {
		m := receiveAMQP(t, rcv)
		if got := string(m.GetData()); got != fmt.Sprint(i) {
			t.Fatalf("message %d: got %s", i, got)
		}
	}
	readAcks(total, 10*time.Second)
	if acks != total {
		t.Fatalf("%d PUBACKs after credit, want %d", acks, total)
	}
}

// TestHonoGatewaysAndStatus: with authentication on, a gateway publishes
// for a device that lists it in via and receives its commands; a device's
// connection events and its will (on a Hono event topic) reach the
// application.
func TestHonoGatewaysAndStatus(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t, func(c *config.Config) {
		c.Auth = true
		c.AdminPassword = "admin-pw"
		c.Hono.ConnectionEvents = "events"
	})
	host, port := hostPort(n)
	provision(t, n, "acme", "gw-1", "gw-auth", "gw-pw", true)
	provision(t, n, "acme", "dev-w", "dev-w-auth", "dev-w-pw", true)
	ctx := honoCtx(t)
	if _, _, err := n.Registry().CreateDevice(ctx, "acme", "dev-9", registry.Device{Enabled: true, Via: []string{"gw-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Registry().CreateDevice(ctx, "acme", "dev-10", registry.Device{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := goamqp.Dial(ctx, "amqp://"+n.AppAddr().String(), &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()}); err == nil {
		t.Fatal("ANONYMOUS accepted with authentication on")
	}
	s := dialApp(t, n, goamqp.SASLTypePlain("admin", "admin-pw"))
	tele := receiver(t, s, "telemetry/acme", "", 10)
	events := receiver(t, s, "event/acme", "", 20)

	run(t, pub, "-h", host, "-p", port, "-u", "gw-auth@acme", "-P", "gw-pw", "-q", "1", "-t", "t//dev-9", "-m", "via-gw")
	m := receiveAMQP(t, tele)
	if m.ApplicationProperties["device_id"] != "dev-9" || string(m.GetData()) != "via-gw" {
		t.Fatalf("gateway telemetry: %q %v", m.GetData(), m.ApplicationProperties)
	}
	// dev-10 does not list gw-1: refused (3.1.1: the gateway is disconnected).
	if out, err := exec.Command(pub, "-h", host, "-p", port, "-u", "gw-auth@acme", "-P", "gw-pw", "-q", "1", "-t", "t//dev-10", "-m", "x").CombinedOutput(); err == nil {
		t.Fatalf("a gateway published for a device that does not list it: %s", out)
	}

	// The gateway takes the commands of all its devices.
	cl, _, _, received := pahoConnect(t, n.MQTTAddr().String(), &paho.Connect{ClientID: "gw-1-conn", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "gw-auth@acme", PasswordFlag: true, Password: []byte("gw-pw")})
	t.Cleanup(func() { cl.Disconnect(&paho.Disconnect{}) })
	subscribe(t, cl, 0, paho.SubscribeOptions{Topic: "command//+/req/#", QoS: 1})
	snd, err := s.NewSender(ctx, "command/acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := goamqp.NewMessage([]byte("on"))
	cmd.Properties = &goamqp.MessageProperties{To: ptr("command/acme/dev-9"), Subject: ptr("switch")}
	done := make(chan error, 1)
	go func() { done <- outcome(ctx, snd, cmd) }()
	select {
	case p := <-received:
		if p.Topic != "command//dev-9/req//switch" || string(p.Payload) != "on" {
			t.Fatalf("gateway got %s %q, want command//dev-9/req//switch", p.Topic, p.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway got no command")
	}
	if err := <-done; err != nil {
		t.Fatalf("command through the gateway: %v", err)
	}
	// "+" covers the gateway's own commands, with an empty device segment.
	own := goamqp.NewMessage([]byte("x"))
	own.Properties = &goamqp.MessageProperties{To: ptr("command/acme/gw-1"), Subject: ptr("reboot")}
	go func() { done <- outcome(ctx, snd, own) }()
	select {
	case p := <-received:
		if p.Topic != "command///req//reboot" {
			t.Fatalf("gateway's own command on %s, want command///req//reboot", p.Topic)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway got no command of its own")
	}
	if err := <-done; err != nil {
		t.Fatalf("the gateway's own command: %v", err)
	}

	// A device with a will on its event topic dies: connected event,
	// then the will as an event, then the disconnected event.
	_, _, nc, _ := pahoConnect(t, n.MQTTAddr().String(), &paho.Connect{ClientID: "dev-w-conn", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "dev-w-auth@acme", PasswordFlag: true, Password: []byte("dev-w-pw"),
		WillMessage: &paho.WillMessage{Topic: "event", QoS: 1, Payload: []byte("dev-w died")}})
	nc.Close()
	var causes []string
	gotWill := false
	for len(causes) < 2 || !gotWill {
		m := receiveAMQP(t, events)
		if m.ApplicationProperties["device_id"] != "dev-w" {
			continue
		}
		switch *m.Properties.ContentType {
		case "application/vnd.eclipse-hono-dc-notification+json":
			var body struct{ Cause string }
			if err := json.Unmarshal(m.GetData(), &body); err != nil {
				t.Fatal(err)
			}
			causes = append(causes, body.Cause)
		default:
			if string(m.GetData()) != "dev-w died" {
				t.Fatalf("event %q", m.GetData())
			}
			gotWill = true
		}
	}
	if causes[0] != "connected" || causes[1] != "disconnected" {
		t.Fatalf("connection events %v", causes)
	}
}

// TestHonoErrorTopic: a 3.1.1 device subscribed to Hono's error topic
// reads why its publish was refused there and stays connected; without
// the subscription it is disconnected.
func TestHonoErrorTopic(t *testing.T) {
	n := startFerry(t)
	dev, _, err := dialRaw(n.MQTTAddr().String(), "dev-e", true)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.conn.Close()
	if err := dev.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "error/" + tenant + "/dev-e/#"}}}); err != nil {
		t.Fatal(err)
	}
	// No application receives telemetry: QoS 1 is refused with 503.
	if err := dev.send(&packet.Publish{Topic: "telemetry/" + tenant + "/dev-e/?correlation-id=c-7", QoS: 1, PacketID: 2, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	var errPub *packet.Publish
	var acked bool
	dev.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for errPub == nil || !acked {
		p, err := dev.read()
		if err != nil {
			t.Fatalf("reading (error publish %v, PUBACK %v): %v", errPub != nil, acked, err)
		}
		switch p := p.(type) {
		case *packet.Publish:
			errPub = p
		case *packet.Puback:
			acked = true
		}
	}
	if errPub.Topic != "error/"+tenant+"/dev-e/telemetry/c-7/503" {
		t.Fatalf("error topic %s", errPub.Topic)
	}
	var body struct {
		Code          int    `json:"code"`
		Message       string `json:"message"`
		CorrelationID string `json:"correlation-id"`
	}
	if err := json.Unmarshal(errPub.Payload, &body); err != nil || body.Code != 503 || body.CorrelationID != "c-7" || body.Message == "" {
		t.Fatalf("error payload %s (%v)", errPub.Payload, err)
	}
	// Still connected.
	if err := dev.send(&packet.Pingreq{}); err != nil {
		t.Fatal(err)
	}
	if p, err := dev.read(); err != nil {
		t.Fatalf("after the error: %v", err)
	} else if _, ok := p.(*packet.Pingresp); !ok {
		t.Fatalf("after the error: %T", p)
	}

	// Without an error subscription, a 3.1.1 device is disconnected.
	dev2, _, err := dialRaw(n.MQTTAddr().String(), "dev-f", true)
	if err != nil {
		t.Fatal(err)
	}
	defer dev2.conn.Close()
	if err := dev2.send(&packet.Publish{Topic: "event/" + tenant + "/dev-f", QoS: 2, PacketID: 1, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	dev2.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, err := dev2.read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("a QoS 2 event without error subscription left the 3.1.1 connection open")
		}
		if err != nil {
			break // the connection ended, as Hono ends it
		}
	}
}

// TestHonoEventLogFull: once the event log holds what its bounds allow,
// new events are refused (MQTT 5: PUBACK 0x97), never dropped silently,
// and what was acknowledged is delivered.
func TestHonoEventLogFull(t *testing.T) {
	n := startFerry(t, func(c *config.Config) {
		c.MQTT.MaxStoredMessages = 5
		c.MQTT.MaxQueuedOffline = 5
	})
	cl, _, _, _ := pahoConnect(t, n.MQTTAddr().String(), &paho.Connect{ClientID: "dev-full", CleanStart: true, KeepAlive: 30})
	t.Cleanup(func() { cl.Disconnect(&paho.Disconnect{}) })
	accepted := 0
	refused := 0
	for i := range 12 {
		r, _ := cl.Publish(ctx5(t), &paho.Publish{Topic: "event/" + tenant + "/dev-full", QoS: 1, Payload: []byte(fmt.Sprint(i))})
		switch {
		case r != nil && r.ReasonCode == 0:
			if refused > 0 {
				t.Fatalf("event %d accepted after a refusal: the log has no room", i)
			}
			accepted++
		case r != nil && r.ReasonCode == 0x97:
			refused++
		default:
			t.Fatalf("event %d: %+v, want PUBACK 0 or 0x97", i, r)
		}
	}
	if accepted == 0 || refused == 0 || accepted+refused != 12 {
		t.Fatalf("%d events accepted, %d refused: want both, 12 in all", accepted, refused)
	}
	s := dialApp(t, n, nil)
	events := receiver(t, s, "event/"+tenant, "", 20)
	for i := range accepted {
		if m := receiveAMQP(t, events); string(m.GetData()) != fmt.Sprint(i) {
			t.Fatalf("event %d: got %s", i, m.GetData())
		}
	}
}

// TestHonoCommandTimeoutAndLastGateway: a command whose ttl passes without
// a response gets a 408 response; of two gateways subscribed for all
// their devices, the one the device last sent through gets its command.
func TestHonoCommandTimeoutAndLastGateway(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t, func(c *config.Config) { c.Auth = true; c.AdminPassword = "admin-pw" })
	host, port := hostPort(n)
	ctx := honoCtx(t)
	provision(t, n, "acme", "gw-a", "gw-a", "pw-a", true)
	provision(t, n, "acme", "gw-b", "gw-b", "pw-b", true)
	if _, _, err := n.Registry().CreateDevice(ctx, "acme", "dev-x", registry.Device{Enabled: true, Via: []string{"gw-a", "gw-b"}}); err != nil {
		t.Fatal(err)
	}
	gw := func(id, pw string) chan *paho.Publish {
		cl, _, _, received := pahoConnect(t, n.MQTTAddr().String(), &paho.Connect{ClientID: id + "-conn", CleanStart: true, KeepAlive: 30,
			UsernameFlag: true, Username: id + "@acme", PasswordFlag: true, Password: []byte(pw)})
		t.Cleanup(func() { cl.Disconnect(&paho.Disconnect{}) })
		subscribe(t, cl, 0, paho.SubscribeOptions{Topic: "c//+/q/#", QoS: 1})
		return received
	}
	recvA, recvB := gw("gw-a", "pw-a"), gw("gw-b", "pw-b")
	s := dialApp(t, n, goamqp.SASLTypePlain("admin", "admin-pw"))
	responses := receiver(t, s, "command_response/acme/app-t", "", 10)
	tele := receiver(t, s, "telemetry/acme", "", 10)
	snd, err := s.NewSender(ctx, "command/acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, via := range []struct {
		user, pw string
		want     chan *paho.Publish
	}{{"gw-b", "pw-b", recvB}, {"gw-a", "pw-a", recvA}, {"gw-b", "pw-b", recvB}} {
		run(t, pub, "-h", host, "-p", port, "-u", via.user+"@acme", "-P", via.pw, "-q", "0", "-t", "t//dev-x", "-m", "hello")
		receiveAMQP(t, tele) // the gateway's message went through: it is the last one
		m := goamqp.NewMessage([]byte("x"))
		m.Properties = &goamqp.MessageProperties{To: ptr("command/acme/dev-x"), Subject: ptr("ping"),
			ReplyTo: ptr("command_response/acme/app-t"), CorrelationID: "t-" + via.user}
		m.Header = &goamqp.MessageHeader{TTL: 300 * time.Millisecond}
		if err := outcome(ctx, snd, m); err != nil {
			t.Fatalf("command via %s: %v", via.user, err)
		}
		select {
		case p := <-via.want:
			if !strings.HasPrefix(p.Topic, "c//dev-x/q/") {
				t.Fatalf("%s got %s", via.user, p.Topic)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s, the device's last gateway, got no command", via.user)
		}
		// Nobody answers: after the ttl the application gets 408.
		r := receiveAMQP(t, responses)
		if r.ApplicationProperties["status"] != int32(408) || r.Properties.CorrelationID != "t-"+via.user {
			t.Fatalf("timeout response %+v %v", r.Properties, r.ApplicationProperties)
		}
	}
}

// TestHonoTenantSettings: a tenant's registry record sets its payload
// limits per adapter (adapters[].ext max-payload-size), which adapters its
// devices may use, and its default content type; a change of the record
// applies to the next message.
func TestHonoTenantSettings(t *testing.T) {
	n := startFerry(t)
	ctx := honoCtx(t)
	tn := registry.Tenant{Enabled: true, Defaults: map[string]any{"content-type": "application/json"},
		Adapters: []registry.Adapter{{Type: "hono-mqtt", Enabled: true, Ext: map[string]any{"max-payload-size": 10}},
			{Type: "hono-http", Enabled: true, Ext: map[string]any{"max-payload-size": 20}}}}
	if _, _, err := n.Registry().CreateTenant(ctx, "acme", tn); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Registry().CreateDevice(ctx, "acme", "dev-ts", registry.Device{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	s := dialApp(t, n, nil)
	tele := receiver(t, s, "telemetry/acme", "", 10)
	cl, _, _, _ := pahoConnect(t, n.MQTTAddr().String(), &paho.Connect{ClientID: "dev-ts", CleanStart: true, KeepAlive: 30})
	t.Cleanup(func() { cl.Disconnect(&paho.Disconnect{}) })
	pub := func(payload string) byte {
		r, _ := cl.Publish(ctx5(t), &paho.Publish{Topic: "telemetry/acme/dev-ts", QoS: 1, Payload: []byte(payload)})
		if r == nil {
			t.Fatalf("no PUBACK for %q", payload)
		}
		return r.ReasonCode
	}
	if rc := pub("0123456789x"); rc != 0x97 {
		t.Fatalf("11 bytes over the tenant's limit of 10: PUBACK %#x, want 0x97 (quota exceeded)", rc)
	}
	if rc := pub(`{"a":1}`); rc != 0 {
		t.Fatalf("7 bytes: PUBACK %#x", rc)
	}
	if m := receiveAMQP(t, tele); *m.Properties.ContentType != "application/json" {
		t.Fatalf("content type %s, want the tenant's default application/json", *m.Properties.ContentType)
	}
	putTo := func(device, payload string) int {
		req, _ := http.NewRequest(http.MethodPut, "http://"+n.HTTPAddr().String()+"/telemetry/acme/"+device, strings.NewReader(payload))
		req.Header.Set("Content-Type", "text/plain")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	put := func(payload string) int { return putTo("dev-ts", payload) }
	if code := put("012345678901234"); code != http.StatusAccepted {
		t.Fatalf("15 bytes on HTTP, whose limit is 20: %d", code)
	}
	if code := put("0123456789012345678901234"); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("25 bytes on HTTP: %d, want 413", code)
	}
	if code := putTo("nobody", "x"); code != http.StatusNotFound {
		t.Fatalf("an unregistered device on HTTP: %d, want 404", code)
	}
	tn.Adapters[0].Ext["max-payload-size"] = 100
	tn.Adapters[1].Enabled = false
	if _, err := n.Registry().UpdateTenant(ctx, "acme", tn, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the tenant's new limit", func() bool { return pub("0123456789x") == 0 })
	if code := put("x"); code != http.StatusForbidden {
		t.Fatalf("HTTP after the tenant disabled hono-http: %d, want 403", code)
	}

	// A registered tenant's unauthenticated devices must be registered
	// and enabled (Hono's 404), whatever the adapter.
	if rc := pubTo(t, cl, "telemetry/acme/nobody"); rc != 0x80 {
		t.Errorf("an unregistered device of a registered tenant: PUBACK %#x, want 0x80", rc)
	}
	if _, err := n.Registry().UpdateDevice(ctx, "acme", "dev-ts", registry.Device{Enabled: false}, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the disabled device refused", func() bool { return pub("x") == 0x80 })
}

// pubTo publishes at QoS 1 on topic and returns the PUBACK's reason code.
func pubTo(t *testing.T, cl *paho.Client, topic string) byte {
	t.Helper()
	r, _ := cl.Publish(ctx5(t), &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("x")})
	if r == nil {
		t.Fatalf("no PUBACK on %s", topic)
	}
	return r.ReasonCode
}
