package proxy

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardgate/shardgate/planner"
)

// gidPrefix starts the identifiers of shardgate's own prepared
// transactions (see twoPhaseCommit); its resolver rolls back those it has
// no record of, so clients may not use it.
const gidPrefix = "sg_"

// clientTwoPhase runs a client's own PREPARE TRANSACTION, COMMIT PREPARED
// or ROLLBACK PREPARED. They pass through on an unsharded keyspace, whose
// one shard holds the whole transaction. On a sharded keyspace the gateway
// runs two-phase commit itself, and a client's prepared transaction would
// span shards the client cannot name.
func (s *session) clientTwoPhase(ctx context.Context, st *planner.Statement) error {
	c := st.Control
	ks := s.srv.topo().Keyspace(s.keyspace)
	if ks == nil || ks.VSchema() == nil || ks.VSchema().Sharded {
		return &planner.Error{Code: codeFeatureNotSupp,
			Message: fmt.Sprintf("%s is supported only on an unsharded keyspace: on a sharded one shardgate runs two-phase commit itself", c.Kind)}
	}
	if strings.HasPrefix(c.GID, gidPrefix) {
		return &planner.Error{Code: codeFeatureNotSupp,
			Message: fmt.Sprintf("transaction identifiers starting with %q are reserved for shardgate's own two-phase commits", gidPrefix)}
	}
	shard := ks.Shards()[0]
	complete := func(tag string) error {
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
		return nil
	}
	t := s.txn
	if c.Kind != planner.PrepareTransaction {
		if t != nil && t.failed {
			return &planner.Error{Code: "25P02", Message: "current transaction is aborted, commands ignored until end of transaction block"}
		}
		if t != nil {
			return &planner.Error{Code: "25001", Message: fmt.Sprintf("%s cannot run inside a transaction block", c.Kind)}
		}
		b, err := s.backendFor(ctx, shard, nil)
		if err != nil {
			return err
		}
		defer s.giveBack(b)
		if err := b.run(ctx, st.SQL); err != nil {
			return err
		}
		return complete(c.Kind.String())
	}
	switch {
	case t == nil:
		// As Postgres: there is nothing to prepare.
		s.notice("25P01", "there is no transaction in progress")
		return complete("ROLLBACK")
	case !t.explicit:
		return &planner.Error{Code: codeFeatureNotSupp, Message: "PREPARE TRANSACTION in a query string of several statements is not supported by shardgate; use BEGIN ... PREPARE TRANSACTION"}
	}
	s.txn = nil
	clear(s.portals) // portals end with their transaction
	if t.failed {
		_ = s.rollback(ctx, t)
		return complete("ROLLBACK")
	}
	b, err := s.join(ctx, t, shard) // an empty transaction can be prepared too
	if err == nil {
		err = b.run(ctx, st.SQL)
	}
	if err != nil {
		// A PREPARE TRANSACTION that fails becomes a ROLLBACK.
		_ = s.rollback(context.Background(), t)
		return err
	}
	// The backend is out of the transaction, which lives on prepared.
	s.settings = t.settings
	s.releaseTxn(t)
	return complete("PREPARE TRANSACTION")
}
