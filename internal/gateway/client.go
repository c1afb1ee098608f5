package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// LWTAddress is the network's last-will service (protocols.md 2.2).
const LWTAddress = "$lwt"

// client is one MQTT client and its connection to the network.
type client struct {
	g         *Gateway
	c         *mqtt.Conn
	keepAlive time.Duration
	user      string
	password  string
	will      *amqp.Message
	willDelay time.Duration
	// persistent: the client asked for a session that outlives the
	// connection, for expiry seconds (0: for ever). Its subscriptions are
	// durable links, which the network keeps while it is away.
	persistent bool
	expiry     uint32

	// Set by open, immutable afterwards.
	conn *amqp.Conn
	sess *amqp.Session
	// qos2 is the session of the QoS 2 senders; owned by the publisher.
	qos2   *amqp.Session
	ctx    context.Context // ends when the client leaves or the network goes
	cancel context.CancelFunc
	pubs   chan pubRequest
	// window holds a token per message from the network on its way to
	// the client (Options.Window).
	window chan struct{}
	// willLink is the $lwt link holding the will at the network; nil
	// without a will, or when the gateway keeps it (localWill).
	willLink  *amqp.Sender
	localWill bool
	wg        sync.WaitGroup
	// published is closed when the publisher ends: pubs was closed and
	// drained, or the network went.
	published chan struct{}

	mu       sync.Mutex
	subs     map[string]*subscription // by filter
	inflight map[*packet.Publish]*amqp.Delivery
}

// pubRequest is a PUBLISH on its way to the network; done is nil for QoS 0.
type pubRequest struct {
	msg   *amqp.Message
	topic string
	qos   byte
	done  func(packet.ReasonCode)
}

// open connects to the network, leaves the will with its last-will
// service and starts the publisher.
func (cl *client) open() packet.ReasonCode {
	g := cl.g
	opts := &amqp.ConnOptions{ContainerID: cl.c.ClientID(), TLSConfig: g.opts.TLS, Logger: g.log}
	if cl.keepAlive > 0 {
		// MQTT's keep-alive becomes the AMQP idle time-out (2.3), with
		// MQTT's one and a half grace.
		opts.IdleTimeout = cl.keepAlive * 3 / 2
	}
	switch {
	case g.netURL.User != nil:
	case g.opts.ForwardCredentials && cl.user != "":
		opts.SASL, opts.Username, opts.Password = amqp.SASLPlain, cl.user, cl.password
	default:
		opts.SASL = amqp.SASLAnonymous
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.opts.DialTimeout)
	defer cancel()
	conn, err := amqp.Dial(ctx, g.opts.Network, opts)
	if err != nil {
		g.log.Warn("client refused: no connection to the AMQP network", "client", cl.c.ClientID(), "err", err)
		return dialCode(err)
	}
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		conn.Close()
		g.log.Warn("client refused: no AMQP session", "client", cl.c.ClientID(), "err", err)
		return packet.ServerUnavailable
	}
	cl.conn, cl.sess = conn, sess
	cl.ctx, cl.cancel = context.WithCancel(context.Background())
	cl.pubs = make(chan pubRequest, 64)
	cl.window = make(chan struct{}, g.opts.Window)
	cl.subs = map[string]*subscription{}
	cl.inflight = map[*packet.Publish]*amqp.Delivery{}
	if cl.will != nil && g.opts.Addresses == AddressesRabbitMQ {
		// RabbitMQ has no last-will service; a link to $lwt would
		// reach a queue of that name.
		cl.localWill = true
	} else if cl.will != nil {
		if code := cl.leaveWill(ctx); code != packet.Success {
			cl.cancel()
			conn.Close()
			cl.conn = nil // not opened: Disconnected has nothing to do
			return code
		}
	}
	cl.published = make(chan struct{})
	go cl.publisher()
	cl.wg.Add(1)
	go cl.watchNetwork()
	return packet.Success
}

// leaveWill hands the will to the network's last-will service and waits
// for it to be accepted (2.4, step 1).
func (cl *client) leaveWill(ctx context.Context) packet.ReasonCode {
	snd, err := cl.sess.NewSender(ctx, LWTAddress, &amqp.SenderOptions{Name: cl.c.ClientID()})
	if err != nil {
		var le *amqp.LinkError
		if errors.As(err, &le) && le.RemoteErr != nil && le.RemoteErr.Condition == amqp.CondNotFound {
			cl.g.log.Info("the AMQP network has no last-will service: the gateway keeps the will", "client", cl.c.ClientID())
			cl.localWill = true
			return packet.Success
		}
		cl.g.log.Warn("client refused: its will was not taken", "client", cl.c.ClientID(), "err", err)
		return packet.UnspecifiedError
	}
	if err := snd.Send(ctx, cl.will, nil); err != nil {
		cl.g.log.Warn("client refused: its will was not accepted", "client", cl.c.ClientID(), "err", err)
		return packet.UnspecifiedError
	}
	cl.willLink = snd
	return packet.Success
}

