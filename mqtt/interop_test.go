package mqtt_test

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// fanoutHandler is a tiny broker for the interop tests: exact-match
// subscriptions, each PUBLISH sent to the subscribers of its topic.
type fanoutHandler struct {
	mu   sync.Mutex
	subs map[string]map[*mqtt.Conn]byte // topic -> subscriber -> QoS
}

func (h *fanoutHandler) Connect(*mqtt.Conn, *packet.Connect) mqtt.ConnectResult {
	return mqtt.ConnectResult{}
}

func (h *fanoutHandler) Open(*mqtt.Conn) bool { return false }

func (h *fanoutHandler) Publish(c *mqtt.Conn, p *packet.Publish) packet.ReasonCode {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs[p.Topic]) == 0 {
		return packet.NoMatchingSubscribers
	}
	payload := slices.Clone(p.Payload)
	for sub, qos := range h.subs[p.Topic] {
		sub.Send(&packet.Publish{QoS: min(qos, p.QoS), Topic: p.Topic, Payload: payload})
	}
	return packet.Success
}

func (h *fanoutHandler) Subscribe(c *mqtt.Conn, p *packet.Subscribe) []packet.ReasonCode {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = make(map[string]map[*mqtt.Conn]byte)
	}
	codes := make([]packet.ReasonCode, len(p.Subscriptions))
	for i, s := range p.Subscriptions {
		if h.subs[s.Filter] == nil {
			h.subs[s.Filter] = make(map[*mqtt.Conn]byte)
		}
		h.subs[s.Filter][c] = s.QoS
		codes[i] = packet.ReasonCode(s.QoS)
	}
	return codes
}

func (h *fanoutHandler) Unsubscribe(c *mqtt.Conn, p *packet.Unsubscribe) []packet.ReasonCode {
	h.mu.Lock()
	defer h.mu.Unlock()
	codes := make([]packet.ReasonCode, len(p.Filters))
	for i, f := range p.Filters {
		if _, ok := h.subs[f][c]; !ok {
			codes[i] = packet.NoSubscriptionExisted
		}
		delete(h.subs[f], c)
	}
	return codes
}

func (h *fanoutHandler) Disconnected(c *mqtt.Conn, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.subs {
		delete(subs, c)
	}
}

func pahoClient(t *testing.T, addr, id string, received chan<- *paho.Publish) *paho.Client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	cl := paho.NewClient(paho.ClientConfig{
		Conn: nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(r paho.PublishReceived) (bool, error) { received <- r.Packet; return true, nil },
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ack, err := cl.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
	if err != nil {
		t.Fatalf("paho Connect: %v", err)
	}
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %d", ack.ReasonCode)
	}
	t.Cleanup(func() {
		cl.Disconnect(&paho.Disconnect{})
		select {
		case <-cl.Done():
		case <-time.After(waitTimeout):
			t.Error("paho client did not stop")
		}
	})
	return cl
}

func TestPahoInterop(t *testing.T) {
	h := &fanoutHandler{}
	_, addr := startServer(t, h, nil)
	recvA := make(chan *paho.Publish, 10)
	recvB := make(chan *paho.Publish, 10)
	a := pahoClient(t, addr, "paho-a", recvA)
	b := pahoClient(t, addr, "paho-b", recvB)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	sa, err := b.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "room/1", QoS: 2}}})
	if err != nil || len(sa.Reasons) != 1 || sa.Reasons[0] != 2 {
		t.Fatalf("Subscribe: %+v %v", sa, err)
	}
	for qos := byte(0); qos <= 2; qos++ {
		resp, err := a.Publish(ctx, &paho.Publish{Topic: "room/1", QoS: qos, Payload: []byte{'m', '0' + qos}})
		if err != nil {
			t.Fatalf("Publish QoS %d: %v", qos, err)
		}
		if qos > 0 && resp.ReasonCode != 0 {
			t.Fatalf("Publish QoS %d: reason %d", qos, resp.ReasonCode)
		}
		p := recv(t, recvB, "message at paho-b")
		if p.Topic != "room/1" || p.QoS != qos || string(p.Payload) != string([]byte{'m', '0' + qos}) {
			t.Fatalf("received %+v", p)
		}
	}
	// No subscriber: v5 says so in the PUBACK.
	resp, err := a.Publish(ctx, &paho.Publish{Topic: "nobody", QoS: 1, Payload: []byte("x")})
	if err != nil || resp.ReasonCode != byte(packet.NoMatchingSubscribers) {
		t.Fatalf("Publish to nobody: %+v %v", resp, err)
	}
	ua, err := b.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"room/1"}})
	if err != nil || len(ua.Reasons) != 1 || ua.Reasons[0] != 0 {
		t.Fatalf("Unsubscribe: %+v %v", ua, err)
	}
	noRecv(t, recvA, "message at paho-a")
}

