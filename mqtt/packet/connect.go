package packet

import "unicode/utf8"

// Connect is the CONNECT control packet (MQTT 5 section 3.1, 3.1.1 section
// 3.1, and the MQTT 3.1 "MQIsdp" variant).
type Connect struct {
	ProtocolName string  // "MQTT", or "MQIsdp" for 3.1; set by Decode, derived from v by Append
	Version      Version // set by Decode; Append uses its v argument instead
	CleanStart   bool    // clean session in 3.1.1
	KeepAlive    uint16  // seconds
	ClientID     string
	Properties   Properties // v5 only

	WillFlag       bool
	WillQoS        byte
	WillRetain     bool
	WillTopic      string
	WillPayload    []byte
	WillProperties Properties // v5 only

	UsernameFlag bool
	Username     string
	PasswordFlag bool
	Password     []byte
}

// Type returns TypeConnect.
func (p *Connect) Type() Type { return TypeConnect }

// Connect flag bits (3.1.2.3).
const (
	connectReserved   = 0x01
	connectCleanStart = 0x02
	connectWill       = 0x04
	connectWillQoS    = 0x18
	connectWillRetain = 0x20
	connectPassword   = 0x40
	connectUsername   = 0x80
)

// maxClientIDV31 is the MQTT 3.1 limit: "between 1 and 23 characters".
const maxClientIDV31 = 23

// checkFlags holds the rules on the Connect Flags alone.
func (p *Connect) checkFlags(v Version) *Error {
	if p.WillQoS > 2 {
		// [MQTT-3.1.2-14] Will QoS MUST NOT be 3 (same clause in 3.1.1).
		return errorf(MalformedPacket, "CONNECT: will QoS 3")
	}
	if !p.WillFlag && (p.WillQoS != 0 || p.WillRetain) {
		// [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] (same clauses in
		// 3.1.1) without a will, Will QoS and Will Retain are 0.
		return errorf(MalformedPacket, "CONNECT: will QoS or retain set without will flag")
	}
	if v != V5 && p.PasswordFlag && !p.UsernameFlag {
		// 3.1.1 [MQTT-3.1.2-22]: no password without a user name (v5
		// allows it).
		return errorf(MalformedPacket, "CONNECT: password flag without user name flag")
	}
	return nil
}

// check holds the rules shared by encoder and decoder, for version v.
func (p *Connect) check(v Version) *Error {
	if e := p.checkFlags(v); e != nil {
		return e
	}
	if !p.UsernameFlag && p.Username != "" {
		// [MQTT-3.1.2-18] no user name in the payload when the flag is 0;
		// an encoder-only condition.
		return errorf(ProtocolError, "CONNECT: user name set without user name flag")
	}
	if !p.PasswordFlag && len(p.Password) != 0 {
		// [MQTT-3.1.2-20], as above.
		return errorf(ProtocolError, "CONNECT: password set without password flag")
	}
	if p.WillFlag {
		// [MQTT-3.1.3-9] (3.1.1: [MQTT-3.1.3-10]) the Will Topic is a
		// topic name: no wildcard [MQTT-4.7.0-1], at least one character
		// [MQTT-4.7.3-1].
		if p.WillTopic == "" {
			return errorf(TopicNameInvalid, "CONNECT: empty will topic")
		}
		if e := checkTopicName(TypeConnect, "will topic", p.WillTopic); e != nil {
			return e
		}
	}
	switch v {
	case V31:
		// MQTT 3.1 section 3.1: the Client Identifier is 1 to 23 characters.
		if n := utf8.RuneCountInString(p.ClientID); n < 1 || n > maxClientIDV31 {
			return errorf(ClientIdentifierNotValid, "CONNECT: 3.1 client identifier of %d characters, want 1 to %d", n, maxClientIDV31)
		}
	case V311:
		if p.ClientID == "" && !p.CleanStart {
			// 3.1.1 [MQTT-3.1.3-7] [MQTT-3.1.3-8]: a zero-byte ClientId
			// needs CleanSession 1; reply with return code 2.
			return errorf(ClientIdentifierNotValid, "CONNECT: empty client identifier without clean session")
		}
	}
	// v5 [MQTT-3.1.3-6]: any client identifier, empty included, is
	// syntactically valid; the server decides what it accepts.
	return nil
}

