package fields

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestExtract(t *testing.T) {
	x := Compile([][]Elem{
		{{Key: "temp"}},
		{{Key: "a"}, {Key: "b"}, {Index: 1, IsIndex: true}},
		{{Key: "name"}},
		{{Key: "ok"}},
		{{Key: "missing"}},
		{{Key: "obj"}},
		{{Key: "esc\"k"}},
	})
	out := make([]Value, x.Slots())
	doc := `{"skip":{"x":[1,{"y":"}"}]},"temp":-21.5,"a":{"b":[0,3e2,5]},"name":"d\u00e9v\ud83d\ude00","ok":true,"obj":{"z":1},"esc\"k":7}`
	if err := x.Extract([]byte(doc), out); err != nil {
		t.Fatal(err)
	}
	want := []Value{NumberValue(-21.5), NumberValue(300), StringValue("dév😀"), BoolValue(true), {}, {}, NumberValue(7)}
	for i := range want {
		if out[i] != want[i] {
			t.Errorf("slot %d = %+v, want %+v", i, out[i], want[i])
		}
	}
	for _, bad := range []string{``, `{`, `{"temp":}`, `{"temp":1,}`, `[1 2]`, `{"a":01}`, `{"a":1.}`, `nul`, `{"a":1} x`, `{"a":"\x"}`} {
		if err := x.Extract([]byte(bad), out); err == nil {
			t.Errorf("Extract(%q) accepted", bad)
		}
	}
}

// TestNumbers compares the fast number path with encoding/json.
func TestNumbers(t *testing.T) {
	x := Compile([][]Elem{{{Key: "v"}}})
	out := make([]Value, 1)
	for _, n := range []string{"0", "-0", "1", "21.375", "123456789012345", "1234567890123456789", "0.1", "-3.14159", "1e-7", "2.5E+10", "9007199254740993", "0.000000000000000000000001"} {
		if err := x.Extract([]byte(`{"v":`+n+`}`), out); err != nil {
			t.Fatal(n, err)
		}
		var want float64
		if err := json.Unmarshal([]byte(n), &want); err != nil {
			t.Fatal(err)
		}
		if out[0].Num != want {
			t.Errorf("%s = %v, want %v", n, out[0].Num, want)
		}
	}
}

func FuzzExtract(f *testing.F) {
	f.Add([]byte(`{"temp":21.5,"a":{"b":[1,2]},"s":"x\n"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		x := Compile([][]Elem{{{Key: "temp"}}, {{Key: "a"}, {Key: "b"}, {Index: 1, IsIndex: true}}, {{Key: "s"}}})
		out := make([]Value, 3)
		err := x.Extract(data, out)
		if err == nil && !json.Valid(data) && utf8.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
	})
}
