package mqtt

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Defaults of the Server fields.
const (
	DefaultMaxPacketSize     = 1 << 20
	DefaultReceiveMaximum    = 64
	DefaultMaxInflight       = 64
	DefaultMaxQueued         = 1000
	DefaultConnectTimeout    = 10 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultTopicAliasMaximum = 10
	DefaultDisconnectLinger  = 2 * time.Second

	// takeoverTimeout bounds the wait of a new connection for the
	// Disconnected of the connection it takes over.
	takeoverTimeout = 5 * time.Second
)

// Server is an MQTT 3.1.1 and 5 server. The zero value is ready to use; the
// fields must not change after Serve is called.
type Server struct {
	// Handler receives the connections' events. It must be set.
	Handler Handler

	// Logger receives diagnostics. If nil, slog.Default().
	Logger *slog.Logger

	// MaxPacketSize is the largest inbound packet in bytes, fixed header
	// included. It is sent as Maximum Packet Size in the v5 CONNACK; a larger
	// packet ends the connection (v5: DISCONNECT 0x95). If zero, 1 MiB.
	MaxPacketSize uint32

	// ReceiveMaximum is the number of inbound QoS 1 and 2 messages a client
	// may have unacknowledged, announced in the v5 CONNACK; one more ends the
	// connection with DISCONNECT 0x93. If zero, 64.
	ReceiveMaximum uint16

	// MaxInflight is the number of outbound QoS 1 and 2 messages awaiting
	// acknowledgement per connection. A v5 client's Receive Maximum lowers
	// it. If zero, 64.
	MaxInflight uint16

	// MaxQueued is the number of outbound messages per connection waiting
	// for the inflight window or for the socket; beyond it Conn.Send returns
	// ErrQueueFull. If zero, 1000.
	MaxQueued int

	// ConnectTimeout is the time a new connection has to send CONNECT (and
	// finish any v5 AUTH exchange). If zero, 10 s.
	ConnectTimeout time.Duration

	// MaxKeepAlive, if non-zero, caps the keep alive of v5 clients: a client
	// asking more (or 0, no keep alive) gets it as Server Keep Alive. 3.1.1
	// clients keep theirs.
	MaxKeepAlive uint16

	// WriteTimeout bounds one socket write; a write that does not complete
	// in time closes the connection. If zero, 30 s.
	WriteTimeout time.Duration

	// TopicAliasMaximum is the highest topic alias a v5 client may use in
	// PUBLISH, announced in CONNACK. If zero, 10.
	TopicAliasMaximum uint16

	// OutboundTopicAliases turns on topic aliases in PUBLISH packets sent
	// to v5 clients that accept them (Topic Alias Maximum in CONNECT): the
	// first topics sent on a connection get aliases, up to the client's
	// maximum, and later messages on them carry the alias and an empty
	// topic. Off by default: some clients announce a maximum without
	// resolving aliases (libmosquitto 2.0 closes the connection).
	OutboundTopicAliases bool

	// IdlePark is how long a connection's reader waits for inbound bytes
	// before it parks the connection: the reader goroutine exits, and the
	// Server's poller starts a new one when bytes arrive (Linux, plain TCP;
	// see park.go). Parked connections cost no goroutine. If zero, 100 ms;
	// negative: never park.
	IdlePark time.Duration

	// DisconnectLinger is how long a connection the server ends stays
	// half-open once the last packet (a DISCONNECT, a refusing CONNACK, or
	// in 3.1.1 whatever was queued) is written: the write side is shut
	// down, and what the client still sends is read and discarded until it
	// closes its side or the time is up. A socket closed with unread bytes
	// is reset by the kernel, and a client that is still writing then
	// often gets the reset before it reads why it was disconnected. If
	// zero, 2 s; negative: close at once.
	DisconnectLinger time.Duration

	hooks   hooks // the Handler's optional interfaces, set by Serve
	poll    atomic.Pointer[poller]
	parked  atomic.Int64 // connections parked now
	pollErr error        // guarded by mu
	// pollFault, set by tests before Serve, is called after each
	// successful epoll_wait; an error it returns is taken as epoll_wait's.
	pollFault func() error

	mu        sync.Mutex
	shutdown  bool
	listeners map[net.Listener]struct{}
	conns     map[*Conn]struct{} // every connection with a running reader
	sessions  map[string]*Conn   // SessionKey -> current connection
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) maxPacketSize() int {
	if s.MaxPacketSize == 0 {
		return DefaultMaxPacketSize
	}
	return int(s.MaxPacketSize)
}

func (s *Server) receiveMaximum() int {
	if s.ReceiveMaximum == 0 {
		return DefaultReceiveMaximum
	}
	return int(s.ReceiveMaximum)
}