// watchNetwork disconnects the client when its network connection ends.
func (cl *client) watchNetwork() {
	defer cl.wg.Done()
	select {
	case <-cl.ctx.Done():
	case <-cl.conn.Done():
		cl.g.log.Warn("AMQP network connection lost: disconnecting the client", "client", cl.c.ClientID(), "err", cl.conn.Err())
		cl.cancel()
		cl.c.CloseWithReason(packet.ServerBusy, "the AMQP network connection was lost")
	}
}

// enqueue hands a PUBLISH to the publisher; it waits while the queue is
// full, which holds up the client's reads: back-pressure. It runs on the
// client's reader, so never after Disconnected, which closes the queue.
func (cl *client) enqueue(r pubRequest) {
	select {
	case cl.pubs <- r:
	case <-cl.ctx.Done():
		if r.done != nil {
			cl.abort(r, "the client is leaving", nil)
		}
	}
}

// abort ends a QoS 1 or 2 PUBLISH whose fate is unknown (the network
// connection or link ended before its outcome): the client is
// disconnected without an acknowledgement and sends it again.
func (cl *client) abort(r pubRequest, why string, err error) {
	if err != nil {
		cl.g.log.Info("client disconnected: "+why, "client", cl.c.ClientID(), "err", err)
	}
	cl.c.CloseWithReason(packet.ServerBusy, why)
	r.done(packet.UnspecifiedError)
}

// refuse ends a QoS 1 or 2 PUBLISH with code. A 3.1.1 client has no
// negative acknowledgement: it is disconnected first, so that it gets no
// PUBACK and sends the message again.
func (cl *client) refuse(r pubRequest, code packet.ReasonCode) {
	cl.g.counter.refused.Add(1)
	if cl.c.Version() != packet.V5 {
		cl.c.Close(code)
	}
	r.done(code)
}

// publisher sends the client's messages in order, on one sender link per
// topic address (two for QoS 2's settle mode).
func (cl *client) publisher() {
	defer close(cl.published)
	links := newSenderCache(cl.g.opts.MaxSenders)
	defer links.closeAll()
	for {
		var r pubRequest
		select {
		case r = <-cl.pubs:
		case <-cl.ctx.Done():
			// The network went: what is still queued at QoS 1 and 2
			// was never acknowledged, the client sends it again.
			return
		}
		if r.msg == nil {
			return // the queue was closed and is drained
		}
		addr, second := cl.g.opts.Addresses.topic(r.topic), r.qos == 2
		snd, err := links.get(addr, second, func() (*amqp.Sender, error) { return cl.newSender(addr, second) })
		if err != nil {
			var le *amqp.LinkError
			refused := errors.As(err, &le) && le.RemoteErr != nil
			switch {
			case r.done == nil:
				cl.g.counter.refused.Add(1)
			case refused:
				// The network refused the address: the message's fate
				// is known.
				cl.g.log.Info("publish refused: the AMQP network refused its address", "client", cl.c.ClientID(), "topic", r.topic, "err", err)
				cl.refuse(r, conditionCode(le.RemoteErr.Condition))
			default:
				// No answer (the connection is going): unknown.
				cl.abort(r, "no AMQP link to the topic", err)
			}
			continue
		}
		if r.done == nil {
			if err := snd.Send(cl.ctx, r.msg, &amqp.SendOptions{Settled: true}); err != nil {
				links.drop(snd)
				continue
			}
			cl.g.counter.published.Add(1)
			continue
		}
		cl.sendAsync(snd, r, links)
	}
}

// sendAsync sends a QoS 1 or 2 message without waiting for its outcome,
// waiting for credit if there is none.
func (cl *client) sendAsync(snd *amqp.Sender, r pubRequest, links *senderCache) {
	done := func(err error) {
		switch {
		case err == nil:
			cl.g.counter.published.Add(1)
			r.done(packet.Success)
		case isOutcome(err):
			cl.refuse(r, outcomeCode(err))
		default:
			cl.abort(r, "the AMQP link of the topic ended", err)
		}
	}
	for {
		ok, err := snd.TrySend(r.msg, nil, done)
		if err != nil {
			links.drop(snd)
			cl.abort(r, "the AMQP link of the topic ended", err)
			return
		}
		if ok {
			return
		}
		select {
		case <-snd.CreditAvailable():
		case <-snd.Done():
		case <-cl.ctx.Done():
			cl.abort(r, "the client is leaving", nil)
			return
		}
	}
}

