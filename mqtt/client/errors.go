package client

import (
	"errors"
	"fmt"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

var (
	// ErrClosed is returned by calls on a Client after Close, and completes
	// the tokens of messages still in flight then (they stay in the Store).
	ErrClosed = errors.New("mqtt client: closed")
	// ErrNotConnected is returned by a QoS 0 Publish, Subscribe and
	// Unsubscribe while the client is between connections: only QoS 1 and 2
	// messages wait for the next connection.
	ErrNotConnected = errors.New("mqtt client: not connected")
	// ErrConnectionLost completes a Subscribe or Unsubscribe whose
	// connection ended before the acknowledgement came.
	ErrConnectionLost = errors.New("mqtt client: connection lost")
	// ErrKeepAliveTimeout ends a connection on which nothing arrived within
	// Options.PingTimeout of a PINGREQ.
	ErrKeepAliveTimeout = errors.New("mqtt client: keep alive timeout: no answer to PINGREQ")
)

// ConnectError is the refusal of a CONNECT: the CONNACK's reason code (a
// 3.1.1 return code is mapped to its MQTT 5 equivalent) and, in MQTT 5, the
// Reason String and Server Reference the server gave.
type ConnectError struct {
	Code            packet.ReasonCode
	Reason          string // Reason String property, if any
	ServerReference string // Server Reference property, for UseAnotherServer and ServerMoved
}

func (e *ConnectError) Error() string {
	s := fmt.Sprintf("mqtt client: server refused the connection: %v (0x%02x)", e.Code, byte(e.Code))
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.ServerReference != "" {
		s += " (server reference " + e.ServerReference + ")"
	}
	return s
}

// ReasonError is a failure reason code in an acknowledgement (PUBACK,
// PUBREC, PUBCOMP) or in a DISCONNECT from the server.
type ReasonError struct {
	Packet packet.Type // TypePuback, TypePubrec, TypePubcomp or TypeDisconnect
	Code   packet.ReasonCode
	Reason string // Reason String property, if any
}

func (e *ReasonError) Error() string {
	verb := "refused the message"
	if e.Packet == packet.TypeDisconnect {
		verb = "disconnected"
	}
	s := fmt.Sprintf("mqtt client: server %s (%v): %v (0x%02x)", verb, e.Packet, e.Code, byte(e.Code))
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// protocolError is a server's breach of the protocol: the client sends it
// as the DISCONNECT reason (MQTT 5) and closes.
type protocolError struct {
	code   packet.ReasonCode
	reason string
}

func (e *protocolError) Error() string {
	return fmt.Sprintf("mqtt client: protocol error from server: %s (%v)", e.reason, e.code)
}
