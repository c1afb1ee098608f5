package command

import "sync"

// Pending is a command handed to a Waiter, with the callback that settles
// it.
type Pending struct {
	Cmd  *Command
	Done func(Outcome)
}

// Waiter is a Consumer for a request that waits for at most one command in
// its response (Hono's hono-ttd on HTTP and CoAP): the first command is
// kept for the response, any later one is released at once.
type Waiter struct {
	cmds   chan Pending
	mu     sync.Mutex
	closed bool
}

// NewWaiter returns a Waiter that has taken no command yet.
func NewWaiter() *Waiter { return &Waiter{cmds: make(chan Pending, 1)} }

// Deliver implements Consumer.
func (w *Waiter) Deliver(cmd *Command, done func(Outcome)) {
	w.mu.Lock()
	taken := !w.closed
	if taken {
		w.cmds <- Pending{cmd, done} // room for one: closed is set with it
		w.closed = true              // one command per request
	}
	w.mu.Unlock()
	if !taken {
		done(Released) // outside the lock: it settles the application's delivery
	}
}

// C yields the command once one has been delivered.
func (w *Waiter) C() <-chan Pending { return w.cmds }

// Close ends the wait: a command that was delivered but not taken from C
// is released. Call it once the response is written.
func (w *Waiter) Close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case p := <-w.cmds:
		p.Done(Released)
	default:
	}
}

// Wait subscribes a Waiter for the commands a waiting request may take:
// those of device, through gateway when a gateway names the device, and,
// for a device that named no other (gateway ""), also those of every
// device it may act for as a gateway, since Hono lets a gateway's bare
// request take a command for any of its devices. A device-specific
// request keeps precedence over a gateway's bare one by the Router's
// rules. cancel removes the subscriptions and closes the Waiter.
func (r *Router) Wait(tenant, device, gateway string) (w *Waiter, cancel func()) {
	w = NewWaiter()
	c1 := r.Subscribe(tenant, device, gateway, w)
	c2 := func() {}
	if gateway == "" {
		c2 = r.SubscribeAll(tenant, device, w)
	}
	return w, func() {
		c1()
		c2()
		w.Close()
	}
}
