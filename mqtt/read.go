package mqtt

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// reader frames packets from the socket. It borrows a small pooled buffer
// while it reads, a bigger one while the connection is busy or for a packet
// that does not fit, and gives them back when the connection parks. Owned
// by the reader goroutine.
type reader struct {
	nc net.Conn
	// stop is the Conn's closing flag. Closing interrupts a blocked Read by
	// setting a past read deadline; read checks stop after setting its own
	// deadline, so that it cannot undo the interruption unseen.
	stop     *atomic.Bool
	buf      []byte // working buffer (nil while parked); data is buf[r:w]
	r, w     int
	big      []byte        // borrowed buffer of the last large packet
	deadline time.Duration // keep alive: the longest wait for bytes; 0: none
	// parkAfter, when non-zero, is how long a read waits before giving up
	// with errIdle so that the connection can park (see park.go).
	parkAfter time.Duration
	// kaDeadline is when the keep alive expires (Unix ns): deadline after
	// the read that followed the last bytes received.
	kaDeadline int64
	lastRead   int32 // bytes of the last read
	gotData    bool  // the last read returned bytes: the keep alive restarts
	armed      bool  // read set a read deadline
}

// errIdle reports that no byte came for parkAfter.
var errIdle = errors.New("mqtt: connection idle")

// busyBufSize is the working buffer of a connection whose reads fill the
// small buffer: fewer read calls for a stream of small packets.
const busyBufSize = 16 << 10

// next returns the next packet. body is valid until the following call.
// A packet bigger than max is reported as *packet.Error{PacketTooLarge}
// without reading its body.
func (rd *reader) next(max int) (packet.Header, []byte, error) {
	if rd.big != nil {
		putBuf(rd.big)
		rd.big = nil
	}
	if rd.buf == nil {
		rd.buf = getBuf(smallBufSize)
	}
	if rd.r == rd.w && len(rd.buf) != smallBufSize && rd.lastRead < smallBufSize {
		// Traffic calmed down: back to a small buffer.
		putBuf(rd.buf)
		rd.buf, rd.r, rd.w = getBuf(smallBufSize), 0, 0
	}
	for {
		h, n, err := parseHeader(rd.buf[rd.r:rd.w])
		if err != nil {
			return h, nil, err
		}
		if n > 0 {
			if h.Size() > max {
				return h, nil, &packet.Error{Code: packet.PacketTooLarge,
					Reason: fmt.Sprintf("%v of %d bytes exceeds Maximum Packet Size %d", h.Type, h.Size(), max)}
			}
			total := n + h.Remaining
			if rd.w-rd.r >= total {
				body := rd.buf[rd.r+n : rd.r+total : rd.r+total]
				rd.r += total
				if rd.r == rd.w {
					rd.r, rd.w = 0, 0
				}
				return h, body, nil
			}
			if total > len(rd.buf) {
				big := getBuf(h.Remaining)
				k := copy(big, rd.buf[rd.r+n:rd.w])
				rd.r, rd.w = 0, 0
				for k < len(big) {
					m, err := rd.read(big[k:], false) // a packet is not left half-read
					k += m
					if err != nil && k < len(big) {
						putBuf(big)
						return h, nil, err
					}
				}
				rd.big = big
				return h, big, nil
			}
		}
		// Need more bytes: compact, then read.
		if rd.r > 0 {
			rd.w = copy(rd.buf, rd.buf[rd.r:rd.w])
			rd.r = 0
		}
		m, err := rd.read(rd.buf[rd.w:], true)
		rd.w += m
		rd.lastRead = int32(m)
		if err != nil && m == 0 {
			return h, nil, err
		}
		if rd.w == len(rd.buf) && len(rd.buf) == smallBufSize {
			// The read filled the small buffer: more is probably waiting.
			nb := getBuf(busyBufSize)
			rd.w = copy(nb, rd.buf[rd.r:rd.w])
			rd.r = 0
			putBuf(rd.buf)
			rd.buf = nb
		}
	}
}

// read reads into b, waiting at most until the keep alive expires or, on a
// parkable connection and if mayPark, for parkAfter (then errIdle, with rd
// intact: the next call goes on where this one stopped).
func (rd *reader) read(b []byte, mayPark bool) (int, error) {
	parkAfter := rd.parkAfter
	if !mayPark {
		parkAfter = 0
	}
	if rd.deadline == 0 && parkAfter == 0 {
		if rd.armed {
			rd.nc.SetReadDeadline(time.Time{})
			rd.armed = false
		}
		if rd.stop.Load() {
			return 0, ErrClosed
		}
		return rd.nc.Read(b)
	}
	rd.armed = true
	now := time.Now()
	if rd.gotData || rd.kaDeadline == 0 {
		rd.kaDeadline = now.Add(rd.deadline).UnixNano()
	}
	idle := false
	d := time.Unix(0, rd.kaDeadline)
	if rd.deadline == 0 {
		d, idle = now.Add(parkAfter), true
	} else if parkAfter > 0 && now.Add(parkAfter).Before(d) {
		d, idle = now.Add(parkAfter), true
	}
	rd.nc.SetReadDeadline(d)
	if rd.stop.Load() {
		return 0, ErrClosed
	}
	n, err := rd.nc.Read(b)
	rd.gotData = n > 0
	if n == 0 && idle {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return 0, errIdle
		}
	}
	return n, err
}

// empty reports whether no byte of a next packet is buffered.
func (rd *reader) empty() bool { return rd.r == rd.w && rd.big == nil }

// idle returns the buffers of an empty reader to the pools while the
// connection is parked; next borrows them again.
func (rd *reader) idle() {
	if !rd.empty() {
		return
	}
	rd.release()
	rd.r, rd.w = 0, 0
}

// release returns the buffers to the pools when the connection ends.
func (rd *reader) release() {
	if rd.big != nil {
		putBuf(rd.big)
		rd.big = nil
	}
	if rd.buf != nil {
		putBuf(rd.buf)
	}
	rd.buf = nil
}

// parseHeader parses a fixed header at the start of b. n is its length, 0
// when b does not hold all of it yet.
func parseHeader(b []byte) (h packet.Header, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	h.Type = packet.Type(b[0] >> 4)
	h.Flags = b[0] & 0x0F
	if h.Type == 0 {
		// Type 0 is Reserved (Forbidden) [MQTT-2.1.2].
		return h, 0, &packet.Error{Code: packet.MalformedPacket, Reason: "reserved packet type 0"}
	}
	var rem int
	for i := 0; i < 4; i++ {
		if 1+i >= len(b) {
			return h, 0, nil
		}
		c := b[1+i]
		rem |= int(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			h.Remaining = rem
			return h, 2 + i, nil
		}
	}
	// A variable byte integer is at most 4 bytes [MQTT-1.5.5-1].
	return h, 0, &packet.Error{Code: packet.MalformedPacket, Reason: "remaining length longer than 4 bytes"}
}
