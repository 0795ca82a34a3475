package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/vschema"
)

// sequenceRows is how many rows the load of TestGlobalSequences inserts.
const sequenceRows = 100_000

// TestGlobalSequences: a bigserial key and an identity column of a
// sharded keyspace draw from global sequences. RETURNING, currval,
// lastval, nextval and setval answer as on one Postgres; a reference
// table's copies store the same ids. Then 8 clients on two gateways
// insert 100,000 rows while one gateway is SIGKILLed and started again:
// no id repeats, every row is on the shard its id hashes to, and the ids
// the dead gateway held and never handed out are all that is missing.
func TestGlobalSequences(t *testing.T) {
	e := newEnvOf(t, 2, "ids", "testdata/vschema/ids.yaml")
	c := e.gw.connect("ids")
	mustQuery(t, c, "create table items (id bigserial primary key, client int not null, n int not null)")
	mustQuery(t, c, "create table tags (id int generated always as identity primary key, name text not null)")

	if got := mustQuery(t, c, "insert into items (client, n) values (-1, 0), (-1, 1) returning id"); !slices.Equal(column(got), []string{"1", "2"}) {
		t.Fatalf("ids returned: %q, want 1 and 2", got)
	}
	if got := mustQuery(t, c, "select currval('items_id_seq'), lastval(), nextval('items_id_seq')"); !slices.Equal(got[0], []string{"2", "2", "3"}) {
		t.Fatalf("currval, lastval, nextval: %q", got)
	}
	if got := mustQuery(t, c, "select setval('items_id_seq', 1000)"); got[0][0] != "1000" {
		t.Fatalf("setval: %q", got)
	}
	if got := mustQuery(t, c, "insert into items values (default, -1, 2) returning id"); got[0][0] != "1001" {
		t.Fatalf("the id after setval(1000): %q", got)
	}
	for _, sql := range []string{"select nextval('nope')", "select currval('nope')"} {
		if _, err := query(c, sql); pgCode(err) != "42P01" {
			t.Fatalf("%s: %v, want 42P01", sql, err)
		}
	}
	if _, err := query(c, "select setval('items_id_seq', 'many')"); pgCode(err) != "22P02" {
		t.Fatalf("setval with a value no bigint: %v, want 22P02", err)
	}
	other := e.gw.connect("ids")
	if _, err := query(other, "select currval('items_id_seq')"); pgCode(err) != "55000" {
		t.Fatalf("currval in a session that drew none: %v, want 55000", err)
	}
	mustQuery(t, c, "insert into tags (name) values ('red'), ('blue')")
	for i := range e.shards {
		if got := mustQuery(t, e.backend(i), "select id, name from tags order by id"); len(got) != 2 || got[0][0] != "1" || got[1][0] != "2" || got[1][1] != "blue" {
			t.Fatalf("tags on s%d: %q, want ids 1 and 2 on every copy", i, got)
		}
	}

	// A table made in the transaction that inserts into it: the gateway
	// reads the catalog that transaction sees.
	mustQuery(t, c, "begin")
	mustQuery(t, c, "create table parts (owner bigint not null, id bigserial, primary key (owner, id))")
	got := mustQuery(t, c, "insert into parts (owner) values (1), (2), (3), (4), (5), (6) returning id")
	mustQuery(t, c, "commit")
	if !slices.Equal(column(got), []string{"1", "2", "3", "4", "5", "6"}) {
		t.Fatalf("parts' ids: %q, want 1 to 6 from the global sequence", got)
	}

	// ALTER SEQUENCE ... RESTART is honoured once it commits, not when
	// rolled back; a dropped sequence's table made again starts afresh,
	// as does TRUNCATE ... RESTART IDENTITY.
	mustQuery(t, c, "alter sequence items_id_seq restart with 5000")
	mustQuery(t, c, "begin")
	mustQuery(t, c, "savepoint a")
	mustQuery(t, c, "alter sequence items_id_seq restart with 1")
	mustQuery(t, c, "rollback to a")
	mustQuery(t, c, "commit")
	if got := mustQuery(t, c, "insert into items (client, n) values (-1, 3) returning id"); got[0][0] != "5000" {
		t.Fatalf("after RESTART WITH 5000 and one rolled back: id %q", got)
	}
	mustQuery(t, c, "drop table parts")
	mustQuery(t, c, "create table parts (owner bigint not null, id bigserial, primary key (owner, id))")
	if got := mustQuery(t, c, "insert into parts (owner) values (9) returning id"); got[0][0] != "1" {
		t.Fatalf("parts made again: id %q, want 1", got)
	}
	mustQuery(t, c, "insert into parts (owner) values (10), (11)")
	mustQuery(t, c, "truncate parts restart identity")
	if got := mustQuery(t, c, "insert into parts (owner) values (12) returning id"); got[0][0] != "1" {
		t.Fatalf("after TRUNCATE ... RESTART IDENTITY: id %q, want 1", got)
	}

	// The load.
	gws := []*gateway{e.gw, startGateway(t, e.etcd.Endpoints())}
	var (
		gwMu    sync.Mutex
		next    atomic.Int64
		ackMu   sync.Mutex
		acked   = map[int64]bool{}
		unknown atomic.Int64
		wg      sync.WaitGroup
	)
	live := func(i int) *gateway {
		gwMu.Lock()
		defer gwMu.Unlock()
		return gws[i%len(gws)]
	}
	connect := func(i int) *pgconn.PgConn {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			conn, err := pgconn.Connect(ctx, live(i).dsn("ids"))
			cancel()
			if err == nil {
				return conn
			}
			i++
			time.Sleep(20 * time.Millisecond)
		}
	}
	for client := range 8 {
		wg.Go(func() {
			conn := connect(client)
			defer func() { conn.Close(context.Background()) }()
			for {
				n := next.Add(1)
				if n > sequenceRows {
					return
				}
				res := conn.ExecParams(context.Background(), "insert into items (client, n) values ($1, $2) returning id",
					[][]byte{[]byte(strconv.Itoa(client)), []byte(strconv.FormatInt(n, 10))}, nil, nil, nil).Read()
				if res.Err != nil {
					unknown.Add(1)
					if conn.IsClosed() {
						conn = connect(client + 1)
					}
					continue
				}
				id, _ := strconv.ParseInt(string(res.Rows[0][0]), 10, 64)
				ackMu.Lock()
				if acked[id] {
					t.Errorf("id %d handed out twice", id)
				}
				acked[id] = true
				ackMu.Unlock()
			}
		})
	}
	// Kill the second gateway a third of the way in, start another.
	eventually(t, time.Minute, "a third of the rows inserted", func() bool { return next.Load() > sequenceRows/3 })
	if err := gws[1].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-gws[1].exited
	restarted := startGateway(t, e.etcd.Endpoints())
	gwMu.Lock()
	gws[1] = restarted
	gwMu.Unlock()
	wg.Wait()

	got = mustQuery(t, c, "select count(*), count(distinct id), min(id), max(id) from items where client >= 0")
	count, _ := strconv.ParseInt(got[0][0], 10, 64)
	distinct, _ := strconv.ParseInt(got[0][1], 10, 64)
	lo, _ := strconv.ParseInt(got[0][2], 10, 64)
	hi, _ := strconv.ParseInt(got[0][3], 10, 64)
	// Rows whose insert's outcome the client did not learn may be there.
	if count != distinct || count < int64(len(acked)) || count > int64(len(acked))+unknown.Load() {
		t.Fatalf("%d rows, %d distinct ids, %d acknowledged, %d unknown", count, distinct, len(acked), unknown.Load())
	}
	there := map[int64]bool{}
	for _, r := range mustQuery(t, c, "select id from items where client >= 0") {
		id, _ := strconv.ParseInt(r[0], 10, 64)
		there[id] = true
	}
	for id := range acked {
		if !there[id] {
			t.Fatalf("acknowledged item %d is not there", id)
		}
	}
	// Missing: the unused rest of the blocks of three gateway processes
	// (the dead one's, and the two living ones' current), and ids drawn
	// by inserts whose outcome the clients did not learn.
	if gap := hi - lo + 1 - count; gap > 3*100+unknown.Load() {
		t.Errorf("ids %d..%d hold %d rows: %d missing, more than 3 blocks of 100 and %d unknown outcomes", lo, hi, count, gap, unknown.Load())
	}
	if count < sequenceRows*9/10 {
		t.Errorf("only %d of %d inserts acknowledged", count, sequenceRows)
	}
	ks := e.loadTopology().Keyspace("ids")
	for i := range e.shards {
		shard := fmt.Sprintf("s%d", i)
		rows := mustQuery(t, e.backend(i), "select id from items")
		if len(rows) == 0 {
			t.Fatalf("shard %s holds no items", shard)
		}
		for _, r := range rows {
			id, _ := strconv.ParseInt(r[0], 10, 64)
			if want := ks.ShardFor(vschema.HashInt64(id)); want != shard {
				t.Fatalf("item %d is on %s, its id hashes to %s", id, shard, want)
			}
		}
	}
}

