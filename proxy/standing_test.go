package proxy

import (
	"context"
	"sync/atomic"
	"testing"
)

// TestWritesWaitForStanding: while a reshard moves logical shards of a
// keyspace, a gateway whose etcd lease may have lapsed holds writes there
// (reads go on) until it is back and has the topology from its return; a
// transaction that wrote before such a wait fails with 40001 and commits
// nothing.
func TestWritesWaitForStanding(t *testing.T) {
	g := startMovableGateway(t)
	ctx := t.Context()
	if _, err := g.store.AddCopies(ctx, "app", "s1", []int{0}); err != nil {
		t.Fatal(err)
	}
	snap, err := g.store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g.cur.Store(snap)
	var lapsed atomic.Bool
	var rejoined atomic.Int64
	g.srv.standing = func() bool { return !lapsed.Load() && g.cur.Load().Revision >= rejoined.Load() }

	c := g.connect(t, "app", "")
	exec(t, c, "insert into users (id, name) values (1, 'before')")
	lapsed.Store(true)
	writer := g.connect(t, "app", "")
	done := make(chan error, 1)
	go func() {
		_, err := writer.Exec(context.Background(), "insert into users (id, name) values (2, 'held')").ReadAll()
		done <- err
	}()
	for range 20 {
		if got := exec(t, c, "select count(*) from users")[0].Rows[0][0]; string(got) != "1" {
			t.Fatalf("a read while lapsed saw %s users", got)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("a write went on while the gateway's lease may have lapsed: %v", err)
	default:
	}

	// Back, registered again at a revision its topology has not reached.
	rejoined.Store(snap.Revision + 1)
	lapsed.Store(false)
	for range 20 {
		exec(t, c, "select count(*) from users")
	}
	select {
	case err := <-done:
		t.Fatalf("a write went on by a topology older than the gateway's return: %v", err)
	default:
	}
	newer := *snap
	newer.Revision = snap.Revision + 1
	g.cur.Store(&newer)
	if err := <-done; err != nil {
		t.Fatalf("the held write: %v", err)
	}

	// A transaction that wrote before the wait must not commit.
	exec(t, writer, "begin")
	exec(t, writer, "insert into users (id, name) values (3, 'in a transaction')")
	lapsed.Store(true)
	go func() {
		_, err := writer.Exec(context.Background(), "insert into users (id, name) values (4, 'after the lapse')").ReadAll()
		done <- err
	}()
	for range 20 {
		exec(t, c, "select count(*) from users")
	}
	lapsed.Store(false)
	if err := <-done; code(err) != "40001" {
		t.Fatalf("a write after a lapse in a transaction that wrote before: %v, want 40001", err)
	}
	exec(t, writer, "commit")
	if got := exec(t, c, "select id from users order by id"); len(got[0].Rows) != 2 {
		t.Fatalf("users after the failed transaction: %v, want 1 and 2", got[0].Rows)
	}
}
