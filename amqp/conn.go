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
	"runtime"
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
	br          *bufio.Reader // the handshake's; nil once the reader starts
	rd          *sockReader   // the reader goroutine's, after the handshake
	lingerAt    atomic.Int64  // the read deadline of a linger, unix nanos
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
	channels       idAlloc             // local channels
	links          int                 // links holding a local handle, over all sessions
	closeSent      bool
	lingering      bool  // we closed with an error: the reader drains the peer before closing the socket
	err            error // set once, before done is closed
	closeReceived  chan struct{}
	remoteClose    *Error // the error in the peer's close; set before closeReceived is closed
	// closeAnswered: the peer's close answered ours, so the end is our
	// Close, not the peer's decision (EndedCleanly); reader goroutine only.
	closeAnswered bool

	socketClosed sync.Once

	// pendingAttach and pendingBegin are owned by the reader goroutine:
	// dispatch queues an incoming attach or begin here and the reader runs
	// the Handler after unlocking.
	pendingAttach *pendingAttach
	pendingBegin  *SessionRequest

	notes notifier // guarded by mu
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
		readBufferSize: opts.ReadBufferSize, maxSessions: opts.MaxSessions, maxLinks: opts.MaxLinks,
		closeLinger: opts.CloseLinger, logger: opts.Logger,
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
	c.rd = newSockReader(c.nc, c.br, c.cfg.readBufferSize, &c.lingerAt)
	c.br = nil
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
			v := violation(frame.CondResourceLimitExceeded, "nothing received within the idle time-out of %v", c.cfg.idleTimeout)
			c.closeWithError(v.amqpError(), &ConnError{inner: v})
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
// carried one. On a connection already closing with an error (see
// CloseWithError) it waits for that close to finish.
func (c *Conn) Close() error { return c.CloseWithError(nil) }

// CloseWithError is Close with a condition for the peer, for example
// amqp:connection:forced when a server evicts a client. With a condition,
// sessions and links fail at once, frames the peer sends after our close
// are discarded unprocessed, and the socket is closed once the peer has
// closed (its close or the end of its stream) or after CloseLinger, so
// that the peer reads the condition instead of a connection reset. Do not
// call it from HandleLink or HandleSession: it waits for the reader
// goroutine that runs them (call it from another goroutine).
func (c *Conn) CloseWithError(e *Error) error {
	if c.closeCalled.Swap(true) {
		<-c.readerDone
		return nil
	}
	if e != nil {
		c.closeWithError(e, &ConnError{inner: ErrClosed})
	} else {
		c.mu.Lock()
		c.sendCloseLocked(nil)
		lingering := c.lingering
		c.mu.Unlock()
		if !lingering {
			t := time.NewTimer(time.Second)
			select {
			case <-c.closeReceived:
			case <-c.done:
			case <-t.C:
			}
			t.Stop()
			c.shutdown(&ConnError{inner: ErrClosed})
		}
	}
	<-c.readerDone
	var ce *ConnError
	if errors.As(c.err, &ce) && ce.RemoteErr != nil {
		return c.err
	}
	return nil
}

// sendCloseLocked queues our close unless one went out already or the
// connection is over, and reports whether it did. No frame may follow a
// close (part 2, section 2.4.3), so the writer refuses any later ones.
func (c *Conn) sendCloseLocked(e *Error) bool {
	if c.closeSent || c.err != nil {
		c.closeSent = true
		return false
	}
	c.closeSent = true
	err := c.w.frame(frame.TypeAMQP, 0, &frame.Close{Error: e})
	c.w.seal()
	return err == nil
}

// closeWithError ends the connection because we decided to (a violation by
// the peer, an expired idle time-out, a panic, CloseWithError): it sends
// close with e and fails sessions and links with err at once, so nothing
// the peer sends afterwards is processed. The socket stays open: once our
// close is written the write side is shut and the reader reads and
// discards until the peer closes or CloseLinger passes. Closing at once
// would make the kernel answer the peer's unread bytes with a reset,
// which can destroy our close before the peer's application reads it.
// Safe to call from any goroutine.
func (c *Conn) closeWithError(e *Error, err error) {
	c.mu.Lock()
	if c.lingering {
		c.mu.Unlock()
		return // closing with an error already: let the linger finish
	}
	linger := c.sendCloseLocked(e) && c.cfg.closeLinger > 0
	c.lingering = linger
	c.endLocked(err)
	c.mu.Unlock()
	if !linger {
		c.closeSocket()
		return
	}
	if !c.w.drain(time.Second) {
		// The peer does not read: it would not read our close either.
		c.nc.Close()
		return
	}
	closeWrite(c.nc)
	at := time.Now().Add(c.cfg.closeLinger)
	c.lingerAt.Store(at.UnixNano()) // before the deadline: see sockReader.fill
	_ = c.nc.SetReadDeadline(at)
}

// closeWrite half-closes nc when it can (TCP: a FIN; TLS: close_notify),
// so that the peer sees the end of our stream right after our close.
func closeWrite(nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// shutdown ends the connection now: it records err (first wins), fails
// every session and link and closes the socket. Safe to call from any
// goroutine, more than once.
func (c *Conn) shutdown(err error) {
	c.mu.Lock()
	c.endLocked(err)
	c.mu.Unlock()
	c.closeSocket()
}

// endLocked ends the connection for the API: it records err unless an
// error is recorded already, stops the idle timer and fails every session
// and link.
func (c *Conn) endLocked(err error) {
	if c.err != nil {
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
}

// closeSocket flushes what is queued for a short while and closes the
// socket, once.
func (c *Conn) closeSocket() {
	c.socketClosed.Do(func() {
		c.w.drain(time.Second)
		c.w.fail(ErrClosed)
		c.nc.Close()
		if c.listener != nil {
			c.listener.forget(c)
		}
	})
}

// readLoop reads and dispatches frames until the connection ends, lingers
// if we closed it with an error, and closes the socket. It is the only
// reader of the socket after the handshake.
func (c *Conn) readLoop() {
	defer close(c.readerDone)
	var buf []byte // a pooled frame buffer while frames flow (readFrame)
	defer c.rd.release()
	c.readFrames(&buf)
	c.mu.Lock()
	linger := c.lingering
	c.mu.Unlock()
	if linger {
		c.linger(&buf)
	}
	c.closeSocket()
}

// readFrames reads and dispatches frames until the connection ends.
func (c *Conn) readFrames(buf *[]byte) {
	defer c.recoverPanic()
	for {
		h, body, err := c.readFrame(buf)
		select {
		case <-c.done:
			return // we ended it (idle time-out, Close): the frame is moot
		default:
		}
		if err != nil {
			var v *protoError
			switch {
			case errors.As(err, &v):
				c.closeWithError(v.amqpError(), &ConnError{inner: v})
			case errors.Is(err, io.ErrUnexpectedEOF):
				v := violation(frame.CondFramingError, "truncated frame")
				c.closeWithError(v.amqpError(), &ConnError{inner: v})
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
			v := violation(frame.CondFramingError, "SASL frame after SASL")
			c.closeWithError(v.amqpError(), &ConnError{inner: v})
			return
		}
		if !isPerformative(body, codeTransfer) {
			// Only transfers are handled zero-copy; everything else may be
			// kept (properties, errors), so it must not alias buf.
			body = append([]byte(nil), body...)
		}
		fb, err := frame.DecodeBody(h.Type, body)
		if err != nil {
			v := violation(frame.CondDecodeError, "%v", err)
			c.closeWithError(v.amqpError(), &ConnError{inner: v})
			return
		}
		if traceIncoming != nil {
			traceIncoming(h.Channel, fb)
		}
		if v := c.dispatch(h.Channel, fb); v != nil {
			c.closeWithError(v.amqpError(), &ConnError{inner: v})
			return
		}
		if !c.rd.buffered() {
			// The next read may wait long: nothing refers to the frame
			// any more (transfers were copied), so an idle connection
			// keeps no frame buffer.
			releaseFrameBuf(buf)
		}
		if req := c.pendingBegin; req != nil {
			c.pendingBegin = nil
			c.completeBegin(req)
		}
		if p := c.pendingAttach; p != nil {
			c.pendingAttach = nil
			c.completeAttach(p)
		}
		select {
		case <-c.closeReceived:
			if c.closeAnswered && c.remoteClose == nil {
				c.shutdown(&ConnError{inner: ErrClosed})
			} else {
				c.shutdown(&ConnError{RemoteErr: c.remoteClose})
			}
			return
		case <-c.done:
			return
		default:
		}
	}
}

// recoverPanic contains a panic on the reader goroutine (a bug in a
// Handler, or in the engine triggered by a hostile peer) to its
// connection, as the mqtt package does: it is logged with its stack and
// the connection closed with amqp:internal-error. The mutex is free here:
// every locked section on the reader's path unlocks in a defer.
func (c *Conn) recoverPanic() {
	r := recover()
	if r == nil {
		return
	}
	stack := make([]byte, 32<<10)
	stack = stack[:runtime.Stack(stack, false)]
	c.cfg.logger.Error("amqp: panic serving connection", "remote", c.nc.RemoteAddr(),
		"container", c.remoteOpen.ContainerID, "panic", r, "stack", string(stack))
	// The description stays vague: the panic is ours, not the peer's business.
	c.closeWithError(&Error{Condition: frame.CondInternalError, Description: "internal error"},
		&ConnError{inner: fmt.Errorf("amqp: panic serving connection: %v", r)})
}

// linger reads and discards what the peer sends after our close with an
// error, until its close, the end of its stream or the read deadline
// closeWithError set.
func (c *Conn) linger(buf *[]byte) {
	for {
		h, body, err := c.readFrame(buf)
		var v *protoError
		switch {
		case errors.As(err, &v):
			// Out of step with the framing (an oversized or bad frame
			// brought us here): discard bytes instead.
			_, _ = io.Copy(io.Discard, c.rd)
			return
		case err != nil:
			return
		case h.Type == frame.TypeAMQP && isPerformative(body, codeClose):
			return
		}
	}
}

// traceIncoming, when set (by tests), sees every decoded incoming frame.
var traceIncoming func(ch uint16, fb frame.Body)

// Descriptor codes of the performatives the reader recognises before
// decoding (part 2, section 2.7).
const (
	codeTransfer = 0x14
	codeClose    = 0x18
)

// isPerformative reports whether body is the performative with the given
// descriptor code, encoded as a smallulong (as every peer we know does).
func isPerformative(body []byte, code byte) bool {
	return len(body) >= 3 && body[0] == 0 && body[1] == 0x53 && body[2] == code
}

// readFrame reads one frame into *buf and returns its header and body.
func (c *Conn) readFrame(buf *[]byte) (frame.Header, []byte, error) {
	var r io.Reader = c.br // during the handshake
	if c.rd != nil {
		r = c.rd
	}
	var hb [frame.HeaderSize]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
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
		if *buf == nil && n <= frameBufSize {
			*buf = (*frameBufs.Get().(*[]byte))[:0]
		} else {
			releaseFrameBuf(buf)
			*buf = make([]byte, n)
		}
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, err
	}
	return h, b[int(h.DataOffset)*4-frame.HeaderSize:], nil
}

// frameBufSize is the size of pooled frame buffers: most frames fit; a
// larger one gets a buffer of its own.
const frameBufSize = 4096

var frameBufs = sync.Pool{New: func() any { b := make([]byte, frameBufSize); return &b }}

// releaseFrameBuf gives *buf back to the pool when it came from there.
func releaseFrameBuf(buf *[]byte) {
	if cap(*buf) == frameBufSize {
		b := (*buf)[:frameBufSize]
		frameBufs.Put(&b)
	}
	*buf = nil
}

// dispatch handles one frame from the reader goroutine.
func (c *Conn) dispatch(ch uint16, fb frame.Body) *protoError {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		// We are closing: only the peer's close still matters.
		if b, ok := fb.(*frame.Close); ok {
			c.handleClose(b)
		}
		return nil
	}
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
	select {
	case <-c.closeReceived:
	default:
		close(c.closeReceived)
	}
	c.closeAnswered = c.closeSent
	c.sendCloseLocked(nil)
	// The reader shuts the connection down once dispatch has released mu.
	c.remoteClose = b.Error
}

// NewSession begins a session. opts may be nil. Beyond MaxSessions, or
// when every channel the peer accepts is in use, it fails with an error
// wrapping ErrLimit.
func (c *Conn) NewSession(ctx context.Context, opts *SessionOptions) (*Session, error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	if c.closeSent {
		c.mu.Unlock()
		return nil, &SessionError{inner: ErrClosed}
	}
	if n := len(c.sessions); n >= c.cfg.maxSessions {
		c.mu.Unlock()
		return nil, &SessionError{inner: fmt.Errorf("%w: %d sessions open (MaxSessions)", ErrLimit, n)}
	}
	ch, ok := c.channels.get()
	if !ok {
		c.mu.Unlock()
		return nil, &SessionError{inner: fmt.Errorf("%w: all %d channels in use", ErrLimit, c.channels.limit+1)}
	}
	s := newSession(c, uint16(ch), opts.withDefaults())
	c.sessions[s.channel] = s
	err := c.w.frame(frame.TypeAMQP, s.channel, s.beginFrame(nil))
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
	// Counted before the new session: refused sessions count until the
	// peer answers our end, and the channels bound how many it can leave
	// unanswered.
	n := len(c.sessions)
	local, ok := c.channels.get()
	if !ok {
		return violation(frame.CondResourceLimitExceeded, "no free channel: %d sessions not yet ended", n)
	}
	s := newSession(c, uint16(local), c.cfg.session.withDefaults())
	c.sessions[s.channel] = s
	s.remoteBegin(ch, b)
	close(s.begun)
	switch {
	case n >= c.cfg.maxSessions:
		// [part 2, 2.5.4] a session is refused by answering begin and
		// ending it at once.
		return asProto(c.answerBeginLocked(s, &Error{Condition: frame.CondResourceLimitExceeded,
			Description: fmt.Sprintf("%d sessions open, the most this connection allows", n)}))
	case c.cfg.sessionHandler != nil:
		c.pendingBegin = &SessionRequest{Conn: c, Begin: b, s: s}
		return nil
	}
	return asProto(c.answerBeginLocked(s, nil))
}

// completeBegin asks the SessionHandler about a queued begin and answers
// it. Called by the reader goroutine without c.mu, so that the handler
// may take its time (no other frame of the connection is processed
// meanwhile) and may call the Conn's non-blocking methods.
func (c *Conn) completeBegin(req *SessionRequest) {
	err := c.cfg.sessionHandler.HandleSession(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.closeSent {
		return
	}
	var e *Error
	if err != nil {
		e = asError(err)
	}
	_ = c.answerBeginLocked(req.s, e)
}

// answerBeginLocked sends our begin for a session the peer began, and
// with e ends it straight away.
func (c *Conn) answerBeginLocked(s *Session, e *Error) error {
	remote := s.remoteChannel
	err := c.w.frame(frame.TypeAMQP, s.channel, s.beginFrame(&remote))
	if e != nil {
		s.endLocked(e, &SessionError{inner: e})
	}
	return err
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
