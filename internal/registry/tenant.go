package registry

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Tenant is a tenant as in Hono's management API. The JSON names are
// Hono's; decoding applies Hono's defaults (enabled true, limits -1) and
// rejects unknown fields, so that a typo is an error and not a silently
// ignored setting.
type Tenant struct {
	Enabled            bool                `json:"enabled"`
	Alias              string              `json:"alias,omitempty"`
	Ext                map[string]any      `json:"ext,omitempty"`
	Adapters           []Adapter           `json:"adapters,omitempty"`
	Defaults           map[string]any      `json:"defaults,omitempty"`
	MinimumMessageSize int                 `json:"minimum-message-size,omitempty"`
	RegistrationLimits *RegistrationLimits `json:"registration-limits,omitempty"`
	ResourceLimits     *ResourceLimits     `json:"resource-limits,omitempty"`
	Tracing            map[string]any      `json:"tracing,omitempty"`
	TrustAnchorGroup   string              `json:"trust-anchor-group,omitempty"`
	TrustedCAs         []TrustedCA         `json:"trusted-ca,omitempty"`
}

// Adapter is the per-adapter configuration of a tenant.
type Adapter struct {
	// Type is the adapter type, e.g. "hono-mqtt".
	Type string `json:"type"`
	// Enabled defaults to false, as in Hono: listing an adapter without
	// enabling it disables it.
	Enabled bool `json:"enabled"`
	// DeviceAuthenticationRequired defaults to true.
	DeviceAuthenticationRequired bool           `json:"device-authentication-required"`
	Ext                          map[string]any `json:"ext,omitempty"`
}

// RegistrationLimits bound a tenant's registry records; -1 is unlimited.
type RegistrationLimits struct {
	MaxDevices              int `json:"max-devices"`
	MaxCredentialsPerDevice int `json:"max-credentials-per-device"`
}

// ResourceLimits are enforced by the adapters; -1 is unlimited. TTLs are in
// seconds.
type ResourceLimits struct {
	MaxConnections        int                 `json:"max-connections"`
	MaxTTL                int64               `json:"max-ttl"`
	MaxTTLCommandResponse int64               `json:"max-ttl-command-response"`
	MaxTTLTelemetryQoS0   int64               `json:"max-ttl-telemetry-qos0"`
	MaxTTLTelemetryQoS1   int64               `json:"max-ttl-telemetry-qos1"`
	DataVolume            *DataVolume         `json:"data-volume,omitempty"`
	ConnectionDuration    *ConnectionDuration `json:"connection-duration,omitempty"`
	Ext                   map[string]any      `json:"ext,omitempty"`
}

// DataVolume limits the bytes a tenant's devices may send per period.
type DataVolume struct {
	EffectiveSince time.Time    `json:"effective-since,omitzero"`
	MaxBytes       int64        `json:"max-bytes"`
	Period         *LimitPeriod `json:"period,omitempty"`
}

// ConnectionDuration limits a tenant's connection minutes per period.
type ConnectionDuration struct {
	EffectiveSince time.Time    `json:"effective-since,omitzero"`
	MaxMinutes     int64        `json:"max-minutes"`
	Period         *LimitPeriod `json:"period,omitempty"`
}

// LimitPeriod is "monthly", or "days" with NoOfDays.
type LimitPeriod struct {
	Mode     string `json:"mode"`
	NoOfDays int    `json:"no-of-days,omitempty"`
}

// TrustedCA is a certificate authority whose client certificates
// authenticate the tenant's devices.
type TrustedCA struct {
	ID        string `json:"id,omitempty"`
	SubjectDN string `json:"subject-dn,omitempty"`
	// PublicKey is the DER SubjectPublicKeyInfo (Base64 in JSON).
	PublicKey []byte `json:"public-key,omitempty"`
	// Cert is write-only: a DER certificate (Base64 in JSON) from which
	// the registry takes subject DN, public key, algorithm and validity.
	Cert      []byte    `json:"cert,omitempty"`
	Algorithm string    `json:"algorithm,omitempty"`
	NotBefore time.Time `json:"not-before,omitzero"`
	NotAfter  time.Time `json:"not-after,omitzero"`

	AuthIDTemplate                   string `json:"auth-id-template,omitempty"`
	AutoProvisioningEnabled          bool   `json:"auto-provisioning-enabled,omitempty"`
	AutoProvisioningAsGateway        bool   `json:"auto-provisioning-as-gateway,omitempty"`
	AutoProvisioningDeviceIDTemplate string `json:"auto-provisioning-device-id-template,omitempty"`
	OCSPRevocationEnabled            bool   `json:"ocsp-revocation-enabled,omitempty"`
	OCSPResponderURI                 string `json:"ocsp-responder-uri,omitempty"`
	OCSPResponderCert                []byte `json:"ocsp-responder-cert,omitempty"`
	OCSPNonceEnabled                 bool   `json:"ocsp-nonce-enabled,omitempty"`
}

