package registry

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode"

	"golang.org/x/crypto/bcrypt"
)

// Credential types.
const (
	TypeHashedPassword = "hashed-password"
	TypePSK            = "psk"
	TypeX509           = "x509-cert"
)

// Hash functions of hashed-password secrets.
const (
	HashSHA256 = "sha-256"
	HashSHA512 = "sha-512"
	HashBcrypt = "bcrypt"
)

// Credential is one credential of a device: a (type, auth-id) pair, unique
// in the tenant, with its secrets.
type Credential struct {
	Type    string         `json:"type"`
	AuthID  string         `json:"auth-id"`
	Enabled bool           `json:"enabled"`
	Ext     map[string]any `json:"ext,omitempty"`
	Secrets []Secret       `json:"secrets"`
	// Cert is write-only, for x509-cert: a DER certificate (Base64 in
	// JSON) whose subject DN becomes the auth-id.
	Cert []byte `json:"cert,omitempty"`
}

// Secret is one secret of a credential. The fields used depend on the
// credential's type.
type Secret struct {
	ID        string    `json:"id,omitempty"`
	Enabled   bool      `json:"enabled"`
	NotBefore time.Time `json:"not-before,omitzero"`
	NotAfter  time.Time `json:"not-after,omitzero"`
	Comment   string    `json:"comment,omitempty"`

	// hashed-password. PasswordPlain is write-only: the registry hashes
	// it and never stores it.
	HashFunction  string `json:"hash-function,omitempty"`
	PasswordHash  string `json:"pwd-hash,omitempty"`
	Salt          string `json:"salt,omitempty"`
	PasswordPlain string `json:"pwd-plain,omitempty"`

	// psk: the pre-shared key; rpk: the DER public key (Base64 in JSON).
	Key []byte `json:"key,omitempty"`
	// rpk: the key's algorithm, RSA or EC.
	Algorithm string `json:"algorithm,omitempty"`
	// Cert is write-only, for rpk: a DER certificate (Base64 in JSON)
	// whose public key, algorithm and validity the secret takes, as Hono
	// accepts instead of key and algorithm.
	Cert []byte `json:"cert,omitempty"`
}

// UnmarshalJSON applies Hono's defaults and rejects unknown fields.
func (c *Credential) UnmarshalJSON(data []byte) error {
	type plain Credential
	p := plain{Enabled: true}
	if err := decodeStrict(data, &p); err != nil {
		return err
	}
	*c = Credential(p)
	return nil
}

// UnmarshalJSON applies Hono's defaults and rejects unknown fields.
func (s *Secret) UnmarshalJSON(data []byte) error {
	type plain Secret
	p := plain{Enabled: true}
	if err := decodeStrict(data, &p); err != nil {
		return err
	}
	*s = Secret(p)
	return nil
}

// hasConfidential reports whether the secret carries secret material, as
// opposed to a reference by id to a secret already stored (Hono's patch
// mode).
func (s *Secret) hasConfidential() bool {
	return s.PasswordPlain != "" || s.PasswordHash != "" || s.Salt != "" || len(s.Key) > 0
}

// ValidAt reports whether the secret is enabled and within its validity at
// t.
func (s *Secret) ValidAt(t time.Time) bool {
	if !s.Enabled {
		return false
	}
	if !s.NotBefore.IsZero() && t.Before(s.NotBefore) {
		return false
	}
	if !s.NotAfter.IsZero() && !t.Before(s.NotAfter) {
		return false
	}
	return true
}

// redacted returns a copy without hashes, salts and keys, for management
// reads.
func (c Credential) redacted() Credential {
	c.Cert = nil
	c.Secrets = append([]Secret(nil), c.Secrets...)
	for i := range c.Secrets {
		s := &c.Secrets[i]
		s.PasswordHash, s.Salt, s.PasswordPlain, s.Key = "", "", "", nil
	}
	return c
}

// ParseCredentials decodes the JSON array of a PUT on a device's
// credentials and checks what can be checked without the stored set and
// the registry's hashing configuration: syntax, types, auth-ids, fields
// per type, validity periods and duplicates.
func ParseCredentials(data []byte) ([]Credential, error) {
	var creds []Credential
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, invalidf("credentials: a JSON array is required")
	}
	if err := decodeStrict(data, &creds); err != nil {
		return nil, invalidf("credentials: %v", err)
	}
	if creds == nil {
		return nil, invalidf("credentials: a JSON array is required, not null")
	}
	seen := map[string]bool{}
	for i := range creds {
		c := &creds[i]
		if err := c.check(); err != nil {
			return nil, invalidf("credentials[%d]: %v", i, err)
		}
		k := c.Type + "\x00" + c.AuthID
		if seen[k] {
			return nil, invalidf("credentials[%d]: type %q and auth-id %q listed twice", i, c.Type, c.AuthID)
		}
		seen[k] = true
	}
	return creds, nil
}

