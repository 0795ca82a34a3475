package topology

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func listTwoPC(t *testing.T, s *Store) []TwoPC {
	t.Helper()
	l, err := s.ListTwoPC(t.Context())
	if err != nil {
		t.Fatalf("ListTwoPC: %v", err)
	}
	return l
}

func gids(l []TwoPC) []string {
	var out []string
	for _, t := range l {
		out = append(out, t.GID)
	}
	return out
}

func TestTwoPCLifecycle(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()

	if l := listTwoPC(t, s); len(l) != 0 {
		t.Fatalf("ListTwoPC on an empty cluster = %+v", l)
	}
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tx1 := TwoPC{GID: "sg_gw1_1", Gateway: "gw1", Participants: []string{"b", "a"}, Created: t0.Add(time.Second)}
	tx2 := TwoPC{GID: "sg_gw1_2", Gateway: "gw1", Participants: []string{"a", "c"}, Created: t0}
	for _, tx := range []TwoPC{tx1, tx2} {
		if err := s.BeginTwoPC(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	tx3 := TwoPC{GID: "sg_gw2_1", Gateway: "gw2", Participants: []string{"a"}} // Created filled in
	if err := s.BeginTwoPC(ctx, tx3); err != nil {
		t.Fatal(err)
	}
	if err := s.BeginTwoPC(ctx, TwoPC{GID: tx1.GID, Gateway: "gw9", Participants: []string{"z"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("BeginTwoPC of an existing gid = %v, want ErrConflict", err)
	}

	l := listTwoPC(t, s)
	if got := gids(l); !slices.Equal(got, []string{"sg_gw1_2", "sg_gw1_1", "sg_gw2_1"}) {
		t.Fatalf("ListTwoPC = %q, want oldest first", got)
	}
	if !reflect.DeepEqual(l[1], tx1) {
		t.Fatalf("record %+v, want %+v (unchanged by the conflicting Begin)", l[1], tx1)
	}
	if c := l[2].Created; c.IsZero() || time.Since(c) > time.Minute {
		t.Fatalf("Created = %v, want about now", c)
	}

	if err := s.DecideTwoPC(ctx, tx1.GID, TwoPCCommit); err != nil {
		t.Fatal(err)
	}
	if err := s.DecideTwoPC(ctx, tx1.GID, TwoPCCommit); err != nil {
		t.Fatalf("deciding commit again: %v, want nil (idempotent)", err)
	}
	if err := s.DecideTwoPC(ctx, tx1.GID, TwoPCAbort); !errors.Is(err, ErrConflict) {
		t.Fatalf("abort after commit = %v, want ErrConflict", err)
	}
	if err := s.DecideTwoPC(ctx, tx2.GID, TwoPCAbort); err != nil {
		t.Fatal(err)
	}
	if err := s.DecideTwoPC(ctx, tx2.GID, TwoPCCommit); !errors.Is(err, ErrConflict) {
		t.Fatalf("commit after abort = %v, want ErrConflict", err)
	}
	if err := s.DecideTwoPC(ctx, "sg_nope", TwoPCCommit); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deciding a missing record = %v, want ErrNotFound", err)
	}
	for _, d := range []TwoPCDecision{TwoPCUndecided, "Commit", "rollback"} {
		if err := s.DecideTwoPC(ctx, tx3.GID, d); err == nil || errors.Is(err, ErrConflict) {
			t.Fatalf("DecideTwoPC(%q) = %v, want an invalid-decision error", d, err)
		}
	}

	l = listTwoPC(t, s)
	want1, want2 := tx1, tx2
	want1.Decision, want2.Decision = TwoPCCommit, TwoPCAbort
	if !reflect.DeepEqual(l[0], want2) || !reflect.DeepEqual(l[1], want1) || l[2].Decision != TwoPCUndecided {
		t.Fatalf("after deciding: %+v", l)
	}

	if err := s.EndTwoPC(ctx, tx1.GID); err != nil {
		t.Fatal(err)
	}
	if err := s.EndTwoPC(ctx, tx1.GID); err != nil {
		t.Fatalf("EndTwoPC of a gone record: %v, want nil", err)
	}
	if err := s.DecideTwoPC(ctx, tx1.GID, TwoPCCommit); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deciding an ended record = %v, want ErrNotFound", err)
	}
	if got := gids(listTwoPC(t, s)); !slices.Equal(got, []string{"sg_gw1_2", "sg_gw2_1"}) {
		t.Fatalf("ListTwoPC after End = %q", got)
	}
	// An ended gid could be begun again (gids must not be reused, but the
	// store does not remember them).
	if err := s.BeginTwoPC(ctx, tx1); err != nil {
		t.Fatal(err)
	}
}

func TestTwoPCBeginInvalid(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ok := TwoPC{GID: "g", Gateway: "gw", Participants: []string{"a"}}
	for _, tt := range []struct {
		name string
		edit func(*TwoPC)
	}{
		{"empty_gid", func(t *TwoPC) { t.GID = "" }},
		{"gid_slash", func(t *TwoPC) { t.GID = "a/b" }},
		{"gid_space", func(t *TwoPC) { t.GID = "a b" }},
		{"gid_quote", func(t *TwoPC) { t.GID = "a'b" }},
		{"gid_too_long", func(t *TwoPC) { t.GID = strings.Repeat("g", 200) }},
		{"no_gateway", func(t *TwoPC) { t.Gateway = "" }},
		{"no_participants", func(t *TwoPC) { t.Participants = nil }},
		{"participant_twice", func(t *TwoPC) { t.Participants = []string{"a", "b", "a"} }},
		{"bad_participant", func(t *TwoPC) { t.Participants = []string{"a", "B/1"} }},
		{"decided", func(t *TwoPC) { t.Decision = TwoPCCommit }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tx := ok
			tx.Participants = slices.Clone(ok.Participants)
			tt.edit(&tx)
			if err := s.BeginTwoPC(t.Context(), tx); err == nil {
				t.Fatalf("BeginTwoPC(%+v) succeeded", tx)
			}
		})
	}
	if l := listTwoPC(t, s); len(l) != 0 {
		t.Fatalf("invalid records stored: %+v", l)
	}
	long := ok
	long.GID = strings.Repeat("g", 199)
	if err := s.BeginTwoPC(t.Context(), long); err != nil {
		t.Fatalf("199-byte gid: %v", err)
	}

	// A record that does not parse fails the list rather than vanish from it.
	if _, err := te.cli.Put(t.Context(), s.twopcKey("garbage"), "{"); err != nil {
		t.Fatal(err)
	}
	if l, err := s.ListTwoPC(t.Context()); err == nil {
		t.Fatalf("ListTwoPC with a garbage record = %+v", l)
	}
}

// TestTwoPCDecideRace races deciders of opposite decisions on each record:
// exactly one decision wins, every decider of it succeeds and every decider
// of the other gets ErrConflict.
func TestTwoPCDecideRace(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	for _, deciders := range []int{2, 8} {
		t.Run(fmt.Sprint(deciders), func(t *testing.T) {
			const rounds = 25
			wins := map[TwoPCDecision]int{}
			for i := range rounds {
				gid := fmt.Sprintf("race_%d_%d", deciders, i)
				if err := s.BeginTwoPC(ctx, TwoPC{GID: gid, Gateway: "gw", Participants: []string{"a", "b"}}); err != nil {
					t.Fatal(err)
				}
				errs := make([]error, deciders)
				decisions := make([]TwoPCDecision, deciders)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for j := range deciders {
					decisions[j] = TwoPCCommit
					if j%2 == 1 {
						decisions[j] = TwoPCAbort
					}
					wg.Go(func() {
						<-start
						errs[j] = s.DecideTwoPC(ctx, gid, decisions[j])
					})
				}
				close(start)
				wg.Wait()
				l := listTwoPC(t, s)
				idx := slices.IndexFunc(l, func(x TwoPC) bool { return x.GID == gid })
				won := l[idx].Decision
				if won != TwoPCCommit && won != TwoPCAbort {
					t.Fatalf("%s: decision %q after the race", gid, won)
				}
				wins[won]++
				for j, err := range errs {
					switch {
					case decisions[j] == won && err != nil:
						t.Fatalf("%s: %s won, but a %s decider got %v", gid, won, decisions[j], err)
					case decisions[j] != won && !errors.Is(err, ErrConflict):
						t.Fatalf("%s: %s won, but a %s decider got %v, want ErrConflict", gid, won, decisions[j], err)
					}
				}
				if l[idx].Gateway != "gw" || !slices.Equal(l[idx].Participants, []string{"a", "b"}) {
					t.Fatalf("%s: record changed beyond its decision: %+v", gid, l[idx])
				}
			}
			t.Logf("%d deciders: commit won %d times, abort %d times", deciders, wins[TwoPCCommit], wins[TwoPCAbort])
		})
	}
}

// TestGatewaysAndTwoPCClustersIsolated uses the same gateway IDs and gids in
// clusters whose names share a prefix.
func TestGatewaysAndTwoPCClustersIsolated(t *testing.T) {
	te := startTestEtcd(t)
	ctx := t.Context()
	blue, blue2 := NewStore(te.cli, "blue"), NewStore(te.cli, "blue2")
	for _, s := range []*Store{blue, blue2} {
		r, err := s.RegisterGateway(ctx, GatewayInfo{ID: "gw1", Addr: s.prefix}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if err := s.BeginTwoPC(ctx, TwoPC{GID: "g1", Gateway: "gw1", Participants: []string{"a"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := blue.DecideTwoPC(ctx, "g1", TwoPCCommit); err != nil {
		t.Fatal(err)
	}
	if err := blue2.DecideTwoPC(ctx, "g1", TwoPCAbort); err != nil {
		t.Fatalf("blue2's record was decided by blue's decision: %v", err)
	}
	if err := blue.BeginTwoPC(ctx, TwoPC{GID: "g2", Gateway: "gw1", Participants: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if err := blue2.EndTwoPC(ctx, "g2"); err != nil {
		t.Fatal(err)
	}
	if got := gids(listTwoPC(t, blue)); !slices.Equal(got, []string{"g1", "g2"}) {
		t.Fatalf("blue's records = %q", got)
	}
	if l := listTwoPC(t, blue2); len(l) != 1 || l[0].Decision != TwoPCAbort {
		t.Fatalf("blue2's records = %+v", l)
	}
	for _, s := range []*Store{blue, blue2} {
		live := liveIDs(t, s)
		if len(live) != 1 || live["gw1"].Addr != s.prefix {
			t.Fatalf("%s live gateways = %+v", s.prefix, live)
		}
	}
}

// TestCommitTwoPC: the coordinator's one-round-trip commit decision takes
// effect on the record as begun, agrees with a commit decided meanwhile and
// loses to an abort a resolver decided first.
func TestCommitTwoPC(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	now := time.Now().UTC()
	begin := func(gid string) TwoPC {
		t.Helper()
		tx := TwoPC{GID: gid, Gateway: "gw1", Participants: []string{"a", "b"}, Created: now}
		if err := s.BeginTwoPC(ctx, tx); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	decision := func(gid string) TwoPCDecision {
		t.Helper()
		for _, r := range listTwoPC(t, s) {
			if r.GID == gid {
				return r.Decision
			}
		}
		t.Fatalf("no record %s", gid)
		return ""
	}

	fresh := begin("sg_gw1_1")
	if err := s.CommitTwoPC(ctx, fresh); err != nil || decision(fresh.GID) != TwoPCCommit {
		t.Fatalf("CommitTwoPC: %v, decision %q", err, decision(fresh.GID))
	}
	if err := s.CommitTwoPC(ctx, fresh); err != nil {
		t.Fatalf("CommitTwoPC again: %v, want nil", err)
	}
	aborted := begin("sg_gw1_2")
	if err := s.DecideTwoPC(ctx, aborted.GID, TwoPCAbort); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitTwoPC(ctx, aborted); !errors.Is(err, ErrConflict) || decision(aborted.GID) != TwoPCAbort {
		t.Fatalf("CommitTwoPC after an abort: %v, decision %q; want ErrConflict, abort", err, decision(aborted.GID))
	}
	if err := s.CommitTwoPC(ctx, TwoPC{GID: "sg_gw1_3", Gateway: "gw1", Participants: []string{"a"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CommitTwoPC of no record: %v, want ErrNotFound", err)
	}
}

// TestMarkSchemaChanged: a recorded schema change shows in the keyspace of
// every later snapshot, a new one each time.
func TestMarkSchemaChanged(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	if err := s.AddShard(ctx, Shard{Name: "s0", DSN: "postgres://127.0.0.1:1/app"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKeyspace(ctx, "app", 4, []string{"s0"}); err != nil {
		t.Fatal(err)
	}
	change := func() string {
		t.Helper()
		snap, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return snap.Keyspace("app").SchemaChange
	}
	if got := change(); got != "" {
		t.Fatalf("schema change before any: %q", got)
	}
	seen := map[string]bool{}
	for range 3 {
		if err := s.MarkSchemaChanged(ctx, "app"); err != nil {
			t.Fatal(err)
		}
		got := change()
		if got == "" || seen[got] {
			t.Fatalf("schema change %q, seen before: %v", got, seen[got])
		}
		seen[got] = true
	}
	if err := s.MarkSchemaChanged(ctx, "no/such"); err == nil {
		t.Fatal("MarkSchemaChanged took an invalid keyspace name")
	}
}

// TestTwoPCGroupedWrites: writes that arrive while a group is on its way to
// etcd go out together as the next group, each with its own outcome, and a
// key written twice waits for the group after.
func TestTwoPCGroupedWrites(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	rec := func(gid string) TwoPC {
		return TwoPC{GID: gid, Gateway: "gw1", Participants: []string{"a", "b"}, Created: time.Now().UTC()}
	}
	existing, toCommit, aborted, toEnd := rec("sg_gw1_old"), rec("sg_gw1_c"), rec("sg_gw1_ab"), rec("sg_gw1_end")
	for _, r := range []TwoPC{existing, toCommit, aborted, toEnd} {
		if err := s.BeginTwoPC(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DecideTwoPC(ctx, aborted.GID, TwoPCAbort); err != nil {
		t.Fatal(err)
	}

	sizes := make(chan int, 10)
	release := make(chan struct{})
	s.twopc.beforeWrite = func(n int) {
		sizes <- n
		<-release
	}
	var wg sync.WaitGroup
	first := rec("sg_gw1_first")
	wg.Go(func() {
		if err := s.BeginTwoPC(ctx, first); err != nil {
			t.Errorf("BeginTwoPC(%s): %v", first.GID, err)
		}
	})
	if n := <-sizes; n != 1 {
		t.Fatalf("first group of %d writes, want 1", n)
	}
	// While the first group is held, the rest queue.
	var fresh []TwoPC
	for i := range 5 {
		r := rec(fmt.Sprintf("sg_gw1_new%d", i))
		fresh = append(fresh, r)
		wg.Go(func() {
			if err := s.BeginTwoPC(ctx, r); err != nil {
				t.Errorf("BeginTwoPC(%s): %v", r.GID, err)
			}
		})
	}
	var conflictErr, abortedErr error
	wg.Go(func() {
		conflictErr = s.BeginTwoPC(ctx, TwoPC{GID: existing.GID, Gateway: "gw9", Participants: []string{"z"}})
	})
	wg.Go(func() {
		if err := s.CommitTwoPC(ctx, toCommit); err != nil {
			t.Errorf("CommitTwoPC: %v", err)
		}
	})
	wg.Go(func() { abortedErr = s.CommitTwoPC(ctx, aborted) })
	for range 2 {
		wg.Go(func() {
			if err := s.EndTwoPC(ctx, toEnd.GID); err != nil {
				t.Errorf("EndTwoPC: %v", err)
			}
		})
	}
	const queued = 5 + 1 + 1 + 1 + 2
	for {
		s.twopc.mu.Lock()
		n := len(s.twopc.queue)
		s.twopc.mu.Unlock()
		if n == queued {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	close(sizes)
	var got []int
	for n := range sizes {
		got = append(got, n)
	}
	// One of the two EndTwoPC of one key waits for a group of its own.
	if !slices.Equal(got, []int{queued - 1, 1}) {
		t.Fatalf("groups after the first: %v, want [%d 1]", got, queued-1)
	}
	if !errors.Is(conflictErr, ErrConflict) {
		t.Errorf("BeginTwoPC of an existing gid in a group: %v, want ErrConflict", conflictErr)
	}
	if !errors.Is(abortedErr, ErrConflict) {
		t.Errorf("CommitTwoPC of an aborted record in a group: %v, want ErrConflict", abortedErr)
	}
	byGID := map[string]TwoPC{}
	for _, r := range listTwoPC(t, s) {
		byGID[r.GID] = r
	}
	for _, r := range append(fresh, first) {
		if got, ok := byGID[r.GID]; !ok || got.Decision != TwoPCUndecided {
			t.Errorf("record %s: %+v, %v; want it begun, undecided", r.GID, got, ok)
		}
	}
	if got := byGID[existing.GID]; !reflect.DeepEqual(got, existing) {
		t.Errorf("record %s = %+v, want %+v (unchanged by the conflicting Begin)", existing.GID, got, existing)
	}
	if got := byGID[toCommit.GID].Decision; got != TwoPCCommit {
		t.Errorf("committed record decided %q", got)
	}
	if got := byGID[aborted.GID].Decision; got != TwoPCAbort {
		t.Errorf("aborted record decided %q", got)
	}
	if _, ok := byGID[toEnd.GID]; ok {
		t.Errorf("ended record %s still there", toEnd.GID)
	}
}
