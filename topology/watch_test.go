package topology

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// eventually polls cond every few milliseconds until it holds, and fails the
// test if it still does not after timeout.
func eventually(t *testing.T, cond func() bool, timeout time.Duration, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %v: %s", timeout, fmt.Sprintf(format, args...))
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatalf("test ended while waiting for: %s", fmt.Sprintf(format, args...))
		}
	}
}

// watcherLogger logs to the test at warn level and up, and records every
// entry at info level and up for the test to inspect.
func watcherLogger(t *testing.T) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.InfoLevel)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel), zaptest.WrapOptions(
		zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, core) })))
	return log, logs
}

// notes records the snapshots a Watcher passes to notify.
type notes struct {
	mu    sync.Mutex
	snaps []*Snapshot
}

func (n *notes) add(s *Snapshot) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.snaps = append(n.snaps, s)
}

func (n *notes) all() []*Snapshot {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.snaps)
}

// runWatcher runs w until the test ends; the cleanup cancels Run and waits for
// it to return. done is closed when Run returns.
func runWatcher(t *testing.T, w *Watcher) (done <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Errorf("Watcher.Run still running 10s after its context was cancelled")
		}
	})
	return ch
}

func waitReady(t *testing.T, w *Watcher) {
	t.Helper()
	select {
	case <-w.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("Watcher not ready after 10s")
	}
	if w.Snapshot() == nil {
		t.Fatal("Ready is closed but Snapshot() is nil")
	}
}

// describe renders everything a Snapshot holds, to compare a snapshot with
// itself at a later time.
func describe(s *Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rev %d\n", s.Revision)
	for _, name := range slices.Sorted(maps.Keys(s.Shards)) {
		fmt.Fprintf(&b, "shard %s %+v\n", name, *s.Shards[name])
	}
	for _, name := range slices.Sorted(maps.Keys(s.Keyspaces)) {
		k := s.Keyspaces[name]
		fmt.Fprintf(&b, "keyspace %s %s map %+v shards %q", name, k.Name, *k.Map, k.Shards())
		if v := k.VSchema(); v != nil {
			fmt.Fprintf(&b, " vschema %s", v.JSON())
		}
		b.WriteString("\n")
	}
	return b.String()
}

func appMap(w *Watcher) *ShardMap {
	if k := w.Snapshot().Keyspace("app"); k != nil {
		return k.Map
	}
	return nil
}

