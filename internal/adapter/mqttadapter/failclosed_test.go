package mqttadapter

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/ferry-iot/ferry/internal/auth"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/mqtt"
)

type acceptAll struct{}

func (acceptAll) Authenticate(_ context.Context, tenant, authID, _ string) (registry.Identity, error) {
	return registry.Identity{TenantID: tenant, AuthID: authID, DeviceID: "d1"}, nil
}

// TestConnectRefusedWhenRulesUnreadable: a client whose tenant's access
// rules cannot be read is refused with Server unavailable (MQTT 5 0x88,
// 3.1.1 return code 3), not let in without rules.
func TestConnectRefusedWhenRulesUnreadable(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	a := New(hub.New(hub.Options{Logger: log}), Options{Logger: log, Authenticator: acceptAll{}, RequireAuth: true,
		TenantRules: func(context.Context, string) ([]auth.Rule, error) { return nil, errors.New("registry down") }})
	ln := serve(t, a, log)
	dial := func() net.Conn {
		t.Helper()
		nc, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		t.Cleanup(func() { nc.Close() })
		return nc
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := paho.NewClient(paho.ClientConfig{Conn: dial()})
	ack, _ := cl.Connect(ctx, &paho.Connect{ClientID: "c5", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "u@t1", PasswordFlag: true, Password: []byte("p")})
	if ack == nil || ack.ReasonCode != 0x88 {
		t.Errorf("MQTT 5 CONNACK %v, want 0x88 server unavailable", ack)
	}

	// 3.1.1 CONNECT: clean session, user name u@t1, password p.
	nc := dial()
	connect := []byte{0x10, 24, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 30,
		0, 2, 'c', '3', 0, 4, 'u', '@', 't', '1', 0, 1, 'p'}
	connect[1] = byte(len(connect) - 2)
	if _, err := nc.Write(connect); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(nc, got); err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x20, 2, 0, 3}; !bytes.Equal(got, want) {
		t.Errorf("3.1.1 CONNACK % x, want % x (return code 3, server unavailable)", got, want)
	}
}

// serve runs an MQTT server with a on a loopback port until the test ends.
func serve(t *testing.T, a *Adapter, log *slog.Logger) net.Listener {
	t.Helper()
	srv := &mqtt.Server{Handler: a, Logger: log}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln
}
