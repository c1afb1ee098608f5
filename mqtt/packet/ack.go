package packet

// Puback is the PUBACK control packet.
type Puback struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns TypePuback.
func (p *Puback) Type() Type { return TypePuback }

// Append appends the encoded packet to dst.
func (p *Puback) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Puback) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }

// Pubrec is the PUBREC control packet.
type Pubrec struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns TypePubrec.
func (p *Pubrec) Type() Type { return TypePubrec }

// Append appends the encoded packet to dst.
func (p *Pubrec) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Pubrec) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }

// Pubrel is the PUBREL control packet.
type Pubrel struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns TypePubrel.
func (p *Pubrel) Type() Type { return TypePubrel }

// Append appends the encoded packet to dst.
func (p *Pubrel) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Pubrel) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }

// Pubcomp is the PUBCOMP control packet.
type Pubcomp struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns TypePubcomp.
func (p *Pubcomp) Type() Type { return TypePubcomp }

// Append appends the encoded packet to dst.
func (p *Pubcomp) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Pubcomp) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }
