package hub

import (
	"context"
	"testing"
)

func TestIntrospection(t *testing.T) {
	h := New(Options{})
	defer h.Close(context.Background())
	a, _ := h.Open("acme", "b-client", true)
	a.Attach(&recorder{})
	if _, err := a.Subscribe(Subscription{Filter: "z/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Subscribe(Subscription{Filter: "a/+", QoS: 0}); err != nil {
		t.Fatal(err)
	}
	h.Open("acme", "a-client", true)
	h.Open("acme", "$internal/x", true)
	h.Open("other", "c", true)

	got := h.Sessions("acme", "$internal/")
	if len(got) != 2 || got[0].ClientID != "a-client" || got[1].ClientID != "b-client" {
		t.Fatalf("Sessions(acme) = %+v", got)
	}
	b := got[1]
	if !b.Online || b.Attached.IsZero() || got[0].Online || len(b.Subscriptions) != 2 || b.Subscriptions[0].Filter != "a/+" {
		t.Fatalf("b-client: %+v", b)
	}
	if all := h.Sessions("", ""); len(all) != 4 || all[3].Tenant != "other" {
		t.Fatalf("Sessions() = %+v", all)
	}
	if _, ok := h.Session("acme", "nobody"); ok {
		t.Fatal("Session found a client that does not exist")
	}
	if h.Sessions("none", "") != nil || h.Retained("none", "#", 0) != nil {
		t.Fatal("an unknown tenant has sessions or retained messages")
	}
	for _, topic := range []string{"s/2", "s/1", "s/3", "$SYS/x"} {
		h.Publish("acme", &Message{Topic: topic, Payload: []byte("x"), Retain: true})
	}
	if r := h.Retained("acme", "#", 2); len(r) != 2 || r[0].Topic != "s/1" || r[1].Topic != "s/2" {
		t.Fatalf("Retained(#, 2) = %v", r)
	}
	if n := len(h.Tenants()); n != 2 {
		t.Fatalf("introspection created tenants: %v", h.Tenants())
	}
}
