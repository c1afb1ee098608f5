package packet

// Pingreq is the PINGREQ control packet.
type Pingreq struct {
}

// Type returns TypePingreq.
func (p *Pingreq) Type() Type { return TypePingreq }

// Append appends the encoded packet to dst.
func (p *Pingreq) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Pingreq) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }

// Pingresp is the PINGRESP control packet.
type Pingresp struct {
}

// Type returns TypePingresp.
func (p *Pingresp) Type() Type { return TypePingresp }

// Append appends the encoded packet to dst.
func (p *Pingresp) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Pingresp) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }
