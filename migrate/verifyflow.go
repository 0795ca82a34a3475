package migrate

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// catchUpWait bounds the wait for a stream before rows are read again.
const catchUpWait = 2 * time.Minute

// Verified is what VerifyWorkflow compared: per table, the rows of the
// moving logical shards on the sources, and the rows that differ.
type Verified struct {
	Rows        map[string]int64
	Differences []Difference
	// CaughtUp is false when a stream did not catch up when rows were
	// read again (no controller runs?): the differences may be lag.
	CaughtUp bool
}

// VerifyWorkflow compares, for every logical shard that workflow name
// moves, each sharded table on its source with its target, like
// VerifyRange, under live writes: each row found different is read again
// once the stream passed the moment it was read where the writes go (see
// confirm), and returned only if it still differs. progress, when set, is
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
	keyCols := map[string][]string{}
	for _, ct := range tables {
		src, err := conn(w.Moves[0].From)
		if err != nil {
			return nil, err
		}
		if keyCols[ct.Name], err = primaryKeyColumns(ctx, src, ct.Name); err != nil {
			return nil, err
		}
	}
	flippedAt := map[int]bool{} // logical shards whose writes are at the target
	for _, b := range w.Batches {
		for l := b.First; l <= b.Last; l++ {
			flippedAt[l] = flipped(b) && b.Done
		}
	}
	suspects := map[flow][]suspect{} // by the stream that carries their writes
	for _, mv := range w.Moves {
		src, err := conn(mv.From)
		if err != nil {
			return nil, err
		}
		dst, err := conn(mv.To)
		if err != nil {
			return nil, err
		}
		lo, hi := ks.Map.Range(mv.Logical)
		for _, ct := range tables {
			diffs, err := VerifyRange(ctx, src, dst, ct, lo, hi)
			if err != nil {
				return nil, fmt.Errorf("logical shard %d, table %s: %w", mv.Logical, ct.Name, err)
			}
			n, err := query(ctx, src, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", quoteName(ct.Name), ct.rangeFilter(lo, hi)))
			if err != nil {
				return nil, err
			}
			c, _ := strconv.ParseInt(string(n[0][0]), 10, 64)
			out.Rows[ct.Name] += c
			if len(diffs) == 0 {
				continue
			}
			writer := flow{shard: mv.From}
			follower := mv.To
			if flippedAt[mv.Logical] {
				writer, follower = flow{shard: mv.To, reverse: true}, mv.From
			}
			for _, d := range diffs {
				suspects[writer] = append(suspects[writer], suspect{d: d, cols: keyCols[ct.Name], follower: follower})
			}
		}
		if progress != nil {
			progress(mv.Logical)
		}
	}
	// Under live writes a row differs when its last change is not carried
	// yet: look again, at a point the stream passed.
	for writer, rows := range suspects {
		confirmed, caughtUp, err := confirm(ctx, store, name, writer, rows, conn)
		if err != nil {
			return nil, err
		}
		out.Differences = append(out.Differences, confirmed...)
		out.CaughtUp = out.CaughtUp && caughtUp
	}
	slices.SortFunc(out.Differences, func(a, b Difference) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// suspect is a row found different, to read again.
type suspect struct {
	d        Difference
	cols     []string // its table's primary key
	follower string   // the shard that gets its changes from the stream
}

// confirmAttempts is how many times a row that keeps changing is read
// again before it is left out of the comparison.
const confirmAttempts = 5

// confirm reads again the rows of suspects, whose writes go to writer's
// shard, at a moment the stream has carried everything that shard
// committed by then: a row is a difference if it is the same there before
// and after the stream caught up and differs on its follower. A row that
// changed meanwhile is read again, confirmAttempts times at most.
// caughtUp is false if the stream did not catch up in time: the rows are
// then returned as they differed.
func confirm(ctx context.Context, store *topology.Store, name string, writer flow, suspects []suspect, conn func(string) (*pgconn.PgConn, error)) (confirmed []Difference, caughtUp bool, err error) {
	wconn, err := conn(writer.shard)
	if err != nil {
		return nil, false, err
	}
	todo := suspects
	for attempt := 0; attempt < confirmAttempts && len(todo) > 0; attempt++ {
		before := make([]string, len(todo))
		version := make([]string, len(todo))
		if err := wconn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ").Close(); err != nil {
			return nil, false, err
		}
		for i, sp := range todo {
			if before[i], version[i], err = rowState(ctx, wconn, sp.d.Table, sp.cols, sp.d.values); err != nil {
				_ = wconn.Exec(ctx, "ROLLBACK").Close()
				return nil, false, err
			}
		}
		rows, err := query(ctx, wconn, "SELECT pg_current_wal_insert_lsn()")
		if cerr := wconn.Exec(ctx, "COMMIT").Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, false, err
		}
		at, _ := pglogrepl.ParseLSN(string(rows[0][0]))
		if err := waitFlow(ctx, store, name, writer, at); err != nil {
			for _, sp := range todo {
				confirmed = append(confirmed, sp.d)
			}
			return confirmed, false, nil
		}
		var again []suspect
		for i, sp := range todo {
			fconn, err := conn(sp.follower)
			if err != nil {
				return nil, false, err
			}
			other, err := rowHash(ctx, fconn, sp.d.Table, sp.cols, sp.d.values)
			if err != nil {
				return nil, false, err
			}
			_, after, err := rowState(ctx, wconn, sp.d.Table, sp.cols, sp.d.values)
			if err != nil {
				return nil, false, err
			}
			switch {
			case after != version[i]:
				again = append(again, sp) // changed meanwhile, maybe back
			case other == before[i]:
				// the same: it was lag
			default:
				srcRow, dstRow := before[i], other
				if writer.reverse {
					srcRow, dstRow = other, before[i]
				}
				d := sp.d
				switch {
				case dstRow == "":
					d.Kind = "missing"
				case srcRow == "":
					d.Kind = "extra"
				default:
					d.Kind = "different"
				}
				confirmed = append(confirmed, d)
			}
		}
		todo = again
	}
	return confirmed, true, nil
}

// waitFlow waits until flow f, as recorded, holds everything up to lsn.
func waitFlow(ctx context.Context, store *topology.Store, name string, f flow, lsn pglogrepl.LSN) error {
	deadline := time.Now().Add(catchUpWait)
	for {
		w, err := store.Workflow(ctx, name)
		if err != nil {
			return err
		}
		if p := f.progress(w); p != nil {
			if at, _ := pglogrepl.ParseLSN(p.Flushed); at >= lsn {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s did not reach %s in %s", f, lsn, catchUpWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
