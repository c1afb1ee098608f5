package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ferry-iot/ferry/internal/adapter/coapadapter"
	"github.com/ferry-iot/ferry/internal/adapter/downstream"
	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/kafkabridge"
	"github.com/ferry-iot/ferry/internal/lastwill"
	"github.com/ferry-iot/ferry/internal/northbound/amqpapi"
	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
	"github.com/ferry-iot/ferry/internal/registry"
)

// startApps serves the northbound AMQP API on n.appLn. Applications log
// in as admin (for every tenant) or as a configured application user;
// ANONYMOUS is offered only while authentication is off and the listener
// is on loopback.
func (n *Node) startApps() error {
	cfg := n.cfg
	pw, err := n.adminPassword()
	if err != nil {
		return fmt.Errorf("admin password (--admin-password): %w", err)
	}
	loopback, _ := config.IsLoopback(cfg.AMQP.AppAddr)
	apps := make([]amqpapi.Application, 0, len(cfg.Applications))
	appTopics := map[string][]string{}
	for _, a := range cfg.Applications {
		apps = append(apps, amqpapi.Application{Name: a.Name, PasswordHash: a.PasswordHash, Tenants: a.Tenants})
		appTopics[a.Name] = a.KafkaTopics
	}
	// The bridge's links are refused (amqp:not-found) without Kafka: the
	// address kafka/... is then no node of ours.
	var bridge amqpapi.Bridge
	// With Kafka, devices' telemetry and events are in Hono's topics, not
	// in the hub: the bridge serves Hono's links from there as well.
	var source amqpapi.KafkaSource
	if cfg.ScaleOut() {
		k := cfg.Cluster.Kafka
		client, _, err := n.kafkaClient("ferry-bridge")
		if err != nil {
			return err
		}
		b, err := kafkabridge.New(kafkabridge.Options{
			Client:          client,
			HonoTopicPrefix: cfg.Hono.Kafka.TopicPrefix,
			AppTopics:       appTopics,
			Reserved:        []string{k.Topic, k.RetainedTopic},
			Logger:          n.log,
		})
		if err != nil {
			return fmt.Errorf("the AMQP-Kafka bridge: %w", err)
		}
		// Closed after the listener (closeListeners), so its links are gone.
		n.closers = append(n.closers, func(context.Context) error { b.Close(); return nil })
		bridge, source = b, b
	}
	n.apps = amqpapi.New(amqpapi.Options{
		Hub:            n.hub,
		Commands:       n.cmds,
		Applications:   apps,
		AdminPassword:  pw,
		Anonymous:      !cfg.Auth && loopback,
		EventRetention: time.Duration(cfg.Hono.EventRetention),
		Logger:         n.log,
		MaxConnections: cfg.AMQP.MaxConnections,
		Bridge:         bridge,
		Kafka:          source,
		KafkaTopics:    kafkaapi.Topics{Prefix: cfg.Hono.Kafka.TopicPrefix},
		Wills:          lastwill.New(n.hub, n.log),
		Metrics:        n.metrics,
	})
	if n.appLn != nil {
		if err := n.apps.Serve(n.appLn); err != nil {
			return err
		}
	}
	if n.appTLSLn != nil {
		return n.apps.ServeTLS(n.appTLSLn, n.appTLS)
	}
	return nil
}

