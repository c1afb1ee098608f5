package mqttadapter

import (
	"slices"
	"sync"

	"github.com/ferry-iot/ferry/internal/auth"
	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
	"github.com/ferry-iot/ferry/mqtt/topic"
)

// registered indexes an adapter's open connections by tenant and device
// (empty for anonymous clients), so that a registry change reaches the
// connections it concerns: Open adds a connection, Disconnected removes
// it.
type registered struct {
	mu      sync.Mutex
	tenants map[string]map[string]map[*mqtt.Conn]*connState
	// epoch counts the changes applied (Revoke, SetTenantRules), and
	// changed holds the epoch of each tenant's last one. A connection
	// whose Connect read the registry before a change of its tenant and
	// whose Open comes after it may hold what the change took away: Open
	// closes it. changed is bounded: when full it is cleared and floor
	// set, which closes every connection whose Connect began before.
	epoch   uint64
	changed map[string]uint64
	floor   uint64
}

// maxChanged bounds registered.changed.
const maxChanged = 10_000

func (r *registered) currentEpoch() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epoch
}

// add indexes c; false when a change of its tenant was applied since its
// Connect began (st.epoch).
func (r *registered) add(c *mqtt.Conn, st *connState) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st.epoch < r.floor || st.epoch < r.changed[st.tenant] {
		return false
	}
	if r.tenants == nil {
		r.tenants = make(map[string]map[string]map[*mqtt.Conn]*connState)
	}
	devices := r.tenants[st.tenant]
	if devices == nil {
		devices = make(map[string]map[*mqtt.Conn]*connState)
		r.tenants[st.tenant] = devices
	}
	conns := devices[st.device]
	if conns == nil {
		conns = make(map[*mqtt.Conn]*connState)
		devices[st.device] = conns
	}
	conns[c] = st
	return true
}

func (r *registered) remove(c *mqtt.Conn, st *connState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	devices := r.tenants[st.tenant]
	conns := devices[st.device]
	delete(conns, c)
	if len(conns) == 0 {
		delete(devices, st.device)
	}
	if len(devices) == 0 {
		delete(r.tenants, st.tenant)
	}
}

// collect returns the connections of device of tenant, of every
// authenticated device of tenant when device is empty, or with anonymous
// true of every connection of tenant; and counts a change.
func (r *registered) collect(tenant, device string, anonymous bool) map[*mqtt.Conn]*connState {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.epoch++
	switch {
	case r.changed == nil:
		r.changed = make(map[string]uint64)
	case len(r.changed) >= maxChanged:
		clear(r.changed)
		r.floor = r.epoch
	}
	r.changed[tenant] = r.epoch
	out := make(map[*mqtt.Conn]*connState)
	for d, conns := range r.tenants[tenant] {
		if (device != "" && d != device) || (d == "" && !anonymous) {
			continue
		}
		for c, st := range conns {
			out[c] = st
		}
	}
	return out
}

// opened indexes a connection Open opened (deferred, so that st.session
// is set), or closes it when a registry change of its tenant came while
// it connected.
func (a *Adapter) opened(c *mqtt.Conn, st *connState) {
	if !a.conns.add(c, st) {
		a.log.Info("connection closed: the registry changed while it connected", "tenant", st.tenant,
			"device", st.device, "client", c.ClientID())
		c.CloseWithReason(packet.NotAuthorized, "the registry changed while connecting")
	}
}

// Revoke closes the connections of device of tenant, or of every device
// of tenant when device is empty (anonymous clients, which the registry
// does not know, stay), as when the device or tenant was disabled or
// deleted or its credentials changed; why says so in the log. It returns
// how many it closed.
//
// MQTT 5 clients get DISCONNECT 0x87 Not authorized; 3.1.1 clients, which
// have no DISCONNECT from the server, see the connection close.
func (a *Adapter) Revoke(tenant, device, why string) int {
	conns := a.conns.collect(tenant, device, false)
	for c, st := range conns {
		a.log.Info("connection closed: registry change", "tenant", tenant, "device", st.device,
			"client", c.ClientID(), "why", why)
		c.CloseWithReason(packet.NotAuthorized, why)
	}
	return len(conns)
}

// SetTenantRules applies a tenant's changed access rules (its ext.acl) to
// its open connections: later publishes and subscriptions are checked
// against them, and a connection holding a subscription they no longer
// allow loses it and is closed (DISCONNECT 0x87), so that its client
// learns of it (a SUBSCRIBE after reconnecting says which). It returns how
// many connections it closed.
func (a *Adapter) SetTenantRules(tenant string, rules []auth.Rule) int {
	closed := 0
	for c, st := range a.conns.collect(tenant, "", true) {
		if old := st.rules.Load(); old != nil && slices.Equal(*old, rules) {
			continue
		}
		st.rules.Store(&rules)
		if st.session == nil {
			continue
		}
		lost := false
		for _, sub := range st.session.Subscriptions() {
			filter := sub.Filter
			if _, inner, shared, _ := topic.ParseShared(filter); shared {
				filter = inner
			}
			if !a.allowed(st, auth.Subscribe, filter) {
				st.session.Unsubscribe(sub.Filter)
				lost = true
			}
		}
		if lost {
			a.log.Info("connection closed: the tenant's access rules no longer allow a subscription",
				"tenant", tenant, "client", c.ClientID())
			c.CloseWithReason(packet.NotAuthorized, "access rules changed: a subscription is no longer allowed")
			closed++
		}
	}
	return closed
}

// Connected returns the devices with open connections, by tenant (an
// empty device id for the anonymous clients of a tenant).
func (a *Adapter) Connected() map[string][]string {
	a.conns.mu.Lock()
	defer a.conns.mu.Unlock()
	out := make(map[string][]string, len(a.conns.tenants))
	for t, devices := range a.conns.tenants {
		for d := range devices {
			out[t] = append(out[t], d)
		}
	}
	return out
}
