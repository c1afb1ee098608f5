package frame

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/amqp/encoding"
)

func TestGoldenBodies(t *testing.T) {
	for _, tc := range goldenBodies {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.body.AppendBody(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.wire) {
				t.Fatalf("encode:\n got % x\nwant % x", got, tc.wire)
			}
			typ := TypeAMQP
			if strings.HasPrefix(tc.name, "sasl") {
				typ = TypeSASL
			}
			dec, err := DecodeBody(typ, tc.wire)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(dec, tc.body) {
				t.Fatalf("decode:\n got %#v\nwant %#v", dec, tc.body)
			}
		})
	}
}

func TestFrameRoundTrip(t *testing.T) {
	buf, err := Append([]byte{0xff}, TypeAMQP, 3, &End{})
	if err != nil {
		t.Fatal(err)
	}
	want := h("ff 00 00 00 0c 02 00 00 03 00 53 17 45")
	if !bytes.Equal(buf, want) {
		t.Fatalf("got % x", buf)
	}
	hd, err := ParseHeader(buf[1:])
	if err != nil || hd != (Header{Size: 12, DataOffset: 2, Type: TypeAMQP, Channel: 3}) {
		t.Fatalf("%+v %v", hd, err)
	}
	body, err := DecodeBody(hd.Type, buf[1+8:])
	if _, ok := body.(*End); !ok || err != nil {
		t.Fatalf("%T %v", body, err)
	}
	if got := AppendEmpty(nil); !bytes.Equal(got, h("00 00 00 08 02 00 00 00")) {
		t.Fatalf("empty frame % x", got)
	}
	if b, err := DecodeBody(TypeAMQP, nil); b != nil || err != nil {
		t.Fatal("heartbeat must decode to nil")
	}
}

func TestHeaderErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"short":      h("00 00 00 08 02"),
		"doff 1":     h("00 00 00 08 01 00 00 00"),
		"doff large": h("00 00 00 08 03 00 00 00"),
		"bad type":   h("00 00 00 08 02 07 00 00"),
	} {
		if _, err := ParseHeader(b); !errors.Is(err, ErrFraming) {
			t.Errorf("%s: %v", name, err)
		}
	}
	p, err := ParseProtoHeader([]byte("AMQP\x03\x01\x00\x00"))
	if err != nil || p != Proto(ProtoSASL) {
		t.Fatal(p, err)
	}
	if _, err := ParseProtoHeader([]byte("HTTP/1.1")); err == nil {
		t.Fatal("want error")
	}
}

func TestDecodeErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		t Type
		b []byte
	}{
		"unknown descriptor":  {TypeAMQP, h("00 53 30 45")},
		"sasl on amqp":        {TypeAMQP, h("00 53 40 45")},
		"amqp on sasl":        {TypeSASL, h("00 53 10 45")},
		"open no container":   {TypeAMQP, h("00 53 10 45")},
		"transfer no handle":  {TypeAMQP, h("00 53 14 45")},
		"flow missing window": {TypeAMQP, h("00 53 13 c0 03 02 40 43")},
		"wrong field type":    {TypeAMQP, h("00 53 16 c0 03 01 a1 00")},
		"bad state":           {TypeAMQP, h("00 53 15 c0 07 05 41 43 40 40 00 53 33")},
		"truncated":           {TypeAMQP, h("00 53 10 c0 0d 04 a1 01")},
		"empty sasl":          {TypeSASL, nil},
		"not described":       {TypeAMQP, h("45")},
		"long tag":            {TypeAMQP, append(h("00 53 14 c0 24 03 43 43 a0 21"), make([]byte, 33)...)},
	} {
		_, err := DecodeBody(tc.t, tc.b)
		if !errors.Is(err, ErrDecode) || !errors.Is(err, encoding.ErrMalformed) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Condition: CondNotFound, Description: "no queue"}
	if e.Error() != "amqp:not-found: no queue" {
		t.Fatal(e.Error())
	}
}

