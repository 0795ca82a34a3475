package topology

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/vschema"
)

// testEtcd is an embedded etcd and a client of it, both closed when the test
// ends.
type testEtcd struct {
	e   *Embedded
	cli *clientv3.Client
	dir string
}

func startTestEtcd(t *testing.T) *testEtcd {
	t.Helper()
	dir := t.TempDir()
	e, err := StartEmbedded(t.Context(), dir, "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Registered after e.Close, so it runs first.
	t.Cleanup(func() { cli.Close() })
	return &testEtcd{e: e, cli: cli, dir: dir}
}

// addShards registers shards named names with made-up DSNs.
func addShards(t *testing.T, s *Store, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := s.AddShard(t.Context(), Shard{Name: n, DSN: "postgres://app:pw@" + n + "/app"}); err != nil {
			t.Fatalf("AddShard(%s): %v", n, err)
		}
	}
}

func mustLoad(t *testing.T, s *Store) *Snapshot {
	t.Helper()
	snap, err := s.Load(t.Context())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return snap
}

func mustParseKeyspace(t *testing.T, name, yaml string) *vschema.Keyspace {
	t.Helper()
	f, err := vschema.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("vschema.Parse: %v", err)
	}
	ks := f.Keyspaces[name]
	if ks == nil {
		t.Fatalf("vschema has no keyspace %s", name)
	}
	return ks
}

const appVSchema = `
keyspaces:
  app:
    sharded: true
    tables:
      users: {column: id, type: bigint}
      orders: {column: user_id, type: int}
      countries: {kind: reference}
`

func TestStoreAddShard(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()

	want := Shard{Name: "s1", DSN: "host=db1 user=app password=pw dbname=app"}
	if err := s.AddShard(ctx, want); err != nil {
		t.Fatal(err)
	}
	err := s.AddShard(ctx, Shard{Name: "s1", DSN: "host=other"})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("AddShard of an existing name = %v, want ErrConflict", err)
	}
	for _, bad := range []Shard{
		{Name: "", DSN: "host=x"},
		{Name: "S1", DSN: "host=x"},
		{Name: "1s", DSN: "host=x"},
		{Name: "a/b", DSN: "host=x"},
		{Name: "a b", DSN: "host=x"},
		{Name: "a-b", DSN: "host=x"},
		{Name: strings.Repeat("a", 64), DSN: "host=x"},
		{Name: "empty_dsn", DSN: ""},
		{Name: "blank_dsn", DSN: "  \t"},
	} {
		if err := s.AddShard(ctx, bad); err == nil {
			t.Errorf("AddShard(%q, DSN %q) succeeded, want an error", bad.Name, bad.DSN)
		}
	}
	if err := s.AddShard(ctx, Shard{Name: strings.Repeat("a", 63), DSN: "host=x"}); err != nil {
		t.Errorf("AddShard with a 63-byte name: %v", err)
	}

	snap := mustLoad(t, s)
	if len(snap.Shards) != 2 {
		t.Fatalf("Load has shards %v, want s1 and the 63-byte one", slices.Sorted(maps.Keys(snap.Shards)))
	}
	if got := snap.Shards["s1"]; got == nil || *got != want {
		t.Fatalf("Load: shard s1 = %+v, want %+v (the first one, not overwritten)", got, want)
	}
}

