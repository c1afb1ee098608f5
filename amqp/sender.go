package amqp

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// Message is an AMQP message.
type Message = frame.Message

// Sender sends messages on a link. Its methods are safe for concurrent use.
type Sender struct {
	l        *link
	creditCh chan struct{} // made by a waiter, closed when credit arrives
	waiting  int           // Send calls waiting for credit or window
	nextTag  uint64
	ready    func() // OnReady's function
	blocked  bool   // a TrySend found no credit or window: call ready when they come
	roomWait bool   // roomFunc is registered with the writer
	onDetach func() // OnDetach's function
}

func newSender(l *link) *Sender {
	snd := &Sender{l: l}
	l.sender = snd
	return snd
}

// NewSender attaches a sending link to target ("" asks for the anonymous
// relay: each message names its address in Properties.To). opts may be nil.
func (s *Session) NewSender(ctx context.Context, target string, opts *SenderOptions) (*Sender, error) {
	if opts == nil {
		opts = &SenderOptions{}
	}
	l := newLink(s, opts.Name, frame.RoleSender)
	snd := newSender(l)
	a := &frame.Attach{
		Role:                 frame.RoleSender,
		SndSettleMode:        frame.SenderSettleMixed,
		Target:               &frame.Target{Address: target, Dynamic: opts.DynamicTarget, Capabilities: opts.TargetCapabilities, Durable: opts.TargetDurability},
		Source:               &frame.Source{Address: opts.SourceAddress},
		InitialDeliveryCount: new(uint32),
		OfferedCapabilities:  opts.OfferedCapabilities,
		DesiredCapabilities:  opts.DesiredCapabilities,
		Properties:           opts.Properties,
	}
	if opts.DynamicTarget {
		a.Target.Address = ""
	}
	l.target = a.Target
	if err := l.attach(ctx, a, opts.SettleMode, opts.ReceiverSettleMode); err != nil {
		return nil, err
	}
	return snd, nil
}

// Name returns the link name.
func (snd *Sender) Name() string { return snd.l.name }

// Address returns the target address: the one asked for, or the name the
// peer gave a dynamic node.
func (snd *Sender) Address() string {
	if snd.l.target == nil {
		return ""
	}
	return snd.l.target.Address
}

// RemoteAttach returns the peer's attach.
func (snd *Sender) RemoteAttach() *frame.Attach { return snd.l.remote }

// Session returns the link's session.
func (snd *Sender) Session() *Session { return snd.l.s }

// Done is closed when the link is detached.
func (snd *Sender) Done() <-chan struct{} { return snd.l.detached }

// Err returns why the link ended (a *LinkError: detached by us or by the
// peer, with the peer's error if it gave one; or the error that ended its
// session or connection), or nil while it is attached.
func (snd *Sender) Err() error { return snd.l.doneErr() }

// Credit is the number of messages the receiver lets us send now (its
// link credit as we know it), so that a server can release or hold back
// what a receiver without credit cannot take instead of blocking in Send.
func (snd *Sender) Credit() uint32 {
	snd.l.s.c.mu.Lock()
	defer snd.l.s.c.mu.Unlock()
	return snd.l.linkCredit
}

// CreditAvailable returns a channel that is closed once the sender has
// credit: at once when it has some now, else when a flow from the receiver
// grants it. Call it again after each wake-up; the credit may be used up
// by another Send meanwhile.
func (snd *Sender) CreditAvailable() <-chan struct{} {
	snd.l.s.c.mu.Lock()
	defer snd.l.s.c.mu.Unlock()
	if snd.l.linkCredit > 0 {
		return closedChan
	}
	if snd.creditCh == nil {
		snd.creditCh = make(chan struct{})
	}
	return snd.creditCh
}

// closedChan is a channel that is always closed.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Close detaches the link (closed=true) and waits for the peer's detach.
func (snd *Sender) Close(ctx context.Context) error { return snd.l.close(ctx, nil) }

// CloseWithError is Close with a condition for the peer: a server that
// accepted a link and finds out later that it cannot serve it (a check
// too slow for HandleLink) detaches it saying why.
func (snd *Sender) CloseWithError(ctx context.Context, e *Error) error {
	return snd.l.close(ctx, e)
}

// SendOptions modifies one Send.
type SendOptions struct {
	// Settled sends the message pre-settled (at most once) on a link in
	// mixed mode. On a link in settled mode every message is settled.
	Settled bool
	// MessageFormat is the transfer's message-format. Default 0.
	MessageFormat uint32
}

