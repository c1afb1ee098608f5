package storetest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
)

func sessionPutGet(c *checker) {
	_, err := c.s.GetSession(c.ctx, "t", "c")
	c.is(err, store.ErrNotFound, "GetSession on an empty store")

	rec := c.putSession("t", "c")
	got, err := c.s.GetSession(c.ctx, "t", "c")
	c.ok(err, "GetSession")
	if !sameSession(got, rec) {
		c.t.Fatalf("GetSession = %+v, want %+v", got, rec)
	}

	rec.ExpiryInterval = store.NeverExpire
	rec.Updated = rec.Updated.Add(time.Second)
	rec.Disconnected = rec.Updated
	c.ok(c.s.PutSession(c.ctx, "t", rec), "PutSession (replace)")
	got, err = c.s.GetSession(c.ctx, "t", "c")
	c.ok(err, "GetSession")
	if !sameSession(got, rec) {
		c.t.Fatalf("GetSession after replace = %+v, want %+v", got, rec)
	}

	// Replacing the record leaves the state kept beside it alone.
	c.subscribe("t", "c", "a/#")
	c.ok(c.s.PutSession(c.ctx, "t", rec), "PutSession (again)")
	c.equal(c.filters("t", "c"), []string{"a/#"}, "subscriptions after PutSession")

	zero := store.Session{ClientID: "z"}
	c.ok(c.s.PutSession(c.ctx, "t", zero), "PutSession (zero times)")
	got, err = c.s.GetSession(c.ctx, "t", "z")
	c.ok(err, "GetSession")
	if !got.Created.IsZero() || !got.Disconnected.IsZero() || got.ExpiryInterval != 0 {
		c.t.Fatalf("zero session came back as %+v", got)
	}
}

func sameSession(a, b store.Session) bool {
	return a.ClientID == b.ClientID && a.ExpiryInterval == b.ExpiryInterval &&
		a.Created.Equal(b.Created) && a.Updated.Equal(b.Updated) && a.Disconnected.Equal(b.Disconnected)
}

func sessionInvalid(c *checker) {
	ctx, s := c.ctx, c.s
	msg := &store.Message{Topic: "t"}
	calls := map[string]error{
		"PutSession":         s.PutSession(ctx, "t", store.Session{}),
		"GetSession":         errOnly(s.GetSession(ctx, "t", "")),
		"DeleteSession":      s.DeleteSession(ctx, "t", ""),
		"PutSubscription":    s.PutSubscription(ctx, "t", "", store.Subscription{Filter: "a"}),
		"Subscriptions":      errOnly(s.Subscriptions(ctx, "t", "")),
		"PutOutbound":        s.PutOutbound(ctx, "t", "", store.Outbound{PacketID: 1, State: store.OutboundPublished}),
		"Outbound":           errOnly(s.Outbound(ctx, "t", "")),
		"PutInbound":         s.PutInbound(ctx, "t", "", 1),
		"AppendQueue":        errOnly(s.AppendQueue(ctx, "t", "", msg)),
		"PeekQueue":          errOnly(s.PeekQueue(ctx, "t", "", 0, 1)),
		"TrimQueue":          s.TrimQueue(ctx, "t", "", 1),
		"QueueInfo":          errOnly(s.QueueInfo(ctx, "t", "")),
		"PutWill":            s.PutWill(ctx, "t", "", store.Will{Message: *msg}),
		"GetWill":            errOnly(s.GetWill(ctx, "t", "")),
		"negative expiry":    s.PutSession(ctx, "t", store.Session{ClientID: "c", ExpiryInterval: -1}),
		"empty filter":       s.PutSubscription(ctx, "t", "c", store.Subscription{}),
		"subscription QoS 3": s.PutSubscription(ctx, "t", "c", store.Subscription{Filter: "a", QoS: 3}),
		"retain handling 3":  s.PutSubscription(ctx, "t", "c", store.Subscription{Filter: "a", RetainHandling: 3}),
		"packet id 0":        s.PutOutbound(ctx, "t", "c", store.Outbound{State: store.OutboundPublished}),
		"outbound state 0":   s.PutOutbound(ctx, "t", "c", store.Outbound{PacketID: 1}),
		"outbound QoS 3":     s.PutOutbound(ctx, "t", "c", store.Outbound{PacketID: 1, State: store.OutboundPublished, Message: store.Message{QoS: 3}}),
		"inbound packet 0":   s.PutInbound(ctx, "t", "c", 0),
		"queue QoS 3":        errOnly(s.AppendQueue(ctx, "t", "c", &store.Message{QoS: 3})),
		"retained QoS 3":     s.SetRetained(ctx, "t", &store.Message{Topic: "a", QoS: 3}),
		"will QoS 3":         s.PutWill(ctx, "t", "c", store.Will{Message: store.Message{QoS: 3}}),
	}
	for _, name := range slices.Sorted(maps.Keys(calls)) {
		c.is(calls[name], store.ErrInvalid, name)
	}
	// Nothing was written by the refused calls.
	if subs := c.filters("t", "c"); len(subs) != 0 {
		c.t.Fatalf("refused PutSubscription stored %q", subs)
	}
	if got := c.outbound("t", "c"); len(got) != 0 {
		c.t.Fatalf("refused PutOutbound stored %q", got)
	}
}

