package packet

// Connack is the CONNACK control packet.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties
}

// Type returns TypeConnack.
func (p *Connack) Type() Type { return TypeConnack }

// Append appends the encoded packet to dst.
func (p *Connack) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Connack) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }
