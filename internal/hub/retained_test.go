package hub

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestRetainedMatch(t *testing.T) {
	var r retainedStore
	for _, topic := range []string{"a", "a/b", "a/b/c", "a/x/c", "b", "/lead", "$SYS/up", "a//c"} {
		r.set(&Message{Topic: topic, Payload: []byte(topic)}, 0)
	}
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"a", []string{"a"}},
		{"a/#", []string{"a", "a/b", "a/b/c", "a/x/c", "a//c"}},
		{"a/+", []string{"a/b"}},
		{"a/+/c", []string{"a/b/c", "a/x/c", "a//c"}},
		{"+", []string{"a", "b"}},
		{"#", []string{"a", "a/b", "a/b/c", "a/x/c", "b", "/lead", "a//c"}},
		{"+/lead", []string{"/lead"}},
		{"$SYS/#", []string{"$SYS/up"}},
		{"+/up", nil},
		{"c/#", nil},
	} {
		var got []string
		for _, m := range r.match(tc.filter, time.Now()) {
			got = append(got, m.Topic)
		}
		slices.Sort(got)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("match(%q) = %v, want %v", tc.filter, got, want)
		}
	}
	if r.len() != 8 {
		t.Errorf("len = %d, want 8", r.len())
	}
	r.set(&Message{Topic: "a/b"}, 0) // cleared
	r.set(&Message{Topic: "nothing/here"}, 0)
	if r.len() != 7 || len(r.match("a/b", time.Now())) != 0 {
		t.Errorf("after clearing a/b: len %d, match %v", r.len(), r.match("a/b", time.Now()))
	}
	if len(r.match("a/b/c", time.Now())) != 1 {
		t.Error("clearing a/b removed a/b/c")
	}
}

// TestRetainedCap: past MaxRetained topics, a retained message for a new
// topic is delivered but not kept and the publisher told; replacing and
// clearing still work.
func TestRetainedCap(t *testing.T) {
	h := New(Options{MaxRetained: 2})
	_, r := online(t, h, "t", "watcher", Subscription{Filter: "#"})
	for i := range 2 {
		if res := h.Publish("t", &Message{Topic: fmt.Sprint("r/", i), Retain: true, Payload: []byte("v")}); res.RetainRefused {
			t.Fatalf("retained message %d refused under the cap", i)
		}
	}
	res := h.Publish("t", &Message{Topic: "r/new", Retain: true, Payload: []byte("v")})
	if !res.RetainRefused || res.Matched != 1 {
		t.Errorf("publish past the cap: %+v, want refused and delivered", res)
	}
	if res := h.Publish("t", &Message{Topic: "r/0", Retain: true, Payload: []byte("w")}); res.RetainRefused {
		t.Error("replacing a retained message was refused at the cap")
	}
	h.Publish("t", &Message{Topic: "r/1", Retain: true}) // clears
	if res := h.Publish("t", &Message{Topic: "r/new", Retain: true, Payload: []byte("v")}); res.RetainRefused {
		t.Error("refused after a topic was cleared")
	}
	if st := h.Stats(); st.Retained != 2 || st.RetainRefused != 1 {
		t.Errorf("retained %d, refused %d; want 2 and 1", st.Retained, st.RetainRefused)
	}
	if n := len(r.topics()); n != 6 {
		t.Errorf("watcher got %d messages, want 6", n)
	}
}

// BenchmarkRetainedSubscribe: a SUBSCRIBE among 100,000 retained topics
// visits only the branch its filter names.
func BenchmarkRetainedSubscribe(b *testing.B) {
	var r retainedStore
	for i := range 100_000 {
		r.set(&Message{Topic: fmt.Sprintf("site/%d/dev/%d", i%100, i), Payload: []byte("v")}, 0)
	}
	now := time.Now()
	b.ResetTimer()
	for i := range b.N {
		if len(r.match(fmt.Sprintf("site/%d/dev/+", i%100), now)) != 1000 {
			b.Fatal("wrong match count")
		}
	}
}

// TestEmptyTenantRemoved: a tenant whose last session ended and which
// retains nothing leaves the hub's map; the hub's totals keep its counts,
// and the tenant comes back when used again.
func TestEmptyTenantRemoved(t *testing.T) {
	h := New(Options{})
	s, _ := h.Open("gone", "c", true)
	s.Attach(&recorder{})
	s.Subscribe(Subscription{Filter: "x"})
	h.Publish("gone", &Message{Topic: "x"})
	h.Publish("gone", &Message{Topic: "r", Retain: true, Payload: []byte("v")})
	s.Detach(Departure{})
	if n := tenantCount(h); n != 1 {
		t.Fatalf("%d tenants with a retained message left, want 1", n)
	}
	h.Publish("gone", &Message{Topic: "r", Retain: true}) // clears
	if n := tenantCount(h); n != 0 {
		t.Errorf("%d tenants after the last session and retained message went, want 0", n)
	}
	if st := h.Stats(); st.Published != 3 || st.Delivered != 1 {
		t.Errorf("totals after removal: %+v, want 3 published, 1 delivered", st)
	}
	if st := h.TenantStats("gone"); st.Published != 3 {
		t.Errorf("the removed tenant's figures: %+v, want 3 published", st)
	}
	s2, _ := h.Open("gone", "c", true)
	r := &recorder{}
	s2.Attach(r)
	s2.Subscribe(Subscription{Filter: "x"})
	h.Publish("gone", &Message{Topic: "x"})
	if len(r.topics()) != 1 {
		t.Error("the tenant did not come back")
	}
	if st := h.TenantStats("gone"); st.Published != 4 {
		t.Errorf("the tenant's figures after it came back: %d published, want 4 (its earlier 3 kept)", st.Published)
	}
}

func tenantCount(h *Hub) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.tenants)
}
