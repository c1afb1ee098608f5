package packet

import (
	"fmt"
	"io"
)

// Type is the control packet type, the high nibble of the first byte.
type Type byte

// Control packet types.
const (
	TypeConnect Type = iota + 1
	TypeConnack
	TypePublish
	TypePuback
	TypePubrec
	TypePubrel
	TypePubcomp
	TypeSubscribe
	TypeSuback
	TypeUnsubscribe
	TypeUnsuback
	TypePingreq
	TypePingresp
	TypeDisconnect
	TypeAuth
)

var typeNames = [...]string{
	TypeConnect:     "CONNECT",
	TypeConnack:     "CONNACK",
	TypePublish:     "PUBLISH",
	TypePuback:      "PUBACK",
	TypePubrec:      "PUBREC",
	TypePubrel:      "PUBREL",
	TypePubcomp:     "PUBCOMP",
	TypeSubscribe:   "SUBSCRIBE",
	TypeSuback:      "SUBACK",
	TypeUnsubscribe: "UNSUBSCRIBE",
	TypeUnsuback:    "UNSUBACK",
	TypePingreq:     "PINGREQ",
	TypePingresp:    "PINGRESP",
	TypeDisconnect:  "DISCONNECT",
	TypeAuth:        "AUTH",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", byte(t))
}

// MaxVarInt is the largest value a variable byte integer can hold (4 bytes),
// hence also the largest Remaining Length [MQTT-1.5.5].
const MaxVarInt = 268435455

// Header is the fixed header.
type Header struct {
	Type      Type
	Flags     byte // low nibble of the first byte
	Remaining int  // Remaining Length: bytes after the fixed header
}

// Size is the whole packet length: fixed header bytes + Remaining.
func (h Header) Size() int { return 1 + varIntLen(uint32(h.Remaining)) + h.Remaining }

// ReadHeader reads a fixed header (type/flags byte and the variable byte
// integer). Errors: io errors as is (io.ErrUnexpectedEOF when the stream ends
// inside the header); a malformed VBI or the reserved type 0 is
// *Error{MalformedPacket}. Flags are checked by the decoders, which know the
// packet type's rules.
func ReadHeader(r io.ByteReader) (Header, error) {
	b, err := r.ReadByte()
	if err != nil {
		return Header{}, err
	}
	h := Header{Type: Type(b >> 4), Flags: b & 0x0F}
	if h.Type == 0 {
		// Type 0 is Reserved (Forbidden) [MQTT-2.1.2].
		return Header{}, errorf(MalformedPacket, "reserved packet type 0")
	}
	var n uint32
	for i := 0; ; i++ {
		if i == 4 {
			// A VBI is at most 4 bytes [MQTT-1.5.5-1].
			return Header{}, errorf(MalformedPacket, "remaining length: variable byte integer longer than 4 bytes")
		}
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Header{}, err
		}
		n |= uint32(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			break
		}
	}
	h.Remaining = int(n)
	return h, nil
}

// AppendVarInt appends n as a variable byte integer, using the fewest bytes
// [MQTT-1.5.5-1]. n must be at most MaxVarInt; larger values produce a 5-byte
// encoding that every decoder rejects. Encoders check the bound first.
func AppendVarInt(dst []byte, n uint32) []byte {
	for n >= 0x80 {
		dst = append(dst, byte(n)|0x80)
		n >>= 7
	}
	return append(dst, byte(n))
}

// varIntLen is the encoded size of n.
func varIntLen(n uint32) int {
	switch {
	case n < 1<<7:
		return 1
	case n < 1<<14:
		return 2
	case n < 1<<21:
		return 3
	case n < 1<<28:
		return 4
	}
	return 5
}

// appendHeader appends a fixed header. remaining was checked by the caller
// (see sizer.remaining).
func appendHeader(dst []byte, t Type, flags byte, remaining int) []byte {
	return AppendVarInt(append(dst, byte(t)<<4|flags), uint32(remaining))
}

// checkFlags enforces the reserved fixed header flags of every type but
// PUBLISH [MQTT-2.1.3-1] (3.1.1: [MQTT-2.2.2-1] [MQTT-2.2.2-2]).
func checkFlags(t Type, flags byte) *Error {
	want := byte(0)
	if t == TypePubrel || t == TypeSubscribe || t == TypeUnsubscribe {
		// [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]
		want = 0b0010
	}
	// Others all 0, e.g. DISCONNECT [MQTT-3.14.1-1], AUTH [MQTT-3.15.1-1].
	if flags != want {
		return errorf(MalformedPacket, "%v: reserved flags 0b%04b, want 0b%04b", t, flags, want)
	}
	return nil
}
