package hub

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is a Sink that keeps what it is given, up to limit (0: no limit).
type recorder struct {
	mu    sync.Mutex
	got   []Delivery
	limit int
}

func (r *recorder) Deliver(d Delivery) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.limit > 0 && len(r.got) >= r.limit {
		return false
	}
	r.got = append(r.got, d)
	return true
}

func (r *recorder) topics() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.got {
		out = append(out, d.Message.Topic)
	}
	return out
}

func online(t *testing.T, h *Hub, tenant, id string, subs ...Subscription) (*Session, *recorder) {
	t.Helper()
	s, _ := h.Open(tenant, id, true)
	r := &recorder{}
	s.Attach(r)
	for _, sub := range subs {
		s.Subscribe(sub)
	}
	return s, r
}

func TestPublishMatchesAndDowngrades(t *testing.T) {
	h := New(Options{})
	_, r := online(t, h, "t1", "sub", Subscription{Filter: "a/+", QoS: 1})
	for _, m := range []*Message{
		{Topic: "a/b", QoS: 2, Payload: []byte("x")},
		{Topic: "a/b/c", QoS: 1},
		{Topic: "b", QoS: 0},
		{Topic: "a/c", QoS: 0},
	} {
		h.Publish("t1", m)
	}
	if got, want := r.topics(), []string{"a/b", "a/c"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	if r.got[0].QoS != 1 || r.got[1].QoS != 0 {
		t.Errorf("QoS = %d,%d, want 1,0 (downgraded to granted, never raised)", r.got[0].QoS, r.got[1].QoS)
	}
}

func TestOverlappingSubscriptionsMerge(t *testing.T) {
	h := New(Options{})
	_, r := online(t, h, "t", "c",
		Subscription{Filter: "a/#", QoS: 0, ID: 7},
		Subscription{Filter: "a/b", QoS: 2, ID: 9, RetainAsPublished: true})
	h.Publish("t", &Message{Topic: "a/b", QoS: 2, Retain: true, Payload: []byte("p")})
	if len(r.got) != 1 {
		t.Fatalf("got %d deliveries, want 1 merged delivery", len(r.got))
	}
	d := r.got[0]
	ids := slices.Clone(d.SubscriptionIDs)
	slices.Sort(ids)
	if d.QoS != 2 || !d.Retain || !slices.Equal(ids, []uint32{7, 9}) {
		t.Errorf("delivery = QoS %d retain %v ids %v, want QoS 2 retain true ids [7 9]", d.QoS, d.Retain, ids)
	}
}

func TestNoLocal(t *testing.T) {
	h := New(Options{})
	_, r := online(t, h, "t", "me", Subscription{Filter: "x", NoLocal: true})
	h.Publish("t", &Message{Topic: "x", Origin: "me"})
	h.Publish("t", &Message{Topic: "x", Origin: "other"})
	if len(r.got) != 1 || r.got[0].Message.Origin != "other" {
		t.Errorf("no-local subscription got %v", r.got)
	}
}

func TestTenantIsolation(t *testing.T) {
	h := New(Options{})
	_, ra := online(t, h, "A", "c", Subscription{Filter: "#"})
	_, rb := online(t, h, "B", "c", Subscription{Filter: "#"})
	h.Publish("A", &Message{Topic: "x", Retain: true, Payload: []byte("1")})
	if len(ra.got) != 1 || len(rb.got) != 0 {
		t.Errorf("tenant A publish reached A %d, B %d times; want 1, 0", len(ra.got), len(rb.got))
	}
	a, b := h.TenantStats("A"), h.TenantStats("B")
	if a.Published != 1 || a.Sent != 1 || a.BytesIn != 1 || a.Connected != 1 || b.Published != 0 || b.Sent != 0 || b.Connected != 1 {
		t.Errorf("tenant stats A %+v, B %+v", a, b)
	}
	s, _ := h.Open("B", "late", true)
	if ret, _ := s.Subscribe(Subscription{Filter: "#"}); len(ret) != 0 {
		t.Errorf("tenant B saw %d retained messages of tenant A", len(ret))
	}
}

func TestSharedSubscriptionBalances(t *testing.T) {
	h := New(Options{})
	_, r1 := online(t, h, "t", "m1", Subscription{Filter: "$share/g/s/+", QoS: 1})
	_, r2 := online(t, h, "t", "m2", Subscription{Filter: "$share/g/s/+", QoS: 1})
	_, plain := online(t, h, "t", "p", Subscription{Filter: "s/#"})
	for range 10 {
		h.Publish("t", &Message{Topic: "s/1", QoS: 1})
	}
	if len(r1.got)+len(r2.got) != 10 || len(r1.got) != 5 {
		t.Errorf("group members got %d and %d, want 5 and 5", len(r1.got), len(r2.got))
	}
	if len(plain.got) != 10 {
		t.Errorf("plain subscriber got %d, want 10", len(plain.got))
	}
}

func TestSharedSubscriptionPrefersOnlineMember(t *testing.T) {
	h := New(Options{})
	off, _ := online(t, h, "t", "off", Subscription{Filter: "$share/g/x", QoS: 1})
	off.Detach(Departure{Expiry: Forever})
	_, r := online(t, h, "t", "on", Subscription{Filter: "$share/g/x", QoS: 1})
	for range 4 {
		h.Publish("t", &Message{Topic: "x", QoS: 1})
	}
	if len(r.got) != 4 || off.Queued() != 0 {
		t.Errorf("online member got %d, offline queued %d; want 4, 0", len(r.got), off.Queued())
	}
}

func TestRetained(t *testing.T) {
	now := time.Unix(1000, 0)
	h := New(Options{Now: func() time.Time { return now }})
	h.Publish("t", &Message{Topic: "r/1", QoS: 1, Retain: true, Payload: []byte("old")})
	h.Publish("t", &Message{Topic: "r/1", QoS: 1, Retain: true, Payload: []byte("new")})
	h.Publish("t", &Message{Topic: "r/2", QoS: 0, Retain: true, Payload: []byte("two")})
	h.Publish("t", &Message{Topic: "r/2", Retain: true}) // clears
	h.Publish("t", &Message{Topic: "r/3", Retain: true, Payload: []byte("x"), Expiry: now.Add(time.Second)})
	now = now.Add(2 * time.Second) // r/3 has expired: stored, never sent

	s, _ := h.Open("t", "c", true)
	tests := []struct {
		name string
		sub  Subscription
		want int
	}{
		{"handling 0", Subscription{Filter: "r/+", QoS: 2}, 1},
		{"handling 0 again", Subscription{Filter: "r/+", QoS: 2}, 1},
		{"handling 1 existing", Subscription{Filter: "r/+", RetainHandling: 1}, 0},
		{"handling 1 new", Subscription{Filter: "r/#", RetainHandling: 1}, 1},
		{"handling 2", Subscription{Filter: "r/1", RetainHandling: 2}, 0},
		{"shared", Subscription{Filter: "$share/g/r/1"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := s.Subscribe(tt.sub)
			if len(got) != tt.want {
				t.Fatalf("got %d retained, want %d", len(got), tt.want)
			}
			if tt.want == 1 {
				d := got[0]
				if string(d.Message.Payload) != "new" || !d.Retain || d.QoS != min(1, tt.sub.QoS) {
					t.Errorf("retained delivery = %q retain %v QoS %d", d.Message.Payload, d.Retain, d.QoS)
				}
			}
		})
	}
	if st := h.Stats(); st.Retained != 2 { // r/1 and the expired r/3
		t.Errorf("Stats.Retained = %d, want 2", st.Retained)
	}
}

func TestOfflineQueueAndResume(t *testing.T) {
	h := New(Options{MaxQueuedMessages: 3})
	s, r := online(t, h, "t", "c", Subscription{Filter: "q", QoS: 1})
	h.Publish("t", &Message{Topic: "q", QoS: 1, Payload: []byte("inflight")})
	s.Detach(Departure{Unacked: []Delivery{r.got[0]}, Expiry: Forever})

	h.Publish("t", &Message{Topic: "q", QoS: 0, Payload: []byte("qos0")}) // not queued offline
	h.Publish("t", &Message{Topic: "q", QoS: 1, Payload: []byte("a")})
	h.Publish("t", &Message{Topic: "q", QoS: 1, Payload: []byte("b")})
	h.Publish("t", &Message{Topic: "q", QoS: 1, Payload: []byte("c")}) // over the limit

	again, present := h.Open("t", "c", false)
	if !present || again != s {
		t.Fatalf("Open(clean=false) = %p present %v, want the old session", again, present)
	}
	r2 := &recorder{}
	s.Attach(r2)
	var got []string
	for _, d := range r2.got {
		got = append(got, string(d.Message.Payload))
	}
	if want := []string{"inflight", "a", "b"}; !slices.Equal(got, want) {
		t.Errorf("resumed with %v, want %v", got, want)
	}
	if !r2.got[0].Dup || r2.got[1].Dup {
		t.Errorf("dup flags = %v,%v, want true,false", r2.got[0].Dup, r2.got[1].Dup)
	}
	st := h.Stats()
	if st.Dropped != 2 || st.Drops[DropOfflineQoS0] != 1 || st.Drops[DropSessionQueueFull] != 1 {
		t.Errorf("drops = %d %v, want one offline QoS 0 and one queue overflow", st.Dropped, st.Drops)
	}
}

func TestCleanSessionDiscards(t *testing.T) {
	h := New(Options{})
	s, _ := online(t, h, "t", "c", Subscription{Filter: "x", QoS: 1})
	s.Detach(Departure{})
	if n := h.Publish("t", &Message{Topic: "x", QoS: 1}).Matched; n != 0 {
		t.Errorf("publish after the session ended reached %d sessions", n)
	}
	if _, present := h.Open("t", "c", false); present {
		t.Error("a discarded session was resumed")
	}
	if st := h.Stats(); st.Subscripts != 0 || st.Sessions != 1 {
		t.Errorf("stats = %+v, want no subscriptions and one session", st)
	}
}

func TestSinkRefusalCountsDrop(t *testing.T) {
	h := New(Options{})
	s, _ := h.Open("t", "c", true)
	s.Attach(&recorder{limit: 1})
	s.Subscribe(Subscription{Filter: "x"})
	h.Publish("t", &Message{Topic: "x"})
	h.Publish("t", &Message{Topic: "x"})
	if st := h.Stats(); st.Delivered != 1 || st.Dropped != 1 {
		t.Errorf("stats = %+v, want 1 delivered, 1 dropped", st)
	}
}

func TestConcurrentPublishSubscribe(t *testing.T) {
	h := New(Options{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _ := h.Open("t", string(rune('a'+i)), true)
			s.Attach(&recorder{})
			for range 200 {
				s.Subscribe(Subscription{Filter: "c/#"})
				h.Publish("t", &Message{Topic: "c/x"})
				s.Unsubscribe("c/#")
			}
			s.Detach(Departure{})
		}()
	}
	wg.Wait()
	if st := h.Stats(); st.Sessions != 0 || st.Subscripts != 0 {
		t.Errorf("stats after all sessions ended = %+v", st)
	}
}

func TestBacklogWhileOnline(t *testing.T) {
	h := New(Options{MaxQueuedMessages: 2})
	s, _ := h.Open("t", "c", true)
	r := &recorder{limit: 1}
	s.Attach(r)
	s.Subscribe(Subscription{Filter: "x", QoS: 1})
	for _, p := range []string{"1", "2", "3"} {
		if res := h.Publish("t", &Message{Topic: "x", QoS: 1, Payload: []byte(p)}); res.Lost != 0 {
			t.Errorf("publish %s: result %+v, nothing should be lost", p, res)
		}
	}
	// The queue is full: a QoS 1 publisher waits for room instead of
	// losing its message, a QoS 0 one is dropped.
	fourth := make(chan Result, 1)
	go func() { fourth <- h.Publish("t", &Message{Topic: "x", QoS: 1, Payload: []byte("4")}) }()
	waitUntil(t, "the fourth publish to block", func() bool { return h.Stats().Blocked == 1 })
	h.Publish("t", &Message{Topic: "x", QoS: 0, Payload: []byte("q0")})
	select {
	case res := <-fourth:
		t.Fatalf("publish 4 returned %+v before the session had room", res)
	default:
	}
	if s.Queued() != 2 {
		t.Fatalf("backlog = %d, want 2 (the bound)", s.Queued())
	}
	r.mu.Lock()
	r.limit = 0 // the connection has room again
	r.mu.Unlock()
	s.Drain()
	if res := <-fourth; res.Lost != 0 || res.Err != nil {
		t.Errorf("publish 4: %+v, want delivered", res)
	}
	s.Drain()
	r.mu.Lock()
	var got []string
	for _, d := range r.got {
		got = append(got, string(d.Message.Payload))
	}
	r.mu.Unlock()
	if want := []string{"1", "2", "3", "4"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v in order", got, want)
	}
	if st := h.Stats(); st.Dropped != 1 {
		t.Errorf("dropped %d, want 1 (the QoS 0)", st.Dropped)
	}
}

// TestBlockedPublisherFreedOnDetach: a publisher waiting for a clean
// session's room is not held for ever when the subscriber goes away.
func TestBlockedPublisherFreedOnDetach(t *testing.T) {
	h := New(Options{MaxQueuedMessages: 1})
	s, _ := h.Open("t", "c", true)
	s.Attach(&recorder{limit: 1})
	s.Subscribe(Subscription{Filter: "x", QoS: 1})
	h.Publish("t", &Message{Topic: "x", QoS: 1}) // sent
	h.Publish("t", &Message{Topic: "x", QoS: 1}) // queued
	done := make(chan Result, 1)
	go func() { done <- h.Publish("t", &Message{Topic: "x", QoS: 1}) }()
	waitUntil(t, "the publish to block", func() bool { return h.Stats().Blocked == 1 })
	s.Detach(Departure{})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the blocked publisher was not released when the session ended")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The timer tests run in a synctest bubble: the hub's timers are real
// time.AfterFuncs (Options.Now only stamps), and in the bubble they fire at
// their exact fake time, so a loaded machine can neither make them late
// nor make an early expiry look punctual. synctest.Wait lets a timer's
// goroutine finish before the test looks.

func TestSessionExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New(Options{})
		s, _ := online(t, h, "t", "c", Subscription{Filter: "x", QoS: 1})
		s.Detach(Departure{Expiry: 30 * time.Millisecond})
		time.Sleep(20 * time.Millisecond)
		if _, present := h.Open("t", "c", false); !present {
			t.Fatal("session gone before its expiry")
		}
		s.Attach(&recorder{}) // resumed: the expiry is cancelled
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := h.Stats().Sessions; n != 1 {
			t.Fatalf("%d sessions an hour after a resume; the cancelled expiry fired", n)
		}

		s.Detach(Departure{Expiry: 30 * time.Millisecond})
		time.Sleep(30*time.Millisecond - time.Nanosecond)
		synctest.Wait()
		if n := h.Stats().Sessions; n != 1 {
			t.Fatalf("session expired before its expiry interval (%d sessions)", n)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if st := h.Stats(); st.Sessions != 0 || st.Subscripts != 0 {
			t.Errorf("at its expiry: %d sessions, %d subscriptions; want none", st.Sessions, st.Subscripts)
		}
	})
}

