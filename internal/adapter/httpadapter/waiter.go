package httpadapter

import (
	"net/http"
	"sync"

	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
)

// waiter is a request waiting for a command (hono-ttd): a command.Consumer
// that takes one command and hands it to the request's response.
type waiter struct {
	gateway bool
	cmds    chan pending
	mu      sync.Mutex
	closed  bool
}

type pending struct {
	cmd  *command.Command
	done func(command.Outcome)
}

func newWaiter(gateway bool) *waiter {
	return &waiter{gateway: gateway, cmds: make(chan pending, 1)}
}

// Deliver implements command.Consumer: the first command goes to the
// response; another, or one after the wait ended, is released.
func (w *waiter) Deliver(cmd *command.Command, done func(command.Outcome)) {
	w.mu.Lock()
	taken := !w.closed
	if taken {
		w.cmds <- pending{cmd, done} // room for one: closed is set with it
		w.closed = true              // one command per request
	}
	w.mu.Unlock()
	if !taken {
		done(command.Released) // outside the lock: it settles the application's delivery
	}
}

// close ends the wait: a command that arrived but was not written is
// released.
func (w *waiter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case p := <-w.cmds:
		p.done(command.Released)
	default:
	}
}

// write answers the request with the command (Hono: 200 with hono-command,
// hono-cmd-req-id for request/response commands, hono-cmd-target-device
// for a gateway's device). The command counts as accepted once written.
func (w *waiter) write(rw http.ResponseWriter, p pending) {
	cmd := p.cmd
	h := rw.Header()
	h.Set("hono-command", cmd.Name)
	if !cmd.OneWay() {
		id, err := hono.EncodeReqID(cmd.CorrelationID, cmd.ReplyID, cmd.Device, hono.MessagingAMQP)
		if err != nil {
			p.done(command.Rejected)
			rw.WriteHeader(http.StatusAccepted)
			return
		}
		h.Set("hono-cmd-req-id", id)
	}
	if w.gateway {
		h.Set("hono-cmd-target-device", cmd.Device)
	}
	if cmd.ContentType != "" {
		h.Set("Content-Type", cmd.ContentType)
	}
	rw.WriteHeader(http.StatusOK)
	if _, err := rw.Write(cmd.Payload); err != nil {
		p.done(command.Released)
		return
	}
	p.done(command.Accepted)
}
