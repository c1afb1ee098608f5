package amqp

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"github.com/ferry-iot/ferry/amqp/encoding"
	"github.com/ferry-iot/ferry/amqp/frame"
)

// Symbol is the AMQP symbol type, used for capabilities and property keys.
type Symbol = encoding.Symbol

// Defaults for the options below.
const (
	DefaultMaxFrameSize     = 64 * 1024
	DefaultWindow           = 5000
	DefaultCredit           = 256
	DefaultMaxMessageSize   = 64 << 20
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultReadBufferSize   = 16 << 10
	// DefaultChannelMax is the highest channel number we accept, so at
	// most 256 sessions per connection. The spec's 65535 (and Proton's
	// 32767) let one peer make us hold tens of thousands of sessions;
	// devices and Hono-style applications use one or a few.
	DefaultChannelMax = 255
	// DefaultHandleMax is the highest link handle we accept per session:
	// 1024 links, where the spec's 2^32-1 (Proton: 2^31-1) is no bound.
	DefaultHandleMax = 1023
	// DefaultMaxLinks bounds the links attached at once on a connection,
	// over all its sessions, whoever attached them.
	DefaultMaxLinks = 1024
	// DefaultIdleTimeout is the idle time-out a Listener announces: a
	// peer that sends nothing for this long (not even the empty frames
	// it must send within it) is disconnected, so dead peers do not hold
	// connections for ever. Qpid JMS and ActiveMQ Artemis use 60 s too;
	// Qpid Dispatch 16 s. Dialled connections announce none by default.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultCloseLinger is how long a connection closed with an error
	// keeps reading (and discarding) the peer's bytes after sending its
	// close, so that the peer reads the error instead of a reset.
	DefaultCloseLinger = 2 * time.Second
	// maxWriteBacklog bounds the bytes queued for the socket before Send
	// blocks: enough to batch many frames, small enough that a stalled
	// peer cannot make us buffer without limit.
	maxWriteBacklog = 4 << 20
)

// ConnOptions configures a connection opened with Dial or NewConn. The
// zero value works: no SASL, no TLS unless the address is amqps://.
type ConnOptions struct {
	// ContainerID identifies this container. Default: a random id.
	ContainerID string
	// HostName is sent in open and in sasl-init. Default: the host of
	// the dialled address.
	HostName string
	// TLSConfig configures TLS for amqps:// addresses, and for amqp://
	// addresses when StartTLS is set. Default: a config with ServerName
	// set from the address.
	TLSConfig *tls.Config
	// StartTLS negotiates TLS inside the AMQP connection with the TLS
	// protocol header (part 5, section 5.2) instead of dialling TLS.
	StartTLS bool
	// SASL selects the mechanism: "" (no SASL layer), "ANONYMOUS",
	// "PLAIN" or "EXTERNAL". Default: "", or PLAIN when the address
	// carries a user name.
	SASL Symbol
	// Username and Password are the PLAIN credentials.
	Username, Password string
	// MaxFrameSize is the largest frame we accept, in bytes. Default
	// DefaultMaxFrameSize; at least 512.
	MaxFrameSize uint32
	// ChannelMax is the highest channel number we accept, and so bounds
	// the sessions the peer can begin. Default DefaultChannelMax.
	ChannelMax uint16
	// MaxSessions bounds the sessions open at once on the connection,
	// whoever began them: NewSession fails with ErrLimit beyond it, and a
	// begin from the peer is answered with begin and an end with
	// amqp:resource-limit-exceeded. Default ChannelMax+1.
	MaxSessions int
	// MaxLinks bounds the links attached at once on the connection, over
	// all sessions: attaching beyond it fails with ErrLimit, and an
	// attach from the peer is refused with amqp:resource-limit-exceeded
	// (a peer that attaches twice as many without detaching the refused
	// ones is disconnected). Default DefaultMaxLinks.
	MaxLinks int
	// IdleTimeout is announced to the peer: if nothing arrives for this
	// long, we close the connection with amqp:resource-limit-exceeded.
	// Default 0: none.
	IdleTimeout time.Duration
	// CloseLinger bounds how long, after closing the connection with an
	// error (a protocol violation by the peer, an expired idle time-out,
	// CloseWithError), we keep reading and discarding what the peer
	// sends until it closes, so that it reads our close instead of a
	// connection reset. Default DefaultCloseLinger; negative closes the
	// socket as soon as the close is written.
	CloseLinger time.Duration
	// Logger receives diagnostics (a panic contained on the connection's
	// goroutine). Default slog.Default().
	Logger *slog.Logger
	// OfferedCapabilities, DesiredCapabilities and Properties go into open.
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	Properties          map[Symbol]any
	// HandshakeTimeout bounds protocol negotiation, SASL and open.
	// Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// ReadBufferSize is the socket read buffer, in bytes. Default
	// DefaultReadBufferSize; smaller saves memory per idle connection and
	// costs throughput (more read calls).
	ReadBufferSize int

	// dialer is a test seam.
	dialer func(ctx context.Context, network, addr string) (net.Conn, error)
}

