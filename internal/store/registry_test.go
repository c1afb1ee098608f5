package store

import (
	"bytes"
	"testing"
)

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ prefix, want string }{
		{"", ""},
		{"a", "b"},
		{"d/acme/", "d/acme0"},
		{"a\xff", "b"},
		{"a\xff\xff", "b"},
		{"\xff", ""},
		{"\xff\xff", ""},
		{"ca/x\x00", "ca/x\x01"},
	}
	for _, tt := range tests {
		got := PrefixEnd([]byte(tt.prefix))
		if tt.want == "" && got != nil || tt.want != "" && !bytes.Equal(got, []byte(tt.want)) {
			t.Errorf("PrefixEnd(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
	}
}
