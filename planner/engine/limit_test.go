package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// lit is a literal LIMIT or OFFSET; par is parameter $n.
func lit(n int64) LimitValue { return LimitValue{Set: true, Value: n} }
func par(n int) LimitValue   { return LimitValue{Set: true, Param: n} }

// rangeRows is "r<from>" ... "r<to-1>".
func rangeRows(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("r%d", i))
	}
	return out
}

// ctxExec wraps the fake to record, as each shard's query returns,
// whether its context had been cancelled.
type ctxExec struct {
	*fakeExec
	mu        sync.Mutex
	cancelled map[string]error
}

func (c *ctxExec) Query(ctx context.Context, shard string, q Query, emit func(*Batch) error) (Tag, error) {
	tag, err := c.fakeExec.Query(ctx, shard, q, emit)
	c.mu.Lock()
	c.cancelled[shard] = ctx.Err()
	c.mu.Unlock()
	return tag, err
}

// TestLimit proves Limit skips offset rows and passes count on, across
// batch boundaries, with literals and parameters (a NULL one meaning no
// limit, or offset 0); the tag counts the rows sent, Fields pass through
// once, and the input is read to its end.
func TestLimit(t *testing.T) {
	defer goleak.VerifyNone(t)
	const n = 10
	tests := []struct {
		name          string
		count, offset LimitValue
		args          Params
		want          []string
	}{
		{"count 3", lit(3), LimitValue{}, nil, rangeRows(0, 3)},
		{"count 3 offset 2", lit(3), lit(2), nil, rangeRows(2, 5)},
		{"count 5 offset 7: cut by the end", lit(5), lit(7), nil, rangeRows(7, 10)},
		{"count 0", lit(0), LimitValue{}, nil, nil},
		{"count 1", lit(1), LimitValue{}, nil, rangeRows(0, 1)},
		{"count equals the rows", lit(n), LimitValue{}, nil, rangeRows(0, n)},
		{"count over the rows", lit(20), LimitValue{}, nil, rangeRows(0, n)},
		{"offset 0", lit(4), lit(0), nil, rangeRows(0, 4)},
		{"offset to the last row", LimitValue{}, lit(9), nil, rangeRows(9, 10)},
		{"offset equals the rows", LimitValue{}, lit(n), nil, nil},
		{"offset over the rows", lit(3), lit(12), nil, nil},
		{"limit all offset 4", LimitValue{}, lit(4), nil, rangeRows(4, 10)},
		{"count and offset parameters", par(2), par(1), params("3", "4"), rangeRows(3, 7)},
		{"parameter with sign", par(1), LimitValue{}, params("+2"), rangeRows(0, 2)},
		{"NULL count parameter: no limit", par(1), par(2), params("NULL", "8"), rangeRows(8, 10)},
		{"NULL offset parameter: offset 0", par(1), par(2), params("2", "NULL"), rangeRows(0, 2)},
		{"missing parameter is NULL", par(3), lit(1), params("1"), rangeRows(1, 10)},
		{"literal count, parameter offset", lit(2), par(1), params("5"), rangeRows(5, 7)},
		{"parameter 0", par(1), LimitValue{}, params("0"), nil},
	}
	for _, bs := range []int{1, 3, 4, 10} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s batch %d", tc.name, bs), func(t *testing.T) {
				sc := &script{Fields: fields("v"), BatchSize: bs, Tag: "SELECT 10"}
				for _, v := range rangeRows(0, n) {
					sc.Rows = append(sc.Rows, row(v))
				}
				f := newFake(newTopo(), map[string]*script{"s3": sc})
				x := &ctxExec{fakeExec: f, cancelled: map[string]error{}}
				l := &Limit{Input: &Route{Target: keysOn(3), Query: Query{SQL: "SELECT v FROM t"}}, Count: tc.count, Offset: tc.offset}
				var c collector
				tag, err := l.Stream(testCtx(t), x, tc.args, c.emit)
				if err != nil {
					t.Fatal(err)
				}
				if got := c.values(); !slices.Equal(got, tc.want) {
					t.Errorf("rows = %q, want %q", got, tc.want)
				}
				if want := Tag(fmt.Sprintf("SELECT %d", len(tc.want))); tag != want {
					t.Errorf("tag = %q, want %q", tag, want)
				}
				if c.fieldsN != 1 || c.badOrder || !slices.Equal(c.batches[0].Fields, fields("v")) {
					t.Errorf("Fields: %d batches, first %+v", c.fieldsN, c.batches[0])
				}
				for _, b := range c.batches[1:] {
					if b.Fields != nil {
						t.Errorf("Fields batch after the first: %+v", b)
					}
				}
				done, qerr := f.Returned("s3")
				if !done || qerr != nil {
					t.Errorf("input query returned %v, %v; want read to its end", done, qerr)
				}
				f.mu.Lock()
				handed := f.handed["s3"]
				f.mu.Unlock()
				if want := (n + bs - 1) / bs; handed != want {
					t.Errorf("input handed %d row batches, want all %d", handed, want)
				}
				if err := x.cancelled["s3"]; err != nil {
					t.Errorf("input's context ended before it did: %v", err)
				}
			})
		}
	}
}