func TestStoreCreateKeyspace(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a", "b", "c")

	if err := s.CreateKeyspace(ctx, "app", 256, []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKeyspace(ctx, "solo", 1, []string{"c"}); err != nil {
		t.Fatal(err)
	}
	before := mustLoad(t, s)

	tests := []struct {
		name     string
		ks       string
		logical  int
		shards   []string
		conflict bool
	}{
		{name: "unknown_shard", ks: "k1", logical: 4, shards: []string{"a", "zz"}},
		{name: "shard_twice", ks: "k2", logical: 4, shards: []string{"a", "b", "a"}},
		{name: "more_shards_than_logical", ks: "k3", logical: 2, shards: []string{"a", "b", "c"}},
		{name: "not_power_of_two", ks: "k4", logical: 3, shards: []string{"a", "b"}},
		{name: "not_power_of_two_large", ks: "k5", logical: 100, shards: []string{"a"}},
		{name: "zero_logical", ks: "k6", logical: 0, shards: []string{"a"}},
		{name: "negative_logical", ks: "k7", logical: -8, shards: []string{"a"}},
		{name: "over_65536", ks: "k8", logical: 1 << 17, shards: []string{"a"}},
		{name: "no_shards", ks: "k9", logical: 4, shards: nil},
		{name: "bad_name", ks: "App", logical: 4, shards: []string{"a"}},
		{name: "empty_name", ks: "", logical: 4, shards: []string{"a"}},
		{name: "exists", ks: "app", logical: 4, shards: []string{"a"}, conflict: true},
		{name: "exists_same_shape", ks: "solo", logical: 1, shards: []string{"c"}, conflict: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.CreateKeyspace(ctx, tt.ks, tt.logical, tt.shards)
			if err == nil {
				t.Fatalf("CreateKeyspace(%q, %d, %q) succeeded, want an error", tt.ks, tt.logical, tt.shards)
			}
			if got := errors.Is(err, ErrConflict); got != tt.conflict {
				t.Fatalf("CreateKeyspace: %v; errors.Is(err, ErrConflict) = %v, want %v", err, got, tt.conflict)
			}
		})
	}

	snap := mustLoad(t, s)
	if snap.Revision != before.Revision {
		t.Fatalf("failed creates changed the topology: revision %d -> %d", before.Revision, snap.Revision)
	}
	if got := slices.Sorted(maps.Keys(snap.Keyspaces)); !slices.Equal(got, []string{"app", "solo"}) {
		t.Fatalf("keyspaces = %q, want app and solo", got)
	}
	app := snap.Keyspace("app")
	want := &ShardMap{Version: 1, LogicalCount: 256, Placement: EvenPlacement(256, []string{"a", "b", "c"})}
	if !reflect.DeepEqual(app.Map, want) {
		t.Fatalf("app shard map = %+v, want %+v", app.Map, want)
	}
	if app.Name != "app" || !slices.Equal(app.Shards(), []string{"a", "b", "c"}) {
		t.Fatalf("app: name %q, shards %q", app.Name, app.Shards())
	}
	if app.VSchema() != nil {
		t.Fatalf("app has a vschema before one was applied")
	}
	solo := snap.Keyspace("solo")
	if solo.Map.LogicalCount != 1 || !slices.Equal(solo.Map.Placement, []string{"c"}) || solo.ShardFor(12345) != "c" {
		t.Fatalf("solo shard map = %+v", solo.Map)
	}
}

// TestStoreCreateKeyspaceHugeLogicalCount shows that a logical shard count far
// beyond the limit must be refused with an error, not crash the caller (a
// typo in shardctl's --logical-shards flag). CreateKeyspace builds the
// placement before it validates the count.
func TestStoreCreateKeyspaceHugeLogicalCount(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	addShards(t, s, "a")
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("CreateKeyspace with 1<<62 logical shards panicked: %v", r)
			}
		}()
		err = s.CreateKeyspace(t.Context(), "app", 1<<62, []string{"a"})
	}()
	if t.Failed() {
		return
	}
	if err == nil {
		t.Fatal("CreateKeyspace with 1<<62 logical shards succeeded")
	}
}

