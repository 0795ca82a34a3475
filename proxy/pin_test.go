package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// TestPinning: under transaction pooling, a session that leaves state on
// its backend connection — a temporary table, a SQL prepared statement, a
// cursor WITH HOLD, an advisory lock, whatever a DO block leaves — keeps
// that connection while the state lasts, and gives it back once the state
// is gone. Other sessions never see it.
func TestPinning(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := context.Background()
	a := g.connect(t, "solotx", "")
	b := g.connect(t, "solotx", "")
	pinned := func(want int64) {
		t.Helper()
		if got := g.srv.pinnedSessions.Load(); got != want {
			t.Fatalf("%d sessions pinned, want %d", got, want)
		}
	}
	pinned(0)

	exec(t, a, "create temporary table scratch (k int)")
	pinned(1)
	exec(t, a, "insert into scratch values (1), (2)")
	exec(t, b, "select 1") // the other session takes a connection of its own
	for range 3 {
		if got := one(t, a, "select count(*) from scratch"); got != "2" {
			t.Fatalf("the pinned session's temporary table: %s rows", got)
		}
	}
	if _, err := b.Exec(ctx, "select * from scratch").ReadAll(); code(err) != "42P01" {
		t.Fatalf("another session sees the temporary table: %v", err)
	}
	if one(t, a, "select pg_backend_pid()") == one(t, b, "select pg_backend_pid()") {
		t.Fatal("two sessions share the pinned connection")
	}
	exec(t, a, "drop table scratch")
	pinned(0)

	for _, tc := range []struct{ make, use, undo string }{
		{"prepare byk as select 42", "execute byk", "deallocate byk"},
		{"create temporary table multi (k int); insert into multi values (42)", "select k from multi", "drop table multi"},
		{"create type pg_temp.mood as enum ('ok')", "select 42 where 'ok'::pg_temp.mood = 'ok'", "drop type pg_temp.mood"},
		{"create function pg_temp.answer() returns int as 'select 42' language sql", "select pg_temp.answer()", "drop function pg_temp.answer()"},
		{"begin; declare held cursor with hold for select 42; commit", "fetch next from held", "close held"},
		{"select pg_advisory_lock(42)", "select 42 where pg_try_advisory_lock(42)", "select pg_advisory_unlock_all()"},
		{"do $$ begin create temporary table made_by_do (k int); insert into made_by_do values (42); end $$", "select k from made_by_do", "discard all"},
	} {
		exec(t, a, tc.make)
		pinned(1)
		exec(t, b, "select 1")
		if got := one(t, a, tc.use); got != "42" {
			t.Fatalf("%s after %s: %q", tc.use, tc.make, got)
		}
		pinned(1)
		exec(t, a, tc.undo)
		pinned(0)
	}
	// A DO block that leaves nothing pins nothing.
	exec(t, a, "do $$ begin perform 1; end $$")
	pinned(0)
	// What asyncpg runs when it takes a connection back into its pool.
	exec(t, a, "create temporary table again (k int)")
	exec(t, a, "select pg_advisory_lock(7)")
	exec(t, a, "drop table again; SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL")
	pinned(0)

	if _, err := a.Exec(ctx, "select set_config('work_mem', '5MB', false), 1").ReadAll(); code(err) != "0A000" {
		t.Fatalf("set_config inside a larger statement under transaction pooling: %v, want 0A000", err)
	}

	// A session that ends pinned leaves nothing behind.
	exec(t, a, "create temporary table leftover (k int)")
	pinned(1)
	a.Close(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for g.srv.pinnedSessions.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the closed session is still pinned")
		}
		time.Sleep(10 * time.Millisecond) // polling for the server to finish the session
	}
	if got := one(t, b, "select count(*) from pg_class where relname = 'leftover'"); got != "0" {
		t.Fatalf("the closed session's temporary table is still there: %s", got)
	}
	if v, _ := metricValue(t, g.reg, "shardgate_session_pins_total", map[string]string{"state": "temporary tables"}); v < 2 {
		t.Errorf("pins by temporary tables: %v", v)
	}
	if _, found := metricValue(t, g.reg, "shardgate_pinned_sessions", nil); !found {
		t.Error("shardgate_pinned_sessions is not exported")
	}
}

// TestPinningCap: past a keyspace's max_pinned_sessions, a statement that
// would pin one more session gets 53300 before it runs, and the session
// goes on; once a pinned session lets go, another may pin.
func TestPinningCap(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	f, err := vschema.Parse([]byte("keyspaces:\n  solotx:\n    sharded: false\n    max_pinned_sessions: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.store.ApplyVSchemas(t.Context(), f.Keyspaces["solotx"]); err != nil {
		t.Fatal(err)
	}
	snap, err := g.store.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	g.srv.topo = func() *topology.Snapshot { return snap } // before any session of this test

	a := g.connect(t, "solotx", "")
	b := g.connect(t, "solotx", "")
	exec(t, a, "create temporary table mine (k int)")
	if _, err := b.Exec(context.Background(), "create temporary table theirs (k int)").ReadAll(); code(err) != "53300" {
		t.Fatalf("a second pinned session past max_pinned_sessions 1: %v, want 53300", err)
	}
	if _, err := b.Exec(context.Background(), "select * from theirs").ReadAll(); code(err) != "42P01" {
		t.Fatalf("the refused statement ran: %v", err)
	}
	exec(t, b, "select 1")
	exec(t, a, "drop table mine")
	exec(t, b, "create temporary table theirs (k int)")
	if g.srv.pinnedSessions.Load() != 1 {
		t.Fatalf("%d sessions pinned, want 1", g.srv.pinnedSessions.Load())
	}
}
