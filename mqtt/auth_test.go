package mqtt_test

import (
	"runtime"
	"testing"

	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// authHandler adds a challenge-response AUTH exchange: the client must
// answer the challenge "nonce" with "secret".
type authHandler struct{ *testHandler }

func (h authHandler) Auth(c *mqtt.Conn, p *packet.Auth) *packet.Auth {
	if p.Properties.AuthMethod != "test" {
		return &packet.Auth{ReasonCode: packet.BadAuthenticationMethod}
	}
	if string(p.Properties.AuthData) != "secret" {
		return nil
	}
	return &packet.Auth{ReasonCode: packet.Success, Properties: packet.Properties{AuthMethod: "test"}}
}

func TestEnhancedAuth(t *testing.T) {
	h := newTestHandler()
	h.connect = func(c *mqtt.Conn, p *packet.Connect) mqtt.ConnectResult {
		if p.Properties.AuthMethod == "" {
			return mqtt.ConnectResult{}
		}
		return mqtt.ConnectResult{Code: packet.ContinueAuthentication,
			Properties: packet.Properties{AuthMethod: "test", AuthData: []byte("nonce")}}
	}
	_, addr := startServer(t, authHandler{h}, nil)
	for _, answer := range []string{"secret", "wrong"} {
		c := dial(t, addr, packet.V5)
		c.send(&packet.Connect{ProtocolName: "MQTT", Version: packet.V5, CleanStart: true, ClientID: "a",
			Properties: packet.Properties{AuthMethod: "test"}})
		a := expect[*packet.Auth](c)
		if a.ReasonCode != packet.ContinueAuthentication || string(a.Properties.AuthData) != "nonce" {
			t.Fatalf("AUTH %+v", a)
		}
		c.send(&packet.Auth{ReasonCode: packet.ContinueAuthentication,
			Properties: packet.Properties{AuthMethod: "test", AuthData: []byte(answer)}})
		ack := expect[*packet.Connack](c)
		if answer == "secret" {
			if ack.ReasonCode != packet.Success || ack.Properties.AuthMethod != "test" {
				t.Fatalf("CONNACK %+v", ack)
			}
			c.ping()
		} else {
			if ack.ReasonCode != packet.NotAuthorized {
				t.Fatalf("CONNACK %v", ack.ReasonCode)
			}
			c.expectClosed()
		}
	}
}

func TestAuthWithoutHandler(t *testing.T) {
	h := newTestHandler()
	c, _, _ := connected(t, h, packet.V5, nil)
	c.send(&packet.Auth{ReasonCode: packet.ReAuthenticate, Properties: packet.Properties{AuthMethod: "x"}})
	c.expectDisconnect(packet.ProtocolError)
}

// TestIdleConnectionMemory reports the memory of an idle connection (both
// ends of the loopback socket are in this process, so the client's share is
// included) and catches a regression to large per-connection buffers.
func TestIdleConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	h := newTestHandler()
	_, addr := startServer(t, h, nil)
	const n = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(t, addr, packet.V311)
		clients[i].br = nil // the client reads nothing from here on; free its buffer
	}
	for i, c := range clients {
		p := &packet.Connect{ProtocolName: "MQTT", Version: packet.V311, CleanStart: true, ClientID: "idle-" + string(rune('a'+i%26)) + string(rune('a'+i/26))}
		c.send(p)
	}
	for range n {
		recv(t, h.opened, "Open")
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := (int64(after.HeapInuse) - int64(before.HeapInuse)) / n
	stack := (int64(after.StackInuse) - int64(before.StackInuse)) / n
	t.Logf("per idle connection (server and client side): heap %d B, stacks %d B", heap, stack)
	if heap > 8<<10 {
		t.Errorf("heap per idle connection %d B", heap)
	}
}
