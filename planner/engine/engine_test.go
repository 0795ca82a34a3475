package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// shardError is an error type a shard may fail with, to check errors.As.
type shardError struct{ code string }

func (e *shardError) Error() string { return "shard failed with " + e.code }

// wantCode fails the test unless err is an *Error with SQLSTATE code.
func wantCode(t *testing.T, err error, code string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T): want an *Error with code %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("error %q has code %s, want %s", e.Message, e.Code, code)
	}
	return e
}

// callShards returns the shards of calls, sorted.
func callShards(calls []call) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.Shard
	}
	slices.Sort(out)
	return out
}

// allShards is the default topology's shard order.
var allShards = []string{"s0", "s1", "s2", "s3"}

// keysOn is a TargetKeys target with one literal key on each of these
// logical shards.
func keysOn(logical ...int) Target {
	t := Target{Kind: TargetKeys}
	for _, l := range logical {
		t.Keys = append(t.Keys, Key{ID: idOn(l), Literal: strconv.Itoa(l)})
	}
	return t
}

// TestFakeTopology checks the fixture the other tests rely on: the anchor
// is s2, the first shard s0, and idOn lands where it says.
func TestFakeTopology(t *testing.T) {
	topo := newTopo()
	if got := AnchorShard(topo); got != "s2" {
		t.Errorf("AnchorShard = %s, want s2", got)
	}
	if got := topo.Shards(); !slices.Equal(got, allShards) {
		t.Errorf("Shards = %v", got)
	}
	for l, want := range topo.placement {
		if got := topo.ShardFor(idOn(l)); got != want {
			t.Errorf("ShardFor(idOn(%d)) = %s, want %s", l, got, want)
		}
		if got := topo.ShardFor(idOn(l) + (1<<61 - 1)); got != want {
			t.Errorf("ShardFor(top of logical shard %d) = %s, want %s", l, got, want)
		}
	}
}

// TestTargetResolve proves every kind of target resolves to the shards the
// doc comment promises, each once and in topology order.
func TestTargetResolve(t *testing.T) {
	topo := newTopo()
	tbl := testTable(t)
	on1 := strconv.FormatInt(intOn(t, topo, "s1"), 10)
	on3 := strconv.FormatInt(intOn(t, topo, "s3"), 10)
	// param is parameter $n; its ID (a keyspace id on the anchor) must be
	// ignored in favour of the hash of the bound value.
	param := func(n int) Key { return Key{Param: n, Table: tbl, ID: idOn(0)} }
	lit := func(l int) Key { return Key{ID: idOn(l), Literal: strconv.Itoa(l)} }
	keys := func(ks ...Key) Target { return Target{Kind: TargetKeys, Keys: ks} }
	tests := []struct {
		name   string
		target Target
		args   Params
		want   []string
	}{
		{"any is the first shard", Target{Kind: TargetAny}, nil, []string{"s0"}},
		{"anchor", Target{Kind: TargetAnchor}, nil, []string{"s2"}},
		{"all", Target{Kind: TargetAll}, nil, allShards},
		{"one literal", keys(lit(3)), nil, []string{"s3"}},
		{"literal on the anchor's logical shard", keys(lit(0)), nil, []string{"s2"}},
		{"literals on several shards, in shard order, once", keys(lit(6), lit(1), lit(5), lit(3)), nil, []string{"s0", "s1", "s3"}},
		{"literals on two logical shards of one shard", keys(lit(1), lit(5)), nil, []string{"s0"}},
		{"parameter is hashed ($2 is index 1)", keys(param(2)), params("junk", on3), []string{"s3"}},
		{"parameters on two shards", keys(param(2), param(1)), params(on3, on1), []string{"s1", "s3"}},
		{"parameter with spaces and sign", keys(param(1)), params(" +" + on3 + " "), []string{"s3"}},
		{"NULL parameter adds no shard", keys(lit(3), param(1)), params("NULL"), []string{"s3"}},
		{"single NULL key: anchor only", keys(param(1)), params("NULL"), []string{"s2"}},
		{"all keys NULL: anchor only", keys(param(1), param(2)), params("NULL", "NULL"), []string{"s2"}},
		{"missing parameter is NULL", keys(param(3)), params("1"), []string{"s2"}},
		{"unreadable parameter widens to all", keys(param(1)), params("7.5"), allShards},
		{"unreadable parameter among others widens to all", keys(lit(3), param(1)), params("7.5"), allShards},
		{"NULL then unreadable widens to all", keys(param(1), param(2)), params("NULL", "7.5"), allShards},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.target.Resolve(topo, tc.args)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s.Resolve = %v, want %v", tc.target, got, tc.want)
			}
		})
	}
}

