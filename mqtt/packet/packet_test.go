package packet

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// decodeRaw reads a fixed header from raw and decodes the rest as one packet.
func decodeRaw(raw []byte, v Version) (Packet, error) {
	br := bytes.NewReader(raw)
	h, err := ReadHeader(br)
	if err != nil {
		return nil, err
	}
	body := raw[len(raw)-br.Len():]
	if len(body) != h.Remaining {
		return nil, errorf(MalformedPacket, "test: %d body bytes, remaining length %d", len(body), h.Remaining)
	}
	return Decode(h, body, v)
}

func TestGoldenEncode(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			got, err := g.pkt.Append(nil, g.v)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if !bytes.Equal(got, g.raw) {
				t.Fatalf("Append:\n got % X\nwant % X", got, g.raw)
			}
			// Append keeps what dst already holds.
			prefix := []byte{0xAA, 0xBB}
			got, err = g.pkt.Append(prefix, g.v)
			if err != nil || !bytes.Equal(got[:2], prefix) || !bytes.Equal(got[2:], g.raw) {
				t.Fatalf("Append(prefix) = % X, %v", got, err)
			}
		})
	}
}

func TestGoldenDecode(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			h, err := ReadHeader(bytes.NewReader(g.raw))
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			if h.Type != g.pkt.Type() || h.Size() != len(g.raw) {
				t.Fatalf("header %+v (size %d), want type %v size %d", h, h.Size(), g.pkt.Type(), len(g.raw))
			}
			got, err := decodeRaw(g.raw, g.v)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, g.pkt) {
				t.Fatalf("Decode:\n got %#v\nwant %#v", got, g.pkt)
			}
			// The in-place decoder of a dirty value gives the same result.
			dirty := reflect.New(reflect.TypeOf(g.pkt).Elem())
			reflect.Indirect(dirty).Set(reflect.Indirect(reflect.ValueOf(g.pkt)))
			d := dirty.Interface().(interface {
				Decode(byte, []byte, Version) error
			})
			if err := d.Decode(h.Flags, g.raw[h.Size()-h.Remaining:], g.v); err != nil {
				t.Fatalf("in-place Decode: %v", err)
			}
			if !reflect.DeepEqual(d, g.pkt) {
				t.Fatalf("in-place Decode:\n got %#v\nwant %#v", d, g.pkt)
			}
		})
	}
}

