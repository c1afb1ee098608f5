package registry

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/memstore"
	"golang.org/x/crypto/bcrypt"
)

// TestConcurrentAuthIDClaims lets several devices claim one auth-id at
// once: exactly one may win, the others get ErrConflict.
func TestConcurrentAuthIDClaims(t *testing.T) {
	r := newTestRegistry(t, time.Now())
	r.CreateTenant(ctx, "t", NewTenant())
	const n = 8
	for i := range n {
		r.CreateDevice(ctx, "t", fmt.Sprint("d", i), NewDevice())
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			creds := []Credential{{Type: TypePSK, AuthID: "shared", Enabled: true, Secrets: []Secret{{Enabled: true, Key: []byte{1}}}}}
			_, errs[i] = r.SetCredentials(ctx, "t", fmt.Sprint("d", i), creds, "")
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

// TestNoPlaintextStored looks at the raw store: a pwd-plain never reaches
// it.
func TestNoPlaintextStored(t *testing.T) {
	st := memstore.NewRegistry()
	r, _ := New(st, &Options{BcryptCost: bcrypt.MinCost})
	r.CreateTenant(ctx, "t", NewTenant())
	r.CreateDevice(ctx, "t", "d", NewDevice())
	for _, fn := range []string{HashBcrypt, HashSHA256, HashSHA512} {
		creds := mustParseCreds(t, `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-plain":"plaintext-marker","hash-function":"`+fn+`"}]}]`)
		if _, err := r.SetCredentials(ctx, "t", "d", creds, ""); err != nil {
			t.Fatal(err)
		}
		st.ViewRegistry(ctx, func(tx store.RegistryReader) error {
			return tx.Scan("", "", func(k string, v []byte) bool {
				if strings.Contains(string(v), "plaintext-marker") || strings.Contains(string(v), "pwd-plain") {
					t.Errorf("%s: key %q holds the plain password: %s", fn, k, v)
				}
				return true
			})
		})
		if _, err := r.Authenticate(ctx, "t", "a", "plaintext-marker"); err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
	}
}
