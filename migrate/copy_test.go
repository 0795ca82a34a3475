package migrate

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

func TestKeyRange(t *testing.T) {
	if lo, hi := KeyRange(64, 0, 63); lo != math.MinInt64 || hi != math.MaxInt64 {
		t.Errorf("KeyRange of every logical shard = %d..%d", lo, hi)
	}
	m := topology.ShardMap{LogicalCount: 64}
	lo, hi := KeyRange(64, 16, 31)
	for _, id := range []int64{lo, hi, lo + 1, hi - 1} {
		if l := m.LogicalShard(id); l < 16 || l > 31 {
			t.Errorf("keyspace id %d of the range is in logical shard %d", id, l)
		}
	}
	if m.LogicalShard(lo-1) != 15 || m.LogicalShard(hi+1) != 32 {
		t.Errorf("the range %d..%d does not end at logical shards 15 and 32", lo, hi)
	}
}

func connect(t *testing.T, c *pgtest.Cluster) *pgconn.PgConn {
	t.Helper()
	conn, err := pgconn.Connect(t.Context(), c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func run(t *testing.T, c *pgconn.PgConn, sql string) [][]string {
	t.Helper()
	res, err := c.Exec(t.Context(), sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var out [][]string
	for _, r := range res[len(res)-1].Rows {
		var row []string
		for _, v := range r {
			row = append(row, string(v))
		}
		out = append(out, row)
	}
	return out
}

// TestCopyRange copies logical shards 16-31 of 64 of tables sharded by
// bigint, text and uuid from one server to another: the target ends with
// exactly the source's rows whose keyspace id the gateway would place
// there, its own rows of the range replaced and others kept, the same
// again when the copy runs twice.
func TestCopyRange(t *testing.T) {
	pg := pgtest.Start(t, 2)
	src, dst := connect(t, pg[0]), connect(t, pg[1])
	const schema = `create table users (id bigint primary key, name text, tens int generated always as (id / 10) stored);
create table tags (name text collate "C" primary key, note text);
create table devices (id uuid primary key, label text);`
	run(t, src, schema)
	run(t, dst, schema)
	run(t, src, `insert into users (id, name) select g, 'u' || g from generate_series(1, 5000) g;
insert into tags select 'tag-' || g, 'n' || g from generate_series(1, 2000) g;
insert into devices select gen_random_uuid(), 'd' || g from generate_series(1, 1000) g;`)

	tables := map[string]*vschema.Table{
		"users":   {Name: "users", Column: "id", Type: vschema.Int},
		"tags":    {Name: "tags", Column: "name", Type: vschema.Text},
		"devices": {Name: "devices", Column: "id", Type: vschema.UUID},
	}
	keys := map[string]string{"users": "id", "tags": "name", "devices": "id"}
	m := topology.ShardMap{LogicalCount: 64}
	moving := func(table, key string) bool {
		id, ok := tables[table].KeyspaceID(key)
		if !ok {
			t.Fatalf("%s key %q does not hash", table, key)
		}
		l := m.LogicalShard(id)
		return l >= 16 && l <= 31
	}
	// The target holds a stale row of the range and a row outside it.
	var inRange, outside int64
	for id := int64(1); inRange == 0; id++ {
		if moving("users", fmt.Sprint(id)) {
			inRange = id
		}
	}
	for id := int64(100001); outside == 0; id++ {
		if !moving("users", fmt.Sprint(id)) {
			outside = id
		}
	}
	run(t, dst, fmt.Sprintf("insert into users (id, name) values (%d, 'stale'), (%d, 'kept')", inRange, outside))

	lo, hi := KeyRange(64, 16, 31)
	copyAll := func() map[string]int64 {
		t.Helper()
		run(t, src, "begin isolation level repeatable read")
		defer run(t, src, "commit")
		counts := map[string]int64{}
		for name, tbl := range tables {
			ct, err := Columns(t.Context(), src, name, tbl)
			if err != nil {
				t.Fatal(err)
			}
			n, err := CopyRange(t.Context(), src, dst, ct, lo, hi)
			if err != nil {
				t.Fatalf("copying %s: %v", name, err)
			}
			counts[name] = n
		}
		return counts
	}
	check := func(counts map[string]int64) {
		t.Helper()
		for name := range tables {
			var want []string
			for _, r := range run(t, src, fmt.Sprintf("select %s::text, row(t.*)::text from %s t order by 1", keys[name], name)) {
				if moving(name, r[0]) {
					want = append(want, r[1])
				}
			}
			if name == "users" {
				want = append(want, fmt.Sprintf("(%d,kept,%d)", outside, outside/10))
			}
			got := run(t, dst, fmt.Sprintf("select row(t.*)::text from %s t order by %s::text", name, keys[name]))
			var gotRows []string
			for _, r := range got {
				gotRows = append(gotRows, r[0])
			}
			slices.Sort(want)
			slices.Sort(gotRows)
			if !slices.Equal(gotRows, want) {
				t.Errorf("%s on the target: %d rows, want %d (first %q, want %q)", name, len(gotRows), len(want), first(gotRows), first(want))
			}
			moved := int64(len(want))
			if name == "users" {
				moved--
			}
			if counts[name] != moved || moved == 0 {
				t.Errorf("%s: CopyRange reported %d rows, %d moved", name, counts[name], moved)
			}
		}
	}
	check(copyAll())
	check(copyAll())
	if got := run(t, dst, fmt.Sprintf("select name from users where id = %d", inRange)); got[0][0] != fmt.Sprintf("u%d", inRange) {
		t.Errorf("the stale row of the range was not replaced: %q", got)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
