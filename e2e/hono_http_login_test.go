package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/registry"
)

// TestHonoHTTPLogins: curl as an HTTP device that logs in with a client
// certificate on --https-addr and with Authorization: Bearer <JWT> (tid and
// sub claims, the device's rpk credential), and the refusals: a
// certificate of an untrusted CA, an expired token, a token of another key,
// a token without tid.
func TestHonoHTTPLogins(t *testing.T) {
	curl := requirePeer(t, "curl", "curl")
	pki, other := newTestPKI(t), newTestPKI(t)
	n := startFerry(t, func(c *config.Config) {
		c.Auth = true
		c.AdminPassword = "admin-pw"
		c.MQTT.TLS.CertFile, c.MQTT.TLS.KeyFile = pki.ServerCert, pki.ServerKey
		c.HTTP.TLSAddr = "127.0.0.1:0"
	})
	ctx := honoCtx(t)
	reg := n.Registry()
	if _, _, err := reg.CreateTenant(ctx, "acme", registry.Tenant{Enabled: true, TrustedCAs: []registry.TrustedCA{{Cert: readCert(t, pki.CA).Raw}}}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"dev-x509", "dev-jwt"} {
		if _, _, err := reg.CreateDevice(ctx, "acme", d, registry.Device{Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	subject := readCert(t, pki.ClientCert).Subject.String()
	if _, err := reg.SetCredentials(ctx, "acme", "dev-x509", []registry.Credential{{Type: registry.TypeX509, AuthID: subject, Enabled: true}}, ""); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	creds, err := registry.ParseCredentials([]byte(`[{"type":"rpk","auth-id":"j1","secrets":[{"key":"` + base64.StdEncoding.EncodeToString(der) + `","algorithm":"EC"}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.SetCredentials(ctx, "acme", "dev-jwt", creds, ""); err != nil {
		t.Fatal(err)
	}
	s := dialApp(t, n, goamqp.SASLTypePlain("admin", "admin-pw"))
	tele := receiver(t, s, "telemetry/acme", "", 10)

	https := "https://" + n.HTTPSAddr().String() + "/telemetry"
	withCert := func(p testPKI) []string {
		return []string{"--cacert", pki.CA, "--cert", p.ClientCert, "--key", p.ClientKey, "-H", "qos-level: 1", "-d", "x509", https}
	}
	if code, out := curlStatus(t, curl, withCert(pki)...); code != 202 {
		t.Fatalf("telemetry with a client certificate: %d\n%s", code, out)
	}
	if m := receiveAMQP(t, tele); m.ApplicationProperties["device_id"] != "dev-x509" || string(m.GetData()) != "x509" {
		t.Fatalf("telemetry %q from %v", m.GetData(), m.ApplicationProperties["device_id"])
	}
	if code, out := curlStatus(t, curl, withCert(other)...); code != 401 || !strings.Contains(out, "client certificate") {
		t.Errorf("a certificate of an untrusted CA: %d, want 401\n%s", code, out)
	}

	now := time.Now().Unix()
	bearer := func(token string) (int, string) {
		return curlStatus(t, curl, "-H", "Authorization: Bearer "+token, "-H", "qos-level: 1", "-d", "jwt",
			"http://"+n.HTTPAddr().String()+"/telemetry")
	}
	if code, out := bearer(signES256(t, key, map[string]any{"tid": "acme", "sub": "j1", "iat": now, "exp": now + 600})); code != 202 {
		t.Fatalf("telemetry with a bearer JWT: %d\n%s", code, out)
	}
	if m := receiveAMQP(t, tele); m.ApplicationProperties["device_id"] != "dev-jwt" || string(m.GetData()) != "jwt" {
		t.Fatalf("telemetry %q from %v", m.GetData(), m.ApplicationProperties["device_id"])
	}
	for name, token := range map[string]string{
		"expired":   signES256(t, key, map[string]any{"tid": "acme", "sub": "j1", "iat": now - 7200, "exp": now - 3600}),
		"other key": signES256(t, otherKey, map[string]any{"tid": "acme", "sub": "j1", "iat": now, "exp": now + 600}),
		"no tid":    signES256(t, key, map[string]any{"sub": "j1", "iat": now, "exp": now + 600}),
	} {
		if code, out := bearer(token); code != 401 || !strings.Contains(out, "application/problem+json") {
			t.Errorf("%s token: %d, want 401 with a problem body\n%s", name, code, out)
		}
	}
}
