package registry

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/ferry-iot/ferry/internal/store"
)

// ChangeKind says what a registry change concerned.
type ChangeKind string

// Change kinds, as Hono's registry notifications tell them apart.
const (
	TenantCreated ChangeKind = "tenant-created"
	TenantUpdated ChangeKind = "tenant-updated"
	// TenantDeleted also stands for the deletion of every device of the
	// tenant.
	TenantDeleted      ChangeKind = "tenant-deleted"
	DeviceCreated      ChangeKind = "device-created"
	DeviceUpdated      ChangeKind = "device-updated"
	DeviceDeleted      ChangeKind = "device-deleted"
	AllDevicesDeleted  ChangeKind = "all-devices-deleted"
	CredentialsUpdated ChangeKind = "credentials-updated"
	// ChangesLost says that changes made by other processes sharing the
	// store may have been missed (the connection that hears of them was
	// lost): anything may have changed. Tenant and Device are empty.
	ChangesLost ChangeKind = "changes-lost"
)

// Change is one committed registry change. Device is empty for a change
// of a whole tenant. It says what changed, not how: a subscriber reads the
// registry for the state now, which is also right when changes arrive
// late or twice.
type Change struct {
	Tenant string     `json:"tenant,omitempty"`
	Device string     `json:"device,omitempty"`
	Kind   ChangeKind `json:"kind"`
}

// Subscriber hears of registry changes.
type Subscriber interface {
	// RegistryChanged is called once per committed change, after the
	// commit, on the goroutine that made it (an API request) or, for
	// changes made by other processes sharing the store, on the store's
	// listener. It must not block for long and must not change the
	// registry.
	RegistryChanged(Change)
}

// SubscriberFunc is a function as a Subscriber.
type SubscriberFunc func(Change)

// RegistryChanged calls f.
func (f SubscriberFunc) RegistryChanged(c Change) { f(c) }

// notifyTx is a store transaction that carries a change to the other
// processes sharing the store, delivered only if the transaction commits
// (pgstore: pg_notify).
type notifyTx interface {
	Notify(payload string) error
}

// notice is the payload of a change sent through the store: the change and
// the registry that made it, which skips its own.
type notice struct {
	Change
	Origin string `json:"origin"`
}

// notifier holds a Registry's subscribers.
type notifier struct {
	origin string // this Registry, in the notices it sends
	mu     sync.RWMutex
	subs   map[*subscription]struct{}
}

type subscription struct{ s Subscriber }

// Subscribe adds s to the subscribers of every committed change; the
// returned function removes it.
func (r *Registry) Subscribe(s Subscriber) (cancel func()) {
	sub := &subscription{s}
	r.notify.mu.Lock()
	if r.notify.subs == nil {
		r.notify.subs = make(map[*subscription]struct{})
	}
	r.notify.subs[sub] = struct{}{}
	r.notify.mu.Unlock()
	return func() {
		r.notify.mu.Lock()
		delete(r.notify.subs, sub)
		r.notify.mu.Unlock()
	}
}

// publish tells the subscribers of c.
func (r *Registry) publish(c Change) {
	r.notify.mu.RLock()
	subs := make([]Subscriber, 0, len(r.notify.subs))
	for sub := range r.notify.subs {
		subs = append(subs, sub.s)
	}
	r.notify.mu.RUnlock()
	for _, s := range subs {
		s.RegistryChanged(c)
	}
}

// update runs fn in a read-write transaction that also carries c to the
// other processes sharing the store, and tells this registry's subscribers
// of c once it committed.
func (r *Registry) update(ctx context.Context, c Change, fn func(tx store.RegistryTx) error) error {
	err := r.st.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if n, ok := tx.(notifyTx); ok {
			b, err := json.Marshal(notice{c, r.notify.origin})
			if err != nil {
				return err
			}
			return n.Notify(string(b))
		}
		return nil
	})
	if err == nil {
		r.publish(c)
	}
	return err
}

// Notified hands a change that came through the store (another process's,
// see pgstore.Store.ListenRegistry) to the subscribers. Payloads this
// registry sent itself, and payloads it does not understand, are ignored.
func (r *Registry) Notified(payload string) {
	var n notice
	if err := json.Unmarshal([]byte(payload), &n); err != nil || n.Kind == "" || n.Origin == r.notify.origin {
		return
	}
	r.publish(n.Change)
}

// NotificationsLost tells the subscribers that changes made by other
// processes may have been missed (a ChangesLost change).
func (r *Registry) NotificationsLost() {
	r.publish(Change{Kind: ChangesLost})
}
