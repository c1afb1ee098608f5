package packet

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// gen builds random valid packets, so that encoders are tested on inputs
// nobody thought of (the fuzz targets do the same for decoders).
type gen struct{ r *rand.Rand }

func (g gen) bool() bool { return g.r.IntN(2) == 0 }

// str returns a short UTF-8 string, sometimes empty, sometimes non-ASCII.
func (g gen) str() string {
	const alphabet = "abcXYZ019 -_/.é€😀$"
	runes := []rune(alphabet)
	var b strings.Builder
	for range g.r.IntN(8) {
		b.WriteRune(runes[g.r.IntN(len(runes))])
	}
	return b.String()
}

func (g gen) level() string {
	s := strings.ReplaceAll(g.str(), "/", "")
	if s == "" {
		s = "x"
	}
	return s
}

func (g gen) topic() string {
	levels := make([]string, 1+g.r.IntN(4))
	for i := range levels {
		levels[i] = g.level()
	}
	return strings.Join(levels, "/")
}

func (g gen) filter() string {
	levels := make([]string, 1+g.r.IntN(4))
	for i := range levels {
		switch g.r.IntN(4) {
		case 0:
			levels[i] = "+"
		default:
			levels[i] = g.level()
		}
	}
	if g.bool() {
		levels[len(levels)-1] = "#"
	}
	return strings.Join(levels, "/")
}

func (g gen) bytes() []byte {
	if g.bool() {
		return nil
	}
	b := make([]byte, 1+g.r.IntN(6))
	for i := range b {
		b[i] = byte(g.r.UintN(256))
	}
	return b
}

func (g gen) id() uint16 { return uint16(1 + g.r.IntN(65535)) }

// props returns random properties valid in ctx.
func (g gen) props(ctx propCtx) Properties {
	var p Properties
	maybe := func(id int) bool { return propDefs[id].ctx&ctx != 0 && g.r.IntN(3) == 0 }
	b01 := func() *byte { return ptr(byte(g.r.IntN(2))) }
	u16 := func() *uint16 { return ptr(uint16(1 + g.r.IntN(65535))) }
	u32 := func() *uint32 { return ptr(g.r.Uint32N(1<<32 - 1)) }
	if maybe(propPayloadFormat) {
		p.PayloadFormat = b01()
	}
	if maybe(propMessageExpiry) {
		p.MessageExpiry = u32()
	}
	if maybe(propContentType) {
		p.ContentType = g.str()
	}
	if maybe(propResponseTopic) {
		p.ResponseTopic = g.topic()
	}
	if maybe(propCorrelationData) {
		p.CorrelationData = g.bytes()
	}
	if maybe(propSubscriptionIdentifier) {
		n := 1
		if ctx == ctxPublish {
			n += g.r.IntN(3)
		}
		for range n {
			p.SubscriptionIdentifier = append(p.SubscriptionIdentifier, 1+g.r.Uint32N(MaxVarInt))
		}
	}
	if maybe(propSessionExpiryInterval) {
		p.SessionExpiryInterval = u32()
	}
	if maybe(propAssignedClientID) {
		p.AssignedClientID = g.str()
	}
	if maybe(propServerKeepAlive) {
		p.ServerKeepAlive = ptr(uint16(g.r.IntN(65536)))
	}
	if maybe(propAuthMethod) || ctx == ctxAuth {
		p.AuthMethod = "m" + g.str()
		if maybe(propAuthData) {
			p.AuthData = g.bytes()
		}
	}
	if maybe(propRequestProblemInfo) {
		p.RequestProblemInfo = b01()
	}
	if maybe(propWillDelayInterval) {
		p.WillDelayInterval = u32()
	}
	if maybe(propRequestResponseInfo) {
		p.RequestResponseInfo = b01()
	}
	if maybe(propResponseInfo) {
		p.ResponseInfo = g.str()
	}
	if maybe(propServerReference) {
		p.ServerReference = g.str()
	}
	if maybe(propReasonString) {
		p.ReasonString = g.str()
	}
	if maybe(propReceiveMaximum) {
		p.ReceiveMaximum = u16()
	}
	if maybe(propTopicAliasMaximum) {
		p.TopicAliasMaximum = ptr(uint16(g.r.IntN(65536)))
	}
	if maybe(propTopicAlias) {
		p.TopicAlias = u16()
	}
	if maybe(propMaximumQoS) {
		p.MaximumQoS = b01()
	}
	if maybe(propRetainAvailable) {
		p.RetainAvailable = b01()
	}
	for maybe(propUser) {
		p.User = append(p.User, UserProperty{g.str(), g.str()})
	}
	if maybe(propMaximumPacketSize) {
		p.MaximumPacketSize = ptr(1 + g.r.Uint32N(1<<32-2))
	}
	if maybe(propWildcardSubAvailable) {
		p.WildcardSubAvailable = b01()
	}
	if maybe(propSubIDAvailable) {
		p.SubIDAvailable = b01()
	}
	if maybe(propSharedSubAvailable) {
		p.SharedSubAvailable = b01()
	}
	return p
}

func (g gen) code(set *codeSet) ReasonCode {
	for {
		if c := ReasonCode(g.r.UintN(256)); set.has(c) {
			return c
		}
	}
}

