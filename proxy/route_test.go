package proxy

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// movableGateway is a gateway over keyspace app (16 logical shards over s0
// and s1) whose topology the test can change, as the etcd watcher would.
type movableGateway struct {
	*testGateway
	cur atomic.Pointer[topology.Snapshot]
}

func startMovableGateway(t *testing.T) *movableGateway {
	t.Helper()
	shards, store := startShards(t, "move")
	snap, err := store.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	g := &movableGateway{}
	g.cur.Store(snap)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	pools := NewPools(PoolConfig{MaxConns: 4, IdleTimeout: time.Minute, AcquireTimeout: 10 * time.Second, ConnectTimeout: 5 * time.Second}, log)
	pools.Sync(snap)
	metrics := NewMetrics(prometheus.NewRegistry())
	srv := NewServer(Config{Topology: g.cur.Load, Pools: pools, Log: log, TwoPC: store, GatewayID: "move", Auth: AuthTrust, Metrics: metrics})
	t.Cleanup(pools.Close)
	g.testGateway = &testGateway{addr: serveLoopback(t, srv), shards: shards, snap: snap, srv: srv, store: store, metrics: metrics}
	exec(t, g.connect(t, "app", ""), "create table users (id bigint primary key, name text)")
	return g
}

// move places logical shard ls on shard to and hands the gateway the new
// topology.
func (g *movableGateway) move(t *testing.T, ls int, to string) {
	t.Helper()
	if _, err := g.store.MoveLogicalShards(t.Context(), "app", ls, ls, to); err != nil {
		t.Fatal(err)
	}
	snap, err := g.store.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	g.cur.Store(snap)
}

