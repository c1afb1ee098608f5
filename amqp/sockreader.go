package amqp

import (
	"bufio"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// sockReader is the reader goroutine's view of the socket after the
// handshake. While frames flow it reads through a pooled buffer of
// ReadBufferSize bytes; once the socket stays silent for parkAfter it
// gives that buffer back and waits for the next bytes in a few bytes of
// its own, so an idle connection does not hold a read buffer. The
// bufio.Reader of the handshake is drained first: a peer may pipeline its
// first frames behind the open.
type sockReader struct {
	nc   net.Conn
	pre  *bufio.Reader // the handshake's reader, until empty
	pool *sync.Pool
	buf  *[]byte // nil while parked
	r, w int
	// lingerAt is the deadline closeWithError set (unix nanos; 0: none):
	// from then on every read uses it and a time-out is final.
	lingerAt *atomic.Int64
	small    [16]byte
}

// parkAfter is how long a connection may be silent before its read buffer
// goes back to the pool (MQTT's idle_park does the same for its
// connections).
const parkAfter = 100 * time.Millisecond

var readPools sync.Map // buffer size -> *sync.Pool of *[]byte

func readPool(size int) *sync.Pool {
	if p, ok := readPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := readPools.LoadOrStore(size, &sync.Pool{New: func() any { b := make([]byte, size); return &b }})
	return p.(*sync.Pool)
}

func newSockReader(nc net.Conn, pre *bufio.Reader, size int, lingerAt *atomic.Int64) *sockReader {
	if pre != nil && pre.Buffered() == 0 {
		pre = nil
	}
	return &sockReader{nc: nc, pre: pre, pool: readPool(size), lingerAt: lingerAt}
}

// buffered reports whether bytes are waiting, i.e. whether the next read
// returns without a system call.
func (s *sockReader) buffered() bool {
	return s.r < s.w || (s.pre != nil && s.pre.Buffered() > 0)
}

func (s *sockReader) Read(p []byte) (int, error) {
	if s.pre != nil {
		if s.pre.Buffered() > 0 {
			return s.pre.Read(p[:min(len(p), s.pre.Buffered())])
		}
		s.pre = nil // the handshake's buffer goes with it
	}
	if s.r == s.w {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, (*s.buf)[s.r:s.w])
	s.r += n
	return n, nil
}

// fill reads the socket into the buffer, parking when it stays silent.
func (s *sockReader) fill() error {
	s.r, s.w = 0, 0
	if s.buf == nil {
		s.buf = s.pool.Get().(*[]byte)
	}
	for {
		linger := s.lingerAt.Load()
		if linger != 0 {
			_ = s.nc.SetReadDeadline(time.Unix(0, linger))
		} else {
			_ = s.nc.SetReadDeadline(time.Now().Add(parkAfter))
		}
		n, err := s.nc.Read(*s.buf)
		if n > 0 {
			s.w = n
			return nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || s.lingerAt.Load() != 0 {
			return err
		}
		// Silent: wait with no buffer but a few bytes of our own.
		s.pool.Put(s.buf)
		s.buf = nil
		_ = s.nc.SetReadDeadline(time.Time{})
		if l := s.lingerAt.Load(); l != 0 {
			_ = s.nc.SetReadDeadline(time.Unix(0, l))
		}
		n, err = s.nc.Read(s.small[:])
		s.buf = s.pool.Get().(*[]byte)
		if n > 0 {
			s.w = copy(*s.buf, s.small[:n])
			return nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || s.lingerAt.Load() != 0 {
			return err
		}
		// A deadline from closeWithError raced with ours: go round.
	}
}

// release gives the buffer back; the reader goroutine calls it when it
// exits.
func (s *sockReader) release() {
	if s.buf != nil {
		s.pool.Put(s.buf)
		s.buf = nil
	}
	s.r, s.w = 0, 0
}
