package amqp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// testPKI is a CA with a server and a client certificate, made per run.
type testPKI struct {
	pool           *x509.CertPool
	server, client tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ferry test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{pool: pool,
		server: leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth),
		client: leaf(3, "device-1", x509.ExtKeyUsageClientAuth)}
}

func TestTLS(t *testing.T) {
	checkGoroutines(t)
	pki := newTestPKI(t)
	auth := func(_ context.Context, req *AuthRequest) (string, error) {
		if req.Mechanism == frame.SASLExternal {
			if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 {
				return "", errors.New("no client certificate")
			}
			return req.TLS.PeerCertificates[0].Subject.CommonName, nil
		}
		if req.Username == "u" && req.Password == "p" {
			return "u", nil
		}
		return "", errors.New("denied")
	}
	var seen = make(chan string, 10)
	b := newTestBroker()
	l := startListener(t, b, &ListenerOptions{
		Authenticate: auth,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool,
			ClientAuth: tls.VerifyClientCertIfGiven},
		Handler: HandlerFunc(func(req *LinkRequest) error {
			seen <- req.Conn.AuthIdentity()
			return b.HandleLink(req)
		}),
	})
	ctx := testCtx(t)
	clientTLS := &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}}
	check := func(t *testing.T, c *Conn, wantID string) {
		t.Helper()
		defer c.Close()
		if c.TLSState() == nil {
			t.Fatal("no TLS state")
		}
		s := mustSession(t, c)
		snd, err := s.NewSender(ctx, "tls", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := snd.Send(ctx, &Message{Value: "secure"}, nil); err != nil {
			t.Fatal(err)
		}
		if id := <-seen; id != wantID {
			t.Fatalf("identity %q, want %q", id, wantID)
		}
	}
	t.Run("amqps EXTERNAL", func(t *testing.T) {
		c, err := Dial(ctx, "amqps://"+l.Addr().String(), &ConnOptions{TLSConfig: clientTLS, SASL: frame.SASLExternal})
		if err != nil {
			t.Fatal(err)
		}
		check(t, c, "device-1")
	})
	t.Run("TLS header PLAIN", func(t *testing.T) {
		c, err := Dial(ctx, "amqp://u:p@"+l.Addr().String(), &ConnOptions{TLSConfig: &tls.Config{RootCAs: pki.pool}, StartTLS: true})
		if err != nil {
			t.Fatal(err)
		}
		check(t, c, "u")
	})
	t.Run("EXTERNAL without certificate", func(t *testing.T) {
		_, err := Dial(ctx, "amqps://"+l.Addr().String(), &ConnOptions{TLSConfig: &tls.Config{RootCAs: pki.pool}, SASL: frame.SASLExternal})
		if err == nil {
			t.Fatal("EXTERNAL must not be offered without a client certificate")
		}
	})
	t.Run("go-amqp amqps EXTERNAL", func(t *testing.T) {
		c, err := goamqp.Dial(ctx, "amqps://"+l.Addr().String(), &goamqp.ConnOptions{TLSConfig: clientTLS, SASLType: goamqp.SASLTypeExternal("")})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.NewSession(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		snd, err := s.NewSender(ctx, "tls", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := snd.Send(ctx, goamqp.NewMessage([]byte("x")), nil); err != nil {
			t.Fatal(err)
		}
		if id := <-seen; id != "device-1" {
			t.Fatalf("identity %q", id)
		}
	})
}

func TestClientHeartbeats(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	// The listener closes silent peers after 300 ms; the client's
	// heartbeats, sent every 100 ms, keep the connection alive.
	l := startListener(t, b, &ListenerOptions{IdleTimeout: 300 * time.Millisecond})
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	timer := time.NewTimer(time.Second)
	select {
	case <-c.Done():
		t.Fatalf("connection closed despite heartbeats: %v", c.Err())
	case <-timer.C:
	}
	if _, err := s.NewSender(testCtx(t), "alive", nil); err != nil {
		t.Fatal(err)
	}
}

func TestChannelAndHandleMax(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	l := startListener(t, b, &ListenerOptions{ChannelMax: 1, Session: SessionOptions{HandleMax: 1}})
	c := dialTest(t, l, nil)
	ctx := testCtx(t)
	s := mustSession(t, c)
	mustSession(t, c)
	if _, err := c.NewSession(ctx, nil); err == nil {
		t.Fatal("third session beyond channel-max 1")
	}
	if _, err := s.NewSender(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewSender(ctx, "b", nil); err != nil {
		t.Fatal(err)
	}
	var le *LinkError
	if _, err := s.NewSender(ctx, "c", nil); !errors.As(err, &le) {
		t.Fatalf("third link beyond handle-max 1: %v", err)
	}
}

func TestRemoteCloseWithError(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	kicked := make(chan struct{})
	l := startListener(t, b, &ListenerOptions{Handler: HandlerFunc(func(req *LinkRequest) error {
		go func() {
			defer close(kicked)
			_ = req.Conn.CloseWithError(&Error{Condition: frame.CondConnectionForced, Description: "evicted"})
		}()
		return nil
	})})
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	_, _ = s.NewSender(testCtx(t), "kick", nil)
	<-c.Done()
	<-kicked
	var ce *ConnError
	if !errors.As(c.Err(), &ce) || ce.RemoteErr == nil || ce.RemoteErr.Condition != frame.CondConnectionForced {
		t.Fatalf("err = %v", c.Err())
	}
}
