package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Handler receives the events of the server's connections. Its methods are
// called from the connection's reader goroutine, one at a time per
// connection, and concurrently for different connections: they must be safe
// for concurrent use and should return quickly, since the connection reads
// nothing meanwhile.
type Handler interface {
	// Connect validates CONNECT (authentication, client id). It must not
	// touch session state: the connection may still be refused or taken
	// over. c.ClientID() is final (a v5 empty id has been assigned).
	// Returning ContinueAuthentication starts a v5 AUTH exchange with the
	// AuthHandler (Properties then carry the AUTH's method and data).
	Connect(c *Conn, p *packet.Connect) ConnectResult

	// Open is called after any older connection with the same SessionKey
	// was taken over (closed with v5 DISCONNECT 0x8E and its Disconnected
	// returned), before CONNACK is written. It returns session-present
	// (forced to false when the client asked for a clean start). Sends made
	// during Open are written after the CONNACK.
	Open(c *Conn) (sessionPresent bool)

	// Publish handles an inbound PUBLISH (QoS 0, 1 or 2; topic aliases
	// already resolved). The returned code goes into PUBACK or PUBREC in
	// v5; 3.1.1 has no negative acknowledgement, so QoS 1 and 2 are
	// acknowledged whatever the code. For QoS 2 Publish is called once, on
	// the PUBLISH. p and its slices are valid only during the call.
	Publish(c *Conn, p *packet.Publish) packet.ReasonCode

	// Subscribe returns one reason code per subscription for the SUBACK.
	Subscribe(c *Conn, p *packet.Subscribe) []packet.ReasonCode

	// Unsubscribe returns one reason code per filter for the UNSUBACK.
	Unsubscribe(c *Conn, p *packet.Unsubscribe) []packet.ReasonCode

	// Disconnected is called exactly once per opened connection (one whose
	// Open was called), once nothing more is read or written: the socket is
	// closed, or, when the server ended the connection, its write side is
	// and the client's last bytes are being discarded (Server.
	// DisconnectLinger). err is nil after a DISCONNECT 0x00 from the client
	// and non-nil otherwise; errors.As to *DisconnectError or *packet.Error
	// tells why.
	Disconnected(c *Conn, err error)
}

// ConnectResult is Handler.Connect's verdict.
type ConnectResult struct {
	// Code is Success to accept; anything else is written as CONNACK
	// (mapped to a 3.1.1 return code) and the connection is closed.
	Code packet.ReasonCode
	// Properties are merged into the v5 CONNACK (ReasonString, User, ...).
	// The library sets ReceiveMaximum, MaximumPacketSize, TopicAliasMaximum,
	// AssignedClientID and ServerKeepAlive itself.
	Properties packet.Properties
	// SessionKey identifies the session for takeover; "" means the client id.
	SessionKey string
}

// ReleaseHandler is implemented by a Handler that keeps outbound QoS 2
// state durably. When the client's PUBREC arrives, Released is called and
// the PUBREL goes out only once done is called: a handler that records
// "released" before calling done can, after a restart, send PUBREL again
// (Conn.SendRelease) instead of the PUBLISH, which the client would take
// for a new message once it had released the packet identifier.
type ReleaseHandler interface {
	Released(c *Conn, p *packet.Publish, done func())
}

// QoS2SessionHandler is implemented by a Handler whose sessions outlive
// their connections. The packet identifiers of inbound QoS 2 messages that
// were handed to Publish and not yet released by the client's PUBREL are
// session state [MQTT-4.3.3-9]: a client that reconnects sends such a
// PUBLISH again with DUP, and it must not be handed over a second time.
// Without this interface they live as long as the connection.
type QoS2SessionHandler interface {
	// InboundQoS2 returns those identifiers of c's session. It is called
	// after Open (or OpenSession) when the session is present, before any
	// packet of the client is read.
	InboundQoS2(c *Conn) []uint16
	// AwaitRelease records id before its message goes to Publish (or
	// PublishAsync): a handler that stores it durably makes the
	// guarantee hold across restarts too.
	AwaitRelease(c *Conn, id uint16)
	// Released forgets id: the client released it (PUBREL), or the
	// message was refused, so that the client's next use of id is a new
	// message.
	ReleasedInbound(c *Conn, id uint16)
}

// SessionOpener is implemented by a Handler whose Open can fail, e.g.
// because a persistent session or a will cannot be stored: OpenSession is
// called instead of Open, and a code other than Success is written as the
// CONNACK (3.1.1: mapped to a return code) and the connection closed, so
// the client knows the session it asked for does not exist. Disconnected
// follows as for any opened connection.
type SessionOpener interface {
	OpenSession(c *Conn) (sessionPresent bool, code packet.ReasonCode)
}

// AsyncPublishHandler is implemented by a Handler whose work on an inbound
// QoS 1 or 2 PUBLISH finishes later, typically after a durable write that is
// committed together with other connections' writes. The library then goes
// on reading the client's packets while the acknowledgement is pending, up
// to the Receive Maximum, and sends PUBACK/PUBREC in the order the PUBLISH
// packets arrived [MQTT-4.6.0-2], whatever order done is called in.
//
// QoS 0 messages still go to Handler.Publish.
type AsyncPublishHandler interface {
	// PublishAsync handles p, which is valid only during the call. done must
	// be called exactly once, from any goroutine, with the code for the
	// PUBACK or PUBREC (v5; 3.1.1 acknowledges regardless).
	PublishAsync(c *Conn, p *packet.Publish, done func(packet.ReasonCode))
}

// DeliveredHandler is implemented by a Handler that wants to know when an
// outbound QoS 1 or 2 message was acknowledged (PUBACK, PUBCOMP, or a v5
// PUBREC with an error code). It is called on the reader goroutine.
type DeliveredHandler interface {
	Delivered(c *Conn, p *packet.Publish)
}

// AuthHandler is implemented by a Handler that supports v5 enhanced
// authentication. Auth gets each AUTH packet, during CONNECT (after Connect
// returned ContinueAuthentication) and afterwards (re-authentication), and
// returns the answer: ContinueAuthentication to go on, Success to finish, an
// error code (or nil) to refuse. Without it, AUTH ends the connection with
// ProtocolError.
type AuthHandler interface {
	Auth(c *Conn, p *packet.Auth) *packet.Auth
}

type connState uint8

const (
	stateHandshake connState = iota // reading CONNECT, until CONNACK is queued
	stateOpen                       // CONNACK queued
	stateClosing                    // closing: nothing more is queued
	stateClosed                     // the reader has ended
)