// roundTrip encodes p for v, decodes it and checks the result equals want.
func roundTrip(t *testing.T, p Packet, v Version, want Packet) {
	t.Helper()
	raw, err := p.Append(nil, v)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	got, err := decodeRaw(raw, v)
	if err != nil {
		t.Fatalf("Decode(% X): %v", raw, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 200000) // 3-byte remaining length
	tests := []struct {
		name string
		v    Version
		in   Packet
		want Packet // nil: same as in
	}{
		{"v5/publish/big", V5, &Publish{QoS: 2, Topic: "big", PacketID: 7, Payload: big}, nil},
		{"v311/publish/big", V311, &Publish{QoS: 1, Topic: "big", PacketID: 7, Payload: big}, nil},
		{"v311/publish/props-dropped", V311,
			&Publish{Topic: "t", Properties: Properties{ContentType: "x"}},
			&Publish{Topic: "t"}},
		{"v5/publish/unicode", V5, &Publish{Topic: "maison/température", Payload: []byte{0}}, nil},
		{"v5/publish/empty-strings-absent", V5,
			&Publish{Topic: "t", Properties: Properties{ContentType: "", CorrelationData: []byte{}}},
			&Publish{Topic: "t"}},
		{"v311/puback/code-dropped", V311, &Puback{PacketID: 1, ReasonCode: NotAuthorized}, &Puback{PacketID: 1}},
		{"v311/suback/v5-failure-as-0x80", V311,
			&Suback{PacketID: 1, ReasonCodes: []ReasonCode{NotAuthorized, GrantedQoS1}},
			&Suback{PacketID: 1, ReasonCodes: []ReasonCode{UnspecifiedError, GrantedQoS1}}},
		{"v311/connack/mapped", V311, &Connack{ReasonCode: Banned}, &Connack{ReasonCode: NotAuthorized}},
		{"v311/connack/generic-refusal", V311, &Connack{ReasonCode: QuotaExceeded}, &Connack{ReasonCode: ServerUnavailable}},
		{"v311/subscribe/v5-options-dropped", V311,
			&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 1, NoLocal: true, RetainHandling: 1}}},
			&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 1}}}},
		{"v311/unsuback/codes-dropped", V311,
			&Unsuback{PacketID: 1, ReasonCodes: []ReasonCode{NoSubscriptionExisted}}, &Unsuback{PacketID: 1}},
		{"v311/disconnect/code-dropped", V311, &Disconnect{ReasonCode: ServerBusy}, &Disconnect{}},
		{"v5/connect/will-no-props", V5,
			&Connect{ClientID: "x", WillFlag: true, WillTopic: "w", WillPayload: []byte("p")},
			&Connect{ProtocolName: "MQTT", Version: V5, ClientID: "x", WillFlag: true, WillTopic: "w", WillPayload: []byte("p")}},
		{"v5/connect/empty-username", V5,
			&Connect{ClientID: "x", UsernameFlag: true, PasswordFlag: true},
			&Connect{ProtocolName: "MQTT", Version: V5, ClientID: "x", UsernameFlag: true, PasswordFlag: true}},
		{"v31/connect/ignores-fields", V31,
			&Connect{ProtocolName: "MQTT", Version: V5, ClientID: "x"},
			&Connect{ProtocolName: "MQIsdp", Version: V31, ClientID: "x"}},
		{"v5/disconnect/user-only", V5, &Disconnect{Properties: Properties{User: []UserProperty{{"", ""}}}}, nil},
		{"v5/subscribe/max-subid", V5,
			&Subscribe{PacketID: 1, Properties: Properties{SubscriptionIdentifier: []uint32{MaxVarInt}}, Subscriptions: []Subscription{{Filter: "a"}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == nil {
				want = tt.in
			}
			roundTrip(t, tt.in, tt.v, want)
		})
	}
}

// TestGoldenOtherVersion encodes every v5 golden in 3.1.1 and back (and the
// reverse) where the packet exists in both, so the version switch in each
// encoder is exercised on rich inputs.
func TestGoldenOtherVersion(t *testing.T) {
	for _, g := range goldens {
		// AUTH is v5 only; a 3.1.1 UNSUBACK has no reason codes, which v5
		// requires.
		if g.pkt.Type() == TypeAuth || g.v == V31 || (g.v == V311 && g.pkt.Type() == TypeUnsuback) {
			continue
		}
		other := V311
		if g.v == V311 {
			other = V5
		}
		t.Run(g.name, func(t *testing.T) {
			raw, err := g.pkt.Append(nil, other)
			if err != nil {
				// Only a v5 packet that needs v5 features may fail.
				if other == V311 {
					t.Skipf("not encodable in 3.1.1: %v", err)
				}
				t.Fatalf("Append(%d): %v", other, err)
			}
			p, err := decodeRaw(raw, other)
			if err != nil {
				t.Fatalf("Decode(% X): %v", raw, err)
			}
			if _, err := p.Append(nil, other); err != nil {
				t.Fatalf("re-Append: %v", err)
			}
		})
	}
}

