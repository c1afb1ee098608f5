// Package transport turns the ways clients reach Ferry into net.Listeners,
// so protocol servers (mqtt.Server, the AMQP listener) never open sockets
// themselves: TCP and TLS come from the standard library, WebSocket from
// WSListener.
package transport

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

// WSListener accepts WebSocket connections over HTTP and hands them out as
// net.Conns carrying binary messages, the way MQTT over WebSocket works
// (subprotocol "mqtt", one or more MQTT packets per binary frame).
type WSListener struct {
	addr        net.Addr
	subprotocol string
	conns       chan net.Conn
	done        chan struct{}
	closeOnce   sync.Once
}

// NewWSListener returns a listener whose ServeHTTP upgrades requests that
// ask for subprotocol. addr is what Addr reports.
func NewWSListener(addr net.Addr, subprotocol string) *WSListener {
	return &WSListener{addr: addr, subprotocol: subprotocol, conns: make(chan net.Conn), done: make(chan struct{})}
}

// ServeHTTP upgrades the request and blocks until the connection handed to
// Accept is closed (the WebSocket lives as long as the handler).
func (l *WSListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{l.subprotocol},
		// Devices and browser apps connect from anywhere; authentication,
		// not the Origin header, decides who may use the broker.
		InsecureSkipVerify: true,
	})
	if err != nil {
		return // Accept has answered the request
	}
	if c.Subprotocol() != l.subprotocol {
		c.Close(websocket.StatusPolicyViolation, "subprotocol "+l.subprotocol+" required")
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	nc := &wsConn{Conn: websocket.NetConn(ctx, c, websocket.MessageBinary), closed: make(chan struct{}), remote: remoteAddr(r)}
	select {
	case l.conns <- nc:
	case <-l.done:
		c.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	select {
	case <-nc.closed:
	case <-ctx.Done():
		nc.Close()
	}
}

// Accept returns the next upgraded connection.
func (l *WSListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; connections already handed out stay open.
func (l *WSListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr returns the address given to NewWSListener.
func (l *WSListener) Addr() net.Addr { return l.addr }

type wsConn struct {
	net.Conn
	remote    net.Addr
	closeOnce sync.Once
	closed    chan struct{}
}

func (c *wsConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { close(c.closed) })
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (c *wsConn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

func remoteAddr(r *http.Request) net.Addr {
	addr, err := net.ResolveTCPAddr("tcp", r.RemoteAddr)
	if err != nil {
		return nil
	}
	return addr
}
