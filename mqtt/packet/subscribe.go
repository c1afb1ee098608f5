package packet

import "github.com/ferry-iot/ferry/mqtt/topic"

// Subscription is one entry of a SUBSCRIBE: a topic filter and its
// Subscription Options (MQTT 5 section 3.8.3.1). NoLocal, RetainAsPublished
// and RetainHandling exist in v5 only.
type Subscription struct {
	Filter            string
	QoS               byte // maximum QoS
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte // 0: send retained on subscribe, 1: only if new, 2: never
}

// Subscribe is the SUBSCRIBE control packet (MQTT 5 section 3.8).
type Subscribe struct {
	PacketID      uint16
	Properties    Properties // v5 only: Subscription Identifier, User Property
	Subscriptions []Subscription
}

// Type returns TypeSubscribe.
func (p *Subscribe) Type() Type { return TypeSubscribe }

// checkFilter validates a topic filter of SUBSCRIBE or UNSUBSCRIBE. In v5 a
// $share/ filter is checked as a Shared Subscription; in 3.1.1 it is an
// ordinary filter. It returns whether the filter is shared.
func checkFilter(t Type, f string, v Version) (bool, *Error) {
	if v == V5 {
		_, _, shared, err := topic.ParseShared(f)
		if err != nil {
			// [MQTT-4.7.1-1] [MQTT-4.7.1-2] wildcards; [MQTT-4.7.3-1]
			// non-empty; [MQTT-4.8.2-1] [MQTT-4.8.2-2] share name.
			return shared, errorf(TopicFilterInvalid, "%v: %v", t, err)
		}
		return shared, nil
	}
	if err := topic.ValidateFilter(f); err != nil {
		return false, errorf(TopicFilterInvalid, "%v: %v", t, err)
	}
	return false, nil
}

func (p *Subscribe) check(v Version) *Error {
	if p.PacketID == 0 {
		// [MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1])
		return errorf(ProtocolError, "SUBSCRIBE: packet identifier 0")
	}
	if len(p.Subscriptions) == 0 {
		// [MQTT-3.8.3-2] (3.1.1: [MQTT-3.8.3-3]) at least one filter.
		return errorf(ProtocolError, "SUBSCRIBE: no topic filter")
	}
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		if s.QoS > 2 {
			// 3.8.3.1 (v5 calls it a Protocol Error; 3.1.1 [MQTT-3-8.3-4]
			// malformed): Malformed Packet in both, as for retain handling.
			return errorf(MalformedPacket, "SUBSCRIBE: %q: QoS 3", s.Filter)
		}
		if s.RetainHandling > 2 {
			// 3.8.3.1: "It is a Protocol Error to send a Retain Handling
			// value of 3"; the packet-api contract makes it Malformed
			// Packet, like the reserved option bits [MQTT-3.8.3-5].
			return errorf(MalformedPacket, "SUBSCRIBE: %q: retain handling 3", s.Filter)
		}
		shared, e := checkFilter(TypeSubscribe, s.Filter, v)
		if e != nil {
			return e
		}
		if shared && s.NoLocal && v == V5 {
			// [MQTT-3.8.3-4] No Local on a Shared Subscription.
			return errorf(ProtocolError, "SUBSCRIBE: %q: No Local on a shared subscription", s.Filter)
		}
	}
	return nil
}

// Append appends the encoded packet to dst. In 3.1.1 the properties and the
// v5 subscription options (NoLocal, RetainAsPublished, RetainHandling) are
// left out.
func (p *Subscribe) Append(dst []byte, v Version) ([]byte, error) {
	if e := checkVersion(v); e != nil {
		return dst, e
	}
	if e := p.check(v); e != nil {
		return dst, e
	}
	s := sizer{t: TypeSubscribe, n: 2}
	pl := 0
	if v == V5 {
		pl = p.Properties.size(&s, ctxSubscribe)
	}
	for i := range p.Subscriptions {
		s.str(p.Subscriptions[i].Filter, "topic filter")
		s.n++
	}
	n, e := s.remaining()
	if e != nil {
		return dst, e
	}
	dst = appendHeader(dst, TypeSubscribe, 0b0010, n)
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = p.Properties.append(dst, pl)
	}
	for i := range p.Subscriptions {
		sub := &p.Subscriptions[i]
		opts := sub.QoS
		if v == V5 {
			if sub.NoLocal {
				opts |= 1 << 2
			}
			if sub.RetainAsPublished {
				opts |= 1 << 3
			}
			opts |= sub.RetainHandling << 4
		}
		dst = append(appendString(dst, sub.Filter), opts)
	}
	return dst, nil
}

// Decode decodes a SUBSCRIBE body in place.
func (p *Subscribe) Decode(flags byte, body []byte, v Version) error {
	*p = Subscribe{}
	return asError(p.decode(flags, body, v))
}

func (p *Subscribe) decode(flags byte, body []byte, v Version) *Error {
	if e := checkVersion(v); e != nil {
		return e
	}
	if e := checkFlags(TypeSubscribe, flags); e != nil {
		return e
	}
	r := reader{b: body, t: TypeSubscribe}
	p.PacketID = r.uint16("packet identifier")
	if v == V5 {
		p.Properties.decode(&r, ctxSubscribe)
	}
	for r.err == nil && r.len() > 0 {
		f := r.string("topic filter")
		opts := r.byte("subscription options")
		if r.err != nil {
			break
		}
		reserved := byte(0b1111_1100) // 3.1.1: [MQTT-3.8.3-4] bits 7-2 reserved
		if v == V5 {
			reserved = 0b1100_0000 // [MQTT-3.8.3-5] bits 7-6 reserved
		}
		if opts&reserved != 0 {
			return errorf(MalformedPacket, "SUBSCRIBE: %q: reserved subscription option bits 0x%02X", f, opts)
		}
		p.Subscriptions = append(p.Subscriptions, Subscription{
			Filter:            f,
			QoS:               opts & 0b11,
			NoLocal:           opts&(1<<2) != 0,
			RetainAsPublished: opts&(1<<3) != 0,
			RetainHandling:    opts >> 4 & 0b11,
		})
	}
	if r.err != nil {
		return r.err
	}
	return p.check(v)
}
