package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// explainScripts answers, on every shard, an EXPLAIN with two text rows
// that name the shard.
func explainScripts() map[string]*script {
	scripts := map[string]*script{}
	for _, s := range allShards {
		scripts[s] = &script{
			Fields: []Field{typedField("QUERY PLAN", oidText, 0)},
			Rows:   [][][]byte{row("Seq Scan on t_" + s), row("  Filter: (x > 1)")},
			Tag:    "EXPLAIN",
		}
	}
	return scripts
}

func runExplain(t *testing.T, e *Explain) (*fakeExec, *collector, Tag, error) {
	t.Helper()
	x := newFake(newTopo(), explainScripts())
	c := &collector{}
	tag, err := e.Stream(testCtx(t), x, nil, c.emit)
	return x, c, tag, err
}

var queryPlanField = Field{Name: "QUERY PLAN", DataTypeOID: oidText, DataTypeSize: -1, TypeModifier: -1}

// TestExplainScatter proves Explain prints the gateway's plan with the
// shards each target resolves to, then each shard's statement and its
// plan, asked for with Prefix before the shard's SQL.
func TestExplainScatter(t *testing.T) {
	defer goleak.VerifyNone(t)
	const sql = "SELECT a, x FROM t ORDER BY a"
	target, _ := mergeTarget(t, 2)
	ms := &MergeSort{Target: target, Query: Query{SQL: sql}, Keys: []SortKey{{Ordinal: 1, Collation: -1, Text: "a"}}}
	plan := &Limit{Input: ms, Count: lit(5)}
	e := &Explain{Plan: plan, Prefix: "EXPLAIN (COSTS OFF) "}
	x, c, tag, err := runExplain(t, e)
	if err != nil {
		t.Fatal(err)
	}
	if tag != "EXPLAIN" {
		t.Errorf("tag %q, want EXPLAIN", tag)
	}
	wantVisibleFields(t, c, []Field{queryPlanField})
	want := []string{
		"Gateway plan:",
		"  " + plan.Describe(),
		"    " + ms.Describe() + " -> s0, s1",
		"Shard s0: " + sql,
		"  Seq Scan on t_s0",
		"    Filter: (x > 1)",
		"Shard s1: " + sql,
		"  Seq Scan on t_s1",
		"    Filter: (x > 1)",
	}
	if got := c.values(); !slices.Equal(got, want) {
		t.Errorf("lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	calls := x.Calls()
	slices.SortFunc(calls, func(a, b call) int { return strings.Compare(a.Shard, b.Shard) })
	if len(calls) != 2 {
		t.Fatalf("calls %+v, want one per shard", calls)
	}
	for i, s := range []string{"s0", "s1"} {
		if calls[i].Shard != s || calls[i].SQL != "EXPLAIN (COSTS OFF) "+sql {
			t.Errorf("call %d = %+v, want %s with %q", i, calls[i], s, "EXPLAIN (COSTS OFF) "+sql)
		}
	}
}

// TestExplainRoute proves a Route names its one shard, and one resolving
// to several shards explains its Multi plan beneath it.
func TestExplainRoute(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("one shard", func(t *testing.T) {
		r := &Route{Target: keysOn(3), Query: Query{SQL: "SELECT * FROM t WHERE id = 3"}}
		_, c, _, err := runExplain(t, &Explain{Plan: r, Prefix: "EXPLAIN "})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"Gateway plan:", "  " + r.Describe() + " -> s3", "Shard s3: " + r.Query.SQL, "  Seq Scan on t_s3", "    Filter: (x > 1)"}
		if got := c.values(); !slices.Equal(got, want) {
			t.Errorf("lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("multi", func(t *testing.T) {
		sc := &Scatter{Target: keysOn(1, 2), Query: Query{SQL: "SELECT * FROM t WHERE id IN (1, 2)"}}
		r := &Route{Target: keysOn(1, 2), Query: Query{SQL: "SELECT * FROM t WHERE id IN (1, 2)"}, Multi: sc}
		x, c, _, err := runExplain(t, &Explain{Plan: r, Prefix: "EXPLAIN ANALYZE "})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"Gateway plan:",
			"  " + r.Describe() + " -> s0, s1",
			"    " + sc.Describe() + " -> s0, s1",
			"Shard s0: " + sc.Query.SQL, "  Seq Scan on t_s0", "    Filter: (x > 1)",
			"Shard s1: " + sc.Query.SQL, "  Seq Scan on t_s1", "    Filter: (x > 1)"}
		if got := c.values(); !slices.Equal(got, want) {
			t.Errorf("lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for _, call := range x.Calls() {
			if call.SQL != "EXPLAIN ANALYZE "+sc.Query.SQL {
				t.Errorf("shard %s ran %q", call.Shard, call.SQL)
			}
		}
	})
}

// TestExplainRefusal proves a Route that reaches several shards without a
// Multi plan explains as its refusal, running nothing on the shards.
func TestExplainRefusal(t *testing.T) {
	defer goleak.VerifyNone(t)
	refusal := Unsupported("UPDATE of the sharding column across shards is not supported")
	r := &Route{Target: keysOn(1, 2), Query: Query{SQL: "UPDATE t SET id = 5 WHERE id IN (1, 2)"}, Refusal: refusal}
	x, c, _, err := runExplain(t, &Explain{Plan: r, Prefix: "EXPLAIN "})
	e := wantCode(t, err, CodeFeatureNotSupported)
	if e != refusal {
		t.Errorf("error %v, want the Route's refusal", e)
	}
	if calls := x.Calls(); len(calls) != 0 {
		t.Errorf("shards ran %+v", calls)
	}
	if c.rowsN != 0 {
		t.Errorf("client got rows %q", c.values())
	}
}

// TestExplainShardError proves a shard's failure fails the EXPLAIN and
// names the shard.
func TestExplainShardError(t *testing.T) {
	defer goleak.VerifyNone(t)
	scripts := explainScripts()
	scripts["s1"] = &script{Fields: []Field{queryPlanField}, Stop: stopFail, Err: &shardError{code: "42P01"}}
	x := newFake(newTopo(), scripts)
	c := &collector{}
	_, err := (&Explain{Plan: &Scatter{Target: keysOn(1, 2), Query: Query{SQL: "SELECT 1"}}, Prefix: "EXPLAIN "}).Stream(testCtx(t), x, nil, c.emit)
	var se *shardError
	if err == nil || !strings.Contains(err.Error(), "s1") || !errors.As(err, &se) {
		t.Fatalf("error %v, want the shard's error naming s1", err)
	}
	if c.rowsN != 0 {
		t.Errorf("client got rows %q", c.values())
	}
}
