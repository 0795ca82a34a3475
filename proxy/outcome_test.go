package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/vschema"
)

// commitHangs makes every commit on the shard wait for a synchronous
// standby that does not exist, until the test ends. It returns once a
// commit does wait: the server switches waiting on a while after the
// configuration reload.
func commitHangs(t *testing.T, direct *pgconn.PgConn, shard *pgtest.Cluster) {
	t.Helper()
	exec(t, direct, "alter system set synchronous_standby_names = 'nobody'")
	exec(t, direct, "select pg_reload_conf()")
	t.Cleanup(func() {
		direct.Exec(context.Background(), "alter system reset synchronous_standby_names; select pg_reload_conf()").ReadAll()
	})
	canary, err := pgconn.Connect(context.Background(), shard.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer canary.Close(context.Background())
	exec(t, canary, "set synchronous_commit = on")
	pid := fmt.Sprint(canary.PID())
	deadline := time.Now().Add(30 * time.Second)
	for {
		done := make(chan error, 1)
		go func() {
			// A commit waits only if its transaction wrote WAL.
			_, err := canary.Exec(context.Background(), "begin; create temporary table canary (x int) on commit drop; commit").ReadAll()
			done <- err
		}()
		for {
			select {
			case <-done:
			case <-time.After(5 * time.Millisecond): // polling the canary's commit
				if one(t, direct, "select count(*) from pg_stat_activity where wait_event = 'SyncRep' and pid = "+pid) != "1" {
					continue
				}
				// Cancelled, the commit stops waiting; it is done locally.
				exec(t, direct, "select pg_cancel_backend("+pid+")")
				<-done
				return
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("commits never started waiting for the standby")
		}
	}
}

// terminateWaiting kills the backend that waits for a synchronous standby,
// as a crash of that backend would, once it is waiting.
func terminateWaiting(t *testing.T, direct *pgconn.PgConn) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows := exec(t, direct, "select pg_terminate_backend(pid) from pg_stat_activity where wait_event = 'SyncRep'")[0].Rows
		if len(rows) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no commit is waiting for the standby")
		}
		time.Sleep(20 * time.Millisecond) // polling for the commit to start waiting
	}
}