// Conn is one client connection. Its methods are safe for concurrent use.
type Conn struct {
	// Set before the handshake's handler calls, immutable afterwards.
	srv        *Server
	nc         net.Conn
	connect    *packet.Connect // during the handshake only
	clientID   string
	key        string
	version    packet.Version
	cleanStart bool
	opened     bool  // Handler.Open was called
	registered bool  // key is in srv.sessions (guarded by srv.mu until then)
	window     int32 // outbound inflight limit
	maxOut     int32 // the client's Maximum Packet Size; 0: none
	// Outbound topic aliases (v5), guarded by mu: the client's Topic Alias
	// Maximum and the aliases given so far, first come first served.
	aliasOutMax uint16
	aliasOut    map[string]uint16
	// done is made by Done when first asked for (most connections are
	// never waited on); guarded by mu, closed by finish.
	done  chan struct{}
	ended bool // finish closed done (or would have); guarded by mu
	// pendingRel marks the pending messages queued by SendRelease: they go
	// out as PUBREL, not PUBLISH. Guarded by mu.
	pendingRel map[*packet.Publish]struct{}

	// Owned by the reader goroutine (checked in race builds by readerG).
	readerG goroutineLock
	rd      reader
	aliases map[uint16]string // inbound topic aliases
	// awaitRel holds the inbound QoS 2 ids handed to the handler and not yet
	// released by PUBREL. Guarded by mu: an asynchronous completion removes
	// the id of a refused message.
	awaitRel map[uint16]struct{}
	// pendingAcks are the PUBACK/PUBREC of asynchronously handled messages,
	// in arrival order; the done prefix is written as it completes. pendingQoS1
	// counts the QoS 1 ones (QoS 2 ones are in awaitRel already). Guarded by mu.
	pendingAcks []*pendingAck
	pendingQoS1 int
	// refused: the handshake wrote a refusing CONNACK, and the connection
	// lingers before it closes.
	refused bool

	// The writer goroutine (at most one, started by kickLocked) is tracked
	// by wg; the reader waits for it before reporting Disconnected.
	wg sync.WaitGroup

	// closing mirrors state >= stateClosing for the reader's fast check.
	closing atomic.Bool
	// backlogged is set when more than maxBacklog bytes wait for the
	// socket: the reader then waits for room before it reads on.
	backlogged atomic.Bool

	// Parking (park.go): parkState is running, parking, parked or woken;
	// parkExpiry is when the keep alive of the parked connection expires
	// (Unix ns; 0: none); parkID belongs to the reader role.
	parkState  atomic.Int32
	parkExpiry atomic.Int64
	parkID     uint64

	// Guarded by mu.
	mu            sync.Mutex
	state         connState
	closeAfter    bool          // the writer closes the socket once the queue drained
	endErr        error         // why the connection ends, first reason wins
	out           []byte        // encoded packets waiting for the writer
	outMsgs       int           // PUBLISH packets in out
	writing       bool          // a writer goroutine is running
	writeLen      int           // bytes the writer is writing now, taken from out
	room          chan struct{} // made by a reader waiting for room, closed by the writer
	werr          error         // the writer's error; nothing is queued after it
	inflight      map[uint16]outMsg
	pending       []*packet.Publish // not yet encoded: beyond the window, or before CONNACK
	nextID        uint16
	seq           uint64
	dropped       uint64
	sessionExpiry uint32
	value         any
	ctx           context.Context
	cancel        context.CancelFunc
}

// outMsg is an outbound QoS 1 or 2 message in the inflight window.
type outMsg struct {
	p   *packet.Publish
	seq uint64 // send order, for Unacked
	rel bool   // QoS 2: PUBREC received, PUBREL sent
}

func newConn(s *Server, nc net.Conn) *Conn {
	c := &Conn{srv: s, nc: nc}
	c.rd.nc = nc
	c.rd.stop = &c.closing
	return c
}

// ClientID returns the client identifier, the assigned one if the client
// sent none.
func (c *Conn) ClientID() string { return c.clientID }

// Version returns the protocol version of the connection.
func (c *Conn) Version() packet.Version { return c.version }

// RemoteAddr returns the client's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// TLS returns the TLS state of a connection that came through a TLS
// listener (client certificates in PeerCertificates), or nil.
func (c *Conn) TLS() *tls.ConnectionState {
	tc, ok := c.nc.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	return &st
}

// Connect returns the CONNECT packet during the handshake, to the
// Handler's Connect and Open and to AuthHandler.Auth, on the reader
// goroutine; afterwards it returns nil (an idle connection does not keep
// the packet). Its byte slices are the library's own copies: a handler may
// keep the packet, or parts of it such as the will, for as long as it
// likes. Treat it as read-only.
func (c *Conn) Connect() *packet.Connect { return c.connect }

// CleanStart reports the CONNECT's Clean Start (3.1.1: Clean Session) flag.
func (c *Conn) CleanStart() bool { return c.cleanStart }

// SessionExpiry returns the v5 Session Expiry Interval in seconds: the
// CONNECT's, replaced by the one of the client's DISCONNECT if it had one.
func (c *Conn) SessionExpiry() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionExpiry
}

// Dropped returns the number of outbound messages dropped because they
// exceeded the client's Maximum Packet Size or could not be encoded.
func (c *Conn) Dropped() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Context returns a context cancelled when the connection starts closing.
func (c *Conn) Context() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithCancel(context.Background())
		if c.state >= stateClosing {
			c.cancel()
		}
	}
	return c.ctx
}

