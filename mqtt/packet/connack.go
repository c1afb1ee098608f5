package packet

// Connack is the CONNACK control packet (MQTT 5 section 3.2). ReasonCode is
// a v5 code in every version: the 3.1.1 encoder maps it with
// ConnackReturnCodeV3, and the 3.1.1 decoder maps return codes 0..5 back.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties // v5 only
}

// Type returns TypeConnack.
func (p *Connack) Type() Type { return TypeConnack }

func (p *Connack) check(v Version) *Error {
	if v == V5 {
		if e := checkCode(TypeConnack, &connackCodes, p.ReasonCode); e != nil {
			return e
		}
	}
	if p.SessionPresent && p.ReasonCode != Success {
		// [MQTT-3.2.2-6] (3.1.1: [MQTT-3.2.2-4]) a refusal has Session
		// Present 0.
		return errorf(ProtocolError, "CONNACK: session present with reason code 0x%02X", byte(p.ReasonCode))
	}
	return nil
}

// Append appends the encoded packet to dst. In 3.1.1 the properties are left
// out and the reason code is mapped to a return code.
func (p *Connack) Append(dst []byte, v Version) ([]byte, error) {
	if e := checkVersion(v); e != nil {
		return dst, e
	}
	if e := p.check(v); e != nil {
		return dst, e
	}
	var flags byte
	if p.SessionPresent && v != V31 {
		// MQTT 3.1 has no Session Present: the byte is reserved.
		flags = 1
	}
	if v != V5 {
		return append(dst, byte(TypeConnack)<<4, 2, flags, ConnackReturnCodeV3(p.ReasonCode)), nil
	}
	// The v5 Property Length is always present (3.2.2.3.1).
	s := sizer{t: TypeConnack, n: 2}
	pl := p.Properties.size(&s, ctxConnack)
	n, e := s.remaining()
	if e != nil {
		return dst, e
	}
	dst = appendHeader(dst, TypeConnack, 0, n)
	dst = append(dst, flags, byte(p.ReasonCode))
	return p.Properties.append(dst, pl), nil
}

// Decode decodes a CONNACK body in place.
func (p *Connack) Decode(flags byte, body []byte, v Version) error {
	*p = Connack{}
	return asError(p.decode(flags, body, v))
}

func (p *Connack) decode(flags byte, body []byte, v Version) *Error {
	if e := checkVersion(v); e != nil {
		return e
	}
	if e := checkFlags(TypeConnack, flags); e != nil {
		return e
	}
	r := reader{b: body, t: TypeConnack}
	ack := r.byte("acknowledge flags")
	code := r.byte("reason code")
	if v == V31 {
		ack = 0 // reserved and unused in MQTT 3.1
	}
	if r.err == nil && ack&0xFE != 0 {
		// [MQTT-3.2.2-1] bits 7-1 of the Connect Acknowledge Flags are reserved.
		return errorf(MalformedPacket, "CONNACK: reserved acknowledge flags 0x%02X", ack)
	}
	p.SessionPresent = ack&1 != 0
	p.ReasonCode = ReasonCode(code)
	if v == V5 {
		p.Properties.decode(&r, ctxConnack)
	} else if r.err == nil {
		if int(code) >= len(connackReasonFromV3) {
			// 3.1.1 section 3.2.2.3: return codes 6-255 are reserved.
			return errorf(MalformedPacket, "CONNACK: reserved return code %d", code)
		}
		p.ReasonCode = connackReasonFromV3[code]
	}
	r.end()
	if r.err != nil {
		return r.err
	}
	return p.check(v)
}
