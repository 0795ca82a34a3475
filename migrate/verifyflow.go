package migrate

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// verifyRounds is how many times a difference is looked at again, each
// time after the streams caught up with what the shards had then, before
// it is reported: under live writes a row may differ only because a
// stream has not carried its last change yet.
const verifyRounds = 3

// catchUpWait bounds the wait for the streams between two rounds.
const catchUpWait = 30 * time.Second

// Verified is what VerifyWorkflow compared: per table, the rows of the
// moving logical shards on the sources, and what still differed after
// every round.
type Verified struct {
	Rows        map[string]int64
	Differences []Difference
	// CaughtUp is false when the streams did not catch up between two
	// rounds (no controller runs): the differences may be lag.
	CaughtUp bool
}

// VerifyWorkflow compares, for every logical shard that workflow name
// moves, each sharded table on its source with its target, like VerifyRange,
// under live writes. Differences found are looked at again once the
// streams caught up; those that stay are returned. progress, when set, is
// told each logical shard as it is done.
func VerifyWorkflow(ctx context.Context, store *topology.Store, name string, progress func(logical int)) (*Verified, error) {
	w, err := store.Workflow(ctx, name)
	if err != nil {
		return nil, err
	}
	if w.Phase == topology.PhasePlanned || w.Phase == topology.PhaseCopying {
		return nil, fmt.Errorf("workflow %s is in phase %s: there is nothing complete to verify before the copy is done", w.Name, w.Phase)
	}
	snap, err := store.Load(ctx)
	if err != nil {
		return nil, err
	}
	ks := snap.Keyspace(w.Keyspace)
	if ks == nil || ks.VSchema() == nil {
		return nil, fmt.Errorf("keyspace %s has no vschema", w.Keyspace)
	}
	x := &world{snap: snap, ks: ks, vs: ks.VSchema()}
	conns := map[string]*pgconn.PgConn{}
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	conn := func(shard string) (*pgconn.PgConn, error) {
		if c := conns[shard]; c != nil {
			return c, nil
		}
		c, err := x.connect(ctx, shard)
		conns[shard] = c
		return c, err
	}
	var tables []*CopyTable
	for _, t := range x.tables() {
		if x.vs.Tables[t].Kind == vschema.Reference {
			continue
		}
		src, err := conn(w.Moves[0].From)
		if err != nil {
			return nil, err
		}
		ct, err := Columns(ctx, src, t, x.vs.Tables[t])
		if err != nil {
			return nil, err
		}
		tables = append(tables, ct)
	}
	out := &Verified{Rows: map[string]int64{}, CaughtUp: true}
	// Round one over every moving logical shard; the next rounds only
	// over the logical shards that differed.
	todo := w.Moves
	var found []Difference
	for round := 1; round <= verifyRounds && len(todo) > 0; round++ {
		if round > 1 {
			if err := waitStreams(ctx, store, name, x, conn); err != nil {
				out.CaughtUp = false
				break
			}
		}
		var again []topology.Move
		var now []Difference
		for _, mv := range todo {
			src, err := conn(mv.From)
			if err != nil {
				return nil, err
			}
			dst, err := conn(mv.To)
			if err != nil {
				return nil, err
			}
			lo, hi := ks.Map.Range(mv.Logical)
			differs := false
			for _, ct := range tables {
				diffs, err := VerifyRange(ctx, src, dst, ct, lo, hi)
				if err != nil {
					return nil, fmt.Errorf("logical shard %d, table %s: %w", mv.Logical, ct.Name, err)
				}
				if round == 1 {
					n, err := query(ctx, src, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", quoteName(ct.Name), ct.rangeFilter(lo, hi)))
					if err != nil {
						return nil, err
					}
					c, _ := strconv.ParseInt(string(n[0][0]), 10, 64)
					out.Rows[ct.Name] += c
				}
				now = append(now, diffs...)
				differs = differs || len(diffs) > 0
			}
			if differs {
				again = append(again, mv)
			}
			if round == 1 && progress != nil {
				progress(mv.Logical)
			}
		}
		if round == 1 {
			found = now
		} else {
			// A difference stays only if it was there in every round.
			found = slices.DeleteFunc(found, func(d Difference) bool { return !slices.Contains(now, d) })
		}
		todo = again
	}
	out.Differences = found
	return out, nil
}

// waitStreams waits until the workflow's streams, as recorded, passed the
// positions the shards they read are at now.
func waitStreams(ctx context.Context, store *topology.Store, name string, x *world, conn func(string) (*pgconn.PgConn, error)) error {
	w, err := store.Workflow(ctx, name)
	if err != nil {
		return err
	}
	want := map[flow]pglogrepl.LSN{}
	for _, f := range append(flowsOf(w, false), flowsOf(w, true)...) {
		c, err := conn(f.shard)
		if err != nil {
			return err
		}
		rows, err := query(ctx, c, "SELECT pg_current_wal_insert_lsn()")
		if err != nil {
			return err
		}
		want[f], _ = pglogrepl.ParseLSN(string(rows[0][0]))
	}
	deadline := time.Now().Add(catchUpWait)
	for {
		w, err := store.Workflow(ctx, name)
		if err != nil {
			return err
		}
		behind := false
		for f, lsn := range want {
			p := f.progress(w)
			at, _ := pglogrepl.ParseLSN(p.Flushed)
			behind = behind || at < lsn
		}
		if !behind {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the streams did not catch up in %s", catchUpWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// flowsOf lists w's forward flows, or its reverse ones.
func flowsOf(w *topology.Workflow, reverse bool) []flow {
	var out []flow
	m := w.Sources
	if reverse {
		m = w.Reverse
	}
	for shard, p := range m {
		if p.Seeded {
			out = append(out, flow{shard: shard, reverse: reverse})
		}
	}
	return out
}
