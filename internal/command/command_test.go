package command

import (
	"context"
	"errors"
	"testing"
	"time"
)

// consumer records the commands it gets and answers with outcome.
type consumer struct {
	name    string
	got     *[]string
	outcome Outcome
}

func (c consumer) Deliver(cmd *Command, done func(Outcome)) {
	*c.got = append(*c.got, c.name+":"+cmd.Device+":"+cmd.Via)
	done(c.outcome)
}

func TestRouting(t *testing.T) {
	var got []string
	via := map[string][]string{"d1": {"gw1", "gw2"}, "d2": nil}
	groups := map[string]bool{"gw3/d2": true} // gw3 acts for d2 through a via group
	r := NewRouter(Options{
		Via: func(_ context.Context, _, device string) ([]string, error) { return via[device], nil },
		ActsFor: func(_ context.Context, _, gw, device string) (bool, error) {
			return groups[gw+"/"+device], nil
		},
	})
	defer r.Close()
	send := func(device string) Outcome {
		var o Outcome = -1
		r.Send(context.Background(), &Command{Tenant: "t", Device: device, Name: "n"}, func(x Outcome) { o = x })
		return o
	}
	mk := func(name string) consumer { return consumer{name: name, got: &got} }

	if o := send("d1"); o != Released {
		t.Fatalf("no subscription: %v, want released", o)
	}
	cancelGW1 := r.SubscribeAll("t", "gw1", mk("gw1+"))
	cancelGW2 := r.SubscribeAll("t", "gw2", mk("gw2+"))
	r.SubscribeAll("t", "gw3", mk("gw3+"))
	send("d1") // the first of via: gw1
	r.SetLastGateway("t", "d1", "gw2")
	send("d1") // the last one the device used: gw2
	cancelOwn := r.Subscribe("t", "d1", "", mk("d1"))
	send("d1") // its own subscription beats the gateways
	r.Subscribe("t", "d1", "gw1", mk("gw1-for-d1"))
	send("d1") // the most recent device-specific one
	send("d2") // only gw3, through ActsFor
	cancelOwn()
	cancelGW1()
	cancelGW2()
	want := []string{"gw1+:d1:gw1", "gw2+:d1:gw2", "d1:d1:", "gw1-for-d1:d1:gw1", "gw3+:d2:gw3"}
	if len(got) != len(want) {
		t.Fatalf("deliveries %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivery %d: %s, want %s (all: %v)", i, got[i], want[i], got)
		}
	}
}

type sink struct{ got chan *Response }

func (s sink) Respond(r *Response) bool { s.got <- r; return true }

