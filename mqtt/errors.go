package mqtt

import (
	"errors"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrQueueFull is returned by Conn.Send when MaxQueued messages already
	// wait for the inflight window or for the socket.
	ErrQueueFull = errors.New("mqtt: outbound queue full")
	// ErrClosed is returned by Conn.Send once the connection is closing.
	ErrClosed = errors.New("mqtt: connection closed")
	// ErrServerClosed is returned by Server.Serve after Shutdown.
	ErrServerClosed = errors.New("mqtt: server closed")
)

// DisconnectError tells why a connection ended when a DISCONNECT reason code
// explains it: a DISCONNECT the client sent (Remote), or the reason the
// server closed the connection (keep-alive timeout, protocol error, session
// takeover, shutdown, Conn.Close). In 3.1.1 the server sends no DISCONNECT,
// but the error still carries the MQTT 5 code of the reason.
//
// Err is the cause when there is one: a *packet.Error for decode failures,
// ErrServerClosed for Shutdown. errors.As reaches it through Unwrap.
type DisconnectError struct {
	Code   packet.ReasonCode
	Remote bool // the client sent DISCONNECT with Code
	// Reason is the v5 DISCONNECT's Reason String: the client's, or the one
	// given to Conn.CloseWithReason.
	Reason string
	Err    error
}

func (e *DisconnectError) Error() string {
	who := "server"
	if e.Remote {
		who = "client"
	}
	s := "mqtt: disconnect by " + who + ": " + e.Code.String()
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *DisconnectError) Unwrap() error { return e.Err }

// protocolError builds the error for a violation the library detects itself
// (as opposed to one the codec reports).
func protocolError(code packet.ReasonCode, reason string) *DisconnectError {
	return &DisconnectError{Code: code, Err: &packet.Error{Code: code, Reason: reason}}
}

// errNormalDisconnect is returned by the read loop on a DISCONNECT with
// reason 0x00; Handler.Disconnected then gets a nil error.
var errNormalDisconnect = errors.New("mqtt: normal disconnection")
