package mqtt

import (
	"errors"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Send queues an outbound PUBLISH. It is safe from any goroutine and never
// blocks. Send takes ownership of p: the library sets its PacketID (QoS 1
// and 2), keeps it until written (QoS 0) or acknowledged, and hands the same
// pointer to DeliveredHandler.Delivered and Unacked, so callers can tell
// their messages apart by pointer. Neither p nor its slices may be modified
// by the caller afterwards.
//
// For QoS 1 and 2 the library allocates the packet identifier when the
// message enters the inflight window, in order, and handles the
// acknowledgements; messages beyond the window wait in order. A message with
// PacketID set (a retransmission from Unacked, or an id the caller derives
// from its own durable numbering) keeps its id if it is free. Send returns ErrQueueFull when MaxQueued messages already wait,
// and ErrClosed once the connection is closing. A message bigger than the
// client's Maximum Packet Size is dropped [MQTT-3.1.2-24] and counted in
// Dropped.
func (c *Conn) Send(p *packet.Publish) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.admitLocked(); err != nil {
		return err
	}
	if p.QoS == 0 {
		if c.state == stateOpen {
			c.writePublishLocked(p)
		} else {
			c.pending = append(c.pending, p)
		}
		return nil
	}
	if c.state == stateOpen && len(c.pending) == 0 && len(c.inflight) < int(c.window) {
		c.writePublishLocked(p)
	} else {
		c.pending = append(c.pending, p)
	}
	return nil
}

// writePublishLocked encodes p into the queue; for QoS > 0 it allocates the
// packet identifier and enters the inflight window, which has room.
func (c *Conn) writePublishLocked(p *packet.Publish) {
	var id uint16
	if p.QoS > 0 {
		id = c.allocIDLocked(p)
		p.PacketID = id
	}
	start := len(c.out)
	wire := p
	if c.aliasOutMax > 0 && p.Properties.TopicAlias == nil {
		wire = c.aliasLocked(p)
	}
	b, err := wire.Append(c.outBuf(), c.version)
	if err != nil || (c.maxOut > 0 && len(b)-start > int(c.maxOut)) {
		c.out = c.out[:start] // b may be nil on error
		c.dropped++
		c.srv.logger().Debug("mqtt: outbound PUBLISH dropped", "client", c.clientID,
			"topic", p.Topic, "size", len(b)-start, "max", c.maxOut, "err", err)
		return
	}
	c.out = b
	c.outMsgs++
	if p.QoS > 0 {
		if c.inflight == nil {
			c.inflight = make(map[uint16]outMsg)
		}
		c.inflight[id] = outMsg{p: p, seq: c.seq}
		c.seq++
	}
	c.kickLocked()
}

// aliasLocked returns the packet to put on the wire for p with a topic
// alias: the alias alone for a topic that has one, topic and a new alias
// while aliases are left, p itself otherwise. p is not modified: it is what
// Unacked reports.
func (c *Conn) aliasLocked(p *packet.Publish) *packet.Publish {
	alias, known := c.aliasOut[p.Topic]
	if !known {
		if len(c.aliasOut) >= int(c.aliasOutMax) {
			return p
		}
		if c.aliasOut == nil {
			c.aliasOut = make(map[string]uint16)
		}
		alias = uint16(len(c.aliasOut) + 1)
		c.aliasOut[p.Topic] = alias
	}
	w := *p
	w.Properties.TopicAlias = &alias
	if known {
		w.Topic = "" // [MQTT-3.3.2-12]
	}
	return &w
}

// allocIDLocked returns a packet identifier not in the inflight window:
// p's own for a retransmission, otherwise the next free one.
func (c *Conn) allocIDLocked(p *packet.Publish) uint16 {
	if p.PacketID != 0 {
		// The caller's id: a retransmission, or an id derived from a
		// durable queue so that a resend after a restart reuses it and a
		// QoS 2 receiver recognises the message.
		if _, used := c.inflight[p.PacketID]; !used {
			return p.PacketID
		}
		p.Dup = false // a new id makes it a new message for the client
	}
	for {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, used := c.inflight[c.nextID]; !used {
			return c.nextID // terminates: the window is below 65535
		}
	}
}

