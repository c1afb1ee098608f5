package e2e

import (
	"context"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/registry"
)

// TestHonoCoAPAdapter drives Hono's CoAP adapter with libcoap's client:
// confirmable telemetry is at least once, non-confirmable at most once,
// events carry hono-ttl, and refusals have Hono's CoAP codes.
func TestHonoCoAPAdapter(t *testing.T) {
	coap := requirePeer(t, "coap-client-openssl", "libcoap3-bin")
	n := startFerry(t, func(c *config.Config) { c.CoAP.Addr = "127.0.0.1:0" })
	base := "coap://" + n.CoAPAddr()
	s := dialApp(t, n, nil)
	tele := receiver(t, s, "telemetry/"+tenant, "", 10)
	events := receiver(t, s, "event/"+tenant, "", 10)
	put := func(args ...string) string {
		return strings.TrimSpace(run(t, coap, append([]string{"-m", "put", "-B", "10"}, args...)...))
	}
	if out := put("-t", "50", "-e", `{"t":1}`, base+"/t/"+tenant+"/dev-c"); out != "" {
		t.Fatalf("confirmable telemetry: %q", out)
	}
	m := receiveAMQP(t, tele)
	if string(m.GetData()) != `{"t":1}` || *m.Properties.ContentType != "application/json" ||
		m.ApplicationProperties["orig_adapter"] != "hono-coap" || m.ApplicationProperties["qos"] != int32(1) || m.ApplicationProperties["device_id"] != "dev-c" {
		t.Fatalf("telemetry %q %+v %v", m.GetData(), m.Properties, m.ApplicationProperties)
	}
	put("-N", "-e", "non", base+"/telemetry/"+tenant+"/dev-c")
	if m := receiveAMQP(t, tele); string(m.GetData()) != "non" || m.ApplicationProperties["qos"] != int32(0) {
		t.Fatalf("non-confirmable telemetry %q %v", m.GetData(), m.ApplicationProperties)
	}
	if out := put("-e", "ev", base+"/e/"+tenant+"/dev-c?hono-ttl=30"); out != "" {
		t.Fatalf("event: %q", out)
	}
	if m := receiveAMQP(t, events); string(m.GetData()) != "ev" || m.Header == nil || !m.Header.Durable || m.Header.TTL.Seconds() != 30 {
		t.Fatalf("event %q %+v", m.GetData(), m.Header)
	}
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"too large", "4.13", []string{"-e", strings.Repeat("x", 3000), base + "/t/" + tenant + "/dev-c"}},
		{"no consumer", "5.03", []string{"-e", "x", base + "/t/nobody/dev-c"}},
		{"unknown resource", "4.04", []string{"-e", "x", base + "/x/y"}},
		{"bad response status", "4.00", []string{"-e", "x", base + "/cr/" + tenant + "/dev-c/0x?hono-cmd-status=abc"}},
	} {
		if out := put(tc.args...); !strings.HasPrefix(out, tc.want) {
			t.Errorf("%s: %q, want %s", tc.name, out, tc.want)
		}
	}
	out := strings.TrimSpace(run(t, coap, "-m", "post", "-B", "10", "-e", "x", base+"/t"))
	if !strings.HasPrefix(out, "4.01") {
		t.Errorf("POST /t without DTLS: %q, want 4.01", out)
	}
}

// TestHonoCoAPDTLS: over DTLS a device logs in with a pre-shared key
// (identity auth-id@tenant, its psk credential) and uses the
// authenticated form POST /t; a wrong key fails the handshake.
func TestHonoCoAPDTLS(t *testing.T) {
	coap := requirePeer(t, "coap-client-openssl", "libcoap3-bin")
	n := startFerry(t, func(c *config.Config) {
		c.Auth = true
		c.AdminPassword = "admin-pw"
		c.CoAP.DTLSAddr = "127.0.0.1:0"
	})
	ctx := honoCtx(t)
	reg := n.Registry()
	if _, _, err := reg.CreateTenant(ctx, "acme", registry.Tenant{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.CreateDevice(ctx, "acme", "dev-psk", registry.Device{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	creds, err := registry.ParseCredentials([]byte(`[{"type":"psk","auth-id":"p1","secrets":[{"key":"` + base64.StdEncoding.EncodeToString([]byte("s3cret-key")) + `"}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.SetCredentials(ctx, "acme", "dev-psk", creds, ""); err != nil {
		t.Fatal(err)
	}
	s := dialApp(t, n, goamqp.SASLTypePlain("admin", "admin-pw"))
	tele := receiver(t, s, "telemetry/acme", "", 10)
	base := "coaps://" + n.CoAPSAddr()
	out := strings.TrimSpace(run(t, coap, "-m", "post", "-B", "10", "-u", "p1@acme", "-k", "s3cret-key", "-e", "over-dtls", base+"/t"))
	if out != "" {
		t.Fatalf("POST /t over DTLS: %q", out)
	}
	if m := receiveAMQP(t, tele); string(m.GetData()) != "over-dtls" || m.ApplicationProperties["device_id"] != "dev-psk" {
		t.Fatalf("telemetry %q %v", m.GetData(), m.ApplicationProperties)
	}
	// A wrong key: no session, nothing delivered.
	cmd := exec.Command(coap, "-m", "post", "-B", "3", "-u", "p1@acme", "-k", "wrong", "-e", "bad", base+"/t")
	got, _ := cmd.CombinedOutput()
	// libcoap prints nothing for a 2.04 and exits 0 either way: its
	// complaint about the failed handshake is what says the key was
	// refused.
	if out := string(got); !strings.Contains(out, "DTLS") && !strings.Contains(out, "cannot send") {
		t.Fatalf("a wrong key: libcoap reports no failed handshake: %q", out)
	}
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if m, err := tele.Receive(sctx, nil); err == nil {
		t.Fatalf("telemetry with a wrong key arrived: %q", m.GetData())
	}
}
