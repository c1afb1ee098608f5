package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"os/exec"
	"regexp"
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

// TestHonoCoAPCommand: a device waits for a command with hono-ttd
// (libcoap's client), gets an application's request/response command in
// the response with the location to answer on, and its answer reaches
// the application with its status.
func TestHonoCoAPCommand(t *testing.T) {
	coap := requirePeer(t, "coap-client-openssl", "libcoap3-bin")
	n := startFerry(t, func(c *config.Config) { c.CoAP.Addr = "127.0.0.1:0" })
	ctx := honoCtx(t)
	base := "coap://" + n.CoAPAddr()
	app := dialApp(t, n, nil)
	tele := receiver(t, app, "telemetry/"+tenant, "", 10)
	responses := receiver(t, app, "command_response/"+tenant+"/app-c", "", 10)
	snd, err := app.NewSender(ctx, "command/"+tenant, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait := startProc(t, coap, "-m", "put", "-B", "20", "-v", "7", "-e", "waiting", base+"/t/"+tenant+"/dev-cc?hono-ttd=10")
	if m := receiveAMQP(t, tele); m.ApplicationProperties["ttd"] != int32(10) {
		t.Fatalf("the waiting request went downstream without its ttd: %v", m.ApplicationProperties)
	}
	cmd := goamqp.NewMessage([]byte("turn-on"))
	cmd.Properties = &goamqp.MessageProperties{To: ptr("command/" + tenant + "/dev-cc"), Subject: ptr("switch"),
		ReplyTo: ptr("command_response/" + tenant + "/app-c"), CorrelationID: "corr-coap", ContentType: ptr("text/plain")}
	if err := outcome(ctx, snd, cmd); err != nil {
		t.Fatalf("command: %v", err)
	}
	out := wait.wait(t)
	// libcoap prints the payload of the response after its PDU at
	// verbosity 7; the PDU shows the options.
	if !strings.Contains(out, "turn-on") || !strings.Contains(out, "Location-Query:hono-command=switch") ||
		!strings.Contains(out, "Content-Format:text/plain") {
		t.Fatalf("the waiting device got no command:\n%s", out)
	}
	loc := regexp.MustCompile(`Location-Path:([^,\] ]*)`).FindAllStringSubmatch(out, -1)
	var segs []string
	for _, m := range loc {
		segs = append(segs, m[1])
	}
	if len(segs) != 4 || segs[0] != "cr" || segs[1] != tenant || segs[2] != "dev-cc" {
		t.Fatalf("location-path %q:\n%s", segs, out)
	}
	at := base + "/" + strings.Join(segs, "/")
	put := func(args ...string) string {
		return strings.TrimSpace(run(t, coap, append([]string{"-m", "put", "-B", "10"}, args...)...))
	}
	for _, tc := range []struct{ name, uri, want string }{
		{"no hono-cmd-status", at, "4.00"},
		{"a malformed request id", base + "/cr/" + tenant + "/dev-cc/zz?hono-cmd-status=200", "4.00"},
	} {
		if out := put("-e", "x", tc.uri); !strings.HasPrefix(out, tc.want) {
			t.Errorf("%s: %q, want %s", tc.name, out, tc.want)
		}
	}
	if out := put("-t", "0", "-e", "switched", at+"?hono-cmd-status=200"); out != "" {
		t.Fatalf("command response: %q", out)
	}
	r := receiveAMQP(t, responses)
	if r.Properties.CorrelationID != "corr-coap" || r.ApplicationProperties["status"] != int32(200) || string(r.GetData()) != "switched" {
		t.Fatalf("response %+v %v %q", r.Properties, r.ApplicationProperties, r.GetData())
	}
	// An empty payload needs content-format or empty; with empty it is an
	// empty notification.
	if out := put(base + "/t/" + tenant + "/dev-cc"); !strings.HasPrefix(out, "4.00") {
		t.Errorf("an empty payload without content-format: %q, want 4.00", out)
	}
	if out := put("-e", "x", base+"/t/"+tenant+"/dev-cc?empty"); !strings.HasPrefix(out, "4.00") {
		t.Errorf("empty with a payload: %q, want 4.00", out)
	}
	if out := put(base + "/t/" + tenant + "/dev-cc?empty"); out != "" {
		t.Errorf("an empty notification: %q", out)
	}
	if m := receiveAMQP(t, tele); *m.Properties.ContentType != "application/vnd.eclipse-hono-empty-notification" {
		t.Errorf("empty notification downstream as %q", *m.Properties.ContentType)
	}
}

// TestHonoCoAPCertificate: over DTLS a device logs in with a client
// certificate issued by its tenant's trusted CA (ECDHE_ECDSA, the node's
// TLS certificate on the server side), waits for a command with
// hono-ttd and answers it on POST /cr/<req-id>; PSK logins work on the
// same listener, and a certificate of an untrusted CA is refused.
func TestHonoCoAPCertificate(t *testing.T) {
	coap := requirePeer(t, "coap-client-openssl", "libcoap3-bin")
	pki, other := newTestPKI(t), newTestPKI(t)
	n := startFerry(t, func(c *config.Config) {
		c.Auth = true
		c.AdminPassword = "admin-pw"
		c.CoAP.DTLSAddr = "127.0.0.1:0"
		c.MQTT.TLS = config.TLS{Addr: "127.0.0.1:0", CertFile: pki.ServerCert, KeyFile: pki.ServerKey}
	})
	ctx := honoCtx(t)
	reg := n.Registry()
	if _, _, err := reg.CreateTenant(ctx, "acme", registry.Tenant{Enabled: true, TrustedCAs: []registry.TrustedCA{{Cert: readCert(t, pki.CA).Raw}}}); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"dev-x509", "dev-psk"} {
		if _, _, err := reg.CreateDevice(ctx, "acme", dev, registry.Device{Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	subject := readCert(t, pki.ClientCert).Subject.String()
	if _, err := reg.SetCredentials(ctx, "acme", "dev-x509", []registry.Credential{{Type: registry.TypeX509, AuthID: subject, Enabled: true}}, ""); err != nil {
		t.Fatal(err)
	}
	creds, err := registry.ParseCredentials([]byte(`[{"type":"psk","auth-id":"p1","secrets":[{"key":"` + base64.StdEncoding.EncodeToString([]byte("s3cret-key")) + `"}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.SetCredentials(ctx, "acme", "dev-psk", creds, ""); err != nil {
		t.Fatal(err)
	}
	app := dialApp(t, n, goamqp.SASLTypePlain("admin", "admin-pw"))
	tele := receiver(t, app, "telemetry/acme", "", 10)
	responses := receiver(t, app, "command_response/acme/app-x", "", 10)
	snd, err := app.NewSender(ctx, "command/acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	base := "coaps://" + n.CoAPSAddr()
	cert := []string{"-c", pki.ClientCert, "-j", pki.ClientKey, "-C", pki.CA}

	var out string
	for attempt := 1; ; attempt++ {
		wait := startProc(t, coap, append(cert, "-m", "post", "-B", "20", "-v", "7", "-e", "by-cert", base+"/t?hono-ttd=10")...)
		if m := receiveAMQP(t, tele); string(m.GetData()) != "by-cert" || m.ApplicationProperties["device_id"] != "dev-x509" {
			t.Fatalf("telemetry %q %v", m.GetData(), m.ApplicationProperties)
		}
		cmd := goamqp.NewMessage([]byte("reboot-now"))
		cmd.Properties = &goamqp.MessageProperties{To: ptr("command/acme/dev-x509"), Subject: ptr("reboot"),
			ReplyTo: ptr("command_response/acme/app-x"), CorrelationID: "corr-x509"}
		err := outcome(ctx, snd, cmd)
		if errors.Is(err, errReleased) && attempt == 1 {
			// Seen under load with -race only: the DTLS session of the
			// waiting request ended before the command was written, and a
			// device then asks again. Once; a second release fails.
			t.Logf("command released on the first wait (device output %q); the device waits again", wait.wait(t))
			continue
		}
		if err != nil {
			t.Fatalf("command: %v", err)
		}
		out = wait.wait(t)
		break
	}
	loc := regexp.MustCompile(`Location-Path:cr, Location-Path:([^,\] ]+)`).FindStringSubmatch(out)
	if loc == nil || !strings.Contains(out, "reboot-now") || !strings.Contains(out, "hono-command=reboot") {
		t.Fatalf("the device got no command:\n%s", out)
	}
	res := strings.TrimSpace(run(t, coap, append(cert, "-m", "post", "-B", "10", "-e", "rebooting", base+"/cr/"+loc[1]+"?hono-cmd-status=202")...))
	if res != "" {
		t.Fatalf("command response over DTLS: %q", res)
	}
	if r := receiveAMQP(t, responses); r.Properties.CorrelationID != "corr-x509" || r.ApplicationProperties["status"] != int32(202) || string(r.GetData()) != "rebooting" {
		t.Fatalf("response %+v %v %q", r.Properties, r.ApplicationProperties, r.GetData())
	}

	// PSK on the same listener.
	if out := strings.TrimSpace(run(t, coap, "-m", "post", "-B", "10", "-u", "p1@acme", "-k", "s3cret-key", "-e", "by-psk", base+"/t")); out != "" {
		t.Fatalf("PSK login beside certificates: %q", out)
	}
	if m := receiveAMQP(t, tele); string(m.GetData()) != "by-psk" || m.ApplicationProperties["device_id"] != "dev-psk" {
		t.Fatalf("telemetry %q %v", m.GetData(), m.ApplicationProperties)
	}

	// A certificate of another CA: no session, nothing delivered.
	got, _ := exec.Command(coap, "-m", "post", "-B", "3", "-c", other.ClientCert, "-j", other.ClientKey, "-C", pki.CA,
		"-e", "untrusted", base+"/t").CombinedOutput()
	if out := string(got); !strings.Contains(out, "DTLS") && !strings.Contains(out, "cannot send") {
		t.Fatalf("an untrusted certificate: libcoap reports no failed handshake: %q", out)
	}
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if m, err := tele.Receive(sctx, nil); err == nil {
		t.Fatalf("telemetry with an untrusted certificate arrived: %q", m.GetData())
	}
}
