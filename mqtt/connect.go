package mqtt

import (
	"crypto/rand"
	"errors"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// handshake reads CONNECT, asks the Handler, takes over an older
// connection of the same session and queues CONNACK. A nil error means the
// connection is open; otherwise it is to be closed (any refusal CONNACK was
// already written).
func (c *Conn) handshake() error {
	s := c.srv
	deadline := time.Now().Add(s.connectTimeout())
	c.nc.SetReadDeadline(deadline)
	h, body, err := c.rd.next(s.maxPacketSize())
	if err != nil {
		return err
	}
	if h.Type != packet.TypeConnect {
		// The first packet from the client MUST be CONNECT [MQTT-3.1.0-1].
		return protocolError(packet.ProtocolError, "first packet is "+h.Type.String()+", not CONNECT")
	}
	p := new(packet.Connect)
	if err := p.Decode(h.Flags, body, 0); err != nil {
		var pe *packet.Error
		if errors.As(err, &pe) && pe.Version != 0 {
			// The codec knows in which version to refuse (an unsupported
			// protocol level gets a 3.1.1 CONNACK 0x01) [MQTT-3.1.2-2].
			c.refuse(&packet.Connack{ReasonCode: pe.Code}, pe.Version)
		}
		return err
	}
	ownConnectBytes(p)
	c.connect = p
	c.version = p.Version
	c.cleanStart = p.CleanStart
	// The packet (1 KB with its properties) is not kept for the life of
	// the connection: handlers copy what they need during the handshake.
	defer func() { c.connect = nil }()

	var props packet.Properties // set by the library, win over the handler's
	c.clientID = p.ClientID
	if c.clientID == "" {
		if p.Version != packet.V5 && !p.CleanStart {
			// [MQTT-3.1.3-8] an empty client id requires clean session.
			c.refuse(&packet.Connack{ReasonCode: packet.ClientIdentifierNotValid}, c.version)
			return protocolError(packet.ClientIdentifierNotValid, "empty client id without clean session")
		}
		// [MQTT-3.1.3-6] the server assigns a unique id; v5 reports it
		// [MQTT-3.2.2-16].
		c.clientID = "ferry-" + rand.Text()
		if p.Version == packet.V5 {
			props.AssignedClientID = c.clientID
		}
	}

	c.window = int32(s.maxInflight())
	keepAlive := p.KeepAlive
	if p.Version == packet.V5 {
		if rm := p.Properties.ReceiveMaximum; rm != nil && *rm != 0 && int32(*rm) < c.window {
			c.window = int32(*rm)
		}
		if mps := p.Properties.MaximumPacketSize; mps != nil {
			c.maxOut = int32(min(*mps, 1<<31-1))
		}
		if tam := p.Properties.TopicAliasMaximum; tam != nil && s.OutboundTopicAliases {
			c.aliasOutMax = *tam
		}
		if se := p.Properties.SessionExpiryInterval; se != nil {
			c.mu.Lock()
			c.sessionExpiry = *se
			c.mu.Unlock()
		}
		if m := s.MaxKeepAlive; m != 0 && (keepAlive == 0 || keepAlive > m) {
			keepAlive = m
			props.ServerKeepAlive = &keepAlive
		}
		rm := uint16(s.receiveMaximum())
		props.ReceiveMaximum = &rm
		mps := uint32(s.maxPacketSize())
		props.MaximumPacketSize = &mps
		tam := s.topicAliasMaximum()
		props.TopicAliasMaximum = &tam
	}
	// [MQTT-3.1.2-22] 1.5 times the keep alive without a packet closes.
	keepAliveWait := time.Duration(keepAlive) * 1500 * time.Millisecond

	res := s.Handler.Connect(c, p)
	if res.Code == packet.ContinueAuthentication && c.version == packet.V5 {
		if res, err = c.authenticate(res); err != nil {
			return err
		}
	}
	if c.closing.Load() {
		return ErrClosed // Close or Shutdown during Connect
	}
	if res.Code != packet.Success {
		c.refuse(&packet.Connack{ReasonCode: res.Code, Properties: res.Properties}, c.version)
		return &DisconnectError{Code: res.Code}
	}
	key := res.SessionKey
	if key == "" {
		key = c.clientID
	}
	if !s.takeOver(c, key) {
		c.refuse(&packet.Connack{ReasonCode: packet.ServerUnavailable}, c.version)
		return &DisconnectError{Code: packet.ServerUnavailable, Err: errors.New("mqtt: session takeover failed")}
	}

	c.opened = true
	var present bool
	if s.hooks.opener != nil {
		var code packet.ReasonCode
		if present, code = s.hooks.opener.OpenSession(c); code != packet.Success {
			c.refuse(&packet.Connack{ReasonCode: code}, c.version)
			return &DisconnectError{Code: code, Err: errors.New("mqtt: the session could not be opened")}
		}
	} else {
		present = s.Handler.Open(c)
	}
	if p.CleanStart {
		// [MQTT-3.2.2-2] (3.1.1: [MQTT-3.2.2-1]).
		present = false
	}
	if present && s.hooks.qos2 != nil {
		if ids := s.hooks.qos2.InboundQoS2(c); len(ids) > 0 {
			c.mu.Lock()
			c.awaitRel = make(map[uint16]struct{}, len(ids))
			for _, id := range ids {
				c.awaitRel[id] = struct{}{}
			}
			c.mu.Unlock()
		}
	}
	ack := packet.Connack{SessionPresent: present, Properties: res.Properties}
	if c.version == packet.V5 {
		mergeConnackProperties(&ack.Properties, &props)
	}

	if keepAliveWait > 0 {
		c.rd.deadline = keepAliveWait
	} else {
		c.nc.SetReadDeadline(time.Time{})
	}
	if parkable(c.nc) {
		c.rd.parkAfter = s.idlePark()
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateHandshake {
		return ErrClosed // closed during Open (takeover, shutdown)
	}
	b, err := ack.Append(c.outBuf(), c.version)
	if err != nil {
		// The handler's CONNACK properties cannot be encoded.
		c.state = stateClosing
		c.closing.Store(true)
		c.endErr = err
		return err
	}
	c.out = b
	c.state = stateOpen
	c.promoteLocked() // Sends made during Open
	c.kickLocked()
	return nil
}

// authenticate runs the v5 enhanced authentication exchange that
// Handler.Connect started by returning ContinueAuthentication. It returns
// the final result for CONNACK.
func (c *Conn) authenticate(res ConnectResult) (ConnectResult, error) {
	if c.srv.hooks.auth == nil {
		res.Code = packet.BadAuthenticationMethod
		return res, nil
	}
	reply := &packet.Auth{ReasonCode: packet.ContinueAuthentication, Properties: res.Properties}
	for {
		if err := c.writeNow(reply, c.version); err != nil {
			return res, err
		}
		h, body, err := c.rd.next(c.srv.maxPacketSize())
		if err != nil {
			return res, err
		}
		if h.Type != packet.TypeAuth {
			// Only AUTH may come before CONNACK: close.
			return res, protocolError(packet.ProtocolError, h.Type.String()+" during authentication")
		}
		var a packet.Auth
		if err := a.Decode(h.Flags, body, c.version); err != nil {
			return res, err
		}
		reply = c.srv.hooks.auth.Auth(c, &a)
		switch {
		case reply == nil:
			res.Code, res.Properties = packet.NotAuthorized, packet.Properties{}
			return res, nil
		case reply.ReasonCode == packet.ContinueAuthentication:
			continue
		default:
			res.Code, res.Properties = reply.ReasonCode, mergeAuthProperties(res.Properties, reply.Properties)
			return res, nil
		}
	}
}

func mergeAuthProperties(dst, src packet.Properties) packet.Properties {
	dst.AuthMethod, dst.AuthData = src.AuthMethod, src.AuthData
	if src.ReasonString != "" {
		dst.ReasonString = src.ReasonString
	}
	dst.User = append(dst.User, src.User...)
	return dst
}

// mergeConnackProperties overrides the handler's CONNACK properties with
// the ones the library owns.
func mergeConnackProperties(dst, lib *packet.Properties) {
	if lib.AssignedClientID != "" {
		dst.AssignedClientID = lib.AssignedClientID
	}
	if lib.ServerKeepAlive != nil {
		dst.ServerKeepAlive = lib.ServerKeepAlive
	}
	dst.ReceiveMaximum = lib.ReceiveMaximum
	dst.MaximumPacketSize = lib.MaximumPacketSize
	dst.TopicAliasMaximum = lib.TopicAliasMaximum
}

// refuse writes a refusing CONNACK. The connection then lingers before it
// closes (see finish), so that a client already sending more packets
// reads the CONNACK rather than a reset.
func (c *Conn) refuse(ack *packet.Connack, v packet.Version) {
	if c.writeNow(ack, v) == nil {
		c.refused = true
	}
}

// writeNow writes p synchronously, bypassing the queue. Only for the
// handshake, before the writer may run.
func (c *Conn) writeNow(p packet.Packet, v packet.Version) error {
	b, err := p.Append(getBuf(smallBufSize)[:0], v)
	if err != nil {
		c.srv.logger().Debug("mqtt: encode", "type", p.Type(), "err", err)
		return err
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.writeTimeout()))
	_, err = c.nc.Write(b)
	putBuf(b)
	return err
}

// ownConnectBytes copies the byte slices of p, which alias the read buffer,
// so that Conn.Connect stays valid.
func ownConnectBytes(p *packet.Connect) {
	p.Password = clone(p.Password)
	p.WillPayload = clone(p.WillPayload)
	p.Properties.AuthData = clone(p.Properties.AuthData)
	p.Properties.CorrelationData = clone(p.Properties.CorrelationData)
	p.WillProperties.CorrelationData = clone(p.WillProperties.CorrelationData)
	p.WillProperties.AuthData = clone(p.WillProperties.AuthData)
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