// SetValue stores the handler's per-connection state.
func (c *Conn) SetValue(v any) {
	c.mu.Lock()
	c.value = v
	c.mu.Unlock()
}

// Value returns what SetValue stored.
func (c *Conn) Value() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.value
}

// Done returns a channel closed after Handler.Disconnected returned (or,
// for a connection never opened, once it ended). A socket the server shut
// may still be lingering then (Server.DisconnectLinger).
func (c *Conn) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.ended {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

// closedChan is the Done of a connection that ended before anybody asked.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// Close closes the connection: in v5 a DISCONNECT with code is written
// first (after what is already queued). Nothing the client sends afterwards
// is handled; the socket is closed once the client closed its side or
// after Server.DisconnectLinger. It does not wait.
func (c *Conn) Close(code packet.ReasonCode) {
	c.closeWith(code, &DisconnectError{Code: code})
}

// CloseWithReason is Close with a v5 DISCONNECT that carries reason as its
// Reason String, for the client's logs (e.g. NotAuthorized, "device
// disabled"). The reason is left out if the packet would exceed the
// client's Maximum Packet Size [MQTT-3.14.2-3]. In 3.1.1 the connection is
// just closed, as by Close. Handler.Disconnected gets a *DisconnectError
// with Code and Reason.
func (c *Conn) CloseWithReason(code packet.ReasonCode, reason string) {
	c.closeWith(code, &DisconnectError{Code: code, Reason: reason})
}

// closeWith starts closing the connection for err. Before CONNACK it just
// closes the socket; afterwards the writer flushes the queue, with a v5
// DISCONNECT code at its end (and the Reason String of err when it is a
// *DisconnectError with one), and the reader stops handling packets: it is
// interrupted if it waits in Read, and finish half-closes the socket and
// lingers.
func (c *Conn) closeWith(code packet.ReasonCode, err error) {
	c.mu.Lock()
	if c.state >= stateClosing {
		c.mu.Unlock()
		return
	}
	prev := c.state
	c.state = stateClosing
	c.closing.Store(true)
	if c.endErr == nil {
		c.endErr = err
	}
	if c.cancel != nil {
		c.cancel()
	}
	if prev == stateHandshake {
		c.mu.Unlock()
		c.nc.Close()
		return
	}
	if c.version == packet.V5 && c.werr == nil {
		reason := ""
		if de, ok := err.(*DisconnectError); ok {
			reason = de.Reason
		}
		c.out = c.appendDisconnectLocked(c.outBuf(), code, reason)
	}
	c.closeAfter = true
	c.kickLocked()
	c.wakeRoomLocked()
	c.mu.Unlock()
	// A reader blocked in Read returns at once; one about to read sees
	// closing (reader.read).
	c.nc.SetReadDeadline(time.Now())
	c.wake() // a parked connection needs its reader to end
}

// appendDisconnectLocked appends a v5 DISCONNECT with code and, if it fits
// the client's Maximum Packet Size, reason.
func (c *Conn) appendDisconnectLocked(b []byte, code packet.ReasonCode, reason string) []byte {
	if reason == "" {
		return appendDisconnect(b, code)
	}
	d := packet.Disconnect{ReasonCode: code, Properties: packet.Properties{ReasonString: reason}}
	start := len(b)
	nb, err := d.Append(b, packet.V5)
	if err != nil || (c.maxOut > 0 && len(nb)-start > int(c.maxOut)) {
		return appendDisconnect(nb[:start], code)
	}
	return nb
}

// serve runs on the connection's reader goroutine, owned by the Server.
func (c *Conn) serve() {
	c.readerG = newGoroutineLock()
	if err := c.run(c.handshake); err != nil {
		c.finish(err)
		return
	}
	// The handshake ran the handlers' connect path (authentication, session
	// set-up), which grows this goroutine's stack. The read loop starts on a
	// fresh goroutine instead, so an idle connection keeps only a small
	// stack: the reader role (and readerG) passes to it.
	go c.serveLoop()
}

func (c *Conn) serveLoop() {
	c.readerG = newGoroutineLock()
	err := c.run(c.readLoop)
	if err == errParked {
		return // a wake-up starts a new reader
	}
	c.finish(err)
}

// run runs step (the handshake or the read loop). A panic (a bug in a
// handler or in the codec, perhaps triggered by a hostile client) ends this
// connection only: it is logged with its stack and reported to
// Disconnected.
func (c *Conn) run(step func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			stack := make([]byte, 32<<10)
			stack = stack[:runtime.Stack(stack, false)]
			c.srv.logger().Error("mqtt: panic serving connection", "client", c.clientID,
				"remote", c.nc.RemoteAddr(), "panic", r, "stack", string(stack))
			err = fmt.Errorf("mqtt: panic serving connection: %v", r)
			c.closeWith(packet.UnspecifiedError, &DisconnectError{Code: packet.UnspecifiedError, Err: err})
		}
	}()
	return step()
}

