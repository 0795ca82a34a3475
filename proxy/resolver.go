package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/topology"
)

// TwoPCStore is the etcd state a Resolver reads and finishes.
// topology.Store implements it.
type TwoPCStore interface {
	TwoPCLog
	ListTwoPC(ctx context.Context) ([]topology.TwoPC, error)
	LiveGateways(ctx context.Context) (map[string]topology.GatewayInfo, error)
}

// Resolver finishes two-phase commits whose coordinating gateway died, by
// the decision recorded in etcd (see topology.TwoPC), and rolls back
// prepared transactions of shardgate that have no record.
type Resolver struct {
	store    TwoPCStore
	topo     func() *topology.Snapshot
	pools    *Pools
	self     string
	inFlight func(gid string) bool
	metrics  *Metrics
	log      *zap.Logger
}

// NewResolver returns a Resolver for the gateway named self. It finishes the
// records of gateways that are gone, and its own records that inFlight says
// no session is working on any more (a COMMIT PREPARED that failed, a
// decision whose outcome was unclear).
func NewResolver(store TwoPCStore, topo func() *topology.Snapshot, pools *Pools, self string, inFlight func(gid string) bool, metrics *Metrics, log *zap.Logger) *Resolver {
	return &Resolver{store: store, topo: topo, pools: pools, self: self, inFlight: inFlight, metrics: metrics, log: log}
}

// Run resolves at once and then every interval until ctx ends.
func (r *Resolver) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := r.ResolveOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("resolving two-phase commits", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ResolveOnce makes one pass over the records and the shards' prepared
// transactions.
func (r *Resolver) ResolveOnce(ctx context.Context) error {
	snap := r.topo()
	if snap == nil {
		return nil
	}
	// Prepared transactions first, records second: a prepared transaction
	// without a record seen after it never committed.
	prepared := map[string]map[string]string{} // shard -> gid -> owner
	var errs []error
	for name, sh := range snap.Shards {
		gids, err := r.preparedOn(ctx, sh)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		prepared[name] = gids
	}
	records, err := r.store.ListTwoPC(ctx)
	if err != nil {
		return err
	}
	live, err := r.store.LiveGateways(ctx)
	if err != nil {
		return err
	}
	r.metrics.setInDoubt(len(records))
	known := map[string]bool{}
	for _, rec := range records {
		known[rec.GID] = true
		if _, ok := live[rec.Gateway]; ok && (rec.Gateway != r.self || r.inFlight(rec.GID)) {
			continue
		}
		if err := r.finish(ctx, snap, rec); err != nil {
			errs = append(errs, fmt.Errorf("two-phase commit %s: %w", rec.GID, err))
		}
	}
	for shard, gids := range prepared {
		for gid, owner := range gids {
			if known[gid] {
				continue
			}
			// Its record was written before it was prepared: either its
			// coordinator finished it since the shards were listed (then
			// it is gone and this does nothing), or the coordinator
			// aborted it without reaching this shard.
			did, err := r.onShard(ctx, snap, shard, owner, "ROLLBACK PREPARED "+quoteLiteral(preparedGID(gid, shard)))
			if err != nil {
				errs = append(errs, err)
			} else if did {
				r.log.Warn("rolled back a prepared transaction whose two-phase commit had been aborted", zap.String("gid", gid), zap.String("shard", shard))
			}
		}
	}
	return errors.Join(errs...)
}

// finish carries out a dead coordinator's two-phase commit.
func (r *Resolver) finish(ctx context.Context, snap *topology.Snapshot, rec topology.TwoPC) error {
	decision := rec.Decision
	if decision == topology.TwoPCUndecided {
		// Decide abort first, so a coordinator only cut off from etcd
		// cannot commit afterwards.
		switch err := r.store.DecideTwoPC(ctx, rec.GID, topology.TwoPCAbort); {
		case err == nil:
			decision = topology.TwoPCAbort
		case errors.Is(err, topology.ErrConflict):
			decision = topology.TwoPCCommit
		case errors.Is(err, topology.ErrNotFound):
			return nil
		default:
			return err
		}
	}
	verb := "ROLLBACK PREPARED "
	if decision == topology.TwoPCCommit {
		verb = "COMMIT PREPARED "
	}
	// Every participant it can reach is finished, whatever the others
	// say: a shard that is down must not keep the rest holding their
	// locks. The record stays until all are done.
	var finished []string
	var errs []error
	for _, shard := range rec.Participants {
		did, err := r.onShard(ctx, snap, shard, rec.Role, verb+quoteLiteral(preparedGID(rec.GID, shard)))
		if err != nil {
			errs = append(errs, err)
		}
		if did {
			finished = append(finished, shard)
		}
	}
	// Only what this resolver did is news: a record whose coordinator
	// finished every shard itself just loses its record.
	if len(finished) > 0 {
		whose := "a gateway that is gone"
		if rec.Gateway == r.self {
			whose = "this gateway, whose session gave up on it"
		}
		r.log.Info("finished a two-phase commit of "+whose, zap.String("gid", rec.GID), zap.String("gateway", rec.Gateway),
			zap.String("decision", string(decision)), zap.Strings("shards", finished))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return r.store.EndTwoPC(ctx, rec.GID)
}

// onShard runs sql, a COMMIT or ROLLBACK PREPARED, on shard as role. It
// reports whether it finished the prepared transaction; one that does not
// exist (finished already) is no error.
func (r *Resolver) onShard(ctx context.Context, snap *topology.Snapshot, shard, role, sql string) (bool, error) {
	sh, ok := snap.Shards[shard]
	if !ok {
		return false, fmt.Errorf("shard %s is not in the topology", shard)
	}
	b, err := r.borrow(ctx, sh, role)
	if err != nil {
		return false, err
	}
	defer b.release()
	err = b.run(ctx, sql)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42704" { // undefined_object
		return false, nil
	}
	return err == nil, err
}

// preparedOn lists the two-phase commit ids of shardgate prepared on shard's
// database, with the shard suffix removed, and the role that prepared each.
func (r *Resolver) preparedOn(ctx context.Context, sh *topology.Shard) (map[string]string, error) {
	b, err := r.borrow(ctx, sh, "")
	if err != nil {
		return nil, err
	}
	defer b.release()
	suffix := "_" + sh.Name
	out := map[string]string{}
	err = b.exec(ctx, "SELECT gid, owner FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE 'sg\\_%'",
		func(batch *engine.Batch) error {
			for _, row := range batch.Rows {
				if gid := string(row[0]); strings.HasSuffix(gid, suffix) {
					out[strings.TrimSuffix(gid, suffix)] = string(row[1])
				}
			}
			return nil
		}, discardTag)
	return out, err
}

// borrow takes a connection to sh with every setting a client left on it
// reset: a client's SET ROLE must not decide who finishes a transaction.
func (r *Resolver) borrow(ctx context.Context, sh *topology.Shard, role string) (*backend, error) {
	b, err := r.pools.acquireRecovery(ctx, sh, role)
	if err != nil {
		return nil, err
	}
	if err := b.syncSettings(ctx, nil); err != nil {
		b.release()
		return nil, err
	}
	return b, nil
}
