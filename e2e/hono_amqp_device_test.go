package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/registry"
)

// TestHonoAMQPDevice drives Hono's AMQP device adapter with go-amqp as
// the device: telemetry and events on the anonymous relay with Hono's
// outcomes, and a command received on the command link and answered.
func TestHonoAMQPDevice(t *testing.T) {
	n := startFerry(t, func(c *config.Config) { c.Auth = true; c.AdminPassword = "admin-pw" })
	ctx := honoCtx(t)
	provision(t, n, "acme", "dev-a", "a1", "pw-a", true)
	provision(t, n, "globex", "dev-g", "g1", "pw-g", true)
	app := dialApp(t, n, goamqp.SASLTypePlain("admin", "admin-pw"))
	tele := receiver(t, app, "telemetry/acme", "", 10)
	events := receiver(t, app, "event/acme", "", 10)

	devConn := func(user, pw string) *goamqp.Session {
		c, err := goamqp.Dial(ctx, "amqp://"+n.AMQPAddr().String(), &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain(user, pw)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := c.NewSession(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if c, err := goamqp.Dial(ctx, "amqp://"+n.AMQPAddr().String(), &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("a1@acme", "wrong")}); err == nil {
		c.Close()
		t.Fatal("a wrong password was accepted")
	}
	dev := devConn("a1@acme", "pw-a")
	snd, err := dev.NewSender(ctx, "", nil) // the anonymous relay: each message names its address
	if err != nil {
		t.Fatal(err)
	}
	msg := func(to, body string) *goamqp.Message {
		m := goamqp.NewMessage([]byte(body))
		m.Properties = &goamqp.MessageProperties{To: &to}
		return m
	}
	if err := outcome(ctx, snd, msg("telemetry", "21.5")); err != nil {
		t.Fatalf("unsettled telemetry: %v", err)
	}
	m := receiveAMQP(t, tele)
	if string(m.GetData()) != "21.5" || m.ApplicationProperties["device_id"] != "dev-a" || m.ApplicationProperties["orig_adapter"] != "hono-amqp" || m.ApplicationProperties["qos"] != int32(1) {
		t.Fatalf("telemetry %q %v", m.GetData(), m.ApplicationProperties)
	}
	if err := outcome(ctx, snd, msg("event", "door open")); err != nil {
		t.Fatalf("event: %v", err)
	}
	if m := receiveAMQP(t, events); string(m.GetData()) != "door open" {
		t.Fatalf("event %q", m.GetData())
	}
	// Client faults are rejected with a condition.
	for _, tc := range []struct{ name, to, body string }{
		{"unknown address", "nowhere", "x"},
		{"another tenant", "telemetry/globex/dev-g", "x"},
		{"too large", "telemetry", strings.Repeat("x", 3000)},
	} {
		if err := outcome(ctx, snd, msg(tc.to, tc.body)); !errors.Is(err, errRejected) {
			t.Errorf("%s: %v, want rejected", tc.name, err)
		}
	}
	// Nobody receives globex's telemetry: released (the device may retry).
	gsnd, err := devConn("g1@globex", "pw-g").NewSender(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := outcome(ctx, gsnd, msg("telemetry", "x")); !errors.Is(err, errReleased) {
		t.Fatalf("telemetry without a consumer: %v, want released", err)
	}

	// Commands: the device receives on command and answers on reply-to.
	// The device is ready (ttd -1) once it granted credit, not at attach.
	cmds, err := dev.NewReceiver(ctx, "command", &goamqp.ReceiverOptions{Credit: -1}) // manual credit
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	m, err = events.Receive(sctx, nil)
	cancel()
	if err == nil {
		t.Fatalf("a notification before the device granted credit: %v", m.ApplicationProperties)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("events: %v", err)
	}
	if err := cmds.IssueCredit(10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the device's command subscription", func() bool {
		sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		m, err := events.Receive(sctx, nil)
		if err != nil {
			return false
		}
		_ = events.AcceptMessage(ctx, m)
		return m.ApplicationProperties["ttd"] == int32(-1)
	})
	responses := receiver(t, app, "command_response/acme/app-a", "", 10)
	csnd, err := app.NewSender(ctx, "command/acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := goamqp.NewMessage([]byte("80"))
	cmd.Properties = &goamqp.MessageProperties{To: ptr("command/acme/dev-a"), Subject: ptr("setBrightness"),
		ReplyTo: ptr("command_response/acme/app-a"), CorrelationID: "c-amqp"}
	done := make(chan error, 1)
	go func() { done <- outcome(ctx, csnd, cmd) }()
	got, err := cmds.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Properties.Subject != "setBrightness" || got.Properties.ReplyTo == nil || string(got.GetData()) != "80" {
		t.Fatalf("command %+v %q", got.Properties, got.GetData())
	}
	if err := cmds.AcceptMessage(ctx, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("command outcome: %v", err)
	}
	resp := msg(*got.Properties.ReplyTo, "ok")
	resp.Properties.CorrelationID = got.Properties.CorrelationID
	resp.ApplicationProperties = map[string]any{"status": int32(200)}
	if err := outcome(ctx, snd, resp); err != nil {
		t.Fatalf("command response: %v", err)
	}
	r := receiveAMQP(t, responses)
	if string(r.GetData()) != "ok" || r.Properties.CorrelationID != "c-amqp" || r.ApplicationProperties["status"] != int32(200) {
		t.Fatalf("response %q %+v %v", r.GetData(), r.Properties, r.ApplicationProperties)
	}
}

// TestHonoAMQPDeviceTLS: over --amqps-addr a device logs in with its
// client certificate (SASL EXTERNAL, checked against its tenant's trusted
// CA) and sends telemetry; a certificate of another CA is refused.
func TestHonoAMQPDeviceTLS(t *testing.T) {
	pki, other := newTestPKI(t), newTestPKI(t)
	n := startFerry(t, func(c *config.Config) {
		c.Auth = true
		c.AdminPassword = "admin-pw"
		c.MQTT.TLS.CertFile, c.MQTT.TLS.KeyFile = pki.ServerCert, pki.ServerKey
		c.AMQP.TLSAddr = "127.0.0.1:0"
	})
	ctx := honoCtx(t)
	reg := n.Registry()
	if _, _, err := reg.CreateTenant(ctx, "acme", registry.Tenant{Enabled: true, TrustedCAs: []registry.TrustedCA{{Cert: readCert(t, pki.CA).Raw}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.CreateDevice(ctx, "acme", "dev-x509", registry.Device{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	subject := readCert(t, pki.ClientCert).Subject.String()
	if _, err := reg.SetCredentials(ctx, "acme", "dev-x509", []registry.Credential{{Type: registry.TypeX509, AuthID: subject, Enabled: true}}, ""); err != nil {
		t.Fatal(err)
	}
	app := dialApp(t, n, goamqp.SASLTypePlain("admin", "admin-pw"))
	tele := receiver(t, app, "telemetry/acme", "", 10)
	dial := func(p testPKI) (*goamqp.Conn, error) {
		cert, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(readCert(t, pki.CA))
		return goamqp.Dial(ctx, "amqps://"+n.AMQPSAddr().String(), &goamqp.ConnOptions{
			SASLType:  goamqp.SASLTypeExternal(""),
			TLSConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1"},
		})
	}
	c, err := dial(pki)
	if err != nil {
		t.Fatalf("EXTERNAL login: %v", err)
	}
	defer c.Close()
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := s.NewSender(ctx, "telemetry", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := outcome(ctx, snd, goamqp.NewMessage([]byte("x509"))); err != nil {
		t.Fatalf("telemetry on the link's target: %v", err)
	}
	if m := receiveAMQP(t, tele); m.ApplicationProperties["device_id"] != "dev-x509" {
		t.Fatalf("telemetry from %v", m.ApplicationProperties["device_id"])
	}
	if c, err := dial(other); err == nil {
		c.Close()
		t.Fatal("a certificate of an untrusted CA logged in")
	}
}
