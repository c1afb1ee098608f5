// Package downstream is the path every device front end (MQTT, HTTP, AMQP)
// shares for Hono telemetry and events: it checks a message against the
// tenant's limits, gives it Hono's downstream properties (device_id,
// orig_adapter, orig_address, qos, ttd, creation-time, ttl), publishes it
// on the hub topics the northbound API receives from, and says what went
// wrong as Hono's HTTP-like status. Notifications (ttd, connection events)
// go the same way.
package downstream

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
)

// Options configures a Downstream.
type Options struct {
	Hub *hub.Hub
	// Commands, if set, records the gateway a device last sent through.
	Commands *command.Router
	// OpenEvents makes sure a tenant's events are kept before its first
	// event (the default event group). Nil: none.
	OpenEvents func(tenant string) error
	// EventRetention caps an event's ttl. Default 24h.
	EventRetention time.Duration
	// MaxPayloadSize bounds a payload, bytes (Hono's maxPayloadSize).
	// Default 2048; negative: no bound.
	MaxPayloadSize int
	// Tenant reads a tenant's own settings (its registry record); they
	// are kept until ForgetTenant. Nil: none.
	Tenant func(ctx context.Context, tenant string) (Tenant, error)
	// Kafka, if set, is Hono's Kafka messaging: telemetry and events are
	// taken once Kafka acknowledged them and go to Kafka only (the
	// northbound AMQP API reads Hono's topics then); OpenEvents should be
	// nil, the event log being Kafka's topic.
	Kafka Producer
	// Device reads whether a device of a registered tenant exists and is
	// enabled; the answer is kept until ForgetDevice or ForgetTenant. Nil:
	// devices are not checked.
	Device func(ctx context.Context, tenant, device string) (found, enabled bool, err error)
	// Now is the clock; nil: time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Producer sends a tenant's Hono message to Kafka and calls done once
// Kafka took it; *kafkaapi.Messaging is one.
type Producer interface {
	Produce(tenant string, hm *hub.Message, done func(error))
}

// Tenant is what a tenant's registry record says about Hono traffic; zero
// fields leave the defaults.
type Tenant struct {
	// Registered says the tenant has a registry record: its devices must
	// then be registered and enabled (404 otherwise). Without one (Ferry
	// run without provisioning, --auth off) devices are not checked.
	Registered bool
	// MaxPayloadSize overrides Options.MaxPayloadSize (the tenant's
	// adapter entry, ext max-payload-size).
	MaxPayloadSize int
	// ContentType and TTL are the tenant's defaults for messages that
	// name none (Hono's tenant defaults content-type and ttl).
	ContentType string
	TTL         time.Duration
	// MaxTTL caps an event's ttl (resource-limits max-ttl).
	MaxTTL time.Duration
	// MaxTTD caps how long a device may wait for a command. Zero: 60 s,
	// Hono's default.
	MaxTTD time.Duration
	// Adapters are the tenant's entries for protocol adapters, by type
	// (hono.AdapterMQTT...). Nil: the tenant lists none and may use every
	// adapter with the settings above; otherwise only the listed,
	// enabled ones, each with its own overrides.
	Adapters map[string]AdapterSettings
}

// AdapterSettings is a tenant's entry for one protocol adapter (Hono's
// adapters[] with its ext fields).
type AdapterSettings struct {
	Enabled        bool
	MaxPayloadSize int           // ext max-payload-size; zero: the tenant's
	MaxTTD         time.Duration // ext max-ttd; zero: the tenant's
}

// For returns the settings that apply to devices on the adapter of type
// typ, and whether the tenant may use that adapter at all.
func (t Tenant) For(typ string) (Tenant, bool) {
	if t.Adapters == nil {
		return t, true
	}
	a, ok := t.Adapters[typ]
	if !ok || !a.Enabled {
		return t, false
	}
	if a.MaxPayloadSize > 0 {
		t.MaxPayloadSize = a.MaxPayloadSize
	}
	if a.MaxTTD > 0 {
		t.MaxTTD = a.MaxTTD
	}
	return t, true
}

// Downstream publishes devices' Hono messages. Its methods are safe for
// concurrent use.
type Downstream struct {
	opts    Options
	log     *slog.Logger
	events  sync.Map // tenants whose default event group is open
	tenants sync.Map // tenant -> Tenant

	kafkaErrLog atomic.Int64 // unix nanos of the last QoS 0 failure logged

	devMu   sync.RWMutex       // read by every message of a registered tenant
	devices map[deviceKey]bool // registered device -> enabled; bounded by maxDevices
}

type deviceKey struct{ tenant, device string }

// maxDevices bounds the device answers kept; past it they are all dropped
// and read again as needed.
const maxDevices = 100_000

// New returns a Downstream.
func New(opts Options) *Downstream {
	if opts.EventRetention <= 0 {
		opts.EventRetention = 24 * time.Hour
	}
	if opts.MaxPayloadSize == 0 {
		opts.MaxPayloadSize = 2048
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Downstream{opts: opts, log: opts.Logger}
}

// Error is a refused message: Hono's status and what was wrong.
type Error struct {
	Status int
	Msg    string
	// Full marks a 503 for a full event log or application queue (MQTT 5:
	// PUBACK 0x97 rather than 0x80).
	Full bool
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Msg) }

// Errorf makes an Error.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// Message is a telemetry message or event as a device sent it.
type Message struct {
	Endpoint hono.Endpoint // Telemetry or Event
	// Tenant and Device it is for; Gateway the gateway that sent it for
	// the device, if one did.
	Tenant, Device, Gateway string
	// Adapter is orig_adapter (hono.AdapterMQTT...), Address orig_address
	// (the topic or URI).
	Adapter, Address string
	// QoS: 0 at most once, 1 at least once (events are always 1).
	QoS     byte
	Payload []byte // not copied: the caller must not reuse it
	// ContentType as the device gave it; empty: the tenant's default, or
	// application/octet-stream.
	ContentType string
	// TTL is the device's hono-ttl (events); Expiry caps it (MQTT 5
	// Message Expiry Interval). Zero: none.
	TTL, Expiry time.Duration
	Retain      bool
	// TTD, if set, is the time the device stays reachable for commands
	// (HTTP hono-ttd), in seconds.
	TTD            *int64
	UserProperties []hub.UserProperty
	Origin         string
}

// Settings returns a tenant's settings, reading them once.
func (d *Downstream) Settings(tenant string) Tenant {
	if v, ok := d.tenants.Load(tenant); ok {
		return v.(Tenant)
	}
	if d.opts.Tenant == nil {
		return Tenant{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t, err := d.opts.Tenant(ctx, tenant)
	if err != nil {
		// Not kept: the next message tries again.
		d.log.Warn("tenant's Hono settings not read: using the defaults", "tenant", tenant, "err", err)
		return Tenant{}
	}
	d.tenants.Store(tenant, t)
	return t
}

// ForgetTenant drops what is known of a tenant's settings and devices,
// after a change of its registry record or the removal of its devices.
func (d *Downstream) ForgetTenant(tenant string) {
	d.tenants.Delete(tenant)
	d.devMu.Lock()
	for k := range d.devices {
		if k.tenant == tenant {
			delete(d.devices, k)
		}
	}
	d.devMu.Unlock()
}

// ForgetDevice drops what is known of a device, after a change of its
// registry record.
func (d *Downstream) ForgetDevice(tenant, device string) {
	d.devMu.Lock()
	delete(d.devices, deviceKey{tenant, device})
	d.devMu.Unlock()
}

// ForgetAll drops every tenant's settings and devices, after registry
// changes were lost.
func (d *Downstream) ForgetAll() {
	d.tenants.Clear()
	d.devMu.Lock()
	d.devices = nil
	d.devMu.Unlock()
}

// checkDevice answers 404 for a device of a registered tenant that is not
// registered or is disabled, as Hono's adapters do for unauthenticated
// devices (authenticated ones were checked by their login, gateways'
// devices by the gateway's authority).
func (d *Downstream) checkDevice(ts Tenant, tenant, device string) *Error {
	if !ts.Registered || d.opts.Device == nil {
		return nil
	}
	k := deviceKey{tenant, device}
	d.devMu.RLock()
	enabled, known := d.devices[k]
	d.devMu.RUnlock()
	if !known {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		found, en, err := d.opts.Device(ctx, tenant, device)
		cancel()
		if err != nil {
			d.log.Warn("device not checked: the registry cannot be read", "tenant", tenant, "device", device, "err", err)
			return Errorf(503, "the device registry cannot be read")
		}
		if !found {
			return Errorf(404, "device %s is not registered in tenant %s", device, tenant)
		}
		enabled = en
		d.devMu.Lock()
		if d.devices == nil || len(d.devices) >= maxDevices {
			d.devices = map[deviceKey]bool{}
		}
		d.devices[k] = enabled
		d.devMu.Unlock()
	}
	if !enabled {
		return Errorf(404, "device %s of tenant %s is disabled", device, tenant)
	}
	return nil
}

// Build checks m and makes the hub message the northbound API delivers:
// 403 when the tenant may not use m's adapter, 404 for a device a
// registered tenant does not have enabled, 413 past the payload limit,
// 400 for an empty payload without content type, 503 when the tenant's
// event log cannot be opened.
func (d *Downstream) Build(m *Message) (*hub.Message, *Error) {
	ts, ok := d.Settings(m.Tenant).For(m.Adapter)
	if !ok {
		return nil, Errorf(403, "tenant %s may not use the %s adapter", m.Tenant, m.Adapter)
	}
	if m.Gateway == "" {
		if err := d.checkDevice(ts, m.Tenant, m.Device); err != nil {
			return nil, err
		}
	}
	limit := d.opts.MaxPayloadSize
	if ts.MaxPayloadSize > 0 {
		limit = ts.MaxPayloadSize
	}
	if limit > 0 && len(m.Payload) > limit {
		return nil, Errorf(413, "payload of %d bytes exceeds the limit of %d", len(m.Payload), limit)
	}
	ct := m.ContentType
	if ct == "" && len(m.Payload) > 0 {
		ct = ts.ContentType
	}
	if len(m.Payload) == 0 && ct == "" {
		return nil, Errorf(400, "an empty payload needs a content type")
	}
	if len(m.Payload) > 0 && ct == hono.ContentTypeEmptyNotification {
		return nil, Errorf(400, "an empty notification must have an empty payload")
	}
	if ct == "" {
		ct = hono.ContentTypeOctetStream
	}
	now := d.opts.Now()
	hm := &hub.Message{
		Topic:       hono.HubTopic(m.Endpoint, m.Device),
		Payload:     m.Payload,
		QoS:         m.QoS,
		ContentType: ct,
		Created:     now,
		Origin:      m.Origin,
		Properties: []hub.Property{
			{Key: hono.PropDeviceID, Value: m.Device},
			{Key: hono.PropOrigAdapter, Value: m.Adapter},
			{Key: hono.PropOrigAddress, Value: m.Address},
			{Key: hono.PropQoS, Value: int64(m.QoS)},
		},
		UserProperties: m.UserProperties,
	}
	if m.TTD != nil {
		hm.Properties = append(hm.Properties, hub.Property{Key: hono.PropTTD, Value: *m.TTD})
	}
	if m.Retain {
		hm.Properties = append(hm.Properties, hub.Property{Key: hono.AnnotationRetain, Value: true})
	}
	if m.Endpoint == hono.Event {
		// The device's hono-ttl, else the tenant's default; capped by
		// the message's expiry, the tenant's max-ttl and the retention.
		ttl := d.opts.EventRetention
		switch {
		case m.TTL > 0:
			ttl = min(ttl, m.TTL)
		case ts.TTL > 0:
			ttl = min(ttl, ts.TTL)
		}
		if m.Expiry > 0 {
			ttl = min(ttl, m.Expiry)
		}
		if ts.MaxTTL > 0 {
			ttl = min(ttl, ts.MaxTTL)
		}
		hm.Expiry = now.Add(ttl)
		if err := d.openEvents(m.Tenant); err != nil {
			d.log.Error("event refused: the tenant's event log cannot be opened", "tenant", m.Tenant, "err", err)
			return nil, Errorf(503, "the event log is unavailable")
		}
	}
	if m.Gateway != "" && d.opts.Commands != nil {
		d.opts.Commands.SetLastGateway(m.Tenant, m.Device, m.Gateway)
	}
	return hm, nil
}

// TTD reads a device's hono-ttd (seconds; -1 and 0 mean it does not wait)
// and caps it by the max-ttd of the tenant's entry for adapter, else by
// fallback. It sets m.TTD when the device waits and returns how long; a
// malformed value is a 400.
func (d *Downstream) TTD(m *Message, value string, fallback time.Duration) (time.Duration, *Error) {
	secs, err := strconv.ParseInt(value, 10, 32)
	if err != nil || secs < -1 {
		return 0, Errorf(400, "hono-ttd must be a number of seconds")
	}
	if secs <= 0 {
		return 0, nil
	}
	limit := fallback
	if ts, _ := d.Settings(m.Tenant).For(m.Adapter); ts.MaxTTD > 0 {
		limit = ts.MaxTTD
	}
	ttd := min(time.Duration(secs)*time.Second, limit)
	eff := int64(ttd / time.Second)
	m.TTD = &eff
	return ttd, nil
}

// openEvents opens a tenant's default event group once per process.
func (d *Downstream) openEvents(tenant string) error {
	if d.opts.OpenEvents == nil {
		return nil
	}
	if _, ok := d.events.Load(tenant); ok {
		return nil
	}
	if err := d.opts.OpenEvents(tenant); err != nil {
		return err
	}
	d.events.Store(tenant, true)
	return nil
}

// Publish hands hm to the hub and calls done with nil once it is taken:
// for QoS 1, once every group took it or the event log holds it. 503 when
// it is not: no application receives QoS 1 telemetry (as in Hono), the
// log or a group's queue is full, or the store failed. QoS 0 without an
// application is dropped (and counted by the hub) without error.
func (d *Downstream) Publish(tenant string, hm *hub.Message, done func(*Error)) {
	if d.opts.Kafka != nil {
		d.publishKafka(tenant, hm, done)
		return
	}
	d.opts.Hub.PublishAsync(tenant, hm, func(res hub.Result) {
		switch {
		case res.Err != nil:
			d.log.Error("message not stored", "tenant", tenant, "topic", hm.Topic, "err", res.Err)
			done(Errorf(503, "the message could not be stored"))
		case res.Lost > 0:
			done(&Error{Status: 503, Msg: "the event log or an application's queue is full", Full: true})
		case res.Matched == 0 && hm.QoS > 0:
			done(Errorf(503, "no application receives this tenant's messages"))
		default:
			done(nil)
		}
	})
}

// publishKafka produces hm to Kafka: QoS 1 and events are taken once
// Kafka acknowledged them (503 otherwise, the log naming the topic), QoS 0
// at once. The hub does not get it: the northbound API reads Kafka then.
func (d *Downstream) publishKafka(tenant string, hm *hub.Message, done func(*Error)) {
	atMostOnce := hm.QoS == 0
	d.opts.Kafka.Produce(tenant, hm, func(err error) {
		if atMostOnce {
			if err != nil {
				// One line a second at most: a missing topic fails every
				// message of a busy tenant.
				now := time.Now().UnixNano()
				if last := d.kafkaErrLog.Load(); now-last > int64(time.Second) && d.kafkaErrLog.CompareAndSwap(last, now) {
					d.log.Warn("QoS 0 message not taken by Kafka", "tenant", tenant, "err", err)
				}
			}
			return
		}
		if err != nil {
			d.log.Error("message not taken by Kafka", "tenant", tenant, "err", err)
			done(Errorf(503, "the message was not taken by Kafka"))
			return
		}
		done(nil)
	})
	if atMostOnce {
		done(nil)
	}
}

// Notify publishes an empty notification event for device: ttd -1 when it
// subscribed for commands, 0 when it stopped, n when it waits n seconds.
func (d *Downstream) Notify(tenant, device, adapter string, ttd int64) {
	if device == "" {
		return
	}
	now := d.opts.Now()
	d.publishEvent(tenant, &hub.Message{
		Topic:       hono.HubTopic(hono.Event, device),
		QoS:         1,
		ContentType: hono.ContentTypeEmptyNotification,
		Created:     now,
		Expiry:      now.Add(d.opts.EventRetention),
		Properties: []hub.Property{
			{Key: hono.PropDeviceID, Value: device},
			{Key: hono.PropOrigAdapter, Value: adapter},
			{Key: hono.PropTTD, Value: ttd},
		},
	})
}

// ConnectionEvent publishes Hono's connection event of an authenticated
// device: cause connected or disconnected, remoteID the client's id.
func (d *Downstream) ConnectionEvent(tenant, device, adapter, remoteID, cause string) {
	now := d.opts.Now()
	body := fmt.Sprintf(`{"cause":%q,"remote-id":%q,"source":%q,"data":{}}`, cause, remoteID, adapter)
	d.publishEvent(tenant, &hub.Message{
		Topic:       hono.HubTopic(hono.Event, device),
		Payload:     []byte(body),
		QoS:         1,
		ContentType: hono.ContentTypeConnection,
		Created:     now,
		Expiry:      now.Add(d.opts.EventRetention),
		Properties: []hub.Property{
			{Key: hono.PropDeviceID, Value: device},
			{Key: hono.PropOrigAdapter, Value: adapter},
		},
	})
}

func (d *Downstream) publishEvent(tenant string, m *hub.Message) {
	if d.opts.Kafka != nil {
		d.publishKafka(tenant, m, func(e *Error) {
			if e != nil {
				d.log.Warn("notification event not kept", "tenant", tenant, "err", e)
			}
		})
		return
	}
	if err := d.openEvents(tenant); err != nil {
		d.log.Warn("notification not sent: no event log", "tenant", tenant, "err", err)
		return
	}
	d.opts.Hub.PublishAsync(tenant, m, func(res hub.Result) {
		if res.Err != nil || res.Lost > 0 {
			d.log.Warn("notification event not kept", "tenant", tenant, "err", res.Err, "lost", res.Lost)
		}
	})
}

// Target resolves the tenant and device a message is for. loginTenant and
// loginDevice are the authenticated device ("" device: unauthenticated);
// tenant and device what the topic or URI names ("" when left out).
// actsFor checks that the logged-in gateway may act for another device.
// It returns the gateway when one sends for the device.
func Target(loginTenant, loginDevice, tenant, device string, actsFor func(device string) (bool, error)) (string, string, string, *Error) {
	if loginDevice == "" {
		if tenant == "" || device == "" {
			return "", "", "", Errorf(401, "an unauthenticated device must name tenant and device")
		}
		return tenant, device, "", nil
	}
	if tenant != "" && tenant != loginTenant {
		return "", "", "", Errorf(403, "the address names another tenant")
	}
	if device == "" || device == loginDevice {
		return loginTenant, loginDevice, "", nil
	}
	ok, err := actsFor(device)
	switch {
	case err != nil:
		return "", "", "", Errorf(503, "gateway authority not checked: %v", err)
	case !ok:
		return "", "", "", Errorf(403, "gateway %s may not act for device %s", loginDevice, device)
	}
	return loginTenant, device, loginDevice, nil
}