func TestStoreApplyVSchema(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a", "b")
	if err := s.CreateKeyspace(ctx, "app", 16, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKeyspace(ctx, "one", 1, []string{"a"}); err != nil {
		t.Fatal(err)
	}

	missing := mustParseKeyspace(t, "nope", "keyspaces: {nope: {sharded: false}}")
	if err := s.ApplyVSchemas(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ApplyVSchema of a missing keyspace = %v, want ErrNotFound", err)
	}
	unsharded := mustParseKeyspace(t, "app", "keyspaces: {app: {sharded: false, tables: {t: {}}}}")
	if err := s.ApplyVSchemas(ctx, unsharded); err == nil {
		t.Fatal("an unsharded vschema on a 2-shard keyspace was accepted")
	}
	shardedOnOne := mustParseKeyspace(t, "one", "keyspaces: {one: {sharded: true, tables: {t: {column: id, type: int}}}}")
	if err := s.ApplyVSchemas(ctx, shardedOnOne); err == nil {
		t.Fatal("a sharded table on a keyspace with 1 logical shard was accepted")
	}
	if snap := mustLoad(t, s); snap.Keyspace("app").VSchema() != nil || snap.Keyspace("one").VSchema() != nil {
		t.Fatal("a rejected vschema was stored")
	}

	refOnOne := mustParseKeyspace(t, "one", "keyspaces: {one: {sharded: true, tables: {r: {kind: reference}}}}")
	if err := s.ApplyVSchemas(ctx, refOnOne); err != nil {
		t.Fatalf("reference tables on a 1-logical-shard keyspace: %v", err)
	}
	app := mustParseKeyspace(t, "app", appVSchema)
	if err := s.ApplyVSchemas(ctx, app); err != nil {
		t.Fatal(err)
	}
	snap := mustLoad(t, s)
	if got := snap.Keyspace("app").VSchema(); !reflect.DeepEqual(got, app) {
		t.Fatalf("loaded vschema = %s, want %s", got.JSON(), app.JSON())
	}
	if got := snap.Keyspace("one").VSchema(); !reflect.DeepEqual(got, refOnOne) {
		t.Fatalf("loaded vschema = %s, want %s", got.JSON(), refOnOne.JSON())
	}
	if tb := snap.Keyspace("app").VSchema().Table("orders"); tb == nil || tb.Type != vschema.Int || tb.Vindex != vschema.VindexHash {
		t.Fatalf("orders = %+v", tb)
	}

	// Applying again replaces the vschema and leaves the shard map alone.
	app2 := mustParseKeyspace(t, "app", "keyspaces: {app: {sharded: true, tables: {events: {column: id, type: uuid}}}}")
	if err := s.ApplyVSchemas(ctx, app2); err != nil {
		t.Fatal(err)
	}
	snap2 := mustLoad(t, s)
	if snap2.Revision <= snap.Revision {
		t.Fatalf("revision %d -> %d after ApplyVSchema", snap.Revision, snap2.Revision)
	}
	if got := snap2.Keyspace("app").VSchema(); !reflect.DeepEqual(got, app2) {
		t.Fatalf("loaded vschema = %s, want %s", got.JSON(), app2.JSON())
	}
	if !reflect.DeepEqual(snap2.Keyspace("app").Map, snap.Keyspace("app").Map) {
		t.Fatalf("ApplyVSchema changed the shard map")
	}
}

// TestStoreApplyVSchemaInvalid shows that ApplyVSchema must not store a
// vschema that Load cannot parse back: Load (and so every later Store call,
// and every Watcher) would fail on the whole topology until someone repairs
// etcd by hand. A *vschema.Keyspace built in code skips vschema.Parse.
func TestStoreApplyVSchemaInvalid(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a", "b")
	if err := s.CreateKeyspace(ctx, "app", 4, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	bad := &vschema.Keyspace{Name: "app", Sharded: true, Tables: map[string]*vschema.Table{
		"users": {Name: "users", Kind: vschema.Sharded}, // no column, no type
	}}
	applyErr := s.ApplyVSchemas(ctx, bad)
	if _, err := s.Load(ctx); err != nil {
		t.Fatalf("ApplyVSchema(invalid) = %v, and now Load fails: %v", applyErr, err)
	}
	if applyErr == nil {
		t.Fatal("ApplyVSchema accepted a sharded table without a sharding column")
	}
}

func TestStoreMoveLogicalShards(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a", "b", "c")
	if err := s.CreateKeyspace(ctx, "app", 8, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyVSchemas(ctx, mustParseKeyspace(t, "app", appVSchema)); err != nil {
		t.Fatal(err)
	}

	v, err := s.MoveLogicalShards(ctx, "app", 2, 3, "c")
	if err != nil {
		t.Fatal(err)
	}
	if v != 2 {
		t.Fatalf("version after the first move = %d, want 2", v)
	}
	snap := mustLoad(t, s)
	k := snap.Keyspace("app")
	if want := []string{"a", "a", "c", "c", "b", "b", "b", "b"}; !slices.Equal(k.Map.Placement, want) {
		t.Fatalf("placement = %q, want %q", k.Map.Placement, want)
	}
	if k.Map.Version != 2 || k.Map.LogicalCount != 8 {
		t.Fatalf("map = %+v", k.Map)
	}
	if !slices.Equal(k.Shards(), []string{"a", "c", "b"}) {
		t.Fatalf("Shards() = %q", k.Shards())
	}
	lo, hi := k.Map.Range(2)
	if k.ShardFor(lo) != "c" || k.ShardFor(hi) != "c" || k.ShardFor(lo-1) != "a" {
		t.Fatalf("routing after the move: lo %s, hi %s, lo-1 %s", k.ShardFor(lo), k.ShardFor(hi), k.ShardFor(lo-1))
	}
	if k.VSchema() == nil {
		t.Fatal("the move lost the vschema")
	}

	// The whole keyspace, then a single logical shard at the top end.
	if v, err := s.MoveLogicalShards(ctx, "app", 0, 7, "b"); err != nil || v != 3 {
		t.Fatalf("move 0-7 = %d, %v; want version 3", v, err)
	}
	if v, err := s.MoveLogicalShards(ctx, "app", 7, 7, "a"); err != nil || v != 4 {
		t.Fatalf("move 7-7 = %d, %v; want version 4", v, err)
	}
	after := mustLoad(t, s)
	if want := []string{"b", "b", "b", "b", "b", "b", "b", "a"}; !slices.Equal(after.Keyspace("app").Map.Placement, want) {
		t.Fatalf("placement = %q, want %q", after.Keyspace("app").Map.Placement, want)
	}

	bad := []struct {
		name        string
		ks          string
		first, last int
		to          string
		notFound    bool
	}{
		{"negative_first", "app", -1, 2, "c", false},
		{"last_before_first", "app", 3, 2, "c", false},
		{"last_past_end", "app", 6, 8, "c", false},
		{"first_past_end", "app", 8, 8, "c", false},
		{"unknown_shard", "app", 0, 1, "zz", true},
		{"unknown_keyspace", "nope", 0, 1, "c", true},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			v, err := s.MoveLogicalShards(ctx, tt.ks, tt.first, tt.last, tt.to)
			if err == nil {
				t.Fatalf("MoveLogicalShards(%s, %d, %d, %s) = %d, want an error", tt.ks, tt.first, tt.last, tt.to, v)
			}
			if got := errors.Is(err, ErrNotFound); got != tt.notFound {
				t.Fatalf("MoveLogicalShards: %v; errors.Is(err, ErrNotFound) = %v, want %v", err, got, tt.notFound)
			}
		})
	}
	if final := mustLoad(t, s); final.Revision != after.Revision {
		t.Fatalf("rejected moves changed the topology: revision %d -> %d", after.Revision, final.Revision)
	}
}

// TestStoreMoveConcurrent races moves of different logical shards: each one
// either lands or fails with ErrConflict, and none is lost.
func TestStoreMoveConcurrent(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a", "b")
	const n = 16
	if err := s.CreateKeyspace(ctx, "app", n, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.MoveLogicalShards(ctx, "app", i, i, "b")
		})
	}
	wg.Wait()
	moved := 0
	for i, err := range errs {
		switch {
		case err == nil:
			moved++
		case !errors.Is(err, ErrConflict):
			t.Fatalf("move of logical shard %d: %v, want nil or ErrConflict", i, err)
		}
	}
	m := mustLoad(t, s).Keyspace("app").Map
	if m.Version != int64(1+moved) {
		t.Fatalf("version = %d after %d successful moves, want %d", m.Version, moved, 1+moved)
	}
	for i, err := range errs {
		want := "a"
		if err == nil {
			want = "b"
		}
		if m.Placement[i] != want {
			t.Fatalf("logical shard %d on %s, want %s (move error: %v)", i, m.Placement[i], want, err)
		}
	}
	t.Logf("%d of %d concurrent moves landed", moved, n)
}

// TestStoreGuardsAgainstStaleRevision checks the guard every write uses: a
// transaction computed from an old revision fails once a topology key of the
// cluster changed, and only then: gateway registrations, 2PC records and
// other clusters do not count.
func TestStoreGuardsAgainstStaleRevision(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	other := NewStore(te.cli, "test2")
	ctx := t.Context()
	addShards(t, s, "a")
	rev := mustLoad(t, s).Revision

	try := func() bool {
		t.Helper()
		resp, err := te.cli.Txn(ctx).If(s.unchangedSince(rev)...).Commit()
		if err != nil {
			t.Fatal(err)
		}
		return resp.Succeeded
	}
	if !try() {
		t.Fatal("guard failed with nothing changed")
	}
	addShards(t, other, "a")
	if _, err := te.cli.Put(ctx, "/shardgate/elsewhere", "x"); err != nil {
		t.Fatal(err)
	}
	if !try() {
		t.Fatal("guard failed after changes outside the cluster's prefix")
	}
	r, err := s.RegisterGateway(ctx, GatewayInfo{ID: "gw1"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := s.BeginTwoPC(ctx, TwoPC{GID: "g1", Gateway: "gw1", Participants: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DecideTwoPC(ctx, "g1", TwoPCCommit); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"workflows/w1", "users/u1", "other"} {
		if _, err := te.cli.Put(ctx, s.prefix+k, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if !try() {
		t.Fatal("guard failed after gateway, 2PC and other non-topology writes")
	}
	if err := s.CreateKeyspace(ctx, "app", 2, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if try() {
		t.Fatal("guard held after a keyspace was created")
	}
	rev = mustLoad(t, s).Revision
	if !try() {
		t.Fatal("guard failed with nothing changed")
	}
	addShards(t, s, "b")
	if try() {
		t.Fatal("guard held after a shard was added")
	}
}

func TestStoreClustersIsolated(t *testing.T) {
	te := startTestEtcd(t)
	ctx := t.Context()
	// "blue2" shares a string prefix with "blue"; the trailing slash keeps
	// them apart.
	names := []string{"blue", "blue2", "green"}
	stores := map[string]*Store{}
	for i, name := range names {
		s := NewStore(te.cli, name)
		stores[name] = s
		// The same shard and keyspace names in every cluster, placed
		// differently.
		if err := s.AddShard(ctx, Shard{Name: "s1", DSN: "host=" + name}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := s.AddShard(ctx, Shard{Name: "only_" + name, DSN: "host=" + name}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := s.CreateKeyspace(ctx, "app", 4<<i, []string{"s1"}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := stores["blue"].MoveLogicalShards(ctx, "app", 0, 0, "only_blue"); err != nil {
		t.Fatal(err)
	}
	if _, err := stores["green"].MoveLogicalShards(ctx, "app", 0, 0, "only_blue"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("green moved onto blue's shard: %v", err)
	}
	for i, name := range names {
		snap := mustLoad(t, stores[name])
		if got, want := slices.Sorted(maps.Keys(snap.Shards)), []string{"only_" + name, "s1"}; !slices.Equal(got, want) {
			t.Errorf("%s sees shards %q, want %q", name, got, want)
		}
		if got := snap.Shards["s1"].DSN; got != "host="+name {
			t.Errorf("%s: s1 DSN = %q", name, got)
		}
		k := snap.Keyspace("app")
		if k == nil || k.Map.LogicalCount != 4<<i {
			t.Fatalf("%s: keyspace app = %+v, want %d logical shards", name, k, 4<<i)
		}
		wantVersion := int64(1)
		if name == "blue" {
			wantVersion = 2
		}
		if k.Map.Version != wantVersion {
			t.Errorf("%s: app version %d, want %d", name, k.Map.Version, wantVersion)
		}
	}
}

// TestStoreLoadRejectsInvalid writes bad entries straight to etcd: Load fails
// on the whole topology rather than return a half-understood one.
func TestStoreLoadRejectsInvalid(t *testing.T) {
	tests := []struct {
		name, key, value string
	}{
		{"garbage_shard", "shards/x", "{not json"},
		{"garbage_shardmap", "keyspaces/app/shardmap", "{not json"},
		{"unknown_shard_in_map", "keyspaces/app/shardmap", `{"version":2,"logical_count":2,"placement":["a","zz"]}`},
		{"bad_logical_count", "keyspaces/app/shardmap", `{"version":2,"logical_count":3,"placement":["a","a","a"]}`},
		{"garbage_vschema", "keyspaces/app/vschema", "{not json"},
		{"invalid_vschema", "keyspaces/app/vschema", `{"sharded":true,"tables":{"t":{"kind":"sharded"}}}`},
		{"vschema_without_map", "keyspaces/other/vschema", `{"sharded":false}`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := startTestEtcd(t)
			s := NewStore(te.cli, fmt.Sprintf("c%d", i))
			addShards(t, s, "a")
			if err := s.CreateKeyspace(t.Context(), "app", 2, []string{"a"}); err != nil {
				t.Fatal(err)
			}
			mustLoad(t, s)
			if _, err := te.cli.Put(t.Context(), s.prefix+tt.key, tt.value); err != nil {
				t.Fatal(err)
			}
			if snap, err := s.Load(t.Context()); err == nil {
				t.Fatalf("Load succeeded with %s = %s: %+v", tt.key, tt.value, snap)
			}
		})
	}
}

// TestStoreLoadIgnoresUnknownKeys leaves room for the rest of the layout
// (workflows, gateways, users) under the same prefix.
func TestStoreLoadIgnoresUnknownKeys(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	addShards(t, s, "a")
	for _, k := range []string{"workflows/w1", "gateways/g1", "twopc/g1", "keyspaces/app/extra", "shards/a/x", "other"} {
		if _, err := te.cli.Put(t.Context(), s.prefix+k, "{opaque"); err != nil {
			t.Fatal(err)
		}
	}
	snap := mustLoad(t, s)
	if len(snap.Shards) != 1 || len(snap.Keyspaces) != 0 {
		t.Fatalf("snapshot = %+v", snap)
	}
}

func TestStoreCancelledContext(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.AddShard(ctx, Shard{Name: "a", DSN: "host=a"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("AddShard with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.Load(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestStoreKeepsUnchangedVSchema: a snapshot built after a placement change
// shares the keyspace's *vschema.Keyspace with the one before, so plans made
// for it stay valid; a vschema applied anew is a new value.
func TestStoreKeepsUnchangedVSchema(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a", "b")
	if err := s.CreateKeyspace(ctx, "app", 8, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyVSchemas(ctx, mustParseKeyspace(t, "app", appVSchema)); err != nil {
		t.Fatal(err)
	}
	before, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.MoveLogicalShards(ctx, "app", 0, 0, "b"); err != nil {
		t.Fatal(err)
	}
	moved, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if moved.Keyspace("app").Map.Placement[0] != "b" {
		t.Fatalf("placement did not change: %v", moved.Keyspace("app").Map.Placement)
	}
	if moved.Keyspace("app").VSchema() != before.Keyspace("app").VSchema() {
		t.Fatal("a placement change gave the keyspace a new vschema value")
	}
	if err := s.ApplyVSchemas(ctx, mustParseKeyspace(t, "app", appVSchema+"      extra: {kind: reference}\n")); err != nil {
		t.Fatal(err)
	}
	changed, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if changed.Keyspace("app").VSchema() == moved.Keyspace("app").VSchema() || changed.Keyspace("app").VSchema().Table("extra") == nil {
		t.Fatal("a new vschema kept the old value")
	}
}

// TestLearnReferenceTables: learned tables show as reference tables in every
// later snapshot, from concurrent learners alike; a vschema applied later
// keeps them, and one that names a learned table decides its kind.
func TestLearnReferenceTables(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "s0", "s1")
	if err := s.CreateKeyspace(ctx, "app", 4, []string{"s0", "s1"}); err != nil {
		t.Fatal(err)
	}
	apply := func(tables map[string]*vschema.Table) {
		t.Helper()
		if err := s.ApplyVSchemas(ctx, &vschema.Keyspace{Name: "app", Sharded: true, UnlistedTables: vschema.ReferenceUnlisted, Tables: tables}); err != nil {
			t.Fatal(err)
		}
	}
	apply(map[string]*vschema.Table{"users": {Column: "id", Type: vschema.Int}})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if err := s.LearnReferenceTables(ctx, "app", []string{fmt.Sprintf("t%d", i), "shared", "billing.plans"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	vs := mustLoad(t, s).Keyspace("app").VSchema()
	for _, n := range []string{"t0", "t7", "shared", "billing.plans"} {
		if tb := vs.Table(n); tb == nil || tb.Kind != vschema.Reference {
			t.Errorf("learned table %s: %+v", n, tb)
		}
	}
	if len(vs.Tables) != 11 || vs.Table("users").Kind != vschema.Sharded {
		t.Fatalf("tables after learning: %v", vs.TableNames())
	}
	apply(map[string]*vschema.Table{"users": {Column: "id", Type: vschema.Int}, "shared": {Column: "id", Type: vschema.Int}})
	vs = mustLoad(t, s).Keyspace("app").VSchema()
	if vs.Table("t3") == nil || vs.Table("shared").Kind != vschema.Sharded {
		t.Fatalf("after a vschema apply: t3 %+v, shared %+v", vs.Table("t3"), vs.Table("shared"))
	}
	for _, bad := range []string{"Bad", "public.x", "a.b.c"} {
		if err := s.LearnReferenceTables(ctx, "app", []string{bad}); err == nil {
			t.Errorf("learned table name %q", bad)
		}
	}
}
