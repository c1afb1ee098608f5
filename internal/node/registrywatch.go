package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-iot/ferry/internal/adapter/downstream"
	"github.com/ferry-iot/ferry/internal/adapter/mqttadapter"
	"github.com/ferry-iot/ferry/internal/auth"
	"github.com/ferry-iot/ferry/internal/metrics"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/pgstore"
)

// registryWatch enforces registry changes at once: on every committed
// change of a tenant, device or credential (this node's, and in the
// scale-out mode every node's, through PostgreSQL LISTEN/NOTIFY) it drops
// the cached logins concerned, closes the connections of devices that are
// disabled or deleted or whose credentials changed, and applies a tenant's
// changed access rules to its connections.
type registryWatch struct {
	reg *registry.Registry
	log *slog.Logger

	mqtt  *mqttadapter.Adapter
	cache *auth.Cache // nil without --auth or without a cache
	// downstream forgets a changed tenant's Hono settings; nil with
	// hono.disabled.
	downstream *downstream.Downstream

	unsubscribe func()
	cancel      context.CancelFunc
	listening   sync.WaitGroup

	errors  *prometheus.CounterVec // registry reads that failed, by operation
	revoked *prometheus.CounterVec // connections closed, by reason
}

func newRegistryWatch(reg *registry.Registry, log *slog.Logger, m *metrics.Metrics) *registryWatch {
	w := &registryWatch{reg: reg, log: log,
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "registry", Name: "errors_total",
			Help: "Device registry reads that failed, by operation; each failed closed (a client refused or disconnected).",
		}, []string{"op"}),
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "registry", Name: "revoked_connections_total",
			Help: "Connections closed because of a registry change, by reason.",
		}, []string{"reason"}),
	}
	if m != nil {
		m.Register(w.errors, w.revoked)
	}
	return w
}

// failed counts a registry read that failed.
func (w *registryWatch) failed(op string) { w.errors.WithLabelValues(op).Inc() }

// start subscribes to the registry's changes and, with pg (the scale-out
// registry), listens for the other nodes' changes before it returns.
func (w *registryWatch) start(a *mqttadapter.Adapter, authn mqttadapter.Authenticator, pg *pgstore.Store) error {
	w.mqtt = a
	w.cache, _ = authn.(*auth.Cache)
	w.unsubscribe = w.reg.Subscribe(w)
	if pg == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	l, err := pg.ListenRegistry(ctx)
	cancel()
	if err != nil {
		w.unsubscribe()
		return err
	}
	ctx, w.cancel = context.WithCancel(context.Background())
	w.listening.Go(func() {
		l.Run(ctx, w.reg.Notified, func(err error) {
			w.log.Warn("registry change notifications were interrupted; checking every connection", slog.Any("err", err))
			w.reg.NotificationsLost()
		})
	})
	return nil
}

// stop ends the watch; a closer of the node.
func (w *registryWatch) stop() error {
	if w.cancel != nil {
		w.cancel()
		w.listening.Wait()
	}
	if w.unsubscribe != nil {
		w.unsubscribe()
	}
	return nil
}

// RegistryChanged implements registry.Subscriber. It reads the registry
// for the state now rather than trusting the change's kind alone, so that
// late or repeated notifications do no harm.
func (w *registryWatch) RegistryChanged(c registry.Change) {
	if w.cache != nil {
		w.cache.Invalidate(c.Tenant, c.Device)
	}
	switch c.Kind {
	case registry.TenantCreated, registry.TenantUpdated, registry.TenantDeleted:
		w.checkTenant(c.Tenant)
	case registry.DeviceCreated, registry.DeviceUpdated, registry.DeviceDeleted:
		if w.downstream != nil {
			w.downstream.ForgetDevice(c.Tenant, c.Device)
		}
		w.checkDevice(c.Tenant, c.Device)
	case registry.AllDevicesDeleted:
		if w.downstream != nil {
			w.downstream.ForgetTenant(c.Tenant)
		}
		w.revoke(c.Tenant, "", "device deleted")
	case registry.CredentialsUpdated:
		w.revoke(c.Tenant, c.Device, "credentials changed")
	case registry.ChangesLost:
		if w.downstream != nil {
			w.downstream.ForgetAll()
		}
		// Changes of credentials cannot be told from here: a device
		// whose credentials changed while notifications were lost
		// keeps its connection until it reconnects.
		for tenant, devices := range w.mqtt.Connected() {
			w.checkTenant(tenant)
			for _, d := range devices {
				if d != "" {
					w.checkDevice(tenant, d)
				}
			}
		}
	}
}

// checkTenant closes the connections of a tenant that is disabled, deleted
// or unreadable, and applies its access rules to those left.
func (w *registryWatch) checkTenant(tenant string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t, _, err := w.reg.GetTenant(ctx, tenant)
	cancel()
	var rules []auth.Rule
	switch {
	case errors.Is(err, registry.ErrNotFound):
		w.revoke(tenant, "", "tenant deleted") // anonymous clients stay, without the tenant's rules
	case err != nil:
		w.readFailed("tenant", tenant, "", err)
		rules = denyAll(tenant) // anonymous clients lose their subscriptions
	case !t.Enabled:
		w.revoke(tenant, "", "tenant disabled")
		rules = rulesOf(tenant, t, w.log)
	default:
		rules = rulesOf(tenant, t, w.log)
	}
	if w.downstream != nil {
		w.downstream.ForgetTenant(tenant)
	}
	if n := w.mqtt.SetTenantRules(tenant, rules); n > 0 {
		w.revoked.WithLabelValues("access rules").Add(float64(n))
	}
}

// checkDevice closes the connections of a device that is disabled,
// deleted or unreadable.
func (w *registryWatch) checkDevice(tenant, device string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	d, _, err := w.reg.GetDevice(ctx, tenant, device)
	cancel()
	switch {
	case errors.Is(err, registry.ErrNotFound):
		w.revoke(tenant, device, "device deleted")
	case err != nil:
		w.readFailed("device", tenant, device, err)
	case !d.Enabled:
		w.revoke(tenant, device, "device disabled")
	}
}

// readFailed logs and counts a registry read that failed, and closes the
// connections concerned: what the change did cannot be known.
func (w *registryWatch) readFailed(op, tenant, device string, err error) {
	w.log.Error("registry change not checked: the registry cannot be read; closing the connections concerned",
		slog.String("tenant", tenant), slog.String("device", device), slog.Any("err", err))
	w.failed("change-" + op)
	w.revoke(tenant, device, "registry unavailable")
}

func (w *registryWatch) revoke(tenant, device, why string) {
	if n := w.mqtt.Revoke(tenant, device, why); n > 0 {
		w.revoked.WithLabelValues(why).Add(float64(n))
	}
}
