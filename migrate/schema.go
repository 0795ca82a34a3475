package migrate

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// CreateTables makes tables on dst as they are on src, in one transaction:
// columns (types, collations, defaults, identity, generated), the sequences
// their defaults draw from (advanced to the source's value, so new ids do
// not collide with copied ones), constraints (foreign keys last, once every
// table exists) and indexes. A table that dst has already with the same
// columns is left as it is, so a workflow that runs this again after a
// crash goes on; one with other columns is an error. Partitioned and
// inherited tables, triggers and row security are refused by name: the
// copy would not be the same table.
func CreateTables(ctx context.Context, src, dst *pgconn.PgConn, tables []string) error {
	var create, later []string
	for _, name := range tables {
		srcCols, err := columnTypes(ctx, src, name)
		if err != nil {
			return err
		}
		if len(srcCols) == 0 {
			return fmt.Errorf("table %s does not exist on the source", name)
		}
		dstCols, err := columnTypes(ctx, dst, name)
		if err != nil {
			return err
		}
		if len(dstCols) > 0 {
			if !slices.Equal(srcCols, dstCols) {
				return fmt.Errorf("table %s exists on the target with other columns (%s) than on the source (%s)", name, strings.Join(dstCols, ", "), strings.Join(srcCols, ", "))
			}
			continue
		}
		now, after, err := tableDDL(ctx, src, name)
		if err != nil {
			return err
		}
		create = append(create, now...)
		later = append(later, after...)
	}
	if len(create) == 0 {
		return nil
	}
	sql := "BEGIN;\n" + strings.Join(append(create, later...), ";\n") + ";\nCOMMIT"
	if _, err := dst.Exec(ctx, sql).ReadAll(); err != nil {
		_ = dst.Exec(context.Background(), "ROLLBACK").Close()
		return fmt.Errorf("creating the tables on the target: %w", err)
	}
	return nil
}

// columnTypes lists "name type" for each column of table, none if it does
// not exist.
func columnTypes(ctx context.Context, conn *pgconn.PgConn, table string) ([]string, error) {
	rows, err := query(ctx, conn, `SELECT quote_ident(attname) || ' ' || format_type(atttypid, atttypmod)
FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, r[0])
	}
	return out, nil
}

// tableDDL returns the statements that make table: now, and after every
// table exists (foreign keys).
func tableDDL(ctx context.Context, src *pgconn.PgConn, table string) (now, after []string, err error) {
	quoted := quoteName(table)
	kind, err := query(ctx, src, `SELECT c.relkind, c.relispartition, c.relrowsecurity,
	EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = c.oid OR inhparent = c.oid),
	EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = c.oid AND NOT tgisinternal),
	c.relpersistence
FROM pg_class c WHERE c.oid = to_regclass($1)`, table)
	if err != nil {
		return nil, nil, fmt.Errorf("table %s: %w", table, err)
	}
	k := kind[0]
	switch {
	case k[0] == "p" || k[1] == "t" || k[3] == "t":
		return nil, nil, fmt.Errorf("table %s is partitioned or inherited, which resharding does not copy yet", table)
	case k[0] != "r":
		return nil, nil, fmt.Errorf("%s is not a table (relkind %s)", table, k[0])
	case k[2] == "t":
		return nil, nil, fmt.Errorf("table %s has row level security, which resharding does not copy yet", table)
	case k[4] == "t":
		return nil, nil, fmt.Errorf("table %s has triggers, which resharding does not copy yet", table)
	}

	// Sequences the columns' defaults use, made first.
	seqs, err := query(ctx, src, `SELECT DISTINCT s.oid::regclass::text,
	format('CREATE SEQUENCE IF NOT EXISTS %s AS %s INCREMENT %s MINVALUE %s MAXVALUE %s START %s CACHE %s%s',
		s.oid::regclass, format_type(q.seqtypid, NULL), q.seqincrement, q.seqmin, q.seqmax, q.seqstart, q.seqcache,
		CASE WHEN q.seqcycle THEN ' CYCLE' ELSE '' END),
	coalesce(ps.last_value::text, '')
FROM pg_depend d
JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
JOIN pg_class s ON d.refclassid = 'pg_class'::regclass AND d.refobjid = s.oid AND s.relkind = 'S'
JOIN pg_namespace n ON n.oid = s.relnamespace
JOIN pg_sequence q ON q.seqrelid = s.oid
LEFT JOIN pg_sequences ps ON ps.schemaname = n.nspname AND ps.sequencename = s.relname
WHERE ad.adrelid = to_regclass($1)`, table)
	if err != nil {
		return nil, nil, fmt.Errorf("sequences of %s: %w", table, err)
	}
	var setvals []string
	for _, s := range seqs {
		now = append(now, s[1])
		if s[2] != "" {
			setvals = append(setvals, fmt.Sprintf("SELECT setval(%s, %s)", quoteLiteral(s[0]), s[2]))
		}
	}
	// Identity columns' own sequences go on from the source's value too.
	ids, err := query(ctx, src, `SELECT a.attname, ps.last_value::text
