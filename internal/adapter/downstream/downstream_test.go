package downstream

import (
	"context"
	"errors"
	"strings"
	"sync"
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

func TestTenantFor(t *testing.T) {
	base := Tenant{MaxPayloadSize: 100, MaxTTD: time.Minute}
	listed := base
	listed.Adapters = map[string]AdapterSettings{
		hono.AdapterMQTT: {Enabled: true, MaxPayloadSize: 10},
		hono.AdapterHTTP: {Enabled: true, MaxTTD: 5 * time.Second},
		hono.AdapterAMQP: {Enabled: false},
	}
	for _, tc := range []struct {
		name       string
		t          Tenant
		adapter    string
		ok         bool
		maxPayload int
		maxTTD     time.Duration
	}{
		{"no list: every adapter", base, hono.AdapterCoAP, true, 100, time.Minute},
		{"listed with a limit", listed, hono.AdapterMQTT, true, 10, time.Minute},
		{"listed with a ttd", listed, hono.AdapterHTTP, true, 100, 5 * time.Second},
		{"listed, disabled", listed, hono.AdapterAMQP, false, 0, 0},
		{"not listed", listed, hono.AdapterCoAP, false, 0, 0},
	} {
		got, ok := tc.t.For(tc.adapter)
		if ok != tc.ok || (ok && (got.MaxPayloadSize != tc.maxPayload || got.MaxTTD != tc.maxTTD)) {
			t.Errorf("%s: For(%s) = %d %v %v, want %d %v %v", tc.name, tc.adapter, got.MaxPayloadSize, got.MaxTTD, ok, tc.maxPayload, tc.maxTTD, tc.ok)
		}
	}
}

// TestDeviceCheck: a registered tenant's devices must exist and be
// enabled; answers are kept until the device or tenant is forgotten, and
// a gateway's device is not looked up again (its authority was checked).
func TestDeviceCheck(t *testing.T) {
	enabled := map[string]bool{"on": true, "off": false}
	reads := 0
	d := New(Options{Hub: hub.New(hub.Options{}),
		Tenant: func(_ context.Context, tenant string) (Tenant, error) {
			return Tenant{Registered: tenant == "reg"}, nil
		},
		Device: func(_ context.Context, _, device string) (bool, bool, error) {
			reads++
			en, ok := enabled[device]
			return ok, en, nil
		}})
	build := func(tenant, device, gateway string) int {
		_, err := d.Build(&Message{Endpoint: hono.Telemetry, Tenant: tenant, Device: device, Gateway: gateway, Adapter: "hono-test", Payload: []byte("x")})
		if err != nil {
			return err.Status
		}
		return 0
	}
	for _, tc := range []struct {
		tenant, device, gateway string
		want                    int
	}{
		{"reg", "on", "", 0},
		{"reg", "off", "", 404},
		{"reg", "nobody", "", 404},
		{"reg", "nobody", "gw", 0},
		{"unregistered", "nobody", "", 0},
	} {
		if got := build(tc.tenant, tc.device, tc.gateway); got != tc.want {
			t.Errorf("%s/%s via %q: %d, want %d", tc.tenant, tc.device, tc.gateway, got, tc.want)
		}
	}
	before := reads
	build("reg", "on", "")
	if reads != before {
		t.Fatal("a known device was read again")
	}
	enabled["on"] = false
	d.ForgetDevice("reg", "on")
	if got := build("reg", "on", ""); got != 404 {
		t.Fatalf("after the device was disabled and forgotten: %d, want 404", got)
	}
	enabled["off"] = true
	d.ForgetTenant("reg")
	if got := build("reg", "off", ""); got != 0 {
		t.Fatalf("after the tenant was forgotten: %d, want 0", got)
	}
}

// kafka records what is produced and answers with err.
type kafka struct {
	mu   sync.Mutex
	got  []string
	err  error
	hold chan struct{} // nil: answer at once
}

func (k *kafka) Produce(tenant string, hm *hub.Message, done func(error)) {
	k.mu.Lock()
	k.got = append(k.got, tenant+" "+hm.Topic)
	hold, err := k.hold, k.err
	k.mu.Unlock()
	if hold != nil {
		go func() { <-hold; done(err) }()
		return
	}
	done(err)
}

// TestPublishKafka: with Kafka, QoS 1 and events wait for Kafka's
// acknowledgement and fail with 503 when it fails; QoS 0 does not wait;
// notifications go to Kafka too.
func TestPublishKafka(t *testing.T) {
	k := &kafka{hold: make(chan struct{})}
	d := New(Options{Hub: hub.New(hub.Options{}), Kafka: k})
	publish := func(qos byte) chan *Error {
		c := make(chan *Error, 1)
		hm, err := d.Build(&Message{Endpoint: hono.Telemetry, Tenant: "t", Device: "d", Adapter: "hono-test", QoS: qos, Payload: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		d.Publish("t", hm, func(e *Error) { c <- e })
		return c
	}
	q0, q1 := publish(0), publish(1)
	select {
	case e := <-q0:
		if e != nil {
			t.Fatalf("QoS 0: %v", e)
		}
	default:
		t.Fatal("QoS 0 waited for Kafka")
	}
	select {
	case e := <-q1:
		t.Fatalf("QoS 1 taken before Kafka acknowledged it: %v", e)
	default:
	}
	close(k.hold)
	if e := <-q1; e != nil {
		t.Fatalf("QoS 1 after Kafka's ack: %v", e)
	}
	k.mu.Lock()
	k.hold, k.err = nil, errors.New("topic missing")
	k.mu.Unlock()
	if e := <-publish(1); e == nil || e.Status != 503 {
		t.Fatalf("QoS 1 that Kafka refused: %v, want 503", e)
	}
	d.Notify("t", "d", "hono-test", 30)
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.got) != 4 || k.got[3] != "t "+hono.HubTopic(hono.Event, "d") {
		t.Fatalf("produced %v, want three messages and the ttd notification", k.got)
	}
}
