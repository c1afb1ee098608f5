package packet

import "io"

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

func (t Type) String() string { return "" }

// Header is the fixed header.
type Header struct {
	Type      Type
	Flags     byte
	Remaining int
}

// Size is the whole packet length: fixed header bytes + Remaining.
func (h Header) Size() int { return 0 }

// ReadHeader reads a fixed header (type/flags byte and the variable byte integer).
func ReadHeader(r io.ByteReader) (Header, error) { return Header{}, errNotImplemented }

// AppendVarInt appends n as a variable byte integer.
func AppendVarInt(dst []byte, n uint32) []byte { return dst }
