package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
)

// one runs sql and returns the first column of its first row.
func one(t *testing.T, c *pgconn.PgConn, sql string) string {
	t.Helper()
	rs := exec(t, c, sql)
	last := rs[len(rs)-1]
	if len(last.Rows) == 0 {
		t.Fatalf("%s: no rows", sql)
	}
	return string(last.Rows[0][0])
}

// TestSessionStateOnOwnBackend: on an unsharded keyspace with session
// pooling the client owns its backend connection, so session state passes
// through as on Postgres — temporary tables, cursors WITH HOLD, SQL
// PREPARE, advisory locks, large objects, DISCARD ALL and a driver pool's
// reset string — and none of it reaches the next client of that connection.
func TestSessionStateOnOwnBackend(t *testing.T) {
	pool := DefaultPoolConfig
	pool.MaxConns = 1 // the next session gets the same backend connection
	g := startGateway(t, pool)
	ctx := context.Background()

	a, err := pgconn.Connect(ctx, g.dsn("solo", "application_name=first"))
	if err != nil {
		t.Fatal(err)
	}
	pid := one(t, a, "select pg_backend_pid()")
	exec(t, a, "create temporary table scratch (k int primary key, v text)")
	exec(t, a, "insert into scratch values (1, 'one'), (2, 'two')")
	if got := one(t, a, "select v from scratch where k = 2"); got != "two" {
		t.Fatalf("temporary table: %q", got)
	}
	exec(t, a, "prepare byk (int) as select v from scratch where k = $1")
	if got := one(t, a, "execute byk(1)"); got != "one" {
		t.Fatalf("EXECUTE: %q", got)
	}
	exec(t, a, "begin; declare held cursor with hold for select k from scratch order by k; commit")
	if got := one(t, a, "fetch next from held"); got != "1" {
		t.Fatalf("FETCH from a WITH HOLD cursor: %q", got)
	}
	if got := one(t, a, "select pg_advisory_lock(42)::text || pg_try_advisory_lock(43)::text"); got != "true" {
		t.Fatalf("advisory locks: %q", got)
	}
	exec(t, a, "begin; select lo_create(424242); commit")
	if got := one(t, a, "select count(*) from pg_largeobject_metadata where oid = 424242"); got != "1" {
		t.Fatalf("large object: %q", got)
	}
	exec(t, a, "select lo_unlink(424242)")
	exec(t, a, "listen events")
	// What asyncpg runs on every connection it takes back into its pool.
	exec(t, a, "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL")
	if got := one(t, a, "select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()"); got != "0" {
		t.Fatalf("advisory locks after pg_advisory_unlock_all: %s", got)
	}

	// DISCARD ALL throws away the session's state and settings, as on
	// Postgres; the startup settings stay.
	exec(t, a, "set application_name = 'changed'")
	exec(t, a, "set work_mem = '7MB'")
	exec(t, a, "discard all")
	if _, err := a.Exec(ctx, "select * from scratch").ReadAll(); code(err) != "42P01" {
		t.Fatalf("temporary table after DISCARD ALL: %v, want 42P01", err)
	}
	if _, err := a.Exec(ctx, "execute byk(1)").ReadAll(); code(err) != "26000" {
		t.Fatalf("prepared statement after DISCARD ALL: %v, want 26000", err)
	}
	if got := one(t, a, "show work_mem"); got == "7MB" {
		t.Fatal("work_mem survived DISCARD ALL")
	}
	if got := one(t, a, "show application_name"); got != "first" {
		t.Fatalf("application_name after DISCARD ALL: %q, want the startup value", got)
	}
	// State the next client must not find: a temporary table, a cursor, a
	// prepared statement, an advisory lock, a setting.
	exec(t, a, "create temporary table leftover (k int)")
	exec(t, a, "prepare leftover as select 1")
	exec(t, a, "begin; declare leftover cursor with hold for select 1; commit")
	exec(t, a, "select pg_advisory_lock(7)")
	exec(t, a, "set work_mem = '9MB'")
	exec(t, a, "listen leftover")
	a.Close(ctx)

	// The pool has one connection: the next session waits for the first
	// one's to come back, reset.
	b := g.connect(t, "solo", "")
	if got := one(t, b, "select pg_backend_pid()"); got != pid {
		t.Fatalf("the next session got backend %s, not the first one's %s", got, pid)
	}
	for sql, want := range map[string]string{
		"select count(*) from pg_class where relname = 'leftover' and relpersistence = 't'":       "0",
		"select count(*) from pg_prepared_statements where name = 'leftover'":                     "0",
		"select count(*) from pg_cursors":                                                         "0",
		"select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()":    "0",
		"select current_setting('work_mem') <> '9MB'":                                             "t",
		"select count(*) from pg_largeobject_metadata where oid = 424242":                         "0",
		"select count(*) from pg_listening_channels()":                                            "0",
		"select count(*) from pg_stat_activity where pid = pg_backend_pid() and state = 'active'": "1",
	} {
		if got := one(t, b, sql); got != want {
			t.Errorf("next session: %s = %s, want %s", sql, got, want)
		}
	}
}

