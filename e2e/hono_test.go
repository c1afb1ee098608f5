package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/node"
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
	_, err = s.NewReceiver(honoCtx(t), "nowhere/A", nil)
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
