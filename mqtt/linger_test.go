package mqtt_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// openerHandler is a testHandler whose session cannot be opened.
type openerHandler struct {
	*testHandler
	code packet.ReasonCode
}

func (h openerHandler) OpenSession(c *mqtt.Conn) (bool, packet.ReasonCode) {
	h.opened <- c
	return false, h.code
}

// flooder writes a packet over and over from a goroutine.
type flooder struct {
	quit chan struct{}
	done chan struct{} // closed when the writes ended
	err  error         // the first write error, once done is closed
}

// flood starts writing p to nc until stop or a write error, with inline
// after the first few packets.
func flood(t *testing.T, nc net.Conn, p packet.Packet, v packet.Version, inline []byte) *flooder {
	t.Helper()
	var chunk []byte
	for len(chunk) < 4<<10 {
		var err error
		if chunk, err = p.Append(chunk, v); err != nil {
			t.Fatal(err)
		}
	}
	nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	f := &flooder{quit: make(chan struct{}), done: make(chan struct{})}
	// One Write, so that the inline bytes come early: the server handles
	// what precedes them first, at the pace the client reads the answers.
	first := append(append(slices.Clone(chunk), inline...), chunk...)
	go func() {
		defer close(f.done)
		for b := first; ; b = chunk {
			select {
			case <-f.quit:
				return
			default:
			}
			if _, err := nc.Write(b); err != nil {
				f.err = err
				return
			}
		}
	}()
	t.Cleanup(func() { f.stop() })
	return f
}

// stop ends the writes and returns the first write error (nil if every
// write succeeded).
func (f *flooder) stop() error {
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
	<-f.done
	return f.err
}

// TestDisconnectReachesWritingClient ends connections for each reason the
// server decides while the client goes on writing: the client must read
// the DISCONNECT (or the refusing CONNACK) with its reason, then the end of
// the stream, not a reset, and its writes must not fail meanwhile. A
// server that closes at once, with the client's bytes unread, makes the
// kernel reset the connection.
func TestDisconnectReachesWritingClient(t *testing.T) {
	ping := &packet.Pingreq{}
	tests := []struct {
		name      string
		configure func(*mqtt.Server)
		handler   func(*testHandler) mqtt.Handler
		connect   func(*packet.Connect)
		refused   bool                        // the CONNECT is refused with code
		notOpened bool                        // refused before Open: no Disconnected
		flood     packet.Packet               // written from the CONNECT on; nil: none
		inline    func(packet.Version) []byte // written early in the flood
		trigger   func(t *testing.T, addr string, sc *mqtt.Conn, v packet.Version)
		code      packet.ReasonCode
		reason    string
	}{{
		name:      "receive maximum exceeded",
		configure: func(s *mqtt.Server) { s.ReceiveMaximum = 2 },
		// PUBRELs for an unknown id keep coming (answered by PUBCOMP).
		flood: &packet.Pubrel{PacketID: 100},
		inline: func(v packet.Version) []byte {
			var b []byte
			for id := uint16(1); id <= 3; id++ {
				b, _ = (&packet.Publish{Topic: "t", QoS: 2, PacketID: id, Payload: []byte("x")}).Append(b, v)
			}
			return b
		},
		code: packet.ReceiveMaximumExceeded,
	}, {
		name:      "packet too large",
		configure: func(s *mqtt.Server) { s.MaxPacketSize = 1024 },
		flood:     ping,
		// A PUBLISH header announcing 2000 bytes; the flood follows.
		inline: func(packet.Version) []byte { return []byte{0x30, 0xD0, 0x0F} },
		code:   packet.PacketTooLarge,
	}, {
		name:  "session taken over",
		flood: ping,
		trigger: func(t *testing.T, addr string, _ *mqtt.Conn, v packet.Version) {
			dial(t, addr, v).connect("c1")
		},
		code: packet.SessionTakenOver,
	}, {
		name:  "quota exceeded (Close)",
		flood: ping,
		trigger: func(t *testing.T, _ string, sc *mqtt.Conn, _ packet.Version) {
			sc.Close(packet.QuotaExceeded)
		},
		code: packet.QuotaExceeded,
	}, {
		name:  "device disabled (CloseWithReason)",
		flood: ping,
		trigger: func(t *testing.T, _ string, sc *mqtt.Conn, _ packet.Version) {
			sc.CloseWithReason(packet.NotAuthorized, "device disabled")
		},
		code:   packet.NotAuthorized,
		reason: "device disabled",
	}, {
		// The client is silent (bytes would restart the keep alive).
		name:    "keep alive expired",
		connect: func(p *packet.Connect) { p.KeepAlive = 1 },
		code:    packet.KeepAliveTimeout,
	}, {
		name: "CONNECT refused",
		handler: func(h *testHandler) mqtt.Handler {
			h.connect = func(*mqtt.Conn, *packet.Connect) mqtt.ConnectResult {
				return mqtt.ConnectResult{Code: packet.NotAuthorized}
			}
			return h
		},
		refused:   true,
		notOpened: true,
		flood:     ping,
		code:      packet.NotAuthorized,
	}, {
		name: "session not opened (SessionOpener)",
		handler: func(h *testHandler) mqtt.Handler {
			return openerHandler{testHandler: h, code: packet.ServerUnavailable}
		},
		refused: true,
		flood:   ping,
		code:    packet.ServerUnavailable,
	}}
	for _, tc := range tests {
		for _, v := range versions() {
			t.Run(tc.name+"/"+vname(v), func(t *testing.T) {
				th := newTestHandler()
				var h mqtt.Handler = th
				if tc.handler != nil {
					h = tc.handler(th)
				}
				_, addr := startServer(t, h, tc.configure)
				c := dial(t, addr, v)
				conn := &packet.Connect{ProtocolName: "MQTT", Version: v, CleanStart: true, ClientID: "c1"}
				if tc.connect != nil {
					tc.connect(conn)
				}
				c.send(conn)
				var inline []byte
				if tc.inline != nil {
					inline = tc.inline(v)
				}
				var f *flooder
				if tc.flood != nil && tc.refused {
					// Pipelined after the CONNECT, as eager clients do.
					f = flood(t, c.nc, tc.flood, v, inline)
				}
				var sc *mqtt.Conn
				if !tc.refused {
					if ack := expect[*packet.Connack](c); ack.ReasonCode != packet.Success {
						t.Fatalf("CONNACK %v", ack.ReasonCode)
					}
					sc = recv(t, th.opened, "Open")
					if tc.flood != nil {
						f = flood(t, c.nc, tc.flood, v, inline)
					}
				}
				// Read what the server sends until its last word, while the
				// trigger runs: a client that stops reading is slowed down.
				last := make(chan error, 1)
				go func() { last <- lastWord(c, v, tc.refused, tc.code, tc.reason) }()
				if tc.trigger != nil {
					tc.trigger(t, addr, sc, v)
				}
				select {
				case err := <-last:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(2 * waitTimeout):
					t.Fatal("no last word from the server")
				}
				if f != nil {
					if err := f.stop(); err != nil {
						t.Fatalf("the client's writes failed before it closed: %v", err)
					}
				}
				c.nc.Close()
				if !tc.notOpened {
					ev := recv(t, th.disconnected, "Disconnected")
					var de *mqtt.DisconnectError
					if !errors.As(ev.err, &de) || de.Code != tc.code || de.Reason != tc.reason {
						t.Fatalf("Disconnected(%v), want code %v reason %q", ev.err, tc.code, tc.reason)
					}
				}
			})
		}
	}
}

