package drivertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardgate/shardgate/internal/pgtest"
)

// TestScenariosAgainstPostgres proves the scenario programs: every client runs
// its scenario against one plain Postgres, each in a database of its own, and
// must report every step.
func TestScenariosAgainstPostgres(t *testing.T) {
	pg := pgtest.Start(t, 1)[0]
	// The subtests run in parallel, after this function has returned; the
	// context ends with the test's cleanup.
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	t.Cleanup(cancel)
	admin, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Clients {
		if _, err := admin.Exec(ctx, "create database drivertest_"+string(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Close(ctx); err != nil {
		t.Fatal(err)
	}

	for _, c := range Clients {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			db := "drivertest_" + string(c)
			env, err := EnvFromDSN(pg.DSN(db))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := Ensure(c); err != nil {
				t.Fatal(err)
			}
			t.Logf("making %s available took %v", c, time.Since(start).Round(time.Millisecond))
			start = time.Now()
			out, err := Run(ctx, c, env)
			t.Logf("%s scenario took %v", c, time.Since(start).Round(time.Millisecond))
			if err != nil {
				t.Fatalf("%v\noutput:\n%s", err, out)
			}
			lines := strings.Split(out, "\n")
			for _, step := range append(Steps(c), "all") {
				want := "ok " + step
				found := false
				for _, l := range lines {
					if strings.TrimSpace(l) == want {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("output lacks %q", want)
				}
			}
			t.Logf("output:\n%s", out)
		})
	}
}

func TestEnvFromDSN(t *testing.T) {
	for _, tc := range []struct {
		dsn  string
		want string
	}{
		{"postgres://postgres@127.0.0.1:5433/app?sslmode=disable",
			"PGDATABASE=app PGHOST=127.0.0.1 PGPORT=5433 PGSSLMODE=disable PGUSER=postgres"},
		{"postgresql://u:secret@[::1]/db",
			"PGDATABASE=db PGHOST=::1 PGPASSWORD=secret PGPORT=5432 PGSSLMODE=disable PGUSER=u"},
	} {
		env, err := EnvFromDSN(tc.dsn)
		if err != nil {
			t.Fatalf("%s: %v", tc.dsn, err)
		}
		var got []string
		for _, k := range []string{"PGDATABASE", "PGHOST", "PGPASSWORD", "PGPORT", "PGSSLMODE", "PGUSER"} {
			if v, ok := env[k]; ok {
				got = append(got, fmt.Sprintf("%s=%s", k, v))
			}
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("EnvFromDSN(%q) = %s, want %s", tc.dsn, g, tc.want)
		}
		dsn, err := dsnFromEnv(env)
		if err != nil {
			t.Fatal(err)
		}
		back, err := EnvFromDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(back) != fmt.Sprint(env) {
			t.Errorf("round trip through %s: %v, want %v", dsn, back, env)
		}
	}
}

// TestStateScenariosAgainstPostgres proves the session-state scenario
// programs against one plain Postgres.
func TestStateScenariosAgainstPostgres(t *testing.T) {
	pg := pgtest.Start(t, 1)[0]
	env, err := EnvFromDSN(pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range StateClients {
		t.Run(string(c), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			out, err := RunState(ctx, c, env)
			if err != nil {
				t.Fatalf("%v\noutput:\n%s", err, out)
			}
			for _, step := range append(slices.Clone(StateSteps), "all") {
				if !strings.Contains(out, "ok "+step+"\n") {
					t.Errorf("output lacks %q:\n%s", "ok "+step, out)
				}
			}
		})
	}
}