// TestLimitRefusals proves a negative count (2201W) or offset (2201X), or
// a parameter that is no integer (22P02), fails the statement before its
// input runs.
func TestLimitRefusals(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name          string
		count, offset LimitValue
		args          Params
		code          string
	}{
		{"negative count", lit(-1), LimitValue{}, nil, "2201W"},
		{"negative count parameter", par(1), lit(0), params("-5"), "2201W"},
		{"negative offset", lit(3), lit(-1), nil, "2201X"},
		{"negative offset parameter", LimitValue{}, par(1), params("-1"), "2201X"},
		{"negative offset, NULL count", par(1), lit(-2), params("NULL"), "2201X"},
		{"negative count, NULL offset", par(1), par(2), params("-2", "NULL"), "2201W"},
		// Postgres evaluates OFFSET first (recompute_limits in nodeLimit.c).
		{"negative count and offset: OFFSET is checked first", lit(-1), lit(-1), nil, "2201X"},
		{"count parameter not an integer", par(1), LimitValue{}, params("abc"), "22P02"},
		{"count parameter a decimal", par(1), LimitValue{}, params("1.5"), "22P02"},
		{"count parameter empty", par(1), LimitValue{}, params(""), "22P02"},
		{"offset parameter not an integer", lit(1), par(1), params("x1"), "22P02"},
		{"count parameter not an integer, offset negative", par(1), lit(-1), params("abc"), "22P02"},
		{"parameter without parameters", par(1), LimitValue{}, nil, CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(newTopo(), nil)
			f.fallback = &script{Fields: fields("v"), Rows: shardRowsOf("x", 3), Tag: "SELECT 3"}
			l := &Limit{Input: &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}, Count: tc.count, Offset: tc.offset}
			var c collector
			_, err := l.Stream(testCtx(t), f, tc.args, c.emit)
			wantCode(t, err, tc.code)
			if calls := f.Calls(); len(calls) != 0 {
				t.Errorf("input ran: %+v", calls)
			}
			if len(c.batches) != 0 {
				t.Errorf("client got %+v", c.batches)
			}
		})
	}
}

