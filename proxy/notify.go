package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardgate/shardgate/planner/engine"
)

// Notifications (LISTEN/NOTIFY) reach a client two ways, as from Postgres:
// those that arrive while a statement runs come with its answer (backend
// receive passes them on), and those that arrive while the client is idle
// are watched for on the session's listening connection and written to the
// client at once.

// forwardNotification sends the client a notification that arrived while
// one of its statements ran.
func (s *session) forwardNotification(n *pgproto3.NotificationResponse) {
	s.be.Send(n)
}

// watchNotifications delivers, while the session waits for its client, the
// notifications its listening backend connection receives; and when the
// session owns its backend (session pooling), it passes on that backend's
// end as Postgres does: a terminated backend's FATAL reaches the client at
// once, and the client's connection closes. The returned stop must be
// called before the session uses its backends or writes to its client
// again: until then the watch alone reads the one and writes the other.
func (s *session) watchNotifications() (stop func()) {
	b := s.watchedBackend()
	if b == nil {
		return func() {}
	}
	conn := b.pg.Conn()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			// No context: cancelling one would send the shard a cancel
			// request. stop ends the read with a deadline instead, which
			// leaves the connection usable.
			msg, err := b.pg.ReceiveMessage(context.Background())
			if err != nil {
				if (s.ownsBackends() || s.statePinned) && b.pg.IsClosed() {
					// The backend ended: so does the session, with the
					// backend's FATAL if it said one.
					var pe *pgconn.PgError
					if errors.As(err, &pe) && pe.Severity == "FATAL" {
						e := errorResponse(pe, "", 0, s.log)
						e.Severity, e.SeverityUnlocalized = "FATAL", "FATAL"
						if buf, err := e.Encode(nil); err == nil {
							_, _ = s.conn.Write(buf)
						}
					}
					s.conn.Close()
				}
				return // stopped: the session goes on
			}
			var out pgproto3.BackendMessage
			switch m := msg.(type) {
			case *pgproto3.NotificationResponse:
				out = m
			case *pgproto3.NoticeResponse:
				out = m
			default:
				continue
			}
			buf, err := out.Encode(nil)
			if err != nil {
				return
			}
			if _, err := s.conn.Write(buf); err != nil {
				return
			}
		}
	}()
	return func() {
		_ = conn.SetReadDeadline(time.Now())
		<-done
		_ = conn.SetReadDeadline(time.Time{})
	}
}

// watchedBackend returns the backend to watch while the client is idle:
// the one the session listens on, or the one it owns; only between
// transactions.
func (s *session) watchedBackend() *backend {
	if s.txn != nil {
		return nil
	}
	if b := s.listeningBackend(); b != nil {
		return b
	}
	if len(s.pinned) == 1 && s.ownsBackends() {
		for _, b := range s.pinned {
			return b
		}
	}
	return nil
}

// listeningBackend returns the connection the session listens on, if it
// listens and is between transactions: notifications reach a Postgres
// client only then.
func (s *session) listeningBackend() *backend {
	if !s.listens {
		return nil
	}
	ks := s.srv.topo().Keyspace(s.keyspace)
	if ks == nil || ks.VSchema() == nil {
		return nil
	}
	// LISTEN runs on the anchor shard of a sharded keyspace, and on the
	// only shard of an unsharded one, which is its anchor too.
	return s.pinned[engine.AnchorShard(ks)]
}
