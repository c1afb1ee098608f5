package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
	"github.com/ferry-iot/ferry/mqtt/topic"
)

// Message is an application message, outgoing or inbound.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// Dup is set on an inbound message that the server may have sent
	// before; it is ignored on an outgoing one.
	Dup bool
	// Properties are the MQTT 5 PUBLISH properties. The client manages
	// Topic Alias itself (it is nil in an inbound message), and a
	// Subscription Identifier in an outgoing message is an error.
	Properties packet.Properties
}

// Client is a connection to an MQTT server and the session on it. Its
// methods may be called from any goroutine.
type Client struct {
	opts  Options
	v     packet.Version
	store Store

	ctx     context.Context // cancelled by Close, to abort a connection attempt
	cancel  context.CancelFunc
	closing chan struct{} // closed by Close or when the client ends
	done    chan struct{} // closed when the client ended
	deliver chan inbound

	resp responder

	mu         sync.Mutex
	cn         *conn // nil between connections
	closed     bool
	err        error
	clientID   string
	respInfo   string
	window     int
	maxQoS     byte
	noRetain   bool
	inflight   map[uint16]*outMsg
	seq        uint64
	nextID     uint16
	slot       chan struct{} // closed when the inflight window shrinks, if slotWait
	slotWait   bool
	acks       map[uint16]chan packet.Packet // SUBACK and UNSUBACK waiters
	inQoS2     map[uint16]struct{}           // handled, awaiting PUBREL
	delivering map[uint16]*conn              // in the handler; the conn to acknowledge on
	// For tests: how many messages were sent again, and the largest
	// inflight count seen.
	resent, peak int
}

type outMsg struct {
	Stored
	sent bool // sent at least once: DUP on the next time
	tok  *Token
}

type inbound struct {
	m   *Message
	id  uint16
	qos byte
}

// Token completes when the server acknowledged a QoS 1 or 2 message
// completely (PUBACK, PUBCOMP), or refused it.
type Token struct {
	done chan struct{}
	err  error
}

func newToken() *Token { return &Token{done: make(chan struct{})} }

// Done is closed when the outcome is known.
func (t *Token) Done() <-chan struct{} { return t.done }

// Err is the outcome once Done is closed: nil, a *ReasonError with the
// server's failure code, ErrClosed, or why the connection was lost when the
// client does not reconnect.
func (t *Token) Err() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}

// Wait waits for the outcome or for ctx. A message whose wait ended with
// ctx stays in flight.
func (t *Token) Wait(ctx context.Context) error {
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var doneToken = func() *Token { t := newToken(); close(t.done); return t }()

// Connect connects to the server that opts name and returns the Client once
// the server accepted the connection. A refusal is a *ConnectError. The
// first connection is not retried, whatever opts.Reconnect says: an error
// here usually means a wrong address or credentials.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	v := opts.version()
	if v != packet.V311 && v != packet.V5 {
		return nil, fmt.Errorf("mqtt client: protocol version %d: must be V311 or V5", v)
	}
	if opts.Window < 0 || opts.Window > 65535 {
		return nil, errors.New("mqtt client: Window must be within 0..65535")
	}
	c := &Client{
		opts:       opts,
		v:          v,
		store:      opts.Store,
		closing:    make(chan struct{}),
		done:       make(chan struct{}),
		deliver:    make(chan inbound, 64),
		clientID:   opts.ClientID,
		inflight:   make(map[uint16]*outMsg),
		slot:       make(chan struct{}),
		acks:       make(map[uint16]chan packet.Packet),
		inQoS2:     make(map[uint16]struct{}),
		delivering: make(map[uint16]*conn),
	}
	if c.store == nil {
		c.store = NewMemoryStore()
	}
	if opts.CleanStart {
		// [MQTT-3.1.2-4]: a clean start discards the client's state too.
		if err := c.store.Reset(); err != nil {
			return nil, err
		}
	} else if err := c.load(); err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	cn, ack, err := c.connect(ctx, opts.CleanStart)
	if err != nil {
		c.cancel()
		return nil, err
	}
	go c.deliverLoop()
	c.established(cn, ack)
	go c.run(cn)
	return c, nil
}