// TestLimitParameterSpaces proves a parameter Postgres reads as a bigint
// (int8in allows spaces around the digits) is read so by Limit too.
func TestLimitParameterSpaces(t *testing.T) {
	f := newFake(newTopo(), map[string]*script{
		"s3": {Fields: fields("v"), Rows: shardRowsOf("s3", 5), Tag: "SELECT 5"},
	})
	l := &Limit{Input: &Route{Target: keysOn(3), Query: Query{SQL: "q"}}, Count: par(1), Offset: par(2)}
	var c collector
	tag, err := l.Stream(testCtx(t), f, params(" 2 ", "\t1\n"), c.emit)
	if err != nil {
		t.Fatalf("LIMIT ' 2 ' OFFSET '\\t1\\n': %v", err)
	}
	if got, want := c.values(), []string{"s3-r1", "s3-r2"}; !slices.Equal(got, want) || tag != "SELECT 2" {
		t.Errorf("rows %q tag %q, want %q SELECT 2", got, tag, want)
	}
}

// TestLimitReadsToEnd proves Limit reads every shard's rows to the end,
// without cancelling any, once it has all the rows it needs.
func TestLimitReadsToEnd(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, count := range []int64{0, 1, 5} {
		t.Run(fmt.Sprintf("count %d", count), func(t *testing.T) {
			scripts := map[string]*script{}
			for _, s := range allShards {
				scripts[s] = &script{Fields: fields("v"), Rows: shardRowsOf(s, 5), BatchSize: 2, Tag: "SELECT 5"}
			}
			f := newFake(newTopo(), scripts)
			x := &ctxExec{fakeExec: f, cancelled: map[string]error{}}
			l := &Limit{Input: &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}, Count: lit(count)}
			var c collector
			tag, err := l.Stream(testCtx(t), x, nil, c.emit)
			if err != nil {
				t.Fatal(err)
			}
			if want := Tag(fmt.Sprintf("SELECT %d", count)); tag != want || int64(c.rowsN) != count {
				t.Errorf("tag %q, %d rows; want %q", tag, c.rowsN, want)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, s := range allShards {
				if !f.done[s] || f.returned[s] != nil || f.handed[s] != 3 {
					t.Errorf("shard %s: done %v, returned %v, handed %d row batches; want all 3 read", s, f.done[s], f.returned[s], f.handed[s])
				}
				if err := x.cancelled[s]; err != nil {
					t.Errorf("shard %s's query was cancelled: %v", s, err)
				}
			}
		})
	}
}

// TestLimitOverMergeSort proves Limit over MergeSort answers the rows of
// the merged order after offset, and still reads every shard to its end.
func TestLimitOverMergeSort(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range []struct {
		count, offset LimitValue
		args          Params
		from, to      int
	}{
		{lit(4), lit(3), nil, 3, 7},
		{par(1), LimitValue{}, params("5"), 0, 5},
		{lit(3), par(1), params("10"), 10, 12},
		{LimitValue{}, lit(9), nil, 9, 12},
	} {
		t.Run(fmt.Sprintf("count %s offset %s", tc.count, tc.offset), func(t *testing.T) {
			shards := []string{"s0", "s1", "s3"}
			f := newFake(newTopo(), interleaved(shards, 4, func(i int) int { return i + 1 }))
			x := &ctxExec{fakeExec: f, cancelled: map[string]error{}}
			ms := &MergeSort{Target: keysOn(1, 2, 3), Query: Query{SQL: "q", Hidden: 1}, Keys: hiddenKey}
			var c collector
			tag, err := (&Limit{Input: ms, Count: tc.count, Offset: tc.offset}).Stream(testCtx(t), x, tc.args, c.emit)
			if err != nil {
				t.Fatal(err)
			}
			want := interleavedWant(shards, 4)[tc.from:tc.to]
			if got := c.values(); !slices.Equal(got, want) {
				t.Errorf("rows = %q, want %q", got, want)
			}
			if wantTag := Tag(fmt.Sprintf("SELECT %d", len(want))); tag != wantTag {
				t.Errorf("tag = %q, want %q", tag, wantTag)
			}
			wantVisibleFields(t, &c, []Field{typedField("label", oidText, 0), typedField("k", oidInt8, 0)})
			for _, s := range shards {
				if done, err := f.Returned(s); !done || err != nil {
					t.Errorf("shard %s: returned %v, %v; want read to its end", s, done, err)
				}
				x.mu.Lock()
				if err := x.cancelled[s]; err != nil {
					t.Errorf("shard %s's query was cancelled: %v", s, err)
				}
				x.mu.Unlock()
			}
		})
	}
}

