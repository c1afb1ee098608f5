package mqtt_test

import (
	"fmt"
	"testing"

	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// asyncHandler completes inbound QoS 1/2 messages only when the test says.
type asyncHandler struct {
	*testHandler
	pending chan asyncPublish
}

type asyncPublish struct {
	id   uint16
	done func(packet.ReasonCode)
}

func (h *asyncHandler) PublishAsync(c *mqtt.Conn, p *packet.Publish, done func(packet.ReasonCode)) {
	h.pending <- asyncPublish{id: p.PacketID, done: done}
}

func TestAsyncPublishAcksInArrivalOrder(t *testing.T) {
	for _, v := range versions() {
		t.Run(vname(v), func(t *testing.T) {
			h := &asyncHandler{testHandler: newTestHandler(), pending: make(chan asyncPublish, 16)}
			cl, _, _ := connected(t, h.testHandler, v, func(s *mqtt.Server) { s.Handler = h })
			cl.send(
				&packet.Publish{Topic: "a", QoS: 1, PacketID: 1},
				&packet.Publish{Topic: "a", QoS: 2, PacketID: 2},
				&packet.Publish{Topic: "a", QoS: 1, PacketID: 3},
			)
			var got []asyncPublish
			for range 3 {
				got = append(got, recv(t, h.pending, "PublishAsync"))
			}
			// Complete in reverse order: nothing may be written before the
			// first completes, then all three in arrival order.
			got[2].done(packet.Success)
			got[1].done(packet.Success)
			cl.ping() // a PINGRESP arrives first: proves no ack was written
			got[0].done(packet.Success)
			if a := expect[*packet.Puback](cl); a.PacketID != 1 {
				t.Fatalf("first ack for %d, want 1", a.PacketID)
			}
			if a := expect[*packet.Pubrec](cl); a.PacketID != 2 {
				t.Fatalf("second ack for %d, want 2", a.PacketID)
			}
			if a := expect[*packet.Puback](cl); a.PacketID != 3 {
				t.Fatalf("third ack for %d, want 3", a.PacketID)
			}
			// A duplicate of the QoS 2 message is answered, not handed over.
			cl.send(&packet.Publish{Topic: "a", QoS: 2, PacketID: 2, Dup: true})
			if a := expect[*packet.Pubrec](cl); a.PacketID != 2 {
				t.Fatalf("duplicate answered for %d", a.PacketID)
			}
			noRecv(t, h.pending, "PublishAsync for a duplicate")
		})
	}
}

func TestAsyncPublishReceiveMaximum(t *testing.T) {
	h := &asyncHandler{testHandler: newTestHandler(), pending: make(chan asyncPublish, 16)}
	cl, _, _ := connected(t, h.testHandler, packet.V5, func(s *mqtt.Server) {
		s.Handler = h
		s.ReceiveMaximum = 2
	})
	cl.send(&packet.Publish{Topic: "a", QoS: 1, PacketID: 1}, &packet.Publish{Topic: "a", QoS: 1, PacketID: 2})
	recv(t, h.pending, "first")
	recv(t, h.pending, "second")
	// Two pending acknowledgements fill the window: a third is a violation.
	cl.send(&packet.Publish{Topic: "a", QoS: 1, PacketID: 3})
	cl.expectDisconnect(packet.ReceiveMaximumExceeded)
}

func TestAsyncPublishRefusedQoS2(t *testing.T) {
	h := &asyncHandler{testHandler: newTestHandler(), pending: make(chan asyncPublish, 16)}
	cl, _, _ := connected(t, h.testHandler, packet.V5, func(s *mqtt.Server) { s.Handler = h })
	cl.send(&packet.Publish{Topic: "a", QoS: 2, PacketID: 9})
	recv(t, h.pending, "PublishAsync").done(packet.QuotaExceeded)
	if a := expect[*packet.Pubrec](cl); a.ReasonCode != packet.QuotaExceeded {
		t.Fatalf("PUBREC code %v, want QuotaExceeded", a.ReasonCode)
	}
	// The refused id is free again: a resend is a new message.
	cl.send(&packet.Publish{Topic: "a", QoS: 2, PacketID: 9})
	recv(t, h.pending, "PublishAsync of the resend").done(packet.Success)
	expect[*packet.Pubrec](cl)
}

// releaseHandler holds PUBRELs until the test lets them go.
type releaseHandler struct {
	*testHandler
	released chan func()
}

func (h *releaseHandler) Released(c *mqtt.Conn, p *packet.Publish, done func()) { h.released <- done }

func TestReleaseHandlerDelaysPubrel(t *testing.T) {
	h := &releaseHandler{testHandler: newTestHandler(), released: make(chan func(), 4)}
	cl, conn, _ := connected(t, h.testHandler, packet.V5, func(s *mqtt.Server) { s.Handler = h })
	msg := &packet.Publish{Topic: "q2", QoS: 2, Payload: []byte("x")}
	if err := conn.Send(msg); err != nil {
		t.Fatal(err)
	}
	p := expect[*packet.Publish](cl)
	cl.send(&packet.Pubrec{PacketID: p.PacketID})
	done := recv(t, h.released, "Released")
	cl.ping() // no PUBREL before done: the PINGRESP comes first
	done()
	if rel := expect[*packet.Pubrel](cl); rel.PacketID != p.PacketID {
		t.Fatalf("PUBREL for %d, want %d", rel.PacketID, p.PacketID)
	}
	cl.send(&packet.Pubcomp{PacketID: p.PacketID})
	if got := recv(t, h.delivered, "Delivered"); got != msg {
		t.Error("Delivered did not report the caller's packet")
	}
}

func TestSendReleaseResumesExchange(t *testing.T) {
	h := newTestHandler()
	cl, conn, _ := connected(t, h, packet.V5, nil)
	msg := &packet.Publish{Topic: "q2", QoS: 2, PacketID: 77, Payload: []byte("x")}
	if err := conn.SendRelease(msg); err != nil {
		t.Fatal(err)
	}
	if rel := expect[*packet.Pubrel](cl); rel.PacketID != 77 {
		t.Fatalf("PUBREL for %d, want 77", rel.PacketID)
	}
	cl.send(&packet.Pubcomp{PacketID: 77})
	if got := recv(t, h.delivered, "Delivered"); got != msg {
		t.Error("Delivered did not report the resumed message")
	}
	if err := conn.SendRelease(&packet.Publish{Topic: "q1", QoS: 1, PacketID: 1}); err == nil {
		t.Error("SendRelease of a QoS 1 message accepted")
	}
}

// TestV311FailureNotAcknowledged: 3.1.1 has no negative acknowledgement.
// A message refused by policy is acknowledged (and dropped), as
// [MQTT-3.3.5-2] allows; one the server failed to take is not: the
// connection closes without PUBACK/PUBREC, the acknowledgements before it
// still go out, and the client will send it again.
func TestV311FailureNotAcknowledged(t *testing.T) {
	for _, async := range []bool{false, true} {
		for _, tt := range []struct {
			code packet.ReasonCode
			ack  bool
		}{
			{packet.NotAuthorized, true},
			{packet.QuotaExceeded, true},
			{packet.ImplementationSpecificError, false},
			{packet.UnspecifiedError, false},
		} {
			t.Run(fmt.Sprintf("async=%v/%v", async, tt.code), func(t *testing.T) {
				h := &asyncHandler{testHandler: newTestHandler(), pending: make(chan asyncPublish, 16)}
				h.publish = func(*mqtt.Conn, *packet.Publish) packet.ReasonCode { return tt.code }
				configure := func(s *mqtt.Server) {}
				if async {
					configure = func(s *mqtt.Server) { s.Handler = h }
				}
				cl, _, _ := connected(t, h.testHandler, packet.V311, configure)
				if async {
					cl.send(&packet.Publish{Topic: "ok", QoS: 1, PacketID: 1}, &packet.Publish{Topic: "x", QoS: 1, PacketID: 2})
					recv(t, h.pending, "PublishAsync").done(packet.Success)
					recv(t, h.pending, "PublishAsync").done(tt.code)
					if a := expect[*packet.Puback](cl); a.PacketID != 1 {
						t.Fatalf("ack for %d, want 1", a.PacketID)
					}
				} else {
					cl.send(&packet.Publish{Topic: "x", QoS: 1, PacketID: 2})
				}
				if !tt.ack {
					cl.expectClosed()
					return
				}
				if a := expect[*packet.Puback](cl); a.PacketID != 2 {
					t.Fatalf("ack for %d, want 2", a.PacketID)
				}
				cl.ping()
			})
		}
	}
}