// check validates the credential apart from secret references and hashes.
func (c *Credential) check() error {
	if !credentialTypePattern.MatchString(c.Type) || len(c.Type) > 64 {
		return fmt.Errorf("type %q: must match %s", c.Type, credentialTypePattern)
	}
	if len(c.Cert) > 0 {
		if c.Type != TypeX509 {
			return fmt.Errorf("cert is only allowed with type %s", TypeX509)
		}
		cert, err := x509.ParseCertificate(c.Cert)
		if err != nil {
			return fmt.Errorf("cert: %v", err)
		}
		dn := cert.Subject.String()
		if c.AuthID != "" && c.AuthID != dn {
			return fmt.Errorf("auth-id %q differs from the certificate's subject DN %q", c.AuthID, dn)
		}
		c.AuthID = dn
		c.Cert = nil
	}
	if err := checkAuthID(c.AuthID); err != nil {
		return err
	}
	switch c.Type {
	case TypeHashedPassword, TypePSK, TypeRPK:
		if len(c.Secrets) == 0 {
			return fmt.Errorf("type %s needs at least one secret", c.Type)
		}
	case TypeX509:
		if len(c.Secrets) > 1 {
			return fmt.Errorf("type %s has at most one secret", c.Type)
		}
		if len(c.Secrets) == 0 {
			c.Secrets = []Secret{{Enabled: true}}
		}
	default:
		return fmt.Errorf("type %q is not supported (%s, %s, %s, %s)", c.Type, TypeHashedPassword, TypePSK, TypeX509, TypeRPK)
	}
	ids := map[string]bool{}
	for j := range c.Secrets {
		s := &c.Secrets[j]
		if err := s.check(c.Type); err != nil {
			return fmt.Errorf("secrets[%d]: %v", j, err)
		}
		if s.ID != "" {
			if ids[s.ID] {
				return fmt.Errorf("secrets[%d]: id %q used twice", j, s.ID)
			}
			ids[s.ID] = true
		}
	}
	return nil
}

func checkAuthID(id string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("auth-id is required")
	}
	if len(id) > maxAuthIDLen {
		return fmt.Errorf("auth-id longer than %d bytes", maxAuthIDLen)
	}
	for _, r := range id {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("auth-id %q contains a control character or invalid UTF-8", id)
		}
	}
	return nil
}

func (s *Secret) check(typ string) error {
	if !s.NotBefore.IsZero() && !s.NotAfter.IsZero() && !s.NotBefore.Before(s.NotAfter) {
		return fmt.Errorf("not-before must be before not-after")
	}
	if len(s.ID) > maxIDLen {
		return fmt.Errorf("id longer than %d bytes", maxIDLen)
	}
	pwd := s.PasswordPlain != "" || s.PasswordHash != "" || s.Salt != "" || s.HashFunction != ""
	if len(s.Cert) > 0 && typ != TypeRPK {
		return fmt.Errorf("cert is a field of %s secrets only (an %s credential takes its cert beside the secrets)", TypeRPK, TypeX509)
	}
	switch typ {
	case TypeHashedPassword:
		if len(s.Key) > 0 {
			return fmt.Errorf("key is not a field of %s secrets", typ)
		}
		if s.PasswordPlain != "" && (s.PasswordHash != "" || s.Salt != "") {
			return fmt.Errorf("give either pwd-plain or pwd-hash, not both")
		}
		if s.ID == "" && s.PasswordPlain == "" && s.PasswordHash == "" {
			return fmt.Errorf("a new secret needs pwd-plain or pwd-hash")
		}
		if s.PasswordHash == "" && s.Salt != "" {
			return fmt.Errorf("salt needs pwd-hash")
		}
		switch s.HashFunction {
		case "", HashSHA256, HashSHA512, HashBcrypt:
		default:
			return fmt.Errorf("hash-function %q is not supported (%s, %s, %s)", s.HashFunction, HashSHA256, HashSHA512, HashBcrypt)
		}
		if len(s.PasswordPlain) > 72 {
			// bcrypt's limit; applied to every function so that changing
			// the configured function cannot make stored passwords invalid.
			return fmt.Errorf("pwd-plain longer than 72 bytes")
		}
		if s.PasswordHash != "" {
			if err := checkHash(s.HashFunction, s.PasswordHash, s.Salt, bcrypt.MaxCost); err != nil {
				return err
			}
		}
	case TypeRPK:
		if pwd {
			return fmt.Errorf("password fields are not fields of %s secrets", typ)
		}
		return checkRPK(s)
	case TypePSK:
		if pwd {
			return fmt.Errorf("password fields are not fields of %s secrets", typ)
		}
		if s.Algorithm != "" {
			return fmt.Errorf("algorithm is not a field of %s secrets", typ)
		}
		if s.ID == "" && len(s.Key) == 0 {
			return fmt.Errorf("a new secret needs a key")
		}
	case TypeX509:
		if pwd || len(s.Key) > 0 {
			return fmt.Errorf("%s secrets hold only validity, enabled and comment", typ)
		}
	}
	return nil
}

// checkHash validates a client-supplied hash. maxCost bounds bcrypt's cost
// factor: a high cost makes every login of that device an expensive CPU
// job for the adapter, which Hono bounds with maxBcryptCostFactor.
func checkHash(function, hash, salt string, maxCost int) error {
	if salt != "" {
		if _, err := base64.StdEncoding.DecodeString(salt); err != nil {
			return fmt.Errorf("salt: not Base64")
		}
	}
	switch function {
	case "", HashSHA256, HashSHA512:
		raw, err := base64.StdEncoding.DecodeString(hash)
		if err != nil {
			return fmt.Errorf("pwd-hash: not Base64")
		}
		want := 32
		if function == HashSHA512 {
			want = 64
		}
		if len(raw) != want {
			return fmt.Errorf("pwd-hash: %d bytes, want %d for %s", len(raw), want, function)
		}
	case HashBcrypt:
		if salt != "" {
			return fmt.Errorf("salt: bcrypt hashes carry their own salt")
		}
		if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
			return fmt.Errorf("pwd-hash: not a bcrypt hash ($2a$...)")
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return fmt.Errorf("pwd-hash: %v", err)
		}
		if cost < bcrypt.MinCost || cost > maxCost {
			return fmt.Errorf("pwd-hash: bcrypt cost %d outside %d..%d", cost, bcrypt.MinCost, maxCost)
		}
	default:
		return fmt.Errorf("hash-function %q is not supported (%s, %s, %s)", function, HashSHA256, HashSHA512, HashBcrypt)
	}
	return nil
}