// TenantWithID is a tenant in search results.
type TenantWithID struct {
	ID string `json:"id"`
	Tenant
}

// decodeStrict decodes exactly one JSON value into v, rejecting unknown
// fields and trailing data.
func decodeStrict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// UnmarshalJSON applies Hono's defaults and rejects unknown fields.
func (t *Tenant) UnmarshalJSON(data []byte) error {
	type plain Tenant
	p := plain{Enabled: true}
	if err := decodeStrict(data, &p); err != nil {
		return err
	}
	*t = Tenant(p)
	return nil
}

// UnmarshalJSON applies Hono's defaults and rejects unknown fields.
func (a *Adapter) UnmarshalJSON(data []byte) error {
	type plain Adapter
	p := plain{DeviceAuthenticationRequired: true}
	if err := decodeStrict(data, &p); err != nil {
		return err
	}
	*a = Adapter(p)
	return nil
}

// UnmarshalJSON applies Hono's defaults (unlimited) and rejects unknown
// fields.
func (l *RegistrationLimits) UnmarshalJSON(data []byte) error {
	type plain RegistrationLimits
	p := plain{MaxDevices: -1, MaxCredentialsPerDevice: -1}
	if err := decodeStrict(data, &p); err != nil {
		return err
	}
	*l = RegistrationLimits(p)
	return nil
}

// UnmarshalJSON applies Hono's defaults (unlimited) and rejects unknown
// fields.
func (l *ResourceLimits) UnmarshalJSON(data []byte) error {
	type plain ResourceLimits
	p := plain{MaxConnections: -1, MaxTTL: -1, MaxTTLCommandResponse: -1, MaxTTLTelemetryQoS0: -1, MaxTTLTelemetryQoS1: -1}
	if err := decodeStrict(data, &p); err != nil {
		return err
	}
	*l = ResourceLimits(p)
	return nil
}

// UnmarshalJSON applies Hono's default (unlimited) and rejects unknown
// fields.
func (d *DataVolume) UnmarshalJSON(data []byte) error {
	type plain DataVolume
	p := plain{MaxBytes: -1}
	if err := decodeStrict(data, &p); err != nil {
		return err
	}
	*d = DataVolume(p)
	return nil
}

// UnmarshalJSON applies Hono's default (unlimited) and rejects unknown
// fields.
func (d *ConnectionDuration) UnmarshalJSON(data []byte) error {
	type plain ConnectionDuration
	p := plain{MaxMinutes: -1}
	if err := decodeStrict(data, &p); err != nil {
		return err
	}
	*d = ConnectionDuration(p)
	return nil
}

// NewTenant returns a tenant with Hono's defaults: enabled, no limits.
func NewTenant() Tenant { return Tenant{Enabled: true} }

// ParseTenant decodes a tenant's JSON (an empty body is a default tenant)
// and checks it.
func ParseTenant(data []byte) (Tenant, error) {
	t := NewTenant()
	if len(bytes.TrimSpace(data)) > 0 {
		if err := decodeStrict(data, &t); err != nil {
			return t, invalidf("tenant: %v", err)
		}
	}
	return t, t.Validate()
}

// AdapterEnabled reports whether devices of the tenant may use the adapter
// of the given type: all adapters are enabled when none is listed, and only
// the listed, enabled ones otherwise.
func (t *Tenant) AdapterEnabled(typ string) bool {
	if len(t.Adapters) == 0 {
		return true
	}
	for _, a := range t.Adapters {
		if a.Type == typ {
			return a.Enabled
		}
	}
	return false
}

// Validate checks the tenant against Hono's rules. It also completes trusted
// CAs given as certificates (Cert), which is why it has a pointer receiver.
func (t *Tenant) Validate() error {
	if t.MinimumMessageSize < 0 {
		return invalidf("minimum-message-size must not be negative")
	}
	seen := map[string]bool{}
	for i, a := range t.Adapters {
		if strings.TrimSpace(a.Type) == "" {
			return invalidf("adapters[%d]: type is required", i)
		}
		if seen[a.Type] {
			return invalidf("adapters: type %q listed twice", a.Type)
		}
		seen[a.Type] = true
	}
	if l := t.RegistrationLimits; l != nil {
		if l.MaxDevices < -1 || l.MaxCredentialsPerDevice < -1 {
			return invalidf("registration-limits: values must be -1 (unlimited) or more")
		}
	}
	if l := t.ResourceLimits; l != nil {
		if err := l.validate(); err != nil {
			return err
		}
	}
	if t.TrustAnchorGroup != "" && !ValidTenantID(t.TrustAnchorGroup) {
		return invalidf("trust-anchor-group %q: must match %s", t.TrustAnchorGroup, tenantIDPattern)
	}
	ids := map[string]bool{}
	for i := range t.TrustedCAs {
		ca := &t.TrustedCAs[i]
		if err := ca.complete(); err != nil {
			return invalidf("trusted-ca[%d]: %v", i, err)
		}
		if ca.ID == "" {
			ca.ID = newID()
		}
		if ids[ca.ID] {
			return invalidf("trusted-ca[%d]: id %q used twice", i, ca.ID)
		}
		ids[ca.ID] = true
	}
	return nil
}

