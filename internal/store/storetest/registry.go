package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ferry-iot/ferry/internal/store"
)

// TestRegistry runs the conformance cases of store.RegistryStore against the
// backend returned by open, which must be empty and is called once per case.
func TestRegistry(t *testing.T, open func(t *testing.T) store.RegistryStore) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s store.RegistryStore)
	}{
		{"PutGetDelete", registryPutGetDelete},
		{"ScanOrderPrefixStart", registryScan},
		{"ScanStop", registryScanStop},
		{"RollbackOnError", registryRollback},
		{"ReadYourWrites", registryReadYourWrites},
		{"WriteWhileScanning", registryWriteWhileScanning},
		{"ValueCopied", registryValueCopied},
		{"CanceledContext", registryCanceled},
		{"SerializableCounter", registrySerializable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

func mustUpdate(t *testing.T, s store.RegistryStore, fn func(tx store.RegistryTx) error) {
	t.Helper()
	if err := s.UpdateRegistry(context.Background(), fn); err != nil {
		t.Fatalf("UpdateRegistry: %v", err)
	}
}

func get(t *testing.T, s store.RegistryStore, key string) (string, bool) {
	t.Helper()
	var v string
	var ok bool
	err := s.ViewRegistry(context.Background(), func(tx store.RegistryReader) error {
		b, found, err := tx.Get(key)
		v, ok = string(b), found
		return err
	})
	if err != nil {
		t.Fatalf("ViewRegistry: %v", err)
	}
	return v, ok
}

func scanAll(t *testing.T, s store.RegistryStore, prefix, start string) []string {
	t.Helper()
	var out []string
	err := s.ViewRegistry(context.Background(), func(tx store.RegistryReader) error {
		return tx.Scan(prefix, start, func(k string, v []byte) bool {
			out = append(out, k+"="+string(v))
			return true
		})
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return out
}

func registryPutGetDelete(t *testing.T, s store.RegistryStore) {
	if _, ok := get(t, s, "a"); ok {
		t.Fatal("empty store has key a")
	}
	mustUpdate(t, s, func(tx store.RegistryTx) error { return tx.Put("a", []byte("1")) })
	if v, ok := get(t, s, "a"); !ok || v != "1" {
		t.Fatalf("a = %q, %v; want 1", v, ok)
	}
	mustUpdate(t, s, func(tx store.RegistryTx) error { return tx.Put("a", []byte("2")) })
	if v, _ := get(t, s, "a"); v != "2" {
		t.Fatalf("a = %q after overwrite; want 2", v)
	}
	mustUpdate(t, s, func(tx store.RegistryTx) error { return tx.Delete("a") })
	if _, ok := get(t, s, "a"); ok {
		t.Fatal("a still present after Delete")
	}
	mustUpdate(t, s, func(tx store.RegistryTx) error { return tx.Delete("missing") })
	mustUpdate(t, s, func(tx store.RegistryTx) error { return tx.Put("empty", nil) })
	if v, ok := get(t, s, "empty"); !ok || v != "" {
		t.Fatalf("empty value: %q, %v", v, ok)
	}
}

func registryScan(t *testing.T, s store.RegistryStore) {
	mustUpdate(t, s, func(tx store.RegistryTx) error {
		for _, k := range []string{"d/t1/b", "d/t1/a", "d/t10/x", "d/t1/c", "t/t1", "d/t2/a", "d/t1"} {
			if err := tx.Put(k, []byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	tests := []struct {
		prefix, start string
		want          []string
	}{
		{"d/t1/", "", []string{"d/t1/a", "d/t1/b", "d/t1/c"}},
		{"d/t1/", "d/t1/b", []string{"d/t1/b", "d/t1/c"}},
		{"d/t1/", "d/t1/bb", []string{"d/t1/c"}},
		{"d/t1/", "a", []string{"d/t1/a", "d/t1/b", "d/t1/c"}},
		{"d/t1/", "z", nil},
		{"d/", "", []string{"d/t1", "d/t1/a", "d/t1/b", "d/t1/c", "d/t10/x", "d/t2/a"}},
		{"x/", "", nil},
	}
	for _, tt := range tests {
		var want []string
		for _, k := range tt.want {
			want = append(want, k+"="+k)
		}
		got := scanAll(t, s, tt.prefix, tt.start)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Scan(%q, %q) = %v; want %v", tt.prefix, tt.start, got, want)
		}
	}
}

func registryScanStop(t *testing.T, s store.RegistryStore) {
	mustUpdate(t, s, func(tx store.RegistryTx) error {
		for i := range 5 {
			if err := tx.Put(fmt.Sprintf("k%d", i), nil); err != nil {
				return err
			}
		}
		return nil
	})
	n := 0
	err := s.ViewRegistry(context.Background(), func(tx store.RegistryReader) error {
		return tx.Scan("k", "", func(string, []byte) bool { n++; return n < 2 })
	})
	if err != nil || n != 2 {
		t.Fatalf("Scan stopped after %d keys (err %v); want 2", n, err)
	}
}

func registryRollback(t *testing.T, s store.RegistryStore) {
	mustUpdate(t, s, func(tx store.RegistryTx) error {
		if err := tx.Put("keep", []byte("old")); err != nil {
			return err
		}
		return tx.Put("gone", []byte("x"))
	})
	boom := errors.New("boom")
	err := s.UpdateRegistry(context.Background(), func(tx store.RegistryTx) error {
		_ = tx.Put("keep", []byte("new"))
		_ = tx.Put("added", []byte("x"))
		_ = tx.Delete("gone")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateRegistry = %v; want fn's error", err)
	}
	got := scanAll(t, s, "", "")
	if want := "[gone=x keep=old]"; fmt.Sprint(got) != want {
		t.Fatalf("after rollback: %v; want %s", got, want)
	}
}

func registryReadYourWrites(t *testing.T, s store.RegistryStore) {
	mustUpdate(t, s, func(tx store.RegistryTx) error {
		if err := tx.Put("p/1", []byte("a")); err != nil {
			return err
		}
		if err := tx.Put("p/2", []byte("b")); err != nil {
			return err
		}
		if err := tx.Delete("p/1"); err != nil {
			return err
		}
		v, ok, err := tx.Get("p/2")
		if err != nil || !ok || string(v) != "b" {
			return fmt.Errorf("in tx, p/2 = %q, %v, %v", v, ok, err)
		}
		if _, ok, _ := tx.Get("p/1"); ok {
			return errors.New("deleted p/1 visible in tx")
		}
		var keys []string
		if err := tx.Scan("p/", "", func(k string, _ []byte) bool { keys = append(keys, k); return true }); err != nil {
			return err
		}
		if fmt.Sprint(keys) != "[p/2]" {
			return fmt.Errorf("in tx, scan = %v; want [p/2]", keys)
		}
		return nil
	})
}

// registryWriteWhileScanning checks that deleting the keys being scanned,
// from inside the scan callback, is allowed: the registry's cascading
// deletes do exactly that.
func registryWriteWhileScanning(t *testing.T, s store.RegistryStore) {
	mustUpdate(t, s, func(tx store.RegistryTx) error {
		for i := range 20 {
			if err := tx.Put(fmt.Sprintf("w/%02d", i), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	mustUpdate(t, s, func(tx store.RegistryTx) error {
		var err error
		scanErr := tx.Scan("w/", "", func(k string, _ []byte) bool {
			err = tx.Delete(k)
			return err == nil
		})
		return errors.Join(err, scanErr)
	})
	if got := scanAll(t, s, "w/", ""); len(got) != 0 {
		t.Fatalf("keys left after deleting while scanning: %v", got)
	}
}

func registryValueCopied(t *testing.T, s store.RegistryStore) {
	buf := []byte("abc")
	mustUpdate(t, s, func(tx store.RegistryTx) error { return tx.Put("v", buf) })
	buf[0] = 'X'
	if v, _ := get(t, s, "v"); v != "abc" {
		t.Fatalf("store shares the caller's buffer: %q", v)
	}
}

func registryCanceled(t *testing.T, s store.RegistryStore) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := s.UpdateRegistry(ctx, func(tx store.RegistryTx) error { called = true; return tx.Put("c", nil) })
	if err == nil && called {
		// A backend may run fn despite the canceled context, but then
		// the write must have happened; both are acceptable. What is not
		// acceptable is reporting success without running fn.
		if _, ok := get(t, s, "c"); !ok {
			t.Fatal("UpdateRegistry returned nil but the write is missing")
		}
		return
	}
	if err == nil {
		t.Fatal("UpdateRegistry with canceled context returned nil without running fn")
	}
}

// registrySerializable runs concurrent read-modify-write transactions on one
// counter; a lost update means transactions are not isolated.
func registrySerializable(t *testing.T, s store.RegistryStore) {
	const workers, rounds = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range rounds {
				err := s.UpdateRegistry(context.Background(), func(tx store.RegistryTx) error {
					v, _, err := tx.Get("n")
					if err != nil {
						return err
					}
					var n int
					if len(v) > 0 {
						if _, err := fmt.Sscan(string(v), &n); err != nil {
							return err
						}
					}
					return tx.Put("n", fmt.Append(nil, n+1))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if v, _ := get(t, s, "n"); v != fmt.Sprint(workers*rounds) {
		t.Fatalf("counter = %s; want %d", v, workers*rounds)
	}
}