// pahoAuther answers the test server's challenge "nonce" with "secret".
type pahoAuther struct{ done chan struct{} }

func (a *pahoAuther) Authenticate(p *paho.Auth) *paho.Auth {
	if p.Properties == nil || string(p.Properties.AuthData) != "nonce" {
		return &paho.Auth{ReasonCode: 0x18, Properties: &paho.AuthProperties{AuthMethod: "test", AuthData: []byte("?")}}
	}
	return &paho.Auth{ReasonCode: 0x18, Properties: &paho.AuthProperties{AuthMethod: "test", AuthData: []byte("secret")}}
}

func (a *pahoAuther) Authenticated() { close(a.done) }

// TestPahoEnhancedAuth runs the AUTH challenge-response exchange with
// paho.golang's Auther against a Handler that implements AuthHandler.
func TestPahoEnhancedAuth(t *testing.T) {
	h := newTestHandler()
	h.connect = func(c *mqtt.Conn, p *packet.Connect) mqtt.ConnectResult {
		return mqtt.ConnectResult{Code: packet.ContinueAuthentication,
			Properties: packet.Properties{AuthMethod: "test", AuthData: []byte("nonce")}}
	}
	_, addr := startServer(t, authHandler{h}, nil)
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	auther := &pahoAuther{done: make(chan struct{})}
	cl := paho.NewClient(paho.ClientConfig{Conn: nc, AuthHandler: auther})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ack, err := cl.Connect(ctx, &paho.Connect{ClientID: "auth", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{AuthMethod: "test"}})
	if err != nil || ack.ReasonCode != 0 {
		t.Fatalf("enhanced authentication: %v %+v", err, ack)
	}
	defer cl.Disconnect(&paho.Disconnect{})
	select {
	case <-auther.done:
	case <-time.After(waitTimeout):
		t.Error("paho's Auther was not told the authentication succeeded")
	}
}

// TestPahoServerDisconnectReason: a paho.golang client that is publishing
// when the server disconnects it with CloseWithReason reads the DISCONNECT
// with its code and Reason String.
func TestPahoServerDisconnectReason(t *testing.T) {
	h := &firstPublish{testHandler: newTestHandler(), first: make(chan struct{})}
	_, addr := startServer(t, h, nil)
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *paho.Disconnect, 1)
	cl := paho.NewClient(paho.ClientConfig{
		Conn:               nc,
		OnServerDisconnect: func(d *paho.Disconnect) { got <- d },
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if ack, err := cl.Connect(ctx, &paho.Connect{ClientID: "paho", CleanStart: true, KeepAlive: 30}); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("paho Connect: %+v %v", ack, err)
	}
	sc := recv(t, h.opened, "Open")

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		payload := make([]byte, 256)
		for {
			// QoS 0: paho fails it once the connection is down.
			if _, err := cl.Publish(ctx, &paho.Publish{Topic: "t", Payload: payload}); err != nil {
				return
			}
		}
	})
	select { // the client is writing
	case <-h.first:
	case <-time.After(waitTimeout):
		t.Fatal("no PUBLISH")
	}
	sc.CloseWithReason(packet.NotAuthorized, "device disabled")

	d := recv(t, got, "paho's OnServerDisconnect")
	if d.ReasonCode != byte(packet.NotAuthorized) || d.Properties == nil || d.Properties.ReasonString != "device disabled" {
		t.Fatalf("paho got DISCONNECT %d %+v, want 0x87 \"device disabled\"", d.ReasonCode, d.Properties)
	}
	select {
	case <-cl.Done():
	case <-time.After(waitTimeout):
		t.Fatal("paho client did not stop")
	}
}

// firstPublish signals the first PUBLISH and takes any number of them
// (testHandler records each one, and blocks once its channel is full).
type firstPublish struct {
	*testHandler
	once  sync.Once
	first chan struct{}
}

func (h *firstPublish) Publish(*mqtt.Conn, *packet.Publish) packet.ReasonCode {
	h.once.Do(func() { close(h.first) })
	return packet.Success
}
