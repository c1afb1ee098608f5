package amqp

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// acceptFake listens on 127.0.0.1:0, runs client in a goroutine with the
// address, and returns the fake server's side of the connection. The
// script then runs on the test goroutine, so it may call t.Fatal.
func acceptFake(t *testing.T, client func(addr string)) (*fakePeer, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		client(ln.Addr().String())
	}()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close(); <-done })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &fakePeer{t: t, nc: nc, br: bufio.NewReader(nc)}, done
}

// serverOpen answers the client's header and open, and its begin.
func (p *fakePeer) serverOpen() {
	p.t.Helper()
	if h := p.header(); h != frame.Proto(frame.ProtoAMQP) {
		p.t.Fatalf("header %+v", h)
	}
	p.write(frame.Proto(frame.ProtoAMQP).AppendTo(nil))
	expect[*frame.Open](p)
	p.send(frame.TypeAMQP, 0, &frame.Open{ContainerID: "fake-server", MaxFrameSize: 1 << 16, ChannelMax: 10})
	expect[*frame.Begin](p)
	zero := uint16(0)
	p.send(frame.TypeAMQP, 0, &frame.Begin{RemoteChannel: &zero, IncomingWindow: 1000, OutgoingWindow: 1000, HandleMax: 100})
}

func TestFakeServerRangeDisposition(t *testing.T) {
	checkGoroutines(t)
	results := make(chan error, 5)
	p, done := acceptFake(t, func(addr string) {
		ctx := testCtx(t)
		c, err := Dial(ctx, addr, nil)
		if err != nil {
			results <- err
			return
		}
		defer c.Close()
		s, err := c.NewSession(ctx, nil)
		if err != nil {
			results <- err
			return
		}
		snd, err := s.NewSender(ctx, "q", nil)
		if err != nil {
			results <- err
			return
		}
		for range 5 {
			go func() { results <- snd.Send(ctx, &Message{Value: "v"}, nil) }()
		}
		<-c.Done()
	})
	p.serverOpen()
	a := expect[*frame.Attach](p)
	p.send(frame.TypeAMQP, 0, &frame.Attach{Name: a.Name, Handle: 7, Role: frame.RoleReceiver, Source: a.Source, Target: a.Target})
	credit, dc := uint32(10), uint32(0)
	h := uint32(7) // a flow names the handle of its sender's endpoint
	p.send(frame.TypeAMQP, 0, &frame.Flow{IncomingWindow: 1000, OutgoingWindow: 1000, Handle: &h, DeliveryCount: &dc, LinkCredit: &credit})
	for range 5 {
		tr := expect[*frame.Transfer](p)
		if tr.Settled {
			t.Fatal("unsettled send arrived settled")
		}
	}
	last := uint32(4)
	p.send(frame.TypeAMQP, 0, &frame.Disposition{Role: frame.RoleReceiver, First: 0, Last: &last, Settled: true, State: &frame.Accepted{}})
	for range 5 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	p.send(frame.TypeAMQP, 0, &frame.Close{})
	expect[*frame.Close](p)
	<-done
}