func TestWatcherFollowsStore(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after every other cleanup
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a", "b", "c")
	if err := s.CreateKeyspace(ctx, "app", 8, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}

	log, _ := watcherLogger(t)
	var got notes
	w := NewWatcher(s, log, got.add)
	if w.Snapshot() != nil {
		t.Fatal("Snapshot() before Run is not nil")
	}
	select {
	case <-w.Ready():
		t.Fatal("Ready before Run")
	default:
	}
	runWatcher(t, w)
	waitReady(t, w)

	first := w.Snapshot()
	firstDesc := describe(first)
	if m := appMap(w); m == nil || m.Version != 1 || len(first.Shards) != 3 {
		t.Fatalf("first snapshot:\n%s", firstDesc)
	}
	// notify runs just after Ready is closed.
	eventually(t, func() bool { return len(got.all()) > 0 }, 5*time.Second, "notify called after the first load")
	if n := got.all(); len(n) != 1 || n[0] != first {
		t.Fatalf("notify got %d snapshots after the first load, want exactly the first one", len(n))
	}

	// Readers walk whatever snapshot is current while it is being replaced;
	// the race detector objects if a published snapshot is ever written.
	stopReaders := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			// Paced, so that on a small machine the readers leave the
			// Watcher some CPU.
			tick := time.NewTicker(100 * time.Microsecond)
			defer tick.Stop()
			for {
				select {
				case <-stopReaders:
					return
				case <-tick.C:
				}
				_ = describe(w.Snapshot())
				if k := w.Snapshot().Keyspace("app"); k != nil {
					_ = k.ShardFor(42)
				}
			}
		})
	}
	defer func() {
		close(stopReaders)
		readers.Wait()
	}()

	start := time.Now()
	if _, err := s.MoveLogicalShards(ctx, "app", 0, 1, "c"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { m := appMap(w); return m != nil && m.Version == 2 }, 5*time.Second,
		"move to shard map version 2 visible in Snapshot()")
	if want := []string{"c", "c", "a", "a", "b", "b", "b", "b"}; !slices.Equal(appMap(w).Placement, want) {
		t.Fatalf("placement = %q, want %q", appMap(w).Placement, want)
	}
	t.Logf("a move reached the snapshot in %v", time.Since(start))

	if err := s.ApplyVSchemas(ctx, mustParseKeyspace(t, "app", appVSchema)); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return w.Snapshot().Keyspace("app").VSchema().Table("users") != nil }, 5*time.Second,
		"applied vschema visible in Snapshot()")

	addShards(t, s, "d")
	eventually(t, func() bool { return w.Snapshot().Shards["d"] != nil }, 5*time.Second, "new shard d visible in Snapshot()")

	if err := s.CreateKeyspace(ctx, "logs", 4, []string{"d"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return w.Snapshot().Keyspace("logs") != nil }, 5*time.Second, "new keyspace logs visible in Snapshot()")

	// A deleted key leaves the snapshot too.
	if _, err := te.cli.Delete(ctx, s.vschemaKey("app")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return w.Snapshot().Keyspace("app").VSchema() == nil }, 5*time.Second,
		"deleted vschema gone from Snapshot()")

	want := mustLoad(t, s)
	eventually(t, func() bool { return w.Snapshot().Revision == want.Revision }, 5*time.Second,
		"Snapshot() at revision %d", want.Revision)
	if g, w := describe(w.Snapshot()), describe(want); g != w {
		t.Fatalf("watcher snapshot:\n%s\nStore.Load:\n%s", g, w)
	}

	// notify saw every install, in order, the last one being the current
	// snapshot (it runs just after the swap).
	eventually(t, func() bool { n := got.all(); return n[len(n)-1] == w.Snapshot() }, 5*time.Second,
		"notify called with the current snapshot")
	n := got.all()
	if len(n) != 6 {
		t.Errorf("notify called %d times, want 6 (first load and 5 changes)", len(n))
	}
	for i := 1; i < len(n); i++ {
		if n[i].Revision <= n[i-1].Revision {
			t.Errorf("notify: revision %d after %d", n[i].Revision, n[i-1].Revision)
		}
	}

	// The first snapshot is as it was, although five newer ones replaced it.
	if w.Snapshot() == first {
		t.Fatal("Snapshot() still returns the first snapshot")
	}
	if d := describe(first); d != firstDesc {
		t.Fatalf("the first snapshot changed after later changes:\nbefore:\n%s\nafter:\n%s", firstDesc, d)
	}
}

func TestWatcherEmptyCluster(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "empty")
	log, _ := watcherLogger(t)
	w := NewWatcher(s, log, nil) // a nil notify is allowed
	runWatcher(t, w)
	waitReady(t, w)
	snap := w.Snapshot()
	if len(snap.Shards) != 0 || len(snap.Keyspaces) != 0 || snap.Keyspace("app") != nil {
		t.Fatalf("empty cluster: %s", describe(snap))
	}
	addShards(t, s, "a")
	eventually(t, func() bool { return w.Snapshot().Shards["a"] != nil }, 5*time.Second, "shard a visible")
}

