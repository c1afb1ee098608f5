package mqtt_test

import (
	"bufio"
	"io"
	"sync/atomic"
	"testing"

	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// countHandler counts inbound publishes and signals when want arrived.
type countHandler struct {
	testHandler
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (h *countHandler) Publish(c *mqtt.Conn, p *packet.Publish) packet.ReasonCode {
	if h.n.Add(1) == h.want {
		close(h.done)
	}
	return packet.Success
}

func benchmarkPublish(b *testing.B, qos byte) {
	h := &countHandler{testHandler: *newTestHandler(), done: make(chan struct{})}
	_, addr := startServer(b, h, nil)
	c := dial(b, addr, packet.V311)
	c.connect("bench")
	h.want = int64(b.N)

	payload := make([]byte, 64)
	// Read (and discard) acknowledgements concurrently.
	go io.Copy(io.Discard, bufio.NewReader(c.nc))
	var buf []byte
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := packet.Publish{QoS: qos, Topic: "bench/topic", Payload: payload}
		if qos > 0 {
			p.PacketID = uint16(i%60000) + 1
		}
		buf, _ = p.Append(buf, packet.V311)
		if len(buf) > 32<<10 || i == b.N-1 {
			if _, err := c.nc.Write(buf); err != nil {
				b.Fatal(err)
			}
			buf = buf[:0]
		}
	}
	<-h.done
}

func BenchmarkServerPublishQoS0(b *testing.B) { benchmarkPublish(b, 0) }
func BenchmarkServerPublishQoS1(b *testing.B) { benchmarkPublish(b, 1) }

// BenchmarkServerSendQoS0 measures the outbound path: Conn.Send, the
// on-demand writer and the socket.
func BenchmarkServerSendQoS0(b *testing.B) {
	h := newTestHandler()
	_, addr := startServer(b, h, func(s *mqtt.Server) { s.MaxQueued = 1 << 30 })
	c := dial(b, addr, packet.V311)
	c.connect("bench")
	sc := recv(b, h.opened, "Open")
	p := &packet.Publish{Topic: "bench/topic", Payload: make([]byte, 64)}
	size := 2 + 2 + len(p.Topic) + len(p.Payload)
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, c.br, int64(size*b.N))
		done <- err
	}()
	b.SetBytes(int64(len(p.Payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := sc.Send(p); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
