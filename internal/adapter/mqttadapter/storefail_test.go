package mqttadapter

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/memstore"
)

var errInjected = errors.New("injected store failure")

// failingStore is a memory store whose writes of one kind fail on demand,
// as a full disk or a lost database would make them.
type failingStore struct {
	*memstore.Store
	mu   sync.Mutex
	fail map[string]bool // method name -> fails
}

func (f *failingStore) set(method string, fails bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = fails
}

func (f *failingStore) fails(method string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail[method]
}

func (f *failingStore) PutSession(ctx context.Context, tenant string, s store.Session) error {
	if f.fails("PutSession") {
		return errInjected
	}
	return f.Store.PutSession(ctx, tenant, s)
}

func (f *failingStore) PutWill(ctx context.Context, tenant, clientID string, w store.Will) error {
	if f.fails("PutWill") {
		return errInjected
	}
	return f.Store.PutWill(ctx, tenant, clientID, w)
}

func (f *failingStore) PutSubscription(ctx context.Context, tenant, clientID string, sub store.Subscription) error {
	if f.fails("PutSubscription") {
		return errInjected
	}
	return f.Store.PutSubscription(ctx, tenant, clientID, sub)
}

func (f *failingStore) AppendQueue(ctx context.Context, tenant, clientID string, m *store.Message) (uint64, error) {
	if f.fails("AppendQueue") {
		return 0, errInjected
	}
	return f.Store.AppendQueue(ctx, tenant, clientID, m)
}

func (f *failingStore) AppendQueueBatch(ctx context.Context, tenant, clientID string, ms []*store.Message) (uint64, error) {
	if f.fails("AppendQueue") {
		return 0, errInjected
	}
	return f.Store.AppendQueueBatch(ctx, tenant, clientID, ms)
}

// TestStoreFailuresReachTheClient: when the store cannot keep what a
// client asked for, the client hears it (CONNACK 0x80, SUBACK 0x80, a
// failed PUBACK) and nothing is acknowledged that was not stored.
func TestStoreFailuresReachTheClient(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	st := &failingStore{Store: memstore.New(), fail: map[string]bool{}}
	h := hub.New(hub.Options{Logger: log, Store: st})
	t.Cleanup(func() { h.Close(context.Background()) })
	a := New(h, Options{Logger: log})
	ln := serve(t, a, log)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	connect := func(id string, expiry uint32, will *paho.WillMessage) (*paho.Client, *paho.Connack) {
		t.Helper()
		nc, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		cl := paho.NewClient(paho.ClientConfig{Conn: nc})
		ack, err := cl.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}, WillMessage: will})
		if ack == nil && err != nil {
			t.Fatalf("connect %s: %v", id, err)
		}
		return cl, ack
	}

	t.Run("session not stored", func(t *testing.T) {
		st.set("PutSession", true)
		defer st.set("PutSession", false)
		if _, ack := connect("no-session", 300, nil); ack.ReasonCode != 0x80 {
			t.Errorf("CONNACK %#x, want 0x80", ack.ReasonCode)
		}
	})
	t.Run("will not stored", func(t *testing.T) {
		st.set("PutWill", true)
		defer st.set("PutWill", false)
		_, ack := connect("no-will", 300, &paho.WillMessage{Topic: "w", QoS: 1, Payload: []byte("gone")})
		if ack.ReasonCode != 0x80 {
			t.Errorf("CONNACK %#x, want 0x80", ack.ReasonCode)
		}
	})
	t.Run("subscription not stored", func(t *testing.T) {
		cl, ack := connect("no-sub", 300, nil)
		if ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %#x", ack.ReasonCode)
		}
		before := h.Stats().Subscripts
		st.set("PutSubscription", true)
		defer st.set("PutSubscription", false)
		sa, err := cl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "s/#", QoS: 1}}})
		if err != nil && sa == nil {
			t.Fatal(err)
		}
		if len(sa.Reasons) != 1 || sa.Reasons[0] != 0x80 {
			t.Errorf("SUBACK %v, want [0x80]", sa.Reasons)
		}
		if after := h.Stats().Subscripts; after != before {
			t.Errorf("a refused subscription stayed in the hub: %d subscriptions, want %d", after, before)
		}
		cl.Disconnect(&paho.Disconnect{})
	})
	t.Run("queued message not stored", func(t *testing.T) {
		sub, _ := connect("offline-sub", 300, nil)
		if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "q", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		sub.Disconnect(&paho.Disconnect{})
		<-sub.Done()
		pub, _ := connect("pub", 0, nil)
		st.set("AppendQueue", true)
		r, err := pub.Publish(ctx, &paho.Publish{Topic: "q", QoS: 1, Payload: []byte("lost")})
		st.set("AppendQueue", false)
		if r == nil || r.ReasonCode < 0x80 {
			t.Errorf("PUBACK %+v (%v) for a message the store refused, want a failure code", r, err)
		}
		r, err = pub.Publish(ctx, &paho.Publish{Topic: "q", QoS: 1, Payload: []byte("kept")})
		if err != nil || r.ReasonCode != 0 {
			t.Fatalf("publish once the store works again: %+v, %v", r, err)
		}
		if q, err := st.QueueInfo(ctx, "DEFAULT_TENANT", "offline-sub"); err != nil || q.Len != 1 {
			t.Errorf("stored queue %+v, %v: want only the acknowledged message", q, err)
		}
	})
}