func TestResponsesAndTimeout(t *testing.T) {
	r := NewRouter(Options{})
	defer r.Close()
	if err := r.Respond(&Response{Tenant: "t", ReplyID: "app"}); !errors.Is(err, ErrNoConsumer) {
		t.Fatalf("no receiver: %v", err)
	}
	s := sink{got: make(chan *Response, 2)}
	cancel := r.Receive("t", "app", s)
	defer cancel()
	cmd := &Command{Tenant: "t", Device: "d", CorrelationID: "c1", ReplyID: "app"}
	r.ExpectResponse(cmd, 10*time.Millisecond)
	select {
	case resp := <-s.got:
		if resp.Status != StatusTimeout || resp.CorrelationID != "c1" || resp.Device != "d" {
			t.Fatalf("timeout response %+v", resp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no timeout response")
	}
	// An answer in time stops the timer: one response only.
	cmd.CorrelationID = "c2"
	r.ExpectResponse(cmd, time.Hour)
	if err := r.Respond(&Response{Tenant: "t", ReplyID: "app", CorrelationID: "c2", Status: 200}); err != nil {
		t.Fatal(err)
	}
	if resp := <-s.got; resp.Status != 200 {
		t.Fatalf("response %+v", resp)
	}
	r.mu.Lock()
	pending := len(r.pending)
	r.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d response timers left after the answer", pending)
	}
}

func TestWait(t *testing.T) {
	r := NewRouter(Options{
		Via: func(_ context.Context, _, device string) ([]string, error) { return []string{"gw"}, nil },
	})
	defer r.Close()
	send := func(device string) chan Outcome {
		o := make(chan Outcome, 1)
		r.Send(context.Background(), &Command{Tenant: "t", Device: device, Name: "n"}, func(x Outcome) { o <- x })
		return o
	}

	// A gateway's bare wait takes a command for one of its devices.
	w, cancel := r.Wait("t", "gw", "")
	taken := send("d1")
	extra := send("d1")
	select {
	case p := <-w.C():
		if p.Cmd.Device != "d1" || p.Cmd.Via != "gw" {
			t.Fatalf("waiter got %s via %q, want d1 via gw", p.Cmd.Device, p.Cmd.Via)
		}
		p.Done(Accepted)
	default:
		t.Fatal("the gateway's wait took no command")
	}
	if o := <-extra; o != Released {
		t.Fatalf("a command for a waiter that is served: %v, want released", o)
	}
	if o := <-taken; o != Accepted {
		t.Fatalf("the command taken: %v, want accepted", o)
	}
	cancel()
	if o := <-send("d1"); o != Released {
		t.Fatalf("after the wait: %v, want released", o)
	}

	// A command delivered but never taken is released by cancel.
	w, cancel = r.Wait("t", "d2", "")
	o := send("d2")
	cancel()
	if got := <-o; got != Released {
		t.Fatalf("untaken command: %v, want released", got)
	}
	if len(w.C()) != 0 {
		t.Fatal("a cancelled waiter still holds a command")
	}

	// A device-specific wait beats the gateway's bare one.
	_, cancelBare := r.Wait("t", "gw", "")
	ws, cancelSpecific := r.Wait("t", "d3", "gw")
	send("d3")
	if len(ws.C()) != 1 {
		t.Fatal("the device-specific wait did not take the command")
	}
	cancelSpecific()
	cancelBare()
}

type sinkFunc func(*Response) bool

func (f sinkFunc) Respond(r *Response) bool { return f(r) }

// TestOtherMessaging: responses of commands that came by Kafka go to the
// Kafka sink, whatever their reply id, and never to an AMQP reply address
// of the same name; their timeouts are theirs.
func TestOtherMessaging(t *testing.T) {
	r := NewRouter(Options{})
	defer r.Close()
	var amqp, kafka []int
	r.Receive("t", "r1", sinkFunc(func(x *Response) bool { amqp = append(amqp, x.Status); return true }))
	if err := r.Respond(&Response{Messaging: 1, Tenant: "t", ReplyID: "r1", Status: 200}); !errors.Is(err, ErrNoConsumer) {
		t.Fatalf("a Kafka response without a Kafka sink: %v, want ErrNoConsumer", err)
	}
	cancel := r.ReceiveMessaging(1, sinkFunc(func(x *Response) bool { kafka = append(kafka, x.Status); return true }))
	if err := r.Respond(&Response{Messaging: 1, Tenant: "t", ReplyID: "r1", Status: 201}); err != nil {
		t.Fatal(err)
	}
	if err := r.Respond(&Response{Tenant: "t", ReplyID: "r1", Status: 202}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	cancel()
	r.ReceiveMessaging(1, sinkFunc(func(x *Response) bool { kafka = append(kafka, x.Status); close(done); return true }))
	r.ExpectResponse(&Command{Messaging: 1, Tenant: "t", Device: "d", ReplyID: "r1", CorrelationID: "c"}, time.Millisecond)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no timeout response")
	}
	if len(amqp) != 1 || amqp[0] != 202 || len(kafka) != 2 || kafka[0] != 201 || kafka[1] != StatusTimeout {
		t.Fatalf("AMQP sink got %v, Kafka sink %v; want [202] and [201 408]", amqp, kafka)
	}
}