// finish ends the connection: it waits for the writer, closes the socket
// (after the linger when the server ended the connection), calls
// Disconnected and releases the connection.
func (c *Conn) finish(err error) {
	c.readerG.check()
	c.mu.Lock()
	if c.endErr != nil {
		err = c.endErr
	}
	flush := c.state == stateClosing && c.closeAfter
	c.state = stateClosed
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
	if c.parkID != 0 {
		c.srv.poll.Load().forget(c)
	}
	if !flush && !c.refused {
		c.nc.Close() // unblocks a writer stuck in Write
	}
	c.wg.Wait() // a flushing writer is bounded by WriteTimeout
	c.mu.Lock()
	linger := (flush || c.refused) && c.werr == nil && c.srv.disconnectLinger() > 0
	c.mu.Unlock()
	if linger {
		closeWrite(c.nc)
	} else {
		c.nc.Close()
	}
	c.rd.release()

	if errors.Is(err, errNormalDisconnect) {
		err = nil
	}
	if c.opened {
		c.srv.Handler.Disconnected(c, err)
	}
	c.mu.Lock()
	c.ended = true
	if c.done != nil {
		close(c.done)
	}
	c.mu.Unlock()
	if linger {
		c.linger()
		c.nc.Close()
	}
	c.srv.release(c)
}

// linger reads and discards what the client still sends after the server
// ended the connection and shut down its write side, until the client
// closes its side or DisconnectLinger passes. Closing with unread bytes
// would make the kernel answer with a reset, which can reach the client
// before it read the DISCONNECT or CONNACK telling why. Server.Shutdown
// waits for it, and cuts it short when its context ends.
func (c *Conn) linger() {
	c.nc.SetReadDeadline(time.Now().Add(c.srv.disconnectLinger()))
	buf := getBuf(smallBufSize)
	for {
		if _, err := c.nc.Read(buf); err != nil {
			break
		}
	}
	putBuf(buf)
}

// closeWrite shuts down the write side of nc, so that the client reads the
// end of the stream after the last packet: TLS sends close_notify, TCP a
// FIN. A net.Conn without half-close is left open: the linger still lets
// the client read before the close.
func closeWrite(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		tc.CloseWrite()
		nc = tc.NetConn()
	}
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// Unacked returns, once the connection is closed (from Disconnected on),
// the outbound QoS 1 and 2 messages not acknowledged, in order: the inflight
// ones (Dup set, PacketID kept; QoS 2 ones whose PUBREC arrived included)
// then those never sent. Before the close it returns nil.
func (c *Conn) Unacked() []*packet.Publish {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateClosed {
		return nil
	}
	msgs := make([]outMsg, 0, len(c.inflight))
	for _, m := range c.inflight {
		msgs = append(msgs, m)
	}
	slices.SortFunc(msgs, func(a, b outMsg) int {
		if a.seq < b.seq {
			return -1
		}
		return 1
	})
	res := make([]*packet.Publish, 0, len(msgs)+len(c.pending))
	for _, m := range msgs {
		m.p.Dup = true
		res = append(res, m.p)
	}
	for _, p := range c.pending {
		if p.QoS > 0 {
			res = append(res, p)
		}
	}
	return res
}
