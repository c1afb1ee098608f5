package mqtt_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// TestBacklogBounded floods the server with packets it answers (PINGREQ,
// PUBREL) from a client that never reads: the answers waiting for the
// socket must stay under the bound, the reader waiting for room instead of
// queueing more, and the client must end up blocked in Write (TCP
// backpressure) rather than be read from without end.
func TestBacklogBounded(t *testing.T) {
	tests := []struct {
		name string
		v    packet.Version
		p    packet.Packet
	}{
		{"PINGREQ v3.1.1", packet.V311, &packet.Pingreq{}},
		{"PINGREQ v5", packet.V5, &packet.Pingreq{}},
		{"PUBREL v3.1.1", packet.V311, &packet.Pubrel{PacketID: 7}},
		// Unknown id: each PUBCOMP carries 0x92, 5 bytes for 4.
		{"PUBREL v5", packet.V5, &packet.Pubrel{PacketID: 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHandler()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			// A small send buffer, so that the server's writes block
			// after some hundred kilobytes rather than megabytes. (With
			// 4 KiB, loopback TCP on Linux now and then stops carrying
			// the client's bytes long before the bound.)
			addr := serveOn(t, &mqtt.Server{Handler: h}, smallBufListener{l})
			c := dial(t, addr, tc.v)
			c.connect("c1")
			sc := recv(t, h.opened, "Open")

			var chunk []byte
			for len(chunk) < 64<<10 {
				var err error
				if chunk, err = tc.p.Append(chunk, tc.v); err != nil {
					t.Fatal(err)
				}
			}
			c.nc.SetWriteDeadline(time.Time{}) // the test closes the socket to stop
			var written atomic.Int64
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					n, err := c.nc.Write(chunk)
					written.Add(int64(n))
					if err != nil {
						return
					}
				}
			})
			defer wg.Wait()
			defer c.nc.Close()

			// The reader must come to wait for room; meanwhile (and then)
			// the backlog stays within the bound plus one answer.
			const slack = 5
			peak := 0
			deadline := time.Now().Add(fillTimeout)
			for !mqtt.WaitingForRoom(sc) {
				peak = max(peak, mqtt.Backlog(sc))
				if peak > mqtt.MaxBacklog+slack {
					t.Fatalf("backlog grew to %d bytes, bound %d", peak, mqtt.MaxBacklog)
				}
				if time.Now().After(deadline) {
					t.Fatalf("the reader never waited for room: %d bytes written, backlog %d, peak %d",
						written.Load(), mqtt.Backlog(sc), peak)
				}
				time.Sleep(time.Millisecond)
			}
			peak = max(peak, mqtt.Backlog(sc))
			if peak > mqtt.MaxBacklog+slack {
				t.Fatalf("backlog peaked at %d bytes, bound %d", peak, mqtt.MaxBacklog)
			}
			// The reader stays stalled while the client does not read:
			// the client's writes stop progressing once the socket buffers
			// are full.
			for last := int64(-1); ; {
				w := written.Load()
				if b := mqtt.Backlog(sc); b > mqtt.MaxBacklog+slack {
					t.Fatalf("backlog grew to %d bytes, bound %d", b, mqtt.MaxBacklog)
				}
				if w == last {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the client is still being read from: %d bytes written", w)
				}
				last = w
				time.Sleep(50 * time.Millisecond)
			}
			if !mqtt.WaitingForRoom(sc) {
				t.Fatal("the reader no longer waits for room")
			}
			// The client goes away: the server notices (the write fails)
			// and ends the connection.
			c.nc.Close()
			recv(t, h.disconnected, "Disconnected")
		})
	}
}

// fillTimeout bounds the filling of the backlog: the bound takes some
// 130,000 answered packets beyond what the writer drains, and a race build
// (its goroutine ownership check costs a runtime.Stack per packet) on two
// loaded cores handles only 25,000 or so a second.
const fillTimeout = 60 * time.Second

// smallBufListener shrinks the send buffer of the connections it accepts.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetWriteBuffer(64 << 10)
	}
	return nc, err
}
