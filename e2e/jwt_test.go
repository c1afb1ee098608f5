package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/registry"
)

// signES256 makes a compact JWS with claims, signed with key.
func signES256(t *testing.T, key *ecdsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	signed := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	d := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig)
}

// TestJWTLogin: a device logs in to the MQTT listener with a JSON Web Token
// as its password and the client id tenants/<tenant>/devices/<auth-id>,
// checked against its rpk credential (Hono 2.x); an expired token, one
// signed by another key and a bad rpk credential are refused.
func TestJWTLogin(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t, func(c *config.Config) { c.Auth = true })
	host, port := hostPort(n)
	ctx := context.Background()
	reg := n.Registry()
	if _, _, err := reg.CreateTenant(ctx, "acme", registry.Tenant{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.CreateDevice(ctx, "acme", "dev-jwt", registry.Device{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if _, err := registry.ParseCredentials([]byte(`[{"type":"rpk","auth-id":"j1","secrets":[{"key":"` + base64.StdEncoding.EncodeToString(der) + `","algorithm":"RSA"}]}]`)); err == nil {
		t.Fatal("an EC key declared RSA was accepted")
	}
	creds, err := registry.ParseCredentials([]byte(`[{"type":"rpk","auth-id":"j1","secrets":[{"key":"` + base64.StdEncoding.EncodeToString(der) + `","algorithm":"EC"}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.SetCredentials(ctx, "acme", "dev-jwt", creds, ""); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	login := func(token string) (string, error) {
		p := startProc(t, pub, "-h", host, "-p", port, "-i", "tenants/acme/devices/j1", "-u", "unused", "-P", token,
			"-t", "jwt/hello", "-m", "x", "-q", "1")
		out := p.exit(t)
		if !p.cmd.ProcessState.Success() {
			return out, errRejected
		}
		return out, nil
	}
	if out, err := login(signES256(t, key, map[string]any{"iat": now, "exp": now + 3600})); err != nil {
		t.Fatalf("a valid token was refused: %s", out)
	}
	if st := n.Hub().TenantStats("acme"); st.Published != 1 {
		t.Fatalf("acme published %d messages, want the JWT login's 1", st.Published)
	}
	for name, token := range map[string]string{
		"expired":   signES256(t, key, map[string]any{"iat": now - 7200, "exp": now - 3600}),
		"other key": signES256(t, other, map[string]any{"iat": now, "exp": now + 3600}),
		"no exp":    signES256(t, key, map[string]any{"iat": now}),
		"too long":  signES256(t, key, map[string]any{"iat": now, "exp": now + 48*3600}),
	} {
		out, err := login(token)
		if err == nil || !strings.Contains(strings.ToLower(out), "bad user name or password") {
			t.Errorf("%s token: %v %s", name, err, out)
		}
	}
}