// TestTargetString proves how each kind of target prints in plans.
func TestTargetString(t *testing.T) {
	tests := []struct {
		target Target
		want   string
	}{
		{Target{Kind: TargetKeys, Keys: []Key{{ID: 1, Literal: "7"}, {Param: 2}}}, "keys(7, $2)"},
		{Target{Kind: TargetKeys, Keys: []Key{{Literal: "'a'"}}}, "keys('a')"},
		{Target{Kind: TargetAll}, "all"},
		{Target{Kind: TargetAny}, "any"},
		{Target{Kind: TargetAnchor}, "anchor"},
		{Target{}, "TargetKind(0)"},
		{Target{Kind: 42}, "TargetKind(42)"},
	}
	for _, tc := range tests {
		if got := tc.target.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

// TestRouteOneShard proves a one-shard Route makes exactly one call, on the
// resolved shard, with its own Query (AnyShard only for TargetAny), and
// forwards the shard's batches and tag untouched.
func TestRouteOneShard(t *testing.T) {
	tests := []struct {
		name   string
		target Target
		shard  string
		any    bool
	}{
		{"any", Target{Kind: TargetAny}, "s0", true},
		{"anchor", Target{Kind: TargetAnchor}, "s2", false},
		{"keys", keysOn(3, 7), "s3", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin := binary.BigEndian.AppendUint64(nil, 42)
			sc := &script{
				Fields:    fields("a", "b"),
				Rows:      [][][]byte{row("x", "NULL"), {bin, []byte("")}, row("z", "w")},
				BatchSize: 2,
				Tag:       "SELECT 3",
			}
			f := newFake(newTopo(), map[string]*script{tc.shard: sc})
			r := &Route{Target: tc.target, Query: Query{SQL: "SELECT a, b FROM t", Params: []int{2, 1}}}
			var c collector
			tag, err := r.Stream(testCtx(t), f, nil, c.emit)
			if err != nil {
				t.Fatal(err)
			}
			if tag != "SELECT 3" {
				t.Errorf("tag = %q", tag)
			}
			want := []call{{Shard: tc.shard, SQL: "SELECT a, b FROM t", Params: []int{2, 1}, AnyShard: tc.any}}
			if got := f.Calls(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("calls = %+v, want %+v", got, want)
			}
			wantBatches := []Batch{
				{Fields: fields("a", "b")},
				{Rows: [][][]byte{row("x", "NULL"), {bin, []byte("")}}},
				{Rows: [][][]byte{row("z", "w")}},
			}
			if !sameBatches(c.batches, wantBatches) {
				t.Errorf("batches = %v, want %v", c.batches, wantBatches)
			}
		})
	}
}

// sameBatches compares batches, telling nil (NULL) from empty values.
func sameBatches(a, b []Batch) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !slices.Equal(a[i].Fields, b[i].Fields) || (a[i].Fields == nil) != (b[i].Fields == nil) || len(a[i].Rows) != len(b[i].Rows) {
			return false
		}
		for j := range a[i].Rows {
			ra, rb := a[i].Rows[j], b[i].Rows[j]
			if len(ra) != len(rb) {
				return false
			}
			for k := range ra {
				if (ra[k] == nil) != (rb[k] == nil) || string(ra[k]) != string(rb[k]) {
					return false
				}
			}
		}
	}
	return true
}

// TestRouteMulti proves a Route whose target reaches several shards runs
// its Multi plan instead of its own query.
func TestRouteMulti(t *testing.T) {
	defer goleak.VerifyNone(t)
	target := keysOn(1, 3) // s0, s3
	f := newFake(newTopo(), map[string]*script{
		"s0": {Fields: fields("v"), Rows: shardRowsOf("s0", 2), Tag: "SELECT 2"},
		"s3": {Fields: fields("v"), Rows: shardRowsOf("s3", 1), Tag: "SELECT 1"},
	})
	r := &Route{Target: target, Query: Query{SQL: "route"}, Multi: &Scatter{Target: target, Query: Query{SQL: "multi", Params: []int{1}}}}
	var c collector
	tag, err := r.Stream(testCtx(t), f, nil, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	if tag != "SELECT 3" {
		t.Errorf("tag = %q, want SELECT 3", tag)
	}
	calls := f.Calls()
	if got := callShards(calls); !slices.Equal(got, []string{"s0", "s3"}) {
		t.Errorf("shards called = %v", got)
	}
	for _, cl := range calls {
		if cl.SQL != "multi" || !slices.Equal(cl.Params, []int{1}) || cl.AnyShard {
			t.Errorf("call %+v: want Multi's query", cl)
		}
	}
	if c.rowsN != 3 || c.fieldsN != 1 {
		t.Errorf("client saw %d rows, %d Fields", c.rowsN, c.fieldsN)
	}
}

// TestRouteRefusal proves a multi-shard Route without Multi fails with
// exactly its Refusal, before running anything.
func TestRouteRefusal(t *testing.T) {
	refusal := Unsupported("no way")
	f := newFake(newTopo(), nil)
	f.fallback = &script{Tag: "SELECT 0"}
	r := &Route{Target: keysOn(1, 3), Query: Query{SQL: "route"}, Refusal: refusal}
	var c collector
	_, err := r.Stream(testCtx(t), f, nil, c.emit)
	if err != error(refusal) {
		t.Errorf("err = %v, want the Refusal itself", err)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("calls = %+v, want none", calls)
	}
	if len(c.batches) != 0 {
		t.Errorf("emitted %v", c.batches)
	}
}

// TestRouteNoMultiPlan proves a multi-shard Route with neither Multi nor
// Refusal fails with XX000 and runs nothing.
func TestRouteNoMultiPlan(t *testing.T) {
	f := newFake(newTopo(), nil)
	f.fallback = &script{Tag: "SELECT 0"}
	_, err := (&Route{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}).Stream(testCtx(t), f, nil, (&collector{}).emit)
	wantCode(t, err, CodeInternal)
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("calls = %+v, want none", calls)
	}
}

// TestRouteParameterKey proves a Route hashes its parameter key with the
// bound value at run time: the same plan goes to another shard with
// another value.
func TestRouteParameterKey(t *testing.T) {
	topo := newTopo()
	tbl := testTable(t)
	r := &Route{Target: Target{Kind: TargetKeys, Keys: []Key{{Param: 1, Table: tbl}}}, Query: Query{SQL: "q"}}
	for _, shard := range []string{"s1", "s3"} {
		f := newFake(topo, nil)
		f.fallback = &script{Tag: "SELECT 0"}
		v := strconv.FormatInt(intOn(t, topo, shard), 10)
		if _, err := r.Stream(testCtx(t), f, params(v), (&collector{}).emit); err != nil {
			t.Fatal(err)
		}
		if got := callShards(f.Calls()); !slices.Equal(got, []string{shard}) {
			t.Errorf("$1 = %s: called %v, want [%s]", v, got, shard)
		}
	}
}

