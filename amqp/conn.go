package amqp

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// Conn is an AMQP connection, in either role: opened with Dial, or
// accepted by a Listener.
type Conn struct {
	// Immutable after the handshake.
	cfg         connConfig
	nc          net.Conn // after TLS, if any
	w           *writer
	br          *bufio.Reader
	remoteOpen  *frame.Open
	peerMax     uint32 // largest frame we may send
	peerIdle    time.Duration
	authID      string // identity the Authenticator returned
	tlsState    *tls.ConnectionState
	listener    *Listener // nil for dialled connections
	readerDone  chan struct{}
	done        chan struct{} // closed when the connection is over
	lastRead    atomic.Int64  // unix nanos of the last frame read
	idleTimer   *time.Timer
	closeCalled atomic.Bool

	// mu guards the session and link state of the whole connection.
	// The reader goroutine takes it per frame; API calls take it briefly
	// and never while blocking. Lock order: Conn.mu, then writer.mu.
	mu             sync.Mutex
	sessions       map[uint16]*Session // by local channel
	remoteSessions map[uint16]*Session // by remote channel
	closeSent      bool
	err            error // set once, before done is closed
	closeReceived  chan struct{}
	remoteClose    *Error // the error in the peer's close; set before closeReceived is closed

	// pendingAttach is owned by the reader goroutine: dispatch queues an
	// incoming attach here and the reader runs the Handler after unlocking.
	pendingAttach *pendingAttach
}

// Dial connects to addr ("amqp://host:port" or "amqps://host:port"; a
// bare "host:port" means amqp) and opens an AMQP connection. opts may be
// nil.
func Dial(ctx context.Context, addr string, opts *ConnOptions) (*Conn, error) {
	if opts == nil {
		opts = &ConnOptions{}
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		u = &url.URL{Scheme: "amqp", Host: addr}
	}
	host := u.Host
	if u.Port() == "" {
		if u.Scheme == "amqps" {
			host = net.JoinHostPort(u.Hostname(), "5671")
		} else {
			host = net.JoinHostPort(u.Hostname(), "5672")
		}
	}
	dial := opts.dialer
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, &ConnError{inner: err}
	}
	o := *opts
	if o.HostName == "" {
		o.HostName = u.Hostname()
	}
	if u.User != nil && o.Username == "" {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
		if o.SASL == "" {
			o.SASL = frame.SASLPlain
		}
	}
	if u.Scheme == "amqps" {
		tc := o.TLSConfig.Clone()
		if tc == nil {
			tc = &tls.Config{}
		}
		if tc.ServerName == "" {
			tc.ServerName = u.Hostname()
		}
		tn := tls.Client(nc, tc)
		if err := tn.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, &ConnError{inner: err}
		}
		nc = tn
	}
	return NewConn(ctx, nc, &o)
}

// NewConn opens an AMQP connection over nc, in the client role. It takes
// ownership of nc.
func NewConn(ctx context.Context, nc net.Conn, opts *ConnOptions) (*Conn, error) {
	if opts == nil {
		opts = &ConnOptions{}
	}
	cfg := connConfig{
		containerID: opts.ContainerID, hostname: opts.HostName, tlsConfig: opts.TLSConfig,
		startTLS: opts.StartTLS, saslMech: opts.SASL, username: opts.Username, password: opts.Password,
		maxFrameSize: opts.MaxFrameSize, channelMax: opts.ChannelMax, idleTimeout: opts.IdleTimeout,
		offeredCaps: opts.OfferedCapabilities, desiredCaps: opts.DesiredCapabilities,
		properties: opts.Properties, handshakeTimeout: opts.HandshakeTimeout,
		readBufferSize: opts.ReadBufferSize,
	}
	cfg.setDefaults()
	c := newConn(nc, cfg)
	if tn, ok := nc.(*tls.Conn); ok {
		st := tn.ConnectionState()
		c.tlsState = &st
	}
	if err := c.handshake(ctx, c.clientStart); err != nil {
		c.nc.Close()
		return nil, err
	}
	c.start()
	return c, nil
}

