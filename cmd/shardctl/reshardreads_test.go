package main

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/shardgate/shardgate/topology"
)

// TestReshardShadowSwitch: shadow reads and a read switch are refused
// until the targets hold a kept-up copy, write the keyspace's read
// traffic from the workflow's moves and slots, keep each other's share,
// record the cutover gate, and the differences the gateways report refuse
// the cutover; a cancel takes the traffic and the reports off again.
func TestReshardShadowSwitch(t *testing.T) {
	t.Parallel()
	e, store := newGrowWorkflow(t)
	ctx := t.Context()
	traffic := func() *topology.ReadTraffic {
		t.Helper()
		tr, err := store.ReadTrafficOf(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}

	// Bad input, and a workflow whose targets hold nothing yet.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"shadow", "grow"}, "missing --percent"},
		{[]string{"shadow", "grow", "--percent", "101"}, "--percent must be a percentage from 0 to 100"},
		{[]string{"shadow", "grow", "--percent", "-1"}, "--percent must be a percentage from 0 to 100"},
		{[]string{"shadow", "grow", "--percent", "half"}, `not "half"`},
		{[]string{"shadow", "grow", "--percent", "NaN"}, "--percent must be a percentage"},
		{[]string{"shadow", "grow", "--percent", "5", "--window", "0s"}, "--window must be positive"},
		{[]string{"shadow", "grow", "--percent", "5", "--max-differences", "100"}, "--max-differences must be from 0 to 99"},
		{[]string{"shadow", "grow", "--percent", "5", "--max-differences", "-1"}, "--max-differences must be from 0 to 99"},
		{[]string{"switch", "grow"}, "missing --reads"},
		{[]string{"switch", "grow", "--reads", "150%"}, "--reads must be a percentage from 0 to 100"},
		{[]string{"shadow", "nope", "--percent", "5"}, "workflow nope does not exist"},
		{[]string{"shadow", "grow", "--percent", "5"}, "is in phase planned: reads may go to its targets only while they hold a complete copy"},
		{[]string{"switch", "grow", "--reads", "5"}, "phases catching_up, cutting_over, cut_over, reversing"},
	} {
		e.run("", append([]string{"reshard"}, tt.args...)...).fails(t, tt.want)
	}
	if tr := traffic(); tr != nil {
		t.Fatalf("refused commands wrote read traffic %+v", tr)
	}
	if w, err := store.Workflow(ctx, "grow"); err != nil || w.Gate != (topology.ShadowGate{}) {
		t.Fatalf("refused commands changed the gate: %+v, %v", w, err)
	}

	// Caught up: s1's stream keeps s2 up to date.
	if _, err := store.UpdateWorkflow(ctx, "grow", func(w *topology.Workflow) error {
		w.Phase = topology.PhaseCatchingUp
		w.Sources = map[string]*topology.SourceProgress{"s1": {Slot: "sg_grow_1", Publication: "sg_grow_1", Seeded: true}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out := e.run("", "reshard", "shadow", "grow", "--percent", "50%").ok(t)
	for _, want := range []string{"workflow grow:", "every read of its moving logical shards goes to their sources", "50% of the reads the sources answer also run on the targets", "at most 0 shadow differences in the last 10m0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("reshard shadow printed %q, want %q in it", out, want)
		}
	}
	tr := traffic()
	if tr == nil || tr.Workflow != "grow" || !maps.Equal(tr.Targets, map[int]string{6: "s2", 7: "s2"}) ||
		!maps.Equal(tr.Slots, map[string]string{"s1": "sg_grow_1"}) || tr.ShadowPercent != 50 || tr.ReadPercent != 0 {
		t.Fatalf("after shadow --percent 50%%, read traffic %+v", tr)
	}

	out = e.run("", "reshard", "switch", "grow", "--reads", "12.5").ok(t)
	if !strings.Contains(out, "12.5% of the reads of its moving logical shards go to their targets") || !strings.Contains(out, "writes are unchanged") {
		t.Errorf("reshard switch printed %q", out)
	}
	if tr := traffic(); tr == nil || tr.ReadPercent != 12.5 || tr.ShadowPercent != 50 || len(tr.Targets) != 2 {
		t.Fatalf("after switch --reads 12.5, read traffic %+v", tr)
	}

	// The gate's flags are recorded only when given.
	e.run("", "reshard", "shadow", "grow", "--percent", "20", "--max-differences", "2", "--window", "5m").ok(t)
	e.run("", "reshard", "shadow", "grow", "--percent", "30").ok(t)
	w, err := store.Workflow(ctx, "grow")
	if err != nil || w.Gate != (topology.ShadowGate{Window: 5 * time.Minute, MaxDifferences: 2}) {
		t.Fatalf("gate %+v, %v; want 5m, 2", w.Gate, err)
	}
	if tr := traffic(); tr.ShadowPercent != 30 || tr.ReadPercent != 12.5 {
		t.Fatalf("after shadow --percent 30, read traffic %+v", tr)
	}

	// Another workflow of the keyspace cannot steer its reads meanwhile.
	if err := store.CreateWorkflow(ctx, topology.Workflow{Name: "other", Keyspace: "app", Moves: []topology.Move{{Logical: 0, From: "s0", To: "s2"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.UpdateWorkflow(ctx, "other", func(w *topology.Workflow) error {
		w.Phase = topology.PhaseCatchingUp
		w.Sources = map[string]*topology.SourceProgress{"s0": {Slot: "sg_other_0", Seeded: true}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.run("", "reshard", "switch", "other", "--reads", "10").fails(t, "workflow grow steers the reads of keyspace app")

	// Three recent differences: more than the two the gate allows.
	now := time.Now().UTC()
	report := topology.ShadowReport{Gateway: "gw1", Updated: now,
		Logical: map[int]*topology.ShadowTally{6: {Matches: 40, Differences: 3, Skipped: 1}, 7: {Matches: 9}}}
	for i, key := range []string{"k1", "k2", "k42"} {
		report.Recent = append(report.Recent, topology.ShadowDifference{At: now.Add(time.Duration(i-3) * time.Second), Logical: 6, Key: key,
			SQL: "SELECT *\n\tFROM users WHERE id = " + key, SourceRows: 1, TargetRows: 0})
	}
	if err := store.PublishShadow(ctx, "grow", report); err != nil {
		t.Fatal(err)
	}
	e.run("", "reshard", "cutover", "grow").fails(t, "workflow grow: cutover refused", "shadow reads found 3 differences in the last 5m0s (at most 2 allowed)", "key k42")
	if w, err := store.Workflow(ctx, "grow"); err != nil || w.Request != "" {
		t.Fatalf("after a refused cutover: %+v, %v; want no request", w, err)
	}
	out = e.run("", "reshard", "show", "grow").ok(t)
	for _, want := range [][]string{
		{"reads:", "12.5% at the targets, 30% of the rest shadowed"},
		{"shadow reads:", "49 matched, 3 differed, 1 skipped"},
		{"cutover gate:", "at most 2 shadow differences in the last 5m0s", "closed: 3 differences"},
		{"LOGICAL", "MATCHED", "DIFFERED", "SKIPPED"},
		{"6", "40", "3", "1"},
		{"DIFFERED AT", "LOGICAL", "KEY", "SOURCE ROWS", "TARGET ROWS", "SQL"},
		{"6", "k42", "1", "0", "SELECT * FROM users WHERE id = k42"},
	} {
		if !hasLine(out, want...) {
			t.Errorf("reshard show printed\n%s\nwant a line with %q", out, want)
		}
	}
	if hasLine(out, "7", "9", "0", "0") {
		t.Errorf("reshard show printed\n%s\nwant no line for logical shard 7, which never differed", out)
	}
	// The other workflow's show has no reads line: grow steers them.
	if out := e.run("", "reshard", "show", "other").ok(t); strings.Contains(out, "reads:") || !hasLine(out, "cutover gate:", "(open)") {
		t.Errorf("reshard show other printed\n%s\nwant no reads and an open gate", out)
	}

	// The gate allowing three, the cutover is asked for (no controller
	// runs here, so the wait runs out).
	e.run("", "reshard", "shadow", "grow", "--percent", "30", "--max-differences", "3").ok(t)
	if r := e.run("", "reshard", "cutover", "grow", "--wait", "10ms"); r.code != 1 || !strings.Contains(r.stderr, "not in phase cut_over") {
		t.Errorf("cutover with the gate open: exit %d, stderr %q", r.code, r.stderr)
	}
	if w, err := store.Workflow(ctx, "grow"); err != nil || w.Request != topology.RequestCutover {
		t.Fatalf("after cutover with the gate open: %+v, %v; want a cutover request", w, err)
	}

	// A workflow asked to end cannot have its reads steered.
	if _, err := store.UpdateWorkflow(ctx, "grow", func(w *topology.Workflow) error {
		w.Request = topology.RequestCancel
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.run("", "reshard", "switch", "grow", "--reads", "100").fails(t, "workflow grow is asked to cancel")
	if tr := traffic(); tr == nil || tr.ReadPercent != 12.5 {
		t.Fatalf("after a refused switch, read traffic %+v", tr)
	}

	// A cancel takes the traffic and the shadow reports off. (Planned:
	// nothing on the shards to undo, so no Postgres is needed.)
	if _, err := store.UpdateWorkflow(ctx, "grow", func(w *topology.Workflow) error {
		w.Phase, w.Request = topology.PhasePlanned, ""
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.run("", "reshard", "cancel", "grow").ok(t)
	if tr := traffic(); tr != nil {
		t.Errorf("after cancel, read traffic %+v", tr)
	}
	if sum, err := store.Shadow(ctx, "grow"); err != nil || sum.Total != (topology.ShadowTally{}) || len(sum.Recent) != 0 {
		t.Errorf("after cancel, shadow reports %+v, %v", sum, err)
	}
	// Now the other workflow may.
	e.run("", "reshard", "switch", "other", "--reads", "10").ok(t)
	if tr := traffic(); tr == nil || tr.Workflow != "other" || !maps.Equal(tr.Targets, map[int]string{0: "s2"}) || tr.ReadPercent != 10 {
		t.Errorf("after switch other, read traffic %+v", tr)
	}
}

// newGrowWorkflow is keyspace app, 8 logical shards over s0 and s1, and a
// planned workflow grow that moves 6 and 7 from s1 to s2.
func newGrowWorkflow(t *testing.T) (*testEnv, *topology.Store) {
	t.Helper()
	e := newEnv(t)
	e.addShards(3)
	e.run("", "keyspace", "create", "app", "--logical-shards", "8", "--shards", "s0,s1").ok(t)
	store := e.store()
	if err := store.CreateWorkflow(t.Context(), topology.Workflow{Name: "grow", Keyspace: "app", Moves: []topology.Move{
		{Logical: 6, From: "s1", To: "s2"}, {Logical: 7, From: "s1", To: "s2"},
	}}); err != nil {
		t.Fatal(err)
	}
	return e, store
}