// TestScatterRunsEveryShard proves a Scatter runs its query once on every
// shard its target resolves to, and on no other, and passes on all rows.
func TestScatterRunsEveryShard(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name   string
		target Target
		want   []string
	}{
		{"all", Target{Kind: TargetAll}, allShards},
		{"keys", keysOn(2, 7, 3), []string{"s1", "s3"}},
		{"one shard", keysOn(4), []string{"s2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scripts := map[string]*script{}
			var wantRows []string
			for i, s := range allShards {
				scripts[s] = &script{Fields: fields("v"), Rows: shardRowsOf(s, i+1), Tag: Tag("SELECT " + strconv.Itoa(i+1))}
				if slices.Contains(tc.want, s) {
					for _, r := range shardRowsOf(s, i+1) {
						wantRows = append(wantRows, string(r[0]))
					}
				}
			}
			f := newFake(newTopo(), scripts)
			var c collector
			_, err := (&Scatter{Target: tc.target, Query: Query{SQL: "SELECT v FROM t", Params: []int{3}}}).Stream(testCtx(t), f, nil, c.emit)
			if err != nil {
				t.Fatal(err)
			}
			calls := f.Calls()
			if got := callShards(calls); !slices.Equal(got, tc.want) {
				t.Errorf("shards called = %v, want %v", got, tc.want)
			}
			for _, cl := range calls {
				if cl.SQL != "SELECT v FROM t" || !slices.Equal(cl.Params, []int{3}) {
					t.Errorf("call %+v", cl)
				}
			}
			got := c.values()
			slices.Sort(got)
			if !slices.Equal(got, wantRows) {
				t.Errorf("rows = %v, want %v", got, wantRows)
			}
		})
	}
}

// TestScatterParallel proves the shards run at once: every shard's query
// waits until all of them have started, which a one-at-a-time Scatter
// never reaches (the test context's deadline then fails it).
func TestScatterParallel(t *testing.T) {
	defer goleak.VerifyNone(t)
	var f *fakeExec
	barrier := func(ctx context.Context) error {
		return f.await(ctx, func() bool { return len(f.started) == len(allShards) })
	}
	scripts := map[string]*script{}
	for _, s := range allShards {
		scripts[s] = &script{Start: barrier, Fields: fields("v"), Rows: shardRowsOf(s, 1), Tag: "SELECT 1"}
	}
	f = newFake(newTopo(), scripts)
	tag, err := (&Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}).Stream(testCtx(t), f, nil, (&collector{}).emit)
	if err != nil {
		t.Fatalf("shards did not run at once: %v", err)
	}
	if tag != "SELECT 4" {
		t.Errorf("tag = %q", tag)
	}
	if f.MaxActive() != len(allShards) {
		t.Errorf("at most %d queries ran at once", f.MaxActive())
	}
}

// TestScatterStreamsBeforeSlowestShard proves rows reach the client while
// a shard is still running: s0 (the first shard) sends nothing until the
// client has seen a row of another shard.
func TestScatterStreamsBeforeSlowestShard(t *testing.T) {
	defer goleak.VerifyNone(t)
	release := make(chan struct{})
	scripts := map[string]*script{}
	for _, s := range allShards {
		scripts[s] = &script{Fields: fields("v"), Rows: shardRowsOf(s, 2), Tag: "SELECT 2"}
	}
	scripts["s0"].Before = func(ctx context.Context, _ int) error { return waitChan(ctx, release) }
	f := newFake(newTopo(), scripts)
	released := false
	c := collector{onRows: func(b *Batch) error {
		if !released && rowShard(b) != "s0" {
			if done, _ := f.Returned("s0"); done {
				t.Error("s0 finished before the client saw a row")
			}
			released = true
			close(release)
		}
		return nil
	}}
	tag, err := (&Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}).Stream(testCtx(t), f, nil, c.emit)
	if err != nil {
		t.Fatalf("rows were held back until the slowest shard finished: %v", err)
	}
	if tag != "SELECT 8" || c.rowsN != 8 {
		t.Errorf("tag %q, %d rows", tag, c.rowsN)
	}
}

// TestScatterFieldsOnce proves the client gets one Fields batch, first,
// although every shard describes its result, including shards with no
// rows.
func TestScatterFieldsOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	scripts := map[string]*script{}
	for i, s := range allShards {
		rows := shardRowsOf(s, i) // s0 has none
		for j, r := range rows {
			rows[j] = append(r, []byte("x"))
		}
		scripts[s] = &script{Fields: fields("a", "b"), Rows: rows, Tag: Tag("SELECT " + strconv.Itoa(i))}
	}
	f := newFake(newTopo(), scripts)
	var c collector
	tag, err := (&Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}).Stream(testCtx(t), f, nil, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	if c.fieldsN != 1 || c.batches[0].Fields == nil || c.badOrder {
		t.Errorf("Fields batches = %d, first batch %+v, row before Fields: %v", c.fieldsN, c.batches[0], c.badOrder)
	}
	if !slices.Equal(c.batches[0].Fields, fields("a", "b")) {
		t.Errorf("Fields = %+v", c.batches[0].Fields)
	}
	if c.rowsN != 6 || tag != "SELECT 6" {
		t.Errorf("%d rows, tag %q", c.rowsN, tag)
	}
}

// TestScatterZeroColumnsFieldsOnce proves the same for a result with no
// columns (SELECT FROM t is valid SQL): its Fields is empty but present,
// and the client must still get exactly one.
func TestScatterZeroColumnsFieldsOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	scripts := map[string]*script{}
	for _, s := range allShards {
		scripts[s] = &script{Fields: []Field{}, Rows: [][][]byte{{}}, Tag: "SELECT 1"}
	}
	f := newFake(newTopo(), scripts)
	var c collector
	tag, err := (&Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT FROM t"}}).Stream(testCtx(t), f, nil, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	if c.fieldsN != 1 {
		t.Errorf("client got %d Fields batches for a zero-column result, want 1", c.fieldsN)
	}
	if c.rowsN != 4 || tag != "SELECT 4" {
		t.Errorf("%d rows, tag %q", c.rowsN, tag)
	}
}

