package packet

// Unsuback is the UNSUBACK control packet (MQTT 5 section 3.11). In 3.1.1 it
// carries only the packet identifier.
type Unsuback struct {
	PacketID    uint16
	Properties  Properties   // v5 only: Reason String, User Property
	ReasonCodes []ReasonCode // v3: no codes on the wire
}

// Type returns TypeUnsuback.
func (p *Unsuback) Type() Type { return TypeUnsuback }

func (p *Unsuback) check(v Version) *Error {
	if p.PacketID == 0 {
		// [MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1])
		return errorf(ProtocolError, "UNSUBACK: packet identifier 0")
	}
	if v != V5 {
		return nil
	}
	if len(p.ReasonCodes) == 0 {
		// [MQTT-3.11.3-1] one reason code per topic filter, in order, and
		// an UNSUBSCRIBE has at least one [MQTT-3.10.3-2].
		return errorf(ProtocolError, "UNSUBACK: no reason code")
	}
	for _, c := range p.ReasonCodes {
		if e := checkCode(TypeUnsuback, &unsubackCodes, c); e != nil {
			return e
		}
	}
	return nil
}

// Append appends the encoded packet to dst. In 3.1.1 the properties and
// reason codes are left out.
func (p *Unsuback) Append(dst []byte, v Version) ([]byte, error) {
	if e := checkVersion(v); e != nil {
		return dst, e
	}
	if e := p.check(v); e != nil {
		return dst, e
	}
	s := sizer{t: TypeUnsuback, n: 2}
	pl := 0
	if v == V5 {
		s.n += len(p.ReasonCodes)
		pl = p.Properties.size(&s, ctxUnsuback)
	}
	n, e := s.remaining()
	if e != nil {
		return dst, e
	}
	dst = appendHeader(dst, TypeUnsuback, 0, n)
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = p.Properties.append(dst, pl)
		for _, c := range p.ReasonCodes {
			dst = append(dst, byte(c))
		}
	}
	return dst, nil
}

// Decode decodes an UNSUBACK body in place.
func (p *Unsuback) Decode(flags byte, body []byte, v Version) error {
	*p = Unsuback{}
	return asError(p.decode(flags, body, v))
}

func (p *Unsuback) decode(flags byte, body []byte, v Version) *Error {
	if e := checkVersion(v); e != nil {
		return e
	}
	if e := checkFlags(TypeUnsuback, flags); e != nil {
		return e
	}
	r := reader{b: body, t: TypeUnsuback}
	p.PacketID = r.uint16("packet identifier")
	if v == V5 {
		p.Properties.decode(&r, ctxUnsuback)
		if rest := r.rest(); len(rest) > 0 {
			p.ReasonCodes = make([]ReasonCode, len(rest))
			for i, c := range rest {
				p.ReasonCodes[i] = ReasonCode(c)
			}
		}
	}
	r.end()
	if r.err != nil {
		return r.err
	}
	return p.check(v)
}