// outDelivery is an unsettled delivery waiting for its outcome: a Send
// waits on done, a TrySend's callback (cb) is queued on the notifier.
// Called with the Conn's mutex held.
type outDelivery struct {
	l     *link
	done  chan struct{}
	state frame.DeliveryState
	cb    func(error)
}

func (od *outDelivery) finish(state frame.DeliveryState) {
	od.state = state
	if od.done != nil {
		close(od.done)
	}
	if od.cb != nil {
		cb, err := od.cb, outcomeErr(state, od.l.err)
		od.l.s.c.notifyLocked(func() { cb(err) })
	}
}

// outcomeErr is what Send returns for an outcome: nil for accepted, the
// link's error when it ended before an outcome, *OutcomeError otherwise.
func outcomeErr(state frame.DeliveryState, linkErr error) error {
	switch state.(type) {
	case *frame.Accepted:
		return nil
	case nil:
		return linkErr // settled without an outcome is the receiver's choice: nil
	}
	return &OutcomeError{State: state}
}

var payloadPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Send sends msg and, unless it is sent settled, waits for its outcome:
// nil when accepted, *OutcomeError for any other outcome. It blocks while
// the link has no credit or the session no window. opts may be nil.
func (snd *Sender) Send(ctx context.Context, msg *Message, opts *SendOptions) error {
	l := snd.l
	s := l.s
	c := s.c
	bp := payloadPool.Get().(*[]byte)
	defer payloadPool.Put(bp)
	payload, err := msg.AppendTo((*bp)[:0])
	*bp = payload
	if err != nil {
		return fmt.Errorf("amqp: encoding message: %w", err)
	}
	if err := c.w.waitRoom(ctx, l.detached); err != nil {
		return snd.linkErr(err)
	}
	settled := l.sndSettle == frame.SenderSettleSettled ||
		(opts != nil && opts.Settled && l.sndSettle == frame.SenderSettleMixed)

	c.mu.Lock()
	if max := l.remoteMaxMessageSize(); max > 0 && uint64(len(payload)) > max {
		c.mu.Unlock()
		return &LinkError{inner: fmt.Errorf("amqp: message of %d bytes exceeds the peer's max-message-size %d", len(payload), max)}
	}
	perFrame := int(c.peerMax) - frame.HeaderSize - transferOverhead
	frames := max(1, (len(payload)+perFrame-1)/perFrame)
	for {
		select {
		case <-l.detached:
			err := l.err
			c.mu.Unlock()
			return err
		default:
		}
		// A message goes out whole, so it needs window for all its frames.
		// One larger than the peer's whole window could never go (with
		// 512-byte frames and go-amqp's 5000-frame window that is 2.5 MB).
		if uint64(frames) > uint64(s.remoteWindowSize) {
			c.mu.Unlock()
			return &LinkError{inner: fmt.Errorf("amqp: message needs %d frames, more than the peer's session window of %d", frames, s.remoteWindowSize)}
		}
		if l.linkCredit > 0 && s.remoteIncomingWindow >= uint32(frames) {
			break
		}
		if snd.creditCh == nil {
			snd.creditCh = make(chan struct{})
		}
		if s.windowCh == nil {
			s.windowCh = make(chan struct{})
		}
		creditCh, windowCh := snd.creditCh, s.windowCh
		snd.waiting++
		c.mu.Unlock()
		select {
		case <-creditCh:
		case <-windowCh:
		case <-l.detached:
		case <-ctx.Done():
		}
		c.mu.Lock()
		snd.waiting--
		if ctx.Err() != nil {
			snd.completeDrainLocked()
			c.mu.Unlock()
			return ctx.Err()
		}
	}
	var od *outDelivery
	if !settled {
		od = &outDelivery{l: l, done: make(chan struct{})}
	}
	err = snd.transferLocked(payload, perFrame, od, opts)
	snd.completeDrainLocked()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if od == nil {
		return nil
	}
	select {
	case <-od.done:
	case <-l.detached:
		return l.err
	case <-ctx.Done():
		return ctx.Err()
	}
	if od.state == nil {
		return snd.l.doneErr() // nil: settled without an outcome
	}
	return outcomeErr(od.state, nil)
}