// SessionOptions configures a session. The zero value works.
type SessionOptions struct {
	// IncomingWindow is the number of transfer frames the peer may send
	// before we update the window. Default DefaultWindow.
	IncomingWindow uint32
	// HandleMax is the highest link handle we accept, and so bounds the
	// links the peer can attach on the session. Default DefaultHandleMax.
	HandleMax uint32
}

// SenderOptions configures a Sender. The zero value works: mixed
// settlement, deliveries sent unsettled.
type SenderOptions struct {
	// Name is the link name. Default: a random name.
	Name string
	// SettleMode is the sender settle mode requested. Default mixed.
	SettleMode *frame.SenderSettleMode
	// ReceiverSettleMode is the receiver settle mode requested. Default first.
	ReceiverSettleMode *frame.ReceiverSettleMode
	// DynamicTarget asks the peer to create a node and name it; the name
	// is then Sender.Address.
	DynamicTarget bool
	// SourceAddress is the address of our source terminus, if any.
	SourceAddress string
	// TargetCapabilities and TargetDurability go into the target.
	TargetCapabilities []Symbol
	TargetDurability   frame.Durability
	// OfferedCapabilities, DesiredCapabilities and Properties go into attach.
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	Properties          map[Symbol]any
}

// ReceiverOptions configures a Receiver. The zero value works: credit
// DefaultCredit, settle first.
type ReceiverOptions struct {
	// Name is the link name. Default: a random name.
	Name string
	// Credit is the number of messages the receiver buffers; the peer is
	// granted this much credit and topped up as messages are received
	// presettled or are settled, so that at most Credit messages are
	// queued or unsettled in the application's hands. Default
	// DefaultCredit.
	Credit uint32
	// ManualCredit disables automatic top-ups: IssueCredit grants credit.
	ManualCredit bool
	// SettleMode requests a sender settle mode. Default mixed.
	SettleMode *frame.SenderSettleMode
	// ReceiverSettleMode requests a receiver settle mode. Default first.
	ReceiverSettleMode *frame.ReceiverSettleMode
	// MaxMessageSize bounds incoming messages, in bytes. Default
	// DefaultMaxMessageSize.
	MaxMessageSize uint64
	// DynamicSource asks the peer to create a node and name it.
	DynamicSource bool
	// Filter, SourceCapabilities, SourceDurability, SourceExpiryPolicy
	// and SourceTimeout (seconds) go into the source: a durable
	// subscription asks for durability and how long the node keeps it
	// while the link is away (part 3, sections 3.5.5 and 3.5.6).
	Filter             map[Symbol]any
	SourceCapabilities []Symbol
	SourceDurability   frame.Durability
	SourceExpiryPolicy Symbol
	SourceTimeout      uint32
	// TargetAddress is the address of our target terminus, if any.
	TargetAddress string
	// OfferedCapabilities, DesiredCapabilities and Properties go into attach.
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	Properties          map[Symbol]any
}

