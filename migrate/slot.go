package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// Slot is a logical replication slot on a source and the snapshot it
// exported: a copy read under Snapshot, followed by the slot's changes from
// Consistent on, misses nothing and has nothing twice.
type Slot struct {
	Name       string
	Consistent pglogrepl.LSN
	// Snapshot can be set in other sessions (SET TRANSACTION SNAPSHOT)
	// until the replication connection that made the slot runs another
	// command or closes. That connection holds the slot until it closes:
	// a Stream reads it on another.
	Snapshot string
}

// CreateSlot makes, on a source, publication pub for tables and then
// logical replication slot name (pgoutput) on repl, a connection opened
// with replication=database. src is an ordinary connection to the same
// database.
func CreateSlot(ctx context.Context, src, repl *pgconn.PgConn, name, pub string, tables []string) (*Slot, error) {
	quoted := make([]string, len(tables))
	for i, t := range tables {
		quoted[i] = quoteName(t)
	}
	if err := src.Exec(ctx, "CREATE PUBLICATION "+quoteName(pub)+" FOR TABLE "+strings.Join(quoted, ", ")).Close(); err != nil {
		return nil, fmt.Errorf("creating publication %s: %w", pub, err)
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, name, "pgoutput", pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return nil, fmt.Errorf("creating replication slot %s: %w", name, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return nil, fmt.Errorf("replication slot %s: %w", name, err)
	}
	return &Slot{Name: name, Consistent: lsn, Snapshot: res.SnapshotName}, nil
}

// DropSlot removes slot name and publication pub from a source, either of
// which may be gone already. A slot that a connection still holds is
// waited for, as long as a stream waits for it (the connection may be
// closing); one a stream still reads cannot be dropped.
func DropSlot(ctx context.Context, src *pgconn.PgConn, name, pub string) error {
	err := whileSlotBusy(ctx, func() error {
		_, err := query(ctx, src, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", name)
		return err
	})
	if err != nil {
		return fmt.Errorf("dropping replication slot %s: %w", name, err)
	}
	if err := src.Exec(ctx, "DROP PUBLICATION IF EXISTS "+quoteName(pub)).Close(); err != nil {
		return fmt.Errorf("dropping publication %s: %w", pub, err)
	}
	return nil
}

// ReplicationConfig turns a connection configuration into one for the
// logical replication protocol.
func ReplicationConfig(cfg *pgconn.Config) *pgconn.Config {
	c := cfg.Copy()
	c.RuntimeParams["replication"] = "database"
	return c
}

// slotBusyFor bounds the wait for a slot another connection still holds:
// the one that made it, closing, or the walsender of a stream that died,
// which the source ends within its wal_sender_timeout (a minute by
// default).
const slotBusyFor = 2 * time.Minute

// whileSlotBusy runs f until it does not fail with "object in use"
// (55006), for at most slotBusyFor.
func whileSlotBusy(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(slotBusyFor)
	for {
		err := f()
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