// transferLocked sends one delivery that has credit and window, unsettled
// when od is set. Called with the Conn's mutex held.
func (snd *Sender) transferLocked(payload []byte, perFrame int, od *outDelivery, opts *SendOptions) error {
	l := snd.l
	s := l.s
	id := s.nextDeliveryID
	s.nextDeliveryID++
	l.linkCredit--
	l.deliveryCount++
	var tag [8]byte
	binary.BigEndian.PutUint64(tag[:], snd.nextTag)
	snd.nextTag++
	if od != nil {
		if s.unsettled == nil {
			s.unsettled = make(map[uint32]*outDelivery)
		}
		s.unsettled[id] = od
	}
	format := uint32(0)
	if opts != nil {
		format = opts.MessageFormat
	}
	t := frame.Transfer{Handle: l.handle, DeliveryID: &id, DeliveryTag: tag[:], MessageFormat: &format, Settled: od == nil}
	if err := snd.writeTransfer(&t, payload, perFrame); err != nil {
		if od != nil {
			delete(s.unsettled, id)
		}
		return &ConnError{inner: err}
	}
	return nil
}

// TrySend sends msg now if it can without waiting: the link has credit,
// the session window has room and the connection's write queue is below
// its bound. Otherwise it sends nothing and reports false; the function
// given to OnReady is called when sending may succeed again. It never
// blocks, so a router can offer a message and keep it when the receiver
// cannot take it.
//
// Messages go out in the order of the TrySend (and Send) calls that sent
// them. For a message sent unsettled, done (if not nil) is called once
// with its outcome, as Send would return it: nil for accepted, an
// *OutcomeError for rejected, released or modified, the link's error when
// the link ends first. For a settled message, done is called with nil. It
// runs on a goroutine of the connection, after earlier outcomes of the
// same connection, without any lock of the engine held: it may call
// TrySend, but it must not block for long, since later outcomes wait.
func (snd *Sender) TrySend(msg *Message, opts *SendOptions, done func(error)) (bool, error) {
	bp := payloadPool.Get().(*[]byte)
	defer payloadPool.Put(bp)
	payload, err := msg.AppendTo((*bp)[:0])
	*bp = payload
	if err != nil {
		return false, fmt.Errorf("amqp: encoding message: %w", err)
	}
	return snd.trySend(payload, opts, done)
}

// TrySendEncoded is TrySend for a message already in its encoded form
// (the sections as a peer sent them, Delivery.Payload): a forwarder sends
// it on without decoding and encoding it again.
func (snd *Sender) TrySendEncoded(payload []byte, opts *SendOptions, done func(error)) (bool, error) {
	return snd.trySend(payload, opts, done)
}

func (snd *Sender) trySend(payload []byte, opts *SendOptions, done func(error)) (bool, error) {
	l := snd.l
	s := l.s
	c := s.c
	settled := l.sndSettle == frame.SenderSettleSettled ||
		(opts != nil && opts.Settled && l.sndSettle == frame.SenderSettleMixed)
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-l.detached:
		return false, l.err
	default:
	}
	if max := l.remoteMaxMessageSize(); max > 0 && uint64(len(payload)) > max {
		return false, &LinkError{inner: fmt.Errorf("amqp: message of %d bytes exceeds the peer's max-message-size %d", len(payload), max)}
	}
	perFrame := int(c.peerMax) - frame.HeaderSize - transferOverhead
	frames := max(1, (len(payload)+perFrame-1)/perFrame)
	if uint64(frames) > uint64(s.remoteWindowSize) {
		return false, &LinkError{inner: fmt.Errorf("amqp: message needs %d frames, more than the peer's session window of %d", frames, s.remoteWindowSize)}
	}
	if l.linkCredit == 0 || s.remoteIncomingWindow < uint32(frames) {
		if l.linkCredit > 0 && !snd.blocked {
			// Blocked by the session window: the session's next flow
			// wakes it (a link flow wakes credit waiters). Once: it
			// stays blocked until woken.
			s.windowWaiters = append(s.windowWaiters, snd)
		}
		snd.blocked = true
		return false, nil
	}
	if snd.roomWait {
		if c.w.full() {
			return false, nil
		}
	} else if c.w.whenRoom(snd.roomFunc) {
		snd.roomWait = true
		return false, nil
	}
	var od *outDelivery
	if !settled {
		od = &outDelivery{l: l, cb: done}
	}
	if err := snd.transferLocked(payload, perFrame, od, opts); err != nil {
		return false, err
	}
	if settled && done != nil {
		c.notifyLocked(func() { done(nil) })
	}
	return true, nil
}

// OnReady sets f, called after a TrySend returned false once sending may
// succeed: credit or session window arrived, or the write queue drained.
// It runs like TrySend's done callbacks and may be called when nothing
// changed; f typically offers its backlog with TrySend again. When the
// receiver drains the link, f runs before the drain completes, so what
// it sends uses the credit instead of the credit being given back.
func (snd *Sender) OnReady(f func()) {
	snd.l.s.c.mu.Lock()
	snd.ready = f
	snd.l.s.c.mu.Unlock()
}

