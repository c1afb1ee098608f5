package storetest

import (
	"errors"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
)

func retainedSetClear(c *checker) {
	_, err := c.s.GetRetained(c.ctx, "t", "a")
	c.is(err, store.ErrNotFound, "GetRetained on an empty store")

	c.ok(c.s.SetRetained(c.ctx, "t", &store.Message{Topic: "a", Payload: []byte("1"), Retain: true}), "SetRetained")
	c.ok(c.s.SetRetained(c.ctx, "t", &store.Message{Topic: "a", Payload: []byte("2"), Retain: true, QoS: 1}), "SetRetained (replace)")
	m, err := c.s.GetRetained(c.ctx, "t", "a")
	c.ok(err, "GetRetained")
	if string(m.Payload) != "2" || m.QoS != 1 || !m.Retain {
		c.t.Fatalf("GetRetained after replace = %+v", m)
	}
	c.equal(c.retainedTopics("t"), []string{"a=2"}, "Retained after replace")

	// The store keeps empty payloads; clearing is the caller's decision.
	c.ok(c.s.SetRetained(c.ctx, "t", &store.Message{Topic: "e"}), "SetRetained (empty payload)")
	c.equal(c.retainedTopics("t"), []string{"a=2", "e="}, "Retained with an empty payload")

	c.ok(c.s.ClearRetained(c.ctx, "t", "a"), "ClearRetained")
	_, err = c.s.GetRetained(c.ctx, "t", "a")
	c.is(err, store.ErrNotFound, "GetRetained after clear")
	c.ok(c.s.ClearRetained(c.ctx, "t", "a"), "ClearRetained of a cleared topic")
	c.ok(c.s.ClearRetained(c.ctx, "nobody", "a"), "ClearRetained in a missing tenant")
	c.equal(c.retainedTopics("t"), []string{"e="}, "Retained after clear")
}

func retainedIterate(c *checker) {
	for _, topic := range []string{"b", "a/b", "a", "$SYS/x", "a/b/c", "ä"} {
		c.ok(c.s.SetRetained(c.ctx, "t", &store.Message{Topic: topic, Payload: []byte("v")}), "SetRetained")
	}
	c.equal(c.retainedTopics("t"), []string{"$SYS/x=v", "a=v", "a/b=v", "a/b/c=v", "b=v", "ä=v"}, "Retained in topic order")

	stop := errors.New("stop")
	n := 0
	err := c.s.Retained(c.ctx, "t", func(*store.Message) error { n++; return stop })
	c.is(err, stop, "Retained with a failing fn")
	if n != 1 {
		c.t.Fatalf("Retained called fn %d times after it failed", n)
	}
	c.equal(c.retainedTopics("nobody"), nil, "Retained of a missing tenant")
}

func retainedExpiry(c *checker) {
	now := time.Now()
	c.ok(c.s.SetRetained(c.ctx, "t", &store.Message{Topic: "old", Expiry: now.Add(-time.Hour)}), "SetRetained (expired)")
	c.ok(c.s.SetRetained(c.ctx, "t", &store.Message{Topic: "new", Expiry: now.Add(time.Hour)}), "SetRetained (live)")
	c.ok(c.s.SetRetained(c.ctx, "t", &store.Message{Topic: "forever"}), "SetRetained (no expiry)")
	_, err := c.s.GetRetained(c.ctx, "t", "old")
	c.is(err, store.ErrNotFound, "GetRetained of an expired message")
	m, err := c.s.GetRetained(c.ctx, "t", "new")
	c.ok(err, "GetRetained of a live message")
	if !m.Expiry.Equal(now.Add(time.Hour)) {
		c.t.Fatalf("expiry = %v, want %v", m.Expiry, now.Add(time.Hour))
	}
	c.equal(c.retainedTopics("t"), []string{"forever=", "new="}, "Retained hides expired messages")
	// Setting a live message over an expired one revives the topic.
	c.ok(c.s.SetRetained(c.ctx, "t", &store.Message{Topic: "old", Payload: []byte("x")}), "SetRetained")
	c.equal(c.retainedTopics("t"), []string{"forever=", "new=", "old=x"}, "Retained after replacing an expired message")
}

