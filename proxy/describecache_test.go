package proxy

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/topology"
)

// TestDescribeCache: a statement the client parses again (unnamed, as most
// drivers send their queries) is described on a shard once, and a schema
// change is seen at once when it goes through the gateway (also inside the
// transaction that makes it, and undone by its rollback), and on the next
// try when it was made on the shards directly.
func TestDescribeCache(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	var snap atomic.Pointer[topology.Snapshot]
	snap.Store(g.snap)
	g.srv.topo = snap.Load // before this test's sessions, as the watcher would
	ctx := t.Context()
	c := g.connect(t, "app", "")
	exec(t, c, "insert into users (id, name) values (1, 'one')")
	hits := func() float64 {
		v, _ := metricValue(t, g.reg, "shardgate_describe_cache_lookups_total", map[string]string{"result": "hit"})
		return v
	}
	// columns runs sql in the extended protocol (Parse of the unnamed
	// statement, Bind, Describe, Execute, Sync) and returns its column
	// names and the first row.
	columns := func(c *pgconn.PgConn, sql string) (string, string, error) {
		r := c.ExecParams(ctx, sql, [][]byte{[]byte("1")}, nil, nil, nil).Read()
		if r.Err != nil {
			return "", "", r.Err
		}
		var names, row []string
		for _, f := range r.FieldDescriptions {
			names = append(names, f.Name)
		}
		for _, v := range r.Rows[0] {
			row = append(row, string(v))
		}
		return strings.Join(names, ","), strings.Join(row, ","), nil
	}
	want := func(c *pgconn.PgConn, sql, names, row string) {
		t.Helper()
		gotNames, gotRow, err := columns(c, sql)
		if err != nil || gotNames != names || gotRow != row {
			t.Fatalf("%s: columns %q, row %q, %v; want %q, %q", sql, gotNames, gotRow, err, names, row)
		}
	}

	const star = "select * from users where id = $1"
	before := hits()
	for range 5 {
		want(c, star, "id,name", "1,one")
	}
	if got := hits() - before; got < 4 {
		t.Errorf("%v describe cache hits for 5 Parses of one statement", got)
	}

	exec(t, c, "alter table users add column extra int default 7")
	want(c, star, "id,name,extra", "1,one,7")

	exec(t, c, "begin")
	exec(t, c, "alter table users add column inner_col int default 8")
	want(c, star, "id,name,extra,inner_col", "1,one,7,8")
	exec(t, c, "rollback")
	want(c, star, "id,name,extra", "1,one,7")
	other := g.connect(t, "app", "")
	want(other, star, "id,name,extra", "1,one,7")

	// Behind the gateway's back: the first try may fail as a prepared
	// statement does in Postgres, the next one sees the change.
	for _, sh := range g.shards {
		direct, err := pgconn.Connect(ctx, sh.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		exec(t, direct, "alter table users add column direct text default 'd'")
		direct.Close(ctx)
	}
	if names, _, err := columns(c, star); err == nil && names != "id,name,extra,direct" || err != nil && code(err) != "0A000" {
		t.Fatalf("first try after a change on the shards: %q, %v", names, err)
	}
	want(c, star, "id,name,extra,direct", "1,one,7,d")

	// Through another gateway, which records the change in etcd: this one
	// sees it with its next topology snapshot, at the first try.
	for _, sh := range g.shards {
		direct, err := pgconn.Connect(ctx, sh.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		exec(t, direct, "alter table users add column elsewhere int default 9")
		direct.Close(ctx)
	}
	if err := g.store.MarkSchemaChanged(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	next, err := g.store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap.Store(next)
	want(c, star, "id,name,extra,direct,elsewhere", "1,one,7,d,9")
}