// TestCommitOutcomeUnknown kills a shard's connection while it commits:
// the client is told the outcome is unknown and its connection is closed,
// as Postgres does — never an ERROR that leaves the session open as if the
// transaction had failed. The row is there: it committed on the shard.
func TestCommitOutcomeUnknown(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	for _, tc := range []struct {
		name   string
		id     int64
		before []string // statements before the one that commits
		commit string
	}{
		{"explicit COMMIT", 101, []string{"begin", "insert into users (id, name) values (101, 'x')"}, "commit"},
		{"single statement", 102, nil, "insert into users (id, name) values (102, 'x')"},
		{"query string", 103, nil, "insert into users (id, name) values (103, 'x'); update users set name = 'y' where id = 103"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Session pooling keeps the session on one backend per shard,
			// so the test can see that backend take the new setting.
			c := g.connect(t, "pinned", "")
			// The test servers run with synchronous_commit off.
			exec(t, c, "set synchronous_commit = on")
			shard := g.shardOf(t, tc.id)
			direct, err := pgconn.Connect(context.Background(), shard.DSN("postgres"))
			if err != nil {
				t.Fatal(err)
			}
			defer direct.Close(context.Background())
			commitHangs(t, direct, shard)
			for _, sql := range tc.before {
				exec(t, c, sql)
			}
			// A configuration reload reaches a backend between commands.
			probe := fmt.Sprintf("select current_setting('synchronous_standby_names'), count(*) from users where id = %d", tc.id)
			deadline := time.Now().Add(30 * time.Second)
			for string(exec(t, c, probe)[0].Rows[0][0]) != "nobody" {
				if time.Now().After(deadline) {
					t.Fatal("the shard backend never took synchronous_standby_names")
				}
				time.Sleep(10 * time.Millisecond) // polling for the reload
			}

			done := make(chan error, 1)
			go func() {
				_, err := c.Exec(context.Background(), tc.commit).ReadAll()
				done <- err
			}()
			terminateWaiting(t, direct)
			err = <-done
			var pe *pgconn.PgError
			if !asPgError(err, &pe) || pe.Severity != "FATAL" || pe.Code != "08006" || !strings.Contains(pe.Message, "outcome is unknown") {
				t.Fatalf("commit with its shard connection killed: %v, want FATAL 08006 saying the outcome is unknown", err)
			}
			if _, err := c.Exec(context.Background(), "select 1").ReadAll(); err == nil {
				t.Fatal("the session goes on after an unknown outcome")
			}
			direct.Exec(context.Background(), "alter system reset synchronous_standby_names; select pg_reload_conf()").ReadAll()
			rows := exec(t, direct, fmt.Sprintf("select count(*) from users where id = %d", tc.id))[0].Rows
			if string(rows[0][0]) != "1" {
				t.Fatalf("the row of a commit reported as possibly done: count %s, want 1 (it committed locally)", rows[0][0])
			}
		})
	}

	// A read whose shard connection dies is an ERROR 08006; the session
	// survives it.
	c := g.connect(t, "app", "")
	shard := g.shardOf(t, 101)
	direct, err := pgconn.Connect(context.Background(), shard.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "select pg_sleep(30), name from users where id = 101").ReadAll()
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows := exec(t, direct, "select pg_terminate_backend(pid) from pg_stat_activity where wait_event = 'PgSleep'")[0].Rows
		if len(rows) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the read never started")
		}
		time.Sleep(20 * time.Millisecond) // polling for the read to start
	}
	err = <-done
	var pe *pgconn.PgError
	if !asPgError(err, &pe) || pe.Severity != "ERROR" || pe.Code != "08006" {
		t.Fatalf("read with its shard connection killed: %v, want ERROR 08006", err)
	}
	exec(t, c, "select name from users where id = 101")

	// Inside a transaction the statement fails, the transaction is
	// aborted, and ROLLBACK ends it as on Postgres.
	exec(t, c, "begin")
	pid := string(exec(t, c, "select pg_backend_pid(), name from users where id = 101")[0].Rows[0][0])
	exec(t, direct, "select pg_terminate_backend("+pid+")")
	_, err = c.Exec(context.Background(), "select name from users where id = 101").ReadAll()
	if code(err) != "08006" {
		t.Fatalf("a statement on a transaction's lost connection: %v, want 08006", err)
	}
	if _, err := c.Exec(context.Background(), "select 1").ReadAll(); code(err) != "25P02" {
		t.Fatalf("the transaction goes on after losing a shard: %v, want 25P02", err)
	}
	exec(t, c, "rollback")
	exec(t, c, "select name from users where id = 101")
}

// shardOf returns the shard that holds user id.
func (g *testGateway) shardOf(t *testing.T, id int64) *pgtest.Cluster {
	t.Helper()
	name := g.snap.Keyspace("app").ShardFor(vschema.HashInt64(id))
	for i, sh := range g.shards {
		if name == fmt.Sprintf("s%d", i) {
			return sh
		}
	}
	t.Fatalf("user %d lives on %q, not a test shard", id, name)
	return nil
}

func asPgError(err error, pe **pgconn.PgError) bool { return errors.As(err, pe) }

// TestUnknownOutcomesEndTheSession: every error that leaves a
// transaction's outcome unknown reaches the client as FATAL, so that the
// session ends; a lost connection alone is an ERROR.
func TestUnknownOutcomesEndTheSession(t *testing.T) {
	lost := &ShardConnectionLostError{Shard: "s0", Err: errors.New("EOF")}
	for _, tc := range []struct {
		err            error
		severity, code string
	}{
		{&OutcomeUnknownError{What: "COMMIT", Err: lost}, "FATAL", "08006"},
		{&planner.Error{Code: codeResolutionUnknown, Message: "the commit decision could not be recorded"}, "FATAL", "08007"},
		{lost, "ERROR", "08006"},
	} {
		e := errorResponse(tc.err, "", 0, zap.NewNop())
		if e.Severity != tc.severity || e.Code != tc.code {
			t.Errorf("%v: %s %s, want %s %s", tc.err, e.Severity, e.Code, tc.severity, tc.code)
		}
	}
}
