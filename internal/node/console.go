package node

import (
	"fmt"
	"net/http"

	"github.com/ferry-iot/ferry/internal/adapter/mqttadapter"
	"github.com/ferry-iot/ferry/internal/clients"
	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/console"
)

// mountConsole serves the web console under /console/ on the HTTP mux
// (http.console, --console), behind the registry API's admin password or
// an application user's. Its API reaches the /v1 API through mux itself,
// so it sees what scripts see. It is called once n.http exists: the
// console's event streams must end when the server shuts down, which
// http.Server.Shutdown does not do for long requests.
func (n *Node) mountConsole(mux *http.ServeMux) error {
	if !n.cfg.HTTP.Console {
		return nil
	}
	pw, err := n.adminPassword()
	if err != nil {
		return fmt.Errorf("admin password (--admin-password): %w", err)
	}
	users := make([]console.User, 0, len(n.cfg.Applications))
	for _, a := range n.cfg.Applications {
		users = append(users, console.User{Name: a.Name, PasswordHash: a.PasswordHash, Tenants: a.Tenants})
	}
	opts := console.Options{
		Hub:           n.hub,
		Metrics:       n.metrics.Gatherer(),
		Upstream:      mux,
		AdminPassword: pw,
		Users:         users,
		DefaultTenant: config.DefaultTenant,
		Logger:        n.log,
	}
	opts.Clients = frontEnds{n}
	c := console.New(opts)
	mux.Handle("/console", c.Handler())
	mux.Handle("/console/", c.Handler())
	n.http.RegisterOnShutdown(c.Close)
	return nil
}

// frontEnds lists the clients of every front end the node runs. It looks
// them up on each call: the console is mounted before the AMQP listeners
// start (and before the HTTP listener serves).
type frontEnds struct{ n *Node }

func (f frontEnds) sources() clients.All {
	var all clients.All
	if a, ok := f.n.mqtt.Handler.(*mqttadapter.Adapter); ok {
		all = append(all, a)
	}
	if f.n.devAMQP != nil {
		all = append(all, f.n.devAMQP)
	}
	if f.n.apps != nil {
		all = append(all, f.n.apps)
	}
	return all
}

func (f frontEnds) Clients(tenant string) []clients.Client { return f.sources().Clients(tenant) }

func (f frontEnds) Kick(tenant, clientID string) bool { return f.sources().Kick(tenant, clientID) }