// column is the first column of rows.
func column(rows [][]string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r[0]
	}
	return out
}

// TestSnowflakeIDs: under sequence_ids: snowflake, two gateways make ids
// without etcd, each with its own gateway number in them: none repeats,
// and every row is on its id's shard. A sequence too short for them
// (serial) and setval are refused.
func TestSnowflakeIDs(t *testing.T) {
	e := newEnvOf(t, 2, "flakes", "testdata/vschema/snowflake.yaml")
	gws := []*gateway{e.gw, startGateway(t, e.etcd.Endpoints())}
	c := gws[0].connect("flakes")
	mustQuery(t, c, "create table items (id bigserial primary key, gw int not null)")
	mustQuery(t, c, "create table small (id serial primary key)")
	var (
		mu  sync.Mutex
		ids = map[int64]int{}
		wg  sync.WaitGroup
	)
	for client := range 4 {
		wg.Go(func() {
			conn := gws[client%2].connect("flakes")
			for range 500 {
				res := conn.ExecParams(context.Background(), "insert into items (gw) values ($1) returning id", [][]byte{[]byte(strconv.Itoa(client % 2))}, nil, nil, nil).Read()
				if res.Err != nil {
					t.Error(res.Err)
					return
				}
				id, _ := strconv.ParseInt(string(res.Rows[0][0]), 10, 64)
				mu.Lock()
				if _, seen := ids[id]; seen {
					t.Errorf("id %d made twice", id)
				}
				ids[id] = client % 2
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	numbers := map[int]map[int64]bool{}
	for id, gw := range ids {
		if numbers[gw] == nil {
			numbers[gw] = map[int64]bool{}
		}
		numbers[gw][id>>12&1023] = true
	}
	if len(numbers[0]) != 1 || len(numbers[1]) != 1 || fmt.Sprint(numbers[0]) == fmt.Sprint(numbers[1]) {
		t.Fatalf("gateway numbers in the ids: %v, want one per gateway, not the same", numbers)
	}
	if got := mustQuery(t, c, "select count(*), count(distinct id) from items"); got[0][0] != "2000" || got[0][1] != "2000" {
		t.Fatalf("items: %q", got)
	}
	ks := e.loadTopology().Keyspace("flakes")
	for i := range e.shards {
		for _, r := range mustQuery(t, e.backend(i), "select id from items") {
			id, _ := strconv.ParseInt(r[0], 10, 64)
			if want := ks.ShardFor(vschema.HashInt64(id)); want != fmt.Sprintf("s%d", i) {
				t.Fatalf("item %d is on s%d, its id hashes to %s", id, i, want)
			}
		}
	}
	if _, err := query(c, "insert into small default values"); pgCode(err) != "0A000" {
		t.Fatalf("a snowflake id into a serial: %v, want 0A000", err)
	}
	if _, err := query(c, "select setval('items_id_seq', 5)"); pgCode(err) != "0A000" {
		t.Fatalf("setval of a snowflake sequence: %v, want 0A000", err)
	}
}
