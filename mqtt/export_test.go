package mqtt

// Parked returns the number of connections of s that are parked.
func Parked(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.parkState.Load() == parked {
			n++
		}
	}
	return n
}
