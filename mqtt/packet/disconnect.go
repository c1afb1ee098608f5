package packet

// Disconnect is the DISCONNECT control packet.
type Disconnect struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns TypeDisconnect.
func (p *Disconnect) Type() Type { return TypeDisconnect }

// Append appends the encoded packet to dst.
func (p *Disconnect) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Disconnect) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }
