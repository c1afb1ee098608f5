package packet

import "strings"

// UserProperty is a name/value pair of the MQTT 5 User Property (0x26).
type UserProperty struct{ Key, Value string }

// Properties holds MQTT 5 properties (section 2.2.2). Pointer = present.
// Empty string/nil slice = absent: a zero-length string or binary property on
// the wire decodes as absent and is not re-encoded.
//
// The decoder gives all the pointer fields of one Properties a single shared
// backing allocation; treat the pointed-to values as read-only.
type Properties struct {
	PayloadFormat          *byte
	MessageExpiry          *uint32
	ContentType            string
	ResponseTopic          string
	CorrelationData        []byte
	SubscriptionIdentifier []uint32 // PUBLISH may carry several; SUBSCRIBE at most one
	SessionExpiryInterval  *uint32
	AssignedClientID       string
	ServerKeepAlive        *uint16
	AuthMethod             string
	AuthData               []byte
	RequestProblemInfo     *byte
	WillDelayInterval      *uint32
	RequestResponseInfo    *byte
	ResponseInfo           string
	ServerReference        string
	ReasonString           string
	ReceiveMaximum         *uint16
	TopicAliasMaximum      *uint16
	TopicAlias             *uint16
	MaximumQoS             *byte
	RetainAvailable        *byte
	User                   []UserProperty // order kept
	MaximumPacketSize      *uint32
	WildcardSubAvailable   *byte
	SubIDAvailable         *byte
	SharedSubAvailable     *byte
}

// Property identifiers (section 2.2.2.2, table 2-4).
const (
	propPayloadFormat          = 0x01
	propMessageExpiry          = 0x02
	propContentType            = 0x03
	propResponseTopic          = 0x08
	propCorrelationData        = 0x09
	propSubscriptionIdentifier = 0x0B
	propSessionExpiryInterval  = 0x11
	propAssignedClientID       = 0x12
	propServerKeepAlive        = 0x13
	propAuthMethod             = 0x15
	propAuthData               = 0x16
	propRequestProblemInfo     = 0x17
	propWillDelayInterval      = 0x18
	propRequestResponseInfo    = 0x19
	propResponseInfo           = 0x1A
	propServerReference        = 0x1C
	propReasonString           = 0x1F
	propReceiveMaximum         = 0x21
	propTopicAliasMaximum      = 0x22
	propTopicAlias             = 0x23
	propMaximumQoS             = 0x24
	propRetainAvailable        = 0x25
	propUser                   = 0x26
	propMaximumPacketSize      = 0x27
	propWildcardSubAvailable   = 0x28
	propSubIDAvailable         = 0x29
	propSharedSubAvailable     = 0x2A
)

// propCtx says where a property list sits: one bit per packet type, plus
// the will properties of CONNECT.
type propCtx uint16

const (
	ctxConnect propCtx = 1 << iota
	ctxConnack
	ctxPublish
	ctxPuback // PUBACK, PUBREC, PUBREL and PUBCOMP
	ctxSubscribe
	ctxSuback
	ctxUnsubscribe
	ctxUnsuback
	ctxDisconnect
	ctxAuth
	ctxWill
	ctxAll = 1<<iota - 1
)

// propDefs: name and allowed places of each property (table 2-4).
var propDefs = [...]struct {
	name string
	ctx  propCtx
}{
	propPayloadFormat:          {"Payload Format Indicator", ctxPublish | ctxWill},
	propMessageExpiry:          {"Message Expiry Interval", ctxPublish | ctxWill},
	propContentType:            {"Content Type", ctxPublish | ctxWill},
	propResponseTopic:          {"Response Topic", ctxPublish | ctxWill},
	propCorrelationData:        {"Correlation Data", ctxPublish | ctxWill},
	propSubscriptionIdentifier: {"Subscription Identifier", ctxPublish | ctxSubscribe},
	propSessionExpiryInterval:  {"Session Expiry Interval", ctxConnect | ctxConnack | ctxDisconnect},
	propAssignedClientID:       {"Assigned Client Identifier", ctxConnack},
	propServerKeepAlive:        {"Server Keep Alive", ctxConnack},
	propAuthMethod:             {"Authentication Method", ctxConnect | ctxConnack | ctxAuth},
	propAuthData:               {"Authentication Data", ctxConnect | ctxConnack | ctxAuth},
	propRequestProblemInfo:     {"Request Problem Information", ctxConnect},
	propWillDelayInterval:      {"Will Delay Interval", ctxWill},
	propRequestResponseInfo:    {"Request Response Information", ctxConnect},
	propResponseInfo:           {"Response Information", ctxConnack},
	propServerReference:        {"Server Reference", ctxConnack | ctxDisconnect},
	propReasonString: {"Reason String", ctxConnack | ctxPuback | ctxSuback | ctxUnsuback |
		ctxDisconnect | ctxAuth},
	propReceiveMaximum:       {"Receive Maximum", ctxConnect | ctxConnack},
	propTopicAliasMaximum:    {"Topic Alias Maximum", ctxConnect | ctxConnack},
	propTopicAlias:           {"Topic Alias", ctxPublish},
	propMaximumQoS:           {"Maximum QoS", ctxConnack},
	propRetainAvailable:      {"Retain Available", ctxConnack},
	propUser:                 {"User Property", ctxAll},
	propMaximumPacketSize:    {"Maximum Packet Size", ctxConnect | ctxConnack},
	propWildcardSubAvailable: {"Wildcard Subscription Available", ctxConnack},
	propSubIDAvailable:       {"Subscription Identifier Available", ctxConnack},
	propSharedSubAvailable:   {"Shared Subscription Available", ctxConnack},
}

