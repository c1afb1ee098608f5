package pebblestore

import (
	"context"
	"testing"

	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/storetest"
)

func TestRegistryConformance(t *testing.T) {
	storetest.TestRegistry(t, func(t *testing.T) store.RegistryStore {
		s, err := Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestRegistryScanChunks crosses Scan's chunk boundary, deleting while
// scanning, which the conformance cases do with fewer keys.
func TestRegistryScanChunks(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const n = 3*registryScanChunk + 7
	err = s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		for i := range n {
			if err := tx.Put(string(rune('a'+i%26))+string(rune(0x100+i)), []byte{byte(i)}); err != nil {
				return err
			}
		}
		return tx.Put("zz", nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	err = s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		return tx.Scan("", "", func(k string, _ []byte) bool {
			seen++
			return tx.Delete(k) == nil
		})
	})
	if err != nil || seen != n+1 {
		t.Fatalf("scanned %d keys (err %v); want %d", seen, err, n+1)
	}
}

// TestRegistryReopen checks that committed registry writes survive a
// close and reopen, and that the registry's keys stay out of the way of
// the broker state's.
func TestRegistryReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateRegistry(ctx, func(tx store.RegistryTx) error { return tx.Put("t/acme", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateRegistry(ctx, func(store.RegistryTx) error { return nil }); err == nil {
		t.Fatal("UpdateRegistry after Close succeeded")
	}
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got string
	err = s.ViewRegistry(ctx, func(tx store.RegistryReader) error {
		v, _, err := tx.Get("t/acme")
		got = string(v)
		return err
	})
	if err != nil || got != "v" {
		t.Fatalf("after reopen: %q, %v", got, err)
	}
	n := 0
	err = s.Sessions(ctx, func(string, store.Session) error { n++; return nil })
	if err != nil || n != 0 {
		t.Fatalf("registry keys seen as %d sessions (err %v)", n, err)
	}
}
