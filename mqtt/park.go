package mqtt

import (
	"errors"
	"time"
)

// Parking. Most IoT connections are idle most of the time, and a goroutine
// blocked in Read costs its stack (2 KB at least) and its g for as long as
// the connection lives. So a reader that waited IdlePark for a byte parks
// the connection instead: it hands the socket to the Server's poller (an
// epoll set on Linux), notes when its keep alive expires, and exits. The
// poller (bytes, a hang-up, or an expired keep alive found by its periodic
// sweep) or a closing connection wakes it: wake
// starts a new reader goroutine, which goes on where the old one stopped
// (the reader's buffered bytes and the protocol state are kept).
//
// Only plain TCP connections park (a TLS or WebSocket conn buffers bytes the
// poller cannot see), and only where the platform has a poller.

// DefaultIdlePark is the Server.IdlePark default.
const DefaultIdlePark = 100 * time.Millisecond

// Park states of a Conn.
const (
	running int32 = iota // a reader goroutine runs
	parking              // the reader is handing the connection to the poller
	parked               // no reader: the poller or the timer wakes it
	woken                // woken while parking: the reader goes on
)

// errParked ends a reader goroutine that parked its connection.
var errParked = errors.New("mqtt: connection parked")

func (s *Server) idlePark() time.Duration {
	if s.IdlePark == 0 {
		return DefaultIdlePark
	}
	return max(s.IdlePark, 0)
}

// parker returns the Server's poller, started on first use, or nil when
// connections cannot park (platform, or the Server shut down).
func (s *Server) parker() *poller {
	if p := s.poll.Load(); p != nil {
		return p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown || s.pollErr != nil {
		return nil
	}
	if p := s.poll.Load(); p != nil {
		return p
	}
	p, err := newPoller(s.logger(), s.pollFault)
	if err != nil {
		s.pollErr = err
		s.logger().Warn("mqtt: idle connections cannot park", "err", err)
		return nil
	}
	s.poll.Store(p)
	return p
}

// stopPoller stops the poller once no connection is left to park.
func (s *Server) stopPoller() {
	if p := s.poll.Load(); p != nil {
		p.close()
	}
}

// park hands the idle connection to the poller. It reports false when the
// reader must go on reading itself: parking is not possible, or a wake-up
// came meanwhile. On true the reader goroutine must exit at once.
func (c *Conn) park() bool {
	c.readerG.check()
	p := c.srv.parker()
	if p == nil {
		c.rd.parkAfter = 0 // wait in Read from now on
		return false
	}
	c.rd.idle()
	c.parkState.Store(parking)
	if err := p.arm(c); err != nil {
		c.parkState.Store(running)
		if !errors.Is(err, errPollerClosed) {
			c.srv.logger().Warn("mqtt: cannot park connection", "client", c.clientID, "err", err)
		}
		c.rd.parkAfter = 0
		return false
	}
	// The sweep compares it with the wall clock: no timer per connection.
	var expiry int64
	if c.rd.deadline > 0 {
		expiry = c.rd.kaDeadline
	}
	c.parkExpiry.Store(expiry)
	c.srv.parked.Add(1)
	if !c.parkState.CompareAndSwap(parking, parked) {
		c.srv.parked.Add(-1)
		c.parkState.Store(running) // woken meanwhile
		return false
	}
	return true
}

// wake resumes a parked connection on a new reader goroutine. It is called
// by the poller (bytes, a hang-up, an expired keep alive) and by whoever
// closes the connection; a wake-up that finds a reader running does
// nothing (the reader finds out for itself).
func (c *Conn) wake() {
	for {
		switch c.parkState.Load() {
		case parked:
			if c.parkState.CompareAndSwap(parked, running) {
				c.srv.parked.Add(-1)
				go c.serveLoop()
				return
			}
		case parking:
			if c.parkState.CompareAndSwap(parking, woken) {
				return
			}
		default:
			return
		}
	}
}

// expired reports whether c is parked past its keep alive.
func (c *Conn) expired(now int64) bool {
	e := c.parkExpiry.Load()
	return e != 0 && now >= e && c.parkState.Load() == parked
}

// Parked returns the number of connections parked now: idle, with no
// goroutine of their own.
func (s *Server) Parked() int { return int(s.parked.Load()) }
