package mqtt

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// poller watches parked connections with one epoll set. Each socket is
// registered once (EPOLLONESHOT) under a connection number, not its fd, so
// that a stale event can never wake the wrong connection; parking again
// re-arms it.
type poller struct {
	epfd  int
	wakeR int // read end of the pipe that stops run
	wakeW int
	log   *slog.Logger
	fault func() error // Server.pollFault
	done  chan struct{}
	// life guards the epoll set: epoll_ctl holds it shared. closed is set
	// under it held exclusively, by close or by a failing run, so that no
	// call reaches the descriptors once they may be released (and reused).
	life   sync.RWMutex
	closed bool
	mu     sync.Mutex // guards conns and nextID
	conns  map[uint64]*Conn
	nextID uint64
}

var errPollerClosed = errors.New("mqtt: poller closed")

// stopID is the event number of the stop pipe.
const stopID = 0

const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

func newPoller(log *slog.Logger, fault func() error) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: stopID}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fds[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	p := &poller{epfd: epfd, wakeR: fds[0], wakeW: fds[1], log: log, fault: fault,
		conns: make(map[uint64]*Conn), done: make(chan struct{})}
	go p.run()
	return p, nil
}

// parkable reports whether nc can be watched by the poller.
func parkable(nc net.Conn) bool {
	_, ok := nc.(*net.TCPConn)
	return ok
}

// arm registers c's socket (first park) or re-arms it.
func (p *poller) arm(c *Conn) error {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return errors.New("not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	p.life.RLock()
	defer p.life.RUnlock()
	if p.closed {
		return errPollerClosed
	}
	op := syscall.EPOLL_CTL_MOD
	if c.parkID == 0 {
		p.mu.Lock()
		p.nextID++
		c.parkID = p.nextID
		p.conns[c.parkID] = c
		p.mu.Unlock()
		op = syscall.EPOLL_CTL_ADD
	}
	ev := syscall.EpollEvent{Events: pollEvents, Fd: int32(c.parkID), Pad: int32(c.parkID >> 32)}
	// Inside Control the descriptor cannot be closed and reused.
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("epoll_ctl: %w", cerr)
	}
	return nil
}

// forget removes c, which is ending, from the poller. It runs on c's
// reader before the socket is closed.
func (p *poller) forget(c *Conn) {
	if c.parkID == 0 {
		return
	}
	p.mu.Lock()
	delete(p.conns, c.parkID)
	p.mu.Unlock()
	c.parkID = 0
	p.life.RLock()
	defer p.life.RUnlock()
	if p.closed {
		return
	}
	if tc, ok := c.nc.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) {
				syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
			})
		}
	}
}

// sweepEvery is the period of the keep-alive sweep over parked
// connections: a keep alive expires up to this much late.
const sweepEvery = 500 * time.Millisecond

// run waits for events until close. If epoll_wait fails, the poller
// cannot wake anybody any more: it closes itself, so that connections stop
// parking (their readers wait in Read instead), and wakes the parked ones.
func (p *poller) run() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 256)
	nextSweep := time.Now().Add(sweepEvery)
	for {
		wait := time.Until(nextSweep)
		if wait <= 0 {
			p.sweep()
			nextSweep = time.Now().Add(sweepEvery)
			wait = sweepEvery
		}
		n, err := syscall.EpollWait(p.epfd, events, int(wait/time.Millisecond)+1)
		if err == nil && p.fault != nil {
			if ferr := p.fault(); ferr != nil {
				n, err = 0, ferr
			}
		}
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			p.log.Error("mqtt: epoll_wait failed; idle connections no longer park", "err", err)
			p.fail()
			return
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == stopID {
				return
			}
			p.mu.Lock()
			c := p.conns[id]
			p.mu.Unlock()
			if c != nil {
				c.wake()
			}
		}
	}
}

// sweep wakes the parked connections whose keep alive expired: their new
// reader finds out and closes them.
func (p *poller) sweep() {
	now := time.Now().UnixNano()
	var due []*Conn
	p.mu.Lock()
	for _, c := range p.conns {
		if c.expired(now) {
			due = append(due, c)
		}
	}
	p.mu.Unlock()
	for _, c := range due {
		c.wake()
	}
}

// close stops run and releases the epoll set. Connections still parked
// are woken: their readers wait in Read from then on.
func (p *poller) close() {
	p.life.Lock()
	if p.closed {
		// Closed already, or run failed and released everything itself.
		p.life.Unlock()
		<-p.done
		return
	}
	p.closed = true
	syscall.Write(p.wakeW, []byte{0})
	p.life.Unlock()
	<-p.done
	p.release()
	p.wakeAll()
}

// fail is close for run after epoll_wait failed. It releases the epoll set
// unless close got there first (close then waits for run and releases it).
func (p *poller) fail() {
	p.life.Lock()
	owner := !p.closed
	p.closed = true
	p.life.Unlock()
	if owner {
		p.release()
		p.wakeAll()
	}
}

// release closes the descriptors. Only the one who set closed calls it,
// once run is done with them.
func (p *poller) release() {
	syscall.Close(p.epfd)
	syscall.Close(p.wakeR)
	syscall.Close(p.wakeW)
}

// wakeAll wakes the connections still parked once the poller is closed.
func (p *poller) wakeAll() {
	p.mu.Lock()
	conns := make([]*Conn, 0, len(p.conns))
	for _, c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.wake()
	}
}
