package mqttadapter

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/mqtt/client"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// TestClientsAndKick: the open connections are listed with their tenant,
// device, version and outbound figures, and Kick closes one with MQTT 5
// DISCONNECT 0x98.
func TestClientsAndKick(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	a := New(hub.New(hub.Options{Logger: log}), Options{Logger: log, Authenticator: acceptAll{}})
	ln := serve(t, a, log)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	connect := func(id, user string, v packet.Version) *client.Client {
		t.Helper()
		opts := client.Options{Server: "tcp://" + ln.Addr().String(), ClientID: id, Version: v, CleanStart: true}
		if user != "" {
			opts.Username, opts.Password = user, []byte("pw")
		}
		c, err := client.Connect(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dev := connect("dev", "sensor@acme", packet.V5)
	connect("anon", "", packet.V311)

	all := a.Clients("")
	if len(all) != 2 || all[0].Tenant != "DEFAULT_TENANT" || all[0].Version != "3.1.1" || all[1].Tenant != "acme" {
		t.Fatalf("Clients() = %+v", all)
	}
	if c := all[1]; c.ClientID != "dev" || c.Device != "d1" || c.User != "sensor" || c.Version != "5.0" || !c.CleanStart || c.TLS ||
		c.RemoteAddr == "" || c.Inflight != 0 || c.Queued != 0 {
		t.Fatalf("dev: %+v", c)
	}
	if got := a.Clients("acme"); len(got) != 1 || got[0].ClientID != "dev" {
		t.Fatalf("Clients(acme) = %+v", got)
	}
	if a.Kick("DEFAULT_TENANT", "dev") || a.Kick("acme", "nobody") {
		t.Fatal("Kick closed a client that is not there")
	}
	if !a.Kick("acme", "dev") {
		t.Fatal("Kick did not find dev")
	}
	select {
	case <-dev.Done():
	case <-ctx.Done():
		t.Fatal("dev is still connected")
	}
	var re *client.ReasonError
	if err := dev.Err(); !errors.As(err, &re) || re.Code != packet.AdministrativeAction {
		t.Fatalf("dev ended with %v, want DISCONNECT 0x98", err)
	}
}
