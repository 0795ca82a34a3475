// Package proxy is the gateway's front door: it speaks the Postgres wire
// protocol to clients (pgproto3), plans each statement with the planner
// against the current topology snapshot, runs the plan on pooled backend
// connections to the physical shards, and streams results back.
package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/topology"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("proxy: server closed")

// Server accepts client connections and serves each in its own goroutine.
type Server struct {
	topo  func() *topology.Snapshot
	pools *Pools
	log   *zap.Logger

	mu        sync.Mutex
	listeners map[net.Listener]bool
	sessions  map[*session]bool // value: idle, waiting for the client
	wg        sync.WaitGroup
	closing   atomic.Bool
}

// NewServer returns a Server that plans against the snapshots topo returns
// and runs statements on pools.
func NewServer(topo func() *topology.Snapshot, pools *Pools, log *zap.Logger) *Server {
	return &Server{topo: topo, pools: pools, log: log, listeners: map[net.Listener]bool{}, sessions: map[*session]bool{}}
}

// Serve accepts connections on l until Shutdown or Close. It always returns
// a non-nil error; after Shutdown or Close it is ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.startSession(conn)
	}
}

func (s *Server) startSession(conn net.Conn) {
	ctx, cancel := context.WithCancel(context.Background())
	sess := &session{
		srv:    s,
		conn:   conn,
		be:     pgproto3.NewBackend(conn, conn),
		log:    s.log.With(zap.String("client", conn.RemoteAddr().String())),
		cancel: cancel,
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		conn.Close()
		cancel()
		return
	}
	s.sessions[sess] = false
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			conn.Close()
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
		}()
		defer cancel()
		if sess.startup(ctx) {
			sess.serve(ctx)
		}
	}()
}

// markIdle records whether a session waits for its client. Shutdown closes
// idle sessions at once and lets busy ones finish their statement.
func (s *Server) markIdle(sess *session, idle bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idle && s.closing.Load() {
		// Shutdown began while this session was busy: end it now, before
		// it waits for another statement.
		sess.conn.Close()
	}
	s.sessions[sess] = idle
}

func (s *Server) draining() bool { return s.closing.Load() }

// Shutdown stops accepting connections, closes idle sessions, lets busy
// sessions finish the statement they run (each then ends with a FATAL
// 57P01), and returns when all have ended or ctx is done; then it closes
// what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for sess, idle := range s.sessions {
		if idle {
			sess.conn.Close()
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every session at once.
func (s *Server) Close() {
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for sess := range s.sessions {
		sess.cancel()
		sess.conn.Close()
	}
	s.mu.Unlock()
}

// ActiveSessions returns the number of connected clients.
func (s *Server) ActiveSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