// scalars backs the pointer fields of one decoded Properties, so that a
// packet with several numeric properties costs one allocation, not one each.
type scalars struct {
	payloadFormat, requestProblemInfo, requestResponseInfo, maximumQoS byte
	retainAvailable, wildcardSub, subIDAvailable, sharedSub            byte
	serverKeepAlive, receiveMaximum, topicAliasMaximum, topicAlias     uint16
	messageExpiry, sessionExpiry, willDelay, maximumPacketSize         uint32
}

// scalarProps has one bit per property held by pointer, that is backed by
// scalars when decoded.
const scalarProps uint64 = 1<<propPayloadFormat | 1<<propMessageExpiry |
	1<<propSessionExpiryInterval | 1<<propServerKeepAlive | 1<<propRequestProblemInfo |
	1<<propWillDelayInterval | 1<<propRequestResponseInfo | 1<<propReceiveMaximum |
	1<<propTopicAliasMaximum | 1<<propTopicAlias | 1<<propMaximumQoS | 1<<propRetainAvailable |
	1<<propMaximumPacketSize | 1<<propWildcardSubAvailable | 1<<propSubIDAvailable |
	1<<propSharedSubAvailable

// decode reads a Property Length and the properties after it into p, which
// must be zero. ctx is where the list sits; it decides which identifiers
// are allowed.
func (p *Properties) decode(r *reader, ctx propCtx) {
	n := r.varInt("property length")
	if r.err != nil {
		return
	}
	if n == 0 {
		return // the common case, kept cheap
	}
	if int(n) > r.len() {
		r.truncated("properties")
		return
	}
	end := r.off + int(n)
	pr := reader{b: r.b[:end], off: r.off, t: r.t}
	r.off = end

	var seen uint64
	var sc *scalars
	for pr.err == nil && pr.off < end {
		// The identifier is a Variable Byte Integer, though every defined
		// one fits in its first byte.
		id := pr.varInt("property identifier")
		if pr.err != nil {
			break
		}
		if id >= uint32(len(propDefs)) || propDefs[id].name == "" {
			// Section 2.2.2.2: an identifier not defined for the packet.
			pr.fail(errorf(ProtocolError, "%v: unknown property identifier 0x%02X", pr.t, id))
			break
		}
		name := propDefs[id].name
		if propDefs[id].ctx&ctx == 0 {
			pr.fail(errorf(ProtocolError, "%v: property %s not allowed here", pr.t, name))
			break
		}
		// "It is a Protocol Error to include <property> more than once",
		// repeated in each property's section, except User Property and
		// the Subscription Identifiers of PUBLISH [MQTT-3.3.4-3].
		if seen&(1<<id) != 0 && id != propUser && (id != propSubscriptionIdentifier || ctx != ctxPublish) {
			pr.fail(errorf(ProtocolError, "%v: property %s more than once", pr.t, name))
			break
		}
		seen |= 1 << id
		if sc == nil && scalarProps&(1<<id) != 0 {
			sc = new(scalars)
		}
		switch id {
		case propPayloadFormat:
			sc.payloadFormat = pr.byte(name)
			p.PayloadFormat = &sc.payloadFormat
		case propMessageExpiry:
			sc.messageExpiry = pr.uint32(name)
			p.MessageExpiry = &sc.messageExpiry
		case propContentType:
			p.ContentType = pr.string(name)
		case propResponseTopic:
			p.ResponseTopic = pr.string(name)
		case propCorrelationData:
			p.CorrelationData = pr.binary(name)
		case propSubscriptionIdentifier:
			p.SubscriptionIdentifier = append(p.SubscriptionIdentifier, pr.varInt(name))
		case propSessionExpiryInterval:
			sc.sessionExpiry = pr.uint32(name)
			p.SessionExpiryInterval = &sc.sessionExpiry
		case propAssignedClientID:
			p.AssignedClientID = pr.string(name)
		case propServerKeepAlive:
			sc.serverKeepAlive = pr.uint16(name)
			p.ServerKeepAlive = &sc.serverKeepAlive
		case propAuthMethod:
			p.AuthMethod = pr.string(name)
		case propAuthData:
			p.AuthData = pr.binary(name)
		case propRequestProblemInfo:
			sc.requestProblemInfo = pr.byte(name)
			p.RequestProblemInfo = &sc.requestProblemInfo
		case propWillDelayInterval:
			sc.willDelay = pr.uint32(name)
			p.WillDelayInterval = &sc.willDelay
		case propRequestResponseInfo:
			sc.requestResponseInfo = pr.byte(name)
			p.RequestResponseInfo = &sc.requestResponseInfo
		case propResponseInfo:
			p.ResponseInfo = pr.string(name)
		case propServerReference:
			p.ServerReference = pr.string(name)
		case propReasonString:
			p.ReasonString = pr.string(name)
		case propReceiveMaximum:
			sc.receiveMaximum = pr.uint16(name)
			p.ReceiveMaximum = &sc.receiveMaximum
		case propTopicAliasMaximum:
			sc.topicAliasMaximum = pr.uint16(name)
			p.TopicAliasMaximum = &sc.topicAliasMaximum
		case propTopicAlias:
			sc.topicAlias = pr.uint16(name)
			p.TopicAlias = &sc.topicAlias
		case propMaximumQoS:
			sc.maximumQoS = pr.byte(name)
			p.MaximumQoS = &sc.maximumQoS
		case propRetainAvailable:
			sc.retainAvailable = pr.byte(name)
			p.RetainAvailable = &sc.retainAvailable
		case propUser:
			k := pr.string(name + " name")
			v := pr.string(name + " value")
			p.User = append(p.User, UserProperty{Key: k, Value: v})
		case propMaximumPacketSize:
			sc.maximumPacketSize = pr.uint32(name)
			p.MaximumPacketSize = &sc.maximumPacketSize
		case propWildcardSubAvailable:
			sc.wildcardSub = pr.byte(name)
			p.WildcardSubAvailable = &sc.wildcardSub
		case propSubIDAvailable:
			sc.subIDAvailable = pr.byte(name)
			p.SubIDAvailable = &sc.subIDAvailable
		case propSharedSubAvailable:
			sc.sharedSub = pr.byte(name)
			p.SharedSubAvailable = &sc.sharedSub
		}
	}
	r.fail(pr.err)
	if r.err == nil {
		r.fail(p.check(r.t, ctx))
	}
}

