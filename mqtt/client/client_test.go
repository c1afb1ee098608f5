package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// TestRoundTrip publishes at every QoS to a subscriber at QoS 2, through
// Ferry (TCP and WebSocket) and Mosquitto, in both protocol versions.
func TestRoundTrip(t *testing.T) {
	f := startFerry(t, "")
	servers := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"ferry", func(*testing.T) string { return "tcp://" + f.addr }},
		{"ferry-ws", func(*testing.T) string { return "ws://" + f.wsAddr + "/mqtt" }},
		{"mosquitto", func(t *testing.T) string { return "tcp://" + startMosquitto(t, "") }},
	}
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			url := s.url(t)
			for _, v := range []packet.Version{packet.V311, packet.V5} {
				t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
					var got collector
					sub := connect(t, Options{Server: url, Version: v, ClientID: "sub-" + t.Name(), CleanStart: true, OnMessage: got.handle})
					prefix := strings.ReplaceAll(t.Name(), "/", "_")
					subscribe(t, sub, prefix+"/#", 2)
					pub := connect(t, Options{Server: url, Version: v, CleanStart: v == packet.V311, ClientID: clientIDFor(v, "pub-"+prefix)})
					ctx := testContext(t)
					for qos := range byte(3) {
						for i := range 3 {
							m := &Message{Topic: fmt.Sprintf("%s/q%d", prefix, qos), Payload: fmt.Appendf(nil, "q%d-%d", qos, i), QoS: qos}
							if err := pub.Publish(ctx, m); err != nil {
								t.Fatalf("publish QoS %d: %v", qos, err)
							}
						}
					}
					waitFor(t, "9 messages", func() bool { return len(got.list()) >= 9 })
					for i, m := range got.list() {
						qos := byte(i / 3)
						if want := fmt.Sprintf("q%d-%d", qos, i%3); string(m.Payload) != want || m.QoS != qos {
							t.Errorf("message %d = %q QoS %d, want %q QoS %d", i, m.Payload, m.QoS, want, qos)
						}
					}
				})
			}
		})
	}
}

// clientIDFor leaves the identifier to an MQTT 5 server, to check that the
// assigned one is used.
func clientIDFor(v packet.Version, id string) string {
	if v == packet.V5 {
		return ""
	}
	return id
}

