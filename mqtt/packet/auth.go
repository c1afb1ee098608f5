package packet

// Auth is the AUTH control packet (MQTT 5 section 3.15), for extended
// authentication. It does not exist in 3.1.1.
type Auth struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns TypeAuth.
func (p *Auth) Type() Type { return TypeAuth }

func (p *Auth) check(v Version) *Error {
	if v != V5 {
		// Packet type 15 is reserved before MQTT 5 (3.1.1 section 2.2.1).
		return errorf(MalformedPacket, "AUTH: no such packet in protocol version %d", v)
	}
	if e := checkCode(TypeAuth, &authCodes, p.ReasonCode); e != nil {
		return e
	}
	if p.ReasonCode != Success && p.Properties.AuthMethod == "" {
		// 3.15.2.2.2: it is a Protocol Error to omit the Authentication
		// Method; only the bodiless form (Success, no properties) has none.
		return errorf(ProtocolError, "AUTH: no Authentication Method")
	}
	return nil
}

// Append appends the encoded packet to dst. Success without properties is
// sent with no body (3.15.2.1). In 3.1.1 it is an error.
func (p *Auth) Append(dst []byte, v Version) ([]byte, error) {
	if e := checkVersion(v); e != nil {
		return dst, e
	}
	if e := p.check(v); e != nil {
		return dst, e
	}
	s := sizer{t: TypeAuth, n: 1}
	pl := p.Properties.size(&s, ctxAuth)
	if pl == 0 && p.ReasonCode == Success {
		s.n = 0
	}
	n, e := s.remaining()
	if e != nil {
		return dst, e
	}
	dst = appendHeader(dst, TypeAuth, 0, n)
	if n > 0 {
		dst = p.Properties.append(append(dst, byte(p.ReasonCode)), pl)
	}
	return dst, nil
}

// Decode decodes an AUTH body in place.
func (p *Auth) Decode(flags byte, body []byte, v Version) error {
	*p = Auth{}
	return asError(p.decode(flags, body, v))
}

func (p *Auth) decode(flags byte, body []byte, v Version) *Error {
	if e := checkVersion(v); e != nil {
		return e
	}
	if v != V5 {
		return p.check(v)
	}
	if e := checkFlags(TypeAuth, flags); e != nil {
		return e
	}
	r := reader{b: body, t: TypeAuth}
	// 3.15.2.1: a Remaining Length of 0 means Success and no properties;
	// otherwise both the Reason Code and the Property Length are present.
	if r.len() > 0 {
		p.ReasonCode = ReasonCode(r.byte("reason code"))
		p.Properties.decode(&r, ctxAuth)
	}
	r.end()
	if r.err != nil {
		return r.err
	}
	return p.check(v)
}