func TestAppendVarInt(t *testing.T) {
	tests := []struct {
		n    uint32
		want []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7F}},
		{128, []byte{0x80, 0x01}},
		{16383, []byte{0xFF, 0x7F}},
		{16384, []byte{0x80, 0x80, 0x01}},
		{2097151, []byte{0xFF, 0xFF, 0x7F}},
		{2097152, []byte{0x80, 0x80, 0x80, 0x01}},
		{MaxVarInt, []byte{0xFF, 0xFF, 0xFF, 0x7F}},
	}
	for _, tt := range tests {
		got := AppendVarInt(nil, tt.n)
		if !bytes.Equal(got, tt.want) || varIntLen(tt.n) != len(tt.want) {
			t.Errorf("AppendVarInt(%d) = % X (len %d), want % X", tt.n, got, varIntLen(tt.n), tt.want)
		}
		h, err := ReadHeader(bytes.NewReader(append([]byte{0x30}, tt.want...)))
		if err != nil || h.Remaining != int(tt.n) || h.Size() != 1+len(tt.want)+int(tt.n) {
			t.Errorf("ReadHeader(% X) = %+v, %v", tt.want, h, err)
		}
	}
}

func TestReadHeader(t *testing.T) {
	tests := []struct {
		name    string
		raw     []byte
		want    Header
		wantErr error
	}{
		{"publish flags", []byte{0x3D, 0x05}, Header{Type: TypePublish, Flags: 0x0D, Remaining: 5}, nil},
		{"non-minimal VBI accepted", []byte{0x30, 0x80, 0x00}, Header{Type: TypePublish}, nil},
		{"empty", nil, Header{}, io.EOF},
		{"no length", []byte{0x30}, Header{}, io.ErrUnexpectedEOF},
		{"cut VBI", []byte{0x30, 0x80}, Header{}, io.ErrUnexpectedEOF},
		{"5-byte VBI", []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, Header{}, &Error{Code: MalformedPacket}},
		{"type 0", []byte{0x00, 0x00}, Header{}, &Error{Code: MalformedPacket}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ReadHeader(bytes.NewReader(tt.raw))
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if h != tt.want {
				t.Fatalf("header = %+v, want %+v", h, tt.want)
			}
		})
	}
}

func TestDecodeLengthMismatch(t *testing.T) {
	_, err := Decode(Header{Type: TypePingreq, Remaining: 1}, nil, V5)
	if !errors.Is(err, &Error{Code: MalformedPacket}) {
		t.Fatalf("err = %v", err)
	}
	_, err = Decode(Header{Type: 0}, nil, V5)
	if !errors.Is(err, &Error{Code: MalformedPacket}) {
		t.Fatalf("type 0: err = %v", err)
	}
}

func TestStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{TypePublish.String(), "PUBLISH"},
		{TypeAuth.String(), "AUTH"},
		{Type(0).String(), "Type(0)"},
		{MalformedPacket.String(), "Malformed Packet"},
		{NormalDisconnection.String(), "Success"},
		{ReasonCode(0x03).String(), "ReasonCode(0x03)"},
		{(&Error{Code: ProtocolError, Reason: "x"}).Error(), "mqtt packet: Protocol Error: x"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	if !MalformedPacket.IsError() || GrantedQoS2.IsError() {
		t.Error("IsError")
	}
}

func TestConnackReturnCodeV3(t *testing.T) {
	tests := []struct {
		code ReasonCode
		want byte
	}{
		{Success, 0}, {UnsupportedProtocolVersion, 1}, {ClientIdentifierNotValid, 2},
		{ServerUnavailable, 3}, {ServerBusy, 3}, {UnspecifiedError, 3},
		{BadUserNameOrPassword, 4}, {NotAuthorized, 5}, {Banned, 5},
	}
	for _, tt := range tests {
		if got := ConnackReturnCodeV3(tt.code); got != tt.want {
			t.Errorf("ConnackReturnCodeV3(%v) = %d, want %d", tt.code, got, tt.want)
		}
	}
	for rc, code := range connackReasonFromV3 {
		if ConnackReturnCodeV3(code) != byte(rc) {
			t.Errorf("return code %d does not round-trip through %v", rc, code)
		}
	}
}

