package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/adapter/mqttadapter"
	"github.com/ferry-iot/ferry/internal/console"
	"github.com/ferry-iot/ferry/internal/hub"
)

// connected are fake connected clients.
type connected struct {
	clients []mqttadapter.Client
	kicked  []string
}

func (c *connected) Clients(tenant string) []mqttadapter.Client {
	var out []mqttadapter.Client
	for _, cl := range c.clients {
		if tenant == "" || cl.Tenant == tenant {
			out = append(out, cl)
		}
	}
	return out
}

func (c *connected) Kick(tenant, id string) bool {
	for _, cl := range c.clients {
		if cl.Tenant == tenant && cl.ClientID == id {
			c.kicked = append(c.kicked, tenant+"/"+id)
			return true
		}
	}
	return false
}

func TestClientsCommands(t *testing.T) {
	t.Setenv("FERRY_API_URL", "")
	t.Setenv("FERRY_ADMIN_PASSWORD", "")
	h := hub.New(hub.Options{})
	defer h.Close(context.Background())
	fake := &connected{clients: []mqttadapter.Client{
		{Tenant: "acme", ClientID: "dev-1", Protocol: "mqtt", Device: "d1", Version: "5.0", RemoteAddr: "127.0.0.1:1"},
		{Tenant: "acme", ClientID: "twin", Protocol: "mqtt", Version: "3.1.1", RemoteAddr: "127.0.0.1:2"},
		{Tenant: "other", ClientID: "twin", Protocol: "mqtt", Version: "3.1.1", RemoteAddr: "127.0.0.1:3"},
	}}
	c := console.New(console.Options{Hub: h, Clients: fake, AdminPassword: cliAdminPassword})
	defer c.Close()
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	run := func(args ...string) (string, error) {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetArgs(append(args, "--api-url", srv.URL, "--admin-password", cliAdminPassword))
		root.SetOut(&out)
		root.SetErr(&bytes.Buffer{})
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}

	out, err := run("clients", "list")
	if err != nil || !strings.Contains(out, "TENANT") || strings.Count(out, "\n") != 4 || !strings.Contains(out, "mqtt 5.0") {
		t.Fatalf("clients list: %v\n%s", err, out)
	}
	if out, err = run("clients", "list", "--tenant", "other", "--json"); err != nil || !strings.Contains(out, `"client_id": "twin"`) || strings.Contains(out, "dev-1") {
		t.Fatalf("clients list --tenant other --json: %v\n%s", err, out)
	}
	if out, err = run("clients", "kick", "dev-1"); err != nil || !strings.Contains(out, "dev-1 of tenant acme") {
		t.Fatalf("clients kick dev-1: %v %s", err, out)
	}
	if _, err = run("clients", "kick", "twin"); err == nil || !strings.Contains(err.Error(), "--tenant") {
		t.Fatalf("kick of an id connected in two tenants: %v, want a request for --tenant", err)
	}
	if _, err = run("clients", "kick", "twin", "--tenant", "other"); err != nil {
		t.Fatal(err)
	}
	if _, err = run("clients", "kick", "nobody"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("kick of an unknown client: %v", err)
	}
	if _, err = run("clients", "kick", "nobody", "--tenant", "acme"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("kick of an unknown client in acme: %v", err)
	}
	if got := strings.Join(fake.kicked, ","); got != "acme/dev-1,other/twin" {
		t.Fatalf("kicked %s", got)
	}
	root := newRootCmd()
	root.SetArgs([]string{"clients", "list", "--api-url", srv.URL, "--admin-password", "wrong"})
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("wrong password: %v", err)
	}
}
