package packet

// Unsuback is the UNSUBACK control packet.
type Unsuback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode // v3: no codes on the wire
}

// Type returns TypeUnsuback.
func (p *Unsuback) Type() Type { return TypeUnsuback }

// Append appends the encoded packet to dst.
func (p *Unsuback) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Unsuback) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }
