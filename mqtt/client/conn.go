package client

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// maxQueued is how many encoded bytes may wait for the socket before a
// Publish waits: enough for the writer to batch, small enough that a slow
// network slows the publisher down.
const maxQueued = 1 << 20

// conn is one network connection. Its writer goroutine owns the socket's
// write side; the client's reader goroutine (Client.readLoop) owns br, the
// inbound topic aliases and the reads counter's increments.
type conn struct {
	nc net.Conn
	br *bufio.Reader
	v  packet.Version

	wg   sync.WaitGroup // reader, writer, pinger
	done chan struct{}  // closed once the socket is closed
	once sync.Once

	reads atomic.Uint64 // packets read, for the keep alive

	aliasIn map[uint16]string // reader only

	mu        sync.Mutex
	queue     []byte // encoded packets waiting for the writer
	spare     []byte
	wake      chan struct{} // capacity 1: the queue became non-empty, or shut
	space     chan struct{} // closed when the writer took the queue, if spaceWait
	spaceWait bool
	shut      bool  // nothing more is queued
	err       error // why the connection ended

	// Guarded by Client.mu: the server's limits from CONNACK, the outgoing
	// topic aliases and the inbound QoS 1 and 2 packet identifiers this
	// connection has not acknowledged completely yet (for Receive Maximum).
	maxOut   uint32
	aliasMax uint16
	aliasOut map[string]uint16
	unacked  map[uint16]struct{}
}

func newConn(nc net.Conn, br *bufio.Reader, v packet.Version) *conn {
	return &conn{
		nc: nc, br: br, v: v,
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		space:    make(chan struct{}),
		aliasIn:  make(map[uint16]string),
		aliasOut: make(map[string]uint16),
		unacked:  make(map[uint16]struct{}),
	}
}

var errPacketTooLarge = errors.New("mqtt client: packet larger than the server's Maximum Packet Size")

// send queues p for the writer. It never blocks, so the reader may answer
// the server without waiting for the socket.
func (cn *conn) send(p packet.Packet) error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.shut {
		return ErrConnectionLost
	}
	n := len(cn.queue)
	b, err := p.Append(cn.queue, cn.v)
	if err != nil {
		return err
	}
	if cn.maxOut > 0 && uint32(len(b)-n) > cn.maxOut {
		return errPacketTooLarge
	}
	cn.queue = b
	if n == 0 {
		cn.signal()
	}
	return nil
}

func (cn *conn) signal() {
	select {
	case cn.wake <- struct{}{}:
	default:
	}
}

// waitSpace waits until the queue is below maxQueued, the connection
// ended or stop is closed.
func (cn *conn) waitSpace(stop <-chan struct{}, ctxDone <-chan struct{}) bool {
	cn.mu.Lock()
	for len(cn.queue) >= maxQueued && !cn.shut {
		cn.spaceWait = true
		ch := cn.space
		cn.mu.Unlock()
		select {
		case <-ch:
		case <-stop:
			return false
		case <-ctxDone:
			return false
		case <-cn.done:
			return true
		}
		cn.mu.Lock()
	}
	cn.mu.Unlock()
	return true
}

func (cn *conn) writeLoop() {
	defer cn.wg.Done()
	for {
		select {
		case <-cn.wake:
		case <-cn.done:
			return
		}
		cn.mu.Lock()
		out := cn.queue
		cn.queue = cn.spare[:0]
		cn.spare = nil
		if cn.spaceWait {
			close(cn.space)
			cn.space = make(chan struct{})
			cn.spaceWait = false
		}
		shut := cn.shut
		cn.mu.Unlock()
		if len(out) > 0 {
			if _, err := cn.nc.Write(out); err != nil {
				cn.finish(err)
				return
			}
		}
		if shut {
			cn.finish(nil)
			return
		}
		cn.mu.Lock()
		if cap(out) <= 2*maxQueued {
			cn.spare = out[:0]
		}
		cn.mu.Unlock()
	}
}

// finish closes the socket at once; err is the reason, unless one was
// recorded before.
func (cn *conn) finish(err error) {
	cn.once.Do(func() {
		cn.mu.Lock()
		if cn.err == nil {
			cn.err = err
		}
		cn.shut = true
		cn.mu.Unlock()
		cn.nc.Close()
		close(cn.done)
	})
}

// shutdown queues last (if not nil), lets the writer send what is queued
// and close the socket: how a DISCONNECT reaches the server. A server that
// does not read gets a second.
func (cn *conn) shutdown(err error, last packet.Packet) {
	cn.mu.Lock()
	if cn.shut {
		cn.mu.Unlock()
		return
	}
	if last != nil {
		if b, err := last.Append(cn.queue, cn.v); err == nil {
			cn.queue = b
		}
	}
	cn.shut = true
	if cn.err == nil {
		cn.err = err
	}
	cn.signal()
	cn.mu.Unlock()
	cn.nc.SetWriteDeadline(time.Now().Add(time.Second))
}

// fail ends the connection because of err: a breach of the protocol by the
// server is first reported in a DISCONNECT (MQTT 5), anything else closes
// at once.
func (cn *conn) fail(err error) {
	var pe *protocolError
	var de *packet.Error
	switch {
	case errors.As(err, &pe):
		cn.shutdown(err, cn.disconnect(pe.code))
	case errors.As(err, &de):
		cn.shutdown(fmt.Errorf("mqtt client: malformed packet from server: %w", err), cn.disconnect(de.Code))
	default:
		cn.finish(err)
	}
}

func (cn *conn) disconnect(code packet.ReasonCode) packet.Packet {
	if cn.v != packet.V5 {
		return nil
	}
	return &packet.Disconnect{ReasonCode: code}
}

func (cn *conn) reason() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.err == nil {
		return ErrConnectionLost
	}
	return cn.err
}

// readPacket reads one packet into buf (grown as needed, and returned for
// reuse). limit, if not 0, is the largest packet accepted.
func readPacket(br *bufio.Reader, buf []byte, limit uint32, v packet.Version) (packet.Packet, []byte, error) {
	h, err := packet.ReadHeader(br)
	if err != nil {
		return nil, buf, err
	}
	if limit > 0 && uint64(h.Size()) > uint64(limit) {
		return nil, buf, &protocolError{packet.PacketTooLarge, fmt.Sprintf("%v of %d bytes", h.Type, h.Size())}
	}
	buf, err = readBody(br, buf[:0], h.Remaining)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, buf, err
	}
	p, err := packet.Decode(h, buf, v)
	return p, buf, err
}

// readBody reads n bytes, growing buf as they arrive rather than at once:
// a header announcing 256 MB costs nothing until the bytes come.
func readBody(r io.Reader, buf []byte, n int) ([]byte, error) {
	for len(buf) < n {
		chunk := min(n-len(buf), 64<<10)
		buf = slices.Grow(buf, chunk)
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+chunk])
		buf = buf[:len(buf)+m]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}
