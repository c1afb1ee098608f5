package amqp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// stateFunc is one step of connection setup; it returns the next step, or
// nil when the connection is open. Setup reads like the spec's protocol
// negotiation (part 2, section 2.2; part 5).
type stateFunc func(ctx context.Context) (stateFunc, error)

// handshake runs the state functions from start, bounded by the
// handshake timeout, reading and writing the socket directly: the reader
// and writer goroutines start only afterwards.
func (c *Conn) handshake(ctx context.Context, start stateFunc) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.handshakeTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	_ = c.nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	for state := start; state != nil; {
		var err error
		if state, err = state(ctx); err != nil {
			// The socket deadline may fire just before ctx notices.
			if cerr := ctx.Err(); cerr != nil || errors.Is(err, os.ErrDeadlineExceeded) {
				if cerr == nil {
					cerr = context.DeadlineExceeded
				}
				if !errors.Is(err, cerr) {
					err = fmt.Errorf("%w (%w)", cerr, err)
				}
			}
			var ce *ConnError
			if errors.As(err, &ce) {
				return ce
			}
			return &ConnError{inner: err}
		}
	}
	if !stop() {
		return &ConnError{inner: ctx.Err()}
	}
	_ = c.nc.SetDeadline(time.Time{})
	c.w = newWriter(c.nc)
	return nil
}

// bufConn reads through the bufio.Reader that may already hold bytes, so
// that a TLS handshake started after a protocol header loses nothing.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (c *Conn) upgradeTLS(ctx context.Context, tn *tls.Conn) error {
	if err := tn.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("amqp: TLS handshake: %w", err)
	}
	st := tn.ConnectionState()
	c.tlsState = &st
	c.nc = tn
	c.br = bufio.NewReaderSize(tn, c.cfg.readBufferSize)
	return nil
}

func (c *Conn) writeHeader(id frame.ProtoID) error {
	_, err := c.nc.Write(frame.Proto(id).AppendTo(nil))
	return err
}

func (c *Conn) readHeader() (frame.ProtoHeader, error) {
	var b [frame.ProtoHeaderSize]byte
	if _, err := io.ReadFull(c.br, b[:]); err != nil {
		return frame.ProtoHeader{}, err
	}
	return frame.ParseProtoHeader(b[:])
}

// expectHeader reads the peer's protocol header and checks it is want.
func (c *Conn) expectHeader(want frame.ProtoID) error {
	h, err := c.readHeader()
	if err != nil {
		return err
	}
	if h != frame.Proto(want) {
		return fmt.Errorf("amqp: peer answered protocol header %+v, want %+v", h, frame.Proto(want))
	}
	return nil
}

func (c *Conn) writeFrame(t frame.Type, body frame.Body) error {
	b, err := frame.Append(nil, t, 0, body)
	if err != nil {
		return err
	}
	_, err = c.nc.Write(b)
	return err
}

// readBody reads the next non-empty frame of type t during the handshake.
func (c *Conn) readBody(t frame.Type) (frame.Body, error) {
	var buf []byte
	for {
		h, body, err := c.readFrame(&buf)
		if err != nil {
			return nil, err
		}
		if len(body) == 0 && t == frame.TypeAMQP {
			continue
		}
		if h.Type != t {
			return nil, fmt.Errorf("amqp: frame type %d during %d exchange", h.Type, t)
		}
		return frame.DecodeBody(t, body)
	}
}

// Client role.

func (c *Conn) clientStart(ctx context.Context) (stateFunc, error) {
	if !c.cfg.startTLS {
		return c.clientSASL, nil
	}
	if err := c.writeHeader(frame.ProtoTLS); err != nil {
		return nil, err
	}
	if err := c.expectHeader(frame.ProtoTLS); err != nil {
		return nil, err
	}
	tc := c.cfg.tlsConfig.Clone()
	if tc == nil {
		tc = &tls.Config{}
	}
	if tc.ServerName == "" {
		tc.ServerName = c.cfg.hostname
	}
	if err := c.upgradeTLS(ctx, tls.Client(bufConn{c.nc, c.br}, tc)); err != nil {
		return nil, err
	}
	return c.clientSASL, nil
}

