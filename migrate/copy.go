package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// CopyTable is one sharded table as the copy reads and writes it.
type CopyTable struct {
	Name   string
	Table  *vschema.Table
	column []string // quoted, in the source's order; generated ones left out
	// Progress, when set, is told what CopyRange wrote as it goes: bytes
	// as they stream, rows once a range committed.
	Progress func(topology.Size)
	// Pace, when set, is called before each chunk of rows goes to the
	// target: it holds them while the copy must back off.
	Pace func(ctx context.Context) error
}

// Columns reads, on the source, the columns of table a copy carries: all
// but dropped and generated ones (the target computes those itself), in
// the table's order.
func Columns(ctx context.Context, src *pgconn.PgConn, name string, t *vschema.Table) (*CopyTable, error) {
	const q = `SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum`
	rr := src.ExecParams(ctx, q, [][]byte{[]byte(name)}, nil, nil, nil).Read()
	if rr.Err != nil {
		return nil, fmt.Errorf("columns of %s: %w", name, rr.Err)
	}
	if len(rr.Rows) == 0 {
		return nil, fmt.Errorf("table %s does not exist or has no columns", name)
	}
	ct := &CopyTable{Name: name, Table: t}
	for _, r := range rr.Rows {
		ct.column = append(ct.column, pgx.Identifier{string(r[0])}.Sanitize())
	}
	return ct, nil
}

// rangeFilter selects the rows of keyspace ids lo..hi, inclusive.
func (ct *CopyTable) rangeFilter(lo, hi int64) string { return inRange(ct.Table, lo, hi) }

// inRange is SQL that holds for the rows of t with keyspace ids lo..hi,
// inclusive: for every row of a reference table.
func inRange(t *vschema.Table, lo, hi int64) string {
	if t.Kind == vschema.Reference {
		return "TRUE"
	}
	col := pgx.Identifier{t.Column}.Sanitize()
	if lo == math.MinInt64 {
		// The gateways keep rows without a sharding value with the
		// lowest keyspace id, on the shard of logical shard 0.
		return fmt.Sprintf("(%s BETWEEN %d AND %d OR %s IS NULL)", t.HashSQL(col), lo, hi, col)
	}
	return fmt.Sprintf("%s BETWEEN %d AND %d", t.HashSQL(col), lo, hi)
}

// CopyRange copies the rows of keyspace ids lo..hi of one table from src
// to dst and returns how many it wrote. After an error, close both
// connections: either may be in the middle of a COPY. src reads under whatever snapshot
// its open transaction holds (the caller's), so several ranges and tables
// can be read as of one moment. On dst it is one transaction that first
// deletes whatever the range holds there: a range copied again after a
// failure ends with the source's rows exactly once. Rows stream from one
// COPY into the other; no table is held in memory.
func CopyRange(ctx context.Context, src, dst *pgconn.PgConn, ct *CopyTable, lo, hi int64) (int64, error) {
	table := quoteName(ct.Name)
	cols := strings.Join(ct.column, ", ")
	if err := dst.Exec(ctx, "BEGIN; DELETE FROM "+table+" WHERE "+ct.rangeFilter(lo, hi)).Close(); err != nil {
		return 0, fmt.Errorf("clearing %s on the target: %w", ct.Name, err)
	}
	pr, pw := io.Pipe()
	readErr := make(chan error, 1)
	var out io.Writer = pw
	if ct.Progress != nil || ct.Pace != nil {
		out = progressWriter{ctx, pw, ct.Progress, ct.Pace}
	}
	go func() {
		_, err := src.CopyTo(ctx, out, "COPY (SELECT "+cols+" FROM "+table+" WHERE "+ct.rangeFilter(lo, hi)+") TO STDOUT (FORMAT binary)")
		pw.CloseWithError(err) // nil: the end of the rows
		readErr <- err
	}()
	tag, err := dst.CopyFrom(ctx, pr, "COPY "+table+" ("+cols+") FROM STDIN (FORMAT binary)")
	pr.CloseWithError(errors.New("the target's COPY ended"))
	if rerr := <-readErr; rerr != nil {
		err = fmt.Errorf("reading %s on the source: %w", ct.Name, rerr)
	} else if err != nil {
		err = fmt.Errorf("writing %s on the target: %w", ct.Name, err)
	}
	if err != nil {
		_ = dst.Exec(context.Background(), "ROLLBACK").Close()
		return 0, err
	}
	if err := dst.Exec(ctx, "COMMIT").Close(); err != nil {
		return 0, fmt.Errorf("committing %s on the target: %w", ct.Name, err)
	}
	if ct.Progress != nil {
		ct.Progress(topology.Size{Rows: tag.RowsAffected()})
	}
	return tag.RowsAffected(), nil
}

// progressWriter tells progress the bytes written through it, and waits
// for pace before each write.
type progressWriter struct {
	ctx      context.Context
	w        io.Writer
	progress func(topology.Size)
	pace     func(context.Context) error
}

func (p progressWriter) Write(b []byte) (int, error) {
	if p.pace != nil {
		if err := p.pace(p.ctx); err != nil {
			return 0, err
		}
	}
	n, err := p.w.Write(b)
	if p.progress != nil {
		p.progress(topology.Size{Bytes: int64(n)})
	}
	return n, err
}

// quoteName quotes a table name as the vschema writes it: "schema.table"
// or "table".
func quoteName(name string) string {
	return pgx.Identifier(strings.Split(name, ".")).Sanitize()
}

// KeyRange is the keyspace ids lo..hi of logical shards first..last of a
// keyspace of logicalCount logical shards.
func KeyRange(logicalCount, first, last int) (lo, hi int64) {
	m := topology.ShardMap{LogicalCount: logicalCount}
	lo, _ = m.Range(first)
	_, hi = m.Range(last)
	return lo, hi
}
