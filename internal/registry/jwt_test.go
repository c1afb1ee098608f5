package registry

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestJWTClientID(t *testing.T) {
	for id, want := range map[string][2]string{
		"tenants/t1/devices/dev1":                                 {"t1", "dev1"},
		"projects/p/locations/l/registries/acme/devices/sensor-1": {"acme", "sensor-1"},
		"plain-client":  {},
		"a/b/c":         {},
		"x//devices/d1": {},
	} {
		tn, a, ok := JWTClientID(id)
		if ok != (want != [2]string{}) || [2]string{tn, a} != want {
			t.Errorf("JWTClientID(%q) = %q %q %v, want %q", id, tn, a, ok, want)
		}
	}
}

func TestJWTIdentity(t *testing.T) {
	enc := func(claims string) string {
		return "eyJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".c2ln"
	}
	for token, want := range map[string][2]string{
		enc(`{"tid":"acme","sub":"sensor1","iat":1,"exp":2}`): {"acme", "sensor1"},
		enc(`{"sub":"sensor1"}`):                              {},
		enc(`{"tid":"acme"}`):                                 {},
		enc(`{"tid":1,"sub":"x"}`):                            {},
		"not.a-jwt":                                           {},
		"a.%%%.c":                                             {},
	} {
		tn, a, ok := JWTIdentity(token)
		if ok != (want != [2]string{}) || [2]string{tn, a} != want {
			t.Errorf("JWTIdentity(%q) = %q %q %v, want %q", token, tn, a, ok, want)
		}
	}
}

// TestRPKFromCert: an rpk secret may give a certificate instead of key and
// algorithm; the secret then holds its public key, algorithm and validity.
func TestRPKFromCert(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	nb, na := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1),
		Subject: pkix.Name{CommonName: "dev"}, NotBefore: nb, NotAfter: na}, &x509.Certificate{SerialNumber: big.NewInt(1),
		Subject: pkix.Name{CommonName: "dev"}}, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := base64.StdEncoding.EncodeToString(der)
	creds, err := ParseCredentials([]byte(`[{"type":"rpk","auth-id":"j1","secrets":[{"cert":"` + cert + `"}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	s := creds[0].Secrets[0]
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if !bytes.Equal(s.Key, spki) || s.Algorithm != AlgorithmEC || !s.NotBefore.Equal(nb) || !s.NotAfter.Equal(na) || s.Cert != nil {
		t.Fatalf("secret from cert: alg %q, validity %v..%v, key taken %v, cert kept %v", s.Algorithm, s.NotBefore, s.NotAfter,
			bytes.Equal(s.Key, spki), s.Cert != nil)
	}
	for name, body := range map[string]string{
		"wrong algorithm": `[{"type":"rpk","auth-id":"j1","secrets":[{"cert":"` + cert + `","algorithm":"RSA"}]}]`,
		"not a cert":      `[{"type":"rpk","auth-id":"j1","secrets":[{"cert":"AAAA"}]}]`,
		"cert on psk":     `[{"type":"psk","auth-id":"j1","secrets":[{"key":"AAAA","cert":"` + cert + `"}]}]`,
	} {
		if _, err := ParseCredentials([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseJWT: no token makes the parser panic, and a verifier never
// accepts a key of the wrong kind.
func FuzzParseJWT(f *testing.F) {
	for _, s := range []string{
		"eyJhbGciOiJFUzI1NiJ9.eyJpYXQiOjEsImV4cCI6Mn0.AAAA",
		"eyJhbGciOiJSUzI1NiJ9.eyJpYXQiOjF9.",
		"a.b.c", "", "..", "eyJhbGciOiJub25lIn0.e30.",
	} {
		f.Add(s)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Fuzz(func(t *testing.T, token string) {
		_, verify, err := parseJWT(token)
		if err != nil {
			return
		}
		if strings.Count(token, ".") != 2 {
			t.Fatalf("parseJWT(%q) accepted a token without three parts", token)
		}
		_ = verify(&key.PublicKey)
		if verify("not a key") {
			t.Fatal("a non-key verified a signature")
		}
	})
}