// honoTenant reads a tenant's Hono settings from its registry record: the
// hono-mqtt adapter entry's ext max-payload-size, the defaults
// content-type and ttl (seconds), and resource-limits max-ttl (seconds).
// An unknown tenant has none.
func honoTenant(reg *registry.Registry) func(ctx context.Context, tenant string) (downstream.Tenant, error) {
	return func(ctx context.Context, tenant string) (downstream.Tenant, error) {
		t, _, err := reg.GetTenant(ctx, tenant)
		if errors.Is(err, registry.ErrNotFound) {
			return downstream.Tenant{}, nil
		}
		if err != nil {
			return downstream.Tenant{}, err
		}
		ht := downstream.Tenant{Registered: true}
		if len(t.Adapters) > 0 {
			ht.Adapters = map[string]downstream.AdapterSettings{}
		}
		for _, a := range t.Adapters {
			ht.Adapters[a.Type] = downstream.AdapterSettings{
				Enabled:        a.Enabled,
				MaxPayloadSize: int(number(a.Ext["max-payload-size"])),
				MaxTTD:         time.Duration(number(a.Ext["max-ttd"])) * time.Second,
			}
		}
		if ct, ok := t.Defaults["content-type"].(string); ok {
			ht.ContentType = ct
		}
		ht.TTL = time.Duration(number(t.Defaults["ttl"])) * time.Second
		if rl := t.ResourceLimits; rl != nil && rl.MaxTTL > 0 {
			ht.MaxTTL = time.Duration(rl.MaxTTL) * time.Second
		}
		return ht, nil
	}
}

// deviceState tells the downstream path whether a device of a registered
// tenant exists and is enabled.
func deviceState(reg *registry.Registry) func(ctx context.Context, tenant, device string) (bool, bool, error) {
	return func(ctx context.Context, tenant, device string) (bool, bool, error) {
		d, _, err := reg.GetDevice(ctx, tenant, device)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			return false, false, nil
		case err != nil:
			return false, false, err
		}
		return true, d.Enabled, nil
	}
}

// number is a JSON number from a registry record's free-form fields; 0
// for anything else.
func number(v any) float64 {
	switch n := v.(type) {
	case float64:
		return max(n, 0)
	case int:
		return float64(max(n, 0))
	case int64:
		return float64(max(n, 0))
	}
	return 0
}

// pskLookup finds the key of a PSK identity auth-id@tenant: an enabled
// secret, valid now, of the device's psk credential.
func pskLookup(reg *registry.Registry) coapadapter.PSKLookup {
	return func(ctx context.Context, identity string) ([]byte, string, string, error) {
		authID, tenant := coapadapter.SplitIdentity(identity, config.DefaultTenant)
		res, err := reg.ResolveCredentials(ctx, tenant, registry.TypePSK, authID)
		if err != nil {
			return nil, "", "", err
		}
		now := time.Now()
		for _, s := range res.Credential.Secrets {
			if s.Enabled && len(s.Key) > 0 && (s.NotBefore.IsZero() || !now.Before(s.NotBefore)) && (s.NotAfter.IsZero() || now.Before(s.NotAfter)) {
				return s.Key, res.TenantID, res.DeviceID, nil
			}
		}
		return nil, "", "", fmt.Errorf("%w: no valid key for %s", registry.ErrBadCredentials, identity)
	}
}

// via lists the gateways that may act for a device, for commands to a
// gateway subscribed for all its devices.
func via(reg *registry.Registry) func(ctx context.Context, tenant, device string) ([]string, error) {
	return func(ctx context.Context, tenant, device string) ([]string, error) {
		d, _, err := reg.GetDevice(ctx, tenant, device)
		if errors.Is(err, registry.ErrNotFound) {
			return nil, nil
		}
		return d.Via, err
	}
}

// actsFor reports whether gateway may act for device: the device is
// enabled and the gateway is in its via, or in one of its viaGroups.
func actsFor(reg *registry.Registry) func(ctx context.Context, tenant, gateway, device string) (bool, error) {
	return func(ctx context.Context, tenant, gateway, device string) (bool, error) {
		d, _, err := reg.GetDevice(ctx, tenant, device)
		if errors.Is(err, registry.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !d.Enabled {
			return false, nil
		}
		if slices.Contains(d.Via, gateway) {
			return true, nil
		}
		if len(d.ViaGroups) == 0 {
			return false, nil
		}
		gw, _, err := reg.GetDevice(ctx, tenant, gateway)
		if err != nil {
			return false, err
		}
		for _, g := range d.ViaGroups {
			if slices.Contains(gw.MemberOf, g) {
				return true, nil
			}
		}
		return false, nil
	}
}
