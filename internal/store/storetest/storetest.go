// Package storetest is the conformance suite of Ferry's storage contracts:
// every backend of store.Store runs [Run] (and [RunWithReopen] when it
// persists), and every backend of store.RegistryStore runs TestRegistry.
//
// # Basics
//
// A backend's test calls
//
//	storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
//
// open is called once per case and must return an empty store; it should
// register its own cleanup with t.Cleanup. Each case is a subtest named for
// the contract it checks, so a failure names the broken promise.
//
// # Caveats
//
// The retained-expiry cases compare against the wall clock with margins of
// an hour, so a backend must use time.Now for expiry, not a fake clock.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
)

// Reopen closes s and opens the same data again, as after a restart.
type Reopen func(t *testing.T, s store.Store) store.Store

// Run runs the conformance cases of store.Store against the backend that
// open returns.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	run(t, open, nil)
}

// RunWithReopen runs the cases of Run, and the persistence cases, which
// write, reopen the store with reopen and check that everything is there.
func RunWithReopen(t *testing.T, open func(t *testing.T) store.Store, reopen Reopen) {
	run(t, open, reopen)
}

type suiteCase struct {
	name       string
	fn         func(c *checker)
	needReopen bool
}

var suiteCases = []suiteCase{
	{name: "Session/PutGetReplace", fn: sessionPutGet},
	{name: "Session/InvalidArguments", fn: sessionInvalid},
	{name: "Session/ScanAllTenants", fn: sessionScan},
	{name: "Session/DeleteCascades", fn: sessionDeleteCascade},
	{name: "Session/TenantIsolation", fn: tenantIsolation},
	{name: "Session/CanceledContext", fn: canceledContext},
	{name: "Subscription/PutReplaceDelete", fn: subscriptionPutDelete},
	{name: "Inflight/OutboundOrder", fn: outboundOrder},
	{name: "Inflight/Inbound", fn: inboundIDs},
	{name: "Queue/Order", fn: queueOrder},
	{name: "Queue/PeekRangeAndLimit", fn: queuePeek},
	{name: "Queue/TrimAndInfo", fn: queueTrim},
	{name: "Queue/Batch", fn: queueBatch},
	{name: "Queue/ConcurrentSessions", fn: queueConcurrent},
	{name: "Retained/SetReplaceClear", fn: retainedSetClear},
	{name: "Retained/IterateInTopicOrder", fn: retainedIterate},
	{name: "Retained/Expiry", fn: retainedExpiry},
	{name: "Will/PutGetDelete", fn: willPutGet},
	{name: "Message/StoredCopy", fn: messageCopied},
	{name: "Message/AllFieldsRoundTrip", fn: messageRoundTrip},
	{name: "Concurrent/MixedWriters", fn: concurrentWriters},
	{name: "Reopen/EverythingSurvives", fn: reopenSurvives, needReopen: true},
	{name: "Reopen/OrderContinues", fn: reopenOrder, needReopen: true},
}

func run(t *testing.T, open func(t *testing.T) store.Store, reopen Reopen) {
	for _, sc := range suiteCases {
		if sc.needReopen && reopen == nil {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			c := &checker{t: t, s: open(t), reopenFn: reopen, ctx: context.Background()}
			sc.fn(c)
		})
	}
}

// checker carries one case's store and fails the test on unexpected errors,
// so that the cases read as the contract they check.
type checker struct {
	t        *testing.T
	s        store.Store
	reopenFn Reopen
	ctx      context.Context
}

func (c *checker) reopen() {
	c.t.Helper()
	c.s = c.reopenFn(c.t, c.s)
}

func (c *checker) ok(err error, what string) {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

func (c *checker) is(err, want error, what string) {
	c.t.Helper()
	if !errors.Is(err, want) {
		c.t.Fatalf("%s = %v, want %v", what, err, want)
	}
}

func (c *checker) putSession(tenant, id string) store.Session {
	c.t.Helper()
	now := time.Now().Truncate(time.Millisecond)
	rec := store.Session{ClientID: id, ExpiryInterval: time.Hour, Created: now, Updated: now}
	c.ok(c.s.PutSession(c.ctx, tenant, rec), "PutSession")
	return rec
}

func (c *checker) subscribe(tenant, id string, filters ...string) {
	c.t.Helper()
	for _, f := range filters {
		c.ok(c.s.PutSubscription(c.ctx, tenant, id, store.Subscription{Filter: f, QoS: 1}), "PutSubscription "+f)
	}
}

func (c *checker) filters(tenant, id string) []string {
	c.t.Helper()
	subs, err := c.s.Subscriptions(c.ctx, tenant, id)
	c.ok(err, "Subscriptions")
	var out []string
	for _, s := range subs {
		out = append(out, s.Filter)
	}
	return out
}

func (c *checker) append(tenant, id string, payloads ...string) []uint64 {
	c.t.Helper()
	var seqs []uint64
	for _, p := range payloads {
		seq, err := c.s.AppendQueue(c.ctx, tenant, id, &store.Message{Topic: "q", Payload: []byte(p), QoS: 1})
		c.ok(err, "AppendQueue")
		seqs = append(seqs, seq)
	}
	return seqs
}

// queued returns the payloads of the whole queue, in order.
func (c *checker) queued(tenant, id string) []string {
	c.t.Helper()
	entries, err := c.s.PeekQueue(c.ctx, tenant, id, 0, 1<<30)
	c.ok(err, "PeekQueue")
	var out []string
	for _, e := range entries {
		out = append(out, string(e.Message.Payload))
	}
	return out
}

func (c *checker) putOutbound(tenant, id string, pid uint16, state store.OutboundState) {
	c.t.Helper()
	o := store.Outbound{PacketID: pid, State: state, Message: store.Message{Topic: "o", Payload: fmt.Appendf(nil, "%d", pid), QoS: 2}}
	c.ok(c.s.PutOutbound(c.ctx, tenant, id, o), "PutOutbound")
}

// outbound returns "pid:state" for each outbound record, in order.
func (c *checker) outbound(tenant, id string) []string {
	c.t.Helper()
	recs, err := c.s.Outbound(c.ctx, tenant, id)
	c.ok(err, "Outbound")
	var out []string
	for _, o := range recs {
		out = append(out, fmt.Sprintf("%d:%d", o.PacketID, o.State))
	}
	return out
}

func (c *checker) inbound(tenant, id string) []uint16 {
	c.t.Helper()
	ids, err := c.s.Inbound(c.ctx, tenant, id)
	c.ok(err, "Inbound")
	return ids
}

func (c *checker) retainedTopics(tenant string) []string {
	c.t.Helper()
	var out []string
	c.ok(c.s.Retained(c.ctx, tenant, func(m *store.Message) error {
		out = append(out, m.Topic+"="+string(m.Payload))
		return nil
	}), "Retained")
	return out
}

func (c *checker) equal(got, want []string, what string) {
	c.t.Helper()
	if !slices.Equal(got, want) {
		c.t.Fatalf("%s = %q, want %q", what, got, want)
	}
}
