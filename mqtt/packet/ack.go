package packet

// The four QoS 1/2 acknowledgements share one layout (MQTT 5 sections
// 3.4-3.7): Packet Identifier, then in v5 an optional Reason Code and optional
// properties. They differ in fixed header flags (PUBREL has 0b0010) and in
// the reason codes they may carry.

// Puback is the PUBACK control packet (QoS 1 acknowledgement).
type Puback struct {
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Properties Properties // v5 only
}

// Pubrec is the PUBREC control packet (QoS 2 delivery part 1).
type Pubrec struct {
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Properties Properties // v5 only
}

// Pubrel is the PUBREL control packet (QoS 2 delivery part 2).
type Pubrel struct {
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Properties Properties // v5 only
}

// Pubcomp is the PUBCOMP control packet (QoS 2 delivery part 3).
type Pubcomp struct {
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Properties Properties // v5 only
}

// Type returns TypePuback.
func (p *Puback) Type() Type { return TypePuback }

// Type returns TypePubrec.
func (p *Pubrec) Type() Type { return TypePubrec }

// Type returns TypePubrel.
func (p *Pubrel) Type() Type { return TypePubrel }

// Type returns TypePubcomp.
func (p *Pubcomp) Type() Type { return TypePubcomp }

// Append appends the encoded packet to dst. In 3.1.1 the reason code and
// properties are left out; in v5 they are left out when they are Success and
// empty (4 bytes in all).
func (p *Puback) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, v, TypePuback, p.PacketID, p.ReasonCode, &p.Properties)
}

// Append appends the encoded packet to dst; see Puback.Append.
func (p *Pubrec) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, v, TypePubrec, p.PacketID, p.ReasonCode, &p.Properties)
}

// Append appends the encoded packet to dst; see Puback.Append.
func (p *Pubrel) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, v, TypePubrel, p.PacketID, p.ReasonCode, &p.Properties)
}

// Append appends the encoded packet to dst; see Puback.Append.
func (p *Pubcomp) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, v, TypePubcomp, p.PacketID, p.ReasonCode, &p.Properties)
}

// Decode decodes a PUBACK body in place.
func (p *Puback) Decode(flags byte, body []byte, v Version) error {
	*p = Puback{}
	return asError(decodeAck(flags, body, v, TypePuback, &p.PacketID, &p.ReasonCode, &p.Properties))
}

// Decode decodes a PUBREC body in place.
func (p *Pubrec) Decode(flags byte, body []byte, v Version) error {
	*p = Pubrec{}
	return asError(decodeAck(flags, body, v, TypePubrec, &p.PacketID, &p.ReasonCode, &p.Properties))
}

// Decode decodes a PUBREL body in place.
func (p *Pubrel) Decode(flags byte, body []byte, v Version) error {
	*p = Pubrel{}
	return asError(decodeAck(flags, body, v, TypePubrel, &p.PacketID, &p.ReasonCode, &p.Properties))
}

// Decode decodes a PUBCOMP body in place.
func (p *Pubcomp) Decode(flags byte, body []byte, v Version) error {
	*p = Pubcomp{}
	return asError(decodeAck(flags, body, v, TypePubcomp, &p.PacketID, &p.ReasonCode, &p.Properties))
}

// ackCodes returns the reason codes allowed for an acknowledgement type.
func ackCodes(t Type) *codeSet {
	if t == TypePuback || t == TypePubrec {
		return &pubackCodes // 3.4.2.1, 3.5.2.1
	}
	return &pubrelCodes // 3.6.2.1, 3.7.2.1
}

func ackFlags(t Type) byte {
	if t == TypePubrel {
		return 0b0010 // [MQTT-3.6.1-1]
	}
	return 0
}

func checkAck(t Type, id uint16, code ReasonCode, v Version) *Error {
	if id == 0 {
		// [MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1]) acks carry the non-zero
		// identifier of the packet they acknowledge.
		return errorf(ProtocolError, "%v: packet identifier 0", t)
	}
	if v == V5 {
		return checkCode(t, ackCodes(t), code)
	}
	return nil
}

func appendAck(dst []byte, v Version, t Type, id uint16, code ReasonCode, props *Properties) ([]byte, error) {
	if e := checkVersion(v); e != nil {
		return dst, e
	}
	if e := checkAck(t, id, code, v); e != nil {
		return dst, e
	}
	s := sizer{t: t, n: 2}
	pl := 0
	withCode, withProps := false, false
	if v == V5 {
		pl = props.size(&s, ctxPuback)
		// 3.4.2.1: the Reason Code and Property Length can be omitted if the
		// Reason Code is 0x00 and there are no properties; 3.4.2.2.1: the
		// Property Length alone can be omitted when there are none.
		withProps = pl > 0
		withCode = withProps || code != Success
		s.n = 2
		if withCode {
			s.n++
		}
		if withProps {
			s.n += varIntLen(uint32(pl)) + pl
		}
	}
	n, e := s.remaining()
	if e != nil {
		return dst, e
	}
	dst = appendHeader(dst, t, ackFlags(t), n)
	dst = appendUint16(dst, id)
	if withCode {
		dst = append(dst, byte(code))
	}
	if withProps {
		dst = props.append(dst, pl)
	}
	return dst, nil
}

func decodeAck(flags byte, body []byte, v Version, t Type, id *uint16, code *ReasonCode, props *Properties) *Error {
	if e := checkVersion(v); e != nil {
		return e
	}
	if e := checkFlags(t, flags); e != nil {
		return e
	}
	r := reader{b: body, t: t}
	*id = r.uint16("packet identifier")
	if v == V5 {
		// Remaining Length 2: Success, no properties; 3: a code, no
		// properties (3.4.2.1, 3.4.2.2.1).
		if r.len() > 0 {
			*code = ReasonCode(r.byte("reason code"))
		}
		if r.len() > 0 {
			props.decode(&r, ctxPuback)
		}
	}
	r.end()
	if r.err != nil {
		return r.err
	}
	return checkAck(t, *id, *code, v)
}