// present returns one bit per property identifier that p carries.
func (p *Properties) present() uint64 {
	var m uint64
	set := func(ok bool, id uint) {
		if ok {
			m |= 1 << id
		}
	}
	set(p.PayloadFormat != nil, propPayloadFormat)
	set(p.MessageExpiry != nil, propMessageExpiry)
	set(p.ContentType != "", propContentType)
	set(p.ResponseTopic != "", propResponseTopic)
	set(len(p.CorrelationData) != 0, propCorrelationData)
	set(len(p.SubscriptionIdentifier) != 0, propSubscriptionIdentifier)
	set(p.SessionExpiryInterval != nil, propSessionExpiryInterval)
	set(p.AssignedClientID != "", propAssignedClientID)
	set(p.ServerKeepAlive != nil, propServerKeepAlive)
	set(p.AuthMethod != "", propAuthMethod)
	set(len(p.AuthData) != 0, propAuthData)
	set(p.RequestProblemInfo != nil, propRequestProblemInfo)
	set(p.WillDelayInterval != nil, propWillDelayInterval)
	set(p.RequestResponseInfo != nil, propRequestResponseInfo)
	set(p.ResponseInfo != "", propResponseInfo)
	set(p.ServerReference != "", propServerReference)
	set(p.ReasonString != "", propReasonString)
	set(p.ReceiveMaximum != nil, propReceiveMaximum)
	set(p.TopicAliasMaximum != nil, propTopicAliasMaximum)
	set(p.TopicAlias != nil, propTopicAlias)
	set(p.MaximumQoS != nil, propMaximumQoS)
	set(p.RetainAvailable != nil, propRetainAvailable)
	set(len(p.User) != 0, propUser)
	set(p.MaximumPacketSize != nil, propMaximumPacketSize)
	set(p.WildcardSubAvailable != nil, propWildcardSubAvailable)
	set(p.SubIDAvailable != nil, propSubIDAvailable)
	set(p.SharedSubAvailable != nil, propSharedSubAvailable)
	return m
}

