package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/drivertest"
	"github.com/shardgate/shardgate/internal/pgtest"
)

// TestRealClientsThroughGateway runs the one client scenario (prepared
// inserts, keyed and scatter reads, rollback, a multi-shard commit,
// savepoints, SET/SHOW, cancel, COPY) unmodified through shardgate with
// every real client: psql, pgx, lib/pq, node-postgres, psycopg2 and JDBC.
func TestRealClientsThroughGateway(t *testing.T) {
	for _, c := range drivertest.Clients {
		if err := drivertest.Ensure(c); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
	}
	e := newEnv(t)
	e.shardctl(0, "keyspace", "create", "bank", "--logical-shards", "64", "--shards", "s0,s1")
	e.shardctl(0, "vschema", "apply", repoPath("testdata/vschema/drivers.yaml"))
	eventually(t, 10*time.Second, "keyspace bank at the gateway", func() bool {
		_, err := pgconnConnect(e.gw.dsn("bank"))
		return err == nil
	})
	host, port, _ := strings.Cut(e.gw.addr, ":")
	env, err := drivertest.EnvFromDSN(fmt.Sprintf("postgres://app@%s:%s/bank?sslmode=disable", host, port))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range drivertest.Clients {
		t.Run(string(c), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := drivertest.Run(ctx, c, env)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, step := range append(drivertest.Steps(c), "all") {
				if !strings.Contains(out, "ok "+step+"\n") {
					t.Errorf("step %s did not pass:\n%s", step, out)
				}
			}
		})
	}
}

// TestPsqlCancel cancels a running statement the way a person does in
// psql: Ctrl-C, which makes psql send a CancelRequest.
func TestPsqlCancel(t *testing.T) {
	e := newEnv(t)
	bin, err := pgtest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "psql"), "-X", e.gw.dsn("app"), "-c", "select pg_sleep(20)")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "pg_sleep to run on a shard", func() bool {
		for i := range e.shards {
			q := "select count(*) from pg_stat_activity where query = 'select pg_sleep(20)' and state = 'active'"
			if mustQuery(t, e.backend(i), q)[0][0] == "1" {
				return true
			}
		}
		return false
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if err == nil || !strings.Contains(stderr.String(), "canceling statement due to user request") || time.Since(start) > 15*time.Second {
		t.Fatalf("psql after Ctrl-C: %v after %s\n%s", err, time.Since(start), stderr.String())
	}
}

// TestSessionStateThroughGateway runs the session-state scenario (temporary
// table, cursor WITH HOLD, SQL PREPARE, large object, LISTEN/NOTIFY while
// idle, a pool's reset) unmodified through psycopg2 and node-postgres on an
// unsharded keyspace in each pooling mode. Afterwards no session is pinned
// and nothing of the scenarios is left on the shard.
func TestSessionStateThroughGateway(t *testing.T) {
	for _, c := range drivertest.StateClients {
		if err := drivertest.Ensure(c); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
	}
	e := newEnv(t)
	vs := filepath.Join(t.TempDir(), "legacy.yaml")
	if err := os.WriteFile(vs, []byte("keyspaces:\n  legacy_session:\n    sharded: false\n    pooling: session\n  legacy_tx:\n    sharded: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ks := range []string{"legacy_session", "legacy_tx"} {
		e.shardctl(0, "keyspace", "create", ks, "--logical-shards", "1", "--shards", "s0")
	}
	e.shardctl(0, "vschema", "apply", vs)
	host, port, _ := strings.Cut(e.gw.addr, ":")
	for _, ks := range []string{"legacy_session", "legacy_tx"} {
		eventually(t, 10*time.Second, "keyspace "+ks+" at the gateway", func() bool {
			_, err := pgconnConnect(e.gw.dsn(ks))
			return err == nil
		})
		env, err := drivertest.EnvFromDSN(fmt.Sprintf("postgres://app@%s:%s/%s?sslmode=disable", host, port, ks))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range drivertest.StateClients {
			t.Run(ks+"/"+string(c), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				out, err := drivertest.RunState(ctx, c, env)
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				for _, step := range append(slices.Clone(drivertest.StateSteps), "all") {
					if !strings.Contains(out, "ok "+step+"\n") {
						t.Errorf("step %s did not pass:\n%s", step, out)
					}
				}
			})
		}
	}
	eventually(t, 10*time.Second, "no session pinned", func() bool {
		return strings.Contains(scrapeMetrics(t, e.gw.admin, ""), "\nshardgate_pinned_sessions 0\n")
	})
	direct, err := pgconn.Connect(context.Background(), e.shards[0].DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(context.Background())
	for sql, want := range map[string]string{
		"select count(*) from pg_class where relpersistence = 't' and relname = 'scratch'": "0",
		"select count(*) from pg_locks where locktype = 'advisory'":                        "0",
		"select count(*) from pg_largeobject_metadata":                                     "0",
	} {
		if got := mustQuery(t, direct, sql)[0][0]; got != want {
			t.Errorf("left on the shard: %s = %s, want %s", sql, got, want)
		}
	}
}
