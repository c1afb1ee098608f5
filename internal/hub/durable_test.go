package hub

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ferry-iot/ferry/internal/store/memstore"
)

func TestDurableSessionSurvivesRestart(t *testing.T) {
	st := memstore.New()
	ctx := context.Background()
	h := New(Options{Store: st})
	s, _ := h.Open("t", "dev", true)
	if err := s.MakeDurable(Forever); err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	s.Attach(r)
	s.Subscribe(Subscription{Filter: "cmd/#", QoS: 1, ID: 3})
	res := h.Publish("t", &Message{Topic: "cmd/1", QoS: 1, Payload: []byte("a")})
	if res.Err != nil || res.Matched != 1 {
		t.Fatalf("publish: %+v", res)
	}
	waitUntil(t, "online delivery", func() bool { return len(r.topics()) == 1 })
	if r.got[0].Seq == 0 {
		t.Fatal("durable delivery without a sequence number")
	}
	s.Acked(r.got[0].Seq)
	waitUntil(t, "trim", func() bool {
		info, _ := st.QueueInfo(ctx, "t", "dev")
		return info.Len == 0
	})
	s.Detach(Departure{Expiry: Forever})
	if rec, err := st.GetSession(ctx, "t", "dev"); err != nil || rec.Created.IsZero() || rec.Disconnected.IsZero() {
		t.Errorf("stored session after detach = %+v, %v; want its creation and disconnection times", rec, err)
	}
	h.Publish("t", &Message{Topic: "cmd/2", QoS: 1, Payload: []byte("b")})
	h.Publish("t", &Message{Topic: "cmd/3", QoS: 0, Payload: []byte("qos0")}) // not kept offline
	h.Publish("t", &Message{Topic: "cfg", QoS: 1, Retain: true, Payload: []byte("kept")})

	// A new hub on the same store: a restart.
	h2 := New(Options{Store: st})
	if err := h2.Recover(ctx, []string{"t"}); err != nil {
		t.Fatal(err)
	}
	s2, present := h2.Open("t", "dev", false)
	if !present {
		t.Fatal("durable session not recovered")
	}
	r2 := &recorder{}
	s2.Attach(r2)
	if got := r2.topics(); !slices.Equal(got, []string{"cmd/2"}) {
		t.Fatalf("resumed session got %v, want [cmd/2]", got)
	}
	if ids := r2.got[0].SubscriptionIDs; !slices.Equal(ids, []uint32{3}) {
		t.Errorf("subscription ids after restart = %v", ids)
	}
	h2.Publish("t", &Message{Topic: "cmd/4", QoS: 1, Payload: []byte("c")})
	waitUntil(t, "delivery through the recovered subscription", func() bool { return len(r2.topics()) == 2 })
	if ret, _ := s2.Subscribe(Subscription{Filter: "cfg"}); len(ret) != 1 || string(ret[0].Message.Payload) != "kept" {
		t.Errorf("retained after restart: %v", ret)
	}
}

// TestDurableWillAfterCrash runs in a synctest bubble (see
// TestSessionExpiry): the will's delay counts from the restart, exactly.
func TestDurableWillAfterCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay = 10 * time.Second
		st := memstore.New()
		h := New(Options{Store: st})
		s, _ := h.Open("t", "dying", true)
		s.Attach(&recorder{})
		if err := s.StoreWill(&Message{Topic: "status/dying", Payload: []byte("gone"), Retain: true}, delay); err != nil {
			t.Fatal(err)
		}
		// The process dies without detaching: the will is due after restart.
		h2 := New(Options{Store: st})
		if err := h2.Recover(context.Background(), []string{"t"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay - time.Nanosecond)
		synctest.Wait()
		if n := h2.TenantStats("t").Retained; n != 0 {
			t.Fatalf("will published before its delay after the restart (%d retained)", n)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if n := h2.TenantStats("t").Retained; n != 1 {
			t.Errorf("%d retained messages when the will was due; want the will", n)
		}
		if _, err := st.GetWill(context.Background(), "t", "dying"); err == nil {
			t.Error("the published will was not deleted from the store")
		}
	})
}

func TestDurableNormalEndForgetsEverything(t *testing.T) {
	st := memstore.New()
	ctx := context.Background()
	h := New(Options{Store: st})
	s, _ := h.Open("t", "c", true)
	s.MakeDurable(time.Hour)
	s.Attach(&recorder{})
	s.StoreWill(&Message{Topic: "w"}, 0)
	s.Subscribe(Subscription{Filter: "x", QoS: 1})
	s.Detach(Departure{}) // expiry 0: the session ends now
	if _, err := st.GetSession(ctx, "t", "c"); err == nil {
		t.Error("session record kept after the session ended")
	}
	if subs, _ := st.Subscriptions(ctx, "t", "c"); len(subs) != 0 {
		t.Errorf("subscriptions kept: %v", subs)
	}
	if _, err := st.GetWill(ctx, "t", "c"); err == nil {
		t.Error("will kept after a normal end")
	}
}
