package packet

// Suback is the SUBACK control packet.
type Suback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode // v3: 0,1,2,0x80
}

// Type returns TypeSuback.
func (p *Suback) Type() Type { return TypeSuback }

// Append appends the encoded packet to dst.
func (p *Suback) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Suback) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }
