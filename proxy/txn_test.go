package proxy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/vschema"
)

// twoKeys returns two user ids that live on different shards.
func (g *testGateway) twoKeys() (int64, int64) { return g.twoKeysFrom(1) }

// twoKeysFrom returns a, and the next id after it on another shard.
func (g *testGateway) twoKeysFrom(a int64) (int64, int64) {
	ks := g.snap.Keyspace("app")
	b := a + 1
	for ks.ShardFor(vschema.HashInt64(b)) == ks.ShardFor(vschema.HashInt64(a)) {
		b++
	}
	return a, b
}

func rows(t testing.TB, c *pgconn.PgConn, sql string) []string {
	t.Helper()
	rs := exec(t, c, sql)
	var out []string
	for _, r := range rs[len(rs)-1].Rows {
		var cols []string
		for _, v := range r {
			cols = append(cols, string(v))
		}
		out = append(out, strings.Join(cols, "|"))
	}
	return out
}

// noPrepared checks that no shard keeps a prepared transaction and etcd no
// two-phase commit record.
func (g *testGateway) noPrepared(t *testing.T) {
	t.Helper()
	for i, sh := range g.shards {
		c, err := pgconn.Connect(context.Background(), sh.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		if got := rows(t, c, "select count(*) from pg_prepared_xacts"); got[0] != "0" {
			t.Errorf("shard s%d keeps %s prepared transactions", i, got[0])
		}
		c.Close(context.Background())
	}
	// A committed transaction's record goes while its client hears of
	// the commit.
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, err := g.store.ListTwoPC(context.Background())
		if err == nil && len(recs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("two-phase commit records left: %v %v", recs, err)
			return
		}
		time.Sleep(10 * time.Millisecond) // polling etcd for the deletion
	}
}

func TestTransactions(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	c := g.connect(t, "app", "")
	a, b := g.twoKeys()
	status := func(want byte) {
		t.Helper()
		if c.TxStatus() != want {
			t.Fatalf("transaction status %c, want %c", c.TxStatus(), want)
		}
	}

	// Rolled back on both shards.
	exec(t, c, "begin")
	status('T')
	exec(t, c, fmt.Sprintf("insert into users (id, name) values (%d, 'a')", a))
	exec(t, c, fmt.Sprintf("insert into users (id, name) values (%d, 'b')", b))
	if got := rows(t, c, fmt.Sprintf("select name from users where id in (%d, %d)", a, b)); len(got) != 2 {
		t.Fatalf("inside the transaction: %q", got)
	}
	exec(t, c, "rollback")
	status('I')
	if got := rows(t, c, "select id from users"); len(got) != 0 {
		t.Fatalf("after ROLLBACK: %q", got)
	}

	// Committed on both shards with two-phase commit.
	exec(t, c, "begin isolation level repeatable read")
	exec(t, c, fmt.Sprintf("insert into users (id, name) values (%d, 'a')", a))
	exec(t, c, fmt.Sprintf("insert into users (id, name) values (%d, 'b')", b))
	if got := rows(t, c, "show transaction_isolation"); got[0] != "repeatable read" {
		t.Fatalf("isolation level: %q", got)
	}
	exec(t, c, "commit")
	status('I')
	if got := rows(t, c, "select id from users"); len(got) != 2 {
		t.Fatalf("after COMMIT: %q", got)
	}
	g.noPrepared(t)

	// An error fails the transaction until ROLLBACK; COMMIT then rolls back.
	exec(t, c, "begin")
	exec(t, c, fmt.Sprintf("update users set name = 'changed' where id = %d", a))
	if _, err := c.Exec(context.Background(), "select 1/0").ReadAll(); code(err) != "22012" {
		t.Fatalf("division by zero: %v", err)
	}
	status('E')
	if _, err := c.Exec(context.Background(), "select 1").ReadAll(); code(err) != "25P02" {
		t.Fatalf("in a failed transaction: %v", err)
	}
	rs := exec(t, c, "commit")
	if rs[0].CommandTag.String() != "ROLLBACK" {
		t.Fatalf("COMMIT of a failed transaction answered %q", rs[0].CommandTag)
	}
	status('I')
	if got := rows(t, c, fmt.Sprintf("select name from users where id = %d", a)); got[0] != "a" {
		t.Fatalf("failed transaction kept its update: %q", got)
	}

	// Savepoints span shards, including one that joins after the savepoint.
	exec(t, c, "begin")
	exec(t, c, fmt.Sprintf("update users set name = 'sp1' where id = %d", a))
	exec(t, c, "savepoint s1")
	exec(t, c, fmt.Sprintf("update users set name = 'sp2' where id = %d", b))
	exec(t, c, fmt.Sprintf("update users set name = 'sp2' where id = %d", a))
	if _, err := c.Exec(context.Background(), fmt.Sprintf("insert into users (id, name) values (%d, 'dup')", b)).ReadAll(); code(err) != "23505" {
		t.Fatalf("duplicate: %v", err)
	}
	status('E')
	exec(t, c, "rollback to savepoint s1")
	status('T')
	exec(t, c, "release s1")
	exec(t, c, "commit")
	if got := rows(t, c, fmt.Sprintf("select id, name from users where id in (%d, %d)", a, b)); !sameSet(got, []string{fmt.Sprintf("%d|sp1", a), fmt.Sprintf("%d|b", b)}) {
		t.Fatalf("after ROLLBACK TO: %q", got)
	}
	if _, err := c.Exec(context.Background(), "begin; rollback to nosuch").ReadAll(); code(err) != "3B001" {
		t.Fatalf("unknown savepoint: %v", err)
	}
	exec(t, c, "rollback")
	g.noPrepared(t)

	// One statement that writes on several shards is all or nothing: the
	// check constraint fails on one shard, nothing changes on the other.
	_, err := c.Exec(context.Background(), fmt.Sprintf("update users set name = case when id = %d then 'forbidden' else 'fine' end", b)).ReadAll()
	if code(err) != "23514" {
		t.Fatalf("multi-shard update: %v", err)
	}
	if got := rows(t, c, fmt.Sprintf("select name from users where id = %d", a)); got[0] != "sp1" {
		t.Fatalf("a failed multi-shard update changed shard of %d: %q", a, got)
	}
	rs = exec(t, c, "update users set name = 'both'")
	if rs[0].CommandTag.String() != "UPDATE 2" {
		t.Fatalf("multi-shard update: %q", rs[0].CommandTag)
	}
	g.noPrepared(t)

	// A keyspace can refuse transactions that write on several shards.
	// (Both keyspaces use the same shards, so they see the same table.)
	strict := g.connect(t, "strict", "")
	c1, c2 := g.twoKeysFrom(1000)
	exec(t, strict, "begin")
	exec(t, strict, fmt.Sprintf("insert into users (id) values (%d)", c1))
	if _, err := strict.Exec(context.Background(), fmt.Sprintf("insert into users (id) values (%d)", c2)).ReadAll(); code(err) != "0A000" || !strings.Contains(err.Error(), "multi_shard_writes") {
		t.Fatalf("strict keyspace: %v", err)
	}
	exec(t, strict, "rollback")
	if _, err := strict.Exec(context.Background(), "update users set name = 'x'").ReadAll(); code(err) != "0A000" {
		t.Fatalf("strict keyspace, one multi-shard statement: %v", err)
	}
}

func TestSessionSettings(t *testing.T) {
	g := startGateway(t, PoolConfig{MaxConns: 2, IdleTimeout: time.Minute, AcquireTimeout: 5 * time.Second, ConnectTimeout: time.Second})
	c := g.connect(t, "app", "application_name=first options='-c statement_timeout=3s'")
	other := g.connect(t, "app", "")
	show := func(c *pgconn.PgConn, name string) string {
		t.Helper()
		return rows(t, c, "show "+name)[0]
	}
	if got := show(c, "statement_timeout"); got != "3s" {
		t.Fatalf("startup option: %q", got)
	}
	exec(t, c, "set statement_timeout = '7s'")
	exec(t, c, "set application_name = 'renamed'")
	if c.ParameterStatus("application_name") != "renamed" {
		t.Errorf("ParameterStatus application_name = %q", c.ParameterStatus("application_name"))
	}
	// Settings follow the session across pooled connections; other
	// sessions keep theirs.
	for range 5 {
		if got := show(c, "statement_timeout"); got != "7s" {
			t.Fatalf("SET lost: %q", got)
		}
		if got := show(other, "statement_timeout"); got != "0" {
			t.Fatalf("SET leaked to another session: %q", got)
		}
	}
	// RESET returns to the startup value, as in Postgres.
	exec(t, c, "reset statement_timeout")
	if got := show(c, "statement_timeout"); got != "3s" {
		t.Fatalf("after RESET: %q", got)
	}
	// SET in a transaction that rolls back is undone; SET LOCAL ends with
	// its transaction.
	exec(t, c, "begin")
	exec(t, c, "set statement_timeout = '9s'")
	exec(t, c, "rollback")
	if got := show(c, "statement_timeout"); got != "3s" {
		t.Fatalf("after a rolled-back SET: %q", got)
	}
	exec(t, c, "begin")
	exec(t, c, "set local statement_timeout = '11s'")
	if got := show(c, "statement_timeout"); got != "11s" {
		t.Fatalf("SET LOCAL: %q", got)
	}
	exec(t, c, "commit")
	if got := show(c, "statement_timeout"); got != "3s" {
		t.Fatalf("after SET LOCAL's transaction: %q", got)
	}
	if got := rows(t, c, "select set_config('search_path', 'pg_catalog, public', false)"); got[0] != "pg_catalog, public" {
		t.Fatalf("set_config: %q", got)
	}
	if got := show(c, "search_path"); got != "pg_catalog, public" {
		t.Fatalf("after set_config: %q", got)
	}
	if _, err := c.Exec(context.Background(), "set no_such_thing = 1").ReadAll(); code(err) != "42704" {
		t.Fatalf("unknown setting: %v", err)
	}
	exec(t, c, "reset all")
	if got := show(c, "search_path"); got != `"$user", public` {
		t.Fatalf("after RESET ALL: %q", got)
	}
}