// TestLimitErrors proves an error from the input or from the client's emit
// is Limit's error.
func TestLimitErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	boom := &shardError{code: "57014"}
	f := newFake(newTopo(), map[string]*script{
		"s3": {Fields: fields("v"), Rows: shardRowsOf("s3", 4), Stop: stopFail, StopAfter: 3, Err: boom},
	})
	l := &Limit{Input: &Route{Target: keysOn(3), Query: Query{SQL: "q"}}, Count: lit(1)}
	if _, err := l.Stream(testCtx(t), f, nil, (&collector{}).emit); !errors.Is(err, boom) {
		t.Errorf("input failing: err = %v, want the shard's", err)
	}

	errEmit := errors.New("client went away")
	f = newFake(newTopo(), map[string]*script{
		"s3": {Fields: fields("v"), Rows: shardRowsOf("s3", 4), Tag: "SELECT 4"},
	})
	c := collector{onRows: func(*Batch) error { return errEmit }}
	if _, err := l.Stream(testCtx(t), f, nil, c.emit); err != errEmit {
		t.Errorf("emit failing: err = %v, want emit's", err)
	}
	if c.rowsN != 1 {
		t.Errorf("client got %d rows", c.rowsN)
	}
}

// TestLimitWithTies proves FETCH FIRST ... WITH TIES passes on the rows
// after the count-th that equal it in every key — hidden keys included,
// NULL equal to NULL, numerics by value — and no row after the first that
// differs, across batch boundaries; the hidden columns stay behind.
func TestLimitWithTies(t *testing.T) {
	defer goleak.VerifyNone(t)
	// Columns: v (output), then hidden k1 (int8) and k2 (numeric); the
	// rows come sorted by k1, k2.
	fs := []Field{typedField("v", oidText, 0), typedField("sg_key1", oidInt8, 0), typedField("sg_key2", oidNumeric, 0)}
	rows := [][][]byte{
		row("a", "1", "1.5"), row("b", "1", "1.50"), row("c", "2", "NULL"), row("d", "2", "NULL"),
		row("e", "2", "NULL"), row("f", "3", "0"), row("g", "3", "0"), row("h", "4", "0"),
	}
	keys := []SortKey{{Hidden: 0, Collation: -1, Text: "k1"}, {Hidden: 1, Collation: -1, Text: "k2"}}
	tests := []struct {
		name          string
		count, offset LimitValue
		keys          []SortKey
		want          []string
	}{
		{"tie by numeric value", lit(1), LimitValue{}, keys, []string{"a", "b"}},
		{"ties of NULLs", lit(3), LimitValue{}, keys, []string{"a", "b", "c", "d", "e"}},
		{"no tie after the count-th", lit(5), LimitValue{}, keys, []string{"a", "b", "c", "d", "e"}},
		{"offset first", lit(1), lit(2), keys, []string{"c", "d", "e"}},
		{"first key only", lit(3), LimitValue{}, keys[:1], []string{"a", "b", "c", "d", "e"}},
		{"count 0: no rows", lit(0), LimitValue{}, keys, nil},
		{"count past the end", lit(10), LimitValue{}, keys, []string{"a", "b", "c", "d", "e", "f", "g", "h"}},
		{"last group", lit(6), LimitValue{}, keys, []string{"a", "b", "c", "d", "e", "f", "g"}},
	}
	for _, bs := range []int{1, 3} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s batch %d", tc.name, bs), func(t *testing.T) {
				in := &sortInput{fields: fs, tag: "SELECT 8"}
				for i := 0; i < len(rows); i += bs {
					in.batches = append(in.batches, rows[i:min(i+bs, len(rows))])
				}
				l := &Limit{Input: in, Count: tc.count, Offset: tc.offset, Ties: tc.keys, Hidden: 2}
				var c collector
				tag, err := l.Stream(testCtx(t), newFake(newTopo(), nil), nil, c.emit)
				if err != nil {
					t.Fatal(err)
				}
				if got := c.values(); !slices.Equal(got, tc.want) {
					t.Errorf("rows = %q, want %q", got, tc.want)
				}
				if want := Tag(fmt.Sprintf("SELECT %d", len(tc.want))); tag != want {
					t.Errorf("tag = %q, want %q", tag, want)
				}
				if !slices.Equal(c.batches[0].Fields, fs[:1]) {
					t.Errorf("Fields %+v, want the output column only", c.batches[0].Fields)
				}
			})
		}
	}
}

