package hub

import (
	"slices"
	"sync"
	"testing"
)

// TestTap: a tap sees its tenant's messages on matching topics, local and
// relayed, counts as a receiver, and sees nothing once stopped.
func TestTap(t *testing.T) {
	h := New(Options{})
	var mu sync.Mutex
	var got []string
	stop := mustTap(t, h, "t1", "telemetry/+", func(m *Message) {
		mu.Lock()
		got = append(got, m.Topic)
		mu.Unlock()
	})
	cases := []struct {
		tenant, topic string
		matched       int
	}{
		{"t1", "telemetry/a", 1},
		{"t1", "telemetry/a/b", 0},
		{"t1", "event/a", 0},
		{"t2", "telemetry/b", 0},
	}
	for _, c := range cases {
		if res := h.Publish(c.tenant, &Message{Topic: c.topic, QoS: 1}); res.Matched != c.matched {
			t.Errorf("publish %s/%s: matched %d, want %d", c.tenant, c.topic, res.Matched, c.matched)
		}
	}
	h.DeliverRemote("t1", &Message{Topic: "telemetry/remote"})
	stop()
	stop() // a second stop does nothing
	h.Publish("t1", &Message{Topic: "telemetry/after"})
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"telemetry/a", "telemetry/remote"}; !slices.Equal(got, want) {
		t.Errorf("tap saw %q, want %q", got, want)
	}
}

// TestTapWithoutSessions: a tenant of which the hub has no session still
// hands relayed messages to its taps.
func TestTapWithoutSessions(t *testing.T) {
	h := New(Options{})
	n := 0
	defer mustTap(t, h, "quiet", "#", func(*Message) { n++ })()
	h.DeliverRemote("quiet", &Message{Topic: "telemetry/x"})
	if n != 1 {
		t.Errorf("tap saw %d relayed messages, want 1", n)
	}
}

// TestTapsIndependent: stopping one tap leaves the others of the tenant.
func TestTapsIndependent(t *testing.T) {
	h := New(Options{})
	var a, b int
	stopA := mustTap(t, h, "t", "#", func(*Message) { a++ })
	stopB := mustTap(t, h, "t", "x", func(*Message) { b++ })
	defer stopB()
	h.Publish("t", &Message{Topic: "x"})
	stopA()
	h.Publish("t", &Message{Topic: "x"})
	if a != 1 || b != 2 {
		t.Errorf("taps saw %d and %d messages, want 1 and 2", a, b)
	}
}

// TestTapRefusesFilters: a tap's filter must be a valid, plain one.
func TestTapRefusesFilters(t *testing.T) {
	h := New(Options{})
	for _, f := range []string{"a/#/b", "a+", "$share/g/a/+", ""} {
		if stop, err := h.Tap("t", f, func(*Message) {}); err == nil {
			stop()
			t.Errorf("Tap(%q) accepted", f)
		}
	}
}

func mustTap(t testing.TB, h *Hub, tenant, filter string, fn func(*Message)) (stop func()) {
	t.Helper()
	stop, err := h.Tap(tenant, filter, fn)
	if err != nil {
		t.Fatal(err)
	}
	return stop
}