// OnDetach sets f, called once when the link has ended, after the
// callbacks of every TrySend on it (those still unsettled hear the link's
// error first), on the same goroutine and with the same constraints. A
// router can then take back what the link did not settle, knowing that no
// outcome for it can still arrive. If the link has ended already, f is
// called at once (on that goroutine).
func (snd *Sender) OnDetach(f func()) {
	c := snd.l.s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	snd.onDetach = f
	select {
	case <-snd.l.detached:
		c.notifyLocked(f)
	default:
	}
}

// roomFunc is the writer's callback when its queue drains below the
// bound after refusing a TrySend.
func (snd *Sender) roomFunc() {
	c := snd.l.s.c
	c.mu.Lock()
	snd.roomWait = false
	if snd.ready != nil {
		c.notifyLocked(snd.ready)
	}
	c.mu.Unlock()
}

// transferOverhead bounds the encoded transfer performative of the first
// frame of a delivery (handle, id, 8-byte tag, format, flags).
const transferOverhead = 48

// writeTransfer queues the frames of one delivery, splitting the payload
// at the peer's max-frame-size (part 2, section 2.6.14). Each frame
// consumes one transfer id of the session window.
func (snd *Sender) writeTransfer(t *frame.Transfer, payload []byte, perFrame int) error {
	s := snd.l.s
	return s.c.w.appendFrames(func(dst []byte) []byte {
		for first := true; first || len(payload) > 0; first = false {
			n := min(len(payload), perFrame)
			ft := t
			if !first {
				ft = &frame.Transfer{Handle: t.Handle, Settled: t.Settled}
			}
			ft.Payload = payload[:n]
			ft.More = n < len(payload)
			payload = payload[n:]
			dst, _ = frame.Append(dst, frame.TypeAMQP, s.channel, ft)
			s.nextOutgoingID++
			s.remoteIncomingWindow--
		}
		return dst
	})
}

func (l *link) remoteMaxMessageSize() uint64 {
	if l.remote == nil {
		return 0
	}
	return l.remote.MaxMessageSize
}

// handleFlow applies a receiver's flow to our credit (part 2, section
// 2.6.7): link-credit = delivery-count(receiver) + link-credit(receiver)
// - delivery-count(sender).
func (snd *Sender) handleFlow(f *frame.Flow) {
	l := snd.l
	if f.LinkCredit != nil {
		var dc uint32 // initial delivery count when the receiver has none yet
		if f.DeliveryCount != nil {
			dc = *f.DeliveryCount
		}
		l.linkCredit = dc + *f.LinkCredit - l.deliveryCount
		if int32(l.linkCredit) < 0 {
			l.linkCredit = 0
		}
	}
	l.drain = f.Drain
	if l.linkCredit > 0 {
		if snd.creditCh != nil {
			close(snd.creditCh)
			snd.creditCh = nil
		}
	}
	c := l.s.c
	switch {
	case f.Drain && snd.ready != nil && l.linkCredit > 0:
		// What the router holds goes first; the credit left over is then
		// given back.
		snd.blocked = false
		ready := snd.ready
		c.notifyLocked(func() {
			ready()
			c.mu.Lock()
			snd.completeDrainLocked()
			c.mu.Unlock()
		})
	case f.Drain:
		snd.completeDrainLocked()
	case f.Echo:
		l.s.sendFlowLocked(l)
	}
	if !f.Drain && snd.blocked && snd.ready != nil && l.linkCredit > 0 {
		snd.blocked = false
		c.notifyLocked(snd.ready)
	}
}

// windowOpenedLocked is called when the peer's session window grows: a
// TrySend that found none may go now.
func (snd *Sender) windowOpenedLocked() {
	if snd.blocked && snd.ready != nil && snd.l.linkCredit > 0 {
		snd.blocked = false
		snd.l.s.c.notifyLocked(snd.ready)
	}
}

// completeDrainLocked finishes a drain once no Send is waiting: the
// credit left is used up by advancing the delivery count, and the
// receiver is told (part 2, section 2.6.7).
func (snd *Sender) completeDrainLocked() {
	l := snd.l
	if !l.drain || snd.waiting > 0 {
		return
	}
	l.deliveryCount += l.linkCredit
	l.linkCredit = 0
	l.s.sendFlowLocked(l)
	l.drain = false
}

func (snd *Sender) linkErr(err error) error {
	if err == ErrClosed && snd.l.err != nil {
		return snd.l.err
	}
	return err
}