// ListenerOptions configures a Listener. Only Handler is required.
type ListenerOptions struct {
	// Handler is offered every link a peer attaches, and every session a
	// peer begins when it also implements SessionHandler. Required.
	Handler Handler
	// ContainerID identifies this container. Default: a random id.
	ContainerID string
	// TLSConfig enables TLS: direct TLS connections (detected by their
	// first byte) and the AMQP TLS protocol header. Default: no TLS.
	TLSConfig *tls.Config
	// Authenticate checks SASL credentials. When nil, SASL is optional and
	// offers ANONYMOUS only. When set, SASL is required, PLAIN and
	// ANONYMOUS are offered, and EXTERNAL too when TLSConfig is set.
	// See Authenticator.
	Authenticate Authenticator
	// SASLMechanisms, when set with Authenticate, are the mechanisms
	// offered, in this order, from PLAIN, ANONYMOUS and EXTERNAL (EXTERNAL
	// only to a client that presented a TLS certificate): e.g. PLAIN alone
	// for a listener where every peer must log in. Default: EXTERNAL (when
	// possible), PLAIN, ANONYMOUS.
	SASLMechanisms []Symbol
	// MaxFrameSize and ChannelMax are announced in open; see ConnOptions.
	// Default DefaultMaxFrameSize and DefaultChannelMax.
	MaxFrameSize uint32
	ChannelMax   uint16
	// IdleTimeout is announced in open: a peer silent for this long is
	// disconnected with amqp:resource-limit-exceeded. Default
	// DefaultIdleTimeout; negative announces none.
	IdleTimeout time.Duration
	// MaxSessions, MaxLinks and CloseLinger apply to each connection; see
	// ConnOptions. Default ChannelMax+1, DefaultMaxLinks and
	// DefaultCloseLinger.
	MaxSessions int
	MaxLinks    int
	CloseLinger time.Duration
	// MaxConnections bounds the connections open at once: one beyond it
	// is closed after its open with amqp:resource-limit-exceeded. 0: no
	// bound.
	MaxConnections int
	// Logger receives diagnostics: Accept errors, panics in the Handler.
	// Default slog.Default().
	Logger *slog.Logger
	// Session applies to the sessions peers begin.
	Session SessionOptions
	// Credit is the credit granted on links where Ferry receives, when
	// the handler does not change it. Default DefaultCredit.
	Credit uint32
	// MaxMessageSize bounds messages on links where Ferry receives.
	// Default DefaultMaxMessageSize.
	MaxMessageSize uint64
	// OfferedCapabilities and Properties go into open; offer
	// "ANONYMOUS-RELAY" when the handler accepts links without target.
	OfferedCapabilities []Symbol
	Properties          map[Symbol]any
	// HandshakeTimeout bounds negotiation, SASL and open. Default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// ReadBufferSize is the socket read buffer per connection; see
	// ConnOptions. Default DefaultReadBufferSize.
	ReadBufferSize int
}

// connConfig is what a Conn needs from either role's options.
type connConfig struct {
	server           bool
	containerID      string
	hostname         string
	tlsConfig        *tls.Config
	startTLS         bool
	saslMech         Symbol
	username         string
	password         string
	authenticate     Authenticator
	saslMechanisms   []Symbol
	maxFrameSize     uint32
	channelMax       uint16
	maxSessions      int
	maxLinks         int
	maxConns         int
	idleTimeout      time.Duration
	closeLinger      time.Duration
	logger           *slog.Logger
	offeredCaps      []Symbol
	desiredCaps      []Symbol
	properties       map[Symbol]any
	handshakeTimeout time.Duration
	session          SessionOptions
	credit           uint32
	maxMessageSize   uint64
	handler          Handler
	sessionHandler   SessionHandler // handler, when it implements SessionHandler
	readBufferSize   int
}

func (c *connConfig) setDefaults() {
	if c.containerID == "" {
		c.containerID = randomID("ferry-")
	}
	if c.maxFrameSize == 0 {
		c.maxFrameSize = DefaultMaxFrameSize
	}
	if c.maxFrameSize < frame.MinMaxFrameSize {
		c.maxFrameSize = frame.MinMaxFrameSize
	}
	if c.channelMax == 0 {
		c.channelMax = DefaultChannelMax
	}
	if c.maxSessions <= 0 {
		c.maxSessions = int(c.channelMax) + 1
	}
	if c.maxLinks <= 0 {
		c.maxLinks = DefaultMaxLinks
	}
	switch {
	case c.idleTimeout == 0 && c.server:
		c.idleTimeout = DefaultIdleTimeout
	case c.idleTimeout < 0:
		c.idleTimeout = 0
	}
	switch {
	case c.closeLinger == 0:
		c.closeLinger = DefaultCloseLinger
	case c.closeLinger < 0:
		c.closeLinger = 0
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.handshakeTimeout == 0 {
		c.handshakeTimeout = DefaultHandshakeTimeout
	}
	if c.credit == 0 {
		c.credit = DefaultCredit
	}
	if c.maxMessageSize == 0 {
		c.maxMessageSize = DefaultMaxMessageSize
	}
	if c.readBufferSize <= 0 {
		c.readBufferSize = DefaultReadBufferSize
	}
}

func (o *SessionOptions) withDefaults() SessionOptions {
	var s SessionOptions
	if o != nil {
		s = *o
	}
	if s.IncomingWindow == 0 {
		s.IncomingWindow = DefaultWindow
	}
	if s.HandleMax == 0 {
		s.HandleMax = DefaultHandleMax
	}
	return s
}