func errOnly[T any](_ T, err error) error { return err }

func sessionScan(c *checker) {
	want := []string{"a/c1", "a/c2", "b/c1", "ab/c"}
	for _, k := range want {
		t, id, _ := cut(k)
		c.putSession(t, id)
	}
	// State without a session record is not a session.
	c.subscribe("a", "orphan", "x")
	var got []string
	c.ok(c.s.Sessions(c.ctx, func(tenant string, s store.Session) error {
		got = append(got, tenant+"/"+s.ClientID)
		return nil
	}), "Sessions")
	slices.Sort(got)
	slices.Sort(want)
	c.equal(got, want, "Sessions")

	stop := errors.New("stop")
	n := 0
	err := c.s.Sessions(c.ctx, func(string, store.Session) error { n++; return stop })
	c.is(err, stop, "Sessions with a failing fn")
	if n != 1 {
		c.t.Fatalf("Sessions called fn %d times after it failed, want 1", n)
	}
}

func cut(k string) (tenant, id string, ok bool) {
	for i := range len(k) {
		if k[i] == '/' {
			return k[:i], k[i+1:], true
		}
	}
	return k, "", false
}

// fill writes one of every kind of session state under (tenant, id), with
// the id in every payload so that a mix-up shows.
func (c *checker) fill(tenant, id string) {
	c.t.Helper()
	c.putSession(tenant, id)
	c.subscribe(tenant, id, id+"/a", id+"/b")
	c.putOutbound(tenant, id, 7, store.OutboundPublished)
	c.ok(c.s.PutInbound(c.ctx, tenant, id, 9), "PutInbound")
	c.append(tenant, id, id+"-1", id+"-2")
	c.ok(c.s.PutWill(c.ctx, tenant, id, store.Will{Message: store.Message{Topic: id + "/will"}, Delay: time.Minute}), "PutWill")
}

// check verifies what fill wrote.
func (c *checker) check(tenant, id string) {
	c.t.Helper()
	if _, err := c.s.GetSession(c.ctx, tenant, id); err != nil {
		c.t.Fatalf("GetSession(%q, %q): %v", tenant, id, err)
	}
	c.equal(c.filters(tenant, id), []string{id + "/a", id + "/b"}, "subscriptions of "+tenant+"/"+id)
	c.equal(c.outbound(tenant, id), []string{"7:1"}, "outbound of "+tenant+"/"+id)
	if got := c.inbound(tenant, id); !slices.Equal(got, []uint16{9}) {
		c.t.Fatalf("inbound of %s/%s = %v, want [9]", tenant, id, got)
	}
	c.equal(c.queued(tenant, id), []string{id + "-1", id + "-2"}, "queue of "+tenant+"/"+id)
	w, err := c.s.GetWill(c.ctx, tenant, id)
	c.ok(err, "GetWill")
	if w.Message.Topic != id+"/will" || w.Delay != time.Minute {
		c.t.Fatalf("will of %s/%s = %+v", tenant, id, w)
	}
}