func (c *Client) load() error {
	out, in, err := c.store.Load()
	if err != nil {
		return err
	}
	for _, s := range out {
		c.inflight[s.Publish.PacketID] = &outMsg{Stored: s, sent: true}
		c.seq = max(c.seq, s.Seq)
	}
	for _, id := range in {
		c.inQoS2[id] = struct{}{}
	}
	return nil
}

// connect dials and runs the CONNECT/CONNACK exchange.
func (c *Client) connect(ctx context.Context, clean bool) (*conn, *packet.Connack, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, orDefault(c.opts.ConnectTimeout, 30*time.Second))
		defer cancel()
	}
	nc, err := c.opts.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	// The deadline makes a cancelled ctx interrupt the handshake's I/O.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*conn, *packet.Connack, error) {
		stop()
		nc.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("mqtt client: connecting: %w (%v)", ctx.Err(), err)
		}
		return nil, nil, err
	}
	b, err := c.connectPacket(clean).Append(nil, c.v)
	if err != nil {
		return fail(err)
	}
	if _, err := nc.Write(b); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(nc, 16<<10)
	p, _, err := readPacket(br, nil, c.opts.MaximumPacketSize, c.v)
	if err != nil {
		return fail(fmt.Errorf("mqtt client: reading CONNACK: %w", err))
	}
	ack, ok := p.(*packet.Connack)
	if !ok {
		return fail(fmt.Errorf("mqtt client: server sent %v instead of CONNACK (extended authentication is not supported)", p.Type()))
	}
	if ack.ReasonCode != packet.Success {
		return fail(&ConnectError{Code: ack.ReasonCode, Reason: ack.Properties.ReasonString, ServerReference: ack.Properties.ServerReference})
	}
	if !stop() {
		return fail(ctx.Err())
	}
	nc.SetDeadline(time.Time{})
	return newConn(nc, br, c.v), ack, nil
}

func (c *Client) connectPacket(clean bool) *packet.Connect {
	o := &c.opts
	c.mu.Lock()
	p := &packet.Connect{CleanStart: clean, ClientID: c.clientID}
	c.mu.Unlock()
	if ka := o.keepAlive(); ka > 0 {
		p.KeepAlive = uint16(min(max(ka/time.Second, 1), 65535))
	}
	if o.Username != "" {
		p.UsernameFlag, p.Username = true, o.Username
	}
	if o.Password != nil {
		p.PasswordFlag, p.Password = true, o.Password
	}
	if w := o.Will; w != nil {
		p.WillFlag, p.WillTopic, p.WillPayload, p.WillQoS, p.WillRetain = true, w.Topic, w.Payload, w.QoS, w.Retain
		p.WillProperties = w.Properties
	}
	if c.v == packet.V5 {
		pr := &p.Properties
		if s := o.SessionExpiry / time.Second; s > 0 {
			e := uint32(min(s, 0xFFFFFFFF))
			pr.SessionExpiryInterval = &e
		}
		if o.ReceiveMaximum > 0 {
			pr.ReceiveMaximum = &o.ReceiveMaximum
		}
		if o.MaximumPacketSize > 0 {
			pr.MaximumPacketSize = &o.MaximumPacketSize
		}
		if o.TopicAliasMaximum > 0 {
			pr.TopicAliasMaximum = &o.TopicAliasMaximum
		}
		if o.RequestResponseInfo {
			one := byte(1)
			pr.RequestResponseInfo = &one
		}
		pr.User = o.UserProperties
	}
	return p
}

