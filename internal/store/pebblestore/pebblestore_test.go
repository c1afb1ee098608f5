package pebblestore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/pebblestore"
	"github.com/ferry-iot/ferry/internal/store/storetest"
)

func open(t *testing.T, dir string, opts *pebblestore.Options) *pebblestore.Store {
	t.Helper()
	s, err := pebblestore.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	for _, d := range []pebblestore.Durability{pebblestore.DurabilitySync, pebblestore.DurabilityBatch, pebblestore.DurabilityNone} {
		t.Run(d.String(), func(t *testing.T) {
			opts := &pebblestore.Options{Durability: d}
			dirs := map[store.Store]string{}
			var mu sync.Mutex
			storetest.RunWithReopen(t,
				func(t *testing.T) store.Store {
					dir := t.TempDir()
					s := open(t, dir, opts)
					mu.Lock()
					dirs[s] = dir
					mu.Unlock()
					return s
				},
				func(t *testing.T, old store.Store) store.Store {
					if err := old.(*pebblestore.Store).Close(); err != nil {
						t.Fatalf("Close: %v", err)
					}
					mu.Lock()
					dir := dirs[old]
					mu.Unlock()
					return open(t, dir, opts)
				})
		})
	}
}

func TestClosed(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	ctx := context.Background()
	if err := s.PutSession(ctx, "t", store.Session{ClientID: "c"}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("PutSession after Close = %v, want ErrClosed", err)
	}
	if _, err := s.GetSession(ctx, "t", "c"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("GetSession after Close = %v, want ErrClosed", err)
	}
	if _, err := s.AppendQueue(ctx, "t", "c", &store.Message{}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("AppendQueue after Close = %v, want ErrClosed", err)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, nil)
	if s, err := pebblestore.Open(dir, nil); err == nil {
		_ = s.Close()
		t.Fatal("second Open of a directory in use succeeded")
	}
}

func TestParseDurability(t *testing.T) {
	for _, c := range []struct {
		in   string
		want pebblestore.Durability
		ok   bool
	}{
		{"", pebblestore.DurabilitySync, true},
		{"sync", pebblestore.DurabilitySync, true},
		{"batch", pebblestore.DurabilityBatch, true},
		{"none", pebblestore.DurabilityNone, true},
		{"fsync", 0, false},
	} {
		got, err := pebblestore.ParseDurability(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseDurability(%q) = %v, %v", c.in, got, err)
		}
		if c.ok && c.in != "" && got.String() != c.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), c.in)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []pebblestore.Options{{Durability: 7}, {SyncInterval: -1}, {CacheSize: -1}} {
		if _, err := pebblestore.Open(t.TempDir(), &o); err == nil {
			t.Errorf("Open with %+v succeeded", o)
		}
	}
}

// TestBatchModeSyncsOnClose: in batch mode, Close fsyncs what the timer has
// not, so a clean shutdown loses nothing.
func TestBatchModeSyncsOnClose(t *testing.T) {
	s, err := pebblestore.Open(t.TempDir(), &pebblestore.Options{Durability: pebblestore.DurabilityBatch, SyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetRetained(context.Background(), "t", &store.Message{Topic: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.IntervalSyncs != 1 || st.Writes != 1 {
		t.Fatalf("Stats after Close = %+v, want one write and one sync", st)
	}
}
