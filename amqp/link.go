package amqp

import (
	"context"
	"fmt"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// link is the state shared by Sender and Receiver (part 2, section 2.6).
// Guarded by the Conn's mutex, like its session.
type link struct {
	s            *Session
	name         string
	handle       uint32
	remoteHandle uint32
	role         frame.Role // ours
	source       *frame.Source
	target       *frame.Target
	sndSettle    frame.SenderSettleMode
	rcvSettle    frame.ReceiverSettleMode
	remote       *frame.Attach // the peer's attach
	attachFrame  *frame.Attach // ours

	attached       chan struct{} // closed when the attach exchange succeeded
	detached       chan struct{} // closed when the link is over for the API
	remoteDetached chan struct{} // closed when the peer's detach arrived
	err            error         // why; set before detached is closed
	remoteAttached bool
	detachSent     bool
	refused        bool // the peer's attach had no terminus: a detach follows

	// Flow control (part 2, section 2.6.7).
	deliveryCount uint32
	linkCredit    uint32
	available     uint32
	drain         bool

	sender   *Sender
	receiver *Receiver
}

func newLink(s *Session, name string, role frame.Role) *link {
	if name == "" {
		name = randomID("ferry-link-")
	}
	return &link{
		s: s, name: name, role: role,
		sndSettle:      frame.SenderSettleMixed,
		attached:       make(chan struct{}),
		detached:       make(chan struct{}),
		remoteDetached: make(chan struct{}),
	}
}

// attachLocked allocates a handle and sends our attach, for links we
// initiate.
func (l *link) attachLocked(a *frame.Attach) error {
	s := l.s
	select {
	case <-s.ended:
		return s.err
	default:
	}
	if s.endSent {
		return &SessionError{inner: ErrClosed}
	}
	if _, dup := s.pending[l.name]; dup {
		return &LinkError{inner: errDupName}
	}
	if n := s.c.links; n >= s.c.cfg.maxLinks {
		return &LinkError{inner: fmt.Errorf("%w: %d links attached (MaxLinks)", ErrLimit, n)}
	}
	if err := s.addLinkLocked(l); err != nil {
		return &LinkError{inner: err}
	}
	a.Handle = l.handle
	a.Name = l.name
	l.attachFrame = a
	if s.pending == nil {
		s.pending = make(map[string]*link)
	}
	s.pending[l.name] = l
	return s.c.w.frame(frame.TypeAMQP, s.channel, a)
}

// doneErr is why the link ended, or nil while it is attached.
func (l *link) doneErr() error {
	select {
	case <-l.detached:
		l.s.c.mu.Lock()
		defer l.s.c.mu.Unlock()
		return l.err
	default:
		return nil
	}
}

// waitAttached waits for the peer's answer to our attach.
func (l *link) waitAttached(ctx context.Context) error {
	select {
	case <-l.attached:
		return nil
	case <-l.detached:
		return l.err
	case <-ctx.Done():
		l.s.c.mu.Lock()
		l.detachLocked(nil, &LinkError{inner: ctx.Err()})
		l.s.c.mu.Unlock()
		return ctx.Err()
	}
}

// handleAttach processes the peer's answer to our attach.
func (l *link) handleAttach(a *frame.Attach) {
	l.remote = a
	l.remoteHandle = a.Handle
	l.remoteAttached = true
	l.s.remoteLinks[a.Handle] = l
	// [part 2, 2.6.3] a null terminus means the peer refused; its detach,
	// with the reason, follows.
	if (l.role == frame.RoleSender && a.Target == nil) || (l.role == frame.RoleReceiver && a.Source == nil) {
		l.refused = true
		return
	}
	if l.role == frame.RoleSender {
		l.target = a.Target // names the dynamic node, if we asked for one
		l.rcvSettle = a.RcvSettleMode
	} else {
		l.source = a.Source
		l.sndSettle = a.SndSettleMode
		if a.InitialDeliveryCount != nil {
			l.deliveryCount = *a.InitialDeliveryCount
		}
	}
	close(l.attached)
	if l.receiver != nil {
		l.receiver.grantInitialLocked()
	}
}

// handleDetach processes the peer's detach.
func (l *link) handleDetach(d *frame.Detach) {
	s := l.s
	close(l.remoteDetached)
	delete(s.remoteLinks, l.remoteHandle)
	err := &LinkError{RemoteErr: d.Error, Closed: d.Closed}
	if !l.detachSent {
		l.detachSent = true
		_ = s.c.w.frame(frame.TypeAMQP, s.channel, &frame.Detach{Handle: l.handle, Closed: d.Closed})
	}
	l.failLocked(err)
	s.removeLinkLocked(l)
}

// detachLocked detaches the link from our side, with e as the condition
// when we detach because of an error. The local handle stays reserved
// until the peer's detach arrives.
func (l *link) detachLocked(e *Error, err error) {
	if !l.detachSent {
		l.detachSent = true
		_ = l.s.c.w.frame(frame.TypeAMQP, l.s.channel, &frame.Detach{Handle: l.handle, Closed: true, Error: e})
	}
	l.failLocked(err)
	select {
	case <-l.remoteDetached:
		l.s.removeLinkLocked(l)
	default:
	}
}

// failLocked ends the link for the API: blocked calls return err.
func (l *link) failLocked(err error) {
	select {
	case <-l.detached:
		return
	default:
	}
	// A link we gave up on before the peer answered stays pending, so that
	// the peer's late attach is matched to it (and its detach then ends
	// it) instead of looking like a new link.
	if l.remoteAttached || !l.detachSent {
		delete(l.s.pending, l.name)
	}
	l.err = err
	close(l.detached)
	if l.sender != nil {
		// Unsettled deliveries of a detached link can no longer settle
		// (no link recovery); their Send calls return err.
		for id, od := range l.s.unsettled {
			if od.l == l {
				delete(l.s.unsettled, id)
				od.finish(nil) // TrySend callbacks hear l.err
			}
		}
		if f := l.sender.onDetach; f != nil {
			l.s.c.notifyLocked(f) // after those outcomes
		}
	}
	if l.receiver != nil {
		l.receiver.failLocked()
	}
}

// close detaches the link, with e as the detach's error when not nil,
// and waits for the peer's detach or ctx.
func (l *link) close(ctx context.Context, e *Error) error {
	c := l.s.c
	// A link the Handler accepted is answered after HandleLink returns: a
	// close called meanwhile (from a goroutine the Handler started) must
	// not put the detach on the wire before the attach, which the peer
	// would take for a detach of a link it does not know.
	select {
	case <-l.attached:
	case <-l.detached:
	case <-c.done:
	case <-l.s.ended:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	select {
	case <-l.detached:
		err := l.err
		c.mu.Unlock()
		if le, ok := err.(*LinkError); ok && le.RemoteErr == nil {
			return nil
		}
		return err
	default:
	}
	l.detachLocked(e, &LinkError{inner: ErrClosed})
	c.mu.Unlock()
	select {
	case <-l.remoteDetached:
	case <-c.done:
	case <-l.s.ended:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// attach applies the settle modes asked for (nil: the attach's own), sends
// the attach of a link being opened and waits for the peer's.
func (l *link) attach(ctx context.Context, a *frame.Attach, snd *frame.SenderSettleMode, rcv *frame.ReceiverSettleMode) error {
	if snd != nil {
		a.SndSettleMode = *snd
	}
	if rcv != nil {
		a.RcvSettleMode = *rcv
	}
	l.sndSettle, l.rcvSettle = a.SndSettleMode, a.RcvSettleMode
	l.s.c.mu.Lock()
	err := l.attachLocked(a)
	l.s.c.mu.Unlock()
	if err != nil {
		return err
	}
	return l.waitAttached(ctx)
}