// promoteLocked moves pending messages into the queue while the window has
// room.
func (c *Conn) promoteLocked() {
	n := 0
	for _, p := range c.pending {
		if p.QoS > 0 && len(c.inflight) >= int(c.window) {
			break
		}
		if _, rel := c.pendingRel[p]; rel {
			delete(c.pendingRel, p)
			c.writeReleaseLocked(p)
		} else {
			c.writePublishLocked(p)
		}
		n++
	}
	if n == 0 {
		return
	}
	clear(c.pending[:n])
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
	}
}

// ack ends the outbound exchange of id: the message leaves the window and
// the next pending ones enter it. It returns the message, nil if id is not
// inflight with the given QoS.
func (c *Conn) ack(id uint16, qos byte, needRel bool) *packet.Publish {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.inflight[id]
	if !ok || m.p.QoS != qos || m.rel != needRel {
		return nil
	}
	delete(c.inflight, id)
	if c.state == stateOpen {
		c.promoteLocked()
	}
	return m.p
}

// released records the PUBREC of a QoS 2 message and queues its PUBREL,
// at once or, with a ReleaseHandler, once the handler is done. It reports
// false when id is not an outbound QoS 2 message.
func (c *Conn) released(id uint16) bool {
	c.mu.Lock()
	m, ok := c.inflight[id]
	if !ok || m.p.QoS != 2 {
		c.mu.Unlock()
		return false
	}
	first := !m.rel
	m.rel = true
	c.inflight[id] = m
	if c.srv.hooks.release == nil || !first {
		c.appendAckLocked(hdrPubrel, id, packet.Success)
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	c.srv.hooks.release.Released(c, m.p, func() { c.enqueueAck(hdrPubrel, id, packet.Success) })
	return true
}

// admitLocked says whether one more outbound message may be queued.
func (c *Conn) admitLocked() error {
	if c.state >= stateClosing || c.werr != nil {
		return ErrClosed
	}
	if c.outMsgs+len(c.pending) >= c.srv.maxQueued() {
		return ErrQueueFull
	}
	return nil
}

// SendRelease resumes the QoS 2 exchange of p, whose PUBREC arrived on an
// earlier connection: it enters the inflight window with its PacketID and
// PUBREL is sent (after the CONNACK when called during Open); PUBCOMP then
// reports it to DeliveredHandler. It takes ownership of p like Send.
func (c *Conn) SendRelease(p *packet.Publish) error {
	if p.QoS != 2 || p.PacketID == 0 {
		return errors.New("mqtt: SendRelease needs a QoS 2 message with its packet identifier")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.admitLocked(); err != nil {
		return err
	}
	if c.state == stateOpen && len(c.pending) == 0 && len(c.inflight) < int(c.window) {
		c.writeReleaseLocked(p)
		return nil
	}
	if c.pendingRel == nil {
		c.pendingRel = make(map[*packet.Publish]struct{})
	}
	c.pendingRel[p] = struct{}{}
	c.pending = append(c.pending, p)
	return nil
}

// writeReleaseLocked puts p in the window in the released state and queues
// its PUBREL.
func (c *Conn) writeReleaseLocked(p *packet.Publish) {
	id := c.allocIDLocked(p)
	p.PacketID = id
	if c.inflight == nil {
		c.inflight = make(map[uint16]outMsg)
	}
	c.inflight[id] = outMsg{p: p, seq: c.seq, rel: true}
	c.seq++
	c.appendAckLocked(hdrPubrel, id, packet.Success)
}

// outBuf returns the queue, borrowing a buffer when it is empty.
func (c *Conn) outBuf() []byte {
	if c.out == nil {
		c.out = getBuf(smallBufSize)[:0]
	}
	return c.out
}

// enqueue encodes p into the queue. Encoding failures are logged and p is
// dropped: they are bugs in what the handler returned.
func (c *Conn) enqueue(p packet.Packet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOpen || c.werr != nil {
		return
	}
	start := len(c.outBuf())
	b, err := p.Append(c.out, c.version)
	if err != nil {
		c.out = c.out[:start]
		c.srv.logger().Warn("mqtt: encode", "client", c.clientID, "type", p.Type(), "err", err)
		return
	}
	c.out = b
	c.kickLocked()
}

// enqueueAck queues PUBACK, PUBREC, PUBREL or PUBCOMP (first is the fixed
// header byte).
func (c *Conn) enqueueAck(first byte, id uint16, code packet.ReasonCode) {
	c.mu.Lock()
	c.appendAckLocked(first, id, code)
	c.mu.Unlock()
}

func (c *Conn) appendAckLocked(first byte, id uint16, code packet.ReasonCode) {
	if c.state != stateOpen || c.werr != nil {
		return
	}
	b := c.outBuf()
	if c.version == packet.V5 && code != packet.Success {
		// The reason code may be omitted when it is 0x00 and there are no
		// properties [MQTT-3.4.2.1].
		b = append(b, first, 3, byte(id>>8), byte(id), byte(code))
	} else {
		b = append(b, first, 2, byte(id>>8), byte(id))
	}
	c.out = b
	c.kickLocked()
}

// appendDisconnect appends a v5 DISCONNECT with code and no properties.
func appendDisconnect(b []byte, code packet.ReasonCode) []byte {
	if code == packet.NormalDisconnection {
		return append(b, byte(packet.TypeDisconnect)<<4, 0)
	}
	return append(b, byte(packet.TypeDisconnect)<<4, 1, byte(code))
}

// maxBacklog bounds the bytes waiting for the socket that the reader adds
// to: the acknowledgements, PINGRESPs, SUBACKs... it queues in answer to the
// client's packets never block, so a client that sends but does not read
// would otherwise grow the queue until WriteTimeout. Past it the reader
// stops reading (waitRoom) until the writer got the backlog out: TCP then
// slows the client down, and one that reads nothing is closed by
// WriteTimeout. Disconnecting instead, as the AMQP engine does, would not
// tell the client why either, since the DISCONNECT would wait behind the
// backlog. Outbound PUBLISH packets count too (a subscriber that far behind
// need not be read from) but are bounded by MaxQueued on their own.
const maxBacklog = 256 << 10

// kickLocked starts the writer goroutine if there is something to write
// and none runs. The writer exists only while the queue is non-empty.
func (c *Conn) kickLocked() {
	if len(c.out)+c.writeLen > maxBacklog {
		c.backlogged.Store(true)
	}
	if c.writing || c.werr != nil || (len(c.out) == 0 && !c.closeAfter) {
		return
	}
	c.writing = true
	c.wg.Add(1)
	go c.writeLoop()
}

// waitRoom makes the reader wait while more than maxBacklog bytes wait
// for the socket (see maxBacklog), until the writer wrote them, failed, or
// the connection is closing.
func (c *Conn) waitRoom() {
	c.readerG.check()
	c.mu.Lock()
	for len(c.out)+c.writeLen > maxBacklog && c.state == stateOpen && c.werr == nil {
		// A writer runs: kickLocked started one for the bytes in out, and
		// it closes room after each write and when it exits.
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.mu.Unlock()
		<-room
		c.mu.Lock()
	}
	c.backlogged.Store(false)
	c.mu.Unlock()
}

// wakeRoomLocked wakes a reader in waitRoom to check again.
func (c *Conn) wakeRoomLocked() {
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
}

// writeLoop is the writer goroutine: it writes the queue in batches until
// it is empty, then exits (closing the socket after a write error). It
// owns the socket's write side; when the connection is closing, finish
// shuts it down once the writer is done.
func (c *Conn) writeLoop() {
	defer c.wg.Done()
	timeout := c.srv.writeTimeout()
	var batch []byte
	for {
		c.mu.Lock()
		if batch != nil {
			putBuf(batch)
			batch = nil
			c.writeLen = 0
			c.wakeRoomLocked()
		}
		if len(c.out) == 0 || c.werr != nil {
			c.writing = false
			failed := c.werr != nil
			if c.out != nil {
				putBuf(c.out)
				c.out = nil
			}
			c.outMsgs = 0
			c.wakeRoomLocked()
			c.mu.Unlock()
			if failed {
				c.nc.Close()
				c.wake() // a parked connection needs its reader to end
			}
			return
		}
		batch, c.out = c.out, nil
		c.writeLen = len(batch)
		c.outMsgs = 0
		c.mu.Unlock()

		c.nc.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := c.nc.Write(batch); err != nil {
			c.mu.Lock()
			c.werr = err
			if c.endErr == nil {
				c.endErr = err
			}
			c.mu.Unlock()
		}
	}
}
