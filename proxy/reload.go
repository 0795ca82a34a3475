package proxy

import "time"

// Limits are the client limits of a Server that may change while it runs;
// Config documents each.
type Limits struct {
	MaxClientConns        int
	MaxClientConnsPerUser int
	StartupTimeout        time.Duration
	MaxMessageSize        int
	MaxStatementSize      int
	ClientWriteTimeout    time.Duration
}

// SetLimits makes l the server's client limits. Sessions already admitted
// stay even if they now exceed a lowered limit, as a session is never
// dropped by a reload; the next connections are counted against l. A
// connection in its startup phase keeps the startup timeout it began with.
// Safe for concurrent use.
func (s *Server) SetLimits(l Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxConns, s.maxPerUsr = l.MaxClientConns, l.MaxClientConnsPerUser
	s.startup, s.maxMsg, s.maxStmt = l.StartupTimeout, l.MaxMessageSize, l.MaxStatementSize
	s.writeTimeout.Store(int64(l.ClientWriteTimeout))
}

// maxStatementSize is the longest statement text a client may send now (0:
// no limit).
func (s *Server) maxStatementSize() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxStmt
}

// startupTimeout is how long a new connection may take to authenticate.
func (s *Server) startupTimeout() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startup
}

// maxMessageSize is the longest message a session that finishes its startup
// now may send (0: no limit).
func (s *Server) maxMessageSize() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxMsg
}

// SetConfig makes cfg the pools' settings. A new AcquireTimeout applies to
// the next acquire. The other settings are fixed when a pgxpool is made, so
// if any of them changed every pool is retired: the next borrowing makes a
// new pool with cfg, while connections borrowed from a retired pool (a
// running statement, a transaction, a pinned session) finish on it and are
// closed when they come back. Until they do, a shard may see up to
// MaxConns more connections of this gateway than cfg allows. Safe for
// concurrent use.
func (p *Pools) SetConfig(cfg PoolConfig) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.cfg
	p.cfg = cfg
	old.AcquireTimeout = cfg.AcquireTimeout
	if old == cfg {
		return
	}
	for key, sp := range p.pools {
		delete(p.pools, key)
		go sp.pool.Close() // waits for the borrowed connections
	}
}

// acquireTimeout bounds the wait for a free backend connection.
func (p *Pools) acquireTimeout() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg.AcquireTimeout
}