// TestStartupOptions: the startup packet's settings are taken as Postgres
// takes them — as the setting's text, options split at unescaped spaces —
// and direct parameters win over options.
func TestStartupOptions(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	c := g.connect(t, "app", `search_path=public,pg_catalog options='-c application_name=with\\ space --work-mem=5MB -cstatement_timeout=7s'`)
	for sql, want := range map[string]string{
		"show search_path": "public,pg_catalog",
		"select array_to_string(current_schemas(true), ' ')": "public pg_catalog",
		"show application_name":                              "with space",
		"show work_mem":                                      "5MB",
		"show statement_timeout":                             "7s",
	} {
		if got := one(t, c, sql); got != want {
			t.Errorf("%s = %q, want %q", sql, got, want)
		}
	}
	c2 := g.connect(t, "app", `options='-c search_path=pg_catalog,public' search_path=public`)
	if got := one(t, c2, "show search_path"); got != "public" {
		t.Errorf("a direct parameter beside an option: search_path %q, want public", got)
	}
	if got := one(t, c2, "select array_length(current_schemas(false), 1)"); got != "1" {
		t.Errorf("current_schemas: %s", got)
	}
}

// terminateGatewayBackends ends every other client backend of shard and
// waits until they are gone.
func terminateGatewayBackends(t *testing.T, shard *pgtest.Cluster, only string) {
	t.Helper()
	direct, err := pgconn.Connect(context.Background(), shard.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(context.Background())
	which := "pid <> pg_backend_pid() and backend_type = 'client backend'"
	if only != "" {
		which = "pid = " + only
	}
	exec(t, direct, "select pg_terminate_backend(pid) from pg_stat_activity where "+which)
	deadline := time.Now().Add(10 * time.Second)
	for one(t, direct, "select count(*) from pg_stat_activity where "+which) != "0" {
		if time.Now().After(deadline) {
			t.Fatal("terminated backends did not end")
		}
		time.Sleep(10 * time.Millisecond) // polling for the backends to exit
	}
}

// TestBackendDeath: a session that owns its backend (session pooling) is
// told its real backend pid and ends with the backend's FATAL when that
// backend is terminated; under transaction pooling, connections whose
// backends died while idle in the pool are passed over, and the next
// statements run without an error.
func TestBackendDeath(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := context.Background()

	c := g.connect(t, "solo", "")
	pid := one(t, c, "select pg_backend_pid()")
	if fmt.Sprint(c.PID()) != pid {
		t.Errorf("BackendKeyData says pid %d, the backend is %s", c.PID(), pid)
	}
	cancelled := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "select pg_sleep(30)").ReadAll()
		cancelled <- err
	}()
	waitActive(t, g, "select pg_sleep(30)")
	if err := c.CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-cancelled; code(err) != "57014" {
		t.Fatalf("cancel of a session that knows its real pid: %v, want 57014", err)
	}
	// An idle client hears of its backend's end at once, as from Postgres.
	terminateGatewayBackends(t, g.shards[0], pid)
	var pe *pgconn.PgError
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := c.CheckConn()
		if err != nil {
			if !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != "57P01" {
				t.Fatalf("an idle client of session pooling whose backend was terminated: %v, want FATAL 57P01", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an idle client of session pooling did not hear that its backend was terminated")
		}
		time.Sleep(10 * time.Millisecond) // polling for the FATAL to arrive
	}
	if _, err := c.Exec(ctx, "select 1").ReadAll(); err == nil {
		t.Fatal("the session goes on after its backend's FATAL")
	}
	// A statement that finds its backend gone gets the backend's FATAL.
	c = g.connect(t, "solo", "")
	go func() {
		waitActive(t, g, "select pg_sleep(30)")
		terminateGatewayBackends(t, g.shards[0], fmt.Sprint(c.PID()))
	}()
	if _, err := c.Exec(ctx, "select pg_sleep(30)").ReadAll(); !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != "57P01" {
		t.Fatalf("a statement on a terminated backend of session pooling: %v, want FATAL 57P01", err)
	}
	// An empty query (a driver's ping) that no backend needs to answer
	// finds out too.
	c = g.connect(t, "solo", "")
	terminateGatewayBackends(t, g.shards[0], one(t, c, "select pg_backend_pid()"))
	if _, err := c.Exec(ctx, ";").ReadAll(); !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != "57P01" {
		t.Fatalf("a ping on a terminated backend of session pooling: %v, want FATAL 57P01", err)
	}

	// Under transaction pooling, a session pinned for its state (here a
	// temporary table) whose backend dies lost that state: it ends too,
	// rather than go on without it.
	p := g.connect(t, "solotx", "")
	exec(t, p, "create temporary table kept (k int)")
	terminateGatewayBackends(t, g.shards[0], one(t, p, "select pg_backend_pid()"))
	if _, err := p.Exec(ctx, "select * from kept").ReadAll(); !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != "57P01" {
		t.Fatalf("a statement of a pinned session whose backend was terminated: %v, want FATAL 57P01", err)
	}

	a := g.connect(t, "app", "")
	keys := keysByShard(t, g, a)
	for _, sh := range g.shards {
		terminateGatewayBackends(t, sh, "")
	}
	for _, key := range keys {
		if got := one(t, a, "select name from users where id = "+key); got == "" {
			t.Errorf("user %s: no name", key)
		}
		exec(t, a, "update users set name = 'again' where id = "+key)
	}
	exec(t, a, "select 1")
	if n := one(t, a, "select count(*) from users where name = 'again'"); n != "2" {
		t.Errorf("%s rows updated after the backends died, want 2", n)
	}
}

