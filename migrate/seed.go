package migrate

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5/pgconn"

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
	Targets     map[string]*pgconn.PgConn
	Slot        string
	Publication string
	// NoReference names the targets that are shards of the keyspace
	// already: the gateways keep their reference tables, which are not
	// copied there.
	NoReference map[string]bool
	// Progress, when set, is told what the copy wrote to a table as it
	// goes (see CopyTable.Progress).
	Progress func(table string, written topology.Size)
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
	}
	rows := map[string]int64{}
	copyTo := func(target string, ct *CopyTable, lo, hi int64) error {
		dst := s.Targets[target]
		if dst == nil {
			return fmt.Errorf("no connection to target %s", target)
		}
		n, err := CopyRange(ctx, src, dst, ct, lo, hi)
		rows[ct.Name] += n
		return err
	}
	referenced := map[string]bool{}
	for _, r := range s.Runs {
		lo, hi := KeyRange(s.LogicalCount, r.First, r.Last)
		for _, name := range tables {
			ct := copyTables[name]
			switch {
			case ct.Table.Kind != vschema.Reference:
				err = copyTo(r.To, ct, lo, hi)
			case !referenced[r.To] && !s.NoReference[r.To]:
				err = copyTo(r.To, ct, lo, hi) // whole: reference rows have no range
			}
			if err != nil {
				return nil, fmt.Errorf("copying %s to %s: %w", name, r.To, err)
			}
		}
		referenced[r.To] = true
	}
	if err := src.Exec(ctx, "COMMIT").Close(); err != nil {
		return nil, err
	}
	return &Seeded{Slot: slot, Rows: rows}, nil
}
