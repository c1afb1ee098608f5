// Package packet encodes and decodes MQTT 3.1, 3.1.1 and 5.0 control
// packets. It is a leaf: it imports only the standard library and
// mqtt/topic, reads no socket and keeps no session state, so a fuzz target
// needs nothing but bytes.
//
// # Basics
//
// Each control packet has its own type (Connect, Publish, Suback...), all
// implementing Packet. Read a fixed header with ReadHeader, read
// Header.Remaining more bytes, then call Decode, or the in-place Decode method
// of a reused value on hot paths:
//
//	h, err := packet.ReadHeader(br)
//	...
//	body := buf[:h.Remaining]
//	_, err = io.ReadFull(br, body)
//	...
//	pkt, err := packet.Decode(h, body, version)
//
// Encoding appends to the caller's buffer and picks the smallest form the
// spec allows (a v5 PUBACK with Success and no properties is 4 bytes):
//
//	buf, err = pub.Append(buf[:0], packet.V5)
//
// One set of reason codes serves every version: v5 codes are mapped to and
// from 3.1.1 CONNACK and SUBACK return codes, and are left out where 3.1.1
// has no room for them (PUBACK, UNSUBACK, DISCONNECT).
//
// Every decoder enforces the normative rules that concern a single packet
// and returns an *Error whose Code is the reason code to send: in a CONNACK
// for CONNECT (Error.Version says in which protocol version), in a DISCONNECT
// otherwise. Each check carries its spec clause in a comment, such as
// [MQTT-3.3.1-4], so that grep serves as the conformance matrix. Encoders
// apply the same rules, so whatever decodes also encodes, and they return an
// *Error instead of writing something a peer would reject.
//
// # Caveats
//
// Decoded byte slices (Payload, CorrelationData, Password, WillPayload,
// AuthData) alias the body passed to Decode: copy them before reusing the
// buffer. Strings are copied, so a decoded Publish's topic stays valid.
//
// In Properties a zero-length string or binary property cannot be told from
// an absent one: it decodes as absent and is not encoded. The pointer fields
// of one decoded Properties share one allocation.
//
// The codec does not know which side sent a packet, so rules that depend on
// the direction are the caller's: a client's PUBLISH must not carry a
// Subscription Identifier [MQTT-3.3.4-6], a server's DISCONNECT no Session
// Expiry Interval [MQTT-3.14.2-2]. So are rules that need connection state:
// Topic Alias ranges, Receive Maximum, Maximum Packet Size, packet
// identifiers in use, a second CONNECT, AUTH exchanges; and limits a server
// chooses, such as client identifier length in 3.1.1 and 5.0.
//
// A $share/ filter is checked as a Shared Subscription in v5 only; in 3.1.1
// it is an ordinary filter.
//
// Variable byte integers that use more bytes than needed are accepted;
// encoders always write the shortest form [MQTT-1.5.5-1].
package packet
