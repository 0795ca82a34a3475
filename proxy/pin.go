package proxy

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/shardgate/shardgate/planner"
)

// Under transaction pooling a session lends its backend connection back
// after each transaction. A statement that leaves state on the connection
// beyond settings — a temporary table, a cursor WITH HOLD, a prepared
// statement, an advisory lock — pins the session to it instead, and the
// session gives it back once that state is gone: after each statement
// while pinned, it asks the backend what is left (one round trip, for
// pinned sessions only).

// pin keeps b for the session because a statement left state there (what
// names it, for metrics).
func (s *session) pin(b *backend, what string) {
	if s.ownsBackends() || s.pinned[b.shard] == b {
		return // held for the session's life anyway, or pinned already
	}
	s.pinned[b.shard] = b
	if !s.statePinned {
		s.statePinned = true
		s.srv.pinnedSessions.Add(1)
	}
	s.srv.metrics.pinned(what)
	s.log.Debug("session pinned to its backend connection", zap.String("shard", b.shard), zap.String("state", what))
}

// leftStateQuery counts what a session left on its backend connection that
// another session must not find: temporary tables, open cursors, SQL
// prepared statements (not the gateway's own, which the protocol made),
// session advisory locks and LISTEN channels.
const leftStateQuery = `SELECT (SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema())
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
		err := b.exec(ctx, leftStateQuery, func(batch *planner.Batch) error {
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
		s.srv.pinnedSessions.Add(-1)
	}
}

// unpinAll ends a closing session's pins: its backends are cleared (see
// close) and go back to the pool.
func (s *session) unpinAll() {
	if s.statePinned {
		s.statePinned = false
		s.srv.pinnedSessions.Add(-1)
	}
}

// pinCheckTimeout bounds the question what a pinned session left.
const pinCheckTimeout = 5 * time.Second
