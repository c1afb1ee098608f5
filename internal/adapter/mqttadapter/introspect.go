package mqttadapter

import (
	"slices"
	"strings"

	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Client describes one open MQTT connection, for operators (the web
// console, `ferry clients list`). It holds no credential.
type Client struct {
	Tenant   string
	ClientID string
	// Device and User are the registry device and the auth-id it logged
	// in with; empty for anonymous clients.
	Device, User string
	// Version is "3.1", "3.1.1" or "5.0".
	Version    string
	RemoteAddr string
	TLS        bool
	// CleanStart is the CONNECT's Clean Start (3.1.1: Clean Session).
	CleanStart bool
	// Inflight and Queued are the connection's outbound QoS 1/2 messages
	// not yet acknowledged and the PUBLISH packets waiting to be written
	// (mqtt.Conn.Outbound).
	Inflight, Queued int
	// Dropped counts outbound messages the client's Maximum Packet Size
	// refused.
	Dropped uint64
}

// Clients returns the open connections of tenant (every tenant's when
// tenant is empty), sorted by tenant and client ID.
func (a *Adapter) Clients(tenant string) []Client {
	a.conns.mu.Lock()
	type entry struct {
		c  *mqtt.Conn
		st *connState
	}
	var conns []entry
	for t, devices := range a.conns.tenants {
		if tenant != "" && t != tenant {
			continue
		}
		for _, cs := range devices {
			for c, st := range cs {
				conns = append(conns, entry{c, st})
			}
		}
	}
	a.conns.mu.Unlock()
	// Out of the index's lock: each Conn takes its own.
	out := make([]Client, 0, len(conns))
	for _, e := range conns {
		inflight, queued := e.c.Outbound()
		out = append(out, Client{
			Tenant: e.st.tenant, ClientID: e.c.ClientID(), Device: e.st.device, User: e.st.user,
			Version: versionName(e.c.Version()), RemoteAddr: e.c.RemoteAddr().String(), TLS: e.c.TLS() != nil,
			CleanStart: e.c.CleanStart(), Inflight: inflight, Queued: queued, Dropped: e.c.Dropped(),
		})
	}
	slices.SortFunc(out, func(a, b Client) int {
		if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
			return c
		}
		return strings.Compare(a.ClientID, b.ClientID)
	})
	return out
}

// Kick closes the connection of clientID in tenant, as an operator asked
// (MQTT 5: DISCONNECT 0x98 Administrative action; 3.1.1: the socket
// closes), and reports whether there was one. A persistent session stays
// and its will is published, as after any abnormal end.
func (a *Adapter) Kick(tenant, clientID string) bool {
	a.conns.mu.Lock()
	var found []*mqtt.Conn
	for _, cs := range a.conns.tenants[tenant] {
		for c := range cs {
			if c.ClientID() == clientID {
				found = append(found, c)
			}
		}
	}
	a.conns.mu.Unlock()
	for _, c := range found {
		a.log.Info("connection closed by an operator", "tenant", tenant, "client", clientID)
		c.CloseWithReason(packet.AdministrativeAction, "closed by an operator")
	}
	return len(found) > 0
}

func versionName(v packet.Version) string {
	switch v {
	case packet.V31:
		return "3.1"
	case packet.V311:
		return "3.1.1"
	case packet.V5:
		return "5.0"
	}
	return "unknown"
}
