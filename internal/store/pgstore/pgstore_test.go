package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/pgstore/pgtest"
	"github.com/ferry-iot/ferry/internal/store/storetest"
)

var ctx = context.Background()

// TestPostgres runs every case against one throwaway cluster, each case in
// its own schema: a cluster takes over a second to create, a schema a
// millisecond.
func TestPostgres(t *testing.T) {
	dsn := pgtest.Start(t)
	cases := []struct {
		name string
		fn   func(t *testing.T, dsn string)
	}{
		{"Conformance", testConformance},
		{"RacingUpdates", testRacingUpdates},
		{"ConflictRetried", testConflictRetried},
		{"ConflictUntilCanceled", testConflictUntilCanceled},
		{"FnErrorNotRetried", testFnErrorNotRetried},
		{"ViewSnapshot", testViewSnapshot},
		{"ByteOrder", testByteOrder},
		{"ScanPages", testScanPages},
		{"Reopen", testReopen},
		{"ConcurrentOpen", testConcurrentOpen},
		{"BadDSN", testBadDSN},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, dsn) })
	}
}

// open opens a Store in a new schema of the cluster at dsn.
func open(t *testing.T, dsn string) *Store {
	t.Helper()
	return openDSN(t, pgtest.Schema(t, dsn))
}

func openDSN(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func put(t *testing.T, s *Store, kv ...string) {
	t.Helper()
	err := s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		for i := 0; i+1 < len(kv); i += 2 {
			if err := tx.Put(kv[i], []byte(kv[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s *Store, key string) string {
	t.Helper()
	var v []byte
	err := s.ViewRegistry(ctx, func(tx store.RegistryReader) error {
		var err error
		v, _, err = tx.Get(key)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

func testConformance(t *testing.T, dsn string) {
	storetest.TestRegistry(t, func(t *testing.T) store.RegistryStore { return open(t, dsn) })
}

// increment adds one to the decimal counter under key.
func increment(tx store.RegistryTx, key string) error {
	v, _, err := tx.Get(key)
	if err != nil {
		return err
	}
	var n int
	if len(v) > 0 {
		if _, err := fmt.Sscan(string(v), &n); err != nil {
			return err
		}
	}
	return tx.Put(key, fmt.Append(nil, n+1))
}

// testRacingUpdates increments one counter from two nodes (two Stores on
// one database) at once: PostgreSQL aborts one of two overlapping
// read-modify-writes, and the retry makes both succeed.
func testRacingUpdates(t *testing.T, dsn string) {
	dsn = pgtest.Schema(t, dsn)
	nodes := []*Store{openDSN(t, dsn), openDSN(t, dsn)}
	const rounds = 50
	var calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	for _, s := range nodes {
		wg.Go(func() {
			for range rounds {
				err := s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
					calls.Add(1)
					return increment(tx, "n")
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
	if got, want := get(t, nodes[0], "n"), fmt.Sprint(len(nodes)*rounds); got != want {
		t.Fatalf("counter = %s; want %s", got, want)
	}
	t.Logf("%d transactions took %d runs of fn", len(nodes)*rounds, calls.Load())
}

// conflict makes tx's transaction fail to serialize: another transaction
// overwrites key, which tx has read, and commits before tx writes it. It
// returns the error of tx's write.
func conflict(t *testing.T, s *Store, tx store.RegistryTx, key string) error {
	if _, _, err := tx.Get(key); err != nil {
		t.Errorf("Get: %v", err)
	}
	err := s.UpdateRegistry(ctx, func(other store.RegistryTx) error { return other.Put(key, []byte("other")) })
	if err != nil {
		t.Errorf("concurrent UpdateRegistry: %v", err)
	}
	return tx.Put(key, []byte("mine"))
}

// testConflictRetried checks that a transaction PostgreSQL aborted is run
// again even when fn hides the store's error behind its own.
func testConflictRetried(t *testing.T, dsn string) {
	s := open(t, dsn)
	put(t, s, "k", "0")
	runs := 0
	err := s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		runs++
		if runs == 1 {
			err := conflict(t, s, tx, "k")
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "40001" {
				t.Errorf("write after a concurrent one: %v; want SQLSTATE 40001", err)
			}
			return errors.New("fn's own error, hiding the conflict")
		}
		return tx.Put("k", []byte("mine"))
	})
	if err != nil || runs != 2 {
		t.Fatalf("UpdateRegistry = %v after %d runs; want nil after 2", err, runs)
	}
	if v := get(t, s, "k"); v != "mine" {
		t.Fatalf("k = %q; want mine", v)
	}
}

// testConflictUntilCanceled checks that the retries end with ctx: it is
// canceled during the third run (a deadline would count the machine's
// speed, not the retries).
func testConflictUntilCanceled(t *testing.T, dsn string) {
	s := open(t, dsn)
	put(t, s, "k", "0")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runs := 0
	err := s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		runs++
		if runs > 10 {
			return errors.New("retried past the cancel") // ends the test rather than hang it
		}
		err := conflict(t, s, tx, "k")
		if runs == 3 {
			cancel()
		}
		return err
	})
	if !errors.Is(err, context.Canceled) || runs != 3 {
		t.Fatalf("UpdateRegistry = %v after %d runs; want canceled, after the third", err, runs)
	}
	if v := get(t, s, "k"); v != "other" {
		t.Fatalf("k = %q; want other", v)
	}
}

func testFnErrorNotRetried(t *testing.T, dsn string) {
	s := open(t, dsn)
	boom := errors.New("boom")
	runs := 0
	err := s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		runs++
		if err := tx.Put("k", nil); err != nil {
			return err
		}
		return boom
	})
	if err != boom || runs != 1 {
		t.Fatalf("UpdateRegistry = %v after %d runs; want fn's error itself after 1", err, runs)
	}
	err = s.ViewRegistry(ctx, func(store.RegistryReader) error { return boom })
	if err != boom {
		t.Fatalf("ViewRegistry = %v; want fn's error itself", err)
	}
}

// testViewSnapshot checks that a view reads one snapshot while writers
// commit.
func testViewSnapshot(t *testing.T, dsn string) {
	s := open(t, dsn)
	put(t, s, "a", "1", "b", "1")
	var seen []string
	err := s.ViewRegistry(ctx, func(tx store.RegistryReader) error {
		v, _, err := tx.Get("a")
		if err != nil {
			return err
		}
		seen = append(seen, string(v))
		put(t, s, "a", "2", "b", "2", "c", "2")
		return tx.Scan("", "", func(k string, v []byte) bool {
			seen = append(seen, k+"="+string(v))
			return true
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[1 a=1 b=1]"; fmt.Sprint(seen) != want {
		t.Fatalf("view saw %v; want %s", seen, want)
	}
}

// testByteOrder stores keys that TEXT could not hold or would order by
// collation, and checks that scans see them in byte order.
func testByteOrder(t *testing.T, dsn string) {
	s := open(t, dsn)
	keys := []string{
		"", "\x00", "\x00\x00", "a", "a\x00", "a\x00b", "a\x01", "a/", "a\x7f", "a\x80", "a\xff", "a\xff\xff", "ab",
		"ca/CN=x\x00t1", "ca/CN=x\x00t2", "ca/CN=x,O=y\x00t1", "é", "\xc3", "\xff", "\xff\x00", "\xff\xff",
	}
	err := s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		for _, k := range keys {
			if err := tx.Put(k, []byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys) // Go compares strings bytewise
	tests := []struct{ prefix, start string }{
		{"", ""},
		{"", "a\x00"},
		{"\x00", ""},
		{"a", ""},
		{"a", "a\x00"},
		{"a", "a\x80"},
		{"a\xff", ""},
		{"ca/CN=x\x00", ""},
		{"ca/CN=x\x00", "t2"},
		{"ca/CN=x\x00", "ca/CN=x\x00t2"},
		{"\xff", ""},
		{"\xff", "\xff\x00"},
		{"\xff\xff", ""},
		{"z", ""},
	}
	for _, tt := range tests {
		var want, got []string
		for _, k := range keys {
			if strings.HasPrefix(k, tt.prefix) && k >= tt.start {
				want = append(want, k)
			}
		}
		err := s.ViewRegistry(ctx, func(tx store.RegistryReader) error {
			return tx.Scan(tt.prefix, tt.start, func(k string, v []byte) bool {
				if string(v) != k {
					t.Errorf("value of %q is %q", k, v)
				}
				got = append(got, k)
				return true
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Scan(%q, %q) = %q; want %q", tt.prefix, tt.start, got, want)
		}
	}
	if v := get(t, s, "a\x00b"); v != "a\x00b" {
		t.Errorf(`Get("a\x00b") = %q`, v)
	}
}

// testScanPages crosses Scan's page boundary: in order, stopping on the
// second page, and deleting while scanning.
func testScanPages(t *testing.T, dsn string) {
	s := open(t, dsn)
	const n = 2*scanPage + 3
	err := s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		for i := range n {
			if err := tx.Put(fmt.Sprintf("p/%04d", i), nil); err != nil {
				return err
			}
		}
		return tx.Put("q", nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	err = s.ViewRegistry(ctx, func(tx store.RegistryReader) error {
		return tx.Scan("p/", "", func(k string, _ []byte) bool {
			keys = append(keys, k)
			return len(keys) < scanPage+10
		})
	})
	if err != nil || len(keys) != scanPage+10 || !slices.IsSorted(keys) || keys[len(keys)-1] != fmt.Sprintf("p/%04d", scanPage+9) {
		t.Fatalf("stopped scan: %d keys ending %q (err %v)", len(keys), keys[len(keys)-1], err)
	}
	seen := 0
	err = s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		return tx.Scan("p/", "", func(k string, _ []byte) bool {
			seen++
			return tx.Delete(k) == nil
		})
	})
	if err != nil || seen != n {
		t.Fatalf("scanned %d keys while deleting (err %v); want %d", seen, err, n)
	}
	var left []string
	err = s.ViewRegistry(ctx, func(tx store.RegistryReader) error {
		return tx.Scan("", "", func(k string, _ []byte) bool { left = append(left, k); return true })
	})
	if err != nil || fmt.Sprint(left) != "[q]" {
		t.Fatalf("left %q (err %v); want [q]", left, err)
	}
}

// testReopen opens a database whose table exists: a node restarting, or a
// second node joining.
func testReopen(t *testing.T, dsn string) {
	dsn = pgtest.Schema(t, dsn)
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "t/acme", "v")
	s.Close()
	if err := s.UpdateRegistry(ctx, func(store.RegistryTx) error { return nil }); err == nil {
		t.Fatal("UpdateRegistry after Close succeeded")
	}
	s = openDSN(t, dsn)
	if v := get(t, s, "t/acme"); v != "v" {
		t.Fatalf("after reopen: %q", v)
	}
	if v := get(t, openDSN(t, dsn), "t/acme"); v != "v" {
		t.Fatalf("second store: %q", v)
	}
}

// testConcurrentOpen starts several nodes on an empty database at once:
// only one may create the table, and none may fail.
func testConcurrentOpen(t *testing.T, dsn string) {
	dsn = pgtest.Schema(t, dsn)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			var s *Store
			s, errs[i] = Open(ctx, dsn)
			if s != nil {
				s.Close()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func testBadDSN(t *testing.T, dsn string) {
	noDB := strings.Replace(dsn, "/postgres?", "/nosuchdb?", 1)
	tests := []struct {
		dsn  string
		want string
	}{
		{"not a dsn", "pgstore: parse dsn"},
		{dsn + "&pool_max_conns=0", "pool_max_conns too small"},
		{"postgres://ferry:s3cret@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5", "pgstore: connect"},
		{noDB, `database "nosuchdb" does not exist`},
	}
	for _, tt := range tests {
		s, err := Open(ctx, tt.dsn)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", tt.dsn)
			continue
		}
		t.Log(err)
		if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) = %v; want an error with %q and no password", tt.dsn, err, tt.want)
		}
	}
}
