package cmdroute

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/command"
)

// node is a router with its relay.
type node struct {
	router *command.Router
	relay  *Relay
}

func startNodes(t *testing.T, ids ...string) map[string]node {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	via := func(_ context.Context, _, device string) ([]string, error) {
		if device == "behind-gw" {
			return []string{"gw"}, nil
		}
		return nil, nil
	}
	nodes := map[string]node{}
	for _, id := range ids {
		router := command.NewRouter(command.Options{Via: via})
		t.Cleanup(router.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		relay, err := Start(ctx, Options{Client: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, NodeID: id, Router: router,
			Heartbeat: 100 * time.Millisecond, OutcomeTimeout: 5 * time.Second})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(relay.Close)
		nodes[id] = node{router, relay}
	}
	return nodes
}

// device takes commands with outcome.
type device struct {
	got     chan *command.Command
	outcome command.Outcome
}

func (d device) Deliver(cmd *command.Command, done func(command.Outcome)) {
	d.got <- cmd
	done(d.outcome)
}

type sink chan *command.Response

func (s sink) Respond(r *command.Response) bool { s <- r; return true }

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func send(t *testing.T, r *command.Router, cmd *command.Command) command.Outcome {
	t.Helper()
	o := make(chan command.Outcome, 1)
	r.Send(context.Background(), cmd, func(x command.Outcome) { o <- x })
	select {
	case x := <-o:
		return x
	case <-time.After(20 * time.Second):
		t.Fatal("no outcome")
	}
	return 0
}

// TestAcrossNodes: an application's command on node a reaches the device
// on node c, the outcome comes back, and so does the device's response;
// the most recent subscription wins across nodes; a gateway on another
// node takes its device's command; a node that closed is not routed to.
func TestAcrossNodes(t *testing.T) {
	nodes := startNodes(t, "a", "b", "c")
	a, b, c := nodes["a"], nodes["b"], nodes["c"]
	replies := make(sink, 4)
	t.Cleanup(a.router.Receive("t", "app-1", replies))

	devC := device{got: make(chan *command.Command, 4), outcome: command.Accepted}
	cancelC := c.router.Subscribe("t", "d1", "", devC)
	waitFor(t, "node a to see d1 on c", func() bool { _, _, ok := a.relay.Device("t", "d1"); return ok })
	cmd := &command.Command{Tenant: "t", Device: "d1", Name: "set", CorrelationID: "c1", ReplyID: "app-1", Payload: []byte("on")}
	if o := send(t, a.router, cmd); o != command.Accepted {
		t.Fatalf("outcome %v, want accepted", o)
	}
	got := <-devC.got
	if got.Name != "set" || string(got.Payload) != "on" || got.CorrelationID != "c1" {
		t.Fatalf("device got %+v", got)
	}
	if err := c.router.Respond(&command.Response{Tenant: "t", Device: "d1", CorrelationID: "c1", ReplyID: "app-1", Status: 200}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-replies:
		if r.Status != 200 || r.CorrelationID != "c1" {
			t.Fatalf("response %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the response did not come back to node a")
	}

	// A newer subscription on b beats c's.
	devB := device{got: make(chan *command.Command, 4), outcome: command.Rejected}
	time.Sleep(2 * time.Millisecond) // distinct subscription times, at ms resolution
	t.Cleanup(b.router.Subscribe("t", "d1", "", devB))
	waitFor(t, "node a to see d1 on b", func() bool {
		cons, _, ok := a.relay.Device("t", "d1")
		return ok && cons.(remote).node == "b"
	})
	if o := send(t, a.router, &command.Command{Tenant: "t", Device: "d1", Name: "x"}); o != command.Rejected {
		t.Fatalf("outcome %v, want b's rejected", o)
	}
	cancelC()

	// A gateway on c for all its devices.
	gw := device{got: make(chan *command.Command, 4), outcome: command.Accepted}
	t.Cleanup(c.router.SubscribeAll("t", "gw", gw))
	waitFor(t, "node a to see gw on c", func() bool { _, _, ok := a.relay.Gateway("t", []string{"gw"}); return ok })
	if o := send(t, a.router, &command.Command{Tenant: "t", Device: "behind-gw", Name: "x"}); o != command.Accepted {
		t.Fatalf("gateway outcome %v", o)
	}
	if g := <-gw.got; g.Device != "behind-gw" || g.Via != "gw" {
		t.Fatalf("gateway got %s via %q", g.Device, g.Via)
	}

	// Nothing anywhere: released.
	if o := send(t, a.router, &command.Command{Tenant: "t", Device: "nobody", Name: "x"}); o != command.Released {
		t.Fatalf("no subscription: %v", o)
	}
	// Node c goes: its gateway is no longer a route.
	c.relay.Close()
	waitFor(t, "node a to forget c", func() bool { _, _, ok := a.relay.Gateway("t", []string{"gw"}); return !ok })
}
