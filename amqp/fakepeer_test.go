package amqp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/amqp/encoding"
	"github.com/ferry-iot/ferry/amqp/frame"
)

// fakePeer is a scripted AMQP peer speaking raw frames to a Listener, for
// the cases no well-behaved client produces.
type fakePeer struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialFake(t *testing.T, l *Listener) *fakePeer {
	t.Helper()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	// Every read is bounded: a hang in the engine fails the test.
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &fakePeer{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (p *fakePeer) write(b []byte) {
	p.t.Helper()
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

func (p *fakePeer) send(t frame.Type, ch uint16, body frame.Body) {
	p.t.Helper()
	b, err := frame.Append(nil, t, ch, body)
	if err != nil {
		p.t.Fatal(err)
	}
	p.write(b)
}

func (p *fakePeer) header() frame.ProtoHeader {
	p.t.Helper()
	var b [8]byte
	if _, err := io.ReadFull(p.br, b[:]); err != nil {
		p.t.Fatalf("reading protocol header: %v", err)
	}
	h, err := frame.ParseProtoHeader(b[:])
	if err != nil {
		p.t.Fatal(err)
	}
	return h
}

// next returns the next non-empty frame, or nil at EOF.
func (p *fakePeer) next() (uint16, frame.Body) {
	p.t.Helper()
	for {
		var hb [8]byte
		if _, err := io.ReadFull(p.br, hb[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
				return 0, nil
			}
			p.t.Fatalf("reading frame: %v", err)
		}
		h, err := frame.ParseHeader(hb[:])
		if err != nil {
			p.t.Fatal(err)
		}
		body := make([]byte, h.Size-8)
		if _, err := io.ReadFull(p.br, body); err != nil {
			p.t.Fatal(err)
		}
		body = body[int(h.DataOffset)*4-8:]
		if len(body) == 0 {
			continue
		}
		fb, err := frame.DecodeBody(h.Type, body)
		if err != nil {
			p.t.Fatal(err)
		}
		return h.Channel, fb
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// expect reads frames until one of type T arrives.
func expect[T frame.Body](p *fakePeer) T {
	p.t.Helper()
	for {
		_, fb := p.next()
		if fb == nil {
			var zero T
			p.t.Fatalf("connection ended while waiting for %T", zero)
		}
		if b, ok := fb.(T); ok {
			return b
		}
	}
}

// open performs the AMQP header and open exchange.
func (p *fakePeer) open(o *frame.Open) {
	p.t.Helper()
	p.write(frame.Proto(frame.ProtoAMQP).AppendTo(nil))
	if h := p.header(); h != frame.Proto(frame.ProtoAMQP) {
		p.t.Fatalf("header %+v", h)
	}
	if o == nil {
		o = &frame.Open{ContainerID: "fake"}
	}
	if o.MaxFrameSize == 0 {
		o.MaxFrameSize = 1 << 20
	}
	if o.ChannelMax == 0 {
		o.ChannelMax = 100
	}
	p.send(frame.TypeAMQP, 0, o)
	expect[*frame.Open](p)
}

func (p *fakePeer) begin(ch uint16) {
	p.t.Helper()
	p.send(frame.TypeAMQP, ch, &frame.Begin{NextOutgoingID: 0, IncomingWindow: 100, OutgoingWindow: 100, HandleMax: DefaultHandleMax})
	expect[*frame.Begin](p)
}

// attachSender attaches a link on which the fake peer sends to addr.
func (p *fakePeer) attachSender(ch uint16, handle uint32, addr string) {
	p.t.Helper()
	p.send(frame.TypeAMQP, ch, &frame.Attach{Name: "fake-" + addr, Handle: handle, Role: frame.RoleSender,
		Source: &frame.Source{}, Target: &frame.Target{Address: addr}, InitialDeliveryCount: new(uint32)})
	expect[*frame.Attach](p)
}

// expectClose reads until close and checks its condition, then expects
// the socket to be closed.
func (p *fakePeer) expectClose(cond frame.Condition) {
	p.t.Helper()
	c := expect[*frame.Close](p)
	if c.Error == nil || c.Error.Condition != cond {
		p.t.Fatalf("close error %v, want %s", c.Error, cond)
	}
	p.expectEOF()
}

func (p *fakePeer) expectEOF() {
	p.t.Helper()
	for {
		_, fb := p.next()
		if fb == nil {
			return
		}
	}
}

func transfer(handle, id uint32, payload []byte) *frame.Transfer {
	return &frame.Transfer{Handle: handle, DeliveryID: &id, DeliveryTag: []byte{byte(id)}, Payload: payload}
}

var oneMsg, _ = (&Message{Value: "x"}).AppendTo(nil)

func TestFakePeerViolations(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	tests := []struct {
		name   string
		opts   ListenerOptions
		script func(p *fakePeer)
	}{
		{"transfer without session", ListenerOptions{}, func(p *fakePeer) {
			p.open(nil)
			p.send(frame.TypeAMQP, 0, transfer(0, 0, oneMsg))
			p.expectClose(frame.CondNotAllowed)
		}},
		{"second open", ListenerOptions{}, func(p *fakePeer) {
			p.open(nil)
			p.send(frame.TypeAMQP, 0, &frame.Open{ContainerID: "again"})
			p.expectClose(frame.CondNotAllowed)
		}},
		{"begin before open", ListenerOptions{}, func(p *fakePeer) {
			p.write(frame.Proto(frame.ProtoAMQP).AppendTo(nil))
			p.header()
			p.send(frame.TypeAMQP, 0, &frame.Begin{IncomingWindow: 1, OutgoingWindow: 1})
			p.expectClose(frame.CondNotAllowed)
		}},
		{"SASL frame after open", ListenerOptions{}, func(p *fakePeer) {
			p.open(nil)
			p.send(frame.TypeSASL, 0, &frame.SASLInit{Mechanism: "PLAIN"})
			p.expectClose(frame.CondFramingError)
		}},
		{"channel above channel-max", ListenerOptions{ChannelMax: 1}, func(p *fakePeer) {
			p.open(nil)
			p.send(frame.TypeAMQP, 5, &frame.Begin{IncomingWindow: 1, OutgoingWindow: 1})
			p.expectClose(frame.CondFramingError)
		}},
		{"unknown handle", ListenerOptions{}, func(p *fakePeer) {
			p.open(nil)
			p.begin(0)
			p.send(frame.TypeAMQP, 0, &frame.Flow{IncomingWindow: 1, NextOutgoingID: 0, OutgoingWindow: 1, Handle: u32(9), LinkCredit: u32(1)})
			e := expect[*frame.End](p)
			if e.Error == nil || e.Error.Condition != frame.CondUnattachedHandle {
				t.Fatalf("end error %v", e.Error)
			}
			// The connection survives a session error.
			p.send(frame.TypeAMQP, 0, &frame.End{})
			p.begin(1)
		}},
		{"handle in use", ListenerOptions{}, func(p *fakePeer) {
			p.open(nil)
			p.begin(0)
			p.attachSender(0, 0, "a")
			p.send(frame.TypeAMQP, 0, &frame.Attach{Name: "other", Handle: 0, Role: frame.RoleSender,
				Source: &frame.Source{}, Target: &frame.Target{Address: "b"}, InitialDeliveryCount: new(uint32)})
			e := expect[*frame.End](p)
			if e.Error == nil || e.Error.Condition != frame.CondHandleInUse {
				t.Fatalf("end error %v", e.Error)
			}
		}},
		{"credit violation", ListenerOptions{Credit: 1, Handler: idleHandler{}}, func(p *fakePeer) {
			p.open(nil)
			p.begin(0)
			p.attachSender(0, 0, "credit")
			fl := expect[*frame.Flow](p)
			if fl.LinkCredit == nil || *fl.LinkCredit != 1 {
				t.Fatalf("credit %v", fl.LinkCredit)
			}
			// The buffer holds twice the credit, then the overrun is fatal.
			for id := range uint32(3) {
				p.send(frame.TypeAMQP, 0, transfer(0, id, oneMsg))
			}
			d := expect[*frame.Detach](p)
			if d.Error == nil || d.Error.Condition != frame.CondTransferLimitExceeded {
				t.Fatalf("detach error %v", d.Error)
			}
		}},
		{"window violation", ListenerOptions{Session: SessionOptions{IncomingWindow: 1}, Credit: 10}, func(p *fakePeer) {
			p.open(nil)
			p.begin(0)
			p.attachSender(0, 0, "window")
			p.send(frame.TypeAMQP, 0, transfer(0, 0, oneMsg))
			p.send(frame.TypeAMQP, 0, transfer(0, 1, oneMsg))
			e := expect[*frame.End](p)
			if e.Error == nil || e.Error.Condition != frame.CondWindowViolation {
				t.Fatalf("end error %v", e.Error)
			}
		}},
		{"message too large", ListenerOptions{MaxMessageSize: 100}, func(p *fakePeer) {
			p.open(nil)
			p.begin(0)
			p.attachSender(0, 0, "big")
			p.send(frame.TypeAMQP, 0, transfer(0, 0, make([]byte, 200)))
			d := expect[*frame.Detach](p)
			if d.Error == nil || d.Error.Condition != frame.CondMessageSizeExceeded {
				t.Fatalf("detach error %v", d.Error)
			}
		}},
		{"oversized frame", ListenerOptions{MaxFrameSize: 512}, func(p *fakePeer) {
			p.open(nil)
			p.begin(0)
			p.attachSender(0, 0, "q")
			p.send(frame.TypeAMQP, 0, transfer(0, 0, make([]byte, 600)))
			p.expectClose(frame.CondFramingError)
		}},
		{"truncated frame", ListenerOptions{}, func(p *fakePeer) {
			p.open(nil)
			p.write([]byte{0, 0, 0, 100, 2, 0, 0, 0, 0, 0x53})
			p.nc.(*net.TCPConn).CloseWrite()
			p.expectClose(frame.CondFramingError)
		}},
		{"bad data offset", ListenerOptions{}, func(p *fakePeer) {
			p.open(nil)
			p.write([]byte{0, 0, 0, 8, 1, 0, 0, 0})
			p.expectClose(frame.CondFramingError)
		}},
		{"undecodable body", ListenerOptions{}, func(p *fakePeer) {
			p.open(nil)
			p.write([]byte{0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x11, 0xd0})
			p.expectClose(frame.CondDecodeError)
		}},
		{"idle time-out", ListenerOptions{IdleTimeout: 100 * time.Millisecond}, func(p *fakePeer) {
			p.open(&frame.Open{ContainerID: "quiet", IdleTimeout: 60 * time.Millisecond})
			// The listener sends heartbeats within half our 60 ms time-out
			// and closes when we stay silent past its own 100 ms.
			p.expectClose(frame.CondResourceLimitExceeded)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			b := newTestBroker()
			l := startListener(t, b, &tc.opts)
			p := dialFake(t, l)
			p.t = t
			tc.script(p)
		})
	}
}

func TestFakePeerProtocolHeaders(t *testing.T) {
	checkGoroutines(t)
	auth := func(_ context.Context, req *AuthRequest) (string, error) {
		if req.Username != "u" || req.Password != "p" {
			return "", errors.New("no")
		}
		return "u", nil
	}
	b := newTestBroker()
	l := startListener(t, b, &ListenerOptions{Authenticate: auth})
	t.Run("wrong version", func(t *testing.T) {
		p := dialFake(t, l)
		p.write([]byte("AMQP\x00\x02\x00\x00"))
		if h := p.header(); h != frame.Proto(frame.ProtoSASL) {
			t.Fatalf("answered %+v", h)
		}
		p.expectEOF()
	})
	t.Run("not AMQP", func(t *testing.T) {
		p := dialFake(t, l)
		p.write([]byte("GET / HTTP/1.1\r\n\r\n"))
		p.expectEOF()
	})
	t.Run("SASL required", func(t *testing.T) {
		p := dialFake(t, l)
		p.write(frame.Proto(frame.ProtoAMQP).AppendTo(nil))
		if h := p.header(); h != frame.Proto(frame.ProtoSASL) {
			t.Fatalf("answered %+v", h)
		}
		p.expectEOF()
	})
	saslStart := func(t *testing.T) *fakePeer {
		p := dialFake(t, l)
		p.write(frame.Proto(frame.ProtoSASL).AppendTo(nil))
		p.header()
		m := expect[*frame.SASLMechanisms](p)
		if len(m.Mechanisms) == 0 {
			t.Fatal("no mechanisms")
		}
		return p
	}
	for name, tc := range map[string]struct {
		init frame.Body
		code frame.SASLCode
	}{
		"unknown mechanism": {&frame.SASLInit{Mechanism: "CRAM-MD5"}, frame.SASLAuth},
		"bad password":      {&frame.SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00u\x00x")}, frame.SASLAuth},
		"malformed PLAIN":   {&frame.SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("u")}, frame.SASLAuth},
		"wrong frame":       {&frame.SASLResponse{Response: []byte{}}, frame.SASLSysPerm},
	} {
		t.Run(name, func(t *testing.T) {
			p := saslStart(t)
			p.send(frame.TypeSASL, 0, tc.init)
			o := expect[*frame.SASLOutcome](p)
			if o.Code != tc.code {
				t.Fatalf("outcome %d, want %d", o.Code, tc.code)
			}
			p.expectEOF()
		})
	}
	t.Run("garbage SASL frame", func(t *testing.T) {
		p := saslStart(t)
		p.write([]byte{0, 0, 0, 12, 2, 1, 0, 0, 0x00, 0x53, 0x41, 0xff})
		o := expect[*frame.SASLOutcome](p)
		if o.Code != frame.SASLSysPerm {
			t.Fatalf("outcome %d", o.Code)
		}
		p.expectEOF()
	})
	t.Run("good PLAIN", func(t *testing.T) {
		p := saslStart(t)
		p.send(frame.TypeSASL, 0, &frame.SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00u\x00p")})
		if o := expect[*frame.SASLOutcome](p); o.Code != frame.SASLOK {
			t.Fatalf("outcome %d", o.Code)
		}
		p.open(nil)
	})
	_ = encoding.CodeNull
}

// idleHandler accepts every link and never receives, so a receiver's
// buffer stays full.
type idleHandler struct{}

func (idleHandler) HandleLink(*LinkRequest) error { return nil }
