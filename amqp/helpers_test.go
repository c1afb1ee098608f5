package amqp

import (
	"context"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// checkGoroutines fails the test if goroutines started during it are still
// running at cleanup (after a grace period for sockets to close).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("leaked goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), filterStacks(string(buf[:n])))
				return
			}
			time.Sleep(10 * time.Millisecond) // polling for exit, not readiness
		}
	})
}

func filterStacks(s string) string {
	var out []string
	for _, g := range strings.Split(s, "\n\n") {
		if strings.Contains(g, "ferry/amqp") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// testBroker is a minimal in-memory broker: a queue per address. Links
// where the peer sends feed the queue; links where it receives drain it.
type testBroker struct {
	mu     sync.Mutex
	queues map[string]chan Message
	links  sync.WaitGroup
	// refuse maps an address to the condition its links are refused with.
	refuse map[string]frame.Condition
	// manual, when set, makes peer-receiver links wait for each message
	// on this channel before sending (for drain tests).
	seen chan *LinkRequest
}

func newTestBroker() *testBroker {
	return &testBroker{queues: make(map[string]chan Message), refuse: map[string]frame.Condition{
		"missing":   frame.CondNotFound,
		"forbidden": frame.CondUnauthorizedAccess,
	}}
}

func (b *testBroker) queue(name string) chan Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[name]
	if q == nil {
		q = make(chan Message, 1<<16)
		b.queues[name] = q
	}
	return q
}

func (b *testBroker) HandleLink(req *LinkRequest) error {
	if cond, ok := b.refuse[req.Address]; ok {
		return &Error{Condition: cond, Description: "refused " + req.Address}
	}
	if b.seen != nil {
		b.seen <- req
	}
	addr := req.Address
	if req.Dynamic {
		addr = "tmp-" + req.Attach.Name
		req.DynamicAddress = addr
	}
	req.Properties = map[Symbol]any{"ferry-test": true}
	req.OfferedCapabilities = []Symbol{"ferry-cap"}
	if r := req.Receiver; r != nil {
		b.links.Add(1)
		go func() {
			defer b.links.Done()
			for {
				d, err := r.Receive(context.Background())
				if err != nil {
					return
				}
				to := addr
				if to == "" && d.Message.Properties != nil {
					to = d.Message.Properties.To
				}
				if to == "reject" {
					_ = d.Reject(context.Background(), &Error{Condition: frame.CondPreconditionFailed, Description: "no"})
					continue
				}
				if to == "release" {
					_ = d.Release(context.Background())
					continue
				}
				select {
				case b.queue(to) <- d.Message:
				case <-r.Done():
					return
				}
				_ = d.Accept(context.Background())
			}
		}()
	}
	if snd := req.Sender; snd != nil {
		q := b.queue(addr)
		b.links.Add(1)
		go func() {
			defer b.links.Done()
			for {
				select {
				case m := <-q:
					if err := snd.Send(context.Background(), &m, nil); err != nil {
						return
					}
				case <-snd.Done():
					return
				}
			}
		}()
	}
	return nil
}

// startListener serves b on 127.0.0.1:0 until the test ends.
func startListener(t testing.TB, b *testBroker, opts *ListenerOptions) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts == nil {
		opts = &ListenerOptions{}
	}
	o := *opts
	if o.Handler == nil {
		o.Handler = b
	}
	l, err := Listen(ln, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		b.links.Wait()
	})
	return l
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dialTest dials l with Ferry's client and closes the connection at cleanup.
func dialTest(t testing.TB, l *Listener, opts *ConnOptions) *Conn {
	t.Helper()
	c, err := Dial(testCtx(t), "amqp://"+l.Addr().String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustSession(t testing.TB, c *Conn) *Session {
	t.Helper()
	s, err := c.NewSession(testCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