// TestClientTwoPhaseCommit: a client's own PREPARE TRANSACTION, COMMIT
// PREPARED and ROLLBACK PREPARED pass through on an unsharded keyspace;
// shardgate's own identifiers are refused, and so is the client's two-phase
// commit on a sharded keyspace.
func TestClientTwoPhaseCommit(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	c := g.connect(t, "solo", "")
	exec(t, c, "create table notes (id int primary key)")
	for _, tc := range []struct{ gid, finish, want string }{
		{"client_tx_1", "commit prepared 'client_tx_1'", "1"},
		{"client_tx_2", "rollback prepared 'client_tx_2'", "0"},
	} {
		exec(t, c, "begin")
		exec(t, c, "insert into notes values (42)")
		rs := exec(t, c, "prepare transaction '"+tc.gid+"'")
		if tag := rs[0].CommandTag.String(); tag != "PREPARE TRANSACTION" {
			t.Fatalf("PREPARE TRANSACTION answered %q", tag)
		}
		if c.TxStatus() != 'I' {
			t.Fatalf("transaction status after PREPARE TRANSACTION: %c", c.TxStatus())
		}
		if got := one(t, c, "select count(*) from pg_prepared_xacts where gid = '"+tc.gid+"'"); got != "1" {
			t.Fatalf("%s is not prepared", tc.gid)
		}
		if _, err := c.Exec(context.Background(), "begin; "+tc.finish+"; commit").ReadAll(); code(err) != "25001" {
			t.Fatalf("%s in a transaction block: %v, want 25001", tc.finish, err)
		}
		exec(t, c, "rollback")
		exec(t, c, tc.finish)
		if got := one(t, c, "select count(*) from notes where id = 42"); got != tc.want {
			t.Fatalf("after %s: %s rows, want %s", tc.finish, got, tc.want)
		}
		exec(t, c, "delete from notes")
	}
	exec(t, c, "begin")
	if _, err := c.Exec(context.Background(), "prepare transaction 'sg_mine_1'").ReadAll(); code(err) != "0A000" {
		t.Fatalf("a gid with shardgate's prefix: %v, want 0A000", err)
	}
	exec(t, c, "rollback")
	if _, err := c.Exec(context.Background(), "commit prepared 'sg_mine_1'").ReadAll(); code(err) != "0A000" {
		t.Fatalf("COMMIT PREPARED of shardgate's prefix: %v, want 0A000", err)
	}
	a := g.connect(t, "app", "")
	exec(t, a, "begin")
	if _, err := a.Exec(context.Background(), "prepare transaction 'client_tx_3'").ReadAll(); code(err) != "0A000" {
		t.Fatalf("PREPARE TRANSACTION on a sharded keyspace: %v, want 0A000", err)
	}
	exec(t, a, "rollback")
}

