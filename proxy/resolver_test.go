package proxy

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// TestResolverQuietInNormalOperation runs two-phase commits while the
// gateway's own resolver passes over them again and again: it must neither
// touch them nor log that it rolled back or finished anything, since
// nothing of the kind happened.
func TestResolverQuietInNormalOperation(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	reg, err := g.store.RegisterGateway(t.Context(), topology.GatewayInfo{ID: "test", Started: time.Now()}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	core, logs := observer.New(zapcore.InfoLevel)
	// The test topology's unreachable shard is not this test's concern.
	snap := *g.snap
	snap.Shards = map[string]*topology.Shard{"s0": g.snap.Shards["s0"], "s1": g.snap.Shards["s1"]}
	r := NewResolver(g.store, func() *topology.Snapshot { return &snap }, g.srv.pools, "test", g.srv.InFlight, g.metrics, zap.New(core))

	const writers, each = 4, 15
	var wg sync.WaitGroup
	for w := range writers {
		c := g.connect(t, "app", "")
		wg.Go(func() {
			for i := range each {
				id := 1000 + w*100 + i*2
				// Two rows whose ids land on different shards most of
				// the time: a two-phase commit.
				sql := fmt.Sprintf("insert into users (id, name) values (%d, 'a'), (%d, 'b')", id, id+1)
				if _, err := c.Exec(context.Background(), sql).ReadAll(); err != nil {
					t.Errorf("%s: %v", sql, err)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	resolved := make(chan int)
	go func() {
		passes := 0
		for {
			select {
			case <-stop:
				resolved <- passes
				return
			default:
			}
			if err := r.ResolveOnce(context.Background()); err != nil {
				t.Errorf("ResolveOnce: %v", err)
			}
			passes++
		}
	}()
	wg.Wait()
	close(stop)
	if passes := <-resolved; passes == 0 {
		t.Fatal("the resolver never ran")
	}
	for _, e := range logs.All() {
		t.Errorf("resolver logged in normal operation: %s %v", e.Message, e.ContextMap())
	}
	c := g.connect(t, "app", "")
	rows := exec(t, c, "select count(*) from users where id >= 1000")[0].Rows
	if want := fmt.Sprint(writers * each * 2); string(rows[0][0]) != want {
		t.Fatalf("%s rows committed, want %s", rows[0][0], want)
	}
	if v, _ := metricValue(t, g.reg, "shardgate_twopc_total", map[string]string{"outcome": "committed"}); v == 0 {
		t.Error("no two-phase commit counted")
	}
}

// TestResolverHasItsOwnConnections: with every client connection of the
// shards held by a client's open transaction, the resolver still rolls
// back a prepared transaction that has no record: recovery keeps
// connections of its own.
func TestResolverHasItsOwnConnections(t *testing.T) {
	pool := DefaultPoolConfig
	pool.MaxConns, pool.AcquireTimeout = 1, 300*time.Millisecond
	g := startGateway(t, pool)
	c := g.connect(t, "app", "")
	keys := keysByShard(t, g, c)

	direct, err := pgconn.Connect(context.Background(), g.shards[0].DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(context.Background())
	exec(t, direct, "begin; insert into users (id, name) values (-1, 'orphan'); prepare transaction 'sg_gone_1_s0'")

	exec(t, c, "begin")
	for _, key := range keys {
		exec(t, c, "select name from users where id = "+key)
	}
	if _, err := g.connectErr("app"); code(err) != "53300" {
		t.Fatalf("a login with the client pool held: %v, want 53300", err)
	}

	snap := *g.snap
	snap.Shards = map[string]*topology.Shard{"s0": g.snap.Shards["s0"], "s1": g.snap.Shards["s1"]}
	r := NewResolver(g.store, func() *topology.Snapshot { return &snap }, g.srv.pools, "test", g.srv.InFlight, g.metrics, zap.NewNop())
	if err := r.ResolveOnce(context.Background()); err != nil {
		t.Fatalf("resolving with the client pool held: %v", err)
	}
	if n := one(t, direct, "select count(*) from pg_prepared_xacts where gid = 'sg_gone_1_s0'"); n != "0" {
		t.Fatal("the orphaned prepared transaction is still there")
	}
	exec(t, c, "commit")
}

// TestResolverPastADownParticipant: a commit decided by a gateway that is
// gone is carried out on every participant that answers, although another
// participant is down (early records name every shard of the keyspace);
// the record stays for when that one is back.
func TestResolverPastADownParticipant(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	direct, err := pgconn.Connect(context.Background(), g.shards[0].DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(context.Background())
	exec(t, direct, "begin; insert into users (id, name) values (-2, 'decided'); prepare transaction 'sg_gone_2_s0'")
	rec := topology.TwoPC{GID: "sg_gone_2", Gateway: "gone", Participants: []string{"dead", "s0"}}
	if err := g.store.BeginTwoPC(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	if err := g.store.DecideTwoPC(t.Context(), rec.GID, topology.TwoPCCommit); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(g.store, func() *topology.Snapshot { return g.snap }, g.srv.pools, "test", g.srv.InFlight, g.metrics, zap.NewNop())
	if err := r.ResolveOnce(t.Context()); err == nil {
		t.Fatal("ResolveOnce with a participant down: no error")
	}
	if n := one(t, direct, "select count(*) from users where id = -2"); n != "1" {
		t.Fatal("the decided commit was not carried out on the participant that answers")
	}
	recs, err := g.store.ListTwoPC(t.Context())
	if err != nil || !slices.ContainsFunc(recs, func(r topology.TwoPC) bool { return r.GID == rec.GID }) {
		t.Fatalf("the record went while a participant was down: %v %v", recs, err)
	}
}

// TestTwoPCRecordBegunEarly: a transaction's two-phase commit record is in
// etcd, undecided, as soon as it wrote on a second shard, so that COMMIT
// waits for the decision only. The gateway's own resolver leaves it alone
// while the transaction runs; COMMIT decides it; a transaction that rolls
// back, or whose client leaves, takes its record with it.
func TestTwoPCRecordBegunEarly(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	reg, err := g.store.RegisterGateway(t.Context(), topology.GatewayInfo{ID: "test", Started: time.Now()}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	snap := *g.snap
	snap.Shards = map[string]*topology.Shard{"s0": g.snap.Shards["s0"], "s1": g.snap.Shards["s1"]}
	r := NewResolver(g.store, func() *topology.Snapshot { return &snap }, g.srv.pools, "test", g.srv.InFlight, g.metrics, zap.NewNop())
	records := func() []topology.TwoPC {
		t.Helper()
		recs, err := g.store.ListTwoPC(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	// waitRecord waits for the background BeginTwoPC of the open
	// transaction.
	waitRecord := func() topology.TwoPC {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if recs := records(); len(recs) == 1 {
				return recs[0]
			} else if len(recs) > 1 || time.Now().After(deadline) {
				t.Fatalf("two-phase commit records %+v, want one", recs)
			}
			time.Sleep(5 * time.Millisecond) // polling etcd for the write
		}
	}
	ks := g.snap.Keyspace("app")
	a, b := g.twoKeysFrom(5000)
	insert := func(c *pgconn.PgConn, id int64) {
		exec(t, c, fmt.Sprintf("insert into users (id, name) values (%d, 'early')", id))
	}

	g.noPrepared(t) // the setup's own are gone
	c := g.connect(t, "app", "")
	exec(t, c, "begin")
	insert(c, a)
	if recs := records(); len(recs) != 0 {
		t.Fatalf("a record for a transaction that wrote on one shard: %+v", recs)
	}
	insert(c, b)
	rec := waitRecord()
	if rec.Decision != topology.TwoPCUndecided || rec.Gateway != "test" ||
		!slices.Contains(rec.Participants, ks.ShardFor(vschema.HashInt64(a))) || !slices.Contains(rec.Participants, ks.ShardFor(vschema.HashInt64(b))) {
		t.Fatalf("record %+v: want undecided, of gateway test, with both written shards", rec)
	}
	if err := r.ResolveOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if recs := records(); len(recs) != 1 || recs[0].Decision != topology.TwoPCUndecided {
		t.Fatalf("the resolver touched a running transaction's record: %+v", recs)
	}
	exec(t, c, "commit")
	if got := rows(t, c, fmt.Sprintf("select count(*) from users where id in (%d, %d)", a, b)); got[0] != "2" {
		t.Fatalf("committed %s rows, want 2", got[0])
	}
	g.noPrepared(t)

	// Rolled back: the record goes, nothing was prepared.
	c1, c2 := g.twoKeysFrom(6000)
	exec(t, c, "begin")
	insert(c, c1)
	insert(c, c2)
	waitRecord()
	exec(t, c, "rollback")
	g.noPrepared(t)

	// The client leaves mid-transaction: the same.
	gone := g.connect(t, "app", "")
	exec(t, gone, "begin")
	d1, d2 := g.twoKeysFrom(7000)
	insert(gone, d1)
	insert(gone, d2)
	waitRecord()
	gone.Close(context.Background())
	g.noPrepared(t)
	if got := rows(t, c, fmt.Sprintf("select count(*) from users where id in (%d, %d, %d, %d)", c1, c2, d1, d2)); got[0] != "0" {
		t.Fatalf("%s rows of rolled back transactions", got[0])
	}
}
