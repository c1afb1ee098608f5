package mqtt_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// pipeListener hands out in-memory connections.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{} }

func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
	case <-l.done:
	}
	return client
}

// panicLog fails the fuzz target when the server logs an error (a recovered
// panic is logged at Error level).
type panicLog struct {
	slog.Handler
	t *testing.T
}

func (h panicLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h panicLog) Handle(_ context.Context, r slog.Record) error {
	h.t.Errorf("server logged: %s", r.Message)
	r.Attrs(func(a slog.Attr) bool { h.t.Log(a.Key, a.Value); return true })
	return nil
}

// quietHandler accepts everything and records nothing.
type quietHandler struct{ fanoutHandler }

func (h *quietHandler) Publish(c *mqtt.Conn, p *packet.Publish) packet.ReasonCode {
	if p.QoS > 0 {
		c.Send(&packet.Publish{QoS: p.QoS, Topic: p.Topic, Payload: append([]byte(nil), p.Payload...)})
	}
	return packet.Success
}

// FuzzConnection feeds arbitrary bytes to a connection, after a valid
// CONNECT (v3.1.1 or v5) or instead of it. The server must neither panic
// nor hang.
func FuzzConnection(f *testing.F) {
	connect := func(v packet.Version) []byte {
		b, _ := (&packet.Connect{ProtocolName: "MQTT", Version: v, CleanStart: true, ClientID: "f", KeepAlive: 10}).Append(nil, v)
		return b
	}
	add := func(v packet.Version, ps ...packet.Packet) {
		var b []byte
		for _, p := range ps {
			b, _ = p.Append(b, v)
		}
		f.Add(byte(v), b)
	}
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		add(v, &packet.Publish{QoS: 1, PacketID: 1, Topic: "a", Payload: []byte("x")}, &packet.Pingreq{})
		add(v, &packet.Publish{QoS: 2, PacketID: 1, Topic: "a"}, &packet.Pubrel{PacketID: 1}, &packet.Pubrec{PacketID: 1})
		add(v, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a/#", QoS: 2}}},
			&packet.Unsubscribe{PacketID: 2, Filters: []string{"a/#"}}, &packet.Disconnect{})
	}
	add(packet.V5, &packet.Publish{Topic: "t", Properties: packet.Properties{TopicAlias: u16(1)}}, &packet.Publish{Properties: packet.Properties{TopicAlias: u16(1)}})
	f.Add(byte(0), connect(packet.V5))
	f.Add(byte(0), []byte{0x10, 0xFF, 0xFF, 0xFF, 0x7F})

	f.Fuzz(func(t *testing.T, v byte, data []byte) {
		l := newPipeListener()
		srv := &mqtt.Server{Handler: &quietHandler{}, Logger: slog.New(panicLog{t: t}), MaxPacketSize: 4096}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()
		nc := l.dial()
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, nc); close(drained) }()
		var in []byte
		if v == byte(packet.V311) || v == byte(packet.V5) {
			in = connect(packet.Version(v))
		}
		nc.Write(append(in, data...))
		nc.Close()
		<-drained
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		<-served
	})
}