func TestSessionPooling(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	c := g.connect(t, "pinned", "")
	first := rows(t, c, "select pg_backend_pid()")[0]
	for range 3 {
		if got := rows(t, c, "select pg_backend_pid()")[0]; got != first {
			t.Fatalf("session pooling changed the backend: %s then %s", first, got)
		}
	}
}

func TestCancel(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	c := g.connect(t, "app", "")
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.Exec(context.Background(), "select pg_sleep(20)").ReadAll()
		done <- err
	}()
	direct, err := pgconn.Connect(context.Background(), g.shards[0].DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(context.Background())
	for rows(t, direct, "select count(*) from pg_stat_activity where query = 'select pg_sleep(20)' and state = 'active'")[0] != "1" {
		if time.Since(start) > 10*time.Second {
			t.Fatal("pg_sleep never started")
		}
	}
	// A wrong secret cancels nothing.
	wrong := append([]byte(nil), c.SecretKey()...)
	wrong[0] ^= 0xff
	if err := cancelRequest(g.addr, c.PID(), wrong); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("a cancel with the wrong key ended the statement: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := c.CancelRequest(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = <-done
	if code(err) != "57014" || time.Since(start) > 15*time.Second {
		t.Fatalf("cancelled statement: %v after %s", err, time.Since(start))
	}
	if got := rows(t, c, "select 1"); got[0] != "1" {
		t.Fatal("session unusable after cancel")
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestCommitAndChain: COMMIT AND CHAIN and ROLLBACK AND CHAIN end the
// transaction and begin one like it at once, isolation level included;
// outside a transaction block they fail with 25P01, as on Postgres.
func TestCommitAndChain(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	for _, ks := range []string{"app", "solo"} {
		t.Run(ks, func(t *testing.T) {
			c := g.connect(t, ks, "")
			exec(t, c, "begin isolation level repeatable read")
			exec(t, c, "insert into users (id, name) values (9001, 'chained')")
			exec(t, c, "commit and chain")
			if c.TxStatus() != 'T' {
				t.Fatalf("after COMMIT AND CHAIN: transaction status %c", c.TxStatus())
			}
			if got := one(t, c, "show transaction_isolation"); got != "repeatable read" {
				t.Fatalf("the chained transaction runs at %q", got)
			}
			exec(t, c, "delete from users where id = 9001")
			exec(t, c, "rollback and chain")
			if got := one(t, c, "select count(*) from users where id = 9001"); got != "1" {
				t.Fatalf("the committed row: %s, want 1 (and the delete rolled back)", got)
			}
			exec(t, c, "delete from users where id = 9001")
			exec(t, c, "commit")
			if c.TxStatus() != 'I' {
				t.Fatalf("after COMMIT: transaction status %c", c.TxStatus())
			}
			if _, err := c.Exec(context.Background(), "commit and chain").ReadAll(); code(err) != "25P01" {
				t.Fatalf("COMMIT AND CHAIN outside a transaction: %v, want 25P01", err)
			}
		})
	}
}

// TestSetConfigParameter: set_config with its value as a parameter (as pgx
// sends it) changes the session's setting, which later statements on any
// backend connection see.
func TestSetConfigParameter(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := context.Background()
	for _, ks := range []string{"app", "solotx"} {
		t.Run(ks, func(t *testing.T) {
			c := g.connect(t, ks, "")
			res := c.ExecParams(ctx, "select set_config('TimeZone', $1, false)", [][]byte{[]byte("America/New_York")}, nil, nil, nil).Read()
			if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "America/New_York" {
				t.Fatalf("set_config($1): %v %q", res.Err, res.Rows)
			}
			for range 3 { // whichever connection runs it
				if got := one(t, c, "show timezone"); got != "America/New_York" {
					t.Fatalf("after set_config($1): TimeZone %q", got)
				}
			}
			if res := c.ExecParams(ctx, "select set_config($1, $2, false)", [][]byte{[]byte("TimeZone"), []byte("UTC")}, nil, nil, nil).Read(); code(res.Err) != "0A000" {
				t.Fatalf("set_config with a parameter for its name: %v, want 0A000", res.Err)
			}
		})
	}
}