func TestConnectErrorVersion(t *testing.T) {
	tests := []struct {
		name     string
		raw      []byte
		wantCode ReasonCode
		wantV    Version
	}{
		{"level 6", cat(0x10, 0x0B, 0x00, 0x04, "MQTT", 0x06, 0x02, 0x00, 0x00, 0x00), UnsupportedProtocolVersion, V311},
		{"MQIsdp level 4", cat(0x10, 0x0C, 0x00, 0x06, "MQIsdp", 0x04, 0x02, 0x00, 0x00), UnsupportedProtocolVersion, V311},
		{"MQTT level 3", cat(0x10, 0x0A, 0x00, 0x04, "MQTT", 0x03, 0x02, 0x00, 0x00), UnsupportedProtocolVersion, V311},
		{"unknown name", cat(0x10, 0x0A, 0x00, 0x04, "HTTP", 0x04, 0x02, 0x00, 0x00), UnsupportedProtocolVersion, V311},
		{"cut name", cat(0x10, 0x03, 0x00, 0x04, "M"), MalformedPacket, 0},
		{"v5 bad property", cat(0x10, 0x0F, 0x00, 0x04, "MQTT", 0x05, 0x02, 0x00, 0x00, 0x02, 0x01, 0x01, 0x00, 0x00), ProtocolError, V5},
		{"v311 empty id no clean", cat(0x10, 0x0C, 0x00, 0x04, "MQTT", 0x04, 0x00, 0x00, 0x00, 0x00, 0x00), ClientIdentifierNotValid, V311},
		{"v31 long id", pk(0x10, 0x00, 0x06, "MQIsdp", 0x03, 0x02, 0x00, 0x00, 0x00, 0x18, strings.Repeat("x", 24)), ClientIdentifierNotValid, V31},
		{"v311 malformed closes", pk(0x10, 0x00, 0x04, "MQTT", 0x04, 0x03, 0x00, 0x00, 0x00, 0x00), MalformedPacket, 0},
		{"v311 bad will topic closes", pk(0x10, 0x00, 0x04, "MQTT", 0x04, 0x06, 0x00, 0x00, 0x00, 0x01, "c", 0x00, 0x01, "#", 0x00, 0x00), TopicNameInvalid, 0},
		{"v5 bad will topic", pk(0x10, 0x00, 0x04, "MQTT", 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, "c", 0x00, 0x00, 0x01, "#", 0x00, 0x00), TopicNameInvalid, V5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeRaw(tt.raw, V5)
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.wantCode || e.Version != tt.wantV {
				t.Fatalf("err = %#v, want code %v version %d", err, tt.wantCode, tt.wantV)
			}
		})
	}
}

func TestErrorIs(t *testing.T) {
	err := error(&Error{Code: ProtocolError, Reason: "r"})
	if !errors.Is(err, &Error{Code: ProtocolError}) || errors.Is(err, &Error{Code: MalformedPacket}) ||
		errors.Is(err, &Error{Code: ProtocolError, Reason: "other"}) || errors.Is(err, io.EOF) {
		t.Fatal("Error.Is")
	}
}