// check applies the rules on property values and places that do not depend
// on the wire form; decoders and encoders share it, so whatever decodes also
// encodes.
func (p *Properties) check(t Type, ctx propCtx) *Error {
	m := p.present()
	if m == 0 {
		return nil
	}
	for id := range propDefs {
		if m&(1<<id) != 0 && propDefs[id].ctx&ctx == 0 {
			return errorf(ProtocolError, "%v: property %s not allowed here", t, propDefs[id].name)
		}
	}
	bool01 := func(v *byte, id int) *Error {
		if v != nil && *v > 1 {
			return errorf(ProtocolError, "%v: %s is %d, want 0 or 1", t, propDefs[id].name, *v)
		}
		return nil
	}
	for _, b := range [...]struct {
		v  *byte
		id int
	}{
		{p.PayloadFormat, propPayloadFormat},             // 3.3.2.3.2
		{p.RequestProblemInfo, propRequestProblemInfo},   // 3.1.2.11.7
		{p.RequestResponseInfo, propRequestResponseInfo}, // 3.1.2.11.6
		{p.MaximumQoS, propMaximumQoS},                   // 3.2.2.3.4
		{p.RetainAvailable, propRetainAvailable},         // 3.2.2.3.5
		{p.WildcardSubAvailable, propWildcardSubAvailable},
		{p.SubIDAvailable, propSubIDAvailable},
		{p.SharedSubAvailable, propSharedSubAvailable},
	} {
		if e := bool01(b.v, b.id); e != nil {
			return e
		}
	}
	if p.ReceiveMaximum != nil && *p.ReceiveMaximum == 0 {
		// 3.1.2.11.3, 3.2.2.3.3: "It is a Protocol Error to ... have the value 0".
		return errorf(ProtocolError, "%v: Receive Maximum is 0", t)
	}
	if p.MaximumPacketSize != nil && *p.MaximumPacketSize == 0 {
		// 3.1.2.11.4, 3.2.2.3.6
		return errorf(ProtocolError, "%v: Maximum Packet Size is 0", t)
	}
	if p.TopicAlias != nil && *p.TopicAlias == 0 {
		// [MQTT-3.3.2-8] a Topic Alias of 0 is not permitted.
		return errorf(TopicAliasInvalid, "%v: Topic Alias is 0", t)
	}
	for _, id := range p.SubscriptionIdentifier {
		if id == 0 || id > MaxVarInt {
			// 3.8.2.1.2: a value of 0 is a Protocol Error; 1..268435455.
			return errorf(ProtocolError, "%v: Subscription Identifier %d out of range", t, id)
		}
	}
	if ctx != ctxPublish && len(p.SubscriptionIdentifier) > 1 {
		return errorf(ProtocolError, "%v: more than one Subscription Identifier", t)
	}
	if len(p.AuthData) != 0 && p.AuthMethod == "" {
		// 3.1.2.11.10, 3.2.2.3.17: Authentication Data without Method.
		return errorf(ProtocolError, "%v: Authentication Data without Authentication Method", t)
	}
	if strings.ContainsAny(p.ResponseTopic, "+#") {
		// [MQTT-3.3.2-14] the Response Topic is a Topic Name, no wildcards.
		return errorf(ProtocolError, "%v: Response Topic %q contains a wildcard", t, p.ResponseTopic)
	}
	return nil
}

