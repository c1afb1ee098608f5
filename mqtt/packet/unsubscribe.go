package packet

// Unsubscribe is the UNSUBSCRIBE control packet.
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties
	Filters    []string
}

// Type returns TypeUnsubscribe.
func (p *Unsubscribe) Type() Type { return TypeUnsubscribe }

// Append appends the encoded packet to dst.
func (p *Unsubscribe) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Unsubscribe) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }
