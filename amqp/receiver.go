package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// Receiver receives messages on a link. Its methods are safe for
// concurrent use.
type Receiver struct {
	l         *link
	maxCredit uint32
	manual    bool
	maxSize   uint64
	// queue holds complete deliveries. Its capacity is maxCredit (a
	// server) or maxCredit plus ClientOvershoot's tolerance (a client):
	// the peer never gets more credit than maxCredit minus what is
	// queued, and a client's extra room absorbs senders that overrun
	// their credit by deliveries in flight (see handleTransfer). The
	// reader never blocks on it.
	queue    deliveryQueue
	partial  *Delivery // a multi-frame delivery being assembled
	consumed atomic.Uint32
	drainCh  chan struct{} // non-nil while a Drain waits
	// unsettled holds deliveries whose settlement waits for the sender
	// (rcv-settle-mode second).
	unsettled map[uint32]*Delivery
	// held counts the unsettled deliveries Receive handed out and the
	// application has not settled yet; guarded by the Conn's mutex. They
	// count against the credit as queued ones do, so that an application
	// settling asynchronously has at most Credit messages in its hands,
	// not Credit more with every top-up.
	held uint32
}

func newReceiver(l *link, credit uint32, manual bool, maxSize uint64) *Receiver {
	r := &Receiver{l: l, maxCredit: credit, manual: manual, maxSize: maxSize,
		queue: deliveryQueue{max: queueSize(credit, l.s.c.listener == nil), arrived: make(chan struct{}, 1)}}
	l.receiver = r
	return r
}

// ClientOvershoot is how many deliveries past its credit a client-side
// Receiver (one made by NewReceiver on a dialled connection) tolerates
// at least, before it detaches with amqp:link:transfer-limit-exceeded:
// brokers such as RabbitMQ 3.10 send up to about 100 transfers past a
// credit they were granted. The tolerance is the larger of this and the
// credit itself. A Listener's receivers tolerate nothing: a peer that
// sends without credit is detached at once.
const ClientOvershoot = 256

// queueSize is a receiver's buffer: its credit, plus the overshoot a
// client tolerates.
func queueSize(credit uint32, client bool) int {
	if !client {
		return int(credit)
	}
	return int(credit) + max(int(credit), ClientOvershoot)
}

// NewReceiver attaches a receiving link to source. opts may be nil.
func (s *Session) NewReceiver(ctx context.Context, source string, opts *ReceiverOptions) (*Receiver, error) {
	if opts == nil {
		opts = &ReceiverOptions{}
	}
	credit := opts.Credit
	if credit == 0 {
		credit = DefaultCredit
	}
	maxSize := opts.MaxMessageSize
	if maxSize == 0 {
		maxSize = DefaultMaxMessageSize
	}
	l := newLink(s, opts.Name, frame.RoleReceiver)
	r := newReceiver(l, credit, opts.ManualCredit, maxSize)
	a := &frame.Attach{
		Role:          frame.RoleReceiver,
		SndSettleMode: frame.SenderSettleMixed,
		Source: &frame.Source{Address: source, Dynamic: opts.DynamicSource, Filter: opts.Filter,
			Capabilities: opts.SourceCapabilities, Durable: opts.SourceDurability,
			ExpiryPolicy: opts.SourceExpiryPolicy, Timeout: opts.SourceTimeout},
		Target:              &frame.Target{Address: opts.TargetAddress},
		MaxMessageSize:      maxSize,
		OfferedCapabilities: opts.OfferedCapabilities,
		DesiredCapabilities: opts.DesiredCapabilities,
		Properties:          opts.Properties,
	}
	if opts.DynamicSource {
		a.Source.Address = ""
	}
	l.source = a.Source
	if err := l.attach(ctx, a, opts.SettleMode, opts.ReceiverSettleMode); err != nil {
		return nil, err
	}
	return r, nil
}

// Name returns the link name.
func (r *Receiver) Name() string { return r.l.name }

// Address returns the source address: the one asked for, or the name the
// peer gave a dynamic node.
func (r *Receiver) Address() string {
	if r.l.source == nil {
		return ""
	}
	return r.l.source.Address
}

// RemoteAttach returns the peer's attach.
func (r *Receiver) RemoteAttach() *frame.Attach { return r.l.remote }

// Session returns the link's session.
func (r *Receiver) Session() *Session { return r.l.s }

// Done is closed when the link is detached.
func (r *Receiver) Done() <-chan struct{} { return r.l.detached }

// Err returns why the link ended, as Sender.Err does, or nil while it is
// attached.
func (r *Receiver) Err() error { return r.l.doneErr() }

// Close detaches the link (closed=true) and waits for the peer's detach.
func (r *Receiver) Close(ctx context.Context) error { return r.l.close(ctx, nil) }

// CloseWithError is Close with a condition for the peer, as
// Sender.CloseWithError.
func (r *Receiver) CloseWithError(ctx context.Context, e *Error) error {
	return r.l.close(ctx, e)
}

// grantInitialLocked gives the peer its first credit once attached.
func (r *Receiver) grantInitialLocked() {
	if r.manual || r.l.detachSent {
		return
	}
	r.l.linkCredit = r.maxCredit
	r.l.s.sendFlowLocked(r.l)
}

// Delivery is a received message.
type Delivery struct {
	Message Message
	// ID is the delivery id, Tag the delivery tag, Format the message
	// format.
	ID     uint32
	Tag    []byte
	Format uint32
	// Settled reports that the sender sent the message settled (at most
	// once): there is nothing to accept.
	Settled bool

	held      bool // counted in r.held; guarded by the Conn's mutex
	r         *Receiver
	raw       []byte
	settledCh chan struct{} // rcv-settle-mode second: closed when the sender settles
}

// handleTransfer processes one transfer frame, from the reader goroutine.
func (r *Receiver) handleTransfer(t *frame.Transfer) error {
	l := r.l
	d := r.partial
	if d == nil {
		if t.DeliveryID == nil {
			return linkViolation{violation(frame.CondNotAllowed, "first transfer of a delivery without delivery-id"), l}
		}
		if l.linkCredit == 0 && r.queue.len() >= r.queue.max {
			// [part 2, 2.6.7] a sender must not send without credit. On
			// the client side, one that overruns by deliveries already in
			// flight when our flow arrived (RabbitMQ 3.10 does, under
			// load) is tolerated while the buffer has room (see
			// ClientOvershoot): memory stays bounded either way. A
			// server's buffer is its credit: no overrun is tolerated.
			return linkViolation{violation(frame.CondTransferLimitExceeded, "transfer without link credit"), l}
		}
		if l.linkCredit > 0 {
			l.linkCredit--
		}
		l.deliveryCount++
		d = &Delivery{ID: *t.DeliveryID, Tag: append([]byte(nil), t.DeliveryTag...), r: r,
			Settled: t.Settled || l.sndSettle == frame.SenderSettleSettled}
		if t.MessageFormat != nil {
			d.Format = *t.MessageFormat
		}
		r.partial = d
	} else if t.DeliveryID != nil && *t.DeliveryID != d.ID {
		return linkViolation{violation(frame.CondNotAllowed, "transfer of delivery %d interleaved with %d", *t.DeliveryID, d.ID), l}
	}
	if t.Aborted {
		r.partial = nil
		return nil
	}
	if uint64(len(d.raw))+uint64(len(t.Payload)) > r.maxSize {
		r.partial = nil
		return linkViolation{violation(frame.CondMessageSizeExceeded, "message exceeds %d bytes", r.maxSize), l}
	}
	if d.raw == nil && !t.More {
		d.raw = append(make([]byte, 0, len(t.Payload)), t.Payload...)
	} else {
		d.raw = append(d.raw, t.Payload...)
	}
	d.Settled = d.Settled || t.Settled
	if t.More {
		return nil
	}
	r.partial = nil
	if !d.Settled && l.rcvSettle == frame.ReceiverSettleSecond {
		d.settledCh = make(chan struct{})
		if r.unsettled == nil {
			r.unsettled = make(map[uint32]*Delivery)
		}
		r.unsettled[d.ID] = d
	}
	if !r.queue.push(d) {
		return linkViolation{violation(frame.CondTransferLimitExceeded, "more deliveries than credit"), l}
	}
	return nil
}

// settledBySender closes the settlement waits for first..last.
func (r *Receiver) settledBySender(first, last uint32) {
	for id, d := range r.unsettled {
		if id-first <= last-first {
			delete(r.unsettled, id)
			close(d.settledCh)
		}
	}
}

// handleFlow applies a sender's flow (part 2, section 2.6.7). Our
// delivery-count counts the transfers we received; the sender's is used
// only while we drain, the one time a sender advances it without
// transfers. Some senders (RabbitMQ 3.10) report a delivery-count that
// already includes transfers still on the wire; adopting it at other
// times would count those twice and turn them into credit violations.
func (r *Receiver) handleFlow(f *frame.Flow) {
	l := r.l
	draining := r.drainCh != nil
	if draining && f.DeliveryCount != nil && int32(*f.DeliveryCount-l.deliveryCount) > 0 {
		limit := l.deliveryCount + l.linkCredit
		l.deliveryCount = *f.DeliveryCount
		l.linkCredit = limit - l.deliveryCount
		if int32(l.linkCredit) < 0 {
			l.linkCredit = 0
		}
	}
	if f.Available != nil {
		l.available = *f.Available
	}
	// A drain completes when the credit is used up, or when the sender
	// answers with drain set (RabbitMQ 3.10 echoes the drain without
	// advancing its delivery-count: it has nothing to send).
	if draining && (l.linkCredit == 0 || f.Drain) {
		close(r.drainCh)
		r.drainCh = nil
		l.drain = false
	}
	if f.Echo {
		l.s.sendFlowLocked(l)
	}
}

func (r *Receiver) failLocked() {
	if r.drainCh != nil {
		close(r.drainCh)
		r.drainCh = nil
	}
	for id, d := range r.unsettled {
		delete(r.unsettled, id)
		close(d.settledCh)
	}
}

// Receive returns the next message, waiting for one or ctx. Messages
// already received are still returned after the link is detached.
func (r *Receiver) Receive(ctx context.Context) (*Delivery, error) {
	c := r.l.s.c
	for {
		c.mu.Lock()
		d := r.popLocked()
		c.mu.Unlock()
		if d == nil {
			select {
			case <-r.queue.arrived:
				continue
			case <-r.l.detached:
				c.mu.Lock()
				d = r.popLocked()
				err := r.l.err
				c.mu.Unlock()
				if d == nil {
					return nil, err
				}
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if d.Settled {
			r.topUp() // an unsettled one frees its credit when settled
		}
		err := d.Message.Decode(d.raw)
		d.raw = nil
		if err == nil {
			return d, nil
		}
		// An undecodable message is the sender's fault: reject it and
		// carry on with the next.
		_ = d.Reject(ctx, &Error{Condition: frame.CondDecodeError, Description: err.Error()})
	}
}

// popLocked takes the next delivery off the queue; an unsettled one is
// held until settled. c.mu must be held.
func (r *Receiver) popLocked() *Delivery {
	d := r.queue.pop()
	if d != nil && !d.Settled {
		d.held = true
		r.held++
	}
	return d
}

// unhold frees the credit of a held delivery, at its first settlement.
func (d *Delivery) unhold() {
	r := d.r
	c := r.l.s.c
	c.mu.Lock()
	held := d.held
	if held {
		d.held = false
		r.held--
	}
	c.mu.Unlock()
	if held {
		r.topUp()
	}
}

// topUp grants more credit once half the window has been consumed
// (received presettled, or settled), so that flow frames stay rare.
func (r *Receiver) topUp() {
	if r.manual || r.consumed.Add(1) < max(r.maxCredit/2, 1) {
		return
	}
	r.consumed.Store(0)
	c := r.l.s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	r.grantLocked()
}

// grantLocked raises the credit to the room left in the queue.
func (r *Receiver) grantLocked() {
	l := r.l
	if l.drain || l.detachSent || !l.remoteAttached || l.refused {
		return
	}
	inFlight := uint32(r.queue.len()) + r.held
	if r.partial != nil {
		inFlight++
	}
	if target := r.maxCredit - min(inFlight, r.maxCredit); target > l.linkCredit {
		l.linkCredit = target
		l.s.sendFlowLocked(l)
	}
}

// IssueCredit grants n more credit, for receivers with ManualCredit. The
// total outstanding credit plus buffered messages may not exceed the
// configured Credit.
func (r *Receiver) IssueCredit(n uint32) error {
	c := r.l.s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	l := r.l
	if l.detachSent {
		return l.err
	}
	if uint64(l.linkCredit)+uint64(n)+uint64(r.queue.len()) > uint64(r.maxCredit) {
		return fmt.Errorf("amqp: credit %d + %d would exceed the receiver's buffer of %d", l.linkCredit, n, r.maxCredit)
	}
	l.linkCredit += n
	l.s.sendFlowLocked(l)
	return nil
}

// Drain asks the sender to use up or give back all credit (part 2,
// section 2.6.7, drain) and waits until it has. Messages sent meanwhile
// are queued for Receive as usual.
func (r *Receiver) Drain(ctx context.Context) error {
	c := r.l.s.c
	c.mu.Lock()
	l := r.l
	if l.detachSent {
		c.mu.Unlock()
		return l.err
	}
	if l.linkCredit == 0 {
		c.mu.Unlock()
		return nil
	}
	ch := r.drainCh
	if ch == nil {
		ch = make(chan struct{})
		r.drainCh = ch
		l.drain = true
		l.s.sendFlowLocked(l)
	}
	c.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.err != nil && l.detachSent {
		return l.err
	}
	return nil
}

// Accept accepts the delivery. Settled deliveries need no answer; the
// call is then a no-op.
func (d *Delivery) Accept(ctx context.Context) error {
	return d.settle(ctx, &frame.Accepted{})
}

// Reject rejects the delivery with e (may be nil).
func (d *Delivery) Reject(ctx context.Context, e *Error) error {
	return d.settle(ctx, &frame.Rejected{Error: e})
}

// Release releases the delivery: it was not processed and may go to
// another receiver.
func (d *Delivery) Release(ctx context.Context) error {
	return d.settle(ctx, &frame.Released{})
}

// Modify gives the delivery the modified outcome.
func (d *Delivery) Modify(ctx context.Context, m *frame.Modified) error {
	return d.settle(ctx, m)
}

func (d *Delivery) settle(ctx context.Context, state frame.DeliveryState) error {
	if d.Settled {
		return nil
	}
	d.unhold()
	l := d.r.l
	w := l.s.c.w
	select {
	case <-l.s.ended:
		return l.s.err
	default:
	}
	if d.settledCh == nil {
		// rcv-settle-mode first: we settle with the outcome.
		var err error
		if _, ok := state.(*frame.Accepted); ok {
			err = w.acceptSettled(l.s.channel, frame.RoleReceiver, d.ID)
		} else {
			err = w.frame(frame.TypeAMQP, l.s.channel, &frame.Disposition{Role: frame.RoleReceiver, First: d.ID, Settled: true, State: state})
		}
		d.Settled = err == nil
		return err
	}
	// Mode second: send the outcome unsettled and wait for the sender to
	// settle.
	if err := w.frame(frame.TypeAMQP, l.s.channel, &frame.Disposition{Role: frame.RoleReceiver, First: d.ID, State: state}); err != nil {
		return err
	}
	select {
	case <-d.settledCh:
		d.Settled = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.s.c.done:
		return errors.Join(ErrClosed, l.s.c.err)
	}
}

// deliveryQueue holds a receiver's complete deliveries until Receive takes
// them, at most max. It grows with what arrives and lets its memory go
// when it empties, so an idle receiver holds none. Guarded by the Conn's
// mutex; arrived (capacity 1) wakes a waiting Receive.
type deliveryQueue struct {
	items   []*Delivery
	head    int
	max     int
	high    int // the longest the queue was since it last emptied
	arrived chan struct{}
}

func (q *deliveryQueue) len() int { return len(q.items) - q.head }

func (q *deliveryQueue) push(d *Delivery) bool {
	if q.len() >= q.max {
		return false
	}
	q.items = append(q.items, d)
	q.high = max(q.high, q.len())
	q.signal()
	return true
}

func (q *deliveryQueue) signal() {
	select {
	case q.arrived <- struct{}{}:
	default:
	}
}

func (q *deliveryQueue) pop() *Delivery {
	if q.len() == 0 {
		return nil
	}
	d := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.head = 0
		if cap(q.items) > 32 && q.high < cap(q.items)/4 {
			q.items = nil // room for a burst long past: let it go
		} else {
			q.items = q.items[:0] // a steady flow reuses it
		}
		q.high = 0
	} else {
		q.signal() // more for another waiting Receive
	}
	return d
}