FROM pg_attribute a
JOIN pg_class s ON s.oid = pg_get_serial_sequence($1, a.attname)::regclass
JOIN pg_namespace n ON n.oid = s.relnamespace
JOIN pg_sequences ps ON ps.schemaname = n.nspname AND ps.sequencename = s.relname
WHERE a.attrelid = to_regclass($1) AND a.attidentity <> '' AND ps.last_value IS NOT NULL`, table)
	if err != nil {
		return nil, nil, fmt.Errorf("identity columns of %s: %w", table, err)
	}
	for _, r := range ids {
		setvals = append(setvals, fmt.Sprintf("SELECT setval(pg_get_serial_sequence(%s, %s), %s)", quoteLiteral(quoted), quoteLiteral(r[0]), r[1]))
	}

	cols, err := query(ctx, src, `SELECT quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
	CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN a.attcollation::regcollation::text ELSE '' END,
	a.attnotnull, coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity, a.attgenerated
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, table)
	if err != nil {
		return nil, nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	var defs []string
	for _, c := range cols {
		def := c[0] + " " + c[1]
		if c[2] != "" {
			def += " COLLATE " + c[2]
		}
		switch {
		case c[6] == "s":
			def += " GENERATED ALWAYS AS (" + c[4] + ") STORED"
		case c[5] == "a":
			def += " GENERATED ALWAYS AS IDENTITY"
		case c[5] == "d":
			def += " GENERATED BY DEFAULT AS IDENTITY"
		case c[4] != "":
			def += " DEFAULT " + c[4]
		}
		if c[3] == "t" {
			def += " NOT NULL"
		}
		defs = append(defs, def)
	}
	create := "CREATE TABLE " + quoted + " (\n  " + strings.Join(defs, ",\n  ") + "\n)"
	if k[5] == "u" {
		create = "CREATE UNLOGGED TABLE" + strings.TrimPrefix(create, "CREATE TABLE")
	}
	now = append(now, create)

	cons, err := query(ctx, src, `SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', $2::text, conname, pg_get_constraintdef(oid)), contype
FROM pg_constraint WHERE conrelid = to_regclass($1) ORDER BY conname`, table, quoted)
	if err != nil {
		return nil, nil, fmt.Errorf("constraints of %s: %w", table, err)
	}
	for _, c := range cons {
		if c[1] == "f" {
			after = append(after, c[0])
		} else {
			now = append(now, c[0])
		}
	}
	idx, err := query(ctx, src, `SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
WHERE i.indrelid = to_regclass($1) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
ORDER BY i.indexrelid::regclass::text`, table)
	if err != nil {
		return nil, nil, fmt.Errorf("indexes of %s: %w", table, err)
	}
	for _, r := range idx {
		now = append(now, r[0])
	}
	// Sequences owned by a column (serial) stay owned by it.
	owned, err := query(ctx, src, `SELECT format('ALTER SEQUENCE %s OWNED BY %s.%I', s.oid::regclass, $2::text, a.attname)
FROM pg_depend d JOIN pg_class s ON d.classid = 'pg_class'::regclass AND d.objid = s.oid AND s.relkind = 'S'
JOIN pg_attribute a ON d.refobjid = a.attrelid AND d.refobjsubid = a.attnum
WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = to_regclass($1) AND d.deptype = 'a'`, table, quoted)
	if err != nil {
		return nil, nil, fmt.Errorf("sequences of %s: %w", table, err)
	}
	for _, r := range owned {
		now = append(now, r[0])
	}
	return append(now, setvals...), after, nil
}

// query runs sql with text parameters and returns the rows as text.
func query(ctx context.Context, conn *pgconn.PgConn, sql string, args ...string) ([][]string, error) {
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	rr := conn.ExecParams(ctx, sql, params, nil, nil, nil).Read()
	if rr.Err != nil {
		return nil, rr.Err
	}
	out := make([][]string, len(rr.Rows))
	for i, r := range rr.Rows {
		out[i] = make([]string, len(r))
		for j, v := range r {
			out[i][j] = string(v)
		}
	}
	return out, nil
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
