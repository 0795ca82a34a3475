package topology

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// idOf returns a keyspace id in logical shard l of n.
func idOf(t *testing.T, m *ShardMap, l int) int64 {
	t.Helper()
	lo, _ := m.Range(l)
	return lo
}

func TestReadTrafficViews(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "s0", "s1", "s2")
	if err := s.CreateKeyspace(ctx, "app", 8, []string{"s0", "s1"}); err != nil {
		t.Fatal(err)
	}
	// A reshard moves 2 and 3 from s0 and 6 from s1 to s2, which holds
	// their copies.
	if _, err := s.AddCopies(ctx, "app", "s2", []int{2, 3, 6}); err != nil {
		t.Fatal(err)
	}
	set := func(p float64) {
		t.Helper()
		if _, err := s.SetReadTraffic(ctx, "app", "grow", func(r *ReadTraffic) error {
			r.Targets = map[int]string{2: "s2", 3: "s2", 6: "s2"}
			r.Slots = map[string]string{"s0": "slot0", "s1": "slot1"}
			r.ReadPercent = p
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	set(50)
	ks := mustLoad(t, s).Keyspace("app")
	if got, want := ks.Routed(), map[int]string{2: "s2", 3: "s2", 6: "s2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Routed = %v, want %v", got, want)
	}
	if ks.Reads.ReadPercent != 50 || ks.Reads.Slots["s1"] != "slot1" {
		t.Fatalf("Reads = %+v", ks.Reads)
	}

	all := ks.ReadView(nil)
	for l, want := range []string{"s0", "s0", "s2", "s2", "s1", "s1", "s2", "s1"} {
		if got := all.ShardFor(idOf(t, ks.Map, l)); got != want {
			t.Errorf("full view: logical %d on %s, want %s", l, got, want)
		}
		if got := all.ShardListFor(idOf(t, ks.Map, l)); len(got) != 1 || got[0] != want {
			t.Errorf("full view: ShardListFor logical %d = %v, want [%s]", l, got, want)
		}
	}
	if want := map[string][]int{"s0": {2, 3}, "s1": {6}}; !reflect.DeepEqual(all.Copies, want) {
		t.Errorf("full view copies = %v, want %v: the sources keep what the view reads at the target", all.Copies, want)
	}
	if got := all.Shards(); !reflect.DeepEqual(got, []string{"s0", "s2", "s1"}) {
		t.Errorf("full view shards = %v", got)
	}
	if all.Routed() != nil || all.ReadView(nil) != nil {
		t.Error("a view steers nothing further")
	}
	if ks.ShardFor(idOf(t, ks.Map, 2)) != "s0" || !reflect.DeepEqual(ks.Copies, map[string][]int{"s2": {2, 3, 6}}) {
		t.Error("building a view changed the keyspace")
	}

	some := ks.ReadView(func(l int) bool { return l == 3 })
	if some.ShardFor(idOf(t, ks.Map, 2)) != "s0" || some.ShardFor(idOf(t, ks.Map, 3)) != "s2" || some.ShardFor(idOf(t, ks.Map, 6)) != "s1" {
		t.Error("a partial view moved other logical shards than 3")
	}
	if want := map[string][]int{"s0": {3}, "s2": {2, 6}}; !reflect.DeepEqual(some.Copies, want) {
		t.Errorf("partial view copies = %v, want %v", some.Copies, want)
	}
	if none := ks.ReadView(func(int) bool { return false }); none != ks {
		t.Error("a view that moves nothing is not the keyspace itself")
	}

	// Once 2's writes cut over, its reads are at s2 anyway.
	if _, err := s.RaiseFence(ctx, "app", Fence{ID: "f1", Workflow: "grow", Logical: []int{2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PlaceFenced(ctx, "app", "f1", map[int]string{2: "s2"}); err != nil {
		t.Fatal(err)
	}
	ks = mustLoad(t, s).Keyspace("app")
	if got, want := ks.Routed(), map[int]string{3: "s2", 6: "s2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Routed after 2 cut over = %v, want %v", got, want)
	}

	// Another workflow cannot steer the keyspace's reads meanwhile.
	if _, err := s.SetReadTraffic(ctx, "app", "other", func(*ReadTraffic) error { return nil }); !errors.Is(err, ErrConflict) {
		t.Fatalf("SetReadTraffic of another workflow: %v, want ErrConflict", err)
	}

	// Clearing takes the traffic and the shadow reports away, and leaves
	// another workflow's traffic alone.
	if err := s.PublishShadow(ctx, "grow", ShadowReport{Gateway: "g1", Logical: map[int]*ShadowTally{3: {Matches: 4}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearReadTraffic(ctx, "app", "other"); err != nil {
		t.Fatal(err)
	}
	if r, err := s.ReadTrafficOf(ctx, "app"); err != nil || r == nil {
		t.Fatalf("clearing another workflow's traffic removed this one: %v, %v", r, err)
	}
	if err := s.ClearReadTraffic(ctx, "app", "grow"); err != nil {
		t.Fatal(err)
	}
	if r, err := s.ReadTrafficOf(ctx, "app"); err != nil || r != nil {
		t.Fatalf("traffic after clearing: %v, %v", r, err)
	}
	if sum, err := s.Shadow(ctx, "grow"); err != nil || sum.Total != (ShadowTally{}) {
		t.Fatalf("shadow after clearing: %+v, %v", sum, err)
	}
	if mustLoad(t, s).Keyspace("app").Routed() != nil {
		t.Fatal("the snapshot still routes reads")
	}
}

func TestShadowSummaryAndGate(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	now := time.Now().UTC()
	old := now.Add(-time.Hour)
	for _, r := range []ShadowReport{
		{Gateway: "g1", Logical: map[int]*ShadowTally{3: {Matches: 10, Skipped: 1}, 4: {Matches: 5, Differences: 1}},
			Recent: []ShadowDifference{{At: old, Logical: 4, Key: "7", SQL: "select 1"}}},
		{Gateway: "g2", Logical: map[int]*ShadowTally{4: {Matches: 2, Differences: 1}},
			Recent: []ShadowDifference{{At: now, Logical: 4, Key: "42", SQL: "select * from t where id = 42", SourceRows: 1, TargetRows: 1}}},
	} {
		if err := s.PublishShadow(ctx, "grow", r); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := s.Shadow(ctx, "grow")
	if err != nil {
		t.Fatal(err)
	}
	if want := (ShadowTally{Matches: 17, Differences: 2, Skipped: 1}); sum.Total != want {
		t.Fatalf("total = %+v, want %+v", sum.Total, want)
	}
	if *sum.Logical[4] != (ShadowTally{Matches: 7, Differences: 2}) {
		t.Fatalf("logical 4 = %+v", *sum.Logical[4])
	}
	if len(sum.Recent) != 2 || sum.Recent[0].Key != "7" {
		t.Fatalf("recent = %+v, want both, oldest first", sum.Recent)
	}

	err = ShadowGate{Window: 10 * time.Minute}.Check(sum, now)
	if err == nil || !strings.Contains(err.Error(), "1 differences") || !strings.Contains(err.Error(), "key 42") || strings.Contains(err.Error(), "key 7") {
		t.Fatalf("gate over the last 10 minutes: %v; want one difference, key 42's", err)
	}
	if err := (ShadowGate{Window: 10 * time.Minute, MaxDifferences: 1}).Check(sum, now); err != nil {
		t.Fatalf("gate allowing one: %v", err)
	}
	if err := (ShadowGate{Window: 10 * time.Minute}).Check(sum, now.Add(11*time.Minute)); err != nil {
		t.Fatalf("gate once the difference is older than the window: %v", err)
	}
	if err := (ShadowGate{}).Check(sum, now); err == nil {
		t.Fatal("the default window let a difference of now pass")
	}
}