func willPutGet(c *checker) {
	_, err := c.s.GetWill(c.ctx, "t", "c")
	c.is(err, store.ErrNotFound, "GetWill on an empty store")

	deadline := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	w := store.Will{Message: store.Message{Topic: "w", Payload: []byte("bye"), QoS: 1, Retain: true}, Delay: 30 * time.Second}
	c.ok(c.s.PutWill(c.ctx, "t", "c", w), "PutWill")
	w.Deadline = deadline
	c.ok(c.s.PutWill(c.ctx, "t", "c", w), "PutWill (replace, armed)")
	got, err := c.s.GetWill(c.ctx, "t", "c")
	c.ok(err, "GetWill")
	if !got.Message.Equal(&w.Message) || got.Delay != w.Delay || !got.Deadline.Equal(deadline) {
		c.t.Fatalf("GetWill = %+v, want %+v", got, w)
	}
	c.ok(c.s.PutWill(c.ctx, "t", "d", store.Will{Message: store.Message{Topic: "w2"}}), "PutWill")
	n := 0
	c.ok(c.s.Wills(c.ctx, func(tenant, id string, w store.Will) error {
		n++
		if tenant != "t" || (id != "c" && id != "d") {
			c.t.Errorf("Wills reported %q/%q", tenant, id)
		}
		return nil
	}), "Wills")
	if n != 2 {
		c.t.Fatalf("Wills visited %d wills, want 2", n)
	}

	c.ok(c.s.DeleteWill(c.ctx, "t", "c"), "DeleteWill")
	_, err = c.s.GetWill(c.ctx, "t", "c")
	c.is(err, store.ErrNotFound, "GetWill after delete")
	c.ok(c.s.DeleteWill(c.ctx, "t", "c"), "DeleteWill of a deleted will")

	stop := errors.New("stop")
	c.is(c.s.Wills(c.ctx, func(string, string, store.Will) error { return stop }), stop, "Wills with a failing fn")
}

// messageCopied checks that the store keeps its own copy of what it is
// given, and hands out copies.
func messageCopied(c *checker) {
	m := &store.Message{Topic: "a", Payload: []byte("orig"), CorrelationData: []byte("corr"), UserProperties: []store.UserProperty{{Key: "k", Value: "v"}}}
	c.ok(c.s.SetRetained(c.ctx, "t", m), "SetRetained")
	_, err := c.s.AppendQueue(c.ctx, "t", "c", m)
	c.ok(err, "AppendQueue")
	c.ok(c.s.PutOutbound(c.ctx, "t", "c", store.Outbound{PacketID: 1, State: store.OutboundPublished, Message: *m}), "PutOutbound")
	copy(m.Payload, "XXXX")
	copy(m.CorrelationData, "XXXX")
	m.UserProperties[0].Key = "X"

	check := func(got store.Message, where string) {
		c.t.Helper()
		if string(got.Payload) != "orig" || string(got.CorrelationData) != "corr" || got.UserProperties[0].Key != "k" {
			c.t.Fatalf("%s changed with the caller's message: %+v", where, got)
		}
	}
	r, err := c.s.GetRetained(c.ctx, "t", "a")
	c.ok(err, "GetRetained")
	check(r, "retained message")
	copy(r.Payload, "YYYY")
	r, _ = c.s.GetRetained(c.ctx, "t", "a")
	check(r, "retained message (after modifying a returned copy)")
	q, err := c.s.PeekQueue(c.ctx, "t", "c", 0, 1)
	c.ok(err, "PeekQueue")
	check(q[0].Message, "queued message")
	o, err := c.s.Outbound(c.ctx, "t", "c")
	c.ok(err, "Outbound")
	check(o[0].Message, "outbound message")
}

func fullMessage(topic string) store.Message {
	format := byte(1)
	return store.Message{
		Topic:           topic,
		Payload:         []byte{0, 1, 2, 0xff},
		QoS:             2,
		Retain:          true,
		Expiry:          time.Now().Add(time.Hour).Round(0),
		ContentType:     "application/json",
		ResponseTopic:   "reply/here",
		CorrelationData: []byte("id-1"),
		PayloadFormat:   &format,
		UserProperties:  []store.UserProperty{{Key: "b", Value: "1"}, {Key: "a", Value: "2"}, {Key: "b", Value: "3"}},
		Origin:          "publisher",
		SubscriptionIDs: []uint32{7, 1},
	}
}

func messageRoundTrip(c *checker) {
	m := fullMessage("all/fields")
	c.ok(c.s.SetRetained(c.ctx, "t", &m), "SetRetained")
	_, err := c.s.AppendQueue(c.ctx, "t", "c", &m)
	c.ok(err, "AppendQueue")
	c.ok(c.s.PutOutbound(c.ctx, "t", "c", store.Outbound{PacketID: 9, State: store.OutboundPublished, Message: m}), "PutOutbound")
	c.ok(c.s.PutWill(c.ctx, "t", "c", store.Will{Message: m}), "PutWill")
	c.checkFull(m)
}

func (c *checker) checkFull(m store.Message) {
	c.t.Helper()
	r, err := c.s.GetRetained(c.ctx, "t", m.Topic)
	c.ok(err, "GetRetained")
	q, err := c.s.PeekQueue(c.ctx, "t", "c", 0, 1)
	c.ok(err, "PeekQueue")
	o, err := c.s.Outbound(c.ctx, "t", "c")
	c.ok(err, "Outbound")
	w, err := c.s.GetWill(c.ctx, "t", "c")
	c.ok(err, "GetWill")
	if len(q) != 1 || len(o) != 1 {
		c.t.Fatalf("queue %d entries, outbound %d records; want 1 and 1", len(q), len(o))
	}
	for where, got := range map[string]store.Message{"retained": r, "queued": q[0].Message, "outbound": o[0].Message, "will": w.Message} {
		if !got.Equal(&m) {
			c.t.Errorf("%s message\n got %+v\nwant %+v", where, got, m)
		}
	}
}