// checkGone verifies that nothing of (tenant, id) is left.
func (c *checker) checkGone(tenant, id string) {
	c.t.Helper()
	_, err := c.s.GetSession(c.ctx, tenant, id)
	c.is(err, store.ErrNotFound, "GetSession after delete")
	if got := c.filters(tenant, id); len(got) != 0 {
		c.t.Fatalf("subscriptions left after delete: %q", got)
	}
	if got := c.outbound(tenant, id); len(got) != 0 {
		c.t.Fatalf("outbound left after delete: %q", got)
	}
	if got := c.inbound(tenant, id); len(got) != 0 {
		c.t.Fatalf("inbound left after delete: %v", got)
	}
	if got := c.queued(tenant, id); len(got) != 0 {
		c.t.Fatalf("queue left after delete: %q", got)
	}
	info, err := c.s.QueueInfo(c.ctx, tenant, id)
	c.ok(err, "QueueInfo")
	if info != (store.QueueInfo{}) {
		c.t.Fatalf("QueueInfo after delete = %+v", info)
	}
	_, err = c.s.GetWill(c.ctx, tenant, id)
	c.is(err, store.ErrNotFound, "GetWill after delete")
}

func sessionDeleteCascade(c *checker) {
	// Neighbours whose keys a careless layout would put in the deleted
	// range: a longer client id with the same prefix, and a tenant whose
	// name starts with the deleted one.
	for _, k := range [][2]string{{"t", "c"}, {"t", "c1"}, {"t", "b"}, {"tt", "c"}} {
		c.fill(k[0], k[1])
	}
	c.ok(c.s.DeleteSession(c.ctx, "t", "c"), "DeleteSession")
	c.checkGone("t", "c")
	c.check("t", "c1")
	c.check("t", "b")
	c.check("tt", "c")

	c.ok(c.s.DeleteSession(c.ctx, "t", "c"), "DeleteSession of a missing session")
	c.ok(c.s.DeleteSession(c.ctx, "nobody", "nothing"), "DeleteSession in a missing tenant")

	// A session recreated after delete starts empty and works as new.
	c.fill("t", "c")
	c.check("t", "c")
}

func tenantIsolation(c *checker) {
	// Pairs that concatenate to the same bytes must stay apart.
	pairs := [][2]string{{"a", "bc"}, {"ab", "c"}, {"a", "b/c"}, {"a/b", "c"}, {"", "abc"}, {"abc", "x"}}
	for _, p := range pairs {
		c.fill(p[0], p[1])
	}
	for _, p := range pairs {
		c.check(p[0], p[1])
	}
	// Same client id in two tenants never mixes.
	c.ok(c.s.DeleteSession(c.ctx, "ab", "c"), "DeleteSession")
	c.checkGone("ab", "c")
	c.check("a", "bc")

	// Retained messages: same topic, two tenants.
	c.ok(c.s.SetRetained(c.ctx, "t1", &store.Message{Topic: "x", Payload: []byte("1")}), "SetRetained")
	c.ok(c.s.SetRetained(c.ctx, "t2", &store.Message{Topic: "x", Payload: []byte("2")}), "SetRetained")
	c.ok(c.s.SetRetained(c.ctx, "t", &store.Message{Topic: "1x", Payload: []byte("3")}), "SetRetained")
	c.equal(c.retainedTopics("t1"), []string{"x=1"}, "retained of t1")
	c.equal(c.retainedTopics("t2"), []string{"x=2"}, "retained of t2")
	c.equal(c.retainedTopics("t"), []string{"1x=3"}, "retained of t")
	c.ok(c.s.ClearRetained(c.ctx, "t1", "x"), "ClearRetained")
	c.equal(c.retainedTopics("t2"), []string{"x=2"}, "retained of t2 after clearing t1")

	// Wills report their tenant.
	var wills []string
	c.ok(c.s.Wills(c.ctx, func(tenant, id string, w store.Will) error {
		wills = append(wills, tenant+"|"+id+"|"+w.Message.Topic)
		return nil
	}), "Wills")
	want := []string{"|abc|abc/will", "a/b|c|c/will", "a|b/c|b/c/will", "a|bc|bc/will", "abc|x|x/will"}
	slices.Sort(wills)
	slices.Sort(want)
	c.equal(wills, want, "Wills")
}

func canceledContext(c *checker) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.is(c.s.PutSession(ctx, "t", store.Session{ClientID: "c"}), context.Canceled, "PutSession")
	c.is(errOnly(c.s.AppendQueue(ctx, "t", "c", &store.Message{})), context.Canceled, "AppendQueue")
	c.is(errOnly(c.s.GetSession(ctx, "t", "c")), context.Canceled, "GetSession")
	c.is(c.s.SetRetained(ctx, "t", &store.Message{}), context.Canceled, "SetRetained")
	_, err := c.s.GetSession(c.ctx, "t", "c")
	c.is(err, store.ErrNotFound, "GetSession after a canceled PutSession")
}
