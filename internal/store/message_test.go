package store_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
)

func fullMessage() store.Message {
	format := byte(1)
	return store.Message{
		Topic:           "a/b",
		Payload:         []byte("hi"),
		QoS:             1,
		Retain:          true,
		Expiry:          time.Unix(0, 1000),
		ContentType:     "t",
		ResponseTopic:   "r",
		CorrelationData: []byte{0xc0},
		PayloadFormat:   &format,
		UserProperties:  []store.UserProperty{{"k", "v"}, {"k", "w"}},
		Origin:          "o",
		SubscriptionIDs: []uint32{1, 300},
	}
}

// Golden vectors pin the version 1 binary form: records written by one
// release must be read by the next. Never edit a vector; add a version.
var goldenMessages = []struct {
	name string
	msg  store.Message
	hex  string // annotated: one group per field
}{
	{
		name: "minimal",
		msg:  store.Message{Topic: "t"},
		hex: "01" + // version
			"00" + // flags: QoS 0
			"00" + // optional: none
			"0174" + // topic "t"
			"00", // payload empty
	},
	{
		name: "full",
		msg:  fullMessage(),
		hex: "01" + // version
			"1d" + // flags: QoS 1 | retain | expiry | payload format
			"3f" + // optional: all six
			"03612f62" + // topic "a/b"
			"026869" + // payload "hi"
			"d00f" + // expiry 1000 ns (zigzag varint)
			"01" + // payload format 1
			"0174" + // content type "t"
			"0172" + // response topic "r"
			"01c0" + // correlation data c0
			"02" + "016b0176" + "016b0177" + // user properties k=v, k=w
			"016f" + // origin "o"
			"02" + "01" + "ac02", // subscription ids 1, 300
	},
	{
		name: "hono",
		msg: store.Message{Topic: "t", Created: time.Unix(0, 1000), Properties: []store.Property{
			{Key: "device_id", Value: "d"}, {Key: "qos", Value: int64(1)}, {Key: "x-opt-retain", Value: true}}},
		hex: "01" + // version
			"00" + // flags: QoS 0
			"c0" + // optional: created | properties
			"0174" + // topic "t"
			"00" + // payload empty
			"d00f" + // created 1000 ns (zigzag varint)
			"03" + // three properties
			"096465766963655f6964" + "00" + "0164" + // device_id string "d"
			"03716f73" + "01" + "02" + // qos int64 1
			"0c782d6f70742d72657461696e" + "02" + "01", // x-opt-retain bool true
	},
}

func TestMessageGolden(t *testing.T) {
	for _, g := range goldenMessages {
		t.Run(g.name, func(t *testing.T) {
			want, err := hex.DecodeString(g.hex)
			if err != nil {
				t.Fatal(err)
			}
			got, err := g.msg.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded\n got %x\nwant %x", got, want)
			}
			var m store.Message
			if err := m.UnmarshalBinary(want); err != nil {
				t.Fatal(err)
			}
			if !m.Equal(&g.msg) {
				t.Fatalf("decoded %+v, want %+v", m, g.msg)
			}
		})
	}
}

func TestMessageDecodeDoesNotAlias(t *testing.T) {
	m := fullMessage()
	b, _ := m.MarshalBinary()
	var d store.Message
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	clear(b)
	if !d.Equal(&m) {
		t.Fatalf("decoded message changed with its input: %+v", d)
	}
	// Appending to the payload must not overwrite what follows it.
	_ = append(d.Payload, 'x', 'x', 'x')
	if !d.Equal(&m) {
		t.Fatalf("append to Payload overwrote another field: %+v", d)
	}
}

func TestMessageDecodeErrors(t *testing.T) {
	full, _ := goldenFull()
	cases := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"version 0", []byte{0, 0, 0, 1, 't', 0}},
		{"version 2", []byte{2, 0, 0, 1, 't', 0}},
		{"QoS 3", []byte{1, 3, 0, 1, 't', 0}},
		{"unknown flag", []byte{1, 0x20, 0, 1, 't', 0}},
		{"unknown optional", []byte{1, 0, 0x40, 1, 't', 0}},
		{"short topic", []byte{1, 0, 0, 5, 't'}},
		{"missing payload", []byte{1, 0, 0, 1, 't'}},
		{"trailing byte", []byte{1, 0, 0, 1, 't', 0, 0}},
		{"huge count", []byte{1, 0, optUserProps, 1, 't', 0, 0xff, 0xff, 0x03}},
		{"sub id overflow", []byte{1, 0, optSubIDs, 1, 't', 0, 1, 0x80, 0x80, 0x80, 0x80, 0x10}},
		{"truncated full", full[:len(full)-1]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m store.Message
			err := m.UnmarshalBinary(c.in)
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("UnmarshalBinary(%x) = %v, want ErrCorrupt", c.in, err)
			}
		})
	}
}

const (
	optUserProps = 1 << 3
	optSubIDs    = 1 << 5
)

func goldenFull() ([]byte, error) {
	return hex.DecodeString(goldenMessages[1].hex)
}

func TestMessageEncodeRefusesQoS3(t *testing.T) {
	m := store.Message{Topic: "t", QoS: 3}
	if _, err := m.MarshalBinary(); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("MarshalBinary(QoS 3) = %v, want ErrInvalid", err)
	}
}

func TestMessageExpired(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		expiry time.Time
		want   bool
	}{
		{time.Time{}, false},
		{now.Add(time.Second), false},
		{now, true},
		{now.Add(-time.Second), true},
	} {
		m := store.Message{Expiry: c.expiry}
		if got := m.Expired(now); got != c.want {
			t.Errorf("Expired with expiry %v = %v, want %v", c.expiry, got, c.want)
		}
	}
}

// FuzzUnmarshalMessage checks that the decoder never panics, and that what
// it accepts re-encodes to a form that decodes to the same message.
// Seeds: the golden vectors here and the corpus in testdata/fuzz.
func FuzzUnmarshalMessage(f *testing.F) {
	for _, g := range goldenMessages {
		b, _ := hex.DecodeString(g.hex)
		f.Add(b)
	}
	big := store.Message{Topic: strings.Repeat("x", 200), Payload: bytes.Repeat([]byte{7}, 300)}
	b, _ := big.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var m store.Message
		if err := m.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		enc, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		var m2 store.Message
		if err := m2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if !m2.Equal(&m) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", m, m2)
		}
		if len(enc) > len(data) {
			t.Fatalf("re-encoding grew the record from %d to %d bytes", len(data), len(enc))
		}
	})
}