func isOutcome(err error) bool {
	var oe *amqp.OutcomeError
	return errors.As(err, &oe)
}

// newSender attaches a sender to addr: settle mode first for QoS 0 and 1,
// second for QoS 2 (2.3). QoS 2 links have a session of their own: a
// network without mode second (RabbitMQ 3 ends the session with
// amqp:not-implemented) takes the subscriptions' session with it
// otherwise. On such a network QoS 2 goes in mode first, at least once.
func (cl *client) newSender(addr string, second bool) (*amqp.Sender, error) {
	ctx, cancel := context.WithTimeout(cl.ctx, cl.g.opts.DialTimeout)
	defer cancel()
	if second && !cl.g.noSecond.Load() {
		snd, err := cl.secondSender(ctx, addr)
		if !notImplemented(err) {
			return snd, err
		}
		if !cl.g.noSecond.Swap(true) {
			cl.g.log.Info("the AMQP network does not take receiver-settle-mode second: QoS 2 messages go at least once", "err", err)
		}
	}
	mode := amqp.ReceiverSettleFirst
	return cl.sess.NewSender(ctx, addr, &amqp.SenderOptions{ReceiverSettleMode: &mode})
}

// secondSender attaches a sender in receiver-settle-mode second on the
// QoS 2 session, beginning it first if need be.
func (cl *client) secondSender(ctx context.Context, addr string) (*amqp.Sender, error) {
	if cl.qos2 == nil {
		s, err := cl.conn.NewSession(ctx, nil)
		if err != nil {
			return nil, err
		}
		cl.qos2 = s
	}
	mode := amqp.ReceiverSettleSecond
	snd, err := cl.qos2.NewSender(ctx, addr, &amqp.SenderOptions{ReceiverSettleMode: &mode})
	if err != nil {
		select {
		case <-cl.qos2.Done():
			cl.qos2 = nil
		default:
		}
	}
	return snd, err
}

// notImplemented reports whether the network refused a link or session
// as amqp:not-implemented.
func notImplemented(err error) bool {
	var le *amqp.LinkError
	var se *amqp.SessionError
	switch {
	case errors.As(err, &le) && le.RemoteErr != nil:
		return le.RemoteErr.Condition == amqp.CondNotImplemented
	case errors.As(err, &se) && se.RemoteErr != nil:
		return se.RemoteErr.Condition == amqp.CondNotImplemented
	}
	return false
}

// close ends the client's connection to the network. clean: the client
// sent DISCONNECT 0x00, so its will is dropped; otherwise it is published.
func (cl *client) close(clean bool) {
	// QoS 0 messages the client sent last are still queued: they go out
	// first, within a bound.
	close(cl.pubs)
	select {
	case <-cl.published:
	case <-time.After(5 * time.Second):
	}
	cl.cancel()
	<-cl.published
	cl.wg.Wait()
	cl.mu.Lock()
	subs := cl.subs
	cl.subs = nil
	cl.mu.Unlock()
	for _, s := range subs {
		if cl.persistent {
			// The connection's close suspends the durable links: the
			// network keeps their messages for the next connection.
			<-s.done
		} else {
			s.stop()
		}
	}
	ctx, cancel := closeCtx()
	defer cancel()
	switch {
	case cl.willLink != nil && clean:
		_ = cl.willLink.Close(ctx)
	case cl.willLink != nil:
		_ = cl.willLink.CloseWithError(ctx, &amqp.Error{Condition: amqp.CondDetachForced, Description: "the MQTT client was lost"})
	case cl.localWill && !clean:
		cl.publishLocalWill(ctx)
	}
	cl.conn.Close()
}

// publishLocalWill publishes the will itself, for a network without a
// last-will service, after the will delay.
func (cl *client) publishLocalWill(ctx context.Context) {
	if cl.willDelay > 0 {
		// Not kept anywhere: a later connection of the client does not
		// cancel it, and a gateway restart loses it.
		cl.g.log.Info("the will delay is not honoured without the network's last-will service", "client", cl.c.ClientID())
	}
	to := ""
	if cl.will.Properties != nil {
		to = cl.will.Properties.To
	}
	snd, err := cl.sess.NewSender(ctx, cl.g.opts.Addresses.topic(to), nil)
	if err == nil {
		err = snd.Send(ctx, cl.will, nil)
	}
	if err != nil {
		cl.g.log.Warn("will not published", "client", cl.c.ClientID(), "err", err)
	}
}
