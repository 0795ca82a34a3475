package proxy

import (
	"testing"

	"github.com/shardgate/shardgate/topology"
)

// snapshotWithFence is keyspace app (8 logical shards over s0) at
// revision rev, with fence f up if not nil.
func snapshotWithFence(rev int64, f *topology.Fence) *topology.Snapshot {
	ks := &topology.Keyspace{Name: "app", Map: &topology.ShardMap{LogicalCount: 8, Placement: topology.EvenPlacement(8, []string{"s0"})}, Fence: f}
	return &topology.Snapshot{Revision: rev, Keyspaces: map[string]*topology.Keyspace{"app": ks}}
}

// TestFenceDrainsEarlierActivities: a fence is drained once every activity
// that began before it ended, whatever began after; an activity that began
// after it must respect it, one that began before must not; lifting it
// releases those held; a newer snapshot, not an older one, is what State
// reports.
func TestFenceDrainsEarlierActivities(t *testing.T) {
	f := newFences()
	before, fc := f.enlist("app")
	if fc != nil {
		t.Fatal("a fence before any was raised")
	}
	f.Apply(snapshotWithFence(10, &topology.Fence{ID: "grow.0.1", Logical: []int{6, 7}}))
	if st := f.State(); st.Revision != 10 || st.Fences["app"] != "" {
		t.Fatalf("state with an activity open from before: %+v, want revision 10 and nothing drained", st)
	}
	after, fc := f.enlist("app")
	if fc == nil || !fc.logical[7] || fc.logical[5] {
		t.Fatalf("an activity that began under the fence got fence %+v, want 6 and 7", fc)
	}
	if f.current("app", before.epoch) != nil {
		t.Fatal("an activity that began before the fence must not wait for it")
	}
	f.delist(before)
	if st := f.State(); st.Fences["app"] != "grow.0.1" {
		t.Fatalf("state once the earlier activity ended: %+v, want the fence drained, the later one still open", st)
	}
	select {
	case <-f.Changed():
	default:
		t.Fatal("no change signalled when the fence drained")
	}
	// An older snapshot installed late changes nothing.
	f.Apply(snapshotWithFence(9, nil))
	if f.current("app", after.epoch) == nil {
		t.Fatal("an older snapshot lifted the fence")
	}
	f.Apply(snapshotWithFence(11, nil))
	select {
	case <-fc.lifted:
	default:
		t.Fatal("the fence is not lifted by the snapshot without it")
	}
	if st := f.State(); st.Revision != 11 || len(st.Fences) != 0 {
		t.Fatalf("state after the lift: %+v", st)
	}
	f.delist(after)
	// A second fence waits for nothing: nothing is open.
	f.Apply(snapshotWithFence(12, &topology.Fence{ID: "grow.1.1", Logical: []int{5}}))
	if st := f.State(); st.Fences["app"] != "grow.1.1" {
		t.Fatalf("a fence with nothing open: %+v, want it drained at once", st)
	}
}

// TestFenceProbe: a statement reaches a fenced logical shard when one of
// its keys hashes there or when it runs on every shard.
func TestFenceProbe(t *testing.T) {
	snap := snapshotWithFence(1, nil)
	ks := snap.Keyspace("app")
	fc := &fence{logical: map[int]bool{7: true}}
	lo, _ := ks.Map.Range(7)
	p := &fenceProbe{ks: ks, fence: fc}
	p.ShardFor(lo)
	if !p.hit {
		t.Error("a key of logical shard 7 did not reach the fence on 7")
	}
	p = &fenceProbe{ks: ks, fence: fc}
	first, _ := ks.Map.Range(0)
	p.ShardFor(first)
	if p.hit {
		t.Error("a key of logical shard 0 reached the fence on 7")
	}
	p = &fenceProbe{ks: ks, fence: fc}
	p.Shards()
	if !p.hit {
		t.Error("a statement on every shard did not reach the fence")
	}
}
