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
}

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
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.PublishOnce()
		}
	}
}

// PublishOnce publishes the current figures of every tenant.
func (p *Publisher) PublishOnce() {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	uptime := int64(now().Sub(p.Start) / time.Second)
	for _, tenant := range p.Hub.Tenants() {
		st := p.Hub.TenantStats(tenant)
		for _, kv := range []struct {
			topic string
			value string
		}{
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
		} {
			p.Hub.Publish(tenant, &hub.Message{
				Topic:   "$SYS/broker/" + kv.topic,
				Payload: []byte(kv.value),
				Retain:  true,
			})
		}
	}
}
