package migrate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Difference is one row that is not the same on source and target.
type Difference struct {
	Table string
	Key   string // the primary key's values, as text, comma-separated
	// Kind is "missing" (on the target), "extra" (only on the target) or
	// "different".
	Kind string
	// values are the primary key's columns as text, to read the row again.
	values []string
}

func (d Difference) String() string { return fmt.Sprintf("%s %s: %s", d.Table, d.Key, d.Kind) }

// leafRows is the most rows a key range may hold for its rows to be
// compared one by one; a larger range that differs is split in two.
var leafRows int64 = 1000

// VerifyRange compares the rows of keyspace ids lo..hi of one table on src
// and dst, each read under whatever snapshot its open transaction holds,
// and returns the rows that differ by primary key. Ranges are compared by
// row count and an order-independent checksum of the rows' text; a range
// that differs is split until it is small enough to compare row by row,
// so a few differences in a large table cost little more than the
// checksums.
func VerifyRange(ctx context.Context, src, dst *pgconn.PgConn, ct *CopyTable, lo, hi int64) ([]Difference, error) {
	key, err := primaryKey(ctx, src, ct.Name)
	if err != nil {
		return nil, err
	}
	cols, err := primaryKeyColumns(ctx, src, ct.Name)
	if err != nil {
		return nil, err
	}
	v := &verifier{src: src, dst: dst, ct: ct, key: key, cols: cols}
	return v.compare(ctx, lo, hi)
}

type verifier struct {
	src, dst *pgconn.PgConn
	ct       *CopyTable
	key      string   // SQL for the key's text
	cols     []string // the key's columns
}

func (v *verifier) compare(ctx context.Context, lo, hi int64) ([]Difference, error) {
	const summary = "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0) FROM %s t WHERE %s"
	sql := fmt.Sprintf(summary, quoteName(v.ct.Name), v.ct.rangeFilter(lo, hi))
	a, err := query(ctx, v.src, sql)
	if err != nil {
		return nil, fmt.Errorf("checksum of %s on the source: %w", v.ct.Name, err)
	}
	b, err := query(ctx, v.dst, sql)
	if err != nil {
		return nil, fmt.Errorf("checksum of %s on the target: %w", v.ct.Name, err)
	}
	if slices.Equal(a[0], b[0]) {
		return nil, nil
	}
	count, _ := strconv.ParseInt(a[0][0], 10, 64)
	other, _ := strconv.ParseInt(b[0][0], 10, 64)
	if max(count, other) <= leafRows || lo == hi {
		return v.rows(ctx, lo, hi)
	}
	mid := lo + int64((uint64(hi)-uint64(lo))/2)
	left, err := v.compare(ctx, lo, mid)
	if err != nil {
		return nil, err
	}
	right, err := v.compare(ctx, mid+1, hi)
	if err != nil {
		return nil, err
	}
	return append(left, right...), nil
}

// rows compares a small range row by row.
func (v *verifier) rows(ctx context.Context, lo, hi int64) ([]Difference, error) {
	texts := make([]string, len(v.cols))
	for i, c := range v.cols {
		texts[i] = pgx.Identifier{c}.Sanitize() + "::text"
	}
	sql := fmt.Sprintf("SELECT %s, hashtextextended(t::text, 0), %s FROM %s t WHERE %s", v.key, strings.Join(texts, ", "), quoteName(v.ct.Name), v.ct.rangeFilter(lo, hi))
	values := map[string][]string{}
	read := func(conn *pgconn.PgConn, side string) (map[string]string, error) {
		rows, err := query(ctx, conn, sql)
		if err != nil {
			return nil, fmt.Errorf("rows of %s on the %s: %w", v.ct.Name, side, err)
		}
		out := make(map[string]string, len(rows))
		for _, r := range rows {
			out[r[0]] = r[1]
			values[r[0]] = r[2:]
		}
		return out, nil
	}
	a, err := read(v.src, "source")
	if err != nil {
		return nil, err
	}
	b, err := read(v.dst, "target")
	if err != nil {
		return nil, err
	}
	var diffs []Difference
	for _, k := range slices.Sorted(maps.Keys(a)) {
		switch h, ok := b[k]; {
		case !ok:
			diffs = append(diffs, Difference{Table: v.ct.Name, Key: k, Kind: "missing", values: values[k]})
		case h != a[k]:
			diffs = append(diffs, Difference{Table: v.ct.Name, Key: k, Kind: "different", values: values[k]})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, Difference{Table: v.ct.Name, Key: k, Kind: "extra", values: values[k]})
		}
	}
	return diffs, nil
}

// primaryKey returns SQL for the text of table's primary key:
// its columns' text joined by commas.
func primaryKey(ctx context.Context, conn *pgconn.PgConn, table string) (string, error) {
	names, err := primaryKeyColumns(ctx, conn, table)
	if err != nil {
		return "", err
	}
	cols := make([]string, len(names))
	for i, n := range names {
		cols[i] = pgx.Identifier{n}.Sanitize() + "::text"
	}
	return "concat_ws(',', " + strings.Join(cols, ", ") + ")", nil
}

// primaryKeyColumns names table's primary key columns in key order.
func primaryKeyColumns(ctx context.Context, conn *pgconn.PgConn, table string) ([]string, error) {
	rows, err := query(ctx, conn, `SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`, table)
	if err != nil {
		return nil, fmt.Errorf("primary key of %s: %w", table, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("table %s has no primary key", table)
	}
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = r[0]
	}
	return names, nil
}

// rowHash reads one row of table by its primary key (columns cols, values
// as text) on conn: the hash of its text, "" if it is not there.
func rowHash(ctx context.Context, conn *pgconn.PgConn, table string, cols, values []string) (string, error) {
	hash, _, err := rowState(ctx, conn, table, cols, values)
	return hash, err
}

// rowState is rowHash and the row version's xmin, "" for no row: a row
// changed and changed back has its hash again, not its version.
func rowState(ctx context.Context, conn *pgconn.PgConn, table string, cols, values []string) (hash, version string, err error) {
	conds := make([]string, len(cols))
	for i, c := range cols {
		conds[i] = pgx.Identifier{c}.Sanitize() + " = " + quoteLiteral(values[i])
	}
	rows, err := query(ctx, conn, fmt.Sprintf("SELECT hashtextextended(t::text, 0), t.xmin FROM %s t WHERE %s", quoteName(table), strings.Join(conds, " AND ")))
	if err != nil || len(rows) == 0 {
		return "", "", err
	}
	return rows[0][0], rows[0][0] + "@" + rows[0][1], nil
}