// TestStoreSnapshotImmutable checks that a loaded snapshot is a value of its
// own: later changes through the Store leave it as it was.
func TestStoreSnapshotImmutable(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a", "b")
	if err := s.CreateKeyspace(ctx, "app", 4, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyVSchemas(ctx, mustParseKeyspace(t, "app", appVSchema)); err != nil {
		t.Fatal(err)
	}
	old := mustLoad(t, s)
	oldDesc := describe(old)
	oldPlacement := old.Keyspace("app").Map.Placement
	if _, err := s.MoveLogicalShards(ctx, "app", 0, 3, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyVSchemas(ctx, mustParseKeyspace(t, "app", "keyspaces: {app: {sharded: true}}")); err != nil {
		t.Fatal(err)
	}
	addShards(t, s, "c")
	if d := describe(old); d != oldDesc {
		t.Fatalf("old snapshot changed:\nbefore:\n%s\nafter:\n%s", oldDesc, d)
	}
	if now := mustLoad(t, s); &now.Keyspace("app").Map.Placement[0] == &oldPlacement[0] {
		t.Fatal("the new snapshot shares the old placement's array")
	}
}

func TestWatcherIgnoresInvalidTopology(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a", "b")
	if err := s.CreateKeyspace(ctx, "app", 4, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyVSchemas(ctx, mustParseKeyspace(t, "app", appVSchema)); err != nil {
		t.Fatal(err)
	}
	log, logs := watcherLogger(t)
	var got notes
	w := NewWatcher(s, log, got.add)
	done := runWatcher(t, w)
	waitReady(t, w)
	installs := 1

	raw := func(key string) string {
		t.Helper()
		resp, err := te.cli.Get(ctx, s.prefix+key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return ""
		}
		return string(resp.Kvs[0].Value)
	}
	rejected := func(rev int64) func() bool {
		return func() bool {
			return logs.FilterMessageSnippet("ignoring invalid topology").
				FilterField(zap.Int64("revision", rev)).Len() > 0
		}
	}

	tests := []struct {
		name, key, value string
	}{
		{"truncated_shardmap", "keyspaces/app/shardmap", `{"version": 2, "logical_count": 4, "placement": [`},
		{"shardmap_unknown_shard", "keyspaces/app/shardmap", `{"version": 2, "logical_count": 4, "placement": ["a", "a", "zz", "b"]}`},
		{"shardmap_three_logical", "keyspaces/app/shardmap", `{"version": 2, "logical_count": 3, "placement": ["a", "a", "b"]}`},
		{"shardmap_short_placement", "keyspaces/app/shardmap", `{"version": 2, "logical_count": 4, "placement": ["a"]}`},
		{"vschema_not_json", "keyspaces/app/vschema", "not json"},
		{"vschema_invalid", "keyspaces/app/vschema", `{"sharded": true, "tables": {"t": {"kind": "sharded"}}}`},
		{"vschema_without_map", "keyspaces/ghost/vschema", `{"sharded": false}`},
		{"shard_garbage", "shards/x", "{"},
		{"placed_shard_garbage", "shards/a", "[1, 2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := w.Snapshot()
			goodDesc := describe(good)
			orig := raw(tt.key)
			resp, err := te.cli.Put(ctx, s.prefix+tt.key, tt.value)
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, rejected(resp.Header.Revision), 5*time.Second,
				"watcher refuses revision %d (%s = %s)", resp.Header.Revision, tt.key, tt.value)
			if w.Snapshot() != good || describe(good) != goodDesc {
				t.Fatalf("after %s = %s the snapshot is\n%s\nwant the previous one\n%s", tt.key, tt.value, describe(w.Snapshot()), goodDesc)
			}

			// Put the key back as it was; the same topology comes back at a
			// new revision.
			var rev int64
			if orig == "" {
				r, err := te.cli.Delete(ctx, s.prefix+tt.key)
				if err != nil {
					t.Fatal(err)
				}
				rev = r.Header.Revision
			} else {
				r, err := te.cli.Put(ctx, s.prefix+tt.key, orig)
				if err != nil {
					t.Fatal(err)
				}
				rev = r.Header.Revision
			}
			installs++
			eventually(t, func() bool { return w.Snapshot().Revision == rev }, 5*time.Second, "restored topology installed")
			want := strings.SplitN(goodDesc, "\n", 2)[1] // all but the revision
			if d := strings.SplitN(describe(w.Snapshot()), "\n", 2)[1]; d != want {
				t.Fatalf("restored topology:\n%s\nwant\n%s", d, want)
			}
		})
	}

	// While the garbage is there, valid changes cannot be installed either:
	// the whole topology must build. Repairing it brings them in.
	good := w.Snapshot()
	resp, err := te.cli.Put(ctx, s.mapKey("app"), "{")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, rejected(resp.Header.Revision), 5*time.Second, "watcher refuses the garbage shard map")
	addShards(t, s, "c")
	eventually(t, rejected(resp.Header.Revision+1), 5*time.Second, "watcher refuses the topology after AddShard")
	if w.Snapshot() != good {
		t.Fatal("snapshot replaced while the shard map is garbage")
	}
	if _, err := te.cli.Put(ctx, s.mapKey("app"), `{"version": 7, "logical_count": 4, "placement": ["c", "c", "b", "b"]}`); err != nil {
		t.Fatal(err)
	}
	installs++
	eventually(t, func() bool { m := appMap(w); return m != nil && m.Version == 7 }, 5*time.Second, "repaired shard map installed")
	if w.Snapshot().Shards["c"] == nil {
		t.Fatal("shard c missing after the repair")
	}

	select {
	case <-done:
		t.Fatal("Run returned")
	default:
	}
	eventually(t, func() bool { n := got.all(); return n[len(n)-1] == w.Snapshot() }, 5*time.Second,
		"notify called with the current snapshot")
	if n := len(got.all()); n != installs {
		t.Errorf("notify called %d times, want %d (only valid topologies)", n, installs)
	}
}

