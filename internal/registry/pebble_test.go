package registry

import (
	"io"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/pebblestore"
)

// TestPebblePersistence runs the operator flow on the embedded store and
// logs in after a restart.
func TestPebblePersistence(t *testing.T) {
	dir := t.TempDir()
	st, r := provisionAndRestart(t, func() (io.Closer, *Registry) {
		st, err := pebblestore.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st, registryOver(t, st)
	})
	defer st.Close()
	if _, _, err := r.CreateDevice(ctx, "acme", "dev1", NewDevice()); err == nil {
		t.Fatal("device lost its record across the restart")
	}
}

// registryOver is a registry over st with cheap bcrypt.
func registryOver(t *testing.T, st store.RegistryStore) *Registry {
	t.Helper()
	r, err := New(st, &Options{BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// provisionAndRestart creates tenant acme, device dev1 and its password
// credential sensor1/pw through a registry that open opens, closes it,
// opens it again (a restart) and checks that the device logs in; it
// returns the reopened registry.
func provisionAndRestart(t *testing.T, open func() (io.Closer, *Registry)) (io.Closer, *Registry) {
	t.Helper()
	st, r := open()
	if _, _, err := r.CreateTenant(ctx, "acme", NewTenant()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.CreateDevice(ctx, "acme", "dev1", NewDevice()); err != nil {
		t.Fatal(err)
	}
	creds := mustParseCreds(t, `[{"type":"hashed-password","auth-id":"sensor1","secrets":[{"pwd-plain":"pw"}]}]`)
	if _, err := r.SetCredentials(ctx, "acme", "dev1", creds, ""); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, r = open()
	if id, err := r.Authenticate(ctx, "acme", "sensor1", "pw"); err != nil || id.DeviceID != "dev1" {
		t.Fatalf("after restart: %+v, %v", id, err)
	}
	return st, r
}