// TestScatterColumnMismatch proves shards that disagree on the number of
// columns fail the statement with XX000, and every shard query ends.
func TestScatterColumnMismatch(t *testing.T) {
	defer goleak.VerifyNone(t)
	scripts := map[string]*script{}
	for _, s := range allShards {
		scripts[s] = &script{Fields: fields("a", "b"), Rows: [][][]byte{row(s, "1")}, Tag: "SELECT 1"}
	}
	scripts["s2"] = &script{Fields: fields("a", "b", "c"), Rows: [][][]byte{row("s2", "1", "2")}, Tag: "SELECT 1"}
	f := newFake(newTopo(), scripts)
	_, err := (&Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}).Stream(testCtx(t), f, nil, (&collector{}).emit)
	wantCode(t, err, CodeInternal)
	if n := f.Active(); n != 0 {
		t.Errorf("%d shard queries still running", n)
	}
}

// TestScatterTags proves the shards' row counts add up, and that shards
// answering different verbs fail the statement with XX000.
func TestScatterTags(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name   string
		target Target
		tags   map[string]Tag
		want   Tag
	}{
		{"two shards", keysOn(1, 2), map[string]Tag{"s0": "SELECT 2", "s1": "SELECT 3"}, "SELECT 5"},
		{"four shards", Target{Kind: TargetAll}, map[string]Tag{"s0": "UPDATE 0", "s1": "UPDATE 4", "s2": "UPDATE 1", "s3": "UPDATE 0"}, "UPDATE 5"},
		{"insert", keysOn(0, 3), map[string]Tag{"s2": "INSERT 0 2", "s3": "INSERT 0 40"}, "INSERT 0 42"},
		{"no counts", Target{Kind: TargetAll}, map[string]Tag{"s0": "CREATE TABLE", "s1": "CREATE TABLE", "s2": "CREATE TABLE", "s3": "CREATE TABLE"}, "CREATE TABLE"},
		{"verbs differ", keysOn(1, 2), map[string]Tag{"s0": "SELECT 2", "s1": "UPDATE 3"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scripts := map[string]*script{}
			for s, tag := range tc.tags {
				scripts[s] = &script{Tag: tag}
			}
			f := newFake(newTopo(), scripts)
			tag, err := (&Scatter{Target: tc.target, Query: Query{SQL: "q"}}).Stream(testCtx(t), f, nil, (&collector{}).emit)
			if tc.want == "" {
				wantCode(t, err, CodeInternal)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tag != tc.want {
				t.Errorf("tag = %q, want %q", tag, tc.want)
			}
		})
	}
}

// TestScatterShardErrorCancelsOthers proves an error from one shard in
// the middle of its rows fails the statement with that very error, and
// cancels the other shards, blocked mid-stream, which then return.
func TestScatterShardErrorCancelsOthers(t *testing.T) {
	defer goleak.VerifyNone(t)
	boom := &shardError{code: "23505"}
	others := []string{"s0", "s2", "s3"}
	var f *fakeExec
	scripts := map[string]*script{}
	for _, s := range others {
		scripts[s] = &script{Fields: fields("v"), Rows: shardRowsOf(s, 3), Stop: stopBlock, StopAfter: 1}
	}
	scripts["s1"] = &script{
		Fields: fields("v"), Rows: shardRowsOf("s1", 5), Stop: stopFail, StopAfter: 2, Err: boom,
		// s1 starts once the others are blocked, each after one row.
		Start: func(ctx context.Context) error {
			return f.await(ctx, func() bool {
				for _, s := range others {
					if !f.blocked[s] {
						return false
					}
				}
				return true
			})
		},
	}
	f = newFake(newTopo(), scripts)
	var c collector
	_, err := (&Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}).Stream(testCtx(t), f, nil, c.emit)
	var se *shardError
	if !errors.As(err, &se) || se != boom || !errors.Is(err, boom) {
		t.Fatalf("err = %v (%T), want the shard's error", err, err)
	}
	for _, s := range others {
		done, err := f.Returned(s)
		if !done || !errors.Is(err, context.Canceled) {
			t.Errorf("shard %s: returned %v, %v; want its context cancelled", s, done, err)
		}
	}
	if c.rowsN != 5 {
		t.Errorf("client saw %d rows, want 5 (1 from each blocked shard, 2 from s1)", c.rowsN)
	}
	if n := f.Active(); n != 0 {
		t.Errorf("%d shard queries still running", n)
	}
}

// TestScatterEmitErrorStops proves an error from the client's emit stops
// every shard and is the statement's error, and emit is not called again.
func TestScatterEmitErrorStops(t *testing.T) {
	defer goleak.VerifyNone(t)
	errEmit := errors.New("client went away")
	scripts := map[string]*script{}
	for _, s := range allShards {
		scripts[s] = &script{Fields: fields("v"), Rows: shardRowsOf(s, 3), Stop: stopBlock, StopAfter: 3}
	}
	f := newFake(newTopo(), scripts)
	var (
		n       int
		failed  string // the shard whose batch emit refused
		afterwd int
	)
	c := collector{onRows: func(b *Batch) error {
		if failed != "" {
			afterwd++
			return nil
		}
		if n++; n == 2 {
			failed = rowShard(b)
			return errEmit
		}
		return nil
	}}
	_, err := (&Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}).Stream(testCtx(t), f, nil, c.emit)
	if err != errEmit {
		t.Fatalf("err = %v, want emit's error", err)
	}
	if afterwd != 0 {
		t.Errorf("emit called %d times after it failed", afterwd)
	}
	if done, err := f.Returned(failed); !done || !errors.Is(err, errEmit) {
		t.Errorf("shard %s, whose batch emit refused, returned %v, %v", failed, done, err)
	}
	for _, s := range allShards {
		if done, err := f.Returned(s); !done || err == nil {
			t.Errorf("shard %s: returned %v, %v; want stopped with an error", s, done, err)
		}
	}
	if n := f.Active(); n != 0 {
		t.Errorf("%d shard queries still running", n)
	}
}

// TestScatterParentCancel proves cancelling the statement's context stops
// every shard and fails the statement with the context's error.
func TestScatterParentCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	scripts := map[string]*script{}
	for _, s := range allShards {
		scripts[s] = &script{Fields: fields("v"), Rows: shardRowsOf(s, 1), Stop: stopBlock, StopAfter: 1}
	}
	f := newFake(newTopo(), scripts)
	c := collector{}
	c.onRows = func(*Batch) error {
		if c.rowsN == len(allShards) {
			cancel()
		}
		return nil
	}
	_, err := (&Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}).Stream(ctx, f, nil, c.emit)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := f.Active(); n != 0 {
		t.Errorf("%d shard queries still running", n)
	}
}

