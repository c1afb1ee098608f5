package packet

// Disconnect is the DISCONNECT control packet (MQTT 5 section 3.14). In
// 3.1.1 it is a fixed header only, sent by the client.
type Disconnect struct {
	ReasonCode ReasonCode // v5 only
	Properties Properties // v5 only
}

// Type returns TypeDisconnect.
func (p *Disconnect) Type() Type { return TypeDisconnect }

// Append appends the encoded packet to dst. In v5 the reason code and
// properties are left out when they are Normal disconnection and empty
// (3.14.2.1), and the Property Length when there are none (3.14.2.2.1); in
// 3.1.1 both are always left out.
func (p *Disconnect) Append(dst []byte, v Version) ([]byte, error) {
	if e := checkVersion(v); e != nil {
		return dst, e
	}
	if v != V5 {
		return append(dst, byte(TypeDisconnect)<<4, 0), nil
	}
	if e := checkCode(TypeDisconnect, &disconnectCodes, p.ReasonCode); e != nil {
		return dst, e
	}
	s := sizer{t: TypeDisconnect}
	pl := p.Properties.size(&s, ctxDisconnect)
	withProps := pl > 0
	withCode := withProps || p.ReasonCode != NormalDisconnection
	s.n = 0
	if withCode {
		s.n++
	}
	if withProps {
		s.n += varIntLen(uint32(pl)) + pl
	}
	n, e := s.remaining()
	if e != nil {
		return dst, e
	}
	dst = appendHeader(dst, TypeDisconnect, 0, n)
	if withCode {
		dst = append(dst, byte(p.ReasonCode))
	}
	if withProps {
		dst = p.Properties.append(dst, pl)
	}
	return dst, nil
}

// Decode decodes a DISCONNECT body in place.
func (p *Disconnect) Decode(flags byte, body []byte, v Version) error {
	*p = Disconnect{}
	return asError(p.decode(flags, body, v))
}

func (p *Disconnect) decode(flags byte, body []byte, v Version) *Error {
	if e := checkVersion(v); e != nil {
		return e
	}
	if e := checkFlags(TypeDisconnect, flags); e != nil {
		return e
	}
	r := reader{b: body, t: TypeDisconnect}
	if v == V5 {
		// Remaining Length 0: Normal disconnection; below 2: no properties
		// (3.14.2.1, 3.14.2.2.1).
		if r.len() > 0 {
			p.ReasonCode = ReasonCode(r.byte("reason code"))
		}
		if r.len() > 0 {
			p.Properties.decode(&r, ctxDisconnect)
		}
	}
	// 3.1.1 section 3.14.2: no variable header or payload.
	r.end()
	if r.err != nil {
		return r.err
	}
	if v == V5 {
		return checkCode(TypeDisconnect, &disconnectCodes, p.ReasonCode)
	}
	return nil
}
