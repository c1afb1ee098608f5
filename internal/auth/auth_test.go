package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/registry"
)

type countingChecker struct {
	calls int
	pw    string
}

func (c *countingChecker) Authenticate(_ context.Context, tenant, authID, password string) (registry.Identity, error) {
	c.calls++
	if password != c.pw {
		return registry.Identity{}, registry.ErrBadCredentials
	}
	return registry.Identity{TenantID: tenant, AuthID: authID, DeviceID: "d"}, nil
}

func TestCache(t *testing.T) {
	next := &countingChecker{pw: "right"}
	c := NewCache(next, time.Minute, 2)
	now := time.Unix(0, 0)
	c.now = func() time.Time { return now }
	ctx := context.Background()
	for range 3 {
		if _, err := c.Authenticate(ctx, "t", "a", "right"); err != nil {
			t.Fatal(err)
		}
	}
	if next.calls != 1 {
		t.Errorf("3 logins made %d checks, want 1", next.calls)
	}
	// Wrong passwords are never cached, and never answered from the cache.
	for range 2 {
		if _, err := c.Authenticate(ctx, "t", "a", "wrong"); !errors.Is(err, registry.ErrBadCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if next.calls != 3 {
		t.Errorf("calls = %d, want 3", next.calls)
	}
	now = now.Add(2 * time.Minute) // expired
	c.Authenticate(ctx, "t", "a", "right")
	if next.calls != 4 {
		t.Errorf("an expired entry was used")
	}
	// Bounded: more logins than max keep at most max entries.
	c.Authenticate(ctx, "t", "b", "right")
	c.Authenticate(ctx, "t", "c", "right")
	if len(c.entries) > 2 {
		t.Errorf("cache holds %d entries, max 2", len(c.entries))
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := &Limiter{Burst: 3, Interval: time.Second, Max: 2, Now: func() time.Time { return now }}
	for i := range 3 {
		if !l.Allowed("1.2.3.4") {
			t.Fatalf("refused after %d failures, burst is 3", i)
		}
		l.Failed("1.2.3.4")
	}
	if l.Allowed("1.2.3.4") {
		t.Fatal("allowed after 3 failures in a row")
	}
	if !l.Allowed("5.6.7.8") {
		t.Fatal("another address is refused")
	}
	now = now.Add(time.Second)
	if !l.Allowed("1.2.3.4") {
		t.Fatal("still refused after the interval")
	}
	l.Failed("5.6.7.8")
	l.Failed("9.9.9.9") // a third address: the map stays within Max
	if len(l.buckets) > 2 {
		t.Errorf("limiter tracks %d addresses, max 2", len(l.buckets))
	}
}

// A checker whose check of one login runs hook midway, like a registry
// change committed while the password is being checked.
type hookChecker struct {
	countingChecker
	hook func()
}

func (c *hookChecker) Authenticate(ctx context.Context, tenant, authID, password string) (registry.Identity, error) {
	if c.hook != nil {
		c.hook()
	}
	return c.countingChecker.Authenticate(ctx, tenant, authID, password)
}

func TestCacheInvalidate(t *testing.T) {
	next := &hookChecker{countingChecker: countingChecker{pw: "right"}}
	c := NewCache(next, time.Minute, 100)
	ctx := context.Background()
	login := func(tenant, authID string) {
		t.Helper()
		if _, err := c.Authenticate(ctx, tenant, authID, "right"); err != nil {
			t.Fatal(err)
		}
	}
	login("t", "a")
	login("u", "a")
	c.Invalidate("t", "other-device")
	login("t", "a")
	if next.calls != 2 {
		t.Errorf("invalidating another device dropped the entry: %d checks", next.calls)
	}
	c.Invalidate("t", "d")
	login("t", "a")
	login("u", "a")
	if next.calls != 3 {
		t.Errorf("after invalidating device d of t: %d checks, want 3", next.calls)
	}
	c.Invalidate("t", "")
	login("t", "a")
	c.Invalidate("", "")
	login("u", "a")
	if next.calls != 5 {
		t.Errorf("after invalidating tenant t and everything: %d checks, want 5", next.calls)
	}
	// A check that a change overtook is not cached.
	next.hook = func() { c.Invalidate("t", "d") }
	login("t", "b")
	next.hook = nil
	login("t", "b")
	if next.calls != 7 {
		t.Errorf("a check overtaken by Invalidate was cached: %d checks, want 7", next.calls)
	}
}
