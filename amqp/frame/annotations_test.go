package frame

import (
	"testing"

	"github.com/ferry-iot/ferry/amqp/encoding"
)

func TestAnnotationsGetAndInteger(t *testing.T) {
	a := Annotations{encoding.Symbol("x-sym"): int32(7), "x-str": uint64(9), encoding.Symbol("x-big"): uint64(1 << 63)}
	for _, tc := range []struct {
		key  encoding.Symbol
		want int64
		ok   bool
	}{
		{"x-sym", 7, true},
		{"x-str", 9, true},   // a string key, from a lax client
		{"x-big", 0, false},  // past int64
		{"x-none", 0, false}, // absent
	} {
		v, _ := a.Get(tc.key)
		n, ok := Integer(v)
		if n != tc.want || ok != tc.ok {
			t.Errorf("Get(%s) then Integer = %d %v, want %d %v", tc.key, n, ok, tc.want, tc.ok)
		}
	}
	if _, ok := Integer("7"); ok {
		t.Error("a string is not an integer")
	}
}