// Append appends the encoded packet to dst for version v. The protocol name
// and level come from v ("MQIsdp" for V31, "MQTT" otherwise); the
// ProtocolName and Version fields are ignored. In 3.1.1 the properties and
// will properties are left out.
func (p *Connect) Append(dst []byte, v Version) ([]byte, error) {
	if e := checkVersion(v); e != nil {
		return dst, e
	}
	if e := p.check(v); e != nil {
		return dst, e
	}
	name := "MQTT"
	if v == V31 {
		name = "MQIsdp"
	}
	s := sizer{t: TypeConnect, n: 2 + len(name) + 1 + 1 + 2}
	pl, wpl := 0, 0
	if v == V5 {
		pl = p.Properties.size(&s, ctxConnect)
	}
	s.str(p.ClientID, "client identifier")
	var flags byte
	if p.CleanStart {
		flags |= connectCleanStart
	}
	if p.WillFlag {
		flags |= connectWill | p.WillQoS<<3
		if p.WillRetain {
			flags |= connectWillRetain
		}
		if v == V5 {
			wpl = p.WillProperties.size(&s, ctxWill)
		}
		s.str(p.WillTopic, "will topic")
		s.bin(p.WillPayload, "will payload")
	}
	if p.UsernameFlag {
		flags |= connectUsername
		s.str(p.Username, "user name")
	}
	if p.PasswordFlag {
		flags |= connectPassword
		s.bin(p.Password, "password")
	}
	n, e := s.remaining()
	if e != nil {
		return dst, e
	}
	dst = appendHeader(dst, TypeConnect, 0, n)
	dst = appendString(dst, name)
	dst = append(dst, byte(v), flags)
	dst = appendUint16(dst, p.KeepAlive)
	if v == V5 {
		dst = p.Properties.append(dst, pl)
	}
	dst = appendString(dst, p.ClientID)
	if p.WillFlag {
		if v == V5 {
			dst = p.WillProperties.append(dst, wpl)
		}
		dst = appendString(dst, p.WillTopic)
		dst = appendString(dst, p.WillPayload)
	}
	if p.UsernameFlag {
		dst = appendString(dst, p.Username)
	}
	if p.PasswordFlag {
		dst = appendString(dst, p.Password)
	}
	return dst, nil
}

// Decode decodes a CONNECT body in place. v is ignored: the packet states its
// own protocol level. On failure the *Error's Version field says in which
// version to send the CONNACK (0: close without one).
func (p *Connect) Decode(flags byte, body []byte, v Version) error {
	*p = Connect{}
	return asError(p.decode(flags, body))
}

func (p *Connect) decode(flags byte, body []byte) *Error {
	if e := checkFlags(TypeConnect, flags); e != nil {
		return e
	}
	r := reader{b: body, t: TypeConnect}
	p.ProtocolName = r.string("protocol name")
	level := r.byte("protocol level")
	if r.err != nil {
		return r.err
	}
	p.Version = Version(level)
	switch {
	case p.ProtocolName == "MQTT" && (p.Version == V311 || p.Version == V5):
	case p.ProtocolName == "MQIsdp" && p.Version == V31:
	default:
		// [MQTT-3.1.2-1] the protocol name; [MQTT-3.1.2-2] (3.1.1: the
		// same) an unsupported level is refused with 0x84 (3.1.1: return
		// code 1), sent as a 3.1.1 CONNACK that every client can parse.
		e := errorf(UnsupportedProtocolVersion, "CONNECT: protocol %q level %d", p.ProtocolName, level)
		e.Version = V311
		return e
	}
	e := p.decodeRest(&r, p.Version)
	if e != nil && (p.Version == V5 || e.Code == ClientIdentifierNotValid) {
		// See Error.Version: v5 reports every failure in a CONNACK, 3.1.1
		// only the ones it has a return code for.
		e.Version = p.Version
	}
	return e
}

// decodeRest decodes what follows the protocol level.
func (p *Connect) decodeRest(r *reader, v Version) *Error {
	cf := r.byte("connect flags")
	p.KeepAlive = r.uint16("keep alive")
	if r.err != nil {
		return r.err
	}
	if cf&connectReserved != 0 {
		// [MQTT-3.1.2-3] the reserved flag MUST be 0.
		return errorf(MalformedPacket, "CONNECT: reserved connect flag set")
	}
	p.CleanStart = cf&connectCleanStart != 0
	p.WillFlag = cf&connectWill != 0
	p.WillQoS = cf & connectWillQoS >> 3
	p.WillRetain = cf&connectWillRetain != 0
	p.PasswordFlag = cf&connectPassword != 0
	p.UsernameFlag = cf&connectUsername != 0
	// Flag rules before the payload, whose layout they decide.
	if e := p.checkFlags(v); e != nil {
		return e
	}
	if v == V5 {
		p.Properties.decode(r, ctxConnect)
	}
	// [MQTT-3.1.3-1] payload order: Client Identifier, Will Properties,
	// Will Topic, Will Payload, User Name, Password; [MQTT-3.1.3-3] the
	// Client Identifier MUST be present, [MQTT-3.1.3-4] as a UTF-8 string.
	p.ClientID = r.string("client identifier")
	if p.WillFlag {
		// [MQTT-3.1.2-9] will fields present when the flag is set.
		if v == V5 {
			p.WillProperties.decode(r, ctxWill)
		}
		p.WillTopic = r.string("will topic")
		p.WillPayload = r.binary("will payload")
	}
	if p.UsernameFlag {
		p.Username = r.string("user name") // [MQTT-3.1.2-19]
	}
	if p.PasswordFlag {
		p.Password = r.binary("password") // [MQTT-3.1.2-21]
	}
	r.end()
	if r.err != nil {
		return r.err
	}
	return p.check(v)
}
