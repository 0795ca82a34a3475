package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shardgate/shardgate/vschema"
)

// TestTwoPhaseCommitSurvivesGatewayCrash kills the gateway in the middle of
// a two-phase commit — after every shard prepared but before the decision,
// and after the commit decision but before any shard committed — and checks
// that a new gateway finishes the transaction the same way on every shard:
// rolled back in the first case, committed in the second.
func TestTwoPhaseCommitSurvivesGatewayCrash(t *testing.T) {
	for _, tc := range []struct {
		point  string
		commit bool
	}{{"after-prepare", false}, {"after-decide", true}} {
		t.Run(tc.point, func(t *testing.T) {
			e := newEnv(t)
			setup := e.gw.connect("app")
			mustQuery(t, setup, "create table users (id bigint primary key, name text, email text, country text)")
			e.gw.stop()

			fast := []string{"--gateway-ttl", "1s", "--resolve-interval", "200ms"}
			crashing := startGatewayEnv(t, e.etcd.Endpoints(), []string{"SHARDGATE_TEST_CRASH=" + tc.point}, fast...)
			ks := e.loadTopology().Keyspace("app")
			a, b := int64(1), int64(2)
			for ks.ShardFor(vschema.HashInt64(b)) == ks.ShardFor(vschema.HashInt64(a)) {
				b++
			}
			c := crashing.connect("app")
			mustQuery(t, c, "begin")
			mustQuery(t, c, fmt.Sprintf("insert into users (id, name) values (%d, 'a')", a))
			mustQuery(t, c, fmt.Sprintf("insert into users (id, name) values (%d, 'b')", b))
			if _, err := query(c, "commit"); err == nil {
				t.Fatal("COMMIT answered although the gateway was to crash")
			}
			select {
			case err := <-crashing.exited:
				crashing.exited <- err
			case <-time.After(10 * time.Second):
				t.Fatal("the gateway did not crash")
			}
			// Both shards hold the prepared transaction now.
			for i := range e.shards {
				if got := mustQuery(t, e.backend(i), "select count(*) from pg_prepared_xacts")[0][0]; got != "1" {
					t.Fatalf("shard s%d has %s prepared transactions after the crash", i, got)
				}
			}

			startGateway(t, e.etcd.Endpoints(), fast...)
			eventually(t, 30*time.Second, "the in-doubt transaction to be resolved", func() bool {
				for i := range e.shards {
					if mustQuery(t, e.backend(i), "select count(*) from pg_prepared_xacts")[0][0] != "0" {
						return false
					}
				}
				return true
			})
			want := "0"
			if tc.commit {
				want = "1"
			}
			for i := range e.shards {
				if got := mustQuery(t, e.backend(i), fmt.Sprintf("select count(*) from users where id in (%d, %d)", a, b))[0][0]; got != want {
					t.Fatalf("shard s%d has %s of the transaction's rows, want %s", i, got, want)
				}
			}
			// The record goes while the client hears of the commit.
			deadline := time.Now().Add(10 * time.Second)
			for {
				recs, err := e.store().ListTwoPC(context.Background())
				if err == nil && len(recs) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("two-phase commit records left: %v %v", recs, err)
				}
				time.Sleep(10 * time.Millisecond) // polling etcd for the deletion
			}
		})
	}
}
