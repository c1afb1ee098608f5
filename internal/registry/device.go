package registry

import (
	"bytes"
	"net/url"
	"time"
)

// AuthorityAutoProvisioning lets a gateway provision its edge devices.
const AuthorityAutoProvisioning = "auto-provisioning-enabled"

// Device is a device as in Hono's management API.
type Device struct {
	Enabled  bool           `json:"enabled"`
	Defaults map[string]any `json:"defaults,omitempty"`
	// Via lists the gateways (device ids) that may act for this device.
	Via []string `json:"via,omitempty"`
	// ViaGroups lists gateway groups whose members may act for it.
	ViaGroups []string `json:"viaGroups,omitempty"`
	// MemberOf places a gateway in groups; exclusive with Via and
	// ViaGroups.
	MemberOf                []string         `json:"memberOf,omitempty"`
	Authorities             []string         `json:"authorities,omitempty"`
	DownstreamMessageMapper string           `json:"downstream-message-mapper,omitempty"`
	UpstreamMessageMapper   string           `json:"upstream-message-mapper,omitempty"`
	Mapper                  string           `json:"mapper,omitempty"` // deprecated Hono name of DownstreamMessageMapper
	CommandEndpoint         *CommandEndpoint `json:"command-endpoint,omitempty"`
	Ext                     map[string]any   `json:"ext,omitempty"`
	// Status is maintained by the registry; it is ignored on write.
	Status *DeviceStatus `json:"status,omitempty"`
}

// CommandEndpoint is where commands for a device without a connection are
// sent (Hono's command endpoint); URI may contain {{deviceId}}.
type CommandEndpoint struct {
	URI               string            `json:"uri"`
	Headers           map[string]string `json:"headers,omitempty"`
	PayloadProperties map[string]any    `json:"payload-properties,omitempty"`
}

// DeviceStatus is the read-only part of a device.
type DeviceStatus struct {
	Created                          time.Time `json:"created,omitzero"`
	LastUpdate                       time.Time `json:"last-update,omitzero"`
	AutoProvisioned                  bool      `json:"auto-provisioned,omitempty"`
	AutoProvisioningNotificationSent bool      `json:"auto-provisioning-notification-sent,omitempty"`
}

// DeviceWithID is a device in search results.
type DeviceWithID struct {
	ID string `json:"id"`
	Device
}

// UnmarshalJSON applies Hono's defaults and rejects unknown fields.
func (d *Device) UnmarshalJSON(data []byte) error {
	type plain Device
	p := plain{Enabled: true}
	if err := decodeStrict(data, &p); err != nil {
		return err
	}
	*d = Device(p)
	return nil
}

// NewDevice returns a device with Hono's defaults: enabled.
func NewDevice() Device { return Device{Enabled: true} }

// ParseDevice decodes a device's JSON (an empty body is a default device)
// and checks it.
func ParseDevice(data []byte) (Device, error) {
	d := NewDevice()
	if len(bytes.TrimSpace(data)) > 0 {
		if err := decodeStrict(data, &d); err != nil {
			return d, invalidf("device: %v", err)
		}
	}
	return d, d.Validate("")
}

// IsGateway reports whether the device is a member of a gateway group.
// Devices named in another device's Via are gateways too; only a search
// over the tenant can tell that.
func (d *Device) IsGateway() bool { return len(d.MemberOf) > 0 }

// Validate checks the device against Hono's rules; id is the device's own
// id when known, to refuse a device that is its own gateway.
func (d *Device) Validate(id string) error {
	if len(d.MemberOf) > 0 && (len(d.Via) > 0 || len(d.ViaGroups) > 0) {
		return invalidf("memberOf cannot be combined with via or viaGroups")
	}
	lists := []struct {
		name string
		ids  []string
	}{{"via", d.Via}, {"viaGroups", d.ViaGroups}, {"memberOf", d.MemberOf}}
	for _, l := range lists {
		seen := map[string]bool{}
		for _, v := range l.ids {
			if !ValidDeviceID(v) {
				return invalidf("%s: %q is not a valid id (%s)", l.name, v, deviceIDPattern)
			}
			if seen[v] {
				return invalidf("%s: %q listed twice", l.name, v)
			}
			seen[v] = true
		}
	}
	for _, v := range d.Via {
		if v == id && id != "" {
			return invalidf("via: a device cannot be its own gateway")
		}
	}
	for _, a := range d.Authorities {
		if a != AuthorityAutoProvisioning {
			return invalidf("authorities: unknown authority %q (known: %s)", a, AuthorityAutoProvisioning)
		}
	}
	if d.Mapper != "" && d.DownstreamMessageMapper != "" && d.Mapper != d.DownstreamMessageMapper {
		return invalidf("mapper and downstream-message-mapper differ")
	}
	if c := d.CommandEndpoint; c != nil {
		u, err := url.Parse(c.URI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalidf("command-endpoint.uri %q: must be an absolute http(s) URI", c.URI)
		}
	}
	return nil
}