func (g gen) packet(t Type) Packet {
	switch t {
	case TypeConnect:
		p := &Connect{CleanStart: true, KeepAlive: uint16(g.r.IntN(65536)), ClientID: "c" + g.str(),
			Properties: g.props(ctxConnect)}
		if g.bool() {
			p.WillFlag, p.WillQoS, p.WillRetain = true, byte(g.r.IntN(3)), g.bool()
			p.WillTopic, p.WillPayload, p.WillProperties = g.topic(), g.bytes(), g.props(ctxWill)
		}
		if g.bool() {
			p.UsernameFlag, p.Username = true, g.str()
			if g.bool() {
				p.PasswordFlag, p.Password = true, g.bytes()
			}
		}
		return p
	case TypeConnack:
		p := &Connack{ReasonCode: g.code(&connackCodes), Properties: g.props(ctxConnack)}
		p.SessionPresent = p.ReasonCode == Success && g.bool()
		return p
	case TypePublish:
		p := &Publish{QoS: byte(g.r.IntN(3)), Retain: g.bool(), Topic: g.topic(), Payload: g.bytes(),
			Properties: g.props(ctxPublish)}
		if p.QoS > 0 {
			p.PacketID, p.Dup = g.id(), g.bool()
		}
		return p
	case TypePuback:
		return &Puback{PacketID: g.id(), ReasonCode: g.code(&pubackCodes), Properties: g.props(ctxPuback)}
	case TypePubrec:
		return &Pubrec{PacketID: g.id(), ReasonCode: g.code(&pubackCodes), Properties: g.props(ctxPuback)}
	case TypePubrel:
		return &Pubrel{PacketID: g.id(), ReasonCode: g.code(&pubrelCodes), Properties: g.props(ctxPuback)}
	case TypePubcomp:
		return &Pubcomp{PacketID: g.id(), ReasonCode: g.code(&pubrelCodes), Properties: g.props(ctxPuback)}
	case TypeSubscribe:
		p := &Subscribe{PacketID: g.id(), Properties: g.props(ctxSubscribe)}
		for range 1 + g.r.IntN(3) {
			s := Subscription{Filter: g.filter(), QoS: byte(g.r.IntN(3)), RetainAsPublished: g.bool(),
				RetainHandling: byte(g.r.IntN(3))}
			if g.bool() {
				s.Filter = "$share/" + g.level() + "/" + s.Filter
			} else {
				s.NoLocal = g.bool()
			}
			p.Subscriptions = append(p.Subscriptions, s)
		}
		return p
	case TypeSuback:
		p := &Suback{PacketID: g.id(), Properties: g.props(ctxSuback)}
		for range 1 + g.r.IntN(3) {
			p.ReasonCodes = append(p.ReasonCodes, g.code(&subackCodes))
		}
		return p
	case TypeUnsubscribe:
		p := &Unsubscribe{PacketID: g.id(), Properties: g.props(ctxUnsubscribe)}
		for range 1 + g.r.IntN(3) {
			p.Filters = append(p.Filters, g.filter())
		}
		return p
	case TypeUnsuback:
		p := &Unsuback{PacketID: g.id(), Properties: g.props(ctxUnsuback)}
		for range 1 + g.r.IntN(3) {
			p.ReasonCodes = append(p.ReasonCodes, g.code(&unsubackCodes))
		}
		return p
	case TypePingreq:
		return &Pingreq{}
	case TypePingresp:
		return &Pingresp{}
	case TypeDisconnect:
		return &Disconnect{ReasonCode: g.code(&disconnectCodes), Properties: g.props(ctxDisconnect)}
	case TypeAuth:
		p := &Auth{ReasonCode: g.code(&authCodes), Properties: g.props(ctxAuth)}
		return p
	}
	panic(t)
}

// TestRandomRoundTrip: in v5 every random packet decodes back to itself
// (Connect gains its ProtocolName and Version); in 3.1.1, where fields are
// dropped, decode(encode(p)) encodes to the same bytes.
func TestRandomRoundTrip(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(1, 2))}
	for i := range 3000 {
		typ := Type(1 + i%15)
		p := g.packet(typ)
		for _, v := range []Version{V311, V5} {
			if typ == TypeAuth && v != V5 {
				continue
			}
			raw, err := p.Append(nil, v)
			if err != nil {
				t.Fatalf("%v v%d: Append(%#v): %v", typ, v, p, err)
			}
			got, err := decodeRaw(raw, v)
			if err != nil {
				t.Fatalf("%v v%d: Decode(% X): %v\npacket %#v", typ, v, raw, err, p)
			}
			if v == V5 {
				want := p
				if c, ok := p.(*Connect); ok {
					cc := *c
					cc.ProtocolName, cc.Version = "MQTT", V5
					want = &cc
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%v v5: round trip\n got %#v\nwant %#v", typ, got, want)
				}
			}
			again, err := got.Append(nil, v)
			if err != nil || !bytes.Equal(again, raw) {
				t.Fatalf("%v v%d: re-encode % X, %v; want % X", typ, v, again, err, raw)
			}
		}
	}
}
