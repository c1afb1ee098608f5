package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/internal/store/memstore"
)

var ctx = context.Background()

func newTestRegistry(t *testing.T, now time.Time) *Registry {
	t.Helper()
	r, err := New(memstore.NewRegistry(), &Options{BcryptCost: bcrypt.MinCost, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustParseCreds(t *testing.T, s string) []Credential {
	t.Helper()
	c, err := ParseCredentials([]byte(s))
	if err != nil {
		t.Fatalf("ParseCredentials(%s): %v", s, err)
	}
	return c
}

func TestOptions(t *testing.T) {
	tests := []struct {
		opts *Options
		ok   bool
	}{
		{nil, true},
		{&Options{HashFunction: HashSHA512}, true},
		{&Options{HashFunction: "md5"}, false},
		{&Options{BcryptCost: 3}, false},
		{&Options{BcryptCost: 12}, true},
		{&Options{BcryptCost: 12, MaxBcryptCost: 11}, false},
		{&Options{MaxBcryptCost: 32}, false},
	}
	for i, tt := range tests {
		_, err := New(memstore.NewRegistry(), tt.opts)
		if (err == nil) != tt.ok {
			t.Errorf("%d: New(%+v) error %v; want ok=%v", i, tt.opts, err, tt.ok)
		}
	}
}

func TestTenantCRUD(t *testing.T) {
	r := newTestRegistry(t, time.Now())
	id, v1, err := r.CreateTenant(ctx, "t1", NewTenant())
	if err != nil || id != "t1" || v1 == "" {
		t.Fatalf("CreateTenant = %q, %q, %v", id, v1, err)
	}
	if _, _, err := r.CreateTenant(ctx, "t1", NewTenant()); !errors.Is(err, ErrConflict) {
		t.Fatalf("second CreateTenant: %v; want ErrConflict", err)
	}
	gen, _, err := r.CreateTenant(ctx, "", NewTenant())
	if err != nil || !ValidTenantID(gen) {
		t.Fatalf("CreateTenant with generated id = %q, %v", gen, err)
	}
	if _, _, err := r.CreateTenant(ctx, "bad/id", NewTenant()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("CreateTenant bad id: %v", err)
	}
	got, v, err := r.GetTenant(ctx, "t1")
	if err != nil || v != v1 || !got.Enabled {
		t.Fatalf("GetTenant = %+v, %q, %v", got, v, err)
	}
	disabled := NewTenant()
	disabled.Enabled = false
	if _, err := r.UpdateTenant(ctx, "t1", disabled, "wrong"); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("UpdateTenant with stale version: %v", err)
	}
	v2, err := r.UpdateTenant(ctx, "t1", disabled, v1)
	if err != nil || v2 == v1 {
		t.Fatalf("UpdateTenant = %q, %v", v2, err)
	}
	if _, err := r.UpdateTenant(ctx, "nope", disabled, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateTenant missing: %v", err)
	}
	if got, _, _ := r.GetTenant(ctx, "t1"); got.Enabled {
		t.Fatal("update not visible")
	}
	if err := r.DeleteTenant(ctx, "t1", v1); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("DeleteTenant stale: %v", err)
	}
	if err := r.DeleteTenant(ctx, "t1", "*"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.GetTenant(ctx, "t1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetTenant after delete: %v", err)
	}
	if err := r.DeleteTenant(ctx, "t1", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteTenant twice: %v", err)
	}
}

func TestParseTenant(t *testing.T) {
	tests := []struct {
		name, json string
		ok         bool
	}{
		{"empty", ``, true},
		{"defaults", `{}`, true},
		{"full", `{"enabled":false,"alias":"a","ext":{"k":1},"adapters":[{"type":"hono-mqtt","enabled":true}],
			"defaults":{"ttl":30},"minimum-message-size":4096,
			"registration-limits":{"max-devices":10},
			"resource-limits":{"max-connections":5,"max-ttl":60,
			  "data-volume":{"effective-since":"2019-04-25T14:30:00Z","max-bytes":20000,"period":{"mode":"days","no-of-days":30}},
			  "connection-duration":{"effective-since":"2019-04-25T14:30:00+02:00","max-minutes":600,"period":{"mode":"monthly"}}},
			"tracing":{"sampling-mode":"all"},"trust-anchor-group":"g"}`, true},
		{"unknown field", `{"enabeld":true}`, false},
		{"trailing", `{} {}`, false},
		{"not object", `[]`, false},
		{"adapter without type", `{"adapters":[{"enabled":true}]}`, false},
		{"adapter twice", `{"adapters":[{"type":"a"},{"type":"a"}]}`, false},
		{"negative limit", `{"registration-limits":{"max-devices":-2}}`, false},
		{"negative message size", `{"minimum-message-size":-1}`, false},
		{"bad period", `{"resource-limits":{"data-volume":{"effective-since":"2019-04-25T14:30:00Z","max-bytes":1,"period":{"mode":"weekly"}}}}`, false},
		{"days without count", `{"resource-limits":{"data-volume":{"effective-since":"2019-04-25T14:30:00Z","max-bytes":1,"period":{"mode":"days"}}}}`, false},
		{"limit without since", `{"resource-limits":{"connection-duration":{"max-minutes":1,"period":{"mode":"monthly"}}}}`, false},
		{"unlimited needs nothing", `{"resource-limits":{"data-volume":{"max-bytes":-1}}}`, true},
		{"ca without key", `{"trusted-ca":[{"subject-dn":"CN=ca"}]}`, false},
		{"ca bad key", `{"trusted-ca":[{"subject-dn":"CN=ca","public-key":"AAAA","not-before":"2020-01-01T00:00:00Z","not-after":"2030-01-01T00:00:00Z"}]}`, false},
		{"bad group", `{"trust-anchor-group":"a/b"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTenant([]byte(tt.json))
			if (err == nil) != tt.ok {
				t.Fatalf("ParseTenant: %v; want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
		})
	}
	tn, _ := ParseTenant([]byte(`{"adapters":[{"type":"hono-mqtt"}],"registration-limits":{},"resource-limits":{}}`))
	if !tn.Enabled || tn.Adapters[0].Enabled || !tn.Adapters[0].DeviceAuthenticationRequired ||
		tn.RegistrationLimits.MaxDevices != -1 || tn.ResourceLimits.MaxTTL != -1 {
		t.Fatalf("defaults not applied: %+v", tn)
	}
	if tn.AdapterEnabled("hono-mqtt") || tn.AdapterEnabled("hono-http") {
		t.Fatal("AdapterEnabled with a listed, not enabled adapter")
	}
	if all := NewTenant(); !all.AdapterEnabled("hono-http") {
		t.Fatal("no adapters listed: all enabled")
	}
}

func TestParseDevice(t *testing.T) {
	tests := []struct {
		name, json string
		ok         bool
	}{
		{"empty", ``, true},
		{"full", `{"enabled":false,"defaults":{"content-type":"text/plain"},"via":["gw1","gw2"],"viaGroups":["g"],
			"authorities":["auto-provisioning-enabled"],"downstream-message-mapper":"m","ext":{"a":"b"},
			"command-endpoint":{"uri":"https://example.com/{{deviceId}}","headers":{"k":"v"}},
			"status":{"created":"2020-01-01T00:00:00Z"}}`, true},
		{"memberOf with via", `{"via":["gw"],"memberOf":["g"]}`, false},
		{"memberOf", `{"memberOf":["g1","g2"]}`, true},
		{"bad via id", `{"via":["a/b"]}`, false},
		{"duplicate via", `{"via":["a","a"]}`, false},
		{"unknown authority", `{"authorities":["root"]}`, false},
		{"bad endpoint", `{"command-endpoint":{"uri":"ftp://x"}}`, false},
		{"unknown field", `{"vía":[]}`, false},
		{"mappers differ", `{"mapper":"a","downstream-message-mapper":"b"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDevice([]byte(tt.json))
			if (err == nil) != tt.ok {
				t.Fatalf("ParseDevice: %v; want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestDeviceCRUD(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := newTestRegistry(t, now)
	if _, _, err := r.CreateDevice(ctx, "t1", "d1", NewDevice()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CreateDevice without tenant: %v", err)
	}
	r.CreateTenant(ctx, "t1", NewTenant())
	id, v1, err := r.CreateDevice(ctx, "t1", "d1", NewDevice())
	if err != nil || id != "d1" {
		t.Fatal(id, err)
	}
	if _, _, err := r.CreateDevice(ctx, "t1", "d1", NewDevice()); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate device: %v", err)
	}
	self := NewDevice()
	self.Via = []string{"d2"}
	if _, _, err := r.CreateDevice(ctx, "t1", "d2", self); !errors.Is(err, ErrInvalid) {
		t.Fatalf("device as its own gateway: %v", err)
	}
	d, v, err := r.GetDevice(ctx, "t1", "d1")
	if err != nil || v != v1 || d.Status == nil || !d.Status.Created.Equal(now) {
		t.Fatalf("GetDevice = %+v, %q, %v", d, v, err)
	}
	d.Enabled = false
	v2, err := r.UpdateDevice(ctx, "t1", "d1", d, v1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.UpdateDevice(ctx, "t1", "d1", d, v1); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("stale update: %v", err)
	}
	d, _, _ = r.GetDevice(ctx, "t1", "d1")
	if d.Enabled || !d.Status.Created.Equal(now) || !d.Status.LastUpdate.Equal(now) {
		t.Fatalf("after update: %+v %+v", d, d.Status)
	}
	if _, _, err := r.GetDevice(ctx, "t1", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if err := r.DeleteDevice(ctx, "t1", "d1", v1); !errors.Is(err, ErrPrecondition) {
		t.Fatal(err)
	}
	if err := r.DeleteDevice(ctx, "t1", "d1", v2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.GetCredentials(ctx, "t1", "d1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("credentials survive their device: %v", err)
	}
}

func TestRegistrationLimits(t *testing.T) {
	r := newTestRegistry(t, time.Now())
	tn := NewTenant()
	tn.RegistrationLimits = &RegistrationLimits{MaxDevices: 2, MaxCredentialsPerDevice: 1}
	r.CreateTenant(ctx, "t", tn)
	for _, id := range []string{"a", "b"} {
		if _, _, err := r.CreateDevice(ctx, "t", id, NewDevice()); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := r.CreateDevice(ctx, "t", "c", NewDevice()); !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("third device: %v", err)
	}
	r.DeleteDevice(ctx, "t", "a", "")
	if _, _, err := r.CreateDevice(ctx, "t", "c", NewDevice()); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	two := mustParseCreds(t, `[{"type":"psk","auth-id":"x","secrets":[{"key":"AAEC"}]},{"type":"psk","auth-id":"y","secrets":[{"key":"AAEC"}]}]`)
	if _, err := r.SetCredentials(ctx, "t", "b", two, ""); !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("two credentials: %v", err)
	}
	r.DeleteAllDevices(ctx, "t")
	if res, err := r.SearchDevices(ctx, "t", Query{}, nil); err != nil || res.Total != 0 {
		t.Fatalf("after DeleteAllDevices: %+v %v", res, err)
	}
	for _, id := range []string{"a", "b"} {
		if _, _, err := r.CreateDevice(ctx, "t", id, NewDevice()); err != nil {
			t.Fatalf("count not reset by DeleteAllDevices: %v", err)
		}
	}
}

func TestCredentialsUniqueAndPatch(t *testing.T) {
	r := newTestRegistry(t, time.Now())
	r.CreateTenant(ctx, "t", NewTenant())
	r.CreateTenant(ctx, "u", NewTenant())
	for _, d := range []string{"d1", "d2"} {
		r.CreateDevice(ctx, "t", d, NewDevice())
	}
	r.CreateDevice(ctx, "u", "d1", NewDevice())
	pw := `[{"type":"hashed-password","auth-id":"sensor","secrets":[{"pwd-plain":"s3cr3t"}]}]`
	v1, err := r.SetCredentials(ctx, "t", "d1", mustParseCreds(t, pw), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetCredentials(ctx, "t", "d2", mustParseCreds(t, pw), ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("same auth-id on another device: %v", err)
	}
	if _, err := r.SetCredentials(ctx, "u", "d1", mustParseCreds(t, pw), ""); err != nil {
		t.Fatalf("same auth-id in another tenant: %v", err)
	}
	if _, err := r.SetCredentials(ctx, "t", "d1", mustParseCreds(t, pw), "stale"); !errors.Is(err, ErrPrecondition) {
		t.Fatal(err)
	}
	got, v, err := r.GetCredentials(ctx, "t", "d1")
	if err != nil || v != v1 || len(got) != 1 {
		t.Fatal(got, v, err)
	}
	b, _ := json.Marshal(got)
	for _, bad := range []string{"pwd-hash", "salt", "pwd-plain", "s3cr3t"} {
		if strings.Contains(string(b), bad) {
			t.Fatalf("GetCredentials leaks %s: %s", bad, b)
		}
	}
	// Patch mode: PUT back what GET returned, plus a comment; the password
	// still works.
	got[0].Secrets[0].Comment = "kept"
	if _, err := r.SetCredentials(ctx, "t", "d1", got, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(ctx, "t", "sensor", "s3cr3t"); err != nil {
		t.Fatalf("password lost in patch mode: %v", err)
	}
	unknown := mustParseCreds(t, `[{"type":"hashed-password","auth-id":"sensor","secrets":[{"id":"nope"}]}]`)
	if _, err := r.SetCredentials(ctx, "t", "d1", unknown, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("reference to a missing secret: %v", err)
	}
	// Replace mode frees the old auth-id for the other device.
	if _, err := r.SetCredentials(ctx, "t", "d1", []Credential{}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetCredentials(ctx, "t", "d2", mustParseCreds(t, pw), ""); err != nil {
		t.Fatalf("auth-id not released: %v", err)
	}
	if _, err := r.SetCredentials(ctx, "t", "nope", mustParseCreds(t, pw), ""); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	// Deleting the tenant releases everything.
	if err := r.DeleteTenant(ctx, "t", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(ctx, "t", "sensor", "s3cr3t"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("login after tenant delete: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	sha, salt := saltedHash(HashSHA512, []byte("salty"), "pw512"), "c2FsdHk="
	bc, _ := bcrypt.GenerateFromPassword([]byte("pwbc"), bcrypt.MinCost)
	r := newTestRegistry(t, now)
	r.CreateTenant(ctx, "t", NewTenant())
	off := NewTenant()
	off.Enabled = false
	r.CreateTenant(ctx, "off", off)
	r.CreateDevice(ctx, "t", "d", NewDevice())
	r.CreateDevice(ctx, "off", "d", NewDevice())
	dis := NewDevice()
	dis.Enabled = false
	r.CreateDevice(ctx, "t", "dis", dis)
	creds := fmt.Sprintf(`[
		{"type":"hashed-password","auth-id":"plain256","secrets":[{"pwd-plain":"pw256","hash-function":"sha-256"}]},
		{"type":"hashed-password","auth-id":"given512","secrets":[{"pwd-hash":%q,"salt":%q,"hash-function":"sha-512"}]},
		{"type":"hashed-password","auth-id":"givenbc","secrets":[{"pwd-hash":%q,"hash-function":"bcrypt"}]},
		{"type":"hashed-password","auth-id":"default","secrets":[{"pwd-plain":"pwdef"}]},
		{"type":"hashed-password","auth-id":"expired","secrets":[{"pwd-plain":"pw","not-after":"2026-01-01T00:00:00Z"}]},
		{"type":"hashed-password","auth-id":"future","secrets":[{"pwd-plain":"pw","not-before":"2027-01-01T00:00:00Z"}]},
		{"type":"hashed-password","auth-id":"rollover","secrets":[{"pwd-plain":"old","enabled":false},{"pwd-plain":"new"}]},
		{"type":"hashed-password","auth-id":"credoff","enabled":false,"secrets":[{"pwd-plain":"pw"}]},
		{"type":"x509-cert","auth-id":"CN=dev,O=acme"}
	]`, sha, salt, bc)
	if _, err := r.SetCredentials(ctx, "t", "d", mustParseCreds(t, creds), ""); err != nil {
		t.Fatal(err)
	}
	pw := mustParseCreds(t, `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-plain":"pw"}]}]`)
	r.SetCredentials(ctx, "t", "dis", pw, "")
	r.SetCredentials(ctx, "off", "d", pw, "")

	tests := []struct {
		tenant, authID, password string
		want                     error
	}{
		{"t", "plain256", "pw256", nil},
		{"t", "plain256", "wrong", ErrBadCredentials},
		{"t", "given512", "pw512", nil},
		{"t", "givenbc", "pwbc", nil},
		{"t", "default", "pwdef", nil},
		{"t", "expired", "pw", ErrBadCredentials},
		{"t", "future", "pw", ErrBadCredentials},
		{"t", "rollover", "old", ErrBadCredentials},
		{"t", "rollover", "new", nil},
		{"t", "credoff", "pw", ErrDisabled},
		{"t", "a", "pw", ErrDisabled},
		{"t", "a", "wrong", ErrBadCredentials},
		{"off", "a", "pw", ErrDisabled},
		{"t", "unknown", "pw", ErrBadCredentials},
		{"nope", "a", "pw", ErrBadCredentials},
		{"bad/tenant", "a", "pw", ErrBadCredentials},
		{"t", "CN=dev,O=acme", "", ErrBadCredentials},
	}
	for _, tt := range tests {
		id, err := r.Authenticate(ctx, tt.tenant, tt.authID, tt.password)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("Authenticate(%s, %s, %s) = %v; want %v", tt.tenant, tt.authID, tt.password, err, tt.want)
		}
		if err == nil && (id.DeviceID != "d" || id.TenantID != "t" || id.AuthID != tt.authID) {
			t.Errorf("identity %+v", id)
		}
	}
	res, err := r.ResolveCredentials(ctx, "t", TypeX509, "CN=dev,O=acme")
	if err != nil || res.DeviceID != "d" || len(res.Credential.Secrets) != 1 {
		t.Fatalf("ResolveCredentials = %+v, %v", res, err)
	}
	res, err = r.ResolveCredentials(ctx, "t", TypeHashedPassword, "default")
	if err != nil || res.Credential.Secrets[0].HashFunction != HashBcrypt || res.Credential.Secrets[0].PasswordHash == "" {
		t.Fatalf("default hash function: %+v, %v", res.Credential, err)
	}
	if _, err := r.ResolveCredentials(ctx, "t", TypePSK, "default"); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
}

func TestBcryptCostBound(t *testing.T) {
	r := newTestRegistry(t, time.Now())
	r.CreateTenant(ctx, "t", NewTenant())
	r.CreateDevice(ctx, "t", "d", NewDevice())
	// A syntactically valid hash of cost 11, above the default maximum 10;
	// generating a real one would take a second.
	h := "$2a$11$" + strings.Repeat("a", 53)
	creds := mustParseCreds(t, fmt.Sprintf(`[{"type":"hashed-password","auth-id":"x","secrets":[{"pwd-hash":%q,"hash-function":"bcrypt"}]}]`, h))
	if _, err := r.SetCredentials(ctx, "t", "d", creds, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("cost 11: %v", err)
	}
}

func TestTrustedCAs(t *testing.T) {
	r := newTestRegistry(t, time.Now())
	ca := func(dn, group string) Tenant {
		tn := NewTenant()
		tn.TrustAnchorGroup = group
		tn.TrustedCAs = []TrustedCA{testCA(t, dn)}
		return tn
	}
	if _, _, err := r.CreateTenant(ctx, "a", ca("CN=ca1", "")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.CreateTenant(ctx, "b", ca("CN=ca1", "")); !errors.Is(err, ErrConflict) {
		t.Fatalf("shared CA without group: %v", err)
	}
	r.CreateTenant(ctx, "g1", ca("CN=ca2", "grp"))
	if _, _, err := r.CreateTenant(ctx, "g2", ca("CN=ca2", "grp")); err != nil {
		t.Fatalf("shared CA within group: %v", err)
	}
	if _, _, err := r.CreateTenant(ctx, "g3", ca("CN=ca2", "other")); !errors.Is(err, ErrConflict) {
		t.Fatalf("shared CA across groups: %v", err)
	}
	ids, _ := r.TenantsByTrustedCA(ctx, "CN=ca2")
	if fmt.Sprint(ids) != "[g1 g2]" {
		t.Fatalf("TenantsByTrustedCA = %v", ids)
	}
	r.DeleteTenant(ctx, "a", "")
	if _, _, err := r.CreateTenant(ctx, "b", ca("CN=ca1", "")); err != nil {
		t.Fatalf("CA not released by delete: %v", err)
	}
	got, _, _ := r.GetTenant(ctx, "b")
	if got.TrustedCAs[0].ID == "" || got.TrustedCAs[0].Algorithm != "EC" {
		t.Fatalf("CA not completed: %+v", got.TrustedCAs[0])
	}
}
