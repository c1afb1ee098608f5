package hub

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/store/memstore"
)

// fakeRelay keeps what it is handed; the test completes the waits.
type fakeRelay struct {
	mu    sync.Mutex
	got   []relayed
	calls chan relayed
}

type relayed struct {
	tenant string
	m      *Message
	done   func(error)
}

func newFakeRelay() *fakeRelay { return &fakeRelay{calls: make(chan relayed, 16)} }

func (r *fakeRelay) Relay(tenant string, m *Message, done func(error)) {
	rel := relayed{tenant, m, done}
	r.mu.Lock()
	r.got = append(r.got, rel)
	r.mu.Unlock()
	r.calls <- rel
}

func (r *fakeRelay) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func TestRelayWaits(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		qos     byte
		store   bool
		relay   error // what the relay reports
		wait    bool  // the publisher waits for the relay
		wantErr bool
	}{
		{name: "qos0 does not wait", qos: 0},
		{name: "qos1 waits", qos: 1, wait: true},
		{name: "qos2 waits", qos: 2, wait: true},
		{name: "qos1 failure", qos: 1, relay: boom, wait: true, wantErr: true},
		{name: "qos1 with store", qos: 1, store: true, wait: true},
		{name: "qos1 failure with store", qos: 1, store: true, relay: boom, wait: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rl := newFakeRelay()
			var opts Options
			if tt.store {
				opts.Store = memstore.New()
			}
			h := New(opts)
			h.SetRelay(rl)
			_, r := online(t, h, "t", "sub", Subscription{Filter: "a", QoS: 2})
			results := make(chan Result, 1)
			h.PublishAsync("t", &Message{Topic: "a", QoS: tt.qos, Payload: []byte("x")}, func(res Result) { results <- res })
			call := <-rl.calls
			if call.tenant != "t" || call.m.Topic != "a" {
				t.Fatalf("relayed %q %q", call.tenant, call.m.Topic)
			}
			if !tt.wait {
				if call.done != nil {
					t.Fatal("QoS 0 relayed with a done to wait for")
				}
			} else {
				if call.done == nil {
					t.Fatal("relayed without done")
				}
				select {
				case res := <-results:
					t.Fatalf("publish completed (%+v) before the relay took the message", res)
				default:
				}
				go call.done(tt.relay) // from another goroutine, as a Kafka client would
			}
			res := <-results
			if (res.Err != nil) != tt.wantErr || (tt.wantErr && !errors.Is(res.Err, boom)) {
				t.Errorf("Result.Err = %v, want error %v", res.Err, tt.wantErr)
			}
			if res.Matched != 1 || len(r.topics()) != 1 {
				t.Errorf("matched %d, delivered %d; want local delivery regardless of the relay", res.Matched, len(r.topics()))
			}
		})
	}
}

func TestRelaySyncPublishAndWills(t *testing.T) {
	rl := newFakeRelay()
	h := New(Options{})
	h.SetRelay(rl)
	go func() {
		for c := range rl.calls {
			if c.done != nil {
				c.done(nil)
			}
		}
	}()
	defer close(rl.calls)
	if res := h.Publish("t", &Message{Topic: "x", QoS: 1}); res.Err != nil {
		t.Fatal(res.Err)
	}
	s, _ := h.Open("t", "c", true)
	s.Detach(Departure{Will: &Message{Topic: "will", QoS: 1}})
	h.Publish("t", &Message{Topic: "gone", Expiry: time.Now().Add(-time.Second)}) // expired: neither routed nor relayed
	if n := rl.count(); n != 2 {
		t.Errorf("relayed %d messages, want 2 (publish and will)", n)
	}
	h.SetRelay(nil)
	h.Publish("t", &Message{Topic: "x", QoS: 1})
	if n := rl.count(); n != 2 {
		t.Errorf("relayed %d messages after SetRelay(nil)", n)
	}
}

func TestDeliverRemote(t *testing.T) {
	now := time.Unix(1000, 0)
	rl := newFakeRelay()
	h := New(Options{Now: func() time.Time { return now }})
	h.SetRelay(rl)
	_, r := online(t, h, "t", "me", Subscription{Filter: "#", QoS: 1, NoLocal: true, RetainAsPublished: true})

	h.DeliverRemote("t", &Message{Topic: "a", QoS: 1, Retain: true, Payload: []byte("1"), Origin: "other"})
	h.DeliverRemote("t", &Message{Topic: "b", Origin: "me"})               // no-local
	h.DeliverRemote("t", &Message{Topic: "c", Expiry: now})                // expired
	h.DeliverRemote("unknown", &Message{Topic: "a", Payload: []byte("x")}) // no tenant here
	if got := r.topics(); len(got) != 1 || got[0] != "a" || !r.got[0].Retain || r.got[0].QoS != 1 {
		t.Fatalf("delivered %v (%+v), want [a] retained QoS 1", got, r.got)
	}
	if rl.count() != 0 {
		t.Errorf("remote messages relayed %d times", rl.count())
	}
	st := h.Stats()
	if st.Retained != 0 || st.Published != 0 || st.Drops[DropExpired] != 1 {
		t.Errorf("stats %+v: want no retained message, no publish, one expired drop", st)
	}
	if ts := h.Tenants(); len(ts) != 1 {
		t.Errorf("tenants %v: a remote message made a tenant", ts)
	}
}

func TestApplyRetained(t *testing.T) {
	now := time.Unix(1000, 0)
	rl := newFakeRelay()
	h := New(Options{Now: func() time.Time { return now }})
	h.SetRelay(rl)
	_, r := online(t, h, "t", "watch", Subscription{Filter: "#"})
	steps := []struct {
		m    *Message
		want string // retained payload afterwards, "" for none
	}{
		{&Message{Topic: "r", Retain: true, Payload: []byte("1")}, "1"},
		{&Message{Topic: "r", Retain: true, Payload: []byte("2")}, "2"},
		{&Message{Topic: "r", Retain: true}, ""},
		{&Message{Topic: "r", Retain: true, Payload: []byte("3")}, "3"},
		{&Message{Topic: "r", Retain: true, Payload: []byte("old"), Expiry: now}, ""},
	}
	for i, st := range steps {
		h.ApplyRetained("t", st.m)
		s, _ := h.Open("t", "late", true)
		got, _ := s.Subscribe(Subscription{Filter: "r"})
		switch {
		case st.want == "" && len(got) != 0:
			t.Errorf("step %d: retained %q, want none", i, got[0].Message.Payload)
		case st.want != "" && (len(got) != 1 || string(got[0].Message.Payload) != st.want):
			t.Errorf("step %d: retained %v, want %q", i, got, st.want)
		}
	}
	if len(r.topics()) != 0 || rl.count() != 0 {
		t.Errorf("ApplyRetained delivered %d, relayed %d; want neither", len(r.topics()), rl.count())
	}
}
