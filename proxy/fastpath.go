package proxy

import (
	"bytes"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/planner/engine"
)

// functionCall answers a fastpath FunctionCall (libpq's lo_* functions use
// it). It runs on the keyspace's anchor shard (the only shard of an
// unsharded keyspace), where large objects live (see engine.AnchorShard),
// inside the session's transaction if one is open, and the shard's answer
// goes back as it is.
func (s *session) functionCall(ctx context.Context, m *pgproto3.FunctionCall) {
	defer s.readyForQuery()
	defer s.unpinIfClean()
	ks := s.routingKeyspace()
	if ks == nil || ks.VSchema() == nil {
		s.sendError(&planner.Error{Code: codeInvalidCatalogName, Message: fmt.Sprintf("database %q does not exist", s.keyspace)}, "", 0)
		return
	}
	t := s.txn
	if t != nil && t.failed {
		s.sendError(&planner.Error{Code: "25P02", Message: "current transaction is aborted, commands ignored until end of transaction block"}, "", 0)
		return
	}
	if err := s.reservePin(); err != nil {
		s.sendError(err, "", 0)
		return
	}
	ctx, done := s.statementContext(ctx)
	defer done()
	// libpq calls the large-object functions this way: they run where
	// every session keeps large objects, the anchor shard.
	shard := engine.AnchorShard(ks)
	var (
		b   *backend
		err error
	)
	if t != nil {
		b, err = s.join(ctx, t, shard)
	} else if b, err = s.backendFor(ctx, shard, nil); err == nil {
		defer s.giveBack(b)
	}
	var resp *pgproto3.FunctionCallResponse
	if err == nil {
		resp, err = b.functionCall(ctx, m)
	}
	if err != nil {
		if t == nil {
			// The call was its own transaction: it committed or not.
			err = outcomeUnknown(err, "a fastpath function call")
		} else if t.explicit {
			t.failed = true
		}
		s.sendError(err, "", 0)
		return
	}
	// The function may have left anything on the connection.
	s.pin(b, "fastpath call")
	s.be.Send(resp)
}

// functionCall sends a FunctionCall and returns the shard's answer.
func (b *backend) functionCall(ctx context.Context, m *pgproto3.FunctionCall) (*pgproto3.FunctionCallResponse, error) {
	b.pg.Frontend().Send(m)
	if err := b.flush(); err != nil {
		return nil, err
	}
	var (
		resp   *pgproto3.FunctionCallResponse
		failed error
	)
	for {
		msg, err := b.receive(ctx)
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.FunctionCallResponse:
			// The result lives in the connection's buffer until the
			// next read.
			resp = &pgproto3.FunctionCallResponse{Result: bytes.Clone(m.Result)}
		case *pgproto3.ErrorResponse:
			failed = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.NoticeResponse:
			b.forwardNotice(m)
		case *pgproto3.ReadyForQuery:
			return resp, failed
		}
	}
}