// lastWord reads what the server sends until the refusing CONNACK or the
// v5 DISCONNECT with code and reason (3.1.1: nothing), then expects the end
// of the stream: the server shut down its side, a FIN rather than a reset.
func lastWord(c *client, v packet.Version, refused bool, code packet.ReasonCode, reason string) error {
	for {
		c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
		p, err := packet.Read(c.br, v)
		if err != nil {
			if v == packet.V5 || refused {
				return fmt.Errorf("read: %v before the reason reached the client", err)
			}
			// 3.1.1 has no DISCONNECT: the end is all it gets.
			return endOfStream(err)
		}
		if refused {
			ack, ok := p.(*packet.Connack)
			if !ok {
				return fmt.Errorf("got %v, want CONNACK", p.Type())
			}
			if v == packet.V5 && ack.ReasonCode != code ||
				packet.ConnackReturnCodeV3(ack.ReasonCode) != packet.ConnackReturnCodeV3(code) {
				return fmt.Errorf("CONNACK %v, want %v", ack.ReasonCode, code)
			}
			break
		}
		if d, ok := p.(*packet.Disconnect); ok {
			if d.ReasonCode != code || d.Properties.ReasonString != reason {
				return fmt.Errorf("DISCONNECT %v %q, want %v %q", d.ReasonCode, d.Properties.ReasonString, code, reason)
			}
			break
		}
	}
	p, err := packet.Read(c.br, v)
	if err == nil {
		return fmt.Errorf("got %v after the server's last word", p.Type())
	}
	return endOfStream(err)
}

// endOfStream returns nil if err is the orderly end of the stream.
func endOfStream(err error) error {
	if !errors.Is(err, io.EOF) {
		return fmt.Errorf("read: %v, want EOF (the server's write side shut down)", err)
	}
	return nil
}

// TestDisconnectLingerBounded: a disconnected client that goes on writing
// and never closes is closed once DisconnectLinger is over, and
// Disconnected does not wait for that.
func TestDisconnectLingerBounded(t *testing.T) {
	for _, v := range versions() {
		t.Run(vname(v), func(t *testing.T) {
			h := newTestHandler()
			c, sc, _ := connected(t, h, v, func(s *mqtt.Server) { s.DisconnectLinger = 100 * time.Millisecond })
			f := flood(t, c.nc, &packet.Pingreq{}, v, nil)
			sc.CloseWithReason(packet.AdministrativeAction, "maintenance")
			recv(t, h.disconnected, "Disconnected")
			// The server reads the flood until the linger is over, then
			// closes the socket: the writes fail, and not by their own
			// deadline.
			select {
			case <-f.done:
			case <-time.After(waitTimeout):
				t.Fatal("the client can still write: the server lingers for ever")
			}
			var ne net.Error
			if err := f.stop(); err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("flood ended with %v, want the connection reset", err)
			}
		})
	}
}