// TestScatterBackpressure proves a slow client slows the shards down: while
// emit is blocked, every shard waits with at most one batch handed over
// that the client has not seen, and no shard hands over a row batch before
// the client saw the previous one.
func TestScatterBackpressure(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := testCtx(t)
	scripts := map[string]*script{}
	for _, s := range allShards {
		scripts[s] = &script{Fields: fields("v"), Rows: shardRowsOf(s, 4), Tag: "SELECT 4"}
	}
	f := newFake(newTopo(), scripts)
	f.checkBackpressure = true
	held := false
	c := collector{onRows: func(b *Batch) error {
		f.sawRows(rowShard(b))
		if held {
			return nil
		}
		held = true
		// Hold the client until every shard is waiting in emit or done.
		err := f.await(ctx, func() bool {
			for _, s := range allShards {
				if !f.inEmit[s] && !f.done[s] {
					return false
				}
			}
			return true
		})
		if err != nil {
			return err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, s := range allShards {
			if out := f.handed[s] - f.seen[s]; out > 1 {
				t.Errorf("while the client was blocked, shard %s had %d row batches outstanding", s, out)
			}
		}
		return nil
	}}
	tag, err := (&Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}).Stream(ctx, f, nil, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	if tag != "SELECT 16" || c.rowsN != 16 {
		t.Errorf("tag %q, %d rows", tag, c.rowsN)
	}
	for _, v := range f.Violations() {
		t.Error(v)
	}
}

// TestScatterDoesNotKeepBatches proves rows the client gets are the
// shard's, not memory the shard has since reused (the fake scribbles over
// every batch once emit returns).
func TestScatterDoesNotKeepBatches(t *testing.T) {
	defer goleak.VerifyNone(t)
	scripts := map[string]*script{}
	for _, s := range allShards {
		scripts[s] = &script{Fields: fields("v"), Rows: shardRowsOf(s, 3), BatchSize: 2, Tag: "SELECT 3"}
	}
	f := newFake(newTopo(), scripts)
	var c collector
	if _, err := (&Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}).Stream(testCtx(t), f, nil, c.emit); err != nil {
		t.Fatal(err)
	}
	for _, v := range c.values() {
		if strings.Contains(v, "#") {
			t.Errorf("row %q was scribbled over", v)
		}
	}
	if !slices.Equal(c.batches[0].Fields, fields("v")) {
		t.Errorf("Fields = %+v", c.batches[0].Fields)
	}
}

