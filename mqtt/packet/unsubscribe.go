package packet

// Unsubscribe is the UNSUBSCRIBE control packet (MQTT 5 section 3.10).
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties // v5 only: User Property
	Filters    []string
}

// Type returns TypeUnsubscribe.
func (p *Unsubscribe) Type() Type { return TypeUnsubscribe }

func (p *Unsubscribe) check(v Version) *Error {
	if p.PacketID == 0 {
		// [MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1])
		return errorf(ProtocolError, "UNSUBSCRIBE: packet identifier 0")
	}
	if len(p.Filters) == 0 {
		// [MQTT-3.10.3-2] (3.1.1: [MQTT-3.10.3-2]) at least one filter.
		return errorf(ProtocolError, "UNSUBSCRIBE: no topic filter")
	}
	for _, f := range p.Filters {
		if _, e := checkFilter(TypeUnsubscribe, f, v); e != nil {
			return e
		}
	}
	return nil
}

// Append appends the encoded packet to dst. In 3.1.1 the properties are
// left out.
func (p *Unsubscribe) Append(dst []byte, v Version) ([]byte, error) {
	if e := checkVersion(v); e != nil {
		return dst, e
	}
	if e := p.check(v); e != nil {
		return dst, e
	}
	s := sizer{t: TypeUnsubscribe, n: 2}
	pl := 0
	if v == V5 {
		pl = p.Properties.size(&s, ctxUnsubscribe)
	}
	for _, f := range p.Filters {
		s.str(f, "topic filter")
	}
	n, e := s.remaining()
	if e != nil {
		return dst, e
	}
	dst = appendHeader(dst, TypeUnsubscribe, 0b0010, n)
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = p.Properties.append(dst, pl)
	}
	for _, f := range p.Filters {
		dst = appendString(dst, f)
	}
	return dst, nil
}

// Decode decodes an UNSUBSCRIBE body in place.
func (p *Unsubscribe) Decode(flags byte, body []byte, v Version) error {
	*p = Unsubscribe{}
	return asError(p.decode(flags, body, v))
}

func (p *Unsubscribe) decode(flags byte, body []byte, v Version) *Error {
	if e := checkVersion(v); e != nil {
		return e
	}
	if e := checkFlags(TypeUnsubscribe, flags); e != nil {
		return e
	}
	r := reader{b: body, t: TypeUnsubscribe}
	p.PacketID = r.uint16("packet identifier")
	if v == V5 {
		p.Properties.decode(&r, ctxUnsubscribe)
	}
	for r.err == nil && r.len() > 0 {
		f := r.string("topic filter")
		if r.err == nil {
			p.Filters = append(p.Filters, f)
		}
	}
	if r.err != nil {
		return r.err
	}
	return p.check(v)
}