// TestLimitComputed proves LIMIT and OFFSET expressions are computed once,
// by one shard, before the input runs, NULL meaning none; the shard's
// error (a negative LIMIT: 2201W) is the statement's.
func TestLimitComputed(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := fields("v")
	var rows [][][]byte
	for _, v := range rangeRows(0, 10) {
		rows = append(rows, row(v))
	}
	tests := []struct {
		name          string
		count, offset LimitValue
		answer        [][]byte
		err           error
		want          []string
		sql           string
	}{
		{"count", LimitValue{Set: true, Expr: "2 + 1"}, LimitValue{}, row("3", "NULL"), nil, rangeRows(0, 3),
			"SELECT ((2 + 1))::pg_catalog.int8, (NULL)::pg_catalog.int8 FROM (SELECT pg_catalog.count(*) FROM (SELECT 1 LIMIT (2 + 1) OFFSET NULL) sg_s) sg_v"},
		{"count and offset", LimitValue{Set: true, Expr: "'2'"}, lit(4), row("2", "4"), nil, rangeRows(4, 6),
			"SELECT (('2'))::pg_catalog.int8, (4)::pg_catalog.int8 FROM (SELECT pg_catalog.count(*) FROM (SELECT 1 LIMIT ('2') OFFSET 4) sg_s) sg_v"},
		{"NULL count: no limit", LimitValue{Set: true, Expr: "NULLIF(1, 1)"}, par(1), row("NULL", "8"), nil, rangeRows(8, 10),
			"SELECT ((NULLIF(1, 1)))::pg_catalog.int8, ($1)::pg_catalog.int8 FROM (SELECT pg_catalog.count(*) FROM (SELECT 1 LIMIT (NULLIF(1, 1)) OFFSET $1) sg_s) sg_v"},
		{"the shard's error", LimitValue{Set: true, Expr: "-1 * 2"}, LimitValue{}, nil, &Error{Code: "2201W", Message: "LIMIT must not be negative"}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := &script{Fields: []Field{typedField("int8", oidInt8, 0), typedField("int8", oidInt8, 0)}, Tag: "SELECT 1"}
			if tc.err != nil {
				sc.Stop, sc.Err = stopFail, tc.err
			} else {
				sc.Rows = [][][]byte{tc.answer}
			}
			f := newFake(newTopo(), map[string]*script{"s0": sc})
			in := &sortInput{fields: fs, batches: [][][][]byte{rows}, tag: "SELECT 10"}
			l := &Limit{Input: in, Count: tc.count, Offset: tc.offset}
			var c collector
			_, err := l.Stream(testCtx(t), f, params("8"), c.emit)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || in.emitted != 0 {
					t.Fatalf("err %v after %d input rows, want %v before any", err, in.emitted, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.values(); !slices.Equal(got, tc.want) {
				t.Errorf("rows = %q, want %q", got, tc.want)
			}
			calls := f.Calls()
			if len(calls) != 1 || calls[0].SQL != tc.sql || !calls[0].AnyShard {
				t.Errorf("calls %+v, want one on any shard: %s", calls, tc.sql)
			}
		})
	}
}
