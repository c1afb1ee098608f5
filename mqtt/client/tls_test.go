package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir and
// returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ferry-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLS: a QoS 1 round trip through Ferry's MQTT over TLS listener, and a
// refusal of a server whose certificate is not trusted.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	tlsAddr := freePort(t)
	startFerry(t, fmt.Sprintf("  tls:\n    addr: %s\n    cert_file: %s\n    key_file: %s\n", tlsAddr, certFile, keyFile))
	waitDial(t, tlsAddr)
	var got collector
	opts := Options{Server: "tls://" + tlsAddr, CleanStart: true, TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	sub := connect(t, Options{Server: opts.Server, TLSConfig: opts.TLSConfig, ClientID: "tls-sub", CleanStart: true, OnMessage: got.handle})
	subscribe(t, sub, "tls/#", 1)
	opts.ClientID = "tls-pub"
	pub := connect(t, opts)
	if err := pub.Publish(testContext(t), &Message{Topic: "tls/a", Payload: []byte("secret"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message over TLS", func() bool { return len(got.list()) == 1 })
	if m := got.list()[0]; string(m.Payload) != "secret" {
		t.Fatalf("got %q", m.Payload)
	}
	if c, err := Connect(testContext(t), Options{Server: "tls://" + tlsAddr, ClientID: "untrusting", CleanStart: true,
		TLSConfig: &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}}); err == nil {
		c.Close()
		t.Fatal("connected to a server whose certificate is not trusted")
	}
}