// established makes cn the client's connection: it applies the server's
// CONNACK, sends the in-flight messages again in their order, starts the
// connection's goroutines and calls OnConnect.
func (c *Client) established(cn *conn, ack *packet.Connack) {
	pr := &ack.Properties
	c.mu.Lock()
	if pr.AssignedClientID != "" {
		c.clientID = pr.AssignedClientID
	}
	c.respInfo = pr.ResponseInfo
	c.window = c.opts.Window
	c.maxQoS, c.noRetain = 2, false
	if c.v == packet.V5 {
		rm := 65535
		if pr.ReceiveMaximum != nil {
			rm = int(*pr.ReceiveMaximum)
		}
		if c.window == 0 || rm < c.window {
			c.window = rm
		}
		if pr.MaximumQoS != nil {
			c.maxQoS = *pr.MaximumQoS
		}
		c.noRetain = pr.RetainAvailable != nil && *pr.RetainAvailable == 0
		if pr.MaximumPacketSize != nil {
			cn.maxOut = *pr.MaximumPacketSize
		}
		if pr.TopicAliasMaximum != nil && !c.opts.NoTopicAliases {
			cn.aliasMax = *pr.TopicAliasMaximum
		}
	} else if c.window == 0 {
		c.window = 64
	}
	if !ack.SessionPresent {
		// The server forgot the QoS 2 messages it had sent: no PUBREL
		// will come for them.
		for id := range c.inQoS2 {
			c.store.DeleteInbound(id)
		}
		clear(c.inQoS2)
	}
	// [MQTT-4.4.0-1]: resend unacknowledged PUBLISH (DUP) and PUBREL, in
	// their original order [MQTT-4.6.0-1], before anything new.
	pending := make([]*outMsg, 0, len(c.inflight))
	for _, m := range c.inflight {
		pending = append(pending, m)
	}
	slices.SortFunc(pending, func(a, b *outMsg) int { return compareSeq(a.Seq, b.Seq) })
	for _, m := range pending {
		if m.Released {
			cn.send(&packet.Pubrel{PacketID: m.Publish.PacketID})
		} else {
			c.sendPublish(cn, m.Publish, m.sent)
			m.sent = true
		}
		c.resent++
	}
	c.cn = cn
	c.signalSlot()
	c.mu.Unlock()

	ka := c.opts.keepAlive()
	if pr.ServerKeepAlive != nil {
		ka = time.Duration(*pr.ServerKeepAlive) * time.Second
	}
	cn.wg.Add(2)
	go cn.writeLoop()
	go c.readLoop(cn)
	if ka > 0 {
		timeout := c.opts.PingTimeout
		if timeout <= 0 || timeout > ka {
			timeout = ka / 2
		}
		cn.wg.Add(1)
		go c.pinger(cn, ka, timeout)
	}
	if !ack.SessionPresent {
		c.resp.forget()
	}
	if c.opts.OnConnect != nil {
		c.opts.OnConnect(c, ack.SessionPresent)
	}
}

// run watches the connection, and reconnects or ends the client when it is
// lost.
func (c *Client) run(cn *conn) {
	for {
		<-cn.done
		cn.wg.Wait()
		err := cn.reason()
		c.mu.Lock()
		c.cn = nil
		for id, ch := range c.acks {
			close(ch)
			delete(c.acks, id)
		}
		closed := c.closed
		c.mu.Unlock()
		if closed {
			c.end(ErrClosed)
			return
		}
		if c.opts.OnConnectionLost != nil {
			c.opts.OnConnectionLost(c, err)
		}
		if !c.opts.Reconnect {
			c.end(err)
			return
		}
		if cn = c.reconnect(); cn == nil {
			c.end(ErrClosed)
			return
		}
	}
}

