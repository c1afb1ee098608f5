package mqtt

// Internals for the tests of package mqtt_test.

// MaxBacklog is maxBacklog.
const MaxBacklog = maxBacklog

// Backlog returns the bytes c has waiting for the socket: queued, and
// being written.
func Backlog(c *Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out) + c.writeLen
}

// WaitingForRoom reports whether c's reader waits for the backlog to drain.
func WaitingForRoom(c *Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.room != nil
}

// SetPollFault sets the poller's fault injection; call it before Serve.
func SetPollFault(s *Server, f func() error) { s.pollFault = f }
