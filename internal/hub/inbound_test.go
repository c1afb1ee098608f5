package hub

import (
	"context"
	"slices"
	"testing"

	"github.com/ferry-iot/ferry/internal/store/memstore"
)

// TestInboundQoS2: a session keeps its client's QoS 2 ids awaiting PUBREL
// across connections, and a durable one across a restart; released ids
// are gone; a clean start forgets them.
func TestInboundQoS2(t *testing.T) {
	st := memstore.New()
	h := New(Options{Store: st})
	s, _ := h.Open("t", "dev", true)
	if err := s.MakeDurable(Forever); err != nil {
		t.Fatal(err)
	}
	s.Attach(&recorder{})
	s.AwaitRelease(7)
	s.AwaitRelease(3)
	s.AwaitRelease(9)
	s.ReleasedInbound(9)
	s.Detach(Departure{Expiry: Forever})
	s, present := h.Open("t", "dev", false)
	if !present {
		t.Fatal("session not present")
	}
	if got := s.InboundQoS2(); !slices.Equal(got, []uint16{3, 7}) {
		t.Fatalf("after a reconnect: %v, want [3 7]", got)
	}
	s.Detach(Departure{Expiry: Forever})

	h2 := New(Options{Store: st}) // a restart
	if err := h2.Recover(context.Background(), []string{"t"}); err != nil {
		t.Fatal(err)
	}
	s2, _ := h2.Open("t", "dev", false)
	if got := s2.InboundQoS2(); !slices.Equal(got, []uint16{3, 7}) {
		t.Fatalf("after a restart: %v, want [3 7]", got)
	}
	s2.ReleasedInbound(3)
	s2.Detach(Departure{Expiry: Forever})
	if ids, err := st.Inbound(context.Background(), "t", "dev"); err != nil || !slices.Equal(ids, []uint16{7}) {
		t.Fatalf("stored: %v %v, want [7]", ids, err)
	}
	s3, _ := h2.Open("t", "dev", true)
	if got := s3.InboundQoS2(); len(got) != 0 {
		t.Fatalf("after a clean start: %v", got)
	}
}