func (c *Client) reconnect() *conn {
	backoff := orDefault(c.opts.MinBackoff, 100*time.Millisecond)
	maxBackoff := max(orDefault(c.opts.MaxBackoff, 30*time.Second), backoff)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		// Jitter, so that clients dropped together do not come back together.
		t.Reset(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-t.C:
		case <-c.closing:
			return nil
		}
		cn, ack, err := c.connect(c.ctx, false)
		if err == nil {
			c.established(cn, ack)
			return cn
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// end ends the client: Done is closed and the tokens of messages in flight
// complete with err (the messages stay in the Store).
func (c *Client) end(err error) {
	c.mu.Lock()
	c.closed = true
	if c.err == nil {
		c.err = err
	}
	for _, m := range c.inflight {
		if m.tok != nil {
			m.tok.err = err
			close(m.tok.done)
			m.tok = nil
		}
	}
	c.signalSlot()
	c.mu.Unlock()
	c.cancel()
	c.closeClosing()
	close(c.done)
}

func (c *Client) closeClosing() {
	select {
	case <-c.closing:
	default:
		close(c.closing)
	}
}

// Close sends DISCONNECT, closes the connection and ends the client,
// without waiting for the acknowledgement of what is in flight: that stays
// in the Store, for a client started later with it. It waits until the
// client's goroutines are done, except the one running OnMessage, and must
// not be called from OnConnect or OnConnectionLost.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closed = true
	c.closeClosing()
	cn := c.cn
	c.mu.Unlock()
	c.cancel()
	if cn != nil {
		cn.shutdown(ErrClosed, &packet.Disconnect{})
	}
	<-c.done
	return nil
}

// Done is closed when the client ended: after Close, or after the loss of
// the connection when Options.Reconnect is false.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the client ended, once Done is closed: ErrClosed after
// Close, or the reason of the connection's loss (a *ReasonError for a
// DISCONNECT from the server, ErrKeepAliveTimeout, a network error).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ClientID returns the client identifier: Options.ClientID, or the one the
// server assigned.
func (c *Client) ClientID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientID
}

// Connected reports whether the client has a connection at the moment.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cn != nil
}

func (c *Client) signalSlot() {
	if c.slotWait {
		close(c.slot)
		c.slot = make(chan struct{})
		c.slotWait = false
	}
}

// allocID returns a packet identifier in use neither by a message in flight
// nor by a SUBSCRIBE or UNSUBSCRIBE awaiting its acknowledgement.
func (c *Client) allocID() (uint16, error) {
	for range 65535 {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, ok := c.inflight[c.nextID]; ok {
			continue
		}
		if _, ok := c.acks[c.nextID]; ok {
			continue
		}
		return c.nextID, nil
	}
	return 0, errors.New("mqtt client: every packet identifier is in use")
}

// Publish sends m and, for QoS 1 and 2, waits until the server
// acknowledged it (see PublishAsync). A QoS 0 message is done once queued
// for the socket.
func (c *Client) Publish(ctx context.Context, m *Message) error {
	tok, err := c.PublishAsync(ctx, m)
	if err != nil {
		return err
	}
	return tok.Wait(ctx)
}

// PublishAsync sends m and returns once it is in flight, with a Token that
// completes on the acknowledgement. While the inflight window is full (the
// server's Receive Maximum in MQTT 5, Options.Window) it waits for a place
// or for ctx. A QoS 1 or 2 message published between connections is kept
// in flight and sent on the next connection; a QoS 0 one is refused with
// ErrNotConnected.
func (c *Client) PublishAsync(ctx context.Context, m *Message) (*Token, error) {
	if m.QoS > 2 {
		return nil, fmt.Errorf("mqtt client: QoS %d", m.QoS)
	}
	if err := topic.ValidateName(m.Topic); err != nil {
		return nil, fmt.Errorf("mqtt client: topic %q: %w", m.Topic, err)
	}
	if len(m.Properties.SubscriptionIdentifier) > 0 || m.Properties.TopicAlias != nil {
		// [MQTT-3.3.4-6]; aliases are the client's business.
		return nil, errors.New("mqtt client: a published message carries no Subscription Identifier or Topic Alias")
	}
	c.mu.Lock()
	cn := c.cn
	c.mu.Unlock()
	if cn != nil && !cn.waitSpace(c.closing, ctx.Done()) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, ErrClosed
	}
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if m.QoS == 0 || len(c.inflight) < c.window {
			break
		}
		c.slotWait = true
		ch := c.slot
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	if m.QoS > c.maxQoS {
		return nil, fmt.Errorf("mqtt client: QoS %d is above the server's Maximum QoS %d", m.QoS, c.maxQoS)
	}
	if m.Retain && c.noRetain {
		return nil, errors.New("mqtt client: the server does not support retained messages")
	}
	p := &packet.Publish{QoS: m.QoS, Retain: m.Retain, Topic: m.Topic, Properties: m.Properties, Payload: m.Payload}
	if m.QoS == 0 {
		if c.cn == nil {
			return nil, ErrNotConnected
		}
		return doneToken, c.sendPublish(c.cn, p, false)
	}
	id, err := c.allocID()
	if err != nil {
		return nil, err
	}
	p.PacketID = id
	p.Payload = slices.Clone(m.Payload)
	c.seq++
	om := &outMsg{Stored: Stored{Seq: c.seq, Publish: p}, tok: newToken()}
	if err := c.store.PutOutgoing(om.Stored); err != nil {
		return nil, fmt.Errorf("mqtt client: store: %w", err)
	}
	if c.cn != nil {
		switch err := c.sendPublish(c.cn, p, false); {
		case err == nil:
			om.sent = true
		case errors.Is(err, ErrConnectionLost):
			// The connection ended and its successor is not there yet:
			// the message waits for it, as between connections.
		default:
			c.store.DeleteOutgoing(id)
			return nil, err
		}
	}
	c.inflight[id] = om
	c.peak = max(c.peak, len(c.inflight))
	return om.tok, nil
}

