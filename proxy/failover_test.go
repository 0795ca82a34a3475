package proxy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// keysByShard inserts users 1..40 through the gateway and returns one id
// that lives on each shard, read from the shards themselves.
func keysByShard(t *testing.T, g *testGateway, c *pgconn.PgConn) [2]string {
	t.Helper()
	var values []string
	for i := 1; i <= 40; i++ {
		values = append(values, fmt.Sprintf("(%d, 'u%d')", i, i))
	}
	exec(t, c, "insert into users (id, name) values "+strings.Join(values, ", "))
	var keys [2]string
	for i, sh := range g.shards {
		direct, err := pgconn.Connect(context.Background(), sh.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		rows := exec(t, direct, "select min(id) from users")[0].Rows
		direct.Close(context.Background())
		if len(rows) != 1 || rows[0][0] == nil {
			t.Fatalf("shard s%d holds no user", i)
		}
		keys[i] = string(rows[0][0])
	}
	return keys
}

// TestFirstShardDown stops the keyspace's first shard: logins, table-less
// statements and keys of the other shard go on working, keys of the stopped
// shard fail with 08006, and everything works again once it is back.
func TestFirstShardDown(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	before := g.connect(t, "app", "")
	keys := keysByShard(t, g, before)
	// Leave idle connections to s0 in the pool, to be found dead later.
	exec(t, before, "select name from users where id = "+keys[0])

	if err := g.shards[0].Halt(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.shards[0].Resume(context.Background()) })

	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c, err := pgconn.Connect(ctx, g.dsn("app", ""))
		cancel()
		if err != nil {
			t.Fatalf("login %d with shard s0 down: %v", i, err)
		}
		if got := exec(t, c, "select 1")[0].Rows[0][0]; string(got) != "1" {
			t.Fatalf("select 1: %q", got)
		}
		if got := exec(t, c, "select name from users where id = "+keys[1])[0].Rows; len(got) != 1 {
			t.Fatalf("key %s on the healthy shard: %q", keys[1], got)
		}
		// psql's \d and drivers' type loading read the catalog.
		exec(t, c, "select count(*) from pg_catalog.pg_class")
		c.Close(context.Background())
	}
	// The health check says which shard is down, still counts the gateway
	// ready, and warns that the test shards' role is a superuser.
	st := g.srv.pools.Check(t.Context(), g.snap)
	byName := map[string]ShardStatus{}
	for _, s := range st {
		byName[s.Name] = s
	}
	if s0, s1 := byName["s0"], byName["s1"]; s0.Up || s0.Error == "" || !s1.Up || len(s1.SuperuserRoles) != 1 || s1.SuperuserRoles[0] != "postgres" {
		t.Errorf("health check with s0 down: %+v", st)
	}
	ready, report := readiness(st)
	if !ready || !strings.Contains(report, "shard s0: down") || !strings.Contains(report, `warning: shard s1: the gateway logs in as role "postgres", a superuser`) {
		t.Errorf("readiness %v:\n%s", ready, report)
	}
	if ready, _ := readiness([]ShardStatus{{Name: "s0", Error: "down"}}); ready {
		t.Error("a gateway with no shard up is ready")
	}

	// The session opened before the shard went down goes on too.
	exec(t, before, "select 1")
	exec(t, before, "select name from users where id = "+keys[1])

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := before.Exec(ctx, "select name from users where id = "+keys[0]).ReadAll()
	if code(err) != "08006" {
		t.Fatalf("key %s on the stopped shard: %v, want 08006", keys[0], err)
	}
	if !strings.Contains(err.Error(), "s0") {
		t.Errorf("the error does not name the shard: %v", err)
	}
	exec(t, before, "select 1") // the session survives the error

	if err := g.shards[0].Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := before.Exec(context.Background(), "select name from users where id = "+keys[0]).ReadAll()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shard s0 is back but its key still fails: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling a recovery, not waiting for one
	}
	c := g.connect(t, "app", "")
	exec(t, c, "select name from users where id = "+keys[0])
}
