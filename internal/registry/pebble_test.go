package registry

import (
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/internal/store/pebblestore"
)

// TestPebblePersistence runs the operator flow on the embedded store and
// logs in after a restart.
func TestPebblePersistence(t *testing.T) {
	dir := t.TempDir()
	open := func() (*pebblestore.Store, *Registry) {
		st, err := pebblestore.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := New(st, &Options{BcryptCost: bcrypt.MinCost})
		if err != nil {
			t.Fatal(err)
		}
		return st, r
	}
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
	defer st.Close()
	id, err := r.Authenticate(ctx, "acme", "sensor1", "pw")
	if err != nil || id.DeviceID != "dev1" {
		t.Fatalf("after restart: %+v, %v", id, err)
	}
	if _, _, err := r.CreateDevice(ctx, "acme", "dev1", NewDevice()); err == nil {
		t.Fatal("device lost its record across the restart")
	}
}