// sendPublish queues p on cn, with a topic alias when the server allows
// one: the first topics get one each, and later PUBLISHes on them send the
// alias alone. Called with c.mu held.
func (c *Client) sendPublish(cn *conn, p *packet.Publish, dup bool) error {
	q := *p
	q.Dup = dup
	var added string
	if cn.aliasMax > 0 {
		if a, ok := cn.aliasOut[p.Topic]; ok {
			q.Topic = ""
			q.Properties.TopicAlias = &a
		} else if len(cn.aliasOut) < int(cn.aliasMax) {
			a := uint16(len(cn.aliasOut) + 1)
			cn.aliasOut[p.Topic] = a
			added = p.Topic
			q.Properties.TopicAlias = &a
		}
	}
	err := cn.send(&q)
	if err != nil && added != "" {
		delete(cn.aliasOut, added)
	}
	return err
}

// complete ends the flow of m: the server acknowledged it or refused it.
func (c *Client) complete(m *outMsg, err error) error {
	id := m.Publish.PacketID
	delete(c.inflight, id)
	c.signalSlot()
	if m.tok != nil {
		m.tok.err = err
		close(m.tok.done)
		m.tok = nil
	}
	return c.store.DeleteOutgoing(id)
}

func ackError(t packet.Type, code packet.ReasonCode, p *packet.Properties) error {
	if !code.IsError() {
		return nil
	}
	return &ReasonError{Packet: t, Code: code, Reason: p.ReasonString}
}

func (c *Client) readLoop(cn *conn) {
	defer cn.wg.Done()
	var buf []byte
	for {
		p, b, err := readPacket(cn.br, buf, c.opts.MaximumPacketSize, c.v)
		buf = b
		if err == nil {
			cn.reads.Add(1)
			err = c.handle(cn, p)
		}
		if err != nil {
			cn.fail(err)
			return
		}
	}
}