func newConn(nc net.Conn, cfg connConfig) *Conn {
	return &Conn{
		cfg:            cfg,
		nc:             nc,
		w:              newWriter(nc),
		br:             bufio.NewReaderSize(nc, cfg.readBufferSize),
		readerDone:     make(chan struct{}),
		done:           make(chan struct{}),
		closeReceived:  make(chan struct{}),
		sessions:       make(map[uint16]*Session),
		remoteSessions: make(map[uint16]*Session),
		peerMax:        frame.MinMaxFrameSize,
	}
}

// start runs the reader goroutine (owned by the Conn; it exits when the
// socket is closed) and the idle timer.
func (c *Conn) start() {
	c.lastRead.Store(time.Now().UnixNano())
	go c.readLoop()
	if d := c.heartbeatInterval(); d > 0 {
		c.mu.Lock()
		c.idleTimer = time.AfterFunc(d, c.heartbeat)
		c.mu.Unlock()
	}
}

// heartbeatInterval is how often the idle timer fires: often enough to
// send an empty frame within half the peer's idle time-out (part 2,
// section 2.4.5), with margin for timer jitter, and to notice our own
// time-out expiring.
func (c *Conn) heartbeatInterval() time.Duration {
	var d time.Duration
	if c.peerIdle > 0 {
		d = c.peerIdle / 3
	}
	if c.cfg.idleTimeout > 0 && (d == 0 || c.cfg.idleTimeout/2 < d) {
		d = c.cfg.idleTimeout / 2
	}
	return d
}

// heartbeat runs on a timer goroutine, never concurrently with itself.
func (c *Conn) heartbeat() {
	select {
	case <-c.done:
		return
	default:
	}
	if c.cfg.idleTimeout > 0 {
		idle := time.Since(time.Unix(0, c.lastRead.Load()))
		if idle > c.cfg.idleTimeout {
			c.closeWithError(violation(frame.CondResourceLimitExceeded, "idle time-out %v expired", c.cfg.idleTimeout))
			return
		}
	}
	if c.peerIdle > 0 {
		// An empty frame is cheap; sending one per interval whether or not
		// other frames went out keeps the logic simple.
		_ = c.w.raw(frame.AppendEmpty(nil))
	}
	c.mu.Lock()
	if c.idleTimer != nil {
		c.idleTimer.Reset(c.heartbeatInterval())
	}
	c.mu.Unlock()
}

// ContainerID returns the peer's container id.
func (c *Conn) ContainerID() string { return c.remoteOpen.ContainerID }

// RemoteOpen returns the peer's open performative.
func (c *Conn) RemoteOpen() *frame.Open { return c.remoteOpen }

// AuthIdentity returns the identity the Listener's Authenticator returned
// for this connection ("" for dialled connections or without SASL).
func (c *Conn) AuthIdentity() string { return c.authID }

// TLSState returns the TLS state, or nil without TLS.
func (c *Conn) TLSState() *tls.ConnectionState { return c.tlsState }

