package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
