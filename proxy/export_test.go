package proxy

// busySessions counts sessions that are not waiting for their client.
func (s *Server) busySessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, idle := range s.sessions {
		if !idle {
			n++
		}
	}
	return n
}
