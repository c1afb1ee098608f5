package lastwill_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/amqp/frame"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/lastwill"
	"github.com/ferry-iot/ferry/internal/northbound/amqpapi"
	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/memstore"
)

const tenant = "DEFAULT_TENANT" // of anonymous logins

// ferry is a hub with the northbound AMQP API on a loopback port.
type ferry struct {
	h    *hub.Hub
	srv  *amqpapi.Server
	addr string
	once sync.Once
}

func start(t *testing.T, st store.Store) *ferry {
	t.Helper()
	h := hub.New(hub.Options{Store: st})
	if err := h.Recover(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	srv := amqpapi.New(amqpapi.Options{Hub: h, Anonymous: true, Wills: lastwill.New(h, nil)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln); err != nil {
		t.Fatal(err)
	}
	f := &ferry{h: h, srv: srv, addr: ln.Addr().String()}
	t.Cleanup(f.stop)
	return f
}

// stop shuts down as the node does: the listener, then the hub.
func (f *ferry) stop() {
	f.once.Do(func() {
		_ = f.srv.Close()
		_ = f.h.Close(context.Background())
	})
}

// watch subscribes to filter in the tenant and returns what arrives.
func (f *ferry) watch(t *testing.T, filter string) <-chan *hub.Message {
	t.Helper()
	s, _ := f.h.Open(tenant, "watcher-"+filter, true)
	ch := make(chan *hub.Message, 16)
	s.Attach(sinkFunc(func(d hub.Delivery) bool {
		select {
		case ch <- d.Message:
			return true
		default:
			return false
		}
	}))
	if _, err := s.Subscribe(hub.Subscription{Filter: filter}); err != nil {
		t.Fatal(err)
	}
	return ch
}

type sinkFunc func(hub.Delivery) bool

func (f sinkFunc) Deliver(d hub.Delivery) bool { return f(d) }

// client is a go-amqp connection over a socket the test can cut.
type client struct {
	nc   net.Conn
	conn *goamqp.Conn
	snd  *goamqp.Sender
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// attach opens a $lwt link named id.
func (f *ferry) attach(t *testing.T, id string) *client {
	t.Helper()
	ctx := testCtx(t)
	nc, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := goamqp.NewConn(ctx, nc, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := sess.NewSender(ctx, amqpapi.LWTAddress, &goamqp.SenderOptions{Name: id})
	if err != nil {
		t.Fatal(err)
	}
	return &client{nc: nc, conn: conn, snd: snd}
}

// will sends a will and waits for it to be accepted.
func (c *client) will(t *testing.T, topic, payload string, annotations goamqp.Annotations) {
	t.Helper()
	subject := "will"
	m := &goamqp.Message{Data: [][]byte{[]byte(payload)}, Annotations: annotations,
		Properties: &goamqp.MessageProperties{To: &topic, Subject: &subject}}
	if err := c.snd.Send(testCtx(t), m, nil); err != nil {
		t.Fatal(err)
	}
}

func expect(t *testing.T, ch <-chan *hub.Message, topic, payload string) *hub.Message {
	t.Helper()
	select {
	case m := <-ch:
		if m.Topic != topic || string(m.Payload) != payload {
			t.Fatalf("got %s %q, want %s %q", m.Topic, m.Payload, topic, payload)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no message on %s", topic)
	}
	return nil
}

// settled waits until the hub has no session of client id any more (its
// departure is processed), then publishes a marker on topic: a will
// published by mistake would arrive before it.
func (f *ferry) settled(t *testing.T, ch <-chan *hub.Message, id, topic string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.h.TenantStats(tenant).Sessions > 1 { // the watcher's
		if time.Now().After(deadline) {
			t.Fatalf("the session of %s is still there", id)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
	f.h.Publish(tenant, &hub.Message{Topic: topic, Payload: []byte("marker")})
	expect(t, ch, topic, "marker")
}

func TestLastWillLostConnection(t *testing.T) {
	f := start(t, memstore.New())
	ch := f.watch(t, "wills/#")
	c := f.attach(t, "dev-1")
	c.will(t, "wills/dev-1", "gone", goamqp.Annotations{"x-opt-mqtt-qos": int32(1), "x-opt-retain-message": true})
	c.nc.Close() // no close frame: the connection is lost
	m := expect(t, ch, "wills/dev-1", "gone")
	if m.QoS != 1 || !m.Retain {
		t.Errorf("QoS %d retain %v, want 1 true", m.QoS, m.Retain)
	}
}

func TestLastWillDetachWithError(t *testing.T) {
	f := start(t, nil)
	ch := f.watch(t, "wills/#")
	// go-amqp cannot detach with an error: Ferry's own client can.
	ctx := testCtx(t)
	conn, err := amqp.Dial(ctx, "amqp://"+f.addr, &amqp.ConnOptions{SASL: amqp.SASLAnonymous})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := sess.NewSender(ctx, amqpapi.LWTAddress, &amqp.SenderOptions{Name: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	to := "wills/dev-1"
	if err := snd.Send(ctx, &amqp.Message{Properties: &amqp.Properties{To: to, Subject: "will"}, Data: [][]byte{[]byte("gone")}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := snd.CloseWithError(ctx, &amqp.Error{Condition: frame.CondDetachForced}); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, to, "gone")
}

func TestLastWillCleanEnd(t *testing.T) {
	for _, how := range []string{"detach", "close"} {
		t.Run(how, func(t *testing.T) {
			f := start(t, memstore.New())
			ch := f.watch(t, "wills/#")
			c := f.attach(t, "dev-1")
			c.will(t, "wills/dev-1", "gone", nil)
			var err error
			if how == "detach" {
				err = c.snd.Close(testCtx(t))
			} else {
				err = c.conn.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			f.settled(t, ch, "dev-1", "wills/dev-1")
		})
	}
}

func TestLastWillReplacedAndCleared(t *testing.T) {
	f := start(t, nil)
	ch := f.watch(t, "wills/#")
	c := f.attach(t, "dev-1")
	c.will(t, "wills/first", "1", nil)
	c.will(t, "wills/second", "2", nil)
	c.nc.Close()
	expect(t, ch, "wills/second", "2")

	c = f.attach(t, "dev-2")
	c.will(t, "wills/dev-2", "x", nil)
	clear := "will-clear"
	if err := c.snd.Send(testCtx(t), &goamqp.Message{Properties: &goamqp.MessageProperties{Subject: &clear}}, nil); err != nil {
		t.Fatal(err)
	}
	c.nc.Close()
	f.settled(t, ch, "dev-2", "wills/dev-2")
}

func TestLastWillDelayCancelledByReattach(t *testing.T) {
	f := start(t, memstore.New())
	ch := f.watch(t, "wills/#")
	c := f.attach(t, "dev-1")
	c.will(t, "wills/dev-1", "old", goamqp.Annotations{"x-opt-will-delay": int64(3600)})
	c.nc.Close()
	// Back before the delay: the old will is cancelled, the new one counts.
	c = f.attach(t, "dev-1")
	c.will(t, "wills/dev-1", "new", nil)
	c.nc.Close()
	expect(t, ch, "wills/dev-1", "new")
}

func TestLastWillDelayed(t *testing.T) {
	f := start(t, nil)
	ch := f.watch(t, "wills/#")
	c := f.attach(t, "dev-1")
	c.will(t, "wills/dev-1", "late", goamqp.Annotations{"x-opt-will-delay": uint32(1)})
	lost := time.Now()
	c.nc.Close()
	expect(t, ch, "wills/dev-1", "late")
	if d := time.Since(lost); d < 900*time.Millisecond {
		t.Errorf("published %v after the loss, before its delay of 1s", d)
	}
}

func TestLastWillTakeover(t *testing.T) {
	f := start(t, nil)
	ch := f.watch(t, "wills/#")
	first := f.attach(t, "dev-1")
	first.will(t, "wills/first", "1", nil)
	second := f.attach(t, "dev-1")
	// The first link is detached with amqp:link:stolen.
	var ae *goamqp.Error
	if err := first.snd.Send(testCtx(t), goamqp.NewMessage([]byte("x")), nil); !errors.As(err, &ae) || ae.Condition != "amqp:link:stolen" {
		t.Fatalf("send on the replaced link: %v, want amqp:link:stolen", err)
	}
	first.nc.Close() // no say any more
	second.will(t, "wills/second", "2", nil)
	second.nc.Close()
	expect(t, ch, "wills/second", "2")
}

func TestLastWillAfterRestart(t *testing.T) {
	st := memstore.New()
	f := start(t, st)
	gone := f.attach(t, "gone")
	gone.will(t, "wills/gone", "g", goamqp.Annotations{"x-opt-will-delay": int32(1)})
	back := f.attach(t, "back")
	back.will(t, "wills/back", "b", goamqp.Annotations{"x-opt-will-delay": int32(2)})
	f.stop() // with both attached: their wills wait in the store

	f = start(t, st)
	ch := f.watch(t, "wills/#")
	back = f.attach(t, "back")
	expect(t, ch, "wills/gone", "g")
	// Past back's delay, its client having returned: not published.
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		select {
		case m := <-ch:
			t.Fatalf("published %s %q", m.Topic, m.Payload)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := back.snd.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	f.settled(t, ch, "back", "wills/back")
	if _, err := st.GetWill(context.Background(), tenant, lastwill.SessionPrefix+"back"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the will of back is still stored: %v", err)
	}
}
