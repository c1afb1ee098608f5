package pebblestore

import (
	"errors"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
)

// FuzzRecords feeds arbitrary bytes to every record decoder: they must
// fail with store.ErrCorrupt or succeed, never panic, and what they accept
// must encode back to something they read the same.
func FuzzRecords(f *testing.F) {
	sub := store.Subscription{Filter: "a/#", QoS: 2, NoLocal: true, RetainHandling: 1, ID: 7}
	f.Add(encodeSession(&store.Session{ClientID: "c", ExpiryInterval: time.Hour, Created: time.Unix(1, 0)}))
	f.Add(encodeSubscription(&sub))
	o, _ := encodeOutbound(3, &store.Outbound{PacketID: 1, State: store.OutboundPublished, Message: store.Message{Topic: "t", Payload: []byte("p")}})
	f.Add(o)
	w, _ := encodeWill(&store.Will{Message: store.Message{Topic: "w"}, Delay: time.Second, Deadline: time.Unix(5, 0)})
	f.Add(w)
	f.Fuzz(func(t *testing.T, v []byte) {
		corrupt := func(err error) bool { return err != nil && errors.Is(err, store.ErrCorrupt) }
		if s, err := decodeSession("c", v); err == nil {
			if s2, err := decodeSession("c", encodeSession(&s)); err != nil || s2 != s && !sameTimes(s, s2) {
				t.Fatalf("session round trip: %+v -> %+v, %v", s, s2, err)
			}
		} else if !corrupt(err) {
			t.Fatalf("decodeSession error %v is not ErrCorrupt", err)
		}
		if sub, err := decodeSubscription("f", v); err == nil {
			if sub2, err := decodeSubscription("f", encodeSubscription(&sub)); err != nil || sub2 != sub {
				t.Fatalf("subscription round trip: %+v -> %+v, %v", sub, sub2, err)
			}
		} else if !corrupt(err) {
			t.Fatalf("decodeSubscription error %v is not ErrCorrupt", err)
		}
		if _, _, err := decodeOutbound(1, v); err != nil && !corrupt(err) {
			t.Fatalf("decodeOutbound error %v is not ErrCorrupt", err)
		}
		if _, err := decodeWill(v); err != nil && !corrupt(err) {
			t.Fatalf("decodeWill error %v is not ErrCorrupt", err)
		}
	})
}

func sameTimes(a, b store.Session) bool {
	return a.ClientID == b.ClientID && a.ExpiryInterval == b.ExpiryInterval &&
		a.Created.Equal(b.Created) && a.Updated.Equal(b.Updated) && a.Disconnected.Equal(b.Disconnected)
}