// TestWatcherSurvivesEtcdRestart stops etcd under a running Watcher: the last
// snapshot keeps being served, Run keeps going, and once etcd is back on the
// same address with the same data the Watcher follows changes again.
func TestWatcherSurvivesEtcdRestart(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	ctx := t.Context()
	dir := t.TempDir()
	e1, err := StartEmbedded(ctx, dir, "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e1.Close)
	addr := strings.TrimPrefix(e1.Endpoints()[0], "http://")
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   e1.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before runWatcher, so it runs after the Watcher stopped:
	// an open watch stream would hold up etcd's Close for its 5 s request
	// timeout.
	var e2 *Embedded
	t.Cleanup(func() {
		cli.Close()
		if e2 != nil {
			e2.Close()
		}
	})
	s := NewStore(cli, "test")
	addShards(t, s, "a", "b")
	if err := s.CreateKeyspace(ctx, "app", 4, []string{"a"}); err != nil {
		t.Fatal(err)
	}

	log, logs := watcherLogger(t)
	var got notes
	w := NewWatcher(s, log, got.add)
	done := runWatcher(t, w)
	waitReady(t, w)
	before := w.Snapshot()
	beforeDesc := describe(before)

	// Once the Watcher's watch stream is open, this waits out etcd's request
	// timeout (5.2 s) for the stream before it cuts it.
	stopping := time.Now()
	e1.Close()
	t.Logf("etcd stopped in %v", time.Since(stopping))
	// Proves etcd is gone and gives the watcher time to notice.
	tctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err = s.MoveLogicalShards(tctx, "app", 0, 0, "b")
	cancel()
	if err == nil {
		t.Fatal("MoveLogicalShards succeeded with etcd stopped")
	}
	if w.Snapshot() != before || describe(before) != beforeDesc {
		t.Fatal("snapshot changed while etcd was down")
	}
	select {
	case <-done:
		t.Fatal("Run returned while etcd was down")
	default:
	}
	t.Logf("while etcd was down the watcher logged %d interruptions", logs.FilterMessageSnippet("watch interrupted").Len())

	e2, err = StartEmbedded(ctx, dir, addr, zap.NewNop())
	if err != nil {
		t.Fatalf("restarting etcd on %s: %v", addr, err)
	}
	if got := e2.Endpoints(); !slices.Equal(got, e1.Endpoints()) {
		t.Fatalf("restarted etcd on %q, want %q", got, e1.Endpoints())
	}
	restarted := time.Now()

	// The client reconnects with backoff; AddShard either lands or, if an
	// earlier attempt landed unseen, reports the conflict.
	eventually(t, func() bool {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := s.AddShard(actx, Shard{Name: "late", DSN: "host=late"})
		return err == nil || errors.Is(err, ErrConflict)
	}, 30*time.Second, "AddShard succeeds after the etcd restart")
	t.Logf("the store reached the restarted etcd after %v", time.Since(restarted))
	eventually(t, func() bool { return w.Snapshot().Shards["late"] != nil }, 30*time.Second,
		"shard added after the etcd restart visible in Snapshot()")
	t.Logf("the watcher caught up %v after the restart", time.Since(restarted))

	if _, err := s.MoveLogicalShards(ctx, "app", 0, 0, "b"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { m := appMap(w); return m != nil && m.Version == 2 }, 10*time.Second,
		"move after the restart visible in Snapshot()")
	if describe(before) != beforeDesc {
		t.Fatal("the snapshot from before the outage changed")
	}
	eventually(t, func() bool { n := got.all(); return n[len(n)-1] == w.Snapshot() }, 5*time.Second,
		"notify called with the snapshot after the restart")
	select {
	case <-done:
		t.Fatal("Run returned")
	default:
	}
}

// TestWatcherIgnoresGatewaysAndTwoPC writes what every multi-shard commit
// and every gateway writes, plus other keys that are no topology: none of
// it rebuilds or reinstalls the snapshot, and a topology change after it is
// installed exactly once.
func TestWatcherIgnoresGatewaysAndTwoPC(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a", "b")
	if err := s.CreateKeyspace(ctx, "app", 4, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	log, logs := watcherLogger(t)
	var got notes
	w := NewWatcher(s, log, got.add)
	runWatcher(t, w)
	waitReady(t, w)
	eventually(t, func() bool { return len(got.all()) == 1 }, 5*time.Second, "notify called after the first load")
	first := w.Snapshot()

	r, err := s.RegisterGateway(ctx, GatewayInfo{ID: "gw1"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const burst = 100
	var wg sync.WaitGroup
	errs := make(chan error, burst)
	for i := range burst {
		wg.Go(func() {
			gid := fmt.Sprintf("sg_gw1_%d", i)
			err := s.BeginTwoPC(ctx, TwoPC{GID: gid, Gateway: "gw1", Participants: []string{"a", "b"}})
			if err == nil {
				err = s.DecideTwoPC(ctx, gid, TwoPCCommit)
			}
			if err == nil && i%2 == 0 { // half stay, as if unresolved
				err = s.EndTwoPC(ctx, gid)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Keys that sort between keyspaces/ and shards/ (so etcd sends them to
	// the watch) but that build does not read, and keys elsewhere.
	for _, k := range []string{"keyspaces/app/extra", "keyspaces/app", "other", "shards/a/b", "workflows/w1", "users/u1"} {
		if _, err := te.cli.Put(ctx, s.prefix+k, "{opaque"); err != nil {
			t.Fatal(err)
		}
	}
	// The topology guard does not see any of it either.
	if _, err := s.MoveLogicalShards(ctx, "app", 0, 0, "b"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { m := appMap(w); return m != nil && m.Version == 2 }, 5*time.Second, "move visible in Snapshot()")
	// notify runs just after the swap.
	eventually(t, func() bool { n := got.all(); return n[len(n)-1] == w.Snapshot() }, 5*time.Second,
		"notify called with the current snapshot")
	if n := got.all(); len(n) != 2 || n[0] != first {
		t.Fatalf("notify called %d times, want 2: the first load and the move, none for gateways, 2PC or other keys", len(n))
	}
	if n := logs.FilterMessage("topology installed").Len(); n != 2 {
		t.Fatalf("%d installs logged, want 2", n)
	}
	if n := logs.FilterMessageSnippet("invalid").Len(); n != 0 {
		t.Fatalf("%d invalid topologies logged; the opaque keys must not be read", n)
	}
	if want := mustLoad(t, s); describe(w.Snapshot()) != describe(want) {
		t.Fatalf("watcher snapshot:\n%s\nStore.Load:\n%s", describe(w.Snapshot()), describe(want))
	}
}

// TestWatcherCurrent: Current tells whether the snapshot holds every
// topology change up to a revision. A revision reached by other keys
// alone (a gateway registering again) becomes current without any
// topology change, once etcd tells the watch it caught up; one past a
// topology change becomes current once that change is installed.
func TestWatcherCurrent(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a", "b")
	if err := s.CreateKeyspace(ctx, "app", 4, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	log, _ := watcherLogger(t)
	w := NewWatcher(s, log, nil)
	runWatcher(t, w)
	waitReady(t, w)
	if !w.Current(w.Snapshot().Revision) {
		t.Fatal("the first snapshot is not current at its own revision")
	}

	// Only keys the topology does not read change.
	resp, err := te.cli.Put(ctx, s.prefix+"gateways/gw1", "{}")
	if err != nil {
		t.Fatal(err)
	}
	installed := w.Snapshot()
	eventually(t, func() bool { return w.Current(resp.Header.Revision) }, 10*time.Second,
		"the snapshot current at a revision reached by a gateway key alone")
	if w.Snapshot() != installed {
		t.Fatal("a new snapshot was installed, though no topology key changed")
	}

	// A topology change comes first.
	if _, err := s.MoveLogicalShards(ctx, "app", 0, 0, "b"); err != nil {
		t.Fatal(err)
	}
	resp, err = te.cli.Put(ctx, s.prefix+"gateways/gw1", "{}")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return w.Current(resp.Header.Revision) }, 10*time.Second,
		"the snapshot current after the move")
	if m := appMap(w); m == nil || m.Version != 2 {
		t.Fatalf("current past the move, and the snapshot's map is %v", m)
	}
}
