package proxy

import (
	"context"
	"testing"
)

// TestStaleStatementDescription: a prepared statement whose table gains a
// column fails as on Postgres ("cached plan must not change result type"),
// whether its backend connection had it prepared already or prepares it
// afresh, and never returns rows under the columns the client was told of
// before the change. Prepared again, it returns the new columns.
func TestStaleStatementDescription(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := context.Background()
	c := g.connect(t, "app", "")
	keys := keysByShard(t, g, c)
	sd, err := c.Prepare(ctx, "byid", "select * from users where id = $1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.Fields) != 2 {
		t.Fatalf("described %d columns, want 2", len(sd.Fields))
	}
	// The key on s0 prepares the statement on an s0 connection; s1's
	// connections have never seen it.
	if res := c.ExecPrepared(ctx, "byid", [][]byte{[]byte(keys[0])}, nil, nil).Read(); res.Err != nil || len(res.Rows) != 1 {
		t.Fatalf("before the change: %v %v", res.Rows, res.Err)
	}
	other := g.connect(t, "app", "")
	exec(t, other, "alter table users add column extra int")

	for i, key := range keys {
		res := c.ExecPrepared(ctx, "byid", [][]byte{[]byte(key)}, nil, nil).Read()
		if code(res.Err) != "0A000" || len(res.Rows) != 0 {
			t.Errorf("key on s%d after the table changed: %d rows of %d values, error %v; want 0A000 and no rows",
				i, len(res.Rows), len(firstRow(res.Rows)), res.Err)
		}
	}
	if _, err := c.Prepare(ctx, "byid2", "select * from users where id = $1", nil); err != nil {
		t.Fatal(err)
	}
	for _, key := range keys {
		res := c.ExecPrepared(ctx, "byid2", [][]byte{[]byte(key)}, nil, nil).Read()
		if res.Err != nil || len(res.Rows) != 1 || len(res.Rows[0]) != 3 {
			t.Errorf("prepared again: %v %v", res.Rows, res.Err)
		}
	}
}

func firstRow(rows [][][]byte) [][]byte {
	if len(rows) == 0 {
		return nil
	}
	return rows[0]
}

// TestAlterAfterQueryInTransaction: a query run to its end in a
// transaction holds no table there, as on Postgres, so the transaction can
// alter the table next.
func TestAlterAfterQueryInTransaction(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := context.Background()
	for _, ks := range []string{"solo", "solotx"} {
		t.Run(ks, func(t *testing.T) {
			c := g.connect(t, ks, "")
			exec(t, c, "drop table if exists drop_cols_"+ks)
			exec(t, c, "create table drop_cols_"+ks+" (id int primary key, f1 int, f2 int)")
			exec(t, c, "begin")
			if res := c.ExecParams(ctx, "select * from drop_cols_"+ks+" where id = $1", [][]byte{[]byte("1")}, nil, nil, nil).Read(); res.Err != nil {
				t.Fatal(res.Err)
			}
			exec(t, c, "alter table drop_cols_"+ks+" drop column f1")
			exec(t, c, "rollback")
		})
	}
}

// TestStalePlanOfAnotherSession: under transaction pooling a statement a
// session prepares may already be prepared on the pooled connection, by an
// earlier session, from before its table changed; the new session's Parse
// gets a fresh plan there, as it would on Postgres, also inside a
// transaction, where the shard's "cached plan must not change result type"
// could not be retried.
func TestStalePlanOfAnotherSession(t *testing.T) {
	pool := DefaultPoolConfig
	pool.MaxConns = 1 // every session meets the same connection
	g := startGateway(t, pool)
	ctx := context.Background()
	first := g.connect(t, "solotx", "")
	exec(t, first, "drop table if exists shifting")
	exec(t, first, "create table shifting (id int primary key, f1 int, f2 int)")
	exec(t, first, "insert into shifting values (1, 2, 3)")
	const query = "select * from shifting where id = $1"
	if res := first.ExecParams(ctx, query, [][]byte{[]byte("1")}, nil, nil, nil).Read(); res.Err != nil {
		t.Fatal(res.Err)
	}
	exec(t, first, "alter table shifting drop column f1")
	first.Close(ctx)

	second := g.connect(t, "solotx", "")
	exec(t, second, "begin")
	sd, err := second.Prepare(ctx, "", query, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := second.ExecPrepared(ctx, "", [][]byte{[]byte("1")}, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("a fresh Parse inside a transaction: %v", res.Err)
	}
	if len(sd.Fields) != 2 || len(res.Rows) != 1 || len(res.Rows[0]) != 2 {
		t.Fatalf("described %d columns, got rows %q", len(sd.Fields), res.Rows)
	}
	exec(t, second, "commit")
}