func (c *Conn) clientSASL(context.Context) (stateFunc, error) {
	if c.cfg.saslMech == "" {
		return c.clientAMQP, nil
	}
	if err := c.writeHeader(frame.ProtoSASL); err != nil {
		return nil, err
	}
	if err := c.expectHeader(frame.ProtoSASL); err != nil {
		return nil, err
	}
	b, err := c.readBody(frame.TypeSASL)
	if err != nil {
		return nil, err
	}
	mechs, ok := b.(*frame.SASLMechanisms)
	if !ok {
		return nil, fmt.Errorf("amqp: want sasl-mechanisms, got %T", b)
	}
	if !slices.Contains(mechs.Mechanisms, c.cfg.saslMech) {
		return nil, fmt.Errorf("amqp: server does not offer SASL %s (offers %v)", c.cfg.saslMech, mechs.Mechanisms)
	}
	init := &frame.SASLInit{Mechanism: c.cfg.saslMech, Hostname: c.cfg.hostname}
	switch c.cfg.saslMech {
	case frame.SASLPlain:
		init.InitialResponse = []byte("\x00" + c.cfg.username + "\x00" + c.cfg.password)
	case frame.SASLExternal, frame.SASLAnonymous:
		init.InitialResponse = []byte{}
	default:
		return nil, fmt.Errorf("amqp: unsupported SASL mechanism %s", c.cfg.saslMech)
	}
	if err := c.writeFrame(frame.TypeSASL, init); err != nil {
		return nil, err
	}
	for {
		b, err := c.readBody(frame.TypeSASL)
		if err != nil {
			return nil, err
		}
		switch b := b.(type) {
		case *frame.SASLChallenge:
			// None of our mechanisms expects a challenge; answer empty
			// and let the server decide.
			if err := c.writeFrame(frame.TypeSASL, &frame.SASLResponse{Response: []byte{}}); err != nil {
				return nil, err
			}
		case *frame.SASLOutcome:
			if b.Code != frame.SASLOK {
				return nil, &ConnError{inner: fmt.Errorf("%w: SASL %s failed with code %d", ErrAuth, c.cfg.saslMech, b.Code)}
			}
			return c.clientAMQP, nil
		default:
			return nil, fmt.Errorf("amqp: unexpected %T during SASL", b)
		}
	}
}

func (c *Conn) clientAMQP(context.Context) (stateFunc, error) {
	if err := c.writeHeader(frame.ProtoAMQP); err != nil {
		return nil, err
	}
	if err := c.expectHeader(frame.ProtoAMQP); err != nil {
		return nil, err
	}
	return c.exchangeOpen, nil
}

// exchangeOpen sends our open and reads the peer's. Both roles send
// without waiting, which the spec allows (part 2, section 2.4.1).
func (c *Conn) exchangeOpen(context.Context) (stateFunc, error) {
	open := &frame.Open{
		ContainerID:         c.cfg.containerID,
		Hostname:            c.cfg.hostname,
		MaxFrameSize:        c.cfg.maxFrameSize,
		ChannelMax:          c.cfg.channelMax,
		IdleTimeout:         c.cfg.idleTimeout,
		OfferedCapabilities: c.cfg.offeredCaps,
		DesiredCapabilities: c.cfg.desiredCaps,
		Properties:          c.cfg.properties,
	}
	if c.cfg.server {
		open.Hostname = ""
	}
	if err := c.writeFrame(frame.TypeAMQP, open); err != nil {
		return nil, err
	}
	b, err := c.readBody(frame.TypeAMQP)
	if err != nil {
		var v *protoError
		if errors.As(err, &v) {
			c.sendCloseDuringHandshake(v)
		}
		return nil, err
	}
	ro, ok := b.(*frame.Open)
	if !ok {
		v := violation(frame.CondNotAllowed, "want open, got %T", b)
		c.sendCloseDuringHandshake(v)
		return nil, v
	}
	if ro.MaxFrameSize < frame.MinMaxFrameSize {
		v := violation(frame.CondInvalidField, "max-frame-size %d below 512", ro.MaxFrameSize)
		c.sendCloseDuringHandshake(v)
		return nil, v
	}
	c.remoteOpen = ro
	// [part 2, 2.7.1] we may use channels up to the peer's channel-max;
	// ours bounds them too, as it bounds the sessions the peer begins.
	c.channels.limit = uint32(min(ro.ChannelMax, c.cfg.channelMax))
	c.peerMax = min(ro.MaxFrameSize, 1<<24) // never build frames above 16 MiB
	c.peerIdle = ro.IdleTimeout
	return nil, nil
}

func (c *Conn) sendCloseDuringHandshake(v *protoError) {
	_ = c.writeFrame(frame.TypeAMQP, &frame.Close{Error: v.amqpError()})
}

// Server role.

func (c *Conn) serverStart(ctx context.Context) (stateFunc, error) {
	if c.cfg.tlsConfig != nil {
		first, err := c.br.Peek(1)
		if err != nil {
			return nil, err
		}
		if first[0] == 0x16 { // a TLS handshake record: direct TLS
			if err := c.upgradeTLS(ctx, tls.Server(bufConn{c.nc, c.br}, c.cfg.tlsConfig)); err != nil {
				return nil, err
			}
		}
	}
	return c.serverHeader(false), nil
}

