package amqp

import (
	"context"
	"fmt"
	"math"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// outgoingWindow is the outgoing-window we announce. We never hold back
// transfers for it, so it is as large as a signed 32-bit peer can handle.
const outgoingWindow = math.MaxInt32

// Session is an AMQP session (part 2, section 2.5): a pair of channels
// with flow-control windows, carrying links. All its fields are guarded
// by the Conn's mutex.
type Session struct {
	c             *Conn
	opts          SessionOptions
	channel       uint16 // local
	remoteChannel uint16
	begun         chan struct{} // closed when the peer's begin arrives
	ended         chan struct{} // closed when the session is over
	err           error         // why; set before ended is closed
	remoteBegun   bool
	endSent       bool

	// Outgoing transfers (part 2, section 2.5.6).
	nextOutgoingID       uint32
	remoteIncomingWindow uint32
	remoteWindowSize     uint32        // the largest incoming-window the peer announced
	windowCh             chan struct{} // made by a waiting Send, closed when the window opens
	windowWaiters        []*Sender     // TrySend found no window: woken by the next flow that opens it
	nextDeliveryID       uint32
	unsettled            map[uint32]*outDelivery // our unsettled deliveries, by delivery id

	// Incoming transfers.
	nextIncomingID       uint32
	incomingRemaining    uint32 // transfers the peer may still send
	remoteOutgoingWindow uint32
	remoteHandleMax      uint32

	links       map[uint32]*link // by local handle
	handles     idAlloc          // local handles
	remoteLinks map[uint32]*link // by remote handle
	pending     map[string]*link // attaches we sent, by link name
}

func newSession(c *Conn, ch uint16, opts SessionOptions) *Session {
	return &Session{
		c: c, opts: opts, channel: ch,
		begun:             make(chan struct{}),
		ended:             make(chan struct{}),
		incomingRemaining: opts.IncomingWindow,
		links:             make(map[uint32]*link),
		remoteLinks:       make(map[uint32]*link),
	}
}

func (s *Session) beginFrame(remote *uint16) *frame.Begin {
	return &frame.Begin{
		RemoteChannel:  remote,
		NextOutgoingID: s.nextOutgoingID,
		IncomingWindow: s.opts.IncomingWindow,
		OutgoingWindow: outgoingWindow,
		HandleMax:      s.opts.HandleMax,
	}
}

func (s *Session) remoteBegin(ch uint16, b *frame.Begin) {
	s.remoteChannel = ch
	s.remoteBegun = true
	s.c.remoteSessions[ch] = s
	s.nextIncomingID = b.NextOutgoingID
	s.remoteIncomingWindow = b.IncomingWindow
	s.remoteWindowSize = b.IncomingWindow
	s.remoteOutgoingWindow = b.OutgoingWindow
	s.remoteHandleMax = b.HandleMax
	s.handles.limit = min(b.HandleMax, s.opts.HandleMax)
}

// Conn returns the session's connection.
func (s *Session) Conn() *Conn { return s.c }

// Done is closed when the session has ended; Err then says why.
func (s *Session) Done() <-chan struct{} { return s.ended }

// Err returns why the session ended (a *SessionError, or the *ConnError
// that ended its connection), or nil while it is open. A peer refuses a
// session by answering begin and ending it at once, so NewSession may
// succeed on a session that Err soon reports as refused.
func (s *Session) Err() error {
	select {
	case <-s.ended:
		s.c.mu.Lock()
		defer s.c.mu.Unlock()
		return s.err
	default:
		return nil
	}
}

// End ends the session and waits for the peer's end, or ctx.
func (s *Session) End(ctx context.Context) error {
	s.c.mu.Lock()
	s.endLocked(nil, &SessionError{inner: ErrClosed})
	s.c.mu.Unlock()
	select {
	case <-s.ended:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-s.c.done:
		return s.c.err
	default:
		return nil
	}
}

// endLocked sends end (with e, when we end it because of an error) and
// fails the session's links with err. The session stays mapped until the
// peer's end arrives, so that frames still in flight are recognised and
// ignored.
func (s *Session) endLocked(e *Error, err error) {
	if s.endSent {
		return
	}
	s.endSent = true
	_ = s.c.w.frame(frame.TypeAMQP, s.channel, &frame.End{Error: e})
	s.failLinksLocked(err)
	if s.err == nil {
		s.err = err
	}
}

func (s *Session) failLinksLocked(err error) {
	for _, l := range s.links {
		l.failLocked(err)
	}
	for _, l := range s.pending {
		l.failLocked(err)
	}
	for id, od := range s.unsettled {
		delete(s.unsettled, id)
		od.finish(nil)
	}
}

// failLocked ends the session locally because the connection ended.
func (s *Session) failLocked(err error) {
	s.failLinksLocked(err)
	s.finishLocked(err)
}

// finishLocked marks the session over and unmaps it.
func (s *Session) finishLocked(err error) {
	select {
	case <-s.ended:
		return
	default:
	}
	if s.err == nil {
		s.err = err
	}
	delete(s.c.sessions, s.channel)
	s.c.channels.put(uint32(s.channel))
	s.c.links -= len(s.links)
	clear(s.links)
	if s.remoteBegun {
		delete(s.c.remoteSessions, s.remoteChannel)
	}
	close(s.ended)
}

// handle processes a frame for this session, from the reader goroutine
// with the Conn's mutex held.
func (s *Session) handle(fb frame.Body) error {
	if e, ok := fb.(*frame.End); ok {
		if !s.endSent {
			s.endSent = true
			_ = s.c.w.frame(frame.TypeAMQP, s.channel, &frame.End{})
			err := &SessionError{RemoteErr: e.Error}
			s.failLinksLocked(err)
			s.finishLocked(err)
			return nil
		}
		s.finishLocked(&SessionError{RemoteErr: e.Error})
		return nil
	}
	if s.endSent {
		return nil // ending: the peer may not have seen our end yet
	}
	switch b := fb.(type) {
	case *frame.Attach:
		return s.handleAttach(b)
	case *frame.Flow:
		return s.handleFlow(b)
	case *frame.Transfer:
		return s.handleTransfer(b)
	case *frame.Disposition:
		return s.handleDisposition(b)
	case *frame.Detach:
		l := s.remoteLinks[b.Handle]
		if l == nil {
			return sessionViolation{violation(frame.CondUnattachedHandle, "detach of handle %d", b.Handle)}
		}
		l.handleDetach(b)
		return nil
	}
	return violation(frame.CondNotAllowed, "unexpected %T on a session", fb)
}

func (s *Session) handleFlow(f *frame.Flow) error {
	// [part 2, 2.5.6] remote-incoming-window = next-incoming-id +
	// incoming-window - next-outgoing-id, with the initial outgoing id
	// (0 for us) when the peer has not seen our begin yet.
	var nextIn uint32
	if f.NextIncomingID != nil {
		nextIn = *f.NextIncomingID
	}
	s.remoteIncomingWindow = nextIn + f.IncomingWindow - s.nextOutgoingID
	// A window may shrink to 0 for a while (Proton does when its buffer
	// fills); the largest one says what can ever fit.
	s.remoteWindowSize = max(s.remoteWindowSize, f.IncomingWindow)
	s.remoteOutgoingWindow = f.OutgoingWindow
	if s.remoteIncomingWindow > 0 {
		if s.windowCh != nil {
			close(s.windowCh)
			s.windowCh = nil
		}
		// Only the senders a TrySend found without window, not every link.
		waiters := s.windowWaiters
		s.windowWaiters = nil
		for _, snd := range waiters {
			snd.windowOpenedLocked()
		}
	}
	if f.Handle == nil {
		if f.Echo {
			s.sendFlowLocked(nil)
		}
		return nil
	}
	l := s.remoteLinks[*f.Handle]
	if l == nil {
		return sessionViolation{violation(frame.CondUnattachedHandle, "flow for handle %d", *f.Handle)}
	}
	if l.sender != nil {
		l.sender.handleFlow(f)
	} else if l.receiver != nil {
		l.receiver.handleFlow(f)
	}
	return nil
}

// sendFlowLocked sends a flow with the session's state and, with l, the
// link's.
func (s *Session) sendFlowLocked(l *link) {
	s.incomingRemaining = s.opts.IncomingWindow
	next := s.nextIncomingID
	f := &frame.Flow{
		NextIncomingID: &next,
		IncomingWindow: s.incomingRemaining,
		NextOutgoingID: s.nextOutgoingID,
		OutgoingWindow: outgoingWindow,
	}
	if l != nil {
		h, dc, cr := l.handle, l.deliveryCount, l.linkCredit
		f.Handle, f.DeliveryCount, f.LinkCredit, f.Drain = &h, &dc, &cr, l.drain
	}
	if traceOutgoing != nil {
		traceOutgoing(s.channel, f)
	}
	_ = s.c.w.frame(frame.TypeAMQP, s.channel, f)
}

// traceOutgoing, when set (by tests), sees outgoing flows.
var traceOutgoing func(ch uint16, fb frame.Body)

func (s *Session) handleTransfer(t *frame.Transfer) error {
	if s.incomingRemaining == 0 {
		return sessionViolation{violation(frame.CondWindowViolation, "transfer beyond the incoming window of %d", s.opts.IncomingWindow)}
	}
	s.incomingRemaining--
	s.nextIncomingID++
	l := s.remoteLinks[t.Handle]
	if l == nil {
		return sessionViolation{violation(frame.CondUnattachedHandle, "transfer on handle %d", t.Handle)}
	}
	if l.receiver == nil {
		return linkViolation{violation(frame.CondNotAllowed, "transfer to a sending link"), l}
	}
	if err := l.receiver.handleTransfer(t); err != nil {
		return err
	}
	// Replenish the window once half is used: the receivers' queues,
	// bounded by link credit, are what limit memory, not the window. A
	// window of 1 is replenished only with the receivers' credit flows.
	if s.opts.IncomingWindow > 1 && s.incomingRemaining <= s.opts.IncomingWindow/2 {
		s.sendFlowLocked(nil)
	}
	return nil
}

func (s *Session) handleDisposition(d *frame.Disposition) error {
	last := d.First
	if d.Last != nil {
		last = *d.Last
	}
	if last-d.First > 1<<30 {
		return sessionViolation{violation(frame.CondInvalidField, "disposition range %d..%d", d.First, last)}
	}
	if d.Role == frame.RoleReceiver {
		return s.outgoingDisposition(d, last)
	}
	// The peer (sender) settles deliveries we received in mode second.
	if !d.Settled {
		return nil
	}
	for _, l := range s.links {
		if l.receiver != nil {
			l.receiver.settledBySender(d.First, last)
		}
	}
	return nil
}

// outgoingDisposition applies a receiver's disposition to our unsettled
// deliveries in first..last.
func (s *Session) outgoingDisposition(d *frame.Disposition, last uint32) error {
	settleBack := false
	visit := func(id uint32, od *outDelivery) {
		if d.Settled {
			delete(s.unsettled, id)
			od.finish(d.State)
			return
		}
		// [part 2, 2.8.3] in rcv-settle-mode second the receiver sends
		// its outcome unsettled and the sender settles first.
		if d.State != nil && isOutcome(d.State) {
			delete(s.unsettled, id)
			od.finish(d.State)
			settleBack = true
		}
	}
	if uint64(last-d.First)+1 > uint64(len(s.unsettled)) {
		for id, od := range s.unsettled {
			if id-d.First <= last-d.First {
				visit(id, od)
			}
		}
	} else {
		for id := d.First; ; id++ {
			if od, ok := s.unsettled[id]; ok {
				visit(id, od)
			}
			if id == last {
				break
			}
		}
	}
	if settleBack {
		l := last
		_ = s.c.w.frame(frame.TypeAMQP, s.channel, &frame.Disposition{
			Role: frame.RoleSender, First: d.First, Last: &l, Settled: true, State: d.State})
	}
	return nil
}

func isOutcome(s frame.DeliveryState) bool {
	_, received := s.(*frame.Received)
	return !received
}

// addLinkLocked gives l a local handle, or fails with an error wrapping
// ErrLimit when the session has none left.
func (s *Session) addLinkLocked(l *link) error {
	h, ok := s.handles.get()
	if !ok {
		return fmt.Errorf("%w: all %d link handles of the session in use", ErrLimit, uint64(s.handles.limit)+1)
	}
	l.handle = h
	s.links[h] = l
	s.c.links++
	return nil
}

// removeLinkLocked releases l's local handle, once.
func (s *Session) removeLinkLocked(l *link) {
	if s.links[l.handle] != l {
		return
	}
	delete(s.links, l.handle)
	s.handles.put(l.handle)
	s.c.links--
}

func (s *Session) handleAttach(a *frame.Attach) error {
	if a.Handle > s.opts.HandleMax {
		return sessionViolation{violation(frame.CondResourceLimitExceeded, "attach with handle %d above handle-max %d", a.Handle, s.opts.HandleMax)}
	}
	if _, used := s.remoteLinks[a.Handle]; used {
		return sessionViolation{violation(frame.CondHandleInUse, "attach with handle %d, already in use", a.Handle)}
	}
	if l := s.pending[a.Name]; l != nil && l.role != a.Role {
		delete(s.pending, a.Name)
		if l.detachSent {
			// We gave up waiting (ctx); our detach is on its way.
			l.remote, l.remoteHandle, l.remoteAttached = a, a.Handle, true
			s.remoteLinks[a.Handle] = l
			return nil
		}
		l.handleAttach(a)
		return nil
	}
	return s.c.acceptLink(s, a)
}