func (l *ResourceLimits) validate() error {
	for _, v := range []int64{int64(l.MaxConnections), l.MaxTTL, l.MaxTTLCommandResponse, l.MaxTTLTelemetryQoS0, l.MaxTTLTelemetryQoS1} {
		if v < -1 {
			return invalidf("resource-limits: values must be -1 (unlimited) or more")
		}
	}
	if d := l.DataVolume; d != nil {
		if err := checkLimitPeriod("data-volume", d.MaxBytes, d.EffectiveSince, d.Period); err != nil {
			return err
		}
	}
	if d := l.ConnectionDuration; d != nil {
		if err := checkLimitPeriod("connection-duration", d.MaxMinutes, d.EffectiveSince, d.Period); err != nil {
			return err
		}
	}
	return nil
}

func checkLimitPeriod(name string, limit int64, since time.Time, p *LimitPeriod) error {
	if limit < -1 {
		return invalidf("resource-limits.%s: the limit must be -1 (unlimited) or more", name)
	}
	if limit == -1 {
		return nil
	}
	if since.IsZero() {
		return invalidf("resource-limits.%s: effective-since is required with a limit", name)
	}
	if p == nil {
		return invalidf("resource-limits.%s: period is required with a limit", name)
	}
	switch p.Mode {
	case "monthly":
	case "days":
		if p.NoOfDays <= 0 {
			return invalidf("resource-limits.%s.period: no-of-days must be positive in mode days", name)
		}
	default:
		return invalidf("resource-limits.%s.period: mode must be monthly or days, not %q", name, p.Mode)
	}
	return nil
}

// templatePlaceholder matches the placeholders of auth-id and device-id
// templates.
var templatePlaceholder = regexp.MustCompile(`\{\{([^{}]*)\}\}`)

func checkTemplate(name, tmpl string) error {
	for _, m := range templatePlaceholder.FindAllStringSubmatch(tmpl, -1) {
		switch m[1] {
		case "subject-dn", "subject-cn", "subject-ou", "subject-o":
		default:
			return fmt.Errorf("%s: unknown placeholder {{%s}}", name, m[1])
		}
	}
	return nil
}

// complete fills a CA given as a certificate and checks the result.
func (ca *TrustedCA) complete() error {
	if len(ca.Cert) > 0 {
		cert, err := x509.ParseCertificate(ca.Cert)
		if err != nil {
			return fmt.Errorf("cert: %v", err)
		}
		ca.SubjectDN = cert.Subject.String()
		ca.PublicKey = cert.RawSubjectPublicKeyInfo
		ca.NotBefore, ca.NotAfter = cert.NotBefore.UTC(), cert.NotAfter.UTC()
		switch cert.PublicKeyAlgorithm {
		case x509.RSA:
			ca.Algorithm = "RSA"
		case x509.ECDSA:
			ca.Algorithm = "EC"
		default:
			return fmt.Errorf("cert: unsupported public key algorithm %v", cert.PublicKeyAlgorithm)
		}
		ca.Cert = nil
	}
	if strings.TrimSpace(ca.SubjectDN) == "" {
		return errors.New("subject-dn (or cert) is required")
	}
	if len(ca.PublicKey) == 0 {
		return errors.New("public-key (or cert) is required")
	}
	if _, err := x509.ParsePKIXPublicKey(ca.PublicKey); err != nil {
		return fmt.Errorf("public-key: not a DER SubjectPublicKeyInfo: %v", err)
	}
	switch ca.Algorithm {
	case "":
		ca.Algorithm = "RSA"
	case "RSA", "EC":
	default:
		return fmt.Errorf("algorithm must be RSA or EC, not %q", ca.Algorithm)
	}
	if ca.NotBefore.IsZero() || ca.NotAfter.IsZero() {
		return errors.New("not-before and not-after are required (or give cert)")
	}
	if !ca.NotBefore.Before(ca.NotAfter) {
		return errors.New("not-before must be before not-after")
	}
	if err := checkTemplate("auth-id-template", ca.AuthIDTemplate); err != nil {
		return err
	}
	if err := checkTemplate("auto-provisioning-device-id-template", ca.AutoProvisioningDeviceIDTemplate); err != nil {
		return err
	}
	if ca.OCSPRevocationEnabled && ca.OCSPResponderURI == "" {
		return errors.New("ocsp-responder-uri is required with ocsp-revocation-enabled")
	}
	return nil
}