// LocalAddr and RemoteAddr return the socket addresses.
func (c *Conn) LocalAddr() net.Addr  { return c.nc.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Done is closed when the connection is over; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is open.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close closes the connection: it sends close, waits up to a second for
// the peer's close and closes the socket. Sessions and links fail with a
// ConnError wrapping ErrClosed. It returns the peer's error, if its close
// carried one.
func (c *Conn) Close() error { return c.CloseWithError(nil) }

// CloseWithError is Close with a condition for the peer, for example
// amqp:connection:forced when a server evicts a client. Do not call it
// from HandleLink itself: it waits for the peer's close, which only the
// reader goroutine running HandleLink could read (call it from another
// goroutine).
func (c *Conn) CloseWithError(e *Error) error {
	if c.closeCalled.Swap(true) {
		<-c.done
		return nil
	}
	c.mu.Lock()
	sent := c.closeSent
	c.closeSent = true
	c.mu.Unlock()
	if !sent {
		_ = c.w.frame(frame.TypeAMQP, 0, &frame.Close{Error: e})
	}
	t := time.NewTimer(time.Second)
	select {
	case <-c.closeReceived:
	case <-c.done:
	case <-t.C:
	}
	t.Stop()
	c.shutdown(&ConnError{inner: ErrClosed})
	<-c.readerDone
	var ce *ConnError
	if errors.As(c.err, &ce) && ce.RemoteErr != nil {
		return c.err
	}
	return nil
}

// closeWithError sends close with the violation's condition, then shuts
// the connection down without waiting for the peer (which broke the
// protocol and may never answer).
func (c *Conn) closeWithError(v *protoError) {
	c.mu.Lock()
	sent := c.closeSent
	c.closeSent = true
	c.mu.Unlock()
	if !sent {
		_ = c.w.frame(frame.TypeAMQP, 0, &frame.Close{Error: v.amqpError()})
	}
	c.shutdown(&ConnError{inner: v})
}

// shutdown records err (first wins), flushes what is queued for a short
// while, closes the socket and fails every session and link. Safe to call
// from any goroutine, more than once.
func (c *Conn) shutdown(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	sessions := make([]*Session, 0, len(c.sessions))
	for _, s := range c.sessions {
		sessions = append(sessions, s)
	}
	for _, s := range sessions {
		s.failLocked(err)
	}
	close(c.done)
	c.mu.Unlock()

	c.w.drain(time.Second)
	c.w.fail(ErrClosed)
	c.nc.Close()
	if c.listener != nil {
		c.listener.forget(c)
	}
}

// readLoop reads and dispatches frames until the socket fails. It is the
// only reader of the socket after the handshake.
func (c *Conn) readLoop() {
	defer close(c.readerDone)
	buf := make([]byte, 0, 4096)
	for {
		h, body, err := c.readFrame(&buf)
		if err != nil {
			var v *protoError
			switch {
			case errors.As(err, &v):
				c.closeWithError(v)
			case errors.Is(err, io.ErrUnexpectedEOF):
				c.closeWithError(violation(frame.CondFramingError, "truncated frame"))
			default:
				c.shutdown(&ConnError{inner: err})
			}
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		if len(body) == 0 {
			continue // heartbeat
		}
		if h.Type != frame.TypeAMQP {
			c.closeWithError(violation(frame.CondFramingError, "SASL frame after SASL"))
			return
		}
		if !isTransfer(body) {
			// Only transfers are handled zero-copy; everything else may be
			// kept (properties, errors), so it must not alias buf.
			body = append([]byte(nil), body...)
		}
		fb, err := frame.DecodeBody(h.Type, body)
		if err != nil {
			c.closeWithError(violation(frame.CondDecodeError, "%v", err))
			return
		}
		if traceIncoming != nil {
			traceIncoming(h.Channel, fb)
		}
		if err := c.dispatch(h.Channel, fb); err != nil {
			c.closeWithError(err)
			return
		}
		if p := c.pendingAttach; p != nil {
			c.pendingAttach = nil
			c.completeAttach(p)
		}
		select {
		case <-c.closeReceived:
			c.shutdown(&ConnError{RemoteErr: c.remoteClose})
			return
		case <-c.done:
			return
		default:
		}
	}
}

// traceIncoming, when set (by tests), sees every decoded incoming frame.
var traceIncoming func(ch uint16, fb frame.Body)

func isTransfer(body []byte) bool {
	return len(body) >= 3 && body[0] == 0 && body[1] == 0x53 && body[2] == 0x14
}

// readFrame reads one frame into *buf and returns its header and body.
func (c *Conn) readFrame(buf *[]byte) (frame.Header, []byte, error) {
	var hb [frame.HeaderSize]byte
	if _, err := io.ReadFull(c.br, hb[:]); err != nil {
		return frame.Header{}, nil, err
	}
	h, err := frame.ParseHeader(hb[:])
	if err != nil {
		return h, nil, violation(frame.CondFramingError, "%v", err)
	}
	if h.Size > c.cfg.maxFrameSize {
		return h, nil, violation(frame.CondFramingError, "frame of %d bytes exceeds max-frame-size %d", h.Size, c.cfg.maxFrameSize)
	}
	n := int(h.Size) - frame.HeaderSize
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(c.br, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, err
	}
	return h, b[int(h.DataOffset)*4-frame.HeaderSize:], nil
}

// dispatch handles one frame from the reader goroutine.
func (c *Conn) dispatch(ch uint16, fb frame.Body) *protoError {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch b := fb.(type) {
	case *frame.Close:
		c.handleClose(b)
		return nil
	case *frame.Open:
		return violation(frame.CondNotAllowed, "second open")
	case *frame.Begin:
		return c.handleBegin(ch, b)
	}
	s := c.remoteSessions[ch]
	if s == nil {
		return violation(frame.CondNotAllowed, "%T on channel %d, which has no session", fb, ch)
	}
	err := s.handle(fb)
	if err == nil {
		return nil
	}
	var sv sessionViolation
	var lv linkViolation
	switch {
	case errors.As(err, &lv):
		lv.l.detachLocked(lv.amqpError(), &LinkError{inner: lv.protoError})
		return nil
	case errors.As(err, &sv):
		s.endLocked(sv.amqpError(), &SessionError{inner: sv.protoError})
		return nil
	}
	var pe *protoError
	if errors.As(err, &pe) {
		return pe
	}
	return violation(frame.CondInternalError, "%v", err)
}

func (c *Conn) handleClose(b *frame.Close) {
	sent := c.closeSent
	c.closeSent = true
	select {
	case <-c.closeReceived:
	default:
		close(c.closeReceived)
	}
	if !sent {
		_ = c.w.frame(frame.TypeAMQP, 0, &frame.Close{})
	}
	// The reader shuts the connection down once dispatch has released mu.
	c.remoteClose = b.Error
}

// NewSession begins a session. opts may be nil.
func (c *Conn) NewSession(ctx context.Context, opts *SessionOptions) (*Session, error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	ch, ok := c.freeChannel()
	if !ok {
		c.mu.Unlock()
		return nil, &SessionError{inner: fmt.Errorf("amqp: all %d channels in use", int(c.remoteOpen.ChannelMax)+1)}
	}
	s := newSession(c, ch, opts.withDefaults())
	c.sessions[ch] = s
	err := c.w.frame(frame.TypeAMQP, ch, s.beginFrame(nil))
	c.mu.Unlock()
	if err != nil {
		return nil, &SessionError{inner: err}
	}
	select {
	case <-s.begun:
		return s, nil
	case <-s.ended:
		return nil, s.err
	case <-ctx.Done():
		// The peer's begin may still arrive; end the session without
		// waiting, and the peer's end will unmap it.
		c.mu.Lock()
		s.endLocked(nil, &SessionError{inner: ctx.Err()})
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// freeChannel returns the lowest channel not in use that the peer accepts.
func (c *Conn) freeChannel() (uint16, bool) {
	limit := uint32(c.remoteOpen.ChannelMax)
	if uint32(c.cfg.channelMax) < limit {
		limit = uint32(c.cfg.channelMax)
	}
	for ch := uint32(0); ch <= limit; ch++ {
		if _, used := c.sessions[uint16(ch)]; !used {
			return uint16(ch), true
		}
	}
	return 0, false
}

// handleBegin answers a peer's begin, or completes one of ours.
func (c *Conn) handleBegin(ch uint16, b *frame.Begin) *protoError {
	if ch > c.cfg.channelMax {
		return violation(frame.CondFramingError, "begin on channel %d above channel-max %d", ch, c.cfg.channelMax)
	}
	if _, used := c.remoteSessions[ch]; used {
		return violation(frame.CondNotAllowed, "begin on channel %d, already in use", ch)
	}
	if b.RemoteChannel != nil {
		s := c.sessions[*b.RemoteChannel]
		if s == nil || s.remoteBegun {
			return violation(frame.CondNotAllowed, "begin answers channel %d, which we did not begin", *b.RemoteChannel)
		}
		s.remoteBegin(ch, b)
		close(s.begun)
		return nil
	}
	local, ok := c.freeChannel()
	if !ok {
		return violation(frame.CondResourceLimitExceeded, "no free channel")
	}
	s := newSession(c, local, c.cfg.session.withDefaults())
	c.sessions[local] = s
	s.remoteBegin(ch, b)
	close(s.begun)
	remote := ch
	return asProto(c.w.frame(frame.TypeAMQP, local, s.beginFrame(&remote)))
}

func asProto(err error) *protoError {
	if err == nil {
		return nil
	}
	return violation(frame.CondInternalError, "%v", err)
}

func randomID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
