package proxy

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/vschema"
)

// TestPlanCacheRoutesEachLiteral: statements that differ only in their
// literals are planned once and still go where each one's own key lives:
// every row lands on the shard the map names for it, and reads and writes
// by key find it there.
func TestPlanCacheRoutesEachLiteral(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := t.Context()
	c := g.connect(t, "app", "")
	ks := g.snap.Keyspace("app")
	hit := func() float64 {
		v, _ := metricValue(t, g.reg, "shardgate_plan_cache_lookups_total", map[string]string{"result": "hit"})
		return v
	}
	before := hit()
	const n = 40
	for id := 1; id <= n; id++ {
		exec(t, c, fmt.Sprintf("insert into users (id, name) values (%d, 'user %d')", id, id))
		exec(t, c, fmt.Sprintf("update users set name = name || '!' where id = %d", id))
	}
	for id := 1; id <= n; id++ {
		if got := one(t, c, fmt.Sprintf("select name from users where id = '%d'", id)); got != fmt.Sprintf("user %d!", id) {
			t.Fatalf("row %d reads %q", id, got)
		}
	}
	if got := hit() - before; got < 3*(n-1) {
		t.Errorf("%v plan cache hits for %d statements of 3 shapes", got, 3*n)
	}
	seen := 0
	for i, sh := range g.shards {
		direct, err := pgconn.Connect(ctx, sh.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range rows(t, direct, "select id from users") {
			var k int64
			fmt.Sscan(id, &k)
			if got := ks.ShardFor(vschema.HashInt64(k)); got != fmt.Sprintf("s%d", i) {
				t.Errorf("row %d is on s%d, the map says %s", k, i, got)
			}
			seen++
		}
		direct.Close(ctx)
	}
	if seen != n {
		t.Errorf("%d rows on the shards, want %d", seen, n)
	}
	// A key the cached shape cannot route (not an integer) is planned anew
	// and gets Postgres's answer.
	if _, err := c.Exec(ctx, "select name from users where id = '7.5'").ReadAll(); code(err) != "22P02" {
		t.Errorf("id = '7.5': %v, want 22P02", err)
	}
}
