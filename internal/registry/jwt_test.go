package registry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
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
