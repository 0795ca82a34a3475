package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// store returns a topology store on the env's etcd.
func (e *env) store() *topology.Store {
	e.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cli.Close() })
	return topology.NewStore(cli, "local")
}

// loadTopology reads the cluster's topology straight from etcd.
func (e *env) loadTopology() *topology.Snapshot {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snap, err := e.store().Load(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return snap
}

// TestPsqlEndToEnd drives the gateway with psql as a user would: DDL reaches
// every shard, 1,000 users and their orders go in, and come back by id, by IN
// list and all together; then each backend is checked directly to hold
// exactly the rows the shard map assigns it, by Postgres's own hash.
func TestPsqlEndToEnd(t *testing.T) {
	e := newEnv(t)
	dsn := e.gw.dsn("app")

	if out, errOut, code := psql(t, dsn, "-v", "ON_ERROR_STOP=1", "-f", repoPath("testdata/sql/app_schema.sql")); code != 0 {
		t.Fatalf("schema: exit %d\n%s%s", code, out, errOut)
	}
	for i := range e.shards {
		got := mustQuery(t, e.backend(i), "select string_agg(tablename, ',' order by tablename) from pg_tables where schemaname = 'public'")
		if got[0][0] != "countries,orders,users" {
			t.Fatalf("shard s%d has tables %q", i, got[0][0])
		}
	}

	// 1,000 users and two orders each, in multi-row INSERTs that the
	// gateway splits by shard.
	var script strings.Builder
	for first := 1; first <= 1000; first += 100 {
		var users, orders []string
		for id := first; id < first+100; id++ {
			users = append(users, fmt.Sprintf("(%d, 'user %d', 'u%d@example.com', '%s')", id, id, id, []string{"de", "fr", "jp", "us"}[id%4]))
			orders = append(orders, fmt.Sprintf("(%d, 1, %d.50)", id, id), fmt.Sprintf("(%d, 2, %d.25)", id, id))
		}
		fmt.Fprintf(&script, "INSERT INTO users (id, name, email, country) VALUES %s;\n", strings.Join(users, ", "))
		fmt.Fprintf(&script, "INSERT INTO orders (user_id, id, amount) VALUES %s;\n", strings.Join(orders, ", "))
	}
	file := filepath.Join(t.TempDir(), "data.sql")
	if err := os.WriteFile(file, []byte(script.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := psql(t, dsn, "-v", "ON_ERROR_STOP=1", "-f", file)
	if code != 0 || strings.Count(out, "INSERT 0 100\n") != 10 || strings.Count(out, "INSERT 0 200\n") != 10 {
		t.Fatalf("inserts: exit %d\n%s%s", code, out, errOut)
	}

	out, _, code = psql(t, dsn, "-c", "select id, name, country from users where id = 123")
	if code != 0 || out != "123|user 123|us\n" {
		t.Fatalf("by id: %q", out)
	}
	out, _, _ = psql(t, dsn, "-c", "select id from users where id in (1, 500, 999, 5000)")
	if got := sortedLines(out); !slices.Equal(got, []string{"1", "500", "999"}) {
		t.Fatalf("by IN list: %q", got)
	}
	out, _, _ = psql(t, dsn, "-c", "select id from users")
	if got := sortedLines(out); len(got) != 1000 || !allIDs(got, 1000) {
		t.Fatalf("all users: %d rows", len(got))
	}
	out, _, _ = psql(t, dsn, "-c", "select u.name, o.id, o.amount from users u join orders o on o.user_id = u.id where u.id = 77")
	if got := sortedLines(out); !slices.Equal(got, []string{"user 77|1|77.50", "user 77|2|77.25"}) {
		t.Fatalf("co-located join: %q", got)
	}
	out, _, _ = psql(t, dsn, "-c", "select user_id, count(*) from orders group by user_id")
	if got := sortedLines(out); len(got) != 1000 || !strings.HasSuffix(got[0], "|2") {
		t.Fatalf("group by sharding column: %d rows, first %q", len(got), got[0])
	}
	out, _, _ = psql(t, dsn, "-c", "select c.name from users u join countries c on c.code = u.country where u.id = 2")
	if out != "Japan\n" {
		t.Fatalf("reference join: %q", out)
	}

	// Every row sits on the shard the map assigns, by Postgres's own hash.
	snap := e.loadTopology()
	ks := snap.Keyspace("app")
	for _, table := range []struct{ name, col string }{{"users", "id"}, {"orders", "user_id"}} {
		seen := map[string]int{}
		for i := range e.shards {
			shard := fmt.Sprintf("s%d", i)
			rows := mustQuery(t, e.backend(i), fmt.Sprintf("select %s, hashint8extended(%s, 0) from %s", table.col, table.col, table.name))
			if len(rows) == 0 {
				t.Fatalf("%s: shard %s holds no rows; data is not spread", table.name, shard)
			}
			for _, r := range rows {
				key, _ := strconv.ParseInt(r[0], 10, 64)
				h, _ := strconv.ParseInt(r[1], 10, 64)
				if vschema.HashInt64(key) != h {
					t.Fatalf("%s %d: Go hash %d, Postgres %d", table.name, key, vschema.HashInt64(key), h)
				}
				if want := ks.ShardFor(h); want != shard {
					t.Fatalf("%s row with %s=%d is on %s, the map says %s", table.name, table.col, key, shard, want)
				}
				seen[r[0]]++
			}
		}
		perKey := map[string]int{"users": 1, "orders": 2}[table.name]
		if len(seen) != 1000 {
			t.Fatalf("%s: %d distinct keys across shards, want 1000", table.name, len(seen))
		}
		for k, n := range seen {
			if n != perKey {
				t.Fatalf("%s: key %s has %d rows across shards, want %d", table.name, k, n, perKey)
			}
		}
	}
	// The reference table is whole on every shard.
	for i := range e.shards {
		if got := mustQuery(t, e.backend(i), "select count(*) from countries"); got[0][0] != "4" {
			t.Fatalf("shard s%d has %s countries", i, got[0][0])
		}
	}
}

// TestPlacementChangeReachesRunningGateway moves one logical shard with
// shardctl and watches a running gateway route by the new map; then etcd is
// stopped and the gateway keeps serving from its last snapshot.
func TestPlacementChangeReachesRunningGateway(t *testing.T) {
	e := newEnv(t)
	c := e.gw.connect("app")
	mustQuery(t, c, "create table users (id bigint primary key, name text, email text, country text)")
	mustQuery(t, c, "insert into users (id, name) values (42, 'original')")

	ks := e.loadTopology().Keyspace("app")
	logical := ks.Map.LogicalShard(vschema.HashInt64(42))
	from := ks.Map.Placement[logical]
	to, toIdx := "s1", 1
	if from == "s1" {
		to, toIdx = "s0", 0
	}
	// Put a different copy of the row on the other shard directly, so the
	// answer tells which shard the gateway asked.
	mustQuery(t, e.backend(toIdx), "insert into users (id, name) values (42, 'moved')")

	if got := mustQuery(t, c, "select name from users where id = 42"); got[0][0] != "original" {
		t.Fatalf("before the move: %q", got)
	}
	out, _ := e.shardctl(0, "topology", "move", "app", "--logical", strconv.Itoa(logical), "--to", to)
	if !strings.Contains(out, "2") {
		t.Fatalf("move printed %q, want the new version 2", out)
	}
	if v := e.loadTopology().Keyspace("app").Map; v.Version != 2 || v.Placement[logical] != to {
		t.Fatalf("stored map: version %d, logical %d on %s", v.Version, logical, v.Placement[logical])
	}
	eventually(t, 10*time.Second, "the gateway to route by the new map", func() bool {
		got := mustQuery(t, c, "select name from users where id = 42")
		return len(got) == 1 && got[0][0] == "moved"
	})

	// etcd goes away: the running gateway keeps its snapshot, for open
	// sessions and new ones.
	e.etcd.Close()
	for range 3 {
		if got := mustQuery(t, c, "select name from users where id = 42"); got[0][0] != "moved" {
			t.Fatalf("with etcd down: %q", got)
		}
	}
	c2 := e.gw.connect("app")
	if got := mustQuery(t, c2, "select count(*) from users where id in (42)"); got[0][0] != "1" {
		t.Fatalf("new session with etcd down: %q", got)
	}
	if got := mustQuery(t, c2, "select id from users"); len(got) != 2 {
		t.Fatalf("scatter with etcd down: %q", got)
	}
}

// TestBadInputIsRefusedClearly sends what a careless user would and checks
// each gets a clear error while the session and the gateway carry on.
func TestBadInputIsRefusedClearly(t *testing.T) {
	e := newEnv(t)
	c := e.gw.connect("app")
	mustQuery(t, c, "create table users (id bigint primary key, name text, email text, country text)")
	mustQuery(t, c, "insert into users (id, name) values (1, 'a'), (2, 'b'), (3, 'c')")

	cases := []struct{ sql, code, contains string }{
		{"selec 1", "42601", `syntax error at or near "selec"`},
		{"select * from users order by id limit 2 for update", "0A000", "FOR UPDATE"},
		{"select sum(id::float8) from users", "0A000", "only sums of integers and numerics"},
		{"select * from nosuch", "42P01", `relation "nosuch" does not exist`},
		{"update users set id = 9 where id = 1", "0A000", "sharding column"},
		{"insert into users (id, name) values (1, 'dup')", "23505", "duplicate key"},
		{"select 1/0", "22012", "division by zero"},
		{"select * from users where id = 'x'", "22P02", "invalid input syntax"},
		{"savepoint s", "25P01", "can only be used in transaction blocks"},
		{"prepare transaction 'x'", "0A000", "two-phase commit"},
	}
	for _, tc := range cases {
		_, err := query(c, tc.sql)
		if pgCode(err) != tc.code || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("%s: got %v, want %s containing %q", tc.sql, err, tc.code, tc.contains)
		}
		// The session is still usable.
		if got := mustQuery(t, c, "select name from users where id = 2"); got[0][0] != "b" {
			t.Fatalf("after %q: %q", tc.sql, got)
		}
	}

	// psql sees the error text and SQLSTATE and carries on with the next
	// command of the same session.
	out, errOut, code := psql(t, e.gw.dsn("app"), "-v", "VERBOSITY=verbose", "-c", "select sum(id::float8) from users", "-c", "select name from users where id = 3")
	if code != 0 || out != "c\n" || !strings.Contains(errOut, "0A000") || !strings.Contains(errOut, "only sums of integers") {
		t.Fatalf("psql: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// An unknown keyspace fails the connection with 3D000.
	_, _, code = psql(t, e.gw.dsn("nosuch"), "-c", "select 1")
	if code == 0 {
		t.Fatal("connected to an unknown keyspace")
	}
	_, errOut, _ = psql(t, e.gw.dsn("nosuch"), "-v", "VERBOSITY=verbose", "-c", "select 1")
	if !strings.Contains(errOut, `database "nosuch" does not exist`) {
		t.Fatalf("unknown keyspace: %q", errOut)
	}
	if _, err := pgconnConnect(e.gw.dsn("nosuch")); pgCode(err) != "3D000" {
		t.Fatalf("unknown keyspace: %v", err)
	}

	// A malformed vschema is refused by shardctl in one line and changes
	// nothing; the gateway keeps serving.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("keyspaces:\n  app:\n    sharded: true\n    tables:\n      users: {column: id, type: bigint, vindex: md5}\n"), 0o644)
	_, errOut = e.shardctl(1, "vschema", "apply", bad)
	if strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, `unknown vindex "md5"`) {
		t.Fatalf("shardctl: %q", errOut)
	}
	if got := mustQuery(t, c, "select name from users where id = 1"); got[0][0] != "a" {
		t.Fatalf("after a bad vschema: %q", got)
	}

	// A bad gateway config is one clear line and a non-zero exit.
	cfg := filepath.Join(t.TempDir(), "gw.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\nlisten_adminn: x\n"), 0o644)
	outb, err := execOutput(filepath.Join(binDir, "shardgate"), "--config", cfg)
	if err == nil || !strings.Contains(outb, `unknown setting "listen_adminn"`) {
		t.Fatalf("bad config: %v %q", err, outb)
	}
}

// TestSigtermDrains checks that SIGTERM lets a running statement finish,
// then ends the session and exits cleanly.
func TestSigtermDrains(t *testing.T) {
	e := newEnv(t)
	c := e.gw.connect("app")
	idle := e.gw.connect("app")
	mustQuery(t, idle, "select 1")
	done := make(chan error, 1)
	go func() {
		// Long enough to be seen running on a loaded machine.
		rows, err := query(c, "select 'slept' from pg_sleep(3)")
		if err == nil && (len(rows) != 1 || rows[0][0] != "slept") {
			err = fmt.Errorf("rows %q", rows)
		}
		done <- err
	}()
	b := e.backend(0)
	b1 := e.backend(1)
	eventually(t, 10*time.Second, "pg_sleep to run on a shard", func() bool {
		q := "select count(*) from pg_stat_activity where query like '%pg_sleep(3)%' and state = 'active' and pid <> pg_backend_pid()"
		return mustQuery(t, b, q)[0][0] == "1" || mustQuery(t, b1, q)[0][0] == "1"
	})
	if err := e.gw.stop(); err != nil {
		t.Fatalf("shardgate exit: %v\n%s", err, e.gw.log.String())
	}
	if err := <-done; err != nil {
		t.Fatalf("in-flight statement during drain: %v", err)
	}
	if _, err := query(idle, "select 1"); err == nil {
		t.Fatal("an idle session survived shutdown")
	}
	if _, err := pgconnConnect(e.gw.dsn("app")); err == nil {
		t.Fatal("connected after shutdown")
	}
}

func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	slices.Sort(lines)
	return lines
}

func allIDs(sorted []string, n int) bool {
	ids := make([]int, 0, len(sorted))
	for _, s := range sorted {
		v, err := strconv.Atoi(s)
		if err != nil {
			return false
		}
		ids = append(ids, v)
	}
	slices.Sort(ids)
	for i, v := range ids {
		if v != i+1 {
			return false
		}
	}
	return len(ids) == n
}
