package mqttadapter

import (
	"github.com/ferry-iot/ferry/internal/clients"
	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Client describes one open connection for operators.
type Client = clients.Client

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
			Tenant: e.st.tenant, ClientID: e.c.ClientID(), Protocol: "mqtt", Device: e.st.device, User: e.st.user,
			Version: versionName(e.c.Version()), RemoteAddr: e.c.RemoteAddr().String(), TLS: e.c.TLS() != nil,
			CleanStart: e.c.CleanStart(), Inflight: inflight, Queued: queued, Dropped: e.c.Dropped(),
		})
	}
	clients.Sort(out)
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