// direct connects to shard i itself, around the gateway.
func (g *movableGateway) direct(t *testing.T, i int) *pgconn.PgConn {
	t.Helper()
	c, err := pgconn.Connect(t.Context(), g.shards[i].DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// keyOn returns a key whose logical shard is placed on shard, and that
// logical shard.
func keyOn(t *testing.T, snap *topology.Snapshot, shard string) (key int64, logical int) {
	t.Helper()
	m := snap.Keyspace("app").Map
	for k := int64(1); k < 1000; k++ {
		if h := vschema.HashInt64(k); m.ShardFor(h) == shard {
			return k, m.LogicalShard(h)
		}
	}
	t.Fatalf("no key on %s", shard)
	return 0, 0
}

// TestPreparedStatementFollowsTopology: a statement prepared once routes
// each execution by the topology of the moment — after its logical shard
// moves, the next execution reaches the new shard without a new Parse —
// while an open transaction keeps the topology it started with.
func TestPreparedStatementFollowsTopology(t *testing.T) {
	g := startMovableGateway(t)
	key, logical := keyOn(t, g.cur.Load(), "s0")
	// The same key on both shards, told apart by name: where a query
	// lands is where its answer comes from.
	for i, name := range []string{"on s0", "on s1"} {
		exec(t, g.direct(t, i), "insert into users (id, name) values ("+strconv.FormatInt(key, 10)+", '"+name+"')")
	}
	c := g.connect(t, "app", "")
	if _, err := c.Prepare(t.Context(), "byid", "select name from users where id = $1", nil); err != nil {
		t.Fatal(err)
	}
	run := func(c *pgconn.PgConn) string {
		t.Helper()
		r := c.ExecPrepared(t.Context(), "byid", [][]byte{[]byte(strconv.FormatInt(key, 10))}, nil, nil).Read()
		if r.Err != nil || len(r.Rows) != 1 {
			t.Fatalf("execute: %v, %d rows", r.Err, len(r.Rows))
		}
		return string(r.Rows[0][0])
	}
	if got := run(c); got != "on s0" {
		t.Fatalf("before the move: %q", got)
	}

	// A transaction that began before the move keeps reading where it
	// began; a new one reads the new place.
	inTxn := g.connect(t, "app", "")
	if _, err := inTxn.Prepare(t.Context(), "byid", "select name from users where id = $1", nil); err != nil {
		t.Fatal(err)
	}
	exec(t, inTxn, "begin")
	if got := run(inTxn); got != "on s0" {
		t.Fatalf("in the transaction, before the move: %q", got)
	}

	g.move(t, logical, "s1")
	if got := run(c); got != "on s1" {
		t.Fatalf("after the move: %q, want the row of s1", got)
	}
	if got := run(inTxn); got != "on s0" {
		t.Fatalf("in the transaction that began before the move: %q, want the row of s0", got)
	}
	exec(t, inTxn, "commit")
	if got := run(inTxn); got != "on s1" {
		t.Fatalf("after the transaction: %q, want the row of s1", got)
	}
	// The simple protocol routes by the new topology too.
	if got := one(t, c, "select name from users where id = "+strconv.FormatInt(key, 10)); got != "on s1" {
		t.Fatalf("simple query after the move: %q", got)
	}
}

// TestScatterStreamsShardsInParallel: a statement over every shard runs on
// all of them at once, and the rows of a shard that answers reach the
// client while another is still blocked; an error on one shard fails the
// statement at once, cancelling the shard that is still blocked.
func TestScatterStreamsShardsInParallel(t *testing.T) {
	g := startMovableGateway(t)
	c := g.connect(t, "app", "")
	// Enough rows on each shard that the gateway flushes them before the
	// statement ends.
	values := make([]string, 2000)
	for i := range values {
		values[i] = fmt.Sprintf("(%d, repeat('x', 200))", i+1)
	}
	exec(t, c, "insert into users (id, name) values "+strings.Join(values, ", "))
	perShard := map[string]int{}
	m := g.cur.Load().Keyspace("app").Map
	for k := int64(1); k <= 2000; k++ {
		perShard[m.ShardFor(vschema.HashInt64(k))]++
	}

	// s0, the first shard in order, is blocked by a lock held directly.
	blocker := g.direct(t, 0)
	exec(t, blocker, "begin")
	exec(t, blocker, "lock table users in access exclusive mode")

	rows := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		mrr := c.Exec(context.Background(), "select id, name from users")
		n := 0
		for mrr.NextResult() {
			rr := mrr.ResultReader()
			for rr.NextRow() {
				if n++; n == 1 {
					rows <- n
				}
			}
		}
		err := mrr.Close()
		if err == nil && n != 2000 {
			err = fmt.Errorf("got %d rows, want 2000", n)
		}
		done <- err
	}()
	select {
	case <-rows:
		// Rows of s1 arrived while s0 was still blocked.
	case err := <-done:
		t.Fatalf("the statement ended while a shard was blocked: %v", err)
	case <-time.After(time.Minute):
		exec(t, blocker, "rollback")
		<-done
		t.Fatal("no row arrived while s0 was blocked: shards run one after another?")
	}
	exec(t, blocker, "rollback")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if perShard["s0"] == 0 || perShard["s1"] == 0 {
		t.Fatalf("rows not on both shards: %v", perShard)
	}

	// Now s1 is blocked and s0 fails: the error ends the statement without
	// waiting for s1, whose query is cancelled.
	blocker = g.direct(t, 1)
	exec(t, blocker, "begin")
	exec(t, blocker, "lock table users in access exclusive mode")
	k0, _ := keyOn(t, g.cur.Load(), "s0")
	failed := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "select 1 / (id - "+strconv.FormatInt(k0, 10)+") from users").ReadAll()
		failed <- err
	}()
	select {
	case err := <-failed:
		if code(err) != "22012" {
			t.Fatalf("got %v, want division_by_zero from s0", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("an error on s0 did not end the statement while s1 was blocked")
	}
	// Nothing of the statement waits on s1 any more.
	wait := g.direct(t, 1)
	if n := one(t, wait, "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and query like 'select 1 / (id%'"); n != "0" {
		t.Fatalf("%s queries still wait on s1", n)
	}
	exec(t, blocker, "rollback")
	// The session goes on.
	if got := one(t, c, "select count(*) from users"); got != "2000" {
		t.Fatalf("count after the failure: %s", got)
	}
}
