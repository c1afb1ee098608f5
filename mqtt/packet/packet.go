package packet

import "io"

// Version is the protocol level byte of CONNECT.
type Version byte

// Protocol levels.
const (
	V31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 Version = 4 // MQTT 3.1.1
	V5   Version = 5 // MQTT 5.0
)

// Packet is implemented by every control packet type of this package.
type Packet interface {
	Type() Type
	// Append appends the whole encoded packet (fixed header included) for
	// version v. In 3.1.1 properties and v5-only fields are left out.
	// 0 allocations for Publish when dst has enough capacity.
	Append(dst []byte, v Version) ([]byte, error)
}

// Reader is what Read reads from, a *bufio.Reader for one.
type Reader interface {
	io.Reader
	io.ByteReader
}

// Read reads and decodes one whole packet from r, for clients and tools
// that take a packet at a time (the Server frames its own). The body gets
// its own buffer, as large as the header says: r must be a peer trusted
// not to announce a huge one. Errors are those of ReadHeader and Decode,
// and io.ErrUnexpectedEOF for a body cut short.
func Read(r Reader, v Version) (Packet, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	body := make([]byte, h.Remaining)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return Decode(h, body, v)
}

// Decode decodes a body of exactly h.Remaining bytes. For TypeConnect v is
// ignored (the packet states its own version). Byte slices in the result
// (Payload, CorrelationData, Password, WillPayload, AuthData) alias body;
// strings are copied. Errors are *Error.
func Decode(h Header, body []byte, v Version) (Packet, error) {
	if len(body) != h.Remaining {
		return nil, errorf(MalformedPacket, "%v: body of %d bytes, remaining length %d", h.Type, len(body), h.Remaining)
	}
	var e *Error
	switch h.Type {
	case TypeConnect:
		p := new(Connect)
		if e = p.decode(h.Flags, body); e == nil {
			return p, nil
		}
	case TypeConnack:
		p := new(Connack)
		if e = p.decode(h.Flags, body, v); e == nil {
			return p, nil
		}
	case TypePublish:
		p := new(Publish)
		if e = p.decode(h.Flags, body, v); e == nil {
			return p, nil
		}
	case TypePuback:
		p := new(Puback)
		if e = decodeAck(h.Flags, body, v, h.Type, &p.PacketID, &p.ReasonCode, &p.Properties); e == nil {
			return p, nil
		}
	case TypePubrec:
		p := new(Pubrec)
		if e = decodeAck(h.Flags, body, v, h.Type, &p.PacketID, &p.ReasonCode, &p.Properties); e == nil {
			return p, nil
		}
	case TypePubrel:
		p := new(Pubrel)
		if e = decodeAck(h.Flags, body, v, h.Type, &p.PacketID, &p.ReasonCode, &p.Properties); e == nil {
			return p, nil
		}
	case TypePubcomp:
		p := new(Pubcomp)
		if e = decodeAck(h.Flags, body, v, h.Type, &p.PacketID, &p.ReasonCode, &p.Properties); e == nil {
			return p, nil
		}
	case TypeSubscribe:
		p := new(Subscribe)
		if e = p.decode(h.Flags, body, v); e == nil {
			return p, nil
		}
	case TypeSuback:
		p := new(Suback)
		if e = p.decode(h.Flags, body, v); e == nil {
			return p, nil
		}
	case TypeUnsubscribe:
		p := new(Unsubscribe)
		if e = p.decode(h.Flags, body, v); e == nil {
			return p, nil
		}
	case TypeUnsuback:
		p := new(Unsuback)
		if e = p.decode(h.Flags, body, v); e == nil {
			return p, nil
		}
	case TypePingreq:
		if e = decodeEmpty(h.Flags, body, v, h.Type); e == nil {
			return &Pingreq{}, nil
		}
	case TypePingresp:
		if e = decodeEmpty(h.Flags, body, v, h.Type); e == nil {
			return &Pingresp{}, nil
		}
	case TypeDisconnect:
		p := new(Disconnect)
		if e = p.decode(h.Flags, body, v); e == nil {
			return p, nil
		}
	case TypeAuth:
		p := new(Auth)
		if e = p.decode(h.Flags, body, v); e == nil {
			return p, nil
		}
	default:
		// Type 0 is reserved [MQTT-2.1.2]; a Header from ReadHeader has 1..15.
		e = errorf(MalformedPacket, "reserved packet type %d", h.Type)
	}
	return nil, e
}
