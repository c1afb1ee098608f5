package hub

import (
	"slices"
	"strings"
	"time"
)

// Read-only views of the hub's state for operators (the web console, `ferry
// clients`): what sessions and retained messages a tenant holds. They copy
// what they return, take each lock briefly and never create a tenant.

// SessionInfo describes one session of a tenant.
type SessionInfo struct {
	Tenant   string
	ClientID string
	// Online says a connection is attached; Attached is when it was.
	Online   bool
	Attached time.Time
	// Durable says the session outlives its connection in the store.
	Durable bool
	// Queued counts the deliveries waiting in the session's queue (in
	// memory; a durable session's spilled ones are not counted).
	Queued        int
	Subscriptions []Subscription
}

// Sessions returns the sessions of tenant, sorted by client ID; all
// tenants' when tenant is empty. Sessions whose client ID has prefix hidden
// (internal subscribers such as the northbound groups) are left out when
// hidden is not empty.
func (h *Hub) Sessions(tenant, hidden string) []SessionInfo {
	var out []SessionInfo
	for _, t := range h.tenantsNamed(tenant) {
		t.mu.RLock()
		sessions := make([]*Session, 0, len(t.sessions))
		for id, s := range t.sessions {
			if hidden != "" && strings.HasPrefix(id, hidden) {
				continue
			}
			sessions = append(sessions, s)
		}
		subs := make([][]Subscription, len(sessions))
		for i, s := range sessions {
			for _, sub := range s.subs {
				subs[i] = append(subs[i], sub)
			}
		}
		t.mu.RUnlock()
		for i, s := range sessions {
			s.mu.Lock()
			info := SessionInfo{Tenant: t.name, ClientID: s.ID, Online: s.sink != nil, Durable: s.durable,
				Queued: len(s.queue), Subscriptions: subs[i]}
			if info.Online {
				info.Attached = s.attached
			}
			s.mu.Unlock()
			slices.SortFunc(info.Subscriptions, func(a, b Subscription) int { return strings.Compare(a.Filter, b.Filter) })
			out = append(out, info)
		}
	}
	slices.SortFunc(out, func(a, b SessionInfo) int {
		if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
			return c
		}
		return strings.Compare(a.ClientID, b.ClientID)
	})
	return out
}

// Session returns the session info of clientID in tenant.
func (h *Hub) Session(tenant, clientID string) (SessionInfo, bool) {
	for _, s := range h.Sessions(tenant, "") {
		if s.ClientID == clientID {
			return s, true
		}
	}
	return SessionInfo{}, false
}

// Retained returns the unexpired retained messages of tenant whose topics
// filter matches ("#" for all but the $ topics), at most limit of them
// (0: no limit), sorted by topic. The messages are shared: read only.
func (h *Hub) Retained(tenant, filter string, limit int) []*Message {
	h.mu.RLock()
	t := h.tenants[tenant]
	h.mu.RUnlock()
	if t == nil {
		return nil
	}
	msgs := t.retained.match(filter, h.opts.Now())
	slices.SortFunc(msgs, func(a, b *Message) int { return strings.Compare(a.Topic, b.Topic) })
	if limit > 0 && len(msgs) > limit {
		msgs = msgs[:limit]
	}
	return msgs
}

// tenantsNamed returns the tenant called name, or every tenant when name
// is empty; none that does not exist.
func (h *Hub) tenantsNamed(name string) []*tenant {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if name != "" {
		if t := h.tenants[name]; t != nil {
			return []*tenant{t}
		}
		return nil
	}
	out := make([]*tenant, 0, len(h.tenants))
	for _, t := range h.tenants {
		out = append(out, t)
	}
	return out
}
