package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/coder/websocket"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Options configures a Client. Only Server (or Dial) is required.
type Options struct {
	// Server is the broker's URL: tcp:// or mqtt:// (port 1883 by
	// default), tls://, ssl:// or mqtts:// (8883), ws:// (80) or wss://
	// (443) with the path of the WebSocket endpoint, such as
	// ws://host:8083/mqtt. The WebSocket subprotocol is "mqtt".
	Server string
	// TLSConfig is used for tls:// and wss://; nil means the defaults, with
	// the server name taken from the URL.
	TLSConfig *tls.Config
	// Dial, if set, replaces Server and TLSConfig: it returns a connection
	// to the broker, already through TLS or WebSocket if any.
	Dial func(ctx context.Context) (net.Conn, error)

	// Version is packet.V311 or packet.V5; 0 means V5.
	Version packet.Version
	// ClientID identifies the session. Empty asks the server to assign one
	// (MQTT 5; a 3.1.1 server accepts it only with CleanStart); the
	// assigned one is then used on reconnection, see Client.ClientID.
	ClientID string
	// CleanStart discards the session on the server and in the Store at
	// the first connection. Reconnections never set it: they resume.
	CleanStart bool
	// SessionExpiry (MQTT 5) is how long the server keeps the session after
	// the connection ends, rounded down to seconds. 0 ends it with the
	// connection, so a reconnection finds no session (see Options.OnConnect).
	SessionExpiry time.Duration
	// KeepAlive is the interval of PINGREQs, rounded down to seconds, and
	// what the server is told (it closes the connection after one and a
	// half of it without a packet). 0 means 60 s; negative turns keep alive
	// off. An MQTT 5 server may impose its own (Server Keep Alive).
	KeepAlive time.Duration
	// PingTimeout is how long the client waits for any packet after a
	// PINGREQ before it closes the connection as dead. 0 means half of
	// KeepAlive.
	PingTimeout time.Duration
	// ConnectTimeout bounds each connection attempt (dial and CONNACK) when
	// the context has no earlier deadline. 0 means 30 s.
	ConnectTimeout time.Duration

	Username string
	Password []byte // sent when not nil, also empty
	Will     *Will

	// ReceiveMaximum (MQTT 5) is how many inbound QoS 1 and 2 messages may
	// be unacknowledged at a time; a server that sends more is disconnected
	// with Receive Maximum exceeded. 0 means 65535, the protocol's default.
	ReceiveMaximum uint16
	// MaximumPacketSize (MQTT 5) is the largest packet the client accepts;
	// the server drops messages that would be bigger. 0 means no limit.
	MaximumPacketSize uint32
	// TopicAliasMaximum (MQTT 5) is how many topic aliases the server may
	// use towards the client. 0 means none.
	TopicAliasMaximum uint16
	// RequestResponseInfo (MQTT 5) asks the server for Response
	// Information, which Request uses as the prefix of its response topic.
	RequestResponseInfo bool
	// UserProperties (MQTT 5) are sent in CONNECT.
	UserProperties []packet.UserProperty

	// Window bounds the outgoing QoS 1 and 2 messages in flight. In 3.1.1
	// it is the bound, 0 meaning 64; in MQTT 5 the server's Receive Maximum
	// is, and a non-zero Window lowers it.
	Window int
	// NoTopicAliases stops the client from using outgoing topic aliases
	// (MQTT 5), which it otherwise does when the server accepts some: the
	// first topics published get one each, until the server's maximum.
	NoTopicAliases bool

	// OnMessage is called with each inbound message, one at a time, on a
	// goroutine of the client. A QoS 1 or 2 message is acknowledged when it
	// returns, so a process that dies before gets it again from a
	// persistent session. It must not keep the Message.
	OnMessage func(*Message)
	// Messages, if OnMessage is nil, receives each inbound message
	// instead; a QoS 1 or 2 message is acknowledged once the channel took
	// it. Without either, messages are acknowledged and dropped.
	Messages chan<- *Message
	// OnConnect is called after each successful connection, the first one
	// included, before any message is delivered or published on it.
	// sessionPresent false means the server has no subscriptions of the
	// client: the application must subscribe again. It runs on the
	// client's connecting goroutine; it may call Subscribe.
	OnConnect func(c *Client, sessionPresent bool)
	// OnConnectionLost is called when a connection ends other than by
	// Close, with the reason, before any reconnection.
	OnConnectionLost func(c *Client, err error)

	// Reconnect makes the client connect again when the connection is
	// lost, resuming the session (see the package documentation). Without
	// it the client ends: Done is closed and Err says why.
	Reconnect bool
	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts, which doubles from MinBackoff up to MaxBackoff; each wait is
	// drawn at random between half of it and all of it. 0 means 100 ms
	// and 30 s.
	MinBackoff, MaxBackoff time.Duration

	// Store keeps the session's in-flight messages; nil means a new
	// MemoryStore. Use a FileStore to survive restarts.
	Store Store
}

// Will is the message the server publishes when the connection ends
// without a DISCONNECT (MQTT 5: or with reason Disconnect with Will).
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// Properties (MQTT 5): Will Delay Interval, Payload Format Indicator,
	// Message Expiry Interval, Content Type, Response Topic, Correlation
	// Data, User Property.
	Properties packet.Properties
}

func (o *Options) version() packet.Version {
	if o.Version == 0 {
		return packet.V5
	}
	return o.Version
}

func (o *Options) keepAlive() time.Duration {
	switch {
	case o.KeepAlive == 0:
		return 60 * time.Second
	case o.KeepAlive < 0:
		return 0
	}
	return o.KeepAlive
}

func (o *Options) receiveMaximum() int {
	if o.ReceiveMaximum == 0 || o.version() != packet.V5 {
		return 65535
	}
	return int(o.ReceiveMaximum)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// dial opens the transport named by Server.
func (o *Options) dial(ctx context.Context) (net.Conn, error) {
	if o.Dial != nil {
		return o.Dial(ctx)
	}
	u, err := url.Parse(o.Server)
	if err != nil {
		return nil, fmt.Errorf("mqtt client: server URL: %w", err)
	}
	host := u.Host
	withPort := func(port string) string {
		if u.Port() == "" {
			return net.JoinHostPort(u.Hostname(), port)
		}
		return host
	}
	var d net.Dialer
	switch u.Scheme {
	case "tcp", "mqtt":
		return d.DialContext(ctx, "tcp", withPort("1883"))
	case "tls", "ssl", "mqtts":
		td := tls.Dialer{NetDialer: &d, Config: o.TLSConfig}
		return td.DialContext(ctx, "tcp", withPort("8883"))
	case "ws", "wss":
		hc := &http.Client{Transport: &http.Transport{
			DialContext:     d.DialContext,
			TLSClientConfig: o.TLSConfig,
		}}
		ws, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
			HTTPClient:   hc,
			Subprotocols: []string{"mqtt"},
		})
		if err != nil {
			return nil, err
		}
		if ws.Subprotocol() != "mqtt" {
			ws.Close(websocket.StatusProtocolError, "subprotocol mqtt required")
			return nil, fmt.Errorf("mqtt client: %s did not accept the WebSocket subprotocol mqtt", o.Server)
		}
		// The NetConn lives past the dial: its context must not be ctx.
		return websocket.NetConn(context.Background(), ws, websocket.MessageBinary), nil
	}
	return nil, fmt.Errorf("mqtt client: server URL %q: scheme must be tcp, mqtt, tls, ssl, mqtts, ws or wss", o.Server)
}
