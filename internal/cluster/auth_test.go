package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ferry-iot/ferry/internal/hub"
)

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kafka"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestTLSAndSASL: nodes reach a Kafka that wants TLS and SCRAM (as a
// Strimzi listener with tls and scram-sha-512 authentication does), and a
// wrong password or an untrusted certificate fails Start with the reason.
func TestTLSAndSASL(t *testing.T) {
	cert, pool := selfSigned(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "ferry", "s3cret"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	secure := func(o *Options) {
		o.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		o.SASL = SASL{Mechanism: "SCRAM-SHA-512", Username: "ferry", Password: "s3cret"}
	}
	a := startNode(t, kc, "a", hub.Options{}, secure)
	b := startNode(t, kc, "b", hub.Options{}, secure)
	_, onB := subscriber(b, "T", "s", hub.Subscription{Filter: "x"})
	publish(t, a, "T", &hub.Message{Topic: "x", QoS: 1, Payload: []byte("over tls")})
	onB.waitPayload(t, "over tls")

	for _, tt := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		// kfake hangs up on a failed login where Kafka would say why.
		{"wrong password", func(o *Options) { secure(o); o.SASL.Password = "nope" }, "(TLS, SASL SCRAM-SHA-512 as ferry)"},
		{"untrusted certificate", func(o *Options) { secure(o); o.TLS = &tls.Config{MinVersion: tls.VersionTLS12} }, "certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Brokers: kc.ListenAddrs(), NodeID: "c", DeliveryTimeout: time.Second,
				Logger: slog.New(slog.DiscardHandler)}
			tt.edit(&o)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			c, err := Start(ctx, hub.New(hub.Options{}), o)
			if err == nil {
				c.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start: %v, want an error about %s", err, tt.want)
			}
		})
	}
	if _, err := (SASL{Mechanism: "GSSAPI"}).mechanism(); err == nil {
		t.Error("GSSAPI accepted")
	}
}