// size adds the encoded size of p, Property Length included, to s, checks
// that p may be encoded in ctx, and returns the Property Length.
func (p *Properties) size(s *sizer, ctx propCtx) int {
	if p.present() == 0 {
		s.n++ // Property Length 0
		return 0
	}
	if e := p.check(s.t, ctx); e != nil {
		s.fail(e)
		return 0
	}
	start := s.n
	n := 0
	for _, b := range [...]bool{
		p.PayloadFormat != nil, p.RequestProblemInfo != nil, p.RequestResponseInfo != nil,
		p.MaximumQoS != nil, p.RetainAvailable != nil, p.WildcardSubAvailable != nil,
		p.SubIDAvailable != nil, p.SharedSubAvailable != nil,
	} {
		if b {
			n += 2
		}
	}
	for _, b := range [...]bool{
		p.ServerKeepAlive != nil, p.ReceiveMaximum != nil, p.TopicAliasMaximum != nil,
		p.TopicAlias != nil,
	} {
		if b {
			n += 3
		}
	}
	for _, b := range [...]bool{
		p.MessageExpiry != nil, p.SessionExpiryInterval != nil, p.WillDelayInterval != nil,
		p.MaximumPacketSize != nil,
	} {
		if b {
			n += 5
		}
	}
	for _, id := range p.SubscriptionIdentifier {
		n += 1 + varIntLen(id)
	}
	s.n += n
	for _, f := range [...]struct {
		v  string
		id int
	}{
		{p.ContentType, propContentType}, {p.ResponseTopic, propResponseTopic},
		{p.AssignedClientID, propAssignedClientID}, {p.AuthMethod, propAuthMethod},
		{p.ResponseInfo, propResponseInfo}, {p.ServerReference, propServerReference},
		{p.ReasonString, propReasonString},
	} {
		if f.v != "" {
			s.n++
			s.str(f.v, propDefs[f.id].name)
		}
	}
	if len(p.CorrelationData) != 0 {
		s.n++
		s.bin(p.CorrelationData, propDefs[propCorrelationData].name)
	}
	if len(p.AuthData) != 0 {
		s.n++
		s.bin(p.AuthData, propDefs[propAuthData].name)
	}
	for _, u := range p.User {
		s.n++
		s.str(u.Key, "User Property name")
		s.str(u.Value, "User Property value")
	}
	n = s.n - start
	s.n += varIntLen(uint32(n))
	return n
}

// append writes the Property Length n (from size) and the properties, in
// identifier order.
func (p *Properties) append(dst []byte, n int) []byte {
	dst = AppendVarInt(dst, uint32(n))
	if n == 0 {
		return dst
	}
	u8 := func(id byte, v *byte) {
		if v != nil {
			dst = append(dst, id, *v)
		}
	}
	u16 := func(id byte, v *uint16) {
		if v != nil {
			dst = appendUint16(append(dst, id), *v)
		}
	}
	u32 := func(id byte, v *uint32) {
		if v != nil {
			dst = appendUint32(append(dst, id), *v)
		}
	}
	str := func(id byte, v string) {
		if v != "" {
			dst = appendString(append(dst, id), v)
		}
	}
	bin := func(id byte, v []byte) {
		if len(v) != 0 {
			dst = appendString(append(dst, id), v)
		}
	}
	u8(propPayloadFormat, p.PayloadFormat)
	u32(propMessageExpiry, p.MessageExpiry)
	str(propContentType, p.ContentType)
	str(propResponseTopic, p.ResponseTopic)
	bin(propCorrelationData, p.CorrelationData)
	for _, id := range p.SubscriptionIdentifier {
		dst = AppendVarInt(append(dst, propSubscriptionIdentifier), id)
	}
	u32(propSessionExpiryInterval, p.SessionExpiryInterval)
	str(propAssignedClientID, p.AssignedClientID)
	u16(propServerKeepAlive, p.ServerKeepAlive)
	str(propAuthMethod, p.AuthMethod)
	bin(propAuthData, p.AuthData)
	u8(propRequestProblemInfo, p.RequestProblemInfo)
	u32(propWillDelayInterval, p.WillDelayInterval)
	u8(propRequestResponseInfo, p.RequestResponseInfo)
	str(propResponseInfo, p.ResponseInfo)
	str(propServerReference, p.ServerReference)
	str(propReasonString, p.ReasonString)
	u16(propReceiveMaximum, p.ReceiveMaximum)
	u16(propTopicAliasMaximum, p.TopicAliasMaximum)
	u16(propTopicAlias, p.TopicAlias)
	u8(propMaximumQoS, p.MaximumQoS)
	u8(propRetainAvailable, p.RetainAvailable)
	for _, u := range p.User {
		dst = appendString(appendString(append(dst, propUser), u.Key), u.Value)
	}
	u32(propMaximumPacketSize, p.MaximumPacketSize)
	u8(propWildcardSubAvailable, p.WildcardSubAvailable)
	u8(propSubIDAvailable, p.SubIDAvailable)
	u8(propSharedSubAvailable, p.SharedSubAvailable)
	return dst
}