func TestWillDelay(t *testing.T) {
	tests := []struct {
		name      string
		dep       Departure
		resume    bool          // reconnect before the delay
		cleanOpen bool          // a clean start ends the old session at once
		want      bool          // the will is published
		due       time.Duration // after the departure, when wanted
	}{
		{name: "no delay", dep: Departure{Expiry: Forever}, want: true},
		{name: "delay elapses", dep: Departure{Expiry: Forever, WillDelay: 20 * time.Millisecond}, want: true, due: 20 * time.Millisecond},
		{name: "resumed in time", dep: Departure{Expiry: Forever, WillDelay: time.Hour}, resume: true, want: false},
		{name: "session ends first", dep: Departure{Expiry: 20 * time.Millisecond, WillDelay: time.Hour}, want: true, due: 20 * time.Millisecond},
		{name: "clean start ends session", dep: Departure{Expiry: Forever, WillDelay: time.Hour}, cleanOpen: true, want: true},
		{name: "session ends at disconnect", dep: Departure{WillDelay: time.Hour}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := New(Options{})
				_, watcher := online(t, h, "t", "watcher", Subscription{Filter: "will"})
				s, _ := online(t, h, "t", "dying")
				dep := tt.dep
				dep.Will = &Message{Topic: "will", Payload: []byte("gone")}
				s.Detach(dep)
				switch {
				case tt.resume:
					again, _ := h.Open("t", "dying", false)
					again.Attach(&recorder{})
				case tt.cleanOpen:
					h.Open("t", "dying", true)
				}
				if tt.due > 0 {
					time.Sleep(tt.due - time.Nanosecond)
					synctest.Wait()
					if got := watcher.topics(); len(got) != 0 {
						t.Fatalf("will published before it was due: %v", got)
					}
				}
				if !tt.want {
					// Past the hour's delay: a will the resume failed to
					// cancel has fired by now.
					time.Sleep(2 * time.Hour)
					synctest.Wait()
					if s.will != nil || s.willTimer != nil {
						t.Error("resume left the will pending")
					}
					if got := watcher.topics(); len(got) != 0 {
						t.Errorf("will published after the session resumed: %v", got)
					}
					return
				}
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				if got := watcher.topics(); len(got) != 1 {
					t.Errorf("when the will was due, the watcher got %v; want it once", got)
				}
			})
		})
	}
}

func TestSharedHandOverOnDisconnect(t *testing.T) {
	h := New(Options{})
	a, ra := online(t, h, "t", "a", Subscription{Filter: "$share/g/jobs", QoS: 1})
	_, rb := online(t, h, "t", "b", Subscription{Filter: "$share/g/jobs", QoS: 1})
	h.Publish("t", &Message{Topic: "jobs", QoS: 1, Payload: []byte("j1")})
	h.Publish("t", &Message{Topic: "jobs", QoS: 1, Payload: []byte("j2")})
	if len(ra.got) != 1 || len(rb.got) != 1 {
		t.Fatalf("round robin gave %d and %d", len(ra.got), len(rb.got))
	}
	if ra.got[0].Shared != "$share/g/jobs" {
		t.Fatalf("delivery Shared = %q", ra.got[0].Shared)
	}
	// a leaves without acknowledging its job: b gets it.
	a.Detach(Departure{Unacked: ra.got})
	if got := rb.topics(); len(got) != 2 || string(rb.got[1].Message.Payload) != string(ra.got[0].Message.Payload) {
		t.Errorf("b got %v after a left; want a's unacknowledged job too", got)
	}
}
