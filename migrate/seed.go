package migrate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// Seed is one source shard's part of a workflow before its change stream
// runs: what it moves, and where.
type Seed struct {
	// Source is the source's connection configuration; the seed opens
	// its own connections with it.
	Source       *pgconn.Config
	Keyspace     *vschema.Keyspace
	LogicalCount int
	// Runs are the moves leaving this source.
	Runs []Run
	// Targets holds a connection per target shard of Runs.
	Targets map[string]*pgconn.PgConn
	// Workers is how many tables copy at once, each over connections of
	// its own: the first over Targets, the others over ones Connect
	// opens (with Connect nil, one at a time).
	Workers     int
	Connect     func(ctx context.Context, target string) (*pgconn.PgConn, error)
	Slot        string
	Publication string
	// NoReference names the targets that are shards of the keyspace
	// already: the gateways keep their reference tables, which are not
	// copied there.
	NoReference map[string]bool
	// Progress, when set, is told what the copy wrote to a table as it
	// goes (see CopyTable.Progress).
	Progress func(table string, written topology.Size)
	// Pace, when set, is called as rows stream and holds them while the
	// copy must back off (see CopyTable.Pace).
	Pace func(ctx context.Context) error
}

// Seeded is what a seed did: the slot whose changes the stream applies from
// its consistent point on, and the rows copied per table.
type Seeded struct {
	Slot *Slot
	Rows map[string]int64
}

// Copy makes the keyspace's tables on every target, creates the publication
// and the slot on the source, and copies, under the slot's snapshot, each
// run's hash range of every sharded table and every reference table whole
// to the targets. Rows stream from COPY to COPY. A failed seed leaves the
// slot and the publication for DropSlot.
func (s *Seed) Copy(ctx context.Context) (*Seeded, error) {
	tables := slices.Sorted(maps.Keys(s.Keyspace.Tables))
	src, err := pgconn.ConnectConfig(ctx, s.Source)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer src.Close(context.Background())
	for _, name := range slices.Sorted(maps.Keys(s.Targets)) {
		if err := CreateTables(ctx, src, s.Targets[name], tables); err != nil {
			return nil, fmt.Errorf("target %s: %w", name, err)
		}
	}
	repl, err := pgconn.ConnectConfig(ctx, ReplicationConfig(s.Source))
	if err != nil {
		return nil, fmt.Errorf("source, for replication: %w", err)
	}
	// The slot is free for a stream once this connection closes.
	defer repl.Close(context.Background())
	slot, err := CreateSlot(ctx, src, repl, s.Slot, s.Publication, tables)
	if err != nil {
		return nil, err
	}
	if err := src.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT "+quoteLiteral(slot.Snapshot)).Close(); err != nil {
		return nil, fmt.Errorf("reading under the slot's snapshot: %w", err)
	}
	copyTables := map[string]*CopyTable{}
	for _, name := range tables {
		if copyTables[name], err = Columns(ctx, src, name, s.Keyspace.Tables[name]); err != nil {
			return nil, err
		}
		if s.Progress != nil {
			table := name
			copyTables[name].Progress = func(written topology.Size) { s.Progress(table, written) }
		}
		copyTables[name].Pace = s.Pace
	}
	var jobs []copyJob
	referenced := map[string]bool{}
	for _, r := range s.Runs {
		lo, hi := KeyRange(s.LogicalCount, r.First, r.Last)
		for _, name := range tables {
			ct := copyTables[name]
			switch {
			case ct.Table.Kind != vschema.Reference:
				jobs = append(jobs, copyJob{r.To, ct, lo, hi})
			case !referenced[r.To] && !s.NoReference[r.To]:
				jobs = append(jobs, copyJob{r.To, ct, lo, hi}) // whole: reference rows have no range
			}
		}
		referenced[r.To] = true
	}
	rows, err := s.copyAll(ctx, src, slot.Snapshot, jobs)
	if err != nil {
		return nil, err
	}
	if err := src.Exec(ctx, "COMMIT").Close(); err != nil {
		return nil, err
	}
	return &Seeded{Slot: slot, Rows: rows}, nil
}

// copyJob is one table's rows of one hash range, for one target.
type copyJob struct {
	to     string
	ct     *CopyTable
	lo, hi int64
}

// copyAll runs jobs, s.Workers at a time, and returns the rows copied per
// table. src reads under snapshot already; every other worker opens a
// source connection that reads under it too, so all rows are as of one
// moment.
func (s *Seed) copyAll(ctx context.Context, src *pgconn.PgConn, snapshot string, jobs []copyJob) (map[string]int64, error) {
	workers := max(1, min(s.Workers, len(jobs)))
	if s.Connect == nil {
		workers = 1
	}
	var mu sync.Mutex
	rows := map[string]int64{}
	next := make(chan copyJob)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(next)
		for _, j := range jobs {
			select {
			case next <- j:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	for w := range workers {
		g.Go(func() error {
			from, dsts := src, s.Targets
			if w > 0 {
				var err error
				if from, err = pgconn.ConnectConfig(gctx, s.Source); err != nil {
					return fmt.Errorf("source: %w", err)
				}
				defer from.Close(context.Background())
				if err := from.Exec(gctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT "+quoteLiteral(snapshot)).Close(); err != nil {
					return fmt.Errorf("reading under the slot's snapshot: %w", err)
				}
				dsts = map[string]*pgconn.PgConn{}
				defer func() {
					for _, c := range dsts {
						c.Close(context.Background())
					}
				}()
			}
			for j := range next {
				dst := dsts[j.to]
				if dst == nil && w > 0 {
					var err error
					if dst, err = s.Connect(gctx, j.to); err != nil {
						return fmt.Errorf("target %s: %w", j.to, err)
					}
					dsts[j.to] = dst
				}
				if dst == nil {
					return fmt.Errorf("no connection to target %s", j.to)
				}
				n, err := CopyRange(gctx, from, dst, j.ct, j.lo, j.hi)
				if err != nil {
					return fmt.Errorf("copying %s to %s: %w", j.ct.Name, j.to, err)
				}
				mu.Lock()
				rows[j.ct.Name] += n
				mu.Unlock()
			}
			return nil
		})
	}
	return rows, g.Wait()
}