func (c *Client) handle(cn *conn, p packet.Packet) error {
	switch p := p.(type) {
	case *packet.Publish:
		return c.handlePublish(cn, p)
	case *packet.Puback:
		c.mu.Lock()
		defer c.mu.Unlock()
		if m := c.inflight[p.PacketID]; m != nil && m.Publish.QoS == 1 {
			return c.complete(m, ackError(packet.TypePuback, p.ReasonCode, &p.Properties))
		}
	case *packet.Pubrec:
		c.mu.Lock()
		defer c.mu.Unlock()
		m := c.inflight[p.PacketID]
		if m == nil || m.Publish.QoS != 2 {
			if c.v == packet.V5 {
				return cn.send(&packet.Pubrel{PacketID: p.PacketID, ReasonCode: packet.PacketIdentifierNotFound})
			}
			return cn.send(&packet.Pubrel{PacketID: p.PacketID})
		}
		if p.ReasonCode.IsError() {
			// A refusing PUBREC ends the flow: no PUBREL [MQTT-4.3.3].
			return c.complete(m, ackError(packet.TypePubrec, p.ReasonCode, &p.Properties))
		}
		if !m.Released {
			m.Released = true
			if err := c.store.PutOutgoing(m.Stored); err != nil {
				return err
			}
		}
		return cn.send(&packet.Pubrel{PacketID: p.PacketID})
	case *packet.Pubcomp:
		c.mu.Lock()
		defer c.mu.Unlock()
		if m := c.inflight[p.PacketID]; m != nil && m.Released {
			return c.complete(m, ackError(packet.TypePubcomp, p.ReasonCode, &p.Properties))
		}
	case *packet.Pubrel:
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.inQoS2[p.PacketID]
		if ok {
			delete(c.inQoS2, p.PacketID)
			if err := c.store.DeleteInbound(p.PacketID); err != nil {
				return err
			}
		}
		delete(cn.unacked, p.PacketID)
		comp := &packet.Pubcomp{PacketID: p.PacketID}
		if !ok && c.v == packet.V5 {
			comp.ReasonCode = packet.PacketIdentifierNotFound
		}
		return cn.send(comp)
	case *packet.Suback:
		c.answer(p.PacketID, &packet.Suback{PacketID: p.PacketID, Properties: p.Properties, ReasonCodes: slices.Clone(p.ReasonCodes)})
	case *packet.Unsuback:
		c.answer(p.PacketID, &packet.Unsuback{PacketID: p.PacketID, Properties: p.Properties, ReasonCodes: slices.Clone(p.ReasonCodes)})
	case *packet.Pingresp:
	case *packet.Disconnect:
		return &ReasonError{Packet: packet.TypeDisconnect, Code: p.ReasonCode, Reason: p.Properties.ReasonString}
	default:
		return &protocolError{packet.ProtocolError, fmt.Sprintf("unexpected %v", p.Type())}
	}
	return nil
}

func (c *Client) answer(id uint16, p packet.Packet) {
	c.mu.Lock()
	ch := c.acks[id]
	delete(c.acks, id)
	c.mu.Unlock()
	if ch != nil {
		ch <- p
	}
}

func (c *Client) handlePublish(cn *conn, p *packet.Publish) error {
	if a := p.Properties.TopicAlias; a != nil {
		if *a == 0 || *a > c.opts.TopicAliasMaximum {
			return &protocolError{packet.TopicAliasInvalid, fmt.Sprintf("topic alias %d", *a)}
		}
		if p.Topic != "" {
			cn.aliasIn[*a] = p.Topic
		} else if p.Topic = cn.aliasIn[*a]; p.Topic == "" {
			return &protocolError{packet.ProtocolError, fmt.Sprintf("unknown topic alias %d", *a)}
		}
	}
	m := &Message{Topic: p.Topic, Payload: slices.Clone(p.Payload), QoS: p.QoS, Retain: p.Retain, Dup: p.Dup, Properties: p.Properties}
	m.Properties.TopicAlias = nil
	m.Properties.CorrelationData = slices.Clone(p.Properties.CorrelationData)
	m.Properties.AuthData = nil
	in := inbound{m: m, id: p.PacketID, qos: p.QoS}
	if p.QoS > 0 {
		c.mu.Lock()
		if _, ok := cn.unacked[p.PacketID]; !ok {
			if c.v == packet.V5 && len(cn.unacked) >= c.opts.receiveMaximum() {
				c.mu.Unlock()
				return &protocolError{packet.ReceiveMaximumExceeded, "more unacknowledged QoS 1 and 2 messages than the client's Receive Maximum"}
			}
			cn.unacked[p.PacketID] = struct{}{}
		}
		if _, dup := c.inQoS2[p.PacketID]; dup && p.QoS == 2 {
			c.mu.Unlock()
			return cn.send(&packet.Pubrec{PacketID: p.PacketID})
		}
		if _, busy := c.delivering[p.PacketID]; busy {
			// Sent again while the handler has it: acknowledge on this
			// connection when the handler returns.
			c.delivering[p.PacketID] = cn
			c.mu.Unlock()
			return nil
		}
		c.delivering[p.PacketID] = cn
		c.mu.Unlock()
	}
	select {
	case c.deliver <- in:
	case <-c.closing:
	}
	return nil
}

