package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardgate/shardgate/internal/pgtest"
)

// TestPgbench initializes pgbench's tables through shardgate (COPY and
// inserts in one transaction over every shard), runs the built-in TPC-B
// script in each query mode and the select-only script, and then checks on
// the shards that no transaction was lost or half applied: the TPC-B
// invariant, every balance change recorded once in the history.
func TestPgbench(t *testing.T) {
	bin, err := pgtest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.shardctl(0, "keyspace", "create", "bench", "--logical-shards", "64", "--shards", "s0,s1")
	e.shardctl(0, "vschema", "apply", repoPath("testdata/vschema/pgbench.yaml"))
	eventually(t, 10*time.Second, "keyspace bench at the gateway", func() bool {
		_, err := pgconnConnect(e.gw.dsn("bench"))
		return err == nil
	})
	host, port, _ := strings.Cut(e.gw.addr, ":")
	pgbench := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "pgbench"), append([]string{"-h", host, "-p", port, "-U", "app"}, append(args, "bench")...)...)
		cmd.Env = append(cmd.Environ(), "PGSSLMODE=disable", "PGOPTIONS=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	const scale = 4
	pgbench("-i", "-s", strconv.Itoa(scale))
	// A run with pgbench's own preparation: VACUUM and TRUNCATE through
	// the gateway.
	pgbench("-c", "2", "-t", "5")

	processed := regexp.MustCompile(`number of transactions actually processed: (\d+)/(\d+)`)
	failed := regexp.MustCompile(`number of failed transactions: (\d+)`)
	for _, args := range [][]string{
		{"-M", "simple"}, {"-M", "extended"}, {"-M", "prepared"}, {"-M", "prepared", "-S"},
	} {
		// -n: no vacuum and no TRUNCATE of the history between runs, so the
		// history keeps every change for the invariant below.
		out := pgbench(append([]string{"-n", "-c", "4", "-j", "2", "-t", "50"}, args...)...)
		m := processed.FindStringSubmatch(out)
		if m == nil || m[1] != m[2] || m[1] != "200" {
			t.Fatalf("pgbench %v: not every transaction ran:\n%s", args, out)
		}
		if f := failed.FindStringSubmatch(out); f != nil && f[1] != "0" {
			t.Fatalf("pgbench %v: failed transactions:\n%s", args, out)
		}
	}

	// The TPC-B invariant, summed over the shards directly.
	sum := func(sql string) int64 {
		var total int64
		for i := range e.shards {
			v := mustQuery(t, e.backend(i), sql)[0][0]
			if v == "NULL" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", sql, v)
			}
			total += n
		}
		return total
	}
	accounts := sum("select sum(abalance) from pgbench_accounts")
	tellers := sum("select sum(tbalance) from pgbench_tellers")
	branches := sum("select sum(bbalance) from pgbench_branches")
	history := sum("select sum(delta) from pgbench_history")
	if accounts != tellers || tellers != branches || branches != history {
		t.Fatalf("TPC-B invariant broken: accounts %d, tellers %d, branches %d, history %d", accounts, tellers, branches, history)
	}
	if n, want := sum("select count(*) from pgbench_history"), int64(2*5+3*200); n != want {
		t.Fatalf("history has %d rows, want %d (one per TPC-B transaction since the last TRUNCATE)", n, want)
	}
	if n := sum("select count(*) from pgbench_accounts"); n != scale*100000 {
		t.Fatalf("%d accounts, want %d", n, scale*100000)
	}
	for i := range e.shards {
		if got := mustQuery(t, e.backend(i), "select count(*) from pg_prepared_xacts")[0][0]; got != "0" {
			t.Fatalf("shard s%d keeps %s prepared transactions", i, got)
		}
		// Both shards hold part of every table.
		for _, table := range []string{"pgbench_accounts", "pgbench_tellers"} {
			if got := mustQuery(t, e.backend(i), fmt.Sprintf("select count(*) > 0 from %s", table))[0][0]; got != "t" {
				t.Fatalf("shard s%d holds no %s", i, table)
			}
		}
	}
}
