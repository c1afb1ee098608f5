package storetest

import (
	"slices"

	"github.com/ferry-iot/ferry/internal/store"
)

func subscriptionPutDelete(c *checker) {
	c.subscribe("t", "c", "b/#", "$share/g/a/+", "a", "a/b")
	c.equal(c.filters("t", "c"), []string{"$share/g/a/+", "a", "a/b", "b/#"}, "subscriptions in filter order")

	full := store.Subscription{Filter: "a", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: 268435455}
	c.ok(c.s.PutSubscription(c.ctx, "t", "c", full), "PutSubscription (replace)")
	subs, err := c.s.Subscriptions(c.ctx, "t", "c")
	c.ok(err, "Subscriptions")
	if len(subs) != 4 || subs[1] != full {
		c.t.Fatalf("after replace: %+v, want %+v second of four", subs, full)
	}

	c.ok(c.s.DeleteSubscription(c.ctx, "t", "c", "a"), "DeleteSubscription")
	c.equal(c.filters("t", "c"), []string{"$share/g/a/+", "a/b", "b/#"}, "subscriptions after delete")
	c.is(c.s.DeleteSubscription(c.ctx, "t", "c", "a"), store.ErrNotFound, "DeleteSubscription of a deleted filter")
	c.is(c.s.DeleteSubscription(c.ctx, "t", "nobody", "a"), store.ErrNotFound, "DeleteSubscription of a missing session")

	if got := c.filters("t", "nobody"); len(got) != 0 {
		c.t.Fatalf("Subscriptions of a missing session = %q", got)
	}
}

func outboundOrder(c *checker) {
	for _, pid := range []uint16{5, 1, 65535, 2} {
		c.putOutbound("t", "c", pid, store.OutboundPublished)
	}
	c.equal(c.outbound("t", "c"), []string{"5:1", "1:1", "65535:1", "2:1"}, "Outbound in insertion order")

	// PUBREC: the record changes state in place.
	c.ok(c.s.PutOutbound(c.ctx, "t", "c", store.Outbound{PacketID: 1, State: store.OutboundReleased}), "PutOutbound (released)")
	c.equal(c.outbound("t", "c"), []string{"5:1", "1:2", "65535:1", "2:1"}, "Outbound after a state change")
	recs, err := c.s.Outbound(c.ctx, "t", "c")
	c.ok(err, "Outbound")
	if recs[0].Message.Topic != "o" || string(recs[0].Message.Payload) != "5" || recs[0].Message.QoS != 2 {
		c.t.Fatalf("outbound message = %+v", recs[0].Message)
	}

	c.ok(c.s.DeleteOutbound(c.ctx, "t", "c", 1), "DeleteOutbound")
	c.ok(c.s.DeleteOutbound(c.ctx, "t", "c", 1), "DeleteOutbound of a deleted id")
	c.ok(c.s.DeleteOutbound(c.ctx, "t", "nobody", 1), "DeleteOutbound in a missing session")
	c.equal(c.outbound("t", "c"), []string{"5:1", "65535:1", "2:1"}, "Outbound after delete")

	// A packet id used again after its delete is a new message: it goes last.
	c.putOutbound("t", "c", 1, store.OutboundPublished)
	c.equal(c.outbound("t", "c"), []string{"5:1", "65535:1", "2:1", "1:1"}, "Outbound after reusing an id")

	// Order is per session, and one session's writes do not reorder another's.
	c.putOutbound("t", "d", 1, store.OutboundPublished)
	c.putOutbound("t", "c", 3, store.OutboundPublished)
	c.putOutbound("t", "d", 2, store.OutboundPublished)
	c.equal(c.outbound("t", "d"), []string{"1:1", "2:1"}, "Outbound of d")
	c.equal(c.outbound("t", "c"), []string{"5:1", "65535:1", "2:1", "1:1", "3:1"}, "Outbound of c")
}

func inboundIDs(c *checker) {
	for _, pid := range []uint16{300, 1, 65535, 2, 1} {
		c.ok(c.s.PutInbound(c.ctx, "t", "c", pid), "PutInbound")
	}
	if got := c.inbound("t", "c"); !slices.Equal(got, []uint16{1, 2, 300, 65535}) {
		c.t.Fatalf("Inbound = %v, want [1 2 300 65535]", got)
	}
	c.ok(c.s.DeleteInbound(c.ctx, "t", "c", 2), "DeleteInbound")
	c.ok(c.s.DeleteInbound(c.ctx, "t", "c", 2), "DeleteInbound of a deleted id")
	c.ok(c.s.DeleteInbound(c.ctx, "t", "nobody", 2), "DeleteInbound in a missing session")
	if got := c.inbound("t", "c"); !slices.Equal(got, []uint16{1, 300, 65535}) {
		c.t.Fatalf("Inbound after delete = %v", got)
	}
	if got := c.inbound("t", "nobody"); len(got) != 0 {
		c.t.Fatalf("Inbound of a missing session = %v", got)
	}
}
