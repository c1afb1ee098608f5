package packet

// Publish is the PUBLISH control packet (MQTT 5 section 3.3, 3.1.1 section 3.3).
type Publish struct {
	Dup        bool
	QoS        byte
	Retain     bool
	Topic      string // empty only in v5 with a Topic Alias property
	PacketID   uint16 // only when QoS > 0
	Properties Properties
	Payload    []byte
}

// Type returns TypePublish.
func (p *Publish) Type() Type { return TypePublish }

// check holds the rules shared by encoder and decoder, except the topic's
// contents, which checkTopicName scans in the same pass as its UTF-8.
func (p *Publish) check(v Version) *Error {
	if p.QoS > 2 {
		// [MQTT-3.3.1-4] a PUBLISH MUST NOT have both QoS bits set.
		return errorf(MalformedPacket, "PUBLISH: QoS 3")
	}
	if p.Dup && p.QoS == 0 {
		// [MQTT-3.3.1-2] DUP MUST be 0 for QoS 0 messages.
		return errorf(MalformedPacket, "PUBLISH: DUP set on QoS 0")
	}
	if p.QoS > 0 && p.PacketID == 0 {
		// [MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1]) a non-zero Packet Identifier.
		return errorf(ProtocolError, "PUBLISH: packet identifier 0 with QoS %d", p.QoS)
	}
	if p.Topic == "" && (v != V5 || p.Properties.TopicAlias == nil) {
		// [MQTT-3.3.2-1] [MQTT-4.7.3-1]: a topic name is at least one
		// character, except that in v5 a Topic Alias may stand for it
		// (section 3.3.2.3.4).
		return errorf(TopicNameInvalid, "PUBLISH: empty topic name")
	}
	return nil
}

// Append appends the encoded packet to dst. It allocates only when dst must
// grow. In 3.1.1 the properties are left out.
func (p *Publish) Append(dst []byte, v Version) ([]byte, error) {
	if e := checkVersion(v); e != nil {
		return dst, e
	}
	if e := p.check(v); e != nil {
		return dst, e
	}
	if e := checkTopicName(TypePublish, "topic name", p.Topic); e != nil {
		return dst, e
	}
	if len(p.Topic) > 65535 {
		return dst, errorf(MalformedPacket, "PUBLISH: topic name of %d bytes", len(p.Topic))
	}
	s := sizer{t: TypePublish, n: 2 + len(p.Topic)}
	if p.QoS > 0 {
		s.n += 2
	}
	pl := 0
	if v == V5 {
		pl = p.Properties.size(&s, ctxPublish)
	}
	s.n += len(p.Payload)
	n, e := s.remaining()
	if e != nil {
		return dst, e
	}
	flags := p.QoS << 1
	if p.Dup {
		flags |= 0b1000
	}
	if p.Retain {
		flags |= 0b0001
	}
	dst = appendHeader(dst, TypePublish, flags, n)
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendUint16(dst, p.PacketID)
	}
	if v == V5 {
		dst = p.Properties.append(dst, pl)
	}
	return append(dst, p.Payload...), nil
}

// Decode decodes a PUBLISH body in place. flags is the low nibble of the
// fixed header. Payload aliases body. Without properties it allocates only
// the topic string.
func (p *Publish) Decode(flags byte, body []byte, v Version) error {
	return asError(p.decode(flags, body, v))
}

func (p *Publish) decode(flags byte, body []byte, v Version) *Error {
	*p = Publish{
		Dup:    flags&0b1000 != 0,
		QoS:    flags >> 1 & 0b11,
		Retain: flags&0b0001 != 0,
	}
	if e := checkVersion(v); e != nil {
		return e
	}
	// Flag rules first: with QoS 3 the layout of the rest is unknown.
	if p.QoS == 3 || (p.Dup && p.QoS == 0) {
		return p.check(v)
	}
	r := reader{b: body, t: TypePublish}
	topic := r.binary("topic name")
	if p.QoS > 0 {
		p.PacketID = r.uint16("packet identifier")
	}
	if v == V5 {
		p.Properties.decode(&r, ctxPublish)
	}
	p.Payload = r.rest()
	if r.err != nil {
		return r.err
	}
	// The topic is converted before it is checked so that the check runs
	// on a string, as in Append; on failure the copy is garbage.
	p.Topic = string(topic)
	if e := checkTopicName(TypePublish, "topic name", p.Topic); e != nil {
		return e
	}
	return p.check(v)
}
