package mqtt

// Outbound returns how many outbound QoS 1 and 2 messages are in flight
// (handed to the writer or sent, not yet acknowledged by the client) and
// how many PUBLISH packets wait: encoded for the writer, or beyond the
// inflight window. It is what an operator looks at to tell a slow client
// from an idle one; a QoS 1/2 message being written counts in both.
func (c *Conn) Outbound() (inflight, queued int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.inflight), c.outMsgs + len(c.pending)
}
