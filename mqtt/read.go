package mqtt

import (
	"fmt"
	"net"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// reader frames packets from the socket. It holds one small buffer and
// borrows a pooled one for a packet that does not fit. Owned by the reader
// goroutine.
type reader struct {
	nc       net.Conn
	small    []byte // resident small buffer
	buf      []byte // working buffer, small or borrowed (busy connection); data is buf[r:w]
	r, w     int
	lastRead int           // bytes of the last read
	big      []byte        // borrowed buffer of the last large packet
	deadline time.Duration // per-read deadline (keep alive); 0: none
}

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
	if rd.small == nil {
		rd.small = getBuf(smallBufSize)
		rd.buf = rd.small
	}
	if rd.r == rd.w && len(rd.buf) != smallBufSize && rd.lastRead < smallBufSize {
		// Traffic calmed down: back to the small buffer.
		putBuf(rd.buf)
		rd.buf, rd.r, rd.w = rd.small, 0, 0
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
					m, err := rd.read(big[k:])
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
		m, err := rd.read(rd.buf[rd.w:])
		rd.w += m
		rd.lastRead = m
		if err != nil && m == 0 {
			return h, nil, err
		}
		if rd.w == len(rd.buf) && len(rd.buf) == smallBufSize {
			// The read filled the small buffer: more is probably waiting.
			nb := getBuf(busyBufSize)
			rd.w = copy(nb, rd.buf[rd.r:rd.w])
			rd.r = 0
			rd.buf = nb
		}
	}
}

func (rd *reader) read(b []byte) (int, error) {
	if rd.deadline > 0 {
		rd.nc.SetReadDeadline(time.Now().Add(rd.deadline))
	}
	return rd.nc.Read(b)
}

// release returns the buffers to the pools when the connection ends.
func (rd *reader) release() {
	if rd.big != nil {
		putBuf(rd.big)
		rd.big = nil
	}
	if rd.buf != nil && len(rd.buf) != smallBufSize {
		putBuf(rd.buf)
	}
	if rd.small != nil {
		putBuf(rd.small)
	}
	rd.buf, rd.small = nil, nil
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