func (c *Client) deliverLoop() {
	for {
		var in inbound
		select {
		case in = <-c.deliver:
		case <-c.closing:
			return
		}
		if !c.resp.take(in.m) {
			switch {
			case c.opts.OnMessage != nil:
				c.opts.OnMessage(in.m)
			case c.opts.Messages != nil:
				select {
				case c.opts.Messages <- in.m:
				case <-c.closing:
					return
				}
			}
		}
		if in.qos > 0 {
			c.acknowledge(in)
		}
	}
}

// acknowledge sends the PUBACK or PUBREC of a handled message, if the
// connection that should carry it is still there; otherwise the server
// sends the message again on the next one.
func (c *Client) acknowledge(in inbound) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn := c.delivering[in.id]
	delete(c.delivering, in.id)
	if in.qos == 2 {
		if err := c.store.PutInbound(in.id); err != nil {
			// Not acknowledged: the server sends it again, and the
			// application sees it twice rather than lose it.
			return
		}
		c.inQoS2[in.id] = struct{}{}
	}
	if cn == nil || cn != c.cn {
		return
	}
	if in.qos == 1 {
		delete(cn.unacked, in.id)
		cn.send(&packet.Puback{PacketID: in.id})
		return
	}
	cn.send(&packet.Pubrec{PacketID: in.id})
}

func (c *Client) pinger(cn *conn, every, timeout time.Duration) {
	defer cn.wg.Done()
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-cn.done:
			return
		}
		before := cn.reads.Load()
		if cn.send(&packet.Pingreq{}) != nil {
			return
		}
		t.Reset(timeout)
		select {
		case <-t.C:
		case <-cn.done:
			return
		}
		if cn.reads.Load() == before {
			cn.finish(ErrKeepAliveTimeout)
			return
		}
		t.Reset(every - timeout)
	}
}

// Subscribe sends s (its PacketID is set by the client) and returns the
// server's SUBACK, whose ReasonCodes say, in the order of s.Subscriptions,
// the QoS granted or why a subscription was refused: a refusal is not an
// error of Subscribe. The MQTT 5 options (NoLocal, RetainAsPublished,
// RetainHandling) and properties (Subscription Identifier, User Property)
// are left out in 3.1.1. A subscription is made on the current connection
// only: see OnConnect for what happens after a reconnection.
func (c *Client) Subscribe(ctx context.Context, s *packet.Subscribe) (*packet.Suback, error) {
	p := *s
	ack, err := c.roundTrip(ctx, func(id uint16) packet.Packet { p.PacketID = id; return &p })
	if err != nil {
		return nil, err
	}
	sa, ok := ack.(*packet.Suback)
	if !ok || len(sa.ReasonCodes) != len(s.Subscriptions) {
		return nil, errors.New("mqtt client: server answered SUBSCRIBE with a wrong acknowledgement")
	}
	return sa, nil
}

// Unsubscribe sends u (its PacketID is set by the client) and returns the
// server's UNSUBACK; in MQTT 5 its ReasonCodes say, in the order of
// u.Filters, whether each subscription existed. 3.1.1 has no codes.
func (c *Client) Unsubscribe(ctx context.Context, u *packet.Unsubscribe) (*packet.Unsuback, error) {
	p := *u
	ack, err := c.roundTrip(ctx, func(id uint16) packet.Packet { p.PacketID = id; return &p })
	if err != nil {
		return nil, err
	}
	ua, ok := ack.(*packet.Unsuback)
	if !ok || (c.v == packet.V5 && len(ua.ReasonCodes) != len(u.Filters)) {
		return nil, errors.New("mqtt client: server answered UNSUBSCRIBE with a wrong acknowledgement")
	}
	return ua, nil
}

func (c *Client) roundTrip(ctx context.Context, build func(id uint16) packet.Packet) (packet.Packet, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	cn := c.cn
	if cn == nil {
		c.mu.Unlock()
		return nil, ErrNotConnected
	}
	id, err := c.allocID()
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	if err := cn.send(build(id)); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	ch := make(chan packet.Packet, 1)
	c.acks[id] = ch
	c.mu.Unlock()
	select {
	case p, ok := <-ch:
		if !ok {
			return nil, ErrConnectionLost
		}
		return p, nil
	case <-ctx.Done():
		c.mu.Lock()
		if c.acks[id] == ch {
			delete(c.acks, id)
		}
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}
