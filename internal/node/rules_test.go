package node

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/memstore"
)

// failingStore is a registry store whose reads fail once failing is set.
type failingStore struct {
	store.RegistryStore
	failing bool
}

var errStoreDown = errors.New("store down")

func (s *failingStore) ViewRegistry(ctx context.Context, fn func(store.RegistryReader) error) error {
	if s.failing {
		return errStoreDown
	}
	return s.RegistryStore.ViewRegistry(ctx, fn)
}

// TestTenantRulesFailClosed: a registry that cannot be read yields an
// error, never "no rules" (which allows everything); a tenant the registry
// does not hold has no rules.
func TestTenantRulesFailClosed(t *testing.T) {
	st := &failingStore{RegistryStore: memstore.NewRegistry()}
	reg, err := registry.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tn := registry.NewTenant()
	tn.Ext = map[string]any{"acl": []any{map[string]any{"topic": "allowed/#"}}}
	if _, _, err := reg.CreateTenant(ctx, "t1", tn); err != nil {
		t.Fatal(err)
	}
	var failures []string
	rules := tenantRules(reg, slog.New(slog.DiscardHandler), func(op string) { failures = append(failures, op) })

	got, err := rules(ctx, "t1")
	if err != nil || len(got) != 1 || got[0].Topic != "allowed/#" || got[0].Tenant != "t1" {
		t.Fatalf("rules of t1 = %v, %v", got, err)
	}
	if got, err := rules(ctx, "nowhere"); err != nil || got != nil {
		t.Errorf("rules of a tenant not in the registry = %v, %v; want none, no error", got, err)
	}
	if len(failures) != 0 {
		t.Errorf("failures counted without a failure: %v", failures)
	}

	st.failing = true
	got, err = rules(ctx, "t1")
	if !errors.Is(err, errStoreDown) {
		t.Fatalf("rules with the store down = %v, %v; want the store's error", got, err)
	}
	if len(failures) != 1 {
		t.Errorf("failures counted: %v, want one", failures)
	}
}
