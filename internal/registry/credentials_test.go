package registry

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCredentials(t *testing.T) {
	sha256Hash := "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=" // 32 bytes
	tests := []struct {
		name, json string
		ok         bool
	}{
		{"empty array", `[]`, true},
		{"empty body", ``, false},
		{"null", `null`, false},
		{"object", `{}`, false},
		{"plain", `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-plain":"p"}]}]`, true},
		{"hash sha-256", `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-hash":"` + sha256Hash + `","salt":"AAAA"}]}]`, true},
		{"hash wrong length", `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-hash":"AAAA","hash-function":"sha-256"}]}]`, false},
		{"hash sha-512 length", `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-hash":"` + sha256Hash + `","hash-function":"sha-512"}]}]`, false},
		{"hash not base64", `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-hash":"!!"}]}]`, false},
		{"salt not base64", `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-hash":"` + sha256Hash + `","salt":"!"}]}]`, false},
		{"bcrypt with salt", `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-hash":"$2a$04$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","salt":"AAAA","hash-function":"bcrypt"}]}]`, false},
		{"bcrypt bad prefix", `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-hash":"$1$04$x","hash-function":"bcrypt"}]}]`, false},
		{"bcrypt cost 3", `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-hash":"$2a$03$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","hash-function":"bcrypt"}]}]`, false},
		{"unknown function", `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-plain":"p","hash-function":"md5"}]}]`, false},
		{"plain and hash", `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-plain":"p","pwd-hash":"` + sha256Hash + `"}]}]`, false},
		{"plain too long", `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-plain":"` + strings.Repeat("x", 73) + `"}]}]`, false},
		{"no secrets", `[{"type":"hashed-password","auth-id":"a","secrets":[]}]`, false},
		{"empty secret", `[{"type":"hashed-password","auth-id":"a","secrets":[{}]}]`, false},
		{"reference", `[{"type":"hashed-password","auth-id":"a","secrets":[{"id":"s1","hash-function":"bcrypt"}]}]`, true},
		{"salt only", `[{"type":"hashed-password","auth-id":"a","secrets":[{"id":"s1","salt":"AAAA"}]}]`, false},
		{"key on password", `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-plain":"p","key":"AAAA"}]}]`, false},
		{"psk", `[{"type":"psk","auth-id":"id","secrets":[{"key":"AAEC"}]}]`, true},
		{"psk without key", `[{"type":"psk","auth-id":"id","secrets":[{}]}]`, false},
		{"psk with password", `[{"type":"psk","auth-id":"id","secrets":[{"key":"AAEC","pwd-plain":"x"}]}]`, false},
		{"x509 no secrets", `[{"type":"x509-cert","auth-id":"CN=a"}]`, true},
		{"x509 one secret", `[{"type":"x509-cert","auth-id":"CN=a","secrets":[{"not-after":"2030-01-01T00:00:00Z"}]}]`, true},
		{"x509 two secrets", `[{"type":"x509-cert","auth-id":"CN=a","secrets":[{},{}]}]`, false},
		{"x509 with key", `[{"type":"x509-cert","auth-id":"CN=a","secrets":[{"key":"AAAA"}]}]`, false},
		{"unknown type", `[{"type":"rpk","auth-id":"a","secrets":[{}]}]`, false},
		{"bad type", `[{"type":"Hashed Password","auth-id":"a","secrets":[{}]}]`, false},
		{"no auth-id", `[{"type":"psk","secrets":[{"key":"AAEC"}]}]`, false},
		{"blank auth-id", `[{"type":"psk","auth-id":"  ","secrets":[{"key":"AAEC"}]}]`, false},
		{"control in auth-id", `[{"type":"psk","auth-id":"a\u0000b","secrets":[{"key":"AAEC"}]}]`, false},
		{"duplicate", `[{"type":"psk","auth-id":"a","secrets":[{"key":"AAEC"}]},{"type":"psk","auth-id":"a","secrets":[{"key":"AAEC"}]}]`, false},
		{"same auth-id other type", `[{"type":"psk","auth-id":"a","secrets":[{"key":"AAEC"}]},{"type":"x509-cert","auth-id":"a"}]`, true},
		{"duplicate secret id", `[{"type":"psk","auth-id":"a","secrets":[{"id":"1","key":"AAEC"},{"id":"1","key":"AAEC"}]}]`, false},
		{"validity reversed", `[{"type":"psk","auth-id":"a","secrets":[{"key":"AAEC","not-before":"2030-01-01T00:00:00Z","not-after":"2020-01-01T00:00:00Z"}]}]`, false},
		{"bad time", `[{"type":"psk","auth-id":"a","secrets":[{"key":"AAEC","not-before":"yesterday"}]}]`, false},
		{"unknown field", `[{"type":"psk","auth-id":"a","secret":[]}]`, false},
		{"unknown secret field", `[{"type":"psk","auth-id":"a","secrets":[{"key":"AAEC","pwd":"x"}]}]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCredentials([]byte(tt.json))
			if (err == nil) != tt.ok {
				t.Fatalf("ParseCredentials: %v; want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("%v is not ErrInvalid", err)
			}
		})
	}
}

func TestSecretDefaults(t *testing.T) {
	c, err := ParseCredentials([]byte(`[{"type":"psk","auth-id":"a","secrets":[{"key":"AAEC"}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	if !c[0].Enabled || !c[0].Secrets[0].Enabled {
		t.Fatalf("enabled must default to true: %+v", c[0])
	}
}
