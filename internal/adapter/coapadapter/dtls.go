package coapadapter

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	dtlsserver "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"

	"github.com/ferry-iot/ferry/internal/auth"
)

// PSKLookup returns the pre-shared key of a PSK identity (Hono's
// auth-id@tenant) and the device it belongs to; an error refuses the
// handshake.
type PSKLookup func(ctx context.Context, identity string) (key []byte, tenant, device string, err error)

// DTLS configures the DTLS listener.
type DTLS struct {
	// PSK finds the keys of PSK logins.
	PSK PSKLookup
	// Certificate is the server's certificate for ECDHE_ECDSA handshakes
	// with client certificates; nil: PSK only.
	Certificate *tls.Certificate
	// CertLogin authenticates client certificates; nil: PSK only.
	CertLogin *auth.CertLogin
}

// login is a device authenticated by its DTLS handshake.
type login struct{ tenant, device string }

// maxLogins bounds the remembered logins; past it they are forgotten,
// and a later request looks its login up again.
const maxLogins = 100_000

// dtlsListener is the CoAP over DTLS part of an Adapter.
type dtlsListener struct {
	srv  *dtlsserver.Server
	l    *coapnet.DTLSListener
	done chan struct{}
	// logins maps a PSK identity, or the hash of a client certificate,
	// to its device, recorded by the handshake so that requests on the
	// session know who sent them.
	mu     sync.Mutex
	logins map[string]login
}

func (d *dtlsListener) remember(key string, lg login) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.logins) >= maxLogins {
		clear(d.logins)
	}
	d.logins[key] = lg
}

func (d *dtlsListener) recall(key string) (login, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	lg, ok := d.logins[key]
	return lg, ok
}

// certKey is the logins key of a client certificate.
func certKey(der []byte) string {
	sum := sha256.Sum256(der)
	return "x509:" + string(sum[:])
}

// pskSuites are the PSK cipher suites, CCM_8 first as RFC 7925 (and
// Hono's Californium) prefer for constrained devices.
var pskSuites = []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8, piondtls.TLS_PSK_WITH_AES_128_CCM,
	piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256, piondtls.TLS_PSK_WITH_AES_128_CBC_SHA256}

// certSuites are the suites of certificate logins; ECDHE_ECDSA needs an
// ECDSA server certificate, the RSA ones serve an RSA certificate.
var certSuites = []piondtls.CipherSuiteID{piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
	piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, piondtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	piondtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, piondtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}

// ListenDTLS serves CoAP over DTLS on the UDP address addr until Close:
// devices log in with identity auth-id@tenant and the key of their psk
// credential, or, when opts has a Certificate and a CertLogin, with a
// client certificate that CertLogin accepts (ECDHE_ECDSA suites). Logged
// in, they may use the authenticated forms (POST /t, POST /e, POST /cr)
// and act as gateways. One listener offers both kinds of suites; the
// client's suites decide which login it makes.
func (a *Adapter) ListenDTLS(addr string, opts DTLS) error {
	lookup := opts.PSK
	d := &dtlsListener{logins: map[string]login{}, done: make(chan struct{})}
	psk := func(identity []byte) ([]byte, error) {
		ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
		defer cancel()
		key, tenant, device, err := lookup(ctx, string(identity))
		if err != nil {
			a.log.Info("CoAP PSK login refused", "identity", string(identity), "err", err)
			return nil, err
		}
		d.remember(string(identity), login{tenant, device})
		return key, nil
	}
	suites := pskSuites
	dopts := []piondtls.ServerOption{piondtls.WithPSK(psk), piondtls.WithPSKIdentityHint([]byte("ferry"))}
	if opts.Certificate != nil && opts.CertLogin != nil {
		suites = append(slices.Clone(certSuites), pskSuites...)
		verify := func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			lg, err := authenticateCert(a.ctx, opts.CertLogin, rawCerts)
			if err != nil {
				a.log.Info("CoAP certificate login refused", "err", err)
				return err
			}
			d.remember(certKey(rawCerts[0]), lg)
			return nil
		}
		// The trust anchors are the tenants' CAs in the registry, which
		// CertLogin checks: pion only demands a certificate and its
		// proof of possession.
		dopts = append(dopts, piondtls.WithCertificates(*opts.Certificate),
			piondtls.WithClientAuth(piondtls.RequireAnyClientCert), piondtls.WithVerifyPeerCertificate(verify))
	}
	dopts = append(dopts, piondtls.WithCipherSuites(suites...))
	l, err := coapnet.NewDTLSListener("udp", addr, coapnet.NewDTLSServerOptions(dopts...))
	if err != nil {
		return err
	}
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(func(w mux.ResponseWriter, req *mux.Message) {
		lg, err := d.loginOf(w, lookup, opts.CertLogin)
		if err != nil {
			reply(w, codes.Unauthorized, err.Error())
			return
		}
		a.serveAs(w, req, &lg)
	}))
	d.l = l
	d.srv = coapdtls.NewServer(options.WithMux(r), idleOption{&a.waiting})
	go func() {
		defer close(d.done)
		if err := d.srv.Serve(l); err != nil {
			a.log.Debug("coaps server ended", "err", err)
		}
	}()
	a.dtls = d
	return nil
}

