package coapadapter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
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

// dtlsListener is the CoAP over DTLS part of an Adapter.
type dtlsListener struct {
	srv  *dtlsserver.Server
	l    *coapnet.DTLSListener
	done chan struct{}
	// logins maps a PSK identity to its device, recorded by the key
	// lookup so that requests on the session know who sent them.
	mu     sync.Mutex
	logins map[string]login
}

// ListenDTLS serves CoAP over DTLS with PSK on the UDP address addr until
// Close: devices log in with identity auth-id@tenant and the key of their
// psk credential, and may then use the authenticated forms (POST /t,
// POST /e) and act as gateways.
func (a *Adapter) ListenDTLS(addr string, opts DTLS) error {
	lookup := opts.PSK
	d := &dtlsListener{logins: map[string]login{}, done: make(chan struct{})}
	psk := func(identity []byte) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		key, tenant, device, err := lookup(ctx, string(identity))
		if err != nil {
			a.log.Info("CoAP PSK login refused", "identity", string(identity), "err", err)
			return nil, err
		}
		d.mu.Lock()
		if len(d.logins) > 100_000 {
			clear(d.logins) // bounded: a later request looks its identity up again
		}
		d.logins[string(identity)] = login{tenant, device}
		d.mu.Unlock()
		return key, nil
	}
	cfg := coapnet.NewDTLSServerOptions(
		piondtls.WithPSK(psk),
		piondtls.WithPSKIdentityHint([]byte("ferry")),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8, piondtls.TLS_PSK_WITH_AES_128_CCM,
			piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256, piondtls.TLS_PSK_WITH_AES_128_CBC_SHA256),
	)
	l, err := coapnet.NewDTLSListener("udp", addr, cfg)
	if err != nil {
		return err
	}
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(func(w mux.ResponseWriter, req *mux.Message) {
		lg, err := d.loginOf(w, lookup)
		if err != nil {
			reply(w, codes.Unauthorized, err.Error())
			return
		}
		a.serveAs(w, req, &lg)
	}))
	d.l = l
	d.srv = coapdtls.NewServer(options.WithMux(r))
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

// loginOf is the device of the DTLS session a request came on.
func (d *dtlsListener) loginOf(w mux.ResponseWriter, lookup PSKLookup) (login, error) {
	var nc net.Conn = w.Conn().NetConn()
	for range 4 { // unwrap to the DTLS connection
		if dc, ok := nc.(*piondtls.Conn); ok {
			st, ok := dc.ConnectionState()
			if !ok {
				return login{}, errors.New("the DTLS handshake is not complete")
			}
			identity := string(st.IdentityHint)
			d.mu.Lock()
			lg, ok := d.logins[identity]
			d.mu.Unlock()
			if ok {
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
