package registry

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/ferry-iot/ferry/internal/store/pgstore"
	"github.com/ferry-iot/ferry/internal/store/pgstore/pgtest"
)

// TestPostgres runs the registry over PostgreSQL as in the scale-out mode:
// the operator flow with a node restart, the trusted-CA index (keys with
// NUL bytes), and two nodes claiming one auth-id at once.
func TestPostgres(t *testing.T) {
	dsn := pgtest.Schema(t, pgtest.Start(t))
	node := func() (io.Closer, *Registry) {
		st, err := pgstore.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		return closer(st.Close), registryOver(t, st)
	}
	st, r := provisionAndRestart(t, node)
	defer st.Close()

	ca := func(dn string) Tenant {
		tn := NewTenant()
		tn.TrustAnchorGroup = "grp"
		tn.TrustedCAs = []TrustedCA{testCA(t, dn)}
		return tn
	}
	for _, c := range []struct{ tenant, dn string }{{"g1", "CN=ca"}, {"g2", "CN=ca"}, {"g3", "CN=ca,O=x"}} {
		if _, _, err := r.CreateTenant(ctx, c.tenant, ca(c.dn)); err != nil {
			t.Fatal(err)
		}
	}
	if ids, err := r.TenantsByTrustedCA(ctx, "CN=ca"); err != nil || fmt.Sprint(ids) != "[g1 g2]" {
		t.Fatalf("TenantsByTrustedCA = %v, %v; want [g1 g2]", ids, err)
	}

	st2, r2 := node()
	defer st2.Close()
	for _, d := range []string{"d1", "d2"} {
		if _, _, err := r.CreateDevice(ctx, "acme", d, NewDevice()); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, reg := range []*Registry{r, r2} {
		wg.Go(func() {
			creds := []Credential{{Type: TypePSK, AuthID: "shared", Enabled: true, Secrets: []Secret{{Enabled: true, Key: []byte{1}}}}}
			_, errs[i] = reg.SetCredentials(ctx, "acme", fmt.Sprint("d", i+1), creds, "")
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrConflict):
			t.Fatal(err)
		}
	}
	if won != 1 {
		t.Fatalf("%d devices own the auth-id", won)
	}
}

// closer makes a Close without an error an io.Closer.
type closer func()

func (c closer) Close() error { c(); return nil }
