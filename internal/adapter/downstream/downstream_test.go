package downstream

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
)

func TestTarget(t *testing.T) {
	acts := func(dev string) (bool, error) {
		if dev == "broken" {
			return false, errors.New("registry down")
		}
		return dev == "child", nil
	}
	for _, tc := range []struct {
		name                              string
		loginTenant, loginDevice, tn, dev string
		want                              [3]string
		status                            int
	}{
		{"unauthenticated", "", "", "acme", "d1", [3]string{"acme", "d1", ""}, 0},
		{"unauthenticated without ids", "", "", "", "d1", [3]string{}, 401},
		{"authenticated", "acme", "d1", "", "", [3]string{"acme", "d1", ""}, 0},
		{"own ids", "acme", "d1", "acme", "d1", [3]string{"acme", "d1", ""}, 0},
		{"other tenant", "acme", "d1", "globex", "", [3]string{}, 403},
		{"gateway", "acme", "gw", "", "child", [3]string{"acme", "child", "gw"}, 0},
		{"not its device", "acme", "gw", "", "stranger", [3]string{}, 403},
		{"registry down", "acme", "gw", "", "broken", [3]string{}, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn, dev, gw, err := Target(tc.loginTenant, tc.loginDevice, tc.tn, tc.dev, acts)
			switch {
			case tc.status != 0 && (err == nil || err.Status != tc.status):
				t.Fatalf("error %v, want status %d", err, tc.status)
			case tc.status == 0 && err != nil:
				t.Fatal(err)
			case tc.status == 0 && [3]string{tn, dev, gw} != tc.want:
				t.Fatalf("got %q %q %q, want %q", tn, dev, gw, tc.want)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	now := time.Unix(1000, 0)
	d := New(Options{Hub: hub.New(hub.Options{}), Now: func() time.Time { return now }, MaxPayloadSize: 8, EventRetention: time.Hour,
		Tenant: func(_ context.Context, tenant string) (Tenant, error) {
			if tenant == "big" {
				return Tenant{MaxPayloadSize: 100, ContentType: "text/plain", TTL: time.Minute, MaxTTL: 30 * time.Minute}, nil
			}
			return Tenant{}, nil
		}})
	msg := func(tenant, payload, ct string, ep hono.Endpoint, ttl time.Duration) *Message {
		return &Message{Endpoint: ep, Tenant: tenant, Device: "d", Adapter: "hono-test", Address: "a", QoS: 1, Payload: []byte(payload), ContentType: ct, TTL: ttl}
	}
	for _, tc := range []struct {
		name   string
		m      *Message
		status int
		ct     string
		ttl    time.Duration
	}{
		{name: "too large", m: msg("small", "123456789", "", hono.Telemetry, 0), status: 413},
		{name: "a tenant's own limit", m: msg("big", "123456789", "", hono.Telemetry, 0), ct: "text/plain"},
		{name: "empty without content type", m: msg("small", "", "", hono.Telemetry, 0), status: 400},
		{name: "empty notification with payload", m: msg("small", "x", hono.ContentTypeEmptyNotification, hono.Telemetry, 0), status: 400},
		{name: "octet-stream by default", m: msg("small", "x", "", hono.Telemetry, 0), ct: hono.ContentTypeOctetStream},
		{name: "event ttl: retention", m: msg("small", "x", "", hono.Event, 0), ct: hono.ContentTypeOctetStream, ttl: time.Hour},
		{name: "event ttl: tenant default", m: msg("big", "x", "", hono.Event, 0), ct: "text/plain", ttl: time.Minute},
		{name: "event ttl: hono-ttl over the default, capped by max-ttl", m: msg("big", "x", "", hono.Event, 45*time.Minute), ct: "text/plain", ttl: 30 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hm, err := d.Build(tc.m)
			if tc.status != 0 {
				if err == nil || err.Status != tc.status {
					t.Fatalf("error %v, want status %d", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if hm.ContentType != tc.ct || !strings.HasPrefix(hm.Topic, hono.HubPrefix) || !hm.Created.Equal(now) {
				t.Fatalf("message %+v", hm)
			}
			if v, _ := hm.Property(hono.PropDeviceID); v != "d" {
				t.Fatalf("device_id %v", v)
			}
			if tc.ttl != 0 && hm.Expiry.Sub(now) != tc.ttl {
				t.Fatalf("ttl %v, want %v", hm.Expiry.Sub(now), tc.ttl)
			}
		})
	}
}
