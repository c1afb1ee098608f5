package mqtt

// Internals for the tests of package mqtt_test.

// SetPollFault sets the poller's fault injection; call it before Serve.
func SetPollFault(s *Server, f func() error) { s.pollFault = f }
