package packet

// Suback is the SUBACK control packet (MQTT 5 section 3.9): one reason code
// per subscription, in the order of the SUBSCRIBE.
type Suback struct {
	PacketID    uint16
	Properties  Properties   // v5 only: Reason String, User Property
	ReasonCodes []ReasonCode // v3: 0,1,2,0x80
}

// Type returns TypeSuback.
func (p *Suback) Type() Type { return TypeSuback }

func (p *Suback) check(v Version) *Error {
	if p.PacketID == 0 {
		// [MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1])
		return errorf(ProtocolError, "SUBACK: packet identifier 0")
	}
	if len(p.ReasonCodes) == 0 {
		// [MQTT-3.8.4-6] one reason code per topic filter, and a SUBSCRIBE
		// has at least one.
		return errorf(ProtocolError, "SUBACK: no reason code")
	}
	for _, c := range p.ReasonCodes {
		if v == V5 {
			if e := checkCode(TypeSuback, &subackCodes, c); e != nil {
				return e
			}
		} else if !c.IsError() && c > GrantedQoS2 {
			return errorf(ProtocolError, "SUBACK: return code 0x%02X not allowed in 3.1.1", byte(c))
		}
	}
	return nil
}

// Append appends the encoded packet to dst. In 3.1.1 the properties are
// left out and every failure code is sent as 0x80, the only one 3.1.1 has.
func (p *Suback) Append(dst []byte, v Version) ([]byte, error) {
	if e := checkVersion(v); e != nil {
		return dst, e
	}
	if e := p.check(v); e != nil {
		return dst, e
	}
	s := sizer{t: TypeSuback, n: 2 + len(p.ReasonCodes)}
	pl := 0
	if v == V5 {
		pl = p.Properties.size(&s, ctxSuback)
	}
	n, e := s.remaining()
	if e != nil {
		return dst, e
	}
	dst = appendHeader(dst, TypeSuback, 0, n)
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = p.Properties.append(dst, pl)
	}
	for _, c := range p.ReasonCodes {
		if v != V5 && c.IsError() {
			c = UnspecifiedError // 0x80 Failure in 3.1.1
		}
		dst = append(dst, byte(c))
	}
	return dst, nil
}

// Decode decodes a SUBACK body in place.
func (p *Suback) Decode(flags byte, body []byte, v Version) error {
	*p = Suback{}
	return asError(p.decode(flags, body, v))
}

func (p *Suback) decode(flags byte, body []byte, v Version) *Error {
	if e := checkVersion(v); e != nil {
		return e
	}
	if e := checkFlags(TypeSuback, flags); e != nil {
		return e
	}
	r := reader{b: body, t: TypeSuback}
	p.PacketID = r.uint16("packet identifier")
	if v == V5 {
		p.Properties.decode(&r, ctxSuback)
	}
	if rest := r.rest(); len(rest) > 0 {
		p.ReasonCodes = make([]ReasonCode, len(rest))
		for i, c := range rest {
			if v != V5 && c != 0 && c != 1 && c != 2 && c != 0x80 {
				// 3.1.1 [MQTT-3.9.3-2] other return codes are reserved.
				return errorf(MalformedPacket, "SUBACK: reserved return code 0x%02X", c)
			}
			p.ReasonCodes[i] = ReasonCode(c)
		}
	}
	if r.err != nil {
		return r.err
	}
	return p.check(v)
}
