package topology

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestWorkflowRecords(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "s0", "s1", "s2", "s3")
	for _, ks := range []string{"app", "other"} {
		if err := s.CreateKeyspace(ctx, ks, 8, []string{"s0", "s1"}); err != nil {
			t.Fatal(err)
		}
	}
	// EvenPlacement: 0-3 on s0, 4-7 on s1.
	grow := Workflow{Name: "grow", Keyspace: "app", Moves: []Move{{Logical: 3, From: "s0", To: "s2"}, {Logical: 2, From: "s0", To: "s2"}}}
	if err := s.CreateWorkflow(ctx, grow); err != nil {
		t.Fatal(err)
	}
	w, err := s.Workflow(ctx, "grow")
	if err != nil {
		t.Fatal(err)
	}
	if w.Phase != PhasePlanned || w.MapVersion != 1 || w.Created.IsZero() || w.Revision == 0 || len(w.Moves) != 2 || w.Moves[0].Logical != 2 {
		t.Fatalf("recorded %+v: want planned, map version 1, moves sorted", w)
	}

	for _, tt := range []struct {
		w    Workflow
		want string
		is   error
	}{
		{Workflow{Name: "grow", Keyspace: "app", Moves: []Move{{Logical: 7, From: "s1", To: "s3"}}}, "workflow grow already exists", ErrConflict},
		{Workflow{Name: "overlap", Keyspace: "app", Moves: []Move{{Logical: 6, From: "s1", To: "s3"}, {Logical: 3, From: "s0", To: "s3"}}}, "logical shard 3 of keyspace app is being moved by workflow grow already", ErrConflict},
		{Workflow{Name: "stale", Keyspace: "app", Moves: []Move{{Logical: 5, From: "s0", To: "s3"}}}, "logical shard 5 is on s1, not s0", ErrConflict},
		{Workflow{Name: "nokeyspace", Keyspace: "nope", Moves: []Move{{Logical: 5, From: "s1", To: "s3"}}}, "keyspace nope does not exist", ErrNotFound},
		{Workflow{Name: "noshard", Keyspace: "app", Moves: []Move{{Logical: 5, From: "s1", To: "s9"}}}, "shard s9 is not registered", ErrNotFound},
		{Workflow{Name: "range", Keyspace: "app", Moves: []Move{{Logical: 8, From: "s1", To: "s3"}}}, "logical shard 8 out of range", nil},
		{Workflow{Name: "twice", Keyspace: "app", Moves: []Move{{Logical: 5, From: "s1", To: "s3"}, {Logical: 5, From: "s1", To: "s2"}}}, "moved twice", nil},
		{Workflow{Name: "same", Keyspace: "app", Moves: []Move{{Logical: 5, From: "s1", To: "s1"}}}, "is on s1 already", nil},
		{Workflow{Name: "empty", Keyspace: "app"}, "no logical shards to move", nil},
		{Workflow{Name: "Bad Name", Keyspace: "app", Moves: []Move{{Logical: 5, From: "s1", To: "s3"}}}, "workflow name", nil},
	} {
		err := s.CreateWorkflow(ctx, tt.w)
		if err == nil || !strings.Contains(err.Error(), tt.want) || tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("CreateWorkflow(%s) = %v, want %q", tt.w.Name, err, tt.want)
		}
	}
	// The same logical shard of another keyspace is free.
	if err := s.CreateWorkflow(ctx, Workflow{Name: "elsewhere", Keyspace: "other", Moves: []Move{{Logical: 3, From: "s0", To: "s3"}}}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Workflows(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "elsewhere" || all[1].Name != "grow" {
		t.Fatalf("Workflows = %+v, %v; want elsewhere, grow", all, err)
	}

	stale := *w
	stale.Revision--
	if err := s.DeleteWorkflow(ctx, &stale); !errors.Is(err, ErrConflict) {
		t.Fatalf("DeleteWorkflow of a changed record: %v, want ErrConflict", err)
	}
	if err := s.DeleteWorkflow(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWorkflow(ctx, w); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteWorkflow again: %v, want ErrNotFound", err)
	}
	if _, err := s.Workflow(ctx, "grow"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Workflow after delete: %v, want ErrNotFound", err)
	}
	// Its logical shards are free again.
	if err := s.CreateWorkflow(ctx, Workflow{Name: "again", Keyspace: "app", Moves: []Move{{Logical: 3, From: "s0", To: "s3"}}}); err != nil {
		t.Fatal(err)
	}
}

// TestWorkflowLock: one controller holds a workflow's lock at a time; its
// writes to the record stop once the lock is lost, and an operator's
// update goes in beside them.
func TestWorkflowLock(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "s0", "s1")
	if err := s.CreateKeyspace(ctx, "app", 4, []string{"s0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateWorkflow(ctx, Workflow{Name: "grow", Keyspace: "app", Moves: []Move{{Logical: 3, From: "s0", To: "s1"}}}); err != nil {
		t.Fatal(err)
	}
	first, err := s.LockWorkflow(ctx, "grow", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TryLockWorkflow(ctx, "grow", time.Second); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second lock while the first is held: %v, want ErrConflict", err)
	}
	if _, err := s.UpdateWorkflow(ctx, "grow", func(w *Workflow) error { w.Request = RequestCancel; return nil }); err != nil {
		t.Fatal(err)
	}
	w, err := first.Update(ctx, func(w *Workflow) error { w.Phase = PhaseCopying; return nil })
	if err != nil || w.Phase != PhaseCopying || w.Request != RequestCancel {
		t.Fatalf("the holder's update: %+v, %v; want copying with the operator's request kept", w, err)
	}
	// The lease ends: the lock is lost, the next holder gets it.
	if _, err := te.cli.Revoke(ctx, first.session.Lease()); err != nil {
		t.Fatal(err)
	}
	<-first.Done()
	if _, err := first.Update(ctx, func(w *Workflow) error { w.Phase = PhasePlanned; return nil }); !errors.Is(err, ErrLockLost) {
		t.Fatalf("an update after the lock was lost: %v, want ErrLockLost", err)
	}
	if err := first.Delete(ctx); !errors.Is(err, ErrLockLost) {
		t.Fatalf("a delete after the lock was lost: %v, want ErrLockLost", err)
	}
	second, err := s.TryLockWorkflow(ctx, "grow", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Unlock()
	if err := second.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Workflow(ctx, "grow"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after the delete: %v", err)
	}
}

// TestCopiesFollowTheMoves: the copies a keyspace records per shard follow a
// reshard's steps: a target holds the rows it is sent before it owns them,
// a flip makes the new place the owner and the old one a holder of copies,
// and dropping them leaves nothing.
func TestCopiesFollowTheMoves(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "s0", "s1", "s2")
	if err := s.CreateKeyspace(ctx, "app", 8, []string{"s0", "s1"}); err != nil {
		t.Fatal(err)
	}
	copies := func() map[string][]int {
		t.Helper()
		snap, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return snap.Keyspace("app").Copies
	}
	// s1 owns 4-7 already: only 2 and 3 are copies there.
	rev, err := s.AddCopies(ctx, "app", "s1", []int{4, 3, 2})
	if err != nil || rev == 0 {
		t.Fatalf("AddCopies = %d, %v", rev, err)
	}
	if got := copies(); !reflect.DeepEqual(got, map[string][]int{"s1": {2, 3}}) {
		t.Fatalf("copies after AddCopies: %v, want s1: [2 3]", got)
	}
	if again, err := s.AddCopies(ctx, "app", "s1", []int{3}); err != nil || again <= rev {
		t.Fatalf("AddCopies again = %d, %v: want a newer revision, which gateways apply", again, err)
	}
	if none, err := s.AddCopies(ctx, "app", "s0", []int{0}); err != nil || none != 0 {
		t.Fatalf("AddCopies of an owned logical shard = %d, %v; want 0, nothing recorded", none, err)
	}
	if _, err := s.AddCopies(ctx, "app", "s1", []int{8}); err == nil {
		t.Fatal("AddCopies of logical shard 8 of 8 succeeded")
	}

	if _, err := s.RaiseFence(ctx, "app", Fence{ID: "f1", Workflow: "grow", Logical: []int{2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PlaceFenced(ctx, "app", "f1", map[int]string{2: "s1"}); err != nil {
		t.Fatal(err)
	}
	if got := copies(); !reflect.DeepEqual(got, map[string][]int{"s0": {2}, "s1": {3}}) {
		t.Fatalf("copies after flipping 2 to s1: %v, want s0: [2], s1: [3]", got)
	}
	if _, err := s.DropCopies(ctx, "app", "s0", []int{2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DropCopies(ctx, "app", "s1", []int{3}); err != nil {
		t.Fatal(err)
	}
	if got := copies(); len(got) != 0 {
		t.Fatalf("copies after dropping them all: %v", got)
	}
}
