package mqtt

import (
	"errors"
	"net"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Fixed header bytes of the acknowledgements the library encodes itself.
const (
	hdrPuback  = byte(packet.TypePuback) << 4
	hdrPubrec  = byte(packet.TypePubrec) << 4
	hdrPubrel  = byte(packet.TypePubrel)<<4 | 0b0010
	hdrPubcomp = byte(packet.TypePubcomp) << 4
)

// readLoop reads and handles packets until the connection ends. It runs on
// the reader goroutine, which owns the protocol state. It returns why the
// connection ended (errNormalDisconnect for a DISCONNECT 0x00).
func (c *Conn) readLoop() error {
	max := c.srv.maxPacketSize()
	for {
		if c.backlogged.Load() {
			c.waitRoom()
		}
		if c.closing.Load() {
			return ErrClosed
		}
		h, body, err := c.rd.next(max)
		if err == errIdle {
			if c.closing.Load() {
				return ErrClosed
			}
			if c.park() {
				return errParked
			}
			continue
		}
		if err != nil {
			return c.readFailed(err)
		}
		if c.closing.Load() {
			// Closing: nothing more is handled; finish reports the reason.
			return ErrClosed
		}
		if err := c.handle(h, body); err != nil {
			return err
		}
	}
}

// readFailed turns a framing or socket error into the end of the
// connection.
func (c *Conn) readFailed(err error) error {
	var pe *packet.Error
	if errors.As(err, &pe) {
		return c.fail(pe.Code, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && c.rd.deadline > 0 {
		// [MQTT-3.1.2-22] (3.1.1: [MQTT-3.1.2-24]).
		return c.fail(packet.KeepAliveTimeout, errors.New("mqtt: keep alive expired"))
	}
	return err
}

// fail closes the connection for a protocol violation or decode error: v5
// DISCONNECT with code, then close; 3.1.1 just closes.
func (c *Conn) fail(code packet.ReasonCode, cause error) error {
	var de *DisconnectError
	if !errors.As(cause, &de) {
		de = &DisconnectError{Code: code, Err: cause}
	}
	c.closeWith(code, de)
	return de
}

// failDecode handles an error of a packet decoder.
func (c *Conn) failDecode(err error) error {
	var pe *packet.Error
	if errors.As(err, &pe) {
		return c.fail(pe.Code, err)
	}
	return c.fail(packet.MalformedPacket, err)
}

// handle dispatches one packet.
func (c *Conn) handle(h packet.Header, body []byte) error {
	c.readerG.check()
	switch h.Type {
	case packet.TypePublish:
		return c.handlePublish(h, body)
	case packet.TypePuback:
		var p packet.Puback
		if err := p.Decode(h.Flags, body, c.version); err != nil {
			return c.failDecode(err)
		}
		if m := c.ack(p.PacketID, 1, false); m != nil && c.srv.hooks.delivered != nil {
			c.srv.hooks.delivered.Delivered(c, m)
		}
	case packet.TypePubrec:
		var p packet.Pubrec
		if err := p.Decode(h.Flags, body, c.version); err != nil {
			return c.failDecode(err)
		}
		if c.version == packet.V5 && p.ReasonCode.IsError() {
			// An error code ends the exchange (section 4.3.3): no PUBREL.
			if m := c.ack(p.PacketID, 2, false); m != nil && c.srv.hooks.delivered != nil {
				c.srv.hooks.delivered.Delivered(c, m)
			}
			return nil
		}
		if !c.released(p.PacketID) {
			code := packet.Success
			if c.version == packet.V5 {
				code = packet.PacketIdentifierNotFound
			}
			c.enqueueAck(hdrPubrel, p.PacketID, code)
		}
	case packet.TypePubrel:
		var p packet.Pubrel
		if err := p.Decode(h.Flags, body, c.version); err != nil {
			return c.failDecode(err)
		}
		code := packet.Success
		c.mu.Lock()
		_, awaited := c.awaitRel[p.PacketID]
		if awaited {
			delete(c.awaitRel, p.PacketID)
		} else if c.version == packet.V5 {
			code = packet.PacketIdentifierNotFound
		}
		c.appendAckLocked(hdrPubcomp, p.PacketID, code)
		c.mu.Unlock()
		if awaited && c.srv.hooks.qos2 != nil {
			c.srv.hooks.qos2.ReleasedInbound(c, p.PacketID)
		}
	case packet.TypePubcomp:
		var p packet.Pubcomp
		if err := p.Decode(h.Flags, body, c.version); err != nil {
			return c.failDecode(err)
		}
		if m := c.ack(p.PacketID, 2, true); m != nil && c.srv.hooks.delivered != nil {
			c.srv.hooks.delivered.Delivered(c, m)
		}
	case packet.TypeSubscribe:
		var p packet.Subscribe
		if err := p.Decode(h.Flags, body, c.version); err != nil {
			return c.failDecode(err)
		}
		codes := fitCodes(c.srv.Handler.Subscribe(c, &p), len(p.Subscriptions), subackAllowed)
		if c.version != packet.V5 {
			for i, code := range codes {
				if code.IsError() {
					codes[i] = 0x80 // 3.1.1 Failure
				}
			}
		}
		c.enqueue(&packet.Suback{PacketID: p.PacketID, ReasonCodes: codes})
	case packet.TypeUnsubscribe:
		var p packet.Unsubscribe
		if err := p.Decode(h.Flags, body, c.version); err != nil {
			return c.failDecode(err)
		}
		codes := fitCodes(c.srv.Handler.Unsubscribe(c, &p), len(p.Filters), unsubackAllowed)
		c.enqueue(&packet.Unsuback{PacketID: p.PacketID, ReasonCodes: codes})
	case packet.TypePingreq:
		var p packet.Pingreq
		if err := p.Decode(h.Flags, body, c.version); err != nil {
			return c.failDecode(err)
		}
		c.mu.Lock()
		if c.state == stateOpen && c.werr == nil {
			c.out = append(c.outBuf(), byte(packet.TypePingresp)<<4, 0)
			c.kickLocked()
		}
		c.mu.Unlock()
	case packet.TypeDisconnect:
		return c.handleDisconnect(h, body)
	case packet.TypeAuth:
		return c.handleAuth(h, body)
	case packet.TypeConnect:
		// [MQTT-3.1.0-2] a second CONNECT is a Protocol Error.
		return c.fail(packet.ProtocolError, protocolError(packet.ProtocolError, "second CONNECT"))
	default:
		// CONNACK, SUBACK, UNSUBACK, PINGRESP go to clients only.
		return c.fail(packet.ProtocolError, protocolError(packet.ProtocolError, h.Type.String()+" sent by a client"))
	}
	return nil
}

// fitCodes makes the handler's answer one code per request entry, each one
// the packet may carry (others become UnspecifiedError, so that a handler's
// mistake cannot leave a request unanswered).
func fitCodes(codes []packet.ReasonCode, n int, allowed func(packet.ReasonCode) bool) []packet.ReasonCode {
	res := make([]packet.ReasonCode, n)
	for i := range res {
		res[i] = packet.UnspecifiedError
		if i < len(codes) && allowed(codes[i]) {
			res[i] = codes[i]
		}
	}
	return res
}

// Reason codes each acknowledgement may carry (MQTT 5 sections 3.4.2.1,
// 3.9.3, 3.11.3).
func pubackAllowed(c packet.ReasonCode) bool {
	switch c {
	case packet.Success, packet.NoMatchingSubscribers, packet.UnspecifiedError,
		packet.ImplementationSpecificError, packet.NotAuthorized, packet.TopicNameInvalid,
		packet.PacketIdentifierInUse, packet.QuotaExceeded, packet.PayloadFormatInvalid:
		return true
	}
	return false
}

func subackAllowed(c packet.ReasonCode) bool {
	switch c {
	case packet.GrantedQoS0, packet.GrantedQoS1, packet.GrantedQoS2, packet.UnspecifiedError,
		packet.ImplementationSpecificError, packet.NotAuthorized, packet.TopicFilterInvalid,
		packet.PacketIdentifierInUse, packet.QuotaExceeded, packet.SharedSubscriptionsNotSupported,
		packet.SubscriptionIdentifiersNotSupported, packet.WildcardSubscriptionsNotSupported:
		return true
	}
	return false
}

func unsubackAllowed(c packet.ReasonCode) bool {
	switch c {
	case packet.Success, packet.NoSubscriptionExisted, packet.UnspecifiedError,
		packet.ImplementationSpecificError, packet.NotAuthorized, packet.TopicFilterInvalid,
		packet.PacketIdentifierInUse:
		return true
	}
	return false
}

func (c *Conn) handlePublish(h packet.Header, body []byte) error {
	p := publishPool.Get().(*packet.Publish)
	*p = packet.Publish{}
	defer publishPool.Put(p)
	if err := p.Decode(h.Flags, body, c.version); err != nil {
		return c.failDecode(err)
	}
	if alias := p.Properties.TopicAlias; alias != nil && c.version == packet.V5 {
		a := *alias
		if a == 0 || a > c.srv.topicAliasMaximum() {
			// [MQTT-3.3.2-8] [MQTT-3.3.2-9]
			return c.fail(packet.TopicAliasInvalid, protocolError(packet.TopicAliasInvalid, "topic alias out of range"))
		}
		if p.Topic != "" {
			if c.aliases == nil {
				c.aliases = make(map[uint16]string)
			}
			c.aliases[a] = p.Topic
		} else if t, ok := c.aliases[a]; ok {
			p.Topic = t
		} else {
			return c.fail(packet.ProtocolError, protocolError(packet.ProtocolError, "unknown topic alias"))
		}
		p.Properties.TopicAlias = nil // resolved: the handler sees no alias
	}
	if p.Topic == "" {
		return c.fail(packet.ProtocolError, protocolError(packet.ProtocolError, "empty topic without alias"))
	}

	if p.QoS == 0 {
		c.srv.Handler.Publish(c, p)
		return nil
	}
	c.mu.Lock()
	if p.QoS == 2 {
		if _, dup := c.awaitRel[p.PacketID]; dup {
			// Method A (section 4.3.3): the message was already handed
			// over. Answer unless its PUBREC is still pending: that one
			// will.
			if !c.ackPendingLocked(p.PacketID) {
				c.appendAckLocked(hdrPubrec, p.PacketID, packet.Success)
			}
			c.mu.Unlock()
			return nil
		}
	}
	if len(c.awaitRel)+c.pendingQoS1+1 > c.srv.receiveMaximum() {
		c.mu.Unlock()
		// [MQTT-3.3.4-9]
		return c.fail(packet.ReceiveMaximumExceeded, protocolError(packet.ReceiveMaximumExceeded, "receive maximum exceeded"))
	}
	first := hdrPuback
	if p.QoS == 2 {
		first = hdrPubrec
		if c.awaitRel == nil {
			c.awaitRel = make(map[uint16]struct{})
		}
		c.awaitRel[p.PacketID] = struct{}{}
	}
	if c.srv.hooks.async == nil {
		c.mu.Unlock()
		c.awaitRelease(first, p.PacketID)
		code, withhold := c.ackCode(c.srv.Handler.Publish(c, p))
		c.mu.Lock()
		forgot := c.refusedLocked(first, p.PacketID, code)
		if !withhold {
			c.appendAckLocked(first, p.PacketID, code)
		}
		c.mu.Unlock()
		c.forgetRelease(forgot, p.PacketID)
		if withhold {
			return c.fail(code, errNotAccepted)
		}
		return nil
	}
	a := &pendingAck{first: first, id: p.PacketID}
	c.pendingAcks = append(c.pendingAcks, a)
	if p.QoS == 1 {
		c.pendingQoS1++
	}
	c.mu.Unlock()
	c.awaitRelease(first, p.PacketID)
	c.srv.hooks.async.PublishAsync(c, p, func(code packet.ReasonCode) { c.completeAck(a, code) })
	return nil
}

// awaitRelease tells a QoS2SessionHandler of an inbound QoS 2 id about to
// be handed over.
func (c *Conn) awaitRelease(first byte, id uint16) {
	if first == hdrPubrec && c.srv.hooks.qos2 != nil {
		c.srv.hooks.qos2.AwaitRelease(c, id)
	}
}

// forgetRelease tells a QoS2SessionHandler that id was forgotten.
func (c *Conn) forgetRelease(forgot bool, id uint16) {
	if forgot && c.srv.hooks.qos2 != nil {
		c.srv.hooks.qos2.ReleasedInbound(c, id)
	}
}

// pendingAck is the acknowledgement of an inbound QoS 1/2 message.
type pendingAck struct {
	first    byte // hdrPuback or hdrPubrec
	id       uint16
	code     packet.ReasonCode
	done     bool
	withhold bool // not to be acknowledged: the connection closes instead
}

// ackPendingLocked reports whether the PUBREC of id is still pending.
func (c *Conn) ackPendingLocked(id uint16) bool {
	for _, a := range c.pendingAcks {
		if a.id == id && a.first == hdrPubrec && !a.done {
			return true
		}
	}
	return false
}

// refusedLocked forgets the id of a refused QoS 2 message: a retry is a
// new message. It reports whether it did. c.mu must be held.
func (c *Conn) refusedLocked(first byte, id uint16, code packet.ReasonCode) bool {
	if first == hdrPubrec && code.IsError() {
		delete(c.awaitRel, id)
		return true
	}
	return false
}

// completeAck records the handler's code for the asynchronously handled a
// and writes every acknowledgement that is now due, in arrival order.
func (c *Conn) completeAck(a *pendingAck, code packet.ReasonCode) {
	c.mu.Lock()
	a.code, a.withhold = c.ackCode(code)
	a.done = true
	forgot := c.refusedLocked(a.first, a.id, a.code)
	n := 0
	withheld := false
	for ; n < len(c.pendingAcks) && c.pendingAcks[n].done; n++ {
		p := c.pendingAcks[n]
		if p.withhold {
			// Neither this nor any later acknowledgement goes out.
			withheld = true
			break
		}
		c.appendAckLocked(p.first, p.id, p.code)
		if p.first == hdrPuback {
			c.pendingQoS1--
		}
		c.pendingAcks[n] = nil
	}
	c.pendingAcks = c.pendingAcks[n:]
	if len(c.pendingAcks) == 0 {
		c.pendingAcks = nil
	}
	c.mu.Unlock()
	c.forgetRelease(forgot, a.id)
	if withheld {
		c.closeWith(packet.UnspecifiedError, &DisconnectError{Code: packet.UnspecifiedError, Err: errNotAccepted})
	}
}

// errNotAccepted ends a 3.1.1 connection whose message the handler could
// not accept (see ackCode).
var errNotAccepted = errors.New("mqtt: message not accepted (3.1.1 has no negative acknowledgement)")

// ackCode is the code for PUBACK/PUBREC: a code PUBACK may not carry
// becomes UnspecifiedError (or Success if not an error). 3.1.1 has no
// codes: a message refused by policy (not authorized, an invalid topic or
// payload, a quota) is acknowledged all the same, as [MQTT-3.3.5-2]
// allows, but one the server failed to take (0x80, 0x83, 0x88, 0x89: a
// store or a cluster that did not answer) must not be: withhold says so,
// and the connection is closed instead, so that the client sends the
// message again rather than believe it delivered.
func (c *Conn) ackCode(code packet.ReasonCode) (_ packet.ReasonCode, withhold bool) {
	switch {
	case c.version != packet.V5:
		switch code {
		case packet.UnspecifiedError, packet.ImplementationSpecificError, packet.ServerUnavailable, packet.ServerBusy:
			return code, true
		}
		return packet.Success, false
	case pubackAllowed(code):
		return code, false
	case code.IsError():
		return packet.UnspecifiedError, false
	}
	return packet.Success, false
}

func (c *Conn) handleDisconnect(h packet.Header, body []byte) error {
	var p packet.Disconnect
	if err := p.Decode(h.Flags, body, c.version); err != nil {
		return c.failDecode(err)
	}
	if se := p.Properties.SessionExpiryInterval; se != nil && c.version == packet.V5 {
		c.mu.Lock()
		was := c.sessionExpiry
		if was != 0 || *se == 0 {
			c.sessionExpiry = *se
		}
		c.mu.Unlock()
		if was == 0 && *se != 0 {
			// [MQTT-3.14.2-2]
			return c.fail(packet.ProtocolError, protocolError(packet.ProtocolError, "session expiry set in DISCONNECT after 0 in CONNECT"))
		}
	}
	if p.ReasonCode == packet.NormalDisconnection {
		return errNormalDisconnect
	}
	return &DisconnectError{Code: p.ReasonCode, Remote: true, Reason: p.Properties.ReasonString}
}

func (c *Conn) handleAuth(h packet.Header, body []byte) error {
	var p packet.Auth
	if err := p.Decode(h.Flags, body, c.version); err != nil {
		return c.failDecode(err)
	}
	if c.srv.hooks.auth == nil {
		return c.fail(packet.ProtocolError, protocolError(packet.ProtocolError, "AUTH without enhanced authentication"))
	}
	reply := c.srv.hooks.auth.Auth(c, &p)
	if reply == nil || reply.ReasonCode.IsError() {
		code := packet.NotAuthorized
		if reply != nil {
			code = reply.ReasonCode
		}
		return c.fail(code, &DisconnectError{Code: code, Err: errors.New("mqtt: re-authentication refused")})
	}
	c.enqueue(reply)
	return nil
}