func bin(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

// TestCountSum proves CountSum adds each column of the shards' count rows,
// in text or binary form, and answers with one Fields batch, one row and
// SELECT 1.
func TestCountSum(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name       string
		row0, row1 [][]byte // the count rows of s0 and s1
		want       []string
	}{
		{name: "text", row0: row("3"), row1: row("4"), want: []string{"7"}},
		{name: "binary", row0: [][]byte{bin(3)}, row1: [][]byte{bin(4)}, want: []string{string(bin(7))}},
		{name: "binary large", row0: [][]byte{bin(1 << 40)}, row1: [][]byte{bin(5)}, want: []string{string(bin(1<<40 + 5))}},
		{name: "eight digits are text", row0: row("12345678"), row1: row("1"), want: []string{"12345679"}},
		{name: "several columns", row0: row("3", "1", "0"), row1: row("4", "2", "0"), want: []string{"7|3|0"}},
		{name: "several binary columns", row0: [][]byte{bin(3), bin(10)}, row1: [][]byte{bin(4), bin(20)}, want: []string{string(bin(7)) + "|" + string(bin(30))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			names := make([]string, len(tc.row0))
			for i := range names {
				names[i] = "count"
			}
			f := newFake(newTopo(), map[string]*script{
				"s0": {Fields: fields(names...), Rows: [][][]byte{tc.row0}, Tag: "SELECT 1"},
				"s1": {Fields: fields(names...), Rows: [][][]byte{tc.row1}, Tag: "SELECT 1"},
			})
			plan := &CountSum{Input: &Scatter{Target: keysOn(1, 2), Query: Query{SQL: "SELECT count(*) FROM t"}}}
			var c collector
			tag, err := plan.Stream(testCtx(t), f, nil, c.emit)
			if err != nil {
				t.Fatal(err)
			}
			if tag != "SELECT 1" {
				t.Errorf("tag = %q", tag)
			}
			if len(c.batches) != 2 || c.fieldsN != 1 || !slices.Equal(c.batches[0].Fields, fields(names...)) || len(c.batches[1].Rows) != 1 {
				t.Fatalf("batches = %v, want Fields then one row", c.batches)
			}
			if got := c.values(); !slices.Equal(got, tc.want) {
				t.Errorf("row = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCountSumAllShards proves the sum runs over every shard of a scatter.
func TestCountSumAllShards(t *testing.T) {
	defer goleak.VerifyNone(t)
	scripts := map[string]*script{}
	for i, s := range allShards {
		scripts[s] = &script{Fields: fields("count"), Rows: [][][]byte{row(strconv.Itoa(10 * (i + 1)))}, Tag: "SELECT 1"}
	}
	f := newFake(newTopo(), scripts)
	var c collector
	if _, err := (&CountSum{Input: &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}}).Stream(testCtx(t), f, nil, c.emit); err != nil {
		t.Fatal(err)
	}
	if got := c.values(); !slices.Equal(got, []string{"100"}) {
		t.Errorf("row = %q, want 100", got)
	}
}

// TestCountSumUnreadable proves a count CountSum cannot read fails the
// statement with XX000.
func TestCountSumUnreadable(t *testing.T) {
	defer goleak.VerifyNone(t)
	// Neither a decimal integer nor eight bytes of binary.
	for _, bad := range [][]byte{[]byte("x"), nil, []byte("12.5"), {0, 0, 0, 7}, []byte("123456789x")} {
		f := newFake(newTopo(), map[string]*script{
			"s0": {Fields: fields("count"), Rows: [][][]byte{row("3")}, Tag: "SELECT 1"},
			"s1": {Fields: fields("count"), Rows: [][][]byte{{bad}}, Tag: "SELECT 1"},
		})
		var c collector
		_, err := (&CountSum{Input: &Scatter{Target: keysOn(1, 2), Query: Query{SQL: "q"}}}).Stream(testCtx(t), f, nil, c.emit)
		if err == nil {
			t.Errorf("count %q: no error", bad)
			continue
		}
		wantCode(t, err, CodeInternal)
		if c.rowsN != 0 {
			t.Errorf("count %q: client saw %d rows", bad, c.rowsN)
		}
	}
}

// insertPlan is an InsertSplit into t(id, v) with these rows.
func insertPlan(t *testing.T, rows ...InsertRow) *InsertSplit {
	return &InsertSplit{
		Query:  Query{SQL: "INSERT INTO t (id, v) VALUES <whole> RETURNING id", Params: []int{1}},
		Table:  testTable(t),
		Rows:   rows,
		Prefix: "INSERT INTO t (id, v) VALUES ",
		Suffix: " RETURNING id",
	}
}

// litRow is a VALUES row whose key is a literal on logical shard l.
func litRow(l int, sql string) InsertRow {
	return InsertRow{Key: Key{ID: idOn(l), Literal: strconv.Itoa(l)}, SQL: sql}
}

// TestInsertSplitOneShard proves rows that all land on one shard run there
// as the client wrote the statement, Refusal or not.
func TestInsertSplitOneShard(t *testing.T) {
	for _, refusal := range []*Error{nil, Unsupported("volatile")} {
		f := newFake(newTopo(), map[string]*script{"s0": {Tag: "INSERT 0 2"}})
		plan := insertPlan(t, litRow(1, "(1, 'a')"), litRow(5, "(2, 'b')"))
		plan.Refusal = refusal
		tag, err := plan.Stream(testCtx(t), f, nil, (&collector{}).emit)
		if err != nil {
			t.Fatal(err)
		}
		if tag != "INSERT 0 2" {
			t.Errorf("tag = %q", tag)
		}
		want := []call{{Shard: "s0", SQL: plan.Query.SQL, Params: []int{1}}}
		if got := f.Calls(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("calls = %+v, want %+v", got, want)
		}
	}
}

// TestInsertSplitSeveralShards proves rows over several shards make one
// INSERT per shard, of that shard's rows in their order, with the client's
// parameters as they are; tags add up; the shards are listed in order of
// first appearance.
func TestInsertSplitSeveralShards(t *testing.T) {
	defer goleak.VerifyNone(t)
	topo := newTopo()
	onS0 := strconv.FormatInt(intOn(t, topo, "s0"), 10)
	tbl := testTable(t)
	plan := insertPlan(t,
		litRow(3, "(1, 'a')"),
		litRow(1, "(2, 'b')"),
		litRow(7, "(3, 'c')"),
		InsertRow{Key: Key{Param: 1, Table: tbl}, SQL: "($1, 'd')"},
	)
	f := newFake(topo, map[string]*script{
		"s3": {Fields: fields("id"), Rows: [][][]byte{row("1"), row("3")}, Tag: "INSERT 0 2"},
		"s0": {Fields: fields("id"), Rows: [][][]byte{row("2"), row(onS0)}, Tag: "INSERT 0 2"},
	})
	var c collector
	tag, err := plan.Stream(testCtx(t), f, params(onS0), c.emit)
	if err != nil {
		t.Fatal(err)
	}
	if tag != "INSERT 0 4" {
		t.Errorf("tag = %q, want INSERT 0 4", tag)
	}
	want := map[string]string{
		"s3": "INSERT INTO t (id, v) VALUES (1, 'a'), (3, 'c') RETURNING id",
		"s0": "INSERT INTO t (id, v) VALUES (2, 'b'), ($1, 'd') RETURNING id",
	}
	calls := f.Calls()
	if len(calls) != len(want) {
		t.Errorf("calls = %+v", calls)
	}
	for _, cl := range calls {
		if cl.SQL != want[cl.Shard] || cl.Params != nil || cl.AnyShard {
			t.Errorf("call on %s: %+v, want SQL %q and the client's parameters", cl.Shard, cl, want[cl.Shard])
		}
	}
	if c.fieldsN != 1 || c.rowsN != 4 {
		t.Errorf("client saw %d Fields, %d rows", c.fieldsN, c.rowsN)
	}
	if got := Shards(plan, topo, params(onS0)); !slices.Equal(got, []string{"s3", "s0"}) {
		t.Errorf("Shards = %v, want [s3 s0] (order of first appearance)", got)
	}
}

// TestInsertSplitUnplaceable proves a row whose key parameter is NULL or
// unreadable fails with 0A000 naming the column and the parameter, and
// runs nothing.
func TestInsertSplitUnplaceable(t *testing.T) {
	for _, v := range []string{"NULL", "7.5"} {
		f := newFake(newTopo(), nil)
		f.fallback = &script{Tag: "INSERT 0 1"}
		plan := insertPlan(t, litRow(3, "(1, 'a')"), InsertRow{Key: Key{Param: 2, Table: testTable(t)}, SQL: "($2, 'b')"})
		_, err := plan.Stream(testCtx(t), f, params("x", v), (&collector{}).emit)
		e := wantCode(t, err, CodeFeatureNotSupported)
		if !strings.Contains(e.Message, "t.id") || !strings.Contains(e.Message, "$2") {
			t.Errorf("$2 = %s: message %q does not name t.id and $2", v, e.Message)
		}
		if v == "NULL" && !strings.Contains(e.Message, "NULL") {
			t.Errorf("message %q does not say NULL", e.Message)
		}
		if calls := f.Calls(); len(calls) != 0 {
			t.Errorf("calls = %+v, want none", calls)
		}
	}
}

// TestInsertSplitRefusal proves rows over several shards with a Refusal
// fail with exactly that Refusal, and run nothing.
func TestInsertSplitRefusal(t *testing.T) {
	refusal := Unsupported("random() would differ per shard")
	f := newFake(newTopo(), nil)
	f.fallback = &script{Tag: "INSERT 0 1"}
	plan := insertPlan(t, litRow(3, "(1, random())"), litRow(1, "(2, random())"))
	plan.Refusal = refusal
	_, err := plan.Stream(testCtx(t), f, nil, (&collector{}).emit)
	if err != error(refusal) {
		t.Errorf("err = %v, want the Refusal itself", err)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("calls = %+v, want none", calls)
	}
}

// TestBroadcast proves a Broadcast runs on every shard, one after another
// in order, and answers with the first shard's rows and tag.
func TestBroadcast(t *testing.T) {
	scripts := map[string]*script{}
	for _, s := range allShards {
		scripts[s] = &script{Fields: fields("v"), Rows: shardRowsOf(s, 2), Tag: "INSERT 0 2"}
	}
	f := newFake(newTopo(), scripts)
	var c collector
	tag, err := (&Broadcast{Target: Target{Kind: TargetAll}, SQL: "INSERT INTO ref VALUES (1), (2)"}).Stream(testCtx(t), f, nil, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	if tag != "INSERT 0 2" {
		t.Errorf("tag = %q", tag)
	}
	calls := f.Calls()
	var order []string
	for _, cl := range calls {
		order = append(order, cl.Shard)
		if cl.SQL != "INSERT INTO ref VALUES (1), (2)" {
			t.Errorf("call %+v", cl)
		}
	}
	if !slices.Equal(order, allShards) {
		t.Errorf("ran on %v, want %v in order", order, allShards)
	}
	if f.MaxActive() != 1 {
		t.Errorf("%d shards ran at once, want one after another", f.MaxActive())
	}
	if got := c.values(); !slices.Equal(got, []string{"s0-r0", "s0-r1"}) || c.fieldsN != 1 {
		t.Errorf("client saw %v and %d Fields, want s0's result only", got, c.fieldsN)
	}
}

// TestBroadcastDiverged proves a later shard answering another tag fails
// the statement with XX000 naming the shards.
func TestBroadcastDiverged(t *testing.T) {
	scripts := map[string]*script{}
	for _, s := range allShards {
		scripts[s] = &script{Tag: "UPDATE 2"}
	}
	scripts["s2"].Tag = "UPDATE 1"
	f := newFake(newTopo(), scripts)
	_, err := (&Broadcast{Target: Target{Kind: TargetAll}, SQL: "UPDATE ref SET v = 1"}).Stream(testCtx(t), f, nil, (&collector{}).emit)
	e := wantCode(t, err, CodeInternal)
	if !strings.Contains(e.Message, "s0") || !strings.Contains(e.Message, "s2") {
		t.Errorf("message %q does not name s0 and s2", e.Message)
	}
}

// TestBroadcastShardError proves an error on a shard stops the broadcast
// and is returned wrapped with the shard's name.
func TestBroadcastShardError(t *testing.T) {
	boom := &shardError{code: "42P07"}
	scripts := map[string]*script{}
	for _, s := range allShards {
		scripts[s] = &script{Tag: "CREATE TABLE"}
	}
	scripts["s1"] = &script{Stop: stopFail, Err: boom}
	f := newFake(newTopo(), scripts)
	_, err := (&Broadcast{Target: Target{Kind: TargetAll}, SQL: "CREATE TABLE x ()"}).Stream(testCtx(t), f, nil, (&collector{}).emit)
	var se *shardError
	if !errors.As(err, &se) || se != boom {
		t.Fatalf("err = %v, want the shard's error wrapped", err)
	}
	if !strings.Contains(err.Error(), "s1") || !strings.Contains(err.Error(), boom.Error()) {
		t.Errorf("err = %q: want the shard's name and its error", err)
	}
	if got := callShards(f.Calls()); !slices.Equal(got, []string{"s0", "s1"}) {
		t.Errorf("ran on %v after the failure, want [s0 s1]", got)
	}
}

// TestShards proves Shards lists the shards a plan would run on, as its
// Stream resolves them.
func TestShards(t *testing.T) {
	topo := newTopo()
	tbl := testTable(t)
	on3 := strconv.FormatInt(intOn(t, topo, "s3"), 10)
	tests := []struct {
		name string
		plan Primitive
		args Params
		want []string
	}{
		{"route one shard", &Route{Target: keysOn(3), Query: Query{SQL: "q"}}, nil, []string{"s3"}},
		{"route parameter", &Route{Target: Target{Kind: TargetKeys, Keys: []Key{{Param: 1, Table: tbl}}}}, params(on3), []string{"s3"}},
		{"route several shards without Multi", &Route{Target: keysOn(3, 1), Refusal: Unsupported("no")}, nil, []string{"s0", "s3"}},
		{"route several shards runs Multi", &Route{Target: keysOn(3, 1), Multi: &Scatter{Target: Target{Kind: TargetAnchor}}}, nil, []string{"s2"}},
		{"route one shard ignores Multi", &Route{Target: keysOn(3), Multi: &Scatter{Target: Target{Kind: TargetAll}}}, nil, []string{"s3"}},
		{"scatter", &Scatter{Target: keysOn(6, 1, 5)}, nil, []string{"s0", "s1"}},
		{"count over scatter", &CountSum{Input: &Scatter{Target: Target{Kind: TargetAll}}}, nil, allShards},
		{"broadcast", &Broadcast{Target: Target{Kind: TargetAll}}, nil, allShards},
		{"insert split", insertPlan(t, litRow(6, "(1)"), litRow(3, "(2)"), litRow(2, "(3)"), litRow(0, "(4)")), nil, []string{"s1", "s3", "s2"}},
		{"insert split one shard", insertPlan(t, litRow(3, "(1)"), litRow(7, "(2)")), nil, []string{"s3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Shards(tc.plan, topo, tc.args); !slices.Equal(got, tc.want) {
				t.Errorf("Shards = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestFormat proves Format prints a plan as a tree, two spaces a level.
func TestFormat(t *testing.T) {
	scatter := &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT count(*) FROM t"}}
	plan := &Route{
		Target: Target{Kind: TargetKeys, Keys: []Key{{Param: 1}, {Literal: "7"}}},
		Query:  Query{SQL: "SELECT count(*) FROM t WHERE id IN ($1, 7)"},
		Multi:  &CountSum{Input: scatter},
	}
	want := `Route keys($1, 7) sql="SELECT count(*) FROM t WHERE id IN ($1, 7)"
  CountSum
    Scatter all sql="SELECT count(*) FROM t"
`
	if got := Format(plan); got != want {
		t.Errorf("Format =\n%s\nwant\n%s", got, want)
	}
	if got := Format(scatter); got != "Scatter all sql=\"SELECT count(*) FROM t\"\n" {
		t.Errorf("Format(leaf) = %q", got)
	}
}

// TestDescribe proves the one-line descriptions of the other primitives,
// refusals included.
func TestDescribe(t *testing.T) {
	tests := []struct {
		p    Primitive
		want string
	}{
		{&Route{Target: Target{Kind: TargetAny}, Query: Query{SQL: "SELECT 1"}, Refusal: Unsupported("why")}, `Route any sql="SELECT 1" multi-shard: refused (why)`},
		{&Broadcast{Target: Target{Kind: TargetAll}, SQL: "DROP TABLE r"}, `Broadcast all sql="DROP TABLE r"`},
		{&InsertSplit{Table: testTable(t), Query: Query{SQL: "INSERT"}, Rows: []InsertRow{litRow(1, "(1)"), {Key: Key{Param: 2}}}, Refusal: Unsupported("volatile")},
			`InsertSplit t keys(1, $2) sql="INSERT" multi-shard: refused (volatile)`},
	}
	for _, tc := range tests {
		if got := tc.p.Describe(); got != tc.want {
			t.Errorf("Describe = %q, want %q", got, tc.want)
		}
	}
}

// TestTagPlus proves how the tags of two shards combine: counts add up,
// tags without counts must agree, anything else is an XX000 error — in
// either order.
func TestTagPlus(t *testing.T) {
	tests := []struct {
		a, b Tag
		want Tag // "" for an error
	}{
		{"SELECT 2", "SELECT 3", "SELECT 5"},
		{"SELECT 0", "SELECT 0", "SELECT 0"},
		{"INSERT 0 2", "INSERT 0 3", "INSERT 0 5"},
		{"UPDATE 7", "UPDATE 0", "UPDATE 7"},
		{"CREATE TABLE", "CREATE TABLE", "CREATE TABLE"},
		{"SET", "SET", "SET"},
		{"CREATE TABLE", "CREATE INDEX", ""},
		{"BEGIN", "COMMIT", ""},
		{"SELECT 2", "UPDATE 2", ""},
		{"SELECT", "SELECT 2", ""},
		{"INSERT 0 1", "INSERT 1 1", ""},
	}
	for _, tc := range tests {
		for _, pair := range [][2]Tag{{tc.a, tc.b}, {tc.b, tc.a}} {
			got, err := pair[0].plus(pair[1])
			if tc.want == "" {
				if err == nil {
					t.Errorf("%q + %q = %q, want an error", pair[0], pair[1], got)
				} else {
					wantCode(t, err, CodeInternal)
				}
				continue
			}
			if err != nil || got != tc.want {
				t.Errorf("%q + %q = %q, %v; want %q", pair[0], pair[1], got, err, tc.want)
			}
		}
	}
	// The empty tag is where a sum starts.
	if got, err := Tag("").plus("SELECT 4"); err != nil || got != "SELECT 4" {
		t.Errorf(`"" + "SELECT 4" = %q, %v`, got, err)
	}
}

// TestInsertSplitReturningOrder proves INSERT ... RETURNING over several
// shards returns its rows in the order of the VALUES rows, as Postgres
// does, and shard by shard when a shard returned fewer rows than it
// inserted (ON CONFLICT DO NOTHING), which does not say which it skipped.
func TestInsertSplitReturningOrder(t *testing.T) {
	defer goleak.VerifyNone(t)
	plan := insertPlan(t, litRow(3, "(1, 'a')"), litRow(1, "(2, 'b')"), litRow(7, "(3, 'c')"), litRow(5, "(4, 'd')"))
	plan.Returning = true
	rowsOf := func(c *collector) []string {
		var out []string
		for _, b := range c.batches {
			for _, r := range b.Rows {
				out = append(out, string(r[0]))
			}
		}
		return out
	}
	// Logical shards 3 and 7 are on s3, 1 and 5 on s0.
	f := newFake(newTopo(), map[string]*script{
		"s3": {Fields: fields("id"), Rows: [][][]byte{row("1"), row("3")}, Tag: "INSERT 0 2", BatchSize: 1},
		"s0": {Fields: fields("id"), Rows: [][][]byte{row("2"), row("4")}, Tag: "INSERT 0 2", BatchSize: 1},
	})
	var c collector
	tag, err := plan.Stream(testCtx(t), f, nil, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(&c); tag != "INSERT 0 4" || !slices.Equal(got, []string{"1", "2", "3", "4"}) || c.fieldsN != 1 || c.badOrder {
		t.Fatalf("%s, rows %v (%d Fields), want 1 2 3 4 in VALUES order", tag, got, c.fieldsN)
	}

	f = newFake(newTopo(), map[string]*script{
		"s3": {Fields: fields("id"), Rows: [][][]byte{row("3")}, Tag: "INSERT 0 1"},
		"s0": {Fields: fields("id"), Rows: [][][]byte{row("2"), row("4")}, Tag: "INSERT 0 2"},
	})
	c = collector{}
	if _, err := plan.Stream(testCtx(t), f, nil, c.emit); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(&c); !slices.Equal(got, []string{"3", "2", "4"}) {
		t.Fatalf("a shard returning fewer rows: %v, want its rows, then the next shard's", got)
	}
}