// serverHeader reads a protocol header and answers it. saslDone records
// that SASL has completed (it may precede AMQP only once).
func (c *Conn) serverHeader(saslDone bool) stateFunc {
	return func(ctx context.Context) (stateFunc, error) {
		h, err := c.readHeader()
		if err != nil {
			return nil, err
		}
		preferred := frame.ProtoAMQP
		if c.cfg.authenticate != nil && !saslDone {
			preferred = frame.ProtoSASL
		}
		// [part 2, 2.2] on an unsupported header, answer with the one we
		// support and close.
		refuse := func(why string) (stateFunc, error) {
			_ = c.writeHeader(preferred)
			return nil, fmt.Errorf("amqp: refused protocol header %+v: %s", h, why)
		}
		if h.Major != 1 || h.Minor != 0 || h.Revision != 0 {
			return refuse("unsupported version")
		}
		switch h.ID {
		case frame.ProtoTLS:
			if c.cfg.tlsConfig == nil || c.tlsState != nil || saslDone {
				return refuse("TLS not available")
			}
			if err := c.writeHeader(frame.ProtoTLS); err != nil {
				return nil, err
			}
			if err := c.upgradeTLS(ctx, tls.Server(bufConn{c.nc, c.br}, c.cfg.tlsConfig)); err != nil {
				return nil, err
			}
			return c.serverHeader(false), nil
		case frame.ProtoSASL:
			if saslDone {
				return refuse("SASL already done")
			}
			if err := c.writeHeader(frame.ProtoSASL); err != nil {
				return nil, err
			}
			return c.serverSASL, nil
		case frame.ProtoAMQP:
			if preferred == frame.ProtoSASL {
				return refuse("SASL required")
			}
			if err := c.writeHeader(frame.ProtoAMQP); err != nil {
				return nil, err
			}
			return c.exchangeOpen, nil
		}
		return refuse("unknown protocol id")
	}
}

func (c *Conn) serverMechanisms() []Symbol {
	if c.cfg.authenticate == nil {
		return []Symbol{frame.SASLAnonymous}
	}
	cert := c.tlsState != nil && len(c.tlsState.PeerCertificates) > 0
	if len(c.cfg.saslMechanisms) > 0 {
		var m []Symbol
		for _, mech := range c.cfg.saslMechanisms {
			if mech != frame.SASLExternal || cert {
				m = append(m, mech)
			}
		}
		return m
	}
	m := []Symbol{frame.SASLPlain, frame.SASLAnonymous}
	if cert {
		m = append([]Symbol{frame.SASLExternal}, m...)
	}
	return m
}

func (c *Conn) serverSASL(ctx context.Context) (stateFunc, error) {
	mechs := c.serverMechanisms()
	if err := c.writeFrame(frame.TypeSASL, &frame.SASLMechanisms{Mechanisms: mechs}); err != nil {
		return nil, err
	}
	fail := func(code frame.SASLCode, err error) (stateFunc, error) {
		_ = c.writeFrame(frame.TypeSASL, &frame.SASLOutcome{Code: code})
		return nil, &ConnError{inner: err}
	}
	b, err := c.readBody(frame.TypeSASL)
	if err != nil {
		return fail(frame.SASLSysPerm, err)
	}
	init, ok := b.(*frame.SASLInit)
	if !ok {
		return fail(frame.SASLSysPerm, fmt.Errorf("amqp: want sasl-init, got %T", b))
	}
	if !slices.Contains(mechs, init.Mechanism) {
		return fail(frame.SASLAuth, fmt.Errorf("amqp: SASL mechanism %q not offered", init.Mechanism))
	}
	req := &AuthRequest{Mechanism: init.Mechanism, Hostname: init.Hostname, TLS: c.tlsState, RemoteAddr: c.nc.RemoteAddr()}
	switch init.Mechanism {
	case frame.SASLPlain:
		// RFC 4616: [authzid] NUL authcid NUL passwd
		parts := bytes.Split(init.InitialResponse, []byte{0})
		if len(parts) != 3 || len(parts[1]) == 0 {
			return fail(frame.SASLAuth, errors.New("amqp: malformed PLAIN response"))
		}
		req.AuthzID, req.Username, req.Password = string(parts[0]), string(parts[1]), string(parts[2])
	case frame.SASLExternal:
		req.AuthzID = string(init.InitialResponse)
	}
	if c.cfg.authenticate != nil {
		id, err := c.cfg.authenticate(ctx, req)
		if err != nil {
			return fail(frame.SASLAuth, fmt.Errorf("amqp: SASL %s: %w", init.Mechanism, err))
		}
		c.authID = id
	}
	if err := c.writeFrame(frame.TypeSASL, &frame.SASLOutcome{Code: frame.SASLOK}); err != nil {
		return nil, err
	}
	return c.serverHeader(true), nil
}