func (s *Server) maxInflight() int {
	if s.MaxInflight == 0 {
		return DefaultMaxInflight
	}
	return int(s.MaxInflight)
}

func (s *Server) maxQueued() int {
	if s.MaxQueued <= 0 {
		return DefaultMaxQueued
	}
	return s.MaxQueued
}

func (s *Server) connectTimeout() time.Duration {
	if s.ConnectTimeout <= 0 {
		return DefaultConnectTimeout
	}
	return s.ConnectTimeout
}

func (s *Server) writeTimeout() time.Duration {
	if s.WriteTimeout <= 0 {
		return DefaultWriteTimeout
	}
	return s.WriteTimeout
}

func (s *Server) disconnectLinger() time.Duration {
	if s.DisconnectLinger == 0 {
		return DefaultDisconnectLinger
	}
	return max(s.DisconnectLinger, 0)
}

func (s *Server) topicAliasMaximum() uint16 {
	if s.TopicAliasMaximum == 0 {
		return DefaultTopicAliasMaximum
	}
	return s.TopicAliasMaximum
}

// Serve accepts connections on l and serves each in its own goroutine until
// Shutdown, after which it returns ErrServerClosed. Serve may be called for
// several listeners at once.
func (s *Server) Serve(l net.Listener) error {
	if s.Handler == nil {
		return errors.New("mqtt: Server.Handler is nil")
	}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
		s.hooks = newHooks(s.Handler)
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isShutdown() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Probably out of file descriptors: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger().Warn("mqtt: accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.shutdown {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		if s.conns == nil {
			s.conns = make(map[*Conn]struct{})
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go c.serve()
	}
}

func (s *Server) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// Shutdown stops the listeners, closes every connection (v5: DISCONNECT
// 0x8B first) and waits until their Handler.Disconnected calls returned and
// their sockets were closed (after DisconnectLinger at most). If ctx ends
// first, it closes the remaining sockets and returns ctx.Err(); the
// handlers still running then finish on their own.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	for _, c := range conns {
		c.closeWith(packet.ServerShuttingDown, &DisconnectError{Code: packet.ServerShuttingDown, Err: ErrServerClosed})
	}

	wait := time.Millisecond
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			s.stopPoller()
			return nil
		}
		select {
		case <-ctx.Done():
			s.mu.Lock()
			for c := range s.conns {
				c.nc.Close()
				c.wake()
			}
			s.mu.Unlock()
			s.stopPoller()
			return ctx.Err()
		case <-timer.C:
			wait = min(2*wait, 100*time.Millisecond)
			timer.Reset(wait)
		}
	}
}

// takeOver makes c the connection of key. An older connection with the same
// key is closed with SessionTakenOver and takeOver waits, bounded, until its
// Handler.Disconnected returned. It reports false when c must not be opened:
// shutdown, the wait timed out, or c itself was closed meanwhile.
func (s *Server) takeOver(c *Conn, key string) bool {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return false
	}
	if s.sessions == nil {
		s.sessions = make(map[string]*Conn)
	}
	old := s.sessions[key]
	c.key = key
	s.sessions[key] = c
	c.registered = true
	s.mu.Unlock()
	if old == nil {
		return true
	}
	old.closeWith(packet.SessionTakenOver, &DisconnectError{Code: packet.SessionTakenOver})
	t := time.NewTimer(takeoverTimeout)
	defer t.Stop()
	select {
	case <-old.Done():
		return true
	case <-t.C:
		s.logger().Warn("mqtt: session takeover timed out", "key", key)
		return false
	case <-c.Context().Done():
		// c was taken over (or shut down) in turn. Its Done must still
		// follow old's, so that whoever waits for c waits for old too.
		select {
		case <-old.Done():
		case <-t.C:
		}
		return false
	}
}

// release forgets c: its session key (if still its own) and its place in
// the connection set that Shutdown waits on.
func (s *Server) release(c *Conn) {
	s.mu.Lock()
	if c.registered && s.sessions[c.key] == c {
		delete(s.sessions, c.key)
	}
	delete(s.conns, c)
	s.mu.Unlock()
}

// hooks are the optional interfaces of a Handler, asserted once per Server
// rather than held by every connection.
type hooks struct {
	delivered DeliveredHandler
	release   ReleaseHandler
	async     AsyncPublishHandler
	auth      AuthHandler
	opener    SessionOpener
	qos2      QoS2SessionHandler
}

func newHooks(h Handler) hooks {
	var k hooks
	k.delivered, _ = h.(DeliveredHandler)
	k.release, _ = h.(ReleaseHandler)
	k.async, _ = h.(AsyncPublishHandler)
	k.auth, _ = h.(AuthHandler)
	k.opener, _ = h.(SessionOpener)
	k.qos2, _ = h.(QoS2SessionHandler)
	return k
}
