package amqp

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// The SASL mechanisms the engine speaks (ConnOptions.SASL,
// ListenerOptions.SASLMechanisms, AuthRequest.Mechanism).
const (
	SASLAnonymous Symbol = frame.SASLAnonymous
	SASLPlain     Symbol = frame.SASLPlain
	SASLExternal  Symbol = frame.SASLExternal
)

// Authenticator checks the credentials of a SASL exchange on a Listener
// and returns the authenticated identity (see Conn.AuthIdentity). An
// error fails the exchange with the sasl "auth" outcome and closes the
// connection. It runs during the handshake, on the connection's own
// goroutine, and must be safe for concurrent use.
type Authenticator func(ctx context.Context, req *AuthRequest) (identity string, err error)

// AuthRequest is what the client presented.
type AuthRequest struct {
	// Mechanism is ANONYMOUS, PLAIN or EXTERNAL.
	Mechanism Symbol
	// Username and Password are PLAIN's authcid and passwd.
	Username, Password string
	// AuthzID is the identity the client asks to act as (PLAIN, EXTERNAL).
	AuthzID string
	// TLS is the connection's TLS state, if any; for EXTERNAL, its peer
	// certificates are the credentials.
	TLS *tls.ConnectionState
	// Hostname is the hostname the client sent in sasl-init.
	Hostname   string
	RemoteAddr net.Addr
}
