package amqp

import (
	"fmt"
	"runtime"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// notifier runs a connection's callbacks (TrySend outcomes, Sender ready
// functions) in order, on a goroutine that exists only while callbacks are
// waiting, as the writer's flush goroutine does. They are queued under
// Conn.mu by the reader, by a failing connection or by a detaching link,
// and run without any engine lock held, so a callback may call back into
// the engine (TrySend from a ready function, say) and take its own locks
// without deadlocking against the goroutine that queued it.
type notifier struct {
	queue   []func()
	running bool
}

// notifyLocked queues f; c.mu must be held.
func (c *Conn) notifyLocked(f func()) {
	n := &c.notes
	n.queue = append(n.queue, f)
	if !n.running {
		n.running = true
		go c.runNotes()
	}
}

// runNotes runs queued callbacks until none is left, then exits.
func (c *Conn) runNotes() {
	for {
		c.mu.Lock()
		q := c.notes.queue
		c.notes.queue = nil
		if len(q) == 0 {
			c.notes.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		for i, f := range q {
			c.runNote(f)
			q[i] = nil
		}
	}
}

// runNote runs one callback; a panic in it is logged and closes the
// connection, as a panic in a Handler does, instead of killing the
// process.
func (c *Conn) runNote(f func()) {
	defer func() {
		if r := recover(); r != nil {
			stack := make([]byte, 32<<10)
			stack = stack[:runtime.Stack(stack, false)]
			c.cfg.logger.Error("amqp: panic in a send callback", "remote", c.nc.RemoteAddr(), "panic", r, "stack", string(stack))
			c.closeWithError(&Error{Condition: frame.CondInternalError, Description: "internal error"},
				&ConnError{inner: fmt.Errorf("amqp: panic in a send callback: %v", r)})
		}
	}()
	f()
}