func TestFakeServerViolations(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	t.Run("transfer beyond credit", func(t *testing.T) {
		checkGoroutines(t)
		errs := make(chan error, 2)
		p, done := acceptFake(t, func(addr string) {
			ctx := testCtx(t)
			c, err := Dial(ctx, addr, nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			s, err := c.NewSession(ctx, nil)
			if err != nil {
				errs <- err
				return
			}
			r, err := s.NewReceiver(ctx, "q", &ReceiverOptions{ManualCredit: true, Credit: 1})
			if err == nil {
				err = r.IssueCredit(1)
			}
			if err != nil {
				errs <- err
				return
			}
			<-r.Done() // the buffer stays full until the violation
			for range 1 + ClientOvershoot {
				if _, err := r.Receive(ctx); err != nil {
					errs <- err
					return
				}
			}
			_, err = r.Receive(ctx)
			errs <- err
		})
		p.serverOpen()
		a := expect[*frame.Attach](p)
		p.send(frame.TypeAMQP, 0, &frame.Attach{Name: a.Name, Handle: 0, Role: frame.RoleSender,
			Source: a.Source, Target: a.Target, InitialDeliveryCount: u32(0)})
		fl := expect[*frame.Flow](p)
		if *fl.LinkCredit != 1 {
			t.Fatalf("credit %d", *fl.LinkCredit)
		}
		for id := range uint32(2 + ClientOvershoot) { // credit 1, buffer 1+ClientOvershoot
			p.send(frame.TypeAMQP, 0, transfer(0, id, oneMsg))
		}
		d := expect[*frame.Detach](p)
		if d.Error == nil || d.Error.Condition != frame.CondTransferLimitExceeded {
			t.Fatalf("detach %v", d.Error)
		}
		p.send(frame.TypeAMQP, 0, &frame.Detach{Handle: 0, Closed: true})
		var le *LinkError
		if err := <-errs; !errors.As(err, &le) {
			t.Fatalf("second receive: %v", err)
		}
		p.nc.Close()
		<-done
	})
	t.Run("flow for unknown handle", func(t *testing.T) {
		checkGoroutines(t)
		errs := make(chan error, 1)
		p, done := acceptFake(t, func(addr string) {
			ctx := testCtx(t)
			c, err := Dial(ctx, addr, nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			s, err := c.NewSession(ctx, nil)
			if err != nil {
				errs <- err
				return
			}
			<-s.Done()
			errs <- s.err
		})
		p.serverOpen()
		p.send(frame.TypeAMQP, 0, &frame.Flow{IncomingWindow: 1, OutgoingWindow: 1, Handle: u32(3), LinkCredit: u32(1)})
		e := expect[*frame.End](p)
		if e.Error == nil || e.Error.Condition != frame.CondUnattachedHandle {
			t.Fatalf("end %v", e.Error)
		}
		p.send(frame.TypeAMQP, 0, &frame.End{})
		var se *SessionError
		if err := <-errs; !errors.As(err, &se) {
			t.Fatalf("session error %v", err)
		}
		p.nc.Close()
		<-done
	})
	t.Run("late attach after cancel", func(t *testing.T) {
		checkGoroutines(t)
		errs := make(chan error, 2)
		p, done := acceptFake(t, func(addr string) {
			ctx := testCtx(t)
			c, err := Dial(ctx, addr, nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			s, err := c.NewSession(ctx, nil)
			if err != nil {
				errs <- err
				return
			}
			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			_, err = s.NewSender(short, "slow", nil)
			cancel()
			errs <- err
			_, err = s.NewSender(ctx, "slow", &SenderOptions{Name: "second"})
			errs <- err
			<-c.Done()
		})
		p.serverOpen()
		a := expect[*frame.Attach](p)
		if err := <-errs; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("first attach: %v", err)
		}
		// The client's detach and its second attach come in either order.
		var d *frame.Detach
		var a2 *frame.Attach
		for d == nil || a2 == nil {
			switch fb := expect[frame.Body](p).(type) {
			case *frame.Detach:
				d = fb
			case *frame.Attach:
				a2 = fb
			}
		}
		if a2.Name != "second" || d.Handle != a.Handle {
			t.Fatalf("attach %q, detach of handle %d", a2.Name, d.Handle)
		}
		// Answer the abandoned attach late, then its detach.
		p.send(frame.TypeAMQP, 0, &frame.Attach{Name: a.Name, Handle: 0, Role: frame.RoleReceiver, Source: a.Source, Target: a.Target})
		p.send(frame.TypeAMQP, 0, &frame.Detach{Handle: 0, Closed: d.Closed})
		p.send(frame.TypeAMQP, 0, &frame.Attach{Name: a2.Name, Handle: 1, Role: frame.RoleReceiver, Source: a2.Source, Target: a2.Target})
		if err := <-errs; err != nil {
			t.Fatalf("second attach: %v", err)
		}
		p.send(frame.TypeAMQP, 0, &frame.Close{})
		expect[*frame.Close](p)
		<-done
	})
	t.Run("open timeout", func(t *testing.T) {
		checkGoroutines(t)
		errs := make(chan error, 1)
		p, done := acceptFake(t, func(addr string) {
			_, err := Dial(context.Background(), addr, &ConnOptions{HandshakeTimeout: 100 * time.Millisecond})
			errs <- err
		})
		p.header() // and never answer
		if err := <-errs; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("dial: %v", err)
		}
		<-done
	})
}
