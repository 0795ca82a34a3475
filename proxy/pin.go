package proxy

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/planner/engine"
)

// Under transaction pooling a session lends its backend connection back
// after each transaction. A statement that leaves state on the connection
// beyond settings — a temporary table, a cursor WITH HOLD, a prepared
// statement, an advisory lock — pins the session to it instead, and the
// session gives it back once that state is gone: after each statement
// while pinned, it asks the backend what is left (one round trip, for
// pinned sessions only).

// reservePin makes room, before a statement that may leave state on its
// backend connection runs, for the session to be pinned to it: at most the
// keyspace's max_pinned_sessions sessions may be, and one more gets 53300
// before it creates state it could not keep.
func (s *session) reservePin() error {
	if s.statePinned || s.ownsBackends() {
		return nil
	}
	limit := 0
	if ks := s.srv.topo().Keyspace(s.keyspace); ks != nil && ks.VSchema() != nil {
		limit = ks.VSchema().MaxPinnedSessions
	}
	if !s.srv.reservePin(s.keyspace, limit) {
		return &planner.Error{Code: codeTooManyConnections,
			Message: fmt.Sprintf("too many sessions of keyspace %s hold a backend connection for their state (max_pinned_sessions %d)", s.keyspace, limit),
			Hint:    "Drop the temporary tables, close the cursors and release the locks of idle sessions, use session pooling, or raise max_pinned_sessions."}
	}
	s.statePinned = true
	return nil
}

// pin keeps b for the session because a statement left state there (what
// names it, for metrics). reservePin made room for it.
func (s *session) pin(b *backend, what string) {
	if !s.statePinned || s.pinned[b.shard] == b {
		return // held for the session's life anyway, or pinned already
	}
	s.pinned[b.shard] = b
	s.srv.metrics.pinned(what)
	s.log.Debug("session pinned to its backend connection", zap.String("shard", b.shard), zap.String("state", what))
}

// leftStateQuery counts what a session left on its backend connection that
// another session must not find: temporary tables and other objects in its
// pg_temp schema (types, functions), open cursors, SQL
// prepared statements (not the gateway's own, which the protocol made),
// session advisory locks and LISTEN channels.
const leftStateQuery = `SELECT (SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema())
	+ (SELECT count(*) FROM pg_catalog.pg_type WHERE typnamespace = pg_catalog.pg_my_temp_schema())
	+ (SELECT count(*) FROM pg_catalog.pg_proc WHERE pronamespace = pg_catalog.pg_my_temp_schema())
	+ (SELECT count(*) FROM pg_catalog.pg_cursors)
	+ (SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql)
	+ (SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())
	+ (SELECT count(*) FROM pg_catalog.pg_listening_channels())`

// unpinIfClean gives back, between transactions, the backends the session
// holds only for state it left there, once that state is gone.
func (s *session) unpinIfClean() {
	if !s.statePinned || s.txn != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), pinCheckTimeout)
	defer cancel()
	for shard, b := range s.pinned {
		left := ""
		err := b.exec(ctx, leftStateQuery, func(batch *engine.Batch) error {
			if len(batch.Rows) > 0 {
				left = string(batch.Rows[0][0])
			}
			return nil
		}, discardTag)
		if err == nil && left != "0" {
			continue
		}
		delete(s.pinned, shard)
		b.release() // a broken connection is closed by its pool
	}
	if len(s.pinned) == 0 {
		s.statePinned = false
		s.listens = false
		s.srv.unpin(s.keyspace)
	}
}

// unpinAll ends a closing session's pins: its backends are cleared (see
// close) and go back to the pool.
func (s *session) unpinAll() {
	if s.statePinned {
		s.statePinned = false
		s.srv.unpin(s.keyspace)
	}
}

// pinCheckTimeout bounds the question what a pinned session left.
const pinCheckTimeout = 5 * time.Second

// reservePin counts one more pinned session of keyspace ks unless limit
// (0: none) is reached.
func (srv *Server) reservePin(ks string, limit int) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if limit > 0 && srv.pins[ks] >= limit {
		return false
	}
	srv.pins[ks]++
	srv.pinnedSessions.Add(1)
	return true
}

// unpin counts one pinned session of keyspace ks less.
func (srv *Server) unpin(ks string) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.pins[ks]--; srv.pins[ks] <= 0 {
		delete(srv.pins, ks)
	}
	srv.pinnedSessions.Add(-1)
}