func TestPublishAllocs(t *testing.T) {
	for _, v := range []Version{V311, V5} {
		p := &Publish{QoS: 1, Topic: "devices/42/telemetry", PacketID: 9, Payload: make([]byte, 64)}
		buf := make([]byte, 0, 256)
		if n := testing.AllocsPerRun(100, func() {
			if _, err := p.Append(buf[:0], v); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("v%d Publish.Append: %v allocs, want 0", v, n)
		}
		raw, _ := p.Append(nil, v)
		body := raw[2:]
		var q Publish
		if n := testing.AllocsPerRun(100, func() {
			if err := q.Decode(raw[0]&0x0F, body, v); err != nil {
				t.Fatal(err)
			}
		}); n > 1 {
			t.Errorf("v%d Publish.Decode: %v allocs, want <= 1", v, n)
		}
	}
}

func TestEncodeLimits(t *testing.T) {
	long := strings.Repeat("a", 65536)
	tests := []struct {
		name string
		v    Version
		p    Packet
		code ReasonCode
	}{
		{"topic too long", V5, &Publish{Topic: long}, MalformedPacket},
		{"user property too long", V5, &Publish{Topic: "t", Properties: Properties{User: []UserProperty{{long, ""}}}}, MalformedPacket},
		{"password too long", V5, &Connect{PasswordFlag: true, Password: []byte(long)}, MalformedPacket},
		{"payload too large", V311, &Publish{Topic: "t", Payload: make([]byte, MaxVarInt)}, PacketTooLarge},
		{"bad utf8 client id", V5, &Connect{ClientID: "\xff"}, MalformedPacket},
		{"nul in filter", V5, &Unsubscribe{PacketID: 1, Filters: []string{"a\x00"}}, TopicFilterInvalid},
		{"nul in topic", V5, &Publish{Topic: "a\x00"}, MalformedPacket},
		{"unknown version", Version(9), &Pingreq{}, ImplementationSpecificError},
		{"auth in 3.1.1", V311, &Auth{}, MalformedPacket},
		{"alias-only topic in 3.1.1", V311, &Publish{Properties: Properties{TopicAlias: ptr[uint16](1)}}, TopicNameInvalid},
		{"property not allowed", V5, &Puback{PacketID: 1, Properties: Properties{ContentType: "x"}}, ProtocolError},
		{"two subscription ids in SUBSCRIBE", V5, &Subscribe{PacketID: 1, Properties: Properties{SubscriptionIdentifier: []uint32{1, 2}}, Subscriptions: []Subscription{{Filter: "a"}}}, ProtocolError},
		{"subscription id too large", V5, &Publish{Topic: "t", Properties: Properties{SubscriptionIdentifier: []uint32{MaxVarInt + 1}}}, ProtocolError},
		{"username without flag", V311, &Connect{ClientID: "c", Username: "u"}, ProtocolError},
		{"password without flag", V5, &Connect{ClientID: "c", Password: []byte("p")}, ProtocolError},
		{"v3.1 client id too long", V31, &Connect{ClientID: strings.Repeat("x", 24)}, ClientIdentifierNotValid},
		{"suback v3 code 3", V311, &Suback{PacketID: 1, ReasonCodes: []ReasonCode{3}}, ProtocolError},
		{"connack session present on refusal", V311, &Connack{SessionPresent: true, ReasonCode: NotAuthorized}, ProtocolError},
		{"disconnect bad code", V5, &Disconnect{ReasonCode: GrantedQoS1}, ProtocolError},
		{"auth continue without method", V5, &Auth{ReasonCode: ContinueAuthentication}, ProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte{1, 2}
			got, err := tt.p.Append(dst, tt.v)
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.code {
				t.Fatalf("err = %v, want code %v", err, tt.code)
			}
			if !bytes.Equal(got, dst) {
				t.Fatalf("dst changed on error: % X", got)
			}
		})
	}
}

func TestRead(t *testing.T) {
	var b []byte
	for _, p := range []Packet{
		&Publish{Topic: "a/b", QoS: 1, PacketID: 7, Payload: []byte("x")},
		&Pingresp{},
		&Puback{PacketID: 7, ReasonCode: QuotaExceeded},
	} {
		var err error
		if b, err = p.Append(b, V5); err != nil {
			t.Fatal(err)
		}
	}
	r := bytes.NewReader(b)
	for _, want := range []Type{TypePublish, TypePingresp, TypePuback} {
		p, err := Read(r, V5)
		if err != nil || p.Type() != want {
			t.Fatalf("Read = %v, %v; want a %v", p, err, want)
		}
	}
	if _, err := Read(r, V5); err != io.EOF {
		t.Errorf("Read at the end = %v, want io.EOF", err)
	}
	// A body cut short.
	if _, err := Read(bytes.NewReader(b[:4]), V5); err != io.ErrUnexpectedEOF {
		t.Errorf("Read of a cut packet = %v, want io.ErrUnexpectedEOF", err)
	}
	// The decoder's errors pass through.
	var pe *Error
	if _, err := Read(bytes.NewReader([]byte{0x40, 1, 0}), V311); !errors.As(err, &pe) {
		t.Errorf("Read of a malformed PUBACK = %v, want *Error", err)
	}
}