// DTLSAddr is the UDP address of the DTLS listener, "" without one.
func (a *Adapter) DTLSAddr() string {
	if a.dtls == nil {
		return ""
	}
	return a.dtls.l.Addr().String()
}

// loginOf is the device of the DTLS session a request came on: the one
// its handshake recorded, else (forgotten) looked up again.
func (d *dtlsListener) loginOf(w mux.ResponseWriter, lookup PSKLookup, certs *auth.CertLogin) (login, error) {
	var nc net.Conn = w.Conn().NetConn()
	for range 4 { // unwrap to the DTLS connection
		if dc, ok := nc.(*piondtls.Conn); ok {
			st, ok := dc.ConnectionState()
			if !ok {
				return login{}, errors.New("the DTLS handshake is not complete")
			}
			if len(st.PeerCertificates) > 0 {
				return d.certLogin(st.PeerCertificates, certs)
			}
			identity := string(st.IdentityHint)
			if lg, ok := d.recall(identity); ok {
				return lg, nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, tenant, device, err := lookup(ctx, identity)
			if err != nil {
				return login{}, fmt.Errorf("PSK identity %q: %w", identity, err)
			}
			return login{tenant, device}, nil
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		nc = u.NetConn()
	}
	return login{}, errors.New("not a DTLS session")
}

func (d *dtlsListener) certLogin(rawCerts [][]byte, certs *auth.CertLogin) (login, error) {
	if lg, ok := d.recall(certKey(rawCerts[0])); ok {
		return lg, nil
	}
	if certs == nil {
		return login{}, errors.New("certificate logins are off")
	}
	return authenticateCert(context.Background(), certs, rawCerts)
}

// authenticateCert logs in the client certificate chain rawCerts (leaf
// first).
func authenticateCert(ctx context.Context, certs *auth.CertLogin, rawCerts [][]byte) (login, error) {
	chain := make([]*x509.Certificate, 0, len(rawCerts))
	for _, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return login{}, fmt.Errorf("client certificate: %w", err)
		}
		chain = append(chain, c)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	id, err := certs.Authenticate(ctx, chain)
	if err != nil {
		return login{}, fmt.Errorf("client certificate: %w", err)
	}
	return login{id.TenantID, id.DeviceID}, nil
}

func (d *dtlsListener) close() {
	d.srv.Stop()
	<-d.done
	_ = d.l.Close()
}

// SplitIdentity splits a PSK identity auth-id@tenant; without a tenant it
// is in defaultTenant.
func SplitIdentity(identity, defaultTenant string) (authID, tenant string) {
	i := strings.LastIndexByte(identity, '@')
	if i <= 0 || i == len(identity)-1 {
		return identity, defaultTenant
	}
	return identity[:i], identity[i+1:]
}