// TestBadConnack checks that each refusal becomes a *ConnectError saying
// what the server said.
func TestBadConnack(t *testing.T) {
	tests := []struct {
		name   string
		v      packet.Version
		ack    packet.Connack
		want   packet.ReasonCode
		reason string
	}{
		{"v5 not authorized", packet.V5, packet.Connack{ReasonCode: packet.NotAuthorized, Properties: packet.Properties{ReasonString: "no such device"}}, packet.NotAuthorized, "no such device"},
		{"v5 server moved", packet.V5, packet.Connack{ReasonCode: packet.ServerMoved, Properties: packet.Properties{ServerReference: "other:1883"}}, packet.ServerMoved, ""},
		{"v311 bad credentials", packet.V311, packet.Connack{ReasonCode: packet.BadUserNameOrPassword}, packet.BadUserNameOrPassword, ""},
		{"v311 identifier rejected", packet.V311, packet.Connack{ReasonCode: packet.ClientIdentifierNotValid}, packet.ClientIdentifierNotValid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t)
			errc := make(chan error, 1)
			go func() {
				_, err := Connect(testContext(t), Options{Dial: f.dial, Version: tt.v, ClientID: "x"})
				errc <- err
			}()
			fc := f.accept()
			fc.handshake(&tt.ack)
			err := <-errc
			var ce *ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConnectError", err)
			}
			if ce.Code != tt.want || ce.Reason != tt.reason {
				t.Errorf("ConnectError = %+v, want code %v reason %q", ce, tt.want, tt.reason)
			}
			if !strings.Contains(err.Error(), tt.want.String()) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

// TestKeepAliveTimeout: a server that answers nothing after CONNACK gets
// its connection closed after the ping timeout.
func TestKeepAliveTimeout(t *testing.T) {
	c, fc := connectFake(t, Options{KeepAlive: time.Second, PingTimeout: 200 * time.Millisecond}, &packet.Connack{})
	if _, ok := fc.read().(*packet.Pingreq); !ok {
		t.Fatal("no PINGREQ")
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed")
	}
	if !errors.Is(c.Err(), ErrKeepAliveTimeout) {
		t.Errorf("Err = %v, want ErrKeepAliveTimeout", c.Err())
	}
}

// TestWindow checks that QoS 1 and 2 messages in flight never exceed the
// server's Receive Maximum: the third Publish waits for an acknowledgement.
func TestWindow(t *testing.T) {
	rm := uint16(2)
	c, fc := connectFake(t, Options{}, &packet.Connack{Properties: packet.Properties{ReceiveMaximum: &rm}})
	ctx := testContext(t)
	var toks []*Token
	for i := range 2 {
		tok, err := c.PublishAsync(ctx, &Message{Topic: "w", Payload: []byte{byte(i)}, QoS: 1})
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	var ids []uint16
	for range 2 {
		p := fc.read().(*packet.Publish)
		ids = append(ids, p.PacketID)
	}
	if ids[0] == ids[1] {
		t.Fatalf("packet ids %v not unique", ids)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.PublishAsync(short, &Message{Topic: "w", QoS: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third publish with a full window: %v, want DeadlineExceeded", err)
	}
	third := make(chan error, 1)
	go func() { third <- c.Publish(ctx, &Message{Topic: "w", QoS: 2}) }()
	fc.write(&packet.Puback{PacketID: ids[0]})
	if err := toks[0].Wait(ctx); err != nil {
		t.Fatal(err)
	}
	p := fc.read().(*packet.Publish)
	if p.QoS != 2 || p.PacketID == ids[1] {
		t.Fatalf("third message %+v", p)
	}
	fc.write(&packet.Pubrec{PacketID: p.PacketID})
	if rel := fc.read().(*packet.Pubrel); rel.PacketID != p.PacketID {
		t.Fatalf("PUBREL %d, want %d", rel.PacketID, p.PacketID)
	}
	fc.write(&packet.Pubcomp{PacketID: p.PacketID})
	if err := <-third; err != nil {
		t.Fatal(err)
	}
	fc.write(&packet.Puback{PacketID: ids[1], ReasonCode: packet.QuotaExceeded})
	var re *ReasonError
	if err := toks[1].Wait(ctx); !errors.As(err, &re) || re.Code != packet.QuotaExceeded {
		t.Fatalf("refused message: %v, want a *ReasonError QuotaExceeded", err)
	}
}

// TestWindowFerry: against Ferry with receive_maximum 2, many concurrent
// publishers never have more than 2 messages in flight.
func TestWindowFerry(t *testing.T) {
	f := startFerry(t, "  receive_maximum: 2\n")
	c := connect(t, Options{Server: "tcp://" + f.addr, ClientID: "window", CleanStart: true})
	ctx := testContext(t)
	errc := make(chan error, 50)
	for i := range 50 {
		go func() { errc <- c.Publish(ctx, &Message{Topic: "w", Payload: []byte{byte(i)}, QoS: byte(1 + i%2)}) }()
	}
	for range 50 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	peak, window := c.peak, c.window
	c.mu.Unlock()
	if window != 2 || peak > 2 || peak < 1 {
		t.Errorf("window %d, peak in flight %d; want 2 and at most 2", window, peak)
	}
}

// TestInboundQoS2 checks the receiving side against a scripted server:
// acknowledgement after the handler, a duplicate QoS 2 PUBLISH not
// delivered again, PUBREL answered, topic aliases resolved.
func TestInboundQoS2(t *testing.T) {
	got := make(chan *Message, 10)
	release := make(chan struct{})
	c, fc := connectFake(t, Options{TopicAliasMaximum: 4, OnMessage: func(m *Message) {
		got <- m
		<-release
	}}, &packet.Connack{})
	_ = c
	alias := uint16(3)
	fc.write(&packet.Publish{QoS: 2, PacketID: 7, Topic: "a/b", Payload: []byte("x"), Properties: packet.Properties{TopicAlias: &alias}})
	m := <-got
	if m.Topic != "a/b" {
		t.Fatalf("topic %q", m.Topic)
	}
	// Nothing is acknowledged while the handler runs.
	fc.nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := packet.Read(fc.br, fc.v); err == nil {
		t.Fatal("acknowledged before the handler returned")
	}
	release <- struct{}{}
	if rec := fc.read().(*packet.Pubrec); rec.PacketID != 7 {
		t.Fatalf("PUBREC %d", rec.PacketID)
	}
	fc.write(&packet.Publish{QoS: 2, PacketID: 7, Dup: true, Properties: packet.Properties{TopicAlias: &alias}, Payload: []byte("x")})
	if rec := fc.read().(*packet.Pubrec); rec.PacketID != 7 {
		t.Fatalf("second PUBREC %d", rec.PacketID)
	}
	fc.write(&packet.Pubrel{PacketID: 7})
	if comp := fc.read().(*packet.Pubcomp); comp.PacketID != 7 || comp.ReasonCode != packet.Success {
		t.Fatalf("PUBCOMP %+v", comp)
	}
	fc.write(&packet.Publish{QoS: 1, PacketID: 8, Properties: packet.Properties{TopicAlias: &alias}, Payload: []byte("y")})
	m = <-got
	release <- struct{}{}
	if m.Topic != "a/b" || string(m.Payload) != "y" {
		t.Fatalf("second message %q %q: the duplicate was delivered", m.Topic, m.Payload)
	}
	if ack := fc.read().(*packet.Puback); ack.PacketID != 8 {
		t.Fatalf("PUBACK %d", ack.PacketID)
	}
}

// TestInboundViolations: breaches of the client's own limits end the
// connection with the reason code in a DISCONNECT.
func TestInboundViolations(t *testing.T) {
	big := uint16(9)
	tests := []struct {
		name string
		send []packet.Packet
		want packet.ReasonCode
	}{
		{"receive maximum", []packet.Packet{
			&packet.Publish{QoS: 1, PacketID: 1, Topic: "t"},
			&packet.Publish{QoS: 2, PacketID: 2, Topic: "t"},
		}, packet.ReceiveMaximumExceeded},
		{"alias above maximum", []packet.Packet{&packet.Publish{Topic: "t", Properties: packet.Properties{TopicAlias: &big}}}, packet.TopicAliasInvalid},
		{"unexpected CONNACK", []packet.Packet{&packet.Connack{}}, packet.ProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			block := make(chan struct{})
			t.Cleanup(func() { close(block) })
			c, fc := connectFake(t, Options{ReceiveMaximum: 1, TopicAliasMaximum: 2, OnMessage: func(*Message) { <-block }}, &packet.Connack{})
			for _, p := range tt.send {
				fc.write(p)
			}
			d, ok := fc.read().(*packet.Disconnect)
			if !ok || d.ReasonCode != tt.want {
				t.Fatalf("got %+v, want DISCONNECT %v", d, tt.want)
			}
			<-c.Done()
		})
	}
}
