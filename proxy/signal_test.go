package proxy

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestSignalGatewaySession: a session that owns no backend knows itself by
// a process id of the gateway's; pg_cancel_backend and pg_terminate_backend
// of that id, from another session, cancel its statement or end it with
// FATAL 57P01 — while it runs a statement or while it waits — as Postgres
// does for a backend's id.
func TestSignalGatewaySession(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := context.Background()
	for _, ks := range []string{"app", "solotx"} {
		t.Run(ks, func(t *testing.T) {
			killer := g.connect(t, ks, "")
			signal := func(fn string, pid uint32) string {
				t.Helper()
				res := killer.ExecParams(ctx, "select "+fn+"($1)", [][]byte{[]byte(fmt.Sprint(pid))}, nil, nil, nil).Read()
				if res.Err != nil || len(res.Rows) != 1 {
					t.Fatalf("%s(%d): %v %q", fn, pid, res.Err, res.Rows)
				}
				return string(res.Rows[0][0])
			}
			running := func(c *pgconn.PgConn) chan error {
				done := make(chan error, 1)
				go func() {
					_, err := c.Exec(ctx, "select pg_sleep(30)").ReadAll()
					done <- err
				}()
				waitActive(t, g, "select pg_sleep(30)")
				return done
			}
			var pe *pgconn.PgError

			a := g.connect(t, ks, "")
			if a.PID() < gatewayPIDBase {
				t.Fatalf("a session of transaction pooling has process id %d, one a backend could have", a.PID())
			}
			done := running(a)
			if got := signal("pg_cancel_backend", a.PID()); got != "t" {
				t.Fatalf("pg_cancel_backend: %s", got)
			}
			if err := <-done; code(err) != "57014" {
				t.Fatalf("a cancelled statement: %v, want 57014", err)
			}
			if got := one(t, a, "select 1"); got != "1" {
				t.Fatalf("after the cancel: %q", got)
			}

			// While it runs a statement.
			done = running(a)
			if got := signal("pg_terminate_backend", a.PID()); got != "t" {
				t.Fatalf("pg_terminate_backend: %s", got)
			}
			if err := <-done; !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != "57P01" {
				t.Fatalf("a terminated session's statement: %v, want FATAL 57P01", err)
			}

			// While it waits, by the simple protocol.
			b := g.connect(t, ks, "")
			if got := one(t, killer, fmt.Sprintf("select pg_terminate_backend(%d)", b.PID())); got != "t" {
				t.Fatalf("pg_terminate_backend: %s", got)
			}
			for deadline := time.Now().Add(10 * time.Second); ; {
				err := b.CheckConn()
				if err != nil {
					if !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != "57P01" {
						t.Fatalf("a terminated idle session: %v, want FATAL 57P01", err)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("a terminated idle session did not end")
				}
				time.Sleep(10 * time.Millisecond) // polling for the FATAL to arrive
			}

			// An id that is no session's.
			if got := signal("pg_terminate_backend", 1<<31-1); got != "f" {
				t.Fatalf("pg_terminate_backend of no session: %s", got)
			}
			if got := one(t, killer, "select 41 + 1"); got != "42" {
				t.Fatalf("the signalling session after all that: %q", got)
			}
		})
	}
}

// TestTerminateOwnPooledBackend: pg_terminate_backend(pg_backend_pid())
// under transaction pooling ends the session with FATAL 57P01, as on
// Postgres, and leaves the pooled connection to the next sessions.
func TestTerminateOwnPooledBackend(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := context.Background()
	for _, ks := range []string{"app", "solotx"} {
		c := g.connect(t, ks, "")
		var pe *pgconn.PgError
		if _, err := c.Exec(ctx, "begin; select pg_terminate_backend(pg_backend_pid())").ReadAll(); !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != "57P01" {
			t.Fatalf("%s: pg_terminate_backend(pg_backend_pid()): %v, want FATAL 57P01", ks, err)
		}
		if got := one(t, g.connect(t, ks, ""), "select 1"); got != "1" {
			t.Fatalf("%s: the next session: %q", ks, got)
		}
	}
}
