package packet

// Auth is the AUTH control packet.
type Auth struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns TypeAuth.
func (p *Auth) Type() Type { return TypeAuth }

// Append appends the encoded packet to dst.
func (p *Auth) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Auth) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }
