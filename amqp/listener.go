package amqp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// Handler decides on the links peers attach. HandleLink is called once per
// link, on the connection's reader goroutine: while it runs no other
// frame of that connection is processed, so it must be quick. To serve
// the link, start a goroutine that uses req.Sender or req.Receiver.
// Returning an error refuses the link: an *Error is sent as is
// (amqp:not-found, amqp:unauthorized-access...), any other error as
// amqp:internal-error. Handlers must be safe for concurrent use.
type Handler interface {
	HandleLink(req *LinkRequest) error
}

// SessionHandler is implemented by Handlers that also decide on the
// sessions peers begin. HandleSession is called once per session, before
// it is answered, on the connection's reader goroutine, with the same
// constraints as HandleLink. Returning an error refuses the session: the
// begin is answered and the session ended at once with the error's
// condition (an *Error as is, any other error as amqp:internal-error).
// Without a SessionHandler every session is accepted within the limits of
// ListenerOptions.
type SessionHandler interface {
	Handler
	HandleSession(req *SessionRequest) error
}

// SessionRequest describes a session a peer begins.
type SessionRequest struct {
	Conn *Conn
	// Begin is the peer's begin frame: windows, handle-max, capabilities
	// and properties.
	Begin *frame.Begin

	s *Session
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(req *LinkRequest) error

// HandleLink implements Handler.
func (f HandlerFunc) HandleLink(req *LinkRequest) error { return f(req) }

// LinkRequest describes a link a peer attaches.
type LinkRequest struct {
	Conn    *Conn
	Session *Session
	// Attach is the peer's attach frame: name, settle modes, source,
	// target, capabilities and properties.
	Attach *frame.Attach
	// Address is the node the link is for: the target address when the
	// peer sends, the source address when it receives. "" when the peer
	// sends to the anonymous relay (each message carries Properties.To)
	// or asks for a dynamic node.
	Address string
	// Dynamic reports that the peer asks us to create a node; set
	// DynamicAddress to its name (default: a random name).
	Dynamic        bool
	DynamicAddress string

	// Sender is set when the peer receives: Ferry sends on this link.
	Sender *Sender
	// Receiver is set when the peer sends: Ferry receives on this link.
	Receiver *Receiver

	// The handler may set these for our attach.
	Properties          map[Symbol]any
	OfferedCapabilities []Symbol
	// Credit overrides the listener's Credit for a Receiver.
	Credit uint32
	// SndSettleMode and RcvSettleMode, when set, are the settle modes we
	// answer with instead of echoing the peer's: what this end does (a
	// Sender then sends accordingly; the peer may detach if it cannot
	// accept them).
	SndSettleMode *SenderSettleMode
	RcvSettleMode *ReceiverSettleMode
	// Source and Target, when set, replace the terminus we answer with:
	// the source of a Sender (its distribution-mode, default-outcome,
	// outcomes, and the filters actually applied) or the target of a
	// Receiver. By default the peer's terminus is echoed.
	Source *Source
	Target *Target
}

// ConnHandler is implemented by Handlers that decide on each connection
// once its open is exchanged, before any of its sessions: HandleConn runs
// on the connection's goroutine before the reader starts, so no begin or
// attach reaches the Handler first. Returning an error refuses the
// connection: it is closed with the error's condition (an *Error as is,
// any other error as amqp:internal-error), lingering as CloseWithError
// does so the peer reads it.
type ConnHandler interface {
	Handler
	HandleConn(c *Conn) error
}

// pendingAttach is an incoming attach waiting for the Handler, which runs
// after the reader has released the Conn's mutex.
type pendingAttach struct {
	l      *link
	req    *LinkRequest
	refuse *Error // refused without asking the Handler (MaxLinks)
}

// acceptLink sets up a link the peer attaches and queues it for the
// Handler. Called with c.mu held.
func (c *Conn) acceptLink(s *Session, a *frame.Attach) error {
	// A refused link holds its handle until the peer answers our detach;
	// one that attaches on without answering is cut off at twice the limit.
	n := c.links
	if n >= 2*c.cfg.maxLinks {
		return violation(frame.CondResourceLimitExceeded, "%d links attached or refused and not yet detached, twice the %d allowed", n, c.cfg.maxLinks)
	}
	l := newLink(s, a.Name, !a.Role)
	if err := s.addLinkLocked(l); err != nil {
		return sessionViolation{violation(frame.CondResourceLimitExceeded, "%v", err)}
	}
	l.remote = a
	l.remoteHandle = a.Handle
	l.remoteAttached = true
	l.sndSettle, l.rcvSettle = a.SndSettleMode, a.RcvSettleMode
	s.remoteLinks[a.Handle] = l
	req := &LinkRequest{Conn: c, Session: s, Attach: a}
	if a.Role == frame.RoleSender {
		if a.Target != nil {
			t := *a.Target
			l.target = &t
			req.Address, req.Dynamic = t.Address, t.Dynamic
		}
		l.source = a.Source
		req.Receiver = newReceiver(l, c.cfg.credit, false, c.cfg.maxMessageSize)
	} else {
		if a.Source != nil {
			src := *a.Source
			l.source = &src
			req.Address, req.Dynamic = src.Address, src.Dynamic
		}
		l.target = a.Target
		// A receiver's initial-delivery-count is meaningless; Qpid Proton
		// sends 0, so it is ignored rather than refused.
		req.Sender = newSender(l)
	}
	c.pendingAttach = &pendingAttach{l: l, req: req}
	if n >= c.cfg.maxLinks {
		c.pendingAttach.refuse = &Error{Condition: frame.CondResourceLimitExceeded,
			Description: fmt.Sprintf("%d links attached, the most this connection allows", n)}
	}
	return nil
}

// completeAttach runs the Handler for a queued attach and answers it.
// Called by the reader goroutine without c.mu.
func (c *Conn) completeAttach(p *pendingAttach) {
	l, req := p.l, p.req
	var err error
	switch {
	case p.refuse != nil:
		err = p.refuse
	case c.cfg.handler == nil:
		err = &Error{Condition: frame.CondNotAllowed, Description: "this container does not accept links"}
	case l.role == frame.RoleReceiver && l.target == nil, l.role == frame.RoleSender && l.source == nil:
		err = &Error{Condition: frame.CondInvalidField, Description: "attach without terminus"}
	default:
		err = c.cfg.handler.HandleLink(req)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := l.s
	if s.endSent || c.err != nil || c.closeSent {
		return
	}
	a := &frame.Attach{
		Name: l.name, Handle: l.handle, Role: l.role,
		SndSettleMode: l.sndSettle, RcvSettleMode: l.rcvSettle,
		Source: l.source, Target: l.target,
	}
	if err != nil {
		// [part 2, 2.6.3] refuse: attach with a null terminus, then detach
		// with the reason.
		if l.role == frame.RoleReceiver {
			a.Target = nil
		} else {
			a.Source = nil
			a.InitialDeliveryCount = new(uint32)
		}
		_ = c.w.frame(frame.TypeAMQP, s.channel, a)
		l.detachLocked(asError(err), &LinkError{inner: err})
		return
	}
	if req.Dynamic {
		addr := req.DynamicAddress
		if addr == "" {
			addr = randomID("dynamic-")
		}
		if l.role == frame.RoleReceiver {
			l.target.Address = addr
		} else {
			l.source.Address = addr
		}
	}
	a.Properties = req.Properties
	a.OfferedCapabilities = req.OfferedCapabilities
	if req.SndSettleMode != nil {
		l.sndSettle, a.SndSettleMode = *req.SndSettleMode, *req.SndSettleMode
	}
	if req.RcvSettleMode != nil {
		l.rcvSettle, a.RcvSettleMode = *req.RcvSettleMode, *req.RcvSettleMode
	}
	if req.Source != nil {
		l.source, a.Source = req.Source, req.Source
	}
	if req.Target != nil {
		l.target, a.Target = req.Target, req.Target
	}
	if l.role == frame.RoleSender {
		a.InitialDeliveryCount = new(uint32)
	} else {
		a.MaxMessageSize = l.receiver.maxSize
		if req.Credit > 0 && req.Credit != l.receiver.maxCredit {
			l.receiver.maxCredit = req.Credit
			l.receiver.queue.max = queueSize(req.Credit, false)
		}
	}
	l.attachFrame = a
	_ = c.w.frame(frame.TypeAMQP, s.channel, a)
	close(l.attached)
	if l.receiver != nil {
		l.receiver.grantInitialLocked()
	}
}

// Listener accepts AMQP connections and hands the links peers attach to
// a Handler.
type Listener struct {
	ln  net.Listener
	cfg connConfig

	mu      sync.Mutex
	conns   map[*Conn]bool // value: handshake done and reader started
	started int            // conns with value true
	closed  bool
	closing chan struct{}  // closed by Close: ends the accept loop's back-off
	wg      sync.WaitGroup // the accept loop and handshakes in progress
}

// Listen serves AMQP on ln until Close. It takes ownership of ln.
func Listen(ln net.Listener, opts *ListenerOptions) (*Listener, error) {
	if opts == nil || opts.Handler == nil {
		return nil, errors.New("amqp: ListenerOptions.Handler is required")
	}
	for _, m := range opts.SASLMechanisms {
		if m != frame.SASLPlain && m != frame.SASLAnonymous && m != frame.SASLExternal {
			return nil, fmt.Errorf("amqp: ListenerOptions.SASLMechanisms: %q is not PLAIN, ANONYMOUS or EXTERNAL", m)
		}
	}
	if len(opts.SASLMechanisms) > 0 && opts.Authenticate == nil {
		return nil, errors.New("amqp: ListenerOptions.SASLMechanisms needs Authenticate")
	}
	cfg := connConfig{
		server: true, containerID: opts.ContainerID, tlsConfig: opts.TLSConfig,
		authenticate: opts.Authenticate, maxFrameSize: opts.MaxFrameSize, channelMax: opts.ChannelMax,
		idleTimeout: opts.IdleTimeout, offeredCaps: opts.OfferedCapabilities, properties: opts.Properties,
		handshakeTimeout: opts.HandshakeTimeout, session: opts.Session, credit: opts.Credit,
		maxMessageSize: opts.MaxMessageSize, handler: opts.Handler,
		readBufferSize: opts.ReadBufferSize, maxSessions: opts.MaxSessions, maxLinks: opts.MaxLinks, maxConns: opts.MaxConnections,
		closeLinger: opts.CloseLinger, logger: opts.Logger, saslMechanisms: opts.SASLMechanisms,
	}
	cfg.sessionHandler, _ = opts.Handler.(SessionHandler)
	cfg.setDefaults()
	l := &Listener{ln: ln, cfg: cfg, conns: make(map[*Conn]bool), closing: make(chan struct{})}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// acceptLoop accepts connections until Close. An Accept error (most often
// the process out of file descriptors) is logged and retried after a
// back-off, 5 ms doubling to 1 s as in net/http, so that the listener
// recovers once descriptors are free again instead of silently serving
// no one.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.closing:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				// Someone closed the net.Listener under us: it cannot recover.
				l.cfg.logger.Error("amqp: listener closed without Listener.Close; not accepting", "addr", l.ln.Addr(), "err", err)
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.cfg.logger.Warn("amqp: accept", "addr", l.ln.Addr(), "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.closing:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			nc.Close()
			return
		}
		c := newConn(nc, l.cfg)
		c.listener = l
		l.conns[c] = false
		l.wg.Add(1)
		l.mu.Unlock()
		go l.serve(c)
	}
}

// serve runs one connection's handshake; the connection's reader takes
// over afterwards.
func (l *Listener) serve(c *Conn) {
	defer l.wg.Done()
	if err := c.handshake(context.Background(), c.serverStart); err != nil {
		c.nc.Close()
		l.forget(c)
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.nc.Close()
		l.forget(c)
		return
	}
	started := l.started
	l.conns[c] = true
	l.started++
	l.mu.Unlock()
	var refuse error
	if max := l.cfg.maxConns; max > 0 && started >= max {
		refuse = &Error{Condition: frame.CondResourceLimitExceeded,
			Description: fmt.Sprintf("%d connections open, the most this listener allows", started)}
	} else if ch, ok := l.cfg.handler.(ConnHandler); ok {
		refuse = ch.HandleConn(c)
	}
	if refuse != nil {
		// A refused connection no longer counts against MaxConnections
		// while it lingers.
		l.mu.Lock()
		if l.conns[c] {
			l.started--
			l.conns[c] = false
		}
		l.mu.Unlock()
		// Closed before the reader starts: nothing of the peer's is
		// processed; the reader then only lingers.
		c.closeWithError(asError(refuse), &ConnError{inner: refuse})
	}
	c.start()
}

func (l *Listener) forget(c *Conn) {
	l.mu.Lock()
	if l.conns[c] {
		l.started--
	}
	delete(l.conns, c)
	l.mu.Unlock()
}

// Close stops accepting, closes every connection (peers see a close
// without error; connections already closing with an error finish their
// CloseLinger) and waits for the listener's goroutines to finish.
func (l *Listener) Close() error {
	l.mu.Lock()
	if !l.closed {
		close(l.closing)
	}
	l.closed = true
	var conns []*Conn
	for c, started := range l.conns {
		if started {
			conns = append(conns, c)
		} else {
			c.nc.Close() // fails the handshake; serve forgets it
		}
	}
	l.mu.Unlock()
	err := l.ln.Close()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Close()
		}()
	}
	wg.Wait()
	l.wg.Wait()
	return err
}
