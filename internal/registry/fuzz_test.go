package registry

import (
	"encoding/json"
	"testing"
)

// FuzzParseCredentials checks that the credentials parser never panics and
// that whatever it accepts survives a JSON round trip unchanged in meaning.
func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte(`[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-plain":"p"}]}]`))
	f.Add([]byte(`[{"type":"x509-cert","auth-id":"CN=a"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		creds, err := ParseCredentials(data)
		if err != nil {
			return
		}
		b, err := json.Marshal(creds)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := ParseCredentials(b)
		if err != nil {
			t.Fatalf("accepted %s, but not its re-encoding %s: %v", data, b, err)
		}
		if len(again) != len(creds) {
			t.Fatalf("round trip changed the number of credentials: %s", b)
		}
	})
}

// FuzzParseFilter checks that filterJson parsing and matching never panic,
// whatever the pointer and the document.
func FuzzParseFilter(f *testing.F) {
	f.Add(`{"field":"/ext/brand","value":"a*c?"}`, `{"ext":{"brand":"abcd"}}`)
	f.Add(`{"field":"/a/0","value":1}`, `{"a":[1]}`)
	f.Fuzz(func(t *testing.T, filter, doc string) {
		flt, err := ParseFilter(filter)
		if err != nil {
			return
		}
		var d any
		if json.Unmarshal([]byte(doc), &d) != nil {
			return
		}
		flt.matches(d)
		if s, err := ParseSort(`{"field":` + mustJSON(flt.Field) + `}`); err == nil {
			v, _ := lookup(d, s.path)
			compareJSON(v, v)
		}
	})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
