package registry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

// testCert returns a self-signed DER certificate with subject CN=cn.
func testCert(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Ferry Test"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// testCA returns a trusted CA given by subject DN and public key.
func testCA(t *testing.T, dn string) TrustedCA {
	t.Helper()
	cert, err := x509.ParseCertificate(testCert(t, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	return TrustedCA{
		SubjectDN: dn, PublicKey: cert.RawSubjectPublicKeyInfo, Algorithm: "EC",
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
	}
}

func TestTrustedCAFromCert(t *testing.T) {
	tn := NewTenant()
	tn.TrustedCAs = []TrustedCA{{Cert: testCert(t, "Root"), AuthIDTemplate: "{{subject-cn}}"}}
	if err := tn.Validate(); err != nil {
		t.Fatal(err)
	}
	ca := tn.TrustedCAs[0]
	if ca.SubjectDN != "CN=Root,O=Ferry Test" || ca.Algorithm != "EC" || len(ca.PublicKey) == 0 || ca.Cert != nil || ca.NotAfter.IsZero() {
		t.Fatalf("CA from cert: %+v", ca)
	}
	tn.TrustedCAs = []TrustedCA{{Cert: []byte("junk")}}
	if err := tn.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("junk cert: %v", err)
	}
	tn.TrustedCAs = []TrustedCA{{Cert: testCert(t, "Root"), AuthIDTemplate: "{{subject-xx}}"}}
	if err := tn.Validate(); err == nil || !strings.Contains(err.Error(), "placeholder") {
		t.Fatalf("bad template: %v", err)
	}
}

func TestX509CredentialFromCert(t *testing.T) {
	c := Credential{Type: TypeX509, Enabled: true, Cert: testCert(t, "dev1")}
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	if c.AuthID != "CN=dev1,O=Ferry Test" || len(c.Secrets) != 1 || c.Cert != nil {
		t.Fatalf("credential from cert: %+v", c)
	}
	c = Credential{Type: TypeX509, AuthID: "CN=other", Cert: testCert(t, "dev1")}
	if err := c.check(); err == nil {
		t.Fatal("auth-id differing from the certificate accepted")
	}
	c = Credential{Type: TypeHashedPassword, AuthID: "x", Cert: testCert(t, "dev1")}
	if err := c.check(); err == nil {
		t.Fatal("cert accepted on a password credential")
	}
}
