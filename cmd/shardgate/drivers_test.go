package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shardgate/shardgate/internal/drivertest"
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
