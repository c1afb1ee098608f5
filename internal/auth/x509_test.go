package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/memstore"
)

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: []string{"Acme"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func TestCertLogin(t *testing.T) {
	ctx := context.Background()
	reg, err := registry.New(memstore.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ca, caKey := newCA(t, "Acme CA")
	if _, _, err := reg.CreateTenant(ctx, "acme", registry.Tenant{Enabled: true, TrustedCAs: []registry.TrustedCA{{Cert: ca.Raw}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.CreateDevice(ctx, "acme", "d1", registry.Device{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	good := issue(t, ca, caKey, "dev-1")
	if _, err := reg.SetCredentials(ctx, "acme", "d1", []registry.Credential{{Type: registry.TypeX509, AuthID: good.Subject.String(), Enabled: true}}, ""); err != nil {
		t.Fatal(err)
	}
	l := &CertLogin{Trust: reg}
	id, err := l.Authenticate(ctx, []*x509.Certificate{good})
	if err != nil || id.TenantID != "acme" || id.DeviceID != "d1" {
		t.Fatalf("good certificate: %+v %v", id, err)
	}
	// Same subject, but signed by a CA with the same name and another key.
	fake, fakeKey := newCA(t, "Acme CA")
	forged := issue(t, fake, fakeKey, "dev-1")
	if _, err := l.Authenticate(ctx, []*x509.Certificate{forged}); !errors.Is(err, registry.ErrBadCredentials) {
		t.Errorf("forged certificate: %v, want bad credentials", err)
	}
	unknown := issue(t, ca, caKey, "dev-2")
	if _, err := l.Authenticate(ctx, []*x509.Certificate{unknown}); !errors.Is(err, registry.ErrBadCredentials) {
		t.Errorf("unregistered subject: %v, want bad credentials", err)
	}
}
