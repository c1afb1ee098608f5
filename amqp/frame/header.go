package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Type is the frame type (part 2, section 2.3.1).
type Type uint8

const (
	TypeAMQP Type = 0x00
	TypeSASL Type = 0x01
)

// HeaderSize is the size of the fixed frame header.
const HeaderSize = 8

// MinMaxFrameSize is the smallest max-frame-size a peer may announce
// (part 2, section 2.7.1: MIN-MAX-FRAME-SIZE).
const MinMaxFrameSize = 512

// Header is a frame header (part 2, section 2.3.1).
type Header struct {
	Size       uint32 // whole frame, header included
	DataOffset uint8  // in 4-byte words, at least 2
	Type       Type
	Channel    uint16
}

// ErrFraming is wrapped by errors about frame structure (sizes, offsets),
// which map to the amqp:connection:framing-error condition.
var ErrFraming = errors.New("amqp: framing error")

// ParseHeader parses the 8-byte frame header at the start of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: short header", ErrFraming)
	}
	h := Header{
		Size:       binary.BigEndian.Uint32(b),
		DataOffset: b[4],
		Type:       Type(b[5]),
		Channel:    binary.BigEndian.Uint16(b[6:]),
	}
	// [part 2, 2.3.1] doff is at least 2; the extended header lies inside
	// the frame.
	if h.DataOffset < 2 || uint32(h.DataOffset)*4 > h.Size {
		return h, fmt.Errorf("%w: data offset %d for frame size %d", ErrFraming, h.DataOffset, h.Size)
	}
	if h.Type != TypeAMQP && h.Type != TypeSASL {
		return h, fmt.Errorf("%w: unknown frame type 0x%02x", ErrFraming, byte(h.Type))
	}
	return h, nil
}

// appendHeader reserves a frame header; finishFrame fills the size in.
func appendHeader(dst []byte, t Type, channel uint16) []byte {
	return append(dst, 0, 0, 0, 0, 2, byte(t), byte(channel>>8), byte(channel))
}

// finishFrame writes the size of the frame starting at start.
func finishFrame(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst
}

// AppendEmpty appends an empty AMQP frame, the heartbeat of part 2,
// section 2.4.5.
func AppendEmpty(dst []byte) []byte {
	return append(dst, 0, 0, 0, 8, 2, 0, 0, 0)
}

// Append appends a whole frame carrying body.
func Append(dst []byte, t Type, channel uint16, body Body) ([]byte, error) {
	start := len(dst)
	dst = appendHeader(dst, t, channel)
	dst, err := body.AppendBody(dst)
	if err != nil {
		return dst[:start], err
	}
	return finishFrame(dst, start), nil
}

// ProtoID identifies the protocol in a protocol header (part 2, section
// 2.2; part 5, sections 5.2 and 5.3).
type ProtoID uint8

const (
	ProtoAMQP ProtoID = 0
	ProtoTLS  ProtoID = 2
	ProtoSASL ProtoID = 3
)

// ProtoHeader is the 8-byte protocol header: "AMQP", id, major, minor,
// revision.
type ProtoHeader struct {
	ID                     ProtoID
	Major, Minor, Revision uint8
}

// ProtoHeaderSize is the size of a protocol header.
const ProtoHeaderSize = 8

// Proto returns the AMQP 1.0.0 header for id.
func Proto(id ProtoID) ProtoHeader { return ProtoHeader{ID: id, Major: 1} }

// AppendTo appends the header bytes.
func (p ProtoHeader) AppendTo(dst []byte) []byte {
	return append(dst, 'A', 'M', 'Q', 'P', byte(p.ID), p.Major, p.Minor, p.Revision)
}

// ParseProtoHeader parses 8 bytes as a protocol header.
func ParseProtoHeader(b []byte) (ProtoHeader, error) {
	if len(b) < ProtoHeaderSize || string(b[:4]) != "AMQP" {
		return ProtoHeader{}, fmt.Errorf("amqp: not an AMQP protocol header: %q", b)
	}
	return ProtoHeader{ID: ProtoID(b[4]), Major: b[5], Minor: b[6], Revision: b[7]}, nil
}
