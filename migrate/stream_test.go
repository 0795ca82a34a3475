package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// streamKeyspace has a table sharded by its key, one sharded by another
// column, and a reference table.
var streamKeyspace = &vschema.Keyspace{Name: "app", Sharded: true, Tables: map[string]*vschema.Table{
	"users":     {Name: "users", Kind: vschema.Sharded, Column: "id", Type: vschema.Int},
	"orders":    {Name: "orders", Kind: vschema.Sharded, Column: "user_id", Type: vschema.Int},
	"countries": {Name: "countries", Kind: vschema.Reference},
}}

// TestStream: a target seeded by a copy under the slot's snapshot and then
// fed by the stream ends with exactly the source's rows of the moving
// keyspace ids (and every reference row), whatever the source did
// meanwhile: inserts, updates, updates that move a row in or out of the
// moving ids or change its key, deletes, large values left out of the
// stream (also in a row that moves in), rows without a sharding value
// (which move with logical shard 0),
// truncate, a rolled back transaction. Stopped and started again
// from the slot, it goes on without losing or doubling anything.
func TestStream(t *testing.T) {
	pg := pgtest.Start(t, 2)
	src, dst := connect(t, pg[0]), connect(t, pg[1])
	run(t, src, `create table users (id bigint primary key, name text, big text);
create table orders (id bigint primary key, user_id bigint, note text);
create table countries (code text primary key, name text);
insert into users select g, 'u' || g, null from generate_series(1, 300) g;
insert into orders select g, g % 300 + 1, 'o' || g from generate_series(1, 600) g;
insert into countries values ('de', 'Germany'), ('fr', 'France');`)
	tables := []string{"countries", "orders", "users"}
	if err := CreateTables(t.Context(), src, dst, tables); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgconn.ParseConfig(pg[0].DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	replicate := func() *pgconn.PgConn {
		t.Helper()
		c, err := pgconn.ConnectConfig(t.Context(), ReplicationConfig(cfg))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	repl := replicate()
	slot, err := CreateSlot(t.Context(), src, repl, "sg_test", "sg_test", tables)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Every stream has closed its connection: the slot can go.
		if err := DropSlot(context.Background(), src, "sg_test", "sg_test"); err != nil {
			t.Error(err)
		}
	})
	// Logical shards 0-3 and 16-31 of 64 move; rows without a sharding
	// value go with logical shard 0.
	lo, hi := KeyRange(64, 16, 31)
	lo0, hi0 := KeyRange(64, 0, 3)
	m := topology.ShardMap{LogicalCount: 64}
	moving := func(id string) bool {
		h, ok := streamKeyspace.Tables["users"].KeyspaceID(id)
		if !ok { // NULL, which run gives as ""
			return id == ""
		}
		l := m.LogicalShard(h)
		return l >= 16 && l <= 31 || l <= 3
	}

	// Changes made before the copy's snapshot are in the copy, after it in
	// the stream.
	run(t, src, "update users set name = 'before-copy' where id <= 10")
	copySrc := connect(t, pg[0])
	run(t, copySrc, "begin isolation level repeatable read; set transaction snapshot '"+slot.Snapshot+"'")
	run(t, src, "update users set name = 'after-copy' where id <= 20")
	for _, name := range tables {
		ct, err := Columns(t.Context(), copySrc, name, streamKeyspace.Tables[name])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := CopyRange(t.Context(), copySrc, dst, ct, lo, hi); err != nil {
			t.Fatal(err)
		}
		if ct.Table.Kind == vschema.Reference {
			continue
		}
		if _, err := CopyRange(t.Context(), copySrc, dst, ct, lo0, hi0); err != nil {
			t.Fatal(err)
		}
	}
	run(t, copySrc, "commit")

	stream := func(repl *pgconn.PgConn, start pglogrepl.LSN) (*Stream, func()) {
		s := &Stream{Replication: repl, Slot: slot.Name, Publication: "sg_test", Start: start, Keyspace: streamKeyspace,
			Targets: []Target{{Lo: lo, Hi: hi, Shard: "t"}, {Lo: lo0, Hi: hi0, Shard: "t"}}, Conns: map[string]*pgconn.PgConn{"t": dst}, Source: connect(t, pg[0])}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			err := s.Run(ctx)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("stream: %v", err)
			}
			done <- err
		}()
		return s, func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("stream ended with %v", err)
			}
		}
	}
	// caughtUp waits for the stream to hold everything the source wrote so
	// far.
	caughtUp := func(s *Stream) {
		t.Helper()
		end, err := pglogrepl.ParseLSN(run(t, src, "select pg_current_wal_insert_lsn()")[0][0])
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for s.Flushed() < end {
			if time.Now().After(deadline) {
				t.Fatalf("the stream holds %s, the source is at %s", s.Flushed(), end)
			}
			time.Sleep(10 * time.Millisecond) // polling the stream's position
		}
	}
	check := func() {
		t.Helper()
		for _, q := range []struct{ table, key, rows string }{
			{"users", "id", "select id::text, row(u.*)::text from users u"},
			{"orders", "user_id", "select user_id::text, row(o.*)::text from orders o"},
			{"countries", "", "select '', row(c.*)::text from countries c"},
		} {
			var want []string
			for _, r := range run(t, src, q.rows) {
				if q.key == "" || moving(r[0]) {
					want = append(want, r[1])
				}
			}
			var got []string
			for _, r := range run(t, dst, q.rows) {
				got = append(got, r[1])
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s on the target: %d rows, want %d\n got %s\nwant %s", q.table, len(got), len(want), strings.Join(diff(got, want), " "), strings.Join(diff(want, got), " "))
			}
		}
	}

	// The connection that made the slot holds it until it closes.
	repl.Close(t.Context())
	s, stop := stream(replicate(), slot.Consistent)
	// Inserts in and out of the moving ids, a multi-statement
	// transaction, a rolled back one.
	run(t, src, `insert into users select g, 'new' || g, null from generate_series(1001, 1300) g;
begin; update users set name = name || '!' where id % 7 = 0; delete from users where id % 11 = 0; insert into countries values ('it', 'Italy'); commit;
begin; delete from users; rollback;`)
	// Orders change owners (their keyspace id), users their key.
	run(t, src, `update orders set user_id = user_id + 1 where id % 5 = 0;
update users set id = id + 10000 where id between 100 and 150;
update countries set name = 'Deutschland' where code = 'de';
delete from orders where id % 13 = 0;`)
	// Rows without a sharding value move with logical shard 0; rows that
	// lose their value move there, and back out when they get one.
	run(t, src, `insert into orders values (9001, null, 'no owner');
update orders set user_id = null where id in (select id from orders where id % 5 = 1 limit 40);
update orders set user_id = 77 where id in (select id from orders where user_id is null limit 10)`)
	// A large value is stored apart; an update of another column leaves
	// it out of the stream.
	var bigID string
	for id := 1; bigID == ""; id++ {
		if moving(fmt.Sprint(id)) && id%11 != 0 && (id < 100 || id > 150) {
			bigID = fmt.Sprint(id)
		}
	}
	run(t, src, "alter table users alter column big set storage external; update users set big = repeat('x', 100000) where id = "+bigID)
	run(t, src, "update users set name = 'big' where id = "+bigID)
	// A row with a large value moves into the moving ids by a change of
	// its key: the target gets the value the stream left out from the
	// source.
	outside, inside := 0, 0
	for id := 2001; outside == 0 || inside == 0; id++ {
		if moving(fmt.Sprint(id)) {
			inside = id
		} else {
			outside = id
		}
	}
	run(t, src, fmt.Sprintf("insert into users values (%d, 'mover', repeat('y', 100000) || 'z')", outside))
	run(t, src, fmt.Sprintf("update users set id = %d where id = %d", inside, outside))
	caughtUp(s)
	check()
	if s.Applied() == 0 || s.LagBytes() != 0 {
		t.Errorf("applied %d, lag %d bytes", s.Applied(), s.LagBytes())
	}
	stop()

	// Changes while no stream runs; a new one goes on from the slot.
	run(t, src, "update users set name = 'while-stopped' where id % 3 = 0; insert into orders select g, g % 50 + 1, 'late' from generate_series(5001, 5100) g")
	s, stop = stream(replicate(), 0)
	run(t, src, "truncate orders; insert into orders select g, g, 'after-truncate' from generate_series(1, 200) g")
	caughtUp(s)
	check()
	stop()
}

// diff lists the items of a not in b, at most five.
func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) && len(out) < 5 {
			out = append(out, x)
		}
	}
	return out
}
