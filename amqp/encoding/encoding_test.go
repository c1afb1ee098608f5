package encoding

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

func hexb(b ...byte) []byte { return b }

// golden pairs a Go value with its smallest encoding, annotated per field.
var golden = []struct {
	name string
	v    any
	wire []byte
}{
	{"null", nil, hexb(0x40)},
	{"true", true, hexb(0x41)},
	{"false", false, hexb(0x42)},
	{"ubyte", uint8(7), hexb(0x50, 0x07)},
	{"ushort", uint16(0x1234), hexb(0x60, 0x12, 0x34)},
	{"uint0", uint32(0), hexb(0x43)},
	{"smalluint", uint32(255), hexb(0x52, 0xff)},
	{"uint", uint32(256), hexb(0x70, 0, 0, 1, 0)},
	{"ulong0", uint64(0), hexb(0x44)},
	{"smallulong", uint64(0x10), hexb(0x53, 0x10)},
	{"ulong", uint64(1 << 32), hexb(0x80, 0, 0, 0, 1, 0, 0, 0, 0)},
	{"byte", int8(-2), hexb(0x51, 0xfe)},
	{"short", int16(-2), hexb(0x61, 0xff, 0xfe)},
	{"smallint", int32(-128), hexb(0x54, 0x80)},
	{"int", int32(128), hexb(0x71, 0, 0, 0, 0x80)},
	{"smalllong", int64(127), hexb(0x55, 0x7f)},
	{"long", int64(-129), hexb(0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)},
	{"float", float32(1), hexb(0x72, 0x3f, 0x80, 0, 0)},
	{"double", float64(1), hexb(0x82, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0)},
	{"decimal32", Decimal32{1, 2, 3, 4}, hexb(0x74, 1, 2, 3, 4)},
	{"decimal64", Decimal64{1, 2, 3, 4, 5, 6, 7, 8}, hexb(0x84, 1, 2, 3, 4, 5, 6, 7, 8)},
	{"decimal128", Decimal128{15: 9}, append(append([]byte{0x94}, make([]byte, 15)...), 9)},
	{"char", Char('€'), hexb(0x73, 0, 0, 0x20, 0xac)},
	{"timestamp", time.UnixMilli(1000).UTC(), hexb(0x83, 0, 0, 0, 0, 0, 0, 0x03, 0xe8)},
	{"uuid", UUID{0: 0xaa, 15: 0xbb}, append(append([]byte{0x98, 0xaa}, make([]byte, 14)...), 0xbb)},
	{"vbin8", []byte{1, 2}, hexb(0xa0, 2, 1, 2)},
	{"vbin32", bytes.Repeat([]byte{9}, 256), append([]byte{0xb0, 0, 0, 1, 0}, bytes.Repeat([]byte{9}, 256)...)},
	{"str8", "hi", hexb(0xa1, 2, 'h', 'i')},
	{"sym8", Symbol("ab"), hexb(0xa3, 2, 'a', 'b')},
	{"list0", []any{}, hexb(0x45)},
	{"list8", []any{true, nil}, hexb(0xc0, 3, 2, 0x41, 0x40)},
	{"map8", Map{{Key: "k", Value: uint32(1)}}, hexb(0xc1, 6, 2, 0xa1, 1, 'k', 0x52, 1)},
	{"array8 sym", Array{Code: CodeSym8, Elems: []any{Symbol("a"), Symbol("bc")}},
		// array8, size 7, count 2, constructor sym8, then two sym8 payloads
		hexb(0xe0, 7, 2, 0xa3, 1, 'a', 2, 'b', 'c')},
	{"array8 uint", Array{Code: CodeUint, Elems: []any{uint32(1), uint32(0)}},
		hexb(0xe0, 10, 2, 0x70, 0, 0, 0, 1, 0, 0, 0, 0)},
	{"described", Described{Descriptor: uint64(0x70), Value: []any{}},
		hexb(0x00, 0x53, 0x70, 0x45)},
}

