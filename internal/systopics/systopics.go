// Package systopics publishes broker statistics under $SYS/broker/, the way
// Mosquitto does: retained QoS 0 messages, refreshed periodically, so a
// subscriber to $SYS/# gets the current values at once. Every tenant sees
// its own figures only; uptime and version are the process's.
package systopics

import (
	"context"
	"strconv"
	"time"

	"github.com/ferry-iot/ferry/internal/hub"
)

// Publisher publishes the $SYS topics of every tenant of a hub.
type Publisher struct {
	Hub *hub.Hub
	// Interval between updates. If zero, 10 s.
	Interval time.Duration
	// Version is published as $SYS/broker/version.
	Version string
	// Start is the process start, for $SYS/broker/uptime. If zero, the
	// time Run is called.
	Start time.Time
	// Now is the clock, for tests. If nil, time.Now.
	Now func() time.Time
	// Extra, if set, returns more figures of a tenant, published under
	// $SYS/broker/ beside the hub's (a bridge's connection state, say).
	Extra func(tenant string) []Topic

	seen map[string]bool // tenants published at least once; owned by Run
}

// Topic is one figure: its topic under $SYS/broker/ and its value.
type Topic struct{ Name, Value string }

// Run publishes at once and then every Interval until ctx ends.
func (p *Publisher) Run(ctx context.Context) {
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Start.IsZero() {
		p.Start = p.Now()
	}
	interval := p.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	p.PublishOnce()
	// A tenant that appears between two updates gets its figures within a
	// second, so a new client subscribing to $SYS/# sees them.
	check := min(interval, time.Second)
	t := time.NewTicker(check)
	defer t.Stop()
	last := p.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if now := p.Now(); now.Sub(last) >= interval {
				p.PublishOnce()
				last = now
			} else {
				p.publishNew()
			}
		}
	}
}

// publishNew publishes the figures of tenants not published yet.
func (p *Publisher) publishNew() {
	for _, tenant := range p.Hub.Tenants() {
		if !p.seen[tenant] {
			p.publishTenant(tenant)
		}
	}
}

// PublishOnce publishes the current figures of every tenant.
func (p *Publisher) PublishOnce() {
	for _, tenant := range p.Hub.Tenants() {
		p.publishTenant(tenant)
	}
}

func (p *Publisher) publishTenant(tenant string) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	if p.seen == nil {
		p.seen = make(map[string]bool)
	}
	p.seen[tenant] = true
	uptime := int64(now().Sub(p.Start) / time.Second)
	st := p.Hub.TenantStats(tenant)
	topics := []Topic{
		{"version", "ferry " + p.Version},
		{"uptime", strconv.FormatInt(uptime, 10) + " seconds"},
		{"clients/connected", strconv.FormatInt(st.Connected, 10)},
		{"clients/total", strconv.FormatInt(st.Sessions, 10)},
		{"clients/disconnected", strconv.FormatInt(st.Sessions-st.Connected, 10)},
		{"connections/total", strconv.FormatUint(st.Connects, 10)},
		{"messages/received", strconv.FormatUint(st.Published, 10)},
		{"messages/sent", strconv.FormatUint(st.Sent, 10)},
		{"messages/dropped", strconv.FormatUint(st.Dropped, 10)},
		{"messages/queued", strconv.Itoa(st.Queued)},
		{"bytes/received", strconv.FormatUint(st.BytesIn, 10)},
		{"bytes/sent", strconv.FormatUint(st.BytesSent, 10)},
		{"retained messages/count", strconv.Itoa(st.Retained)},
		{"subscriptions/count", strconv.Itoa(st.Subscripts)},
	}
	if p.Extra != nil {
		topics = append(topics, p.Extra(tenant)...)
	}
	for _, kv := range topics {
		p.Hub.Publish(tenant, &hub.Message{
			Topic:   "$SYS/broker/" + kv.Name,
			Payload: []byte(kv.Value),
			Retain:  true,
		})
	}
}