func fullMessage() *Message {
	return &Message{
		Header:              &MessageHeader{Durable: true, Priority: 4, TTL: time.Second, DeliveryCount: 2},
		DeliveryAnnotations: Annotations{encoding.Symbol("x-da"): "v"},
		MessageAnnotations:  Annotations{encoding.Symbol("x-opt-a"): int64(1), uint64(7): true},
		Properties: &Properties{
			MessageID: "id-1", UserID: []byte("u"), To: "q", Subject: "s", ReplyTo: "r",
			CorrelationID: uint64(5), ContentType: "text/plain", ContentEncoding: "gzip",
			AbsoluteExpiryTime: time.UnixMilli(2000).UTC(), CreationTime: time.UnixMilli(1000).UTC(),
			GroupID: "g", GroupSequence: optUint(3), ReplyToGroupID: "rg",
		},
		ApplicationProperties: map[string]any{"k": "v", "n": int32(-1)},
		Data:                  [][]byte{[]byte("hello"), []byte("world")},
		Footer:                Annotations{encoding.Symbol("x-f"): nil},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	msgs := map[string]*Message{
		"full":     fullMessage(),
		"value":    {Value: map[string]any{"a": []any{int64(1), "b"}}},
		"sequence": {Sequence: [][]any{{"a", true}, {uint8(1)}}},
		"empty":    {},
	}
	for name, m := range msgs {
		t.Run(name, func(t *testing.T) {
			b, err := m.AppendTo(nil)
			if err != nil {
				t.Fatal(err)
			}
			var got Message
			if err := got.Decode(b); err != nil {
				t.Fatal(err)
			}
			want := *m
			if v, ok := want.Value.(map[string]any); ok {
				// maps decode as encoding.Map
				enc, _ := encoding.AppendValue(nil, v)
				want.Value = encoding.NewReader(enc).Value()
			}
			if !reflect.DeepEqual(&got, &want) {
				t.Fatalf("got  %#v\nwant %#v", &got, &want)
			}
		})
	}
}

func TestMessageGolden(t *testing.T) {
	m := &Message{Properties: &Properties{To: "q"}, Data: [][]byte{{1, 2}}}
	b, err := m.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	// properties {message-id null, user-id null, to "q"}, data vbin8 [01 02]
	want := h("00 53 73 c0 06 03 40 40 a1 01 71 00 53 75 a0 02 01 02")
	if !bytes.Equal(b, want) {
		t.Fatalf("got % x", b)
	}
}

func TestMessageDecodeErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"out of order":      h("00 53 75 a0 00 00 53 70 45"),
		"two body kinds":    h("00 53 75 a0 00 00 53 77 40"),
		"bad section":       h("00 53 10 45"),
		"bad msg id":        h("00 53 73 c0 02 01 41"),
		"sequence not list": h("00 53 76 40"),
		"truncated":         h("00 53 75 a0 05 00"),
	} {
		var m Message
		if err := m.Decode(b); !errors.Is(err, ErrMessage) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecodeBody(f *testing.F) {
	for _, tc := range goldenBodies {
		f.Add(strings.HasPrefix(tc.name, "sasl"), tc.wire)
	}
	f.Fuzz(func(t *testing.T, sasl bool, b []byte) {
		typ := TypeAMQP
		if sasl {
			typ = TypeSASL
		}
		body, err := DecodeBody(typ, b)
		if err != nil || body == nil {
			return
		}
		// Whatever decodes must encode, and decode again.
		enc, err := body.AppendBody(nil)
		if err != nil {
			return // values such as Map keys may not re-encode as map[Symbol]any
		}
		if _, err := DecodeBody(typ, enc); err != nil {
			t.Fatalf("re-decode of % x: %v", enc, err)
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	f.Add(h("00 00 00 0c 02 00 00 03"))
	f.Add(h("00 00 00 08 02 01 ff ff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		hd, err := ParseHeader(b)
		if err == nil && (hd.DataOffset < 2 || uint32(hd.DataOffset)*4 > hd.Size) {
			t.Fatalf("accepted %+v", hd)
		}
	})
}

func FuzzMessage(f *testing.F) {
	b, _ := fullMessage().AppendTo(nil)
	f.Add(b)
	f.Add(h("00 53 73 c0 06 03 40 40 a1 01 71 00 53 75 a0 02 01 02"))
	f.Add(h("00 53 77 a1 01 78"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if err := m.Decode(b); err != nil {
			return
		}
		enc, err := m.AppendTo(nil)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var m2 Message
		if err := m2.Decode(enc); err != nil {
			t.Fatalf("re-decode of % x: %v", enc, err)
		}
	})
}

// benchTransfer is a transfer frame carrying a 256-byte data message.
func benchTransfer() (*Transfer, []byte) {
	msg := &Message{Data: [][]byte{bytes.Repeat([]byte{'x'}, 256)}}
	payload, _ := msg.AppendTo(nil)
	return &Transfer{Handle: 0, DeliveryID: optUint(1234), DeliveryTag: []byte{0, 0, 4, 0xd2},
		MessageFormat: optUint(0), Payload: payload}, payload
}

func BenchmarkTransferEncode(b *testing.B) {
	tr, _ := benchTransfer()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = Append(buf[:0], TypeAMQP, 0, tr)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkTransferDecode(b *testing.B) {
	tr, _ := benchTransfer()
	buf, _ := Append(nil, TypeAMQP, 0, tr)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		hd, err := ParseHeader(buf)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeBody(hd.Type, buf[int(hd.DataOffset)*4:hd.Size]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMessageEncode(b *testing.B) {
	msg := &Message{Data: [][]byte{bytes.Repeat([]byte{'x'}, 256)}}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = msg.AppendTo(buf[:0])
	}
}

func BenchmarkMessageDecode(b *testing.B) {
	_, payload := benchTransfer()
	b.ReportAllocs()
	var m Message
	for b.Loop() {
		if err := m.Decode(payload); err != nil {
			b.Fatal(err)
		}
	}
}