func TestGolden(t *testing.T) {
	for _, tc := range golden {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AppendValue(nil, tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.wire) {
				t.Fatalf("encode:\n got % x\nwant % x", got, tc.wire)
			}
			r := NewReader(tc.wire)
			v := r.Value()
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			if r.Len() != 0 {
				t.Fatalf("%d bytes left", r.Len())
			}
			if !reflect.DeepEqual(v, tc.v) {
				t.Fatalf("decode: got %#v want %#v", v, tc.v)
			}
		})
	}
}

// TestCompactForms decodes the encodings the encoder never picks.
func TestCompactForms(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		read func(*Reader) any
		want any
	}{
		{"boolean 0x56 true", hexb(0x56, 1), func(r *Reader) any { return r.Bool() }, true},
		{"boolean 0x56 false", hexb(0x56, 0), func(r *Reader) any { return r.Bool() }, false},
		{"uint full small", hexb(0x70, 0, 0, 0, 5), func(r *Reader) any { return r.Uint() }, uint32(5)},
		{"uint from ubyte", hexb(0x50, 5), func(r *Reader) any { return r.Uint() }, uint32(5)},
		{"ulong from uint0", hexb(0x43), func(r *Reader) any { return r.Ulong() }, uint64(0)},
		{"long from smallint", hexb(0x54, 0xff), func(r *Reader) any { return r.Long() }, int64(-1)},
		{"str32", hexb(0xb1, 0, 0, 0, 1, 'x'), func(r *Reader) any { return r.String() }, "x"},
		{"sym32", hexb(0xb3, 0, 0, 0, 1, 'x'), func(r *Reader) any { return r.Symbol() }, Symbol("x")},
		{"list32", hexb(0xd0, 0, 0, 0, 5, 0, 0, 0, 1, 0x40), func(r *Reader) any { return r.Value() }, []any{nil}},
		{"map32", hexb(0xd1, 0, 0, 0, 6, 0, 0, 0, 2, 0x40, 0x41), func(r *Reader) any { return r.Value() },
			Map{{Key: nil, Value: true}}},
		{"array32", hexb(0xf0, 0, 0, 0, 7, 0, 0, 0, 2, 0x56, 1, 0), func(r *Reader) any { return r.Value() },
			Array{Code: CodeBool, Elems: []any{true, false}}},
		{"single symbol as multiple", hexb(0xa3, 1, 'a'), func(r *Reader) any { return r.Symbols() }, []Symbol{"a"}},
		{"null as multiple", hexb(0x40), func(r *Reader) any { return r.Symbols() }, []Symbol(nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(tc.wire)
			got := tc.read(r)
			if r.Err() != nil {
				t.Fatal(r.Err())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v want %#v", got, tc.want)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	deep := bytes.Repeat([]byte{0xc0, 0x01, 0x01}, MaxDepth+2)
	tests := map[string][]byte{
		"empty":                {},
		"truncated uint":       {0x70, 0, 0},
		"truncated str8":       {0xa1, 5, 'a'},
		"str32 huge":           {0xb1, 0xff, 0xff, 0xff, 0xff},
		"list8 count lies":     {0xc0, 1, 200},
		"list32 count lies":    {0xd0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff},
		"list32 size huge":     {0xd0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1},
		"map odd":              {0xc1, 2, 1, 0x40},
		"array null count":     {0xf0, 0, 0, 0, 5, 0x7f, 0xff, 0xff, 0xff, 0x40},
		"array count lies":     {0xe0, 2, 200, 0x50},
		"bad code":             {0x57},
		"bad utf8":             {0xa1, 1, 0xff},
		"bad boolean":          {0x56, 2},
		"too deep":             deep,
		"described truncated":  {0x00, 0x53},
		"array bad element":    {0xe0, 2, 1, 0x00},
		"array element broken": {0xe0, 3, 1, 0xa1, 9},
	}
	for name, wire := range tests {
		t.Run(name, func(t *testing.T) {
			r := NewReader(wire)
			r.Value()
			if !errors.Is(r.Err(), ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", r.Err())
			}
			r = NewReader(wire)
			r.Skip()
			// Skip validates framing only, but must never read out of range.
		})
	}
}

func TestListBuilderTrimsTrailingNulls(t *testing.T) {
	dst, l := StartList([]byte{0xee})
	dst = AppendString(dst, "a")
	l.Mark(dst)
	dst = l.Null(dst)
	dst = AppendUint(dst, 1)
	l.Mark(dst)
	dst = l.Null(dst)
	dst = l.Null(dst)
	dst = l.End(dst)
	want := hexb(0xee, 0xc0, 7, 3, 0xa1, 1, 'a', 0x40, 0x52, 1)
	if !bytes.Equal(dst, want) {
		t.Fatalf("got % x want % x", dst, want)
	}
	dst, l = StartList(nil)
	dst = l.Null(dst)
	if got := l.End(dst); !bytes.Equal(got, []byte{0x45}) {
		t.Fatalf("all-null list: % x", got)
	}
}

func TestLargeListUses32(t *testing.T) {
	big := make([]any, 300)
	enc, err := AppendValue(nil, big)
	if err != nil {
		t.Fatal(err)
	}
	if enc[0] != CodeList32 {
		t.Fatalf("code 0x%x", enc[0])
	}
	v := NewReader(enc).Value()
	if len(v.([]any)) != 300 {
		t.Fatal("length")
	}
}

func TestReaderScopes(t *testing.T) {
	// described list with 3 fields, followed by a trailing value
	wire := hexb(0x00, 0x53, 0x10, 0xc0, 7, 3, 0xa1, 1, 'a', 0x40, 0x52, 9, 0x41)
	r := NewReader(wire)
	if d := r.Descriptor(); d != 0x10 {
		t.Fatalf("descriptor %x", d)
	}
	n, rest := r.ListStart()
	var s string
	var u uint32 = 42
	for i := range n {
		if r.Null() {
			continue
		}
		switch i {
		case 0:
			s = r.String()
		default:
			r.Skip()
		}
	}
	r.End(rest)
	if !r.Bool() || r.Err() != nil || s != "a" || u != 42 {
		t.Fatalf("s=%q u=%d err=%v", s, u, r.Err())
	}
}

func TestValueRoundTrip(t *testing.T) {
	vals := []any{
		math.MaxInt64, uint(7), map[string]any{"b": int64(1), "a": "x"},
		map[Symbol]any{"x-opt": []any{uint8(1), nil}},
		[]Symbol{"a", "b"}, []string{"p", "q"},
	}
	for _, v := range vals {
		enc, err := AppendValue(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		r := NewReader(enc)
		r.Value()
		if r.Err() != nil || r.Len() != 0 {
			t.Fatalf("%T: %v", v, r.Err())
		}
	}
	if _, err := AppendValue(nil, struct{}{}); err == nil {
		t.Fatal("want error for unsupported type")
	}
}

func TestUUIDString(t *testing.T) {
	u := UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}
	if got := u.String(); got != "12345678-9abc-def0-0102-030405060708" {
		t.Fatal(got)
	}
}

func FuzzValue(f *testing.F) {
	for _, tc := range golden {
		f.Add(tc.wire)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b)
		v := r.Value()
		if r.Err() != nil {
			return
		}
		// Whatever decodes must re-encode, and re-encoding the decoded
		// encoding must be stable (array constructors may legitimately
		// narrow on the first pass, so values are compared as bytes).
		enc, err := AppendValue(nil, v)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", v, err)
		}
		r2 := NewReader(enc)
		v2 := r2.Value()
		if r2.Err() != nil {
			t.Fatalf("re-decode: %v", r2.Err())
		}
		enc2, err := AppendValue(nil, v2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("unstable encoding: % x then % x (%v)", enc, enc2, err)
		}
	})
}

func FuzzSkip(f *testing.F) {
	for _, tc := range golden {
		f.Add(tc.wire)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b)
		r.Skip()
		r2 := NewReader(b)
		r2.Value()
		// Value is stricter than Skip (UTF-8, element types), never laxer.
		if r.Err() != nil && r2.Err() == nil {
			t.Fatalf("Skip failed (%v) where Value succeeded", r.Err())
		}
		if r.Err() == nil && r2.Err() == nil && r.Len() != r2.Len() {
			t.Fatalf("Skip consumed %d, Value %d", len(b)-r.Len(), len(b)-r2.Len())
		}
	})
}
