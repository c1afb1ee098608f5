// Package auth protects device logins: a cache of recent successful
// checks, so reconnect storms do not repeat slow password hashes, and a
// per-address limiter of failed logins, so guessing costs the guesser time,
// not Ferry's CPU.
package auth

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/registry"
)

// Checker checks a password login; *registry.Registry is one.
type Checker interface {
	Authenticate(ctx context.Context, tenant, authID, password string) (registry.Identity, error)
}

// Cache remembers successful logins for a short time. A changed or removed
// credential takes effect for new logins within TTL, or at once when the
// registry's change notification calls Invalidate.
type Cache struct {
	next Checker
	ttl  time.Duration
	max  int
	now  func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
	// gen counts Invalidate calls: a check that started before one is
	// not cached, since it may have read what was invalidated.
	gen uint64
}

type cacheKey struct {
	tenant, authID string
	pwSum          [32]byte // the password is never kept in memory
}

type cacheEntry struct {
	id      registry.Identity
	expires time.Time
}

// NewCache wraps next with a cache of up to max successful logins, each
// kept for ttl. ttl 0 disables the cache.
func NewCache(next Checker, ttl time.Duration, max int) *Cache {
	return &Cache{next: next, ttl: ttl, max: max, now: time.Now, entries: make(map[cacheKey]cacheEntry)}
}

// Authenticate answers from the cache or asks the wrapped checker.
func (c *Cache) Authenticate(ctx context.Context, tenant, authID, password string) (registry.Identity, error) {
	if c.ttl <= 0 {
		return c.next.Authenticate(ctx, tenant, authID, password)
	}
	k := cacheKey{tenant: tenant, authID: authID, pwSum: sha256.Sum256([]byte(password))}
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[k]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.id, nil
	}
	id, err := c.next.Authenticate(ctx, tenant, authID, password)
	if err != nil {
		return id, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return id, nil // the registry changed meanwhile: not cached
	}
	if len(c.entries) >= c.max {
		// Full: drop the expired entries, or everything when none is.
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[k] = cacheEntry{id: id, expires: now.Add(c.ttl)}
	return id, nil
}

// Invalidate forgets the cached logins of a device of tenant, of every
// device of tenant when device is empty, or all of them when tenant is
// empty too.
func (c *Cache) Invalidate(tenant, device string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if tenant == "" {
		clear(c.entries)
		return
	}
	for k, e := range c.entries {
		if k.tenant == tenant && (device == "" || e.id.DeviceID == device) {
			delete(c.entries, k)
		}
	}
}

// Limiter bounds failed logins per remote address with a token bucket:
// Burst failures at once, then one per Interval. Addresses are forgotten
// once their bucket is full again, and at most Max are tracked (beyond, the
// oldest are forgotten), so the limiter's memory is bounded.
type Limiter struct {
	Burst    int
	Interval time.Duration
	Max      int
	Now      func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Allowed reports whether addr may try to log in now.
func (l *Limiter) Allowed(addr string) bool {
	if l == nil || l.Burst <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[addr]
	if b == nil {
		return true
	}
	l.refill(b, l.now())
	return b.tokens >= 1
}

// Failed records a failed login of addr.
func (l *Limiter) Failed(addr string) {
	if l == nil || l.Burst <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.buckets == nil {
		l.buckets = make(map[string]*bucket)
	}
	b := l.buckets[addr]
	if b == nil {
		if l.Max > 0 && len(l.buckets) >= l.Max {
			l.evict(now)
		}
		b = &bucket{tokens: float64(l.Burst), last: now}
		l.buckets[addr] = b
	}
	l.refill(b, now)
	b.tokens = max(0, b.tokens-1)
}

func (l *Limiter) refill(b *bucket, now time.Time) {
	if l.Interval > 0 {
		b.tokens = min(float64(l.Burst), b.tokens+float64(now.Sub(b.last))/float64(l.Interval))
	}
	b.last = now
}

// evict forgets the addresses whose buckets are full again, or the oldest
// half when none is.
func (l *Limiter) evict(now time.Time) {
	for addr, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= float64(l.Burst) {
			delete(l.buckets, addr)
		}
	}
	if len(l.buckets) < l.Max {
		return
	}
	n := 0
	for addr := range l.buckets {
		if n >= len(l.buckets)/2 {
			break
		}
		delete(l.buckets, addr)
		n++
	}
}

// PasswordChecker checks a device's password login (auth-id@tenant);
// *registry.Registry and *Cache are ones. Every device front end takes one.
type PasswordChecker interface {
	Authenticate(ctx context.Context, tenant, authID, password string) (registry.Identity, error)
}
