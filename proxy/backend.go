package proxy

import (
	"context"
	"maps"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardgate/shardgate/planner"
)

// connState is what the gateway changed on one physical backend connection.
// It outlives each borrowing, so the next session finds the connection as
// the last one left it.
type connState struct {
	// settings maps a parameter name to the statement that set it.
	settings map[string]string
	// unknown is set when the settings are not known (a transaction that
	// changed some ended): the next sync starts with RESET ALL.
	unknown bool
}

// forget marks the connection's settings as unknown.
func (c *connState) forget() {
	c.unknown = true
	c.settings = nil
}

// backend is a backend connection borrowed from a shard's pool.
type backend struct {
	shard string
	conn  *pgxpool.Conn
	pg    *pgconn.PgConn
	state *connState
}

// exec runs sql (one or more statements, simple protocol) and streams its
// results to emit and done; see forward.
func (b *backend) exec(ctx context.Context, sql string, emit func(*planner.Batch) error, done func(planner.Tag) error) error {
	return forward(ctx, b.pg, sql, emit, done)
}

// run runs sql and discards its results.
func (b *backend) run(ctx context.Context, sql string) error {
	return forward(ctx, b.pg, sql, discardRows, discardTag)
}

func discardRows(*planner.Batch) error { return nil }
func discardTag(planner.Tag) error     { return nil }

// release returns the connection to its pool. A connection left inside a
// transaction or broken is closed by the pool instead of being reused.
func (b *backend) release() {
	b.conn.Release()
}

// syncSettings makes the connection's settings equal want (parameter name to
// the statement that sets it): statements for what differs, RESET for what
// the connection has and want lacks, all in one round trip. Connections
// usually already match, and then it costs nothing.
func (b *backend) syncSettings(ctx context.Context, want map[string]string) error {
	var stmts []string
	if b.state.unknown {
		stmts = append(stmts, "RESET ALL")
		b.state.settings = nil
	}
	for _, name := range sortedNames(want) {
		if b.state.settings[name] != want[name] {
			stmts = append(stmts, want[name])
		}
	}
	for _, name := range sortedNames(b.state.settings) {
		if _, ok := want[name]; !ok {
			stmts = append(stmts, "RESET "+quoteIdent(name))
		}
	}
	if len(stmts) == 0 {
		return nil
	}
	if err := b.run(ctx, strings.Join(stmts, "; ")); err != nil {
		return err
	}
	b.state.settings = maps.Clone(want)
	b.state.unknown = false
	return nil
}

func sortedNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// quoteIdent quotes a parameter name for RESET.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// quoteLiteral quotes a value as an SQL string literal.
func quoteLiteral(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// forward runs sql (one or more statements) on pg and streams each result:
// emit gets the fields and rows, done gets the command tag at the end of each
// statement. If emit or done fails (the client went away), the backend
// connection is closed rather than drained, so a large result costs nothing
// more.
func forward(ctx context.Context, pg *pgconn.PgConn, sql string, emit func(*planner.Batch) error, done func(planner.Tag) error) error {
	mrr := pg.Exec(ctx, sql)
	var (
		batch planner.Batch
		row   [1][][]byte
	)
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		if fds := rr.FieldDescriptions(); fds != nil {
			if err := emit(&planner.Batch{Fields: convertFields(fds)}); err != nil {
				pg.Close(context.Background())
				return err
			}
		}
		for rr.NextRow() {
			row[0] = rr.Values()
			batch.Rows = row[:]
			if err := emit(&batch); err != nil {
				pg.Close(context.Background())
				return err
			}
		}
		tag, err := rr.Close()
		if err != nil {
			mrr.Close()
			return err
		}
		if err := done(planner.Tag(tag.String())); err != nil {
			pg.Close(context.Background())
			return err
		}
	}
	return mrr.Close()
}

func convertFields(fds []pgconn.FieldDescription) []planner.Field {
	out := make([]planner.Field, len(fds))
	for i, f := range fds {
		out[i] = planner.Field{
			Name:                 f.Name,
			TableOID:             f.TableOID,
			TableAttributeNumber: f.TableAttributeNumber,
			DataTypeOID:          f.DataTypeOID,
			DataTypeSize:         f.DataTypeSize,
			TypeModifier:         f.TypeModifier,
			Format:               f.Format,
		}
	}
	return out
}