// TestAnchoredStateOnShardedKeyspace: on a sharded keyspace, in either
// pooling mode, advisory locks of two sessions exclude each other (both are
// taken on the anchor shard), a pool's reset releases them and unpins the
// session; session state whose meaning would differ by shard is refused.
func TestAnchoredStateOnShardedKeyspace(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	for _, ks := range []string{"pinned", "app"} {
		t.Run(ks, func(t *testing.T) {
			a, b := g.connect(t, ks, ""), g.connect(t, ks, "")
			if got := one(t, a, "select pg_try_advisory_lock(7)"); got != "t" {
				t.Fatalf("first lock: %s", got)
			}
			exec(t, a, "select count(*) from users") // a holds every shard's connection
			if got := one(t, b, "select pg_try_advisory_lock(7)"); got != "f" {
				t.Fatalf("a second session took the lock the first holds: %s", got)
			}
			if ks == "app" && g.srv.pinnedSessions.Load() != 1 {
				t.Fatalf("a session holding a lock is not pinned: %d", g.srv.pinnedSessions.Load())
			}
			exec(t, a, "select pg_advisory_unlock_all()")
			if got := one(t, b, "select pg_try_advisory_lock(7)"); got != "t" {
				t.Fatalf("after the first unlocked: %s", got)
			}
			exec(t, b, "select pg_advisory_unlock(7)")
			if n := g.srv.pinnedSessions.Load(); n != 0 {
				t.Fatalf("%d sessions pinned after the locks went", n)
			}
			for sql, what := range map[string]string{
				"declare c cursor with hold for select 1":             "cursors",
				"prepare p as select 1":                               "PREPARE",
				"create temp table scratch (a int)":                   "temporary tables",
				"select pg_advisory_lock(id) from users where id = 1": "anchor shard",
			} {
				_, err := a.Exec(context.Background(), sql).ReadAll()
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, what) {
					t.Errorf("%s: %v, want 0A000 naming %s", sql, err, what)
				}
			}
		})
	}
}

// TestSessionLeftInTransaction: a session-pooled client that leaves in the
// middle of a transaction takes its backend with it, as on Postgres: the
// next client gets a new backend process, never the abandoned one.
func TestSessionLeftInTransaction(t *testing.T) {
	pool := DefaultPoolConfig
	pool.MaxConns = 1 // the next session could only get the same one back
	g := startGateway(t, pool)
	ctx := context.Background()
	before := g.srv.ActiveSessions()
	c := g.connect(t, "solo", "")
	exec(t, c, "begin")
	pid := one(t, c, "select pg_backend_pid()")
	c.Close(ctx)
	for deadline := time.Now().Add(10 * time.Second); g.srv.ActiveSessions() != before; {
		if time.Now().After(deadline) {
			t.Fatal("the session did not end")
		}
		time.Sleep(10 * time.Millisecond) // polling for the server to end the session
	}
	if next := one(t, g.connect(t, "solo", ""), "select pg_backend_pid()"); next == pid {
		t.Fatalf("the next session got backend %s, the one left in a transaction", pid)
	}
}
