package mqtt_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// TestParkWakeStress runs connections that park and wake all the time
// (IdlePark 2 ms, pauses of 0-10 ms) while each publishes QoS 1 messages
// that the handler forwards to a neighbour connection with Send from the
// publisher's reader goroutine: every PUBACK and every forwarded message
// must arrive, in order, with the race detector watching the park/wake
// hand-over of the reader role.
func TestParkWakeStress(t *testing.T) {
	const conns, msgs = 24, 40
	var mu sync.Mutex
	byID := map[string]*mqtt.Conn{}
	h := newTestHandler()
	h.open = func(c *mqtt.Conn) bool {
		mu.Lock()
		byID[c.ClientID()] = c
		mu.Unlock()
		return false
	}
	h.publish = func(c *mqtt.Conn, p *packet.Publish) packet.ReasonCode {
		mu.Lock()
		to := byID[p.Topic]
		mu.Unlock()
		if to == nil {
			return packet.UnspecifiedError
		}
		if err := to.Send(&packet.Publish{Topic: p.Topic, QoS: 1, Payload: append([]byte(nil), p.Payload...)}); err != nil {
			return packet.QuotaExceeded
		}
		return packet.Success
	}
	srv, addr := startServer(t, h, func(s *mqtt.Server) { s.IdlePark = 2 * time.Millisecond })

	// Connect all first, so that every neighbour exists.
	ncs := make([]net.Conn, conns)
	brs := make([]*bufio.Reader, conns)
	for i := range conns {
		c := dial(t, addr, packet.V311)
		c.connect("c" + strconv.Itoa(i))
		ncs[i], brs[i] = c.nc, c.br
		recv(t, h.opened, "Open")
	}
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { errs <- stressClient(ncs[i], brs[i], "c"+strconv.Itoa((i+1)%conns), msgs) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if runtime.GOOS == "linux" {
		waitParked(t, srv, conns) // and all of them idle again
	}
}

// stressClient publishes msgs QoS 1 messages to topic with random pauses,
// and expects as many messages forwarded to it, in order, acknowledging
// them.
func stressClient(nc net.Conn, br *bufio.Reader, topic string, msgs int) error {
	var out []byte
	write := func(p packet.Packet) error {
		var err error
		if out, err = p.Append(out[:0], packet.V311); err != nil {
			return err
		}
		nc.SetWriteDeadline(time.Now().Add(waitTimeout))
		_, err = nc.Write(out)
		return err
	}
	acked, got := 0, 0
	for sent := 0; acked < msgs || got < msgs; {
		if sent < msgs && sent == acked {
			time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
			sent++
			if err := write(&packet.Publish{Topic: topic, QoS: 1, PacketID: uint16(sent), Payload: []byte(strconv.Itoa(sent))}); err != nil {
				return err
			}
		}
		nc.SetReadDeadline(time.Now().Add(waitTimeout))
		p, err := packet.Read(br, packet.V311)
		if err != nil {
			return fmt.Errorf("sent %d acked %d got %d: %w", sent, acked, got, err)
		}
		switch p := p.(type) {
		case *packet.Puback:
			if int(p.PacketID) != acked+1 {
				return fmt.Errorf("PUBACK %d, want %d", p.PacketID, acked+1)
			}
			acked++
		case *packet.Publish:
			got++
			if string(p.Payload) != strconv.Itoa(got) {
				return fmt.Errorf("forwarded message %q, want %d", p.Payload, got)
			}
			if err := write(&packet.Puback{PacketID: p.PacketID}); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected %v", p.Type())
		}
	}
	return nil
}

// TestPollerFailure makes epoll_wait fail while connections are parked:
// the poller must wake them (a parked connection that is never woken
// answers nothing and never times out), and connections must stop parking,
// their readers waiting in Read with the keep alive as deadline.
func TestPollerFailure(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("connections park on Linux only")
	}
	var fail atomic.Bool
	h := newTestHandler()
	srv, addr := startServer(t, h, func(s *mqtt.Server) {
		s.IdlePark = 2 * time.Millisecond
		mqtt.SetPollFault(s, func() error {
			if fail.Load() {
				return syscall.EBADF
			}
			return nil
		})
	})
	keepAlive := func(p *packet.Connect) { p.KeepAlive = 1 }
	a := dial(t, addr, packet.V5)
	a.connect("a")
	b := dial(t, addr, packet.V5)
	b.connect("b", keepAlive)
	waitParked(t, srv, 2)

	fail.Store(true)
	// a's PINGREQ ends the poller's wait, which then fails: the event is
	// lost, and only the wake-up of every parked connection answers it.
	a.ping()
	waitParked(t, srv, 0)
	a.ping()
	// b, untouched, is not parked any more and its keep alive is enforced;
	// so is that of a connection opened after the failure, which cannot
	// park.
	c := dial(t, addr, packet.V5)
	c.connect("c", keepAlive)
	for _, cl := range []*client{b, c} {
		cl.expectDisconnect(packet.KeepAliveTimeout)
	}
	if n := srv.Parked(); n != 0 {
		t.Fatalf("%d connections parked after the poller failed", n)
	}
	a.ping()
}
