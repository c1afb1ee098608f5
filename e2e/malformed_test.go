package e2e

import (
	"io"
	"net"

	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/config"
)

// v5Connect is a valid MQTT 5 CONNECT of client "bad" with keep alive 30.
var v5Connect = []byte{0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x1E, 0x00, 0x00, 0x03, 'b', 'a', 'd'}

// v311Connect is a valid MQTT 3.1.1 CONNECT of client "bad".
var v311Connect = []byte{0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x1E, 0x00, 0x03, 'b', 'a', 'd'}

// TestMalformedPackets sends broken packets of every type to the broker
// and checks the answer: the reason code in a v5 DISCONNECT (or CONNACK),
// or a plain close in 3.1.1. After each, a mosquitto client must still be
// served.
func TestMalformedPackets(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t, func(c *config.Config) { c.MQTT.MaxPacketSize = 1024 })
	host, port := hostPort(n)
	addr := n.MQTTAddr().String()

	tests := []struct {
		name    string
		connect []byte // nil: the packet is the first one sent
		packet  []byte
		// want is the expected reply: a v5 DISCONNECT or CONNACK reason code
		// (wantPacket) or nothing but a close (wantClose).
		wantPacket byte
		wantCode   byte
		wantClose  bool
	}{
		{name: "connect bad protocol name", packet: []byte{0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'X', 'X', 0x04, 0x02, 0x00, 0x1E, 0x00, 0x03, 'b', 'a', 'd'}, wantPacket: 0x20, wantCode: 0x01},
		{name: "connect unsupported level", packet: []byte{0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x09, 0x02, 0x00, 0x1E, 0x00, 0x03, 'b', 'a', 'd'}, wantPacket: 0x20, wantCode: 0x01},
		{name: "connect reserved flag v5", packet: []byte{0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x03, 0x00, 0x1E, 0x00, 0x00, 0x03, 'b', 'a', 'd'}, wantPacket: 0x20, wantCode: 0x81},
		{name: "publish qos 3 v5", connect: v5Connect, packet: []byte{0x36, 0x06, 0x00, 0x01, 'a', 0x00, 0x01, 0x00}, wantPacket: 0xE0, wantCode: 0x81},
		{name: "publish wildcard topic v5", connect: v5Connect, packet: []byte{0x30, 0x04, 0x00, 0x01, '#', 0x00}, wantPacket: 0xE0, wantCode: 0x90},
		{name: "publish packet id 0 v5", connect: v5Connect, packet: []byte{0x32, 0x06, 0x00, 0x01, 'a', 0x00, 0x00, 0x00}, wantPacket: 0xE0, wantCode: 0x82},
		{name: "publish topic alias 0 v5", connect: v5Connect, packet: []byte{0x30, 0x07, 0x00, 0x01, 'a', 0x03, 0x23, 0x00, 0x00}, wantPacket: 0xE0, wantCode: 0x94},
		{name: "publish invalid utf8 v311", connect: v311Connect, packet: []byte{0x30, 0x04, 0x00, 0x02, 0xC3, 0x28}, wantClose: true},
		{name: "puback truncated v5", connect: v5Connect, packet: []byte{0x40, 0x01, 0x00}, wantPacket: 0xE0, wantCode: 0x81},
		{name: "pubrel bad flags v311", connect: v311Connect, packet: []byte{0x60, 0x02, 0x00, 0x01}, wantClose: true},
		{name: "pubrel unknown id v5", connect: v5Connect, packet: []byte{0x62, 0x02, 0x00, 0x07}, wantPacket: 0x70, wantCode: 0x92},
		{name: "subscribe bad flags v5", connect: v5Connect, packet: []byte{0x80, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x00}, wantPacket: 0xE0, wantCode: 0x81},
		{name: "subscribe no filters v5", connect: v5Connect, packet: []byte{0x82, 0x03, 0x00, 0x01, 0x00}, wantPacket: 0xE0, wantCode: 0x82},
		{name: "subscribe bad filter v5", connect: v5Connect, packet: []byte{0x82, 0x08, 0x00, 0x01, 0x00, 0x00, 0x02, 'a', '#', 0x00}, wantPacket: 0xE0, wantCode: 0x8F},
		{name: "subscribe qos 3 v311", connect: v311Connect, packet: []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03}, wantClose: true},
		{name: "unsubscribe no filters v311", connect: v311Connect, packet: []byte{0xA2, 0x02, 0x00, 0x01}, wantClose: true},
		{name: "pingreq with body v5", connect: v5Connect, packet: []byte{0xC0, 0x01, 0x00}, wantPacket: 0xE0, wantCode: 0x81},
		{name: "second connect v5", connect: v5Connect, packet: v5Connect, wantPacket: 0xE0, wantCode: 0x82},
		{name: "disconnect bad reason v5", connect: v5Connect, packet: []byte{0xE0, 0x01, 0x7F}, wantPacket: 0xE0},
		{name: "auth without method v5", connect: v5Connect, packet: []byte{0xF0, 0x00}, wantPacket: 0xE0, wantCode: 0x82},
		{name: "server-only packet connack v5", connect: v5Connect, packet: []byte{0x20, 0x03, 0x00, 0x00, 0x00}, wantPacket: 0xE0},
		{name: "reserved type 0", connect: v311Connect, packet: []byte{0x00, 0x00}, wantClose: true},
		{name: "remaining length 5 bytes", connect: v311Connect, packet: []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, wantClose: true},
		{name: "too large v5", connect: v5Connect, packet: append([]byte{0x30, 0x80, 0x80, 0x80, 0x01}, make([]byte, 16)...), wantPacket: 0xE0, wantCode: 0x95},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			if tt.connect != nil {
				conn.Write(tt.connect)
				ack := make([]byte, 2)
				if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 0x20 {
					t.Fatalf("no CONNACK: %x %v", ack, err)
				}
				rest := make([]byte, ack[1])
				io.ReadFull(conn, rest)
			}
			conn.Write(tt.packet)
			if tt.wantPacket == 0x70 {
				// PUBCOMP with a reason code; the connection stays open.
				reply := make([]byte, 5)
				if _, err := io.ReadFull(conn, reply); err != nil || reply[0] != 0x70 || reply[4] != tt.wantCode {
					t.Errorf("reply %x (%v), want PUBCOMP with reason %#x", reply, err, tt.wantCode)
				}
				return
			}
			reply, err := io.ReadAll(conn) // until the server closes (or the deadline)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("server did not close the connection; got %x", reply)
			}
			switch {
			case tt.wantClose:
				if len(reply) != 0 {
					t.Errorf("reply %x, want a plain close", reply)
				}
			default:
				if len(reply) < 3 || reply[0] != tt.wantPacket {
					t.Fatalf("reply %x, want packet %#x", reply, tt.wantPacket)
				}
				code := reply[2]
				if tt.wantPacket == 0x20 {
					code = reply[3] // CONNACK: flags, then the code
				}
				if tt.wantCode != 0 && code != tt.wantCode {
					t.Errorf("reason code %#x, want %#x (reply %x)", code, tt.wantCode, reply)
				}
				if tt.wantCode == 0 && code < 0x80 {
					t.Errorf("reason code %#x is not an error (reply %x)", code, reply)
				}
			}
			// The broker goes on serving others.
			run(t, pub, "-h", host, "-p", port, "-t", "still/alive", "-m", "yes", "-q", "1")
		})
	}
}
