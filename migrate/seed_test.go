package migrate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
)

// TestSeedAndStream moves logical shards 16-23 and 24-31 of 64 from one
// source to two targets while the source takes writes the whole time: the
// seed copies under the slot's snapshot, the stream catches up from its
// consistent point, and once the writes stop and the stream caught up,
// verify finds no difference and no target holds a row of another range.
func TestSeedAndStream(t *testing.T) {
	pg := pgtest.Start(t, 3)
	src := connect(t, pg[0])
	targets := map[string]*pgconn.PgConn{"t1": connect(t, pg[1]), "t2": connect(t, pg[2])}
	run(t, src, `create table users (id bigint primary key, name text, big text);
create table orders (id bigint primary key, user_id bigint not null, note text);
create table countries (code text primary key, name text);
insert into users select g, 'u' || g, null from generate_series(1, 50000) g;
insert into orders select g, g % 50000 + 1, 'o' || g from generate_series(1, 100000) g;
insert into countries values ('de', 'Germany'), ('fr', 'France');`)
	cfg, err := pgconn.ParseConfig(pg[0].DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}

	// Writes on the source all along: inserts, updates that move orders
	// between users (keyspace ids), deletes; each its own transaction.
	writer := connect(t, pg[0])
	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(3, 4))
		for i := int64(200000); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var sql string
			switch rng.IntN(4) {
			case 0:
				sql = fmt.Sprintf("insert into orders values (%d, %d, 'new')", i, rng.IntN(50000)+1)
			case 1:
				sql = fmt.Sprintf("update orders set user_id = %d, note = 'moved' where id = %d", rng.IntN(50000)+1, rng.IntN(100000)+1)
			case 2:
				sql = fmt.Sprintf("update users set name = 'w%d' where id = %d", i, rng.IntN(50000)+1)
			default:
				sql = fmt.Sprintf("delete from orders where id = %d", rng.IntN(100000)+1)
			}
			if err := writer.Exec(context.Background(), sql).Close(); err != nil {
				t.Errorf("%s: %v", sql, err)
				return
			}
			writes.Add(1)
		}
	})
	t.Cleanup(func() { // also when the test fails early
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	})

	seed := &Seed{Source: cfg, Keyspace: streamKeyspace, LogicalCount: 64,
		Runs:    []Run{{First: 16, Last: 23, From: "s0", To: "t1"}, {First: 24, Last: 31, From: "s0", To: "t2"}},
		Targets: targets, Slot: "sg_seed", Publication: "sg_seed"}
	start := time.Now()
	seeded, err := seed.Copy(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := DropSlot(context.Background(), src, "sg_seed", "sg_seed"); err != nil {
			t.Error(err)
		}
	})
	copied := seeded.Rows["users"] + seeded.Rows["orders"]
	t.Logf("copied %d rows in %v (%.0f rows/s) while %d writes ran", copied, time.Since(start).Round(time.Millisecond), float64(copied)/time.Since(start).Seconds(), writes.Load())
	if seeded.Rows["users"] == 0 || seeded.Rows["countries"] != 4 {
		t.Fatalf("rows copied: %v (want the countries once per target)", seeded.Rows)
	}

	lo1, hi1 := KeyRange(64, 16, 23)
	lo2, hi2 := KeyRange(64, 24, 31)
	replConn, err := pgconn.ConnectConfig(t.Context(), ReplicationConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	s := &Stream{Replication: replConn, Slot: seeded.Slot.Name, Publication: "sg_seed", Start: seeded.Slot.Consistent,
		Keyspace: streamKeyspace, Targets: []Target{{Lo: lo1, Hi: hi1, Shard: "t1"}, {Lo: lo2, Hi: hi2, Shard: "t2"}}, Conns: targets}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// Let the stream apply under load for a while, then stop the writes.
	for writes.Load() < 3000 {
		time.Sleep(10 * time.Millisecond) // polling the writer's progress
	}
	close(stop)
	wg.Wait()
	end, err := pglogrepl.ParseLSN(run(t, src, "select pg_current_wal_insert_lsn()")[0][0])
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for s.Flushed() < end {
		if time.Now().After(deadline) {
			t.Fatalf("the stream holds %s, the source is at %s", s.Flushed(), end)
		}
		time.Sleep(10 * time.Millisecond) // polling the stream's position
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("stream: %v", err)
	}
	t.Logf("%d writes during the move; the stream applied %d changes", writes.Load(), s.Applied())

	for _, tg := range []Target{{Lo: lo1, Hi: hi1, Shard: "t1"}, {Lo: lo2, Hi: hi2, Shard: "t2"}} {
		dst := targets[tg.Shard]
		for _, name := range []string{"users", "orders", "countries"} {
			ct, err := Columns(t.Context(), src, name, streamKeyspace.Tables[name])
			if err != nil {
				t.Fatal(err)
			}
			diffs, err := VerifyRange(t.Context(), src, dst, ct, tg.Lo, tg.Hi)
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) > 0 {
				t.Errorf("%s on %s: %d differences, first %v", name, tg.Shard, len(diffs), diffs[0])
			}
			if name != "countries" {
				out := run(t, dst, fmt.Sprintf("select count(*) from %s where not (%s)", name, ct.rangeFilter(tg.Lo, tg.Hi)))
				if out[0][0] != "0" {
					t.Errorf("%s on %s: %s rows of other keyspace ids", name, tg.Shard, out[0][0])
				}
			}
		}
	}
}
