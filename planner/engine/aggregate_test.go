package engine

import (
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// aggScatter is a Scatter over n shards (1 to 4) whose scripts answer
// with fs and, shard by shard, perShard's rows (nil: no rows).
func aggScatter(t *testing.T, fs []Field, perShard ...[][][]byte) (*Scatter, map[string]*script) {
	t.Helper()
	target, shards := mergeTarget(t, len(perShard))
	scripts := map[string]*script{}
	for i, s := range shards {
		scripts[s] = &script{Fields: fs, Rows: perShard[i], Tag: "SELECT 1"}
	}
	return &Scatter{Target: target, Query: Query{SQL: "SELECT partials FROM t"}}, scripts
}

// aggMerge is a MergeSort with KeepHidden over len(perShard) shards,
// ordered by keys, with hidden columns.
func aggMerge(t *testing.T, fs []Field, hidden int, keys []SortKey, perShard ...[][][]byte) (*MergeSort, map[string]*script) {
	t.Helper()
	target, shards := mergeTarget(t, len(perShard))
	scripts := map[string]*script{}
	for i, s := range shards {
		scripts[s] = &script{Fields: fs, Rows: perShard[i], Tag: Tag("SELECT " + string(rune('0'+len(perShard[i])))), BatchSize: 2}
	}
	return &MergeSort{Target: target, Query: Query{SQL: "SELECT partials FROM t GROUP BY g ORDER BY g", Hidden: hidden}, Keys: keys, KeepHidden: true}, scripts
}

// runAgg runs a over a fake with scripts and returns what the client got.
func runAgg(t *testing.T, a *Aggregate, scripts map[string]*script) (*collector, Tag, error) {
	t.Helper()
	x := newFake(newTopo(), scripts)
	c := &collector{}
	tag, err := a.Stream(testCtx(t), x, nil, c.emit)
	if c.badOrder {
		t.Errorf("rows before Fields")
	}
	return c, tag, err
}

var (
	fInt8   = typedField("i", oidInt8, 0)
	fInt8B  = typedField("ib", oidInt8, 1)
	fNum    = typedField("n", oidNumeric, 0)
	fText   = typedField("t", oidText, 0)
	fBool   = typedField("b", oidBool, 0)
	fFloat8 = typedField("f", oidFloat8, 0)
)

// TestAggregateGlobal proves the aggregates without GROUP BY combine one
// partial row per shard into one row, as Postgres would compute them.
func TestAggregateGlobal(t *testing.T) {
	defer goleak.VerifyNone(t)
	count := AggregateColumn{Func: AggCount, Text: "count(*)"}
	sum := AggregateColumn{Func: AggSum, Text: "sum(x)"}
	tests := []struct {
		name   string
		fs     []Field
		hidden int
		cols   []AggregateColumn
		rows   [][][]byte // one row per shard
		want   string
	}{
		{"count text", []Field{fInt8}, 0, []AggregateColumn{count},
			[][][]byte{row("3"), row("4"), row("0")}, "7"},
		{"count binary", []Field{fInt8B}, 0, []AggregateColumn{count},
			[][][]byte{{bin(3)}, {bin(400)}}, string(bin(403))},
		{"sum int8", []Field{fInt8}, 0, []AggregateColumn{sum},
			[][][]byte{row("-5"), row("12"), row("NULL")}, "7"},
		{"sum int8 binary", []Field{fInt8B}, 0, []AggregateColumn{sum},
			[][][]byte{{bin(-5)}, {bin(12)}}, string(bin(7))},
		{"sum numeric", []Field{fNum}, 0, []AggregateColumn{sum},
			[][][]byte{row("12.50"), row("1.5")}, "14.00"},
		{"sum numeric with NULL", []Field{fNum}, 0, []AggregateColumn{sum},
			[][][]byte{row("NULL"), row("-0.25"), row("1")}, "0.75"},
		{"sum all NULL", []Field{fInt8}, 0, []AggregateColumn{sum},
			[][][]byte{row("NULL"), row("NULL")}, "NULL"},
		{"min max int8", []Field{fInt8, fInt8}, 0,
			[]AggregateColumn{{Func: AggMin, Text: "min(x)"}, {Func: AggMax, Text: "max(x)"}},
			[][][]byte{row("5", "5"), row("-3", "-3"), row("10", "10")}, "-3|10"},
		{"min max int8 NULLs ignored", []Field{fInt8, fInt8}, 0,
			[]AggregateColumn{{Func: AggMin, Text: "min(x)"}, {Func: AggMax, Text: "max(x)"}},
			[][][]byte{row("NULL", "NULL"), row("9", "9"), row("NULL", "NULL")}, "9|9"},
		{"min max all NULL", []Field{fInt8, fInt8}, 0,
			[]AggregateColumn{{Func: AggMin, Text: "min(x)"}, {Func: AggMax, Text: "max(x)"}},
			[][][]byte{row("NULL", "NULL"), row("NULL", "NULL")}, "NULL|NULL"},
		{"min max text under C", []Field{fText, fText, fText}, 1,
			[]AggregateColumn{{Func: AggMin, Collation: 0, Text: "min(s)"}, {Func: AggMax, Collation: 0, Text: "max(s)"}},
			[][][]byte{row("b", "b", "C"), row("B", "B", "C"), row("ab", "ab", "C")}, "B|b"},
		{"bool_and bool_or", []Field{fBool, fBool}, 0,
			[]AggregateColumn{{Func: AggBoolAnd, Text: "bool_and(b)"}, {Func: AggBoolOr, Text: "bool_or(b)"}},
			[][][]byte{row("t", "f"), row("f", "t"), row("t", "f")}, "f|t"},
		{"bool_and bool_or NULL ignored", []Field{fBool, fBool}, 0,
			[]AggregateColumn{{Func: AggBoolAnd, Text: "bool_and(b)"}, {Func: AggBoolOr, Text: "bool_or(b)"}},
			[][][]byte{row("t", "f"), row("NULL", "NULL")}, "t|f"},
		{"avg from hidden sum and count", []Field{fNum, fInt8, fInt8}, 2,
			[]AggregateColumn{{Func: AggAvg, Sum: 0, Count: 1, Text: "avg(x)"}},
			[][][]byte{row("NULL", "3", "2"), row("NULL", "4", "2")}, "1.7500000000000000"},
		{"avg with a NULL shard sum", []Field{fNum, fNum, fInt8}, 2,
			[]AggregateColumn{{Func: AggAvg, Sum: 0, Count: 1, Text: "avg(x)"}},
			[][][]byte{row("NULL", "NULL", "0"), row("NULL", "3.0", "2"), row("NULL", "NULL", "0")}, "1.5000000000000000"},
		{"empty input rows", []Field{fInt8, fInt8, fInt8, fNum, fNum, fInt8}, 2,
			[]AggregateColumn{count, sum, {Func: AggMin, Text: "min(x)"}, {Func: AggAvg, Sum: 0, Count: 1, Text: "avg(x)"}},
			[][][]byte{row("0", "NULL", "NULL", "NULL", "NULL", "0"), row("0", "NULL", "NULL", "NULL", "NULL", "0")},
			"0|NULL|NULL|NULL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			perShard := make([][][][]byte, len(tt.rows))
			for i, r := range tt.rows {
				perShard[i] = [][][]byte{r}
			}
			in, scripts := aggScatter(t, tt.fs, perShard...)
			a := &Aggregate{Input: in, Columns: tt.cols, Hidden: tt.hidden}
			c, tag, err := runAgg(t, a, scripts)
			if err != nil {
				t.Fatal(err)
			}
			if tag != "SELECT 1" {
				t.Errorf("tag %q, want SELECT 1", tag)
			}
			wantVisibleFields(t, c, tt.fs[:len(tt.fs)-tt.hidden])
			if got := c.values(); !slices.Equal(got, []string{tt.want}) {
				t.Errorf("rows %q, want [%q]", got, tt.want)
			}
		})
	}
}

// TestAggregateGlobalNoRows proves an aggregate without GROUP BY answers
// one row even when no shard sent a row: count 0, the others NULL.
func TestAggregateGlobalNoRows(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{fInt8, fNum, fInt8}
	in, scripts := aggScatter(t, fs, nil, nil)
	a := &Aggregate{Input: in, Columns: []AggregateColumn{
		{Func: AggCount, Text: "count(*)"}, {Func: AggSum, Text: "sum(x)"}, {Func: AggMax, Text: "max(x)"}}}
	c, tag, err := runAgg(t, a, scripts)
	if err != nil {
		t.Fatal(err)
	}
	if tag != "SELECT 1" {
		t.Errorf("tag %q, want SELECT 1", tag)
	}
	if got, want := c.values(), []string{"0|NULL|NULL"}; !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
}

// TestAggregateSumOverflow proves a bigint sum past its range fails with
// 22003, as Postgres's int8 sum does, in either order.
func TestAggregateSumOverflow(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, vals := range [][2]string{{"9223372036854775807", "1"}, {"-9223372036854775808", "-1"}, {"1", "9223372036854775807"}} {
		in, scripts := aggScatter(t, []Field{fInt8}, [][][]byte{row(vals[0])}, [][][]byte{row(vals[1])})
		a := &Aggregate{Input: in, Columns: []AggregateColumn{{Func: AggSum, Text: "sum(x)"}}}
		c, _, err := runAgg(t, a, scripts)
		wantCode(t, err, "22003")
		if c.rowsN != 0 {
			t.Errorf("%v: client got %d rows before the error", vals, c.rowsN)
		}
	}
}

// TestAggregateRefusals proves sums of floats and min of text under a
// collation that is not byte order are refused with 0A000.
func TestAggregateRefusals(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("sum float8", func(t *testing.T) {
		in, scripts := aggScatter(t, []Field{fFloat8}, [][][]byte{row("1.5")}, [][][]byte{row("2.5")})
		a := &Aggregate{Input: in, Columns: []AggregateColumn{{Func: AggSum, Text: "sum(f)"}}}
		c, _, err := runAgg(t, a, scripts)
		wantCode(t, err, CodeFeatureNotSupported)
		if c.rowsN != 0 {
			t.Errorf("client got %d rows", c.rowsN)
		}
	})
	t.Run("avg float8", func(t *testing.T) {
		in, scripts := aggScatter(t, []Field{fFloat8, fFloat8, fInt8}, [][][]byte{row("NULL", "1.5", "1")}, [][][]byte{row("NULL", "2.5", "1")})
		a := &Aggregate{Input: in, Columns: []AggregateColumn{{Func: AggAvg, Sum: 0, Count: 1, Text: "avg(f)"}}, Hidden: 2}
		_, _, err := runAgg(t, a, scripts)
		wantCode(t, err, CodeFeatureNotSupported)
	})
	t.Run("min text en_US", func(t *testing.T) {
		in, scripts := aggScatter(t, []Field{fText, fText},
			[][][]byte{row("b", "en_US.UTF-8")}, [][][]byte{row("a", "en_US.UTF-8")})
		a := &Aggregate{Input: in, Columns: []AggregateColumn{{Func: AggMin, Collation: 0, Text: "min(s)"}}, Hidden: 1}
		c, _, err := runAgg(t, a, scripts)
		e := wantCode(t, err, CodeFeatureNotSupported)
		if !strings.Contains(e.Message, "en_US.UTF-8") {
			t.Errorf("message %q does not name the collation", e.Message)
		}
		if c.rowsN != 0 {
			t.Errorf("client got %d rows", c.rowsN)
		}
	})
	t.Run("min text unknown collation", func(t *testing.T) {
		in, scripts := aggScatter(t, []Field{fText}, [][][]byte{row("b")}, [][][]byte{row("a")})
		a := &Aggregate{Input: in, Columns: []AggregateColumn{{Func: AggMin, Collation: -1, Text: "min(s)"}}}
		_, _, err := runAgg(t, a, scripts)
		wantCode(t, err, CodeFeatureNotSupported)
	})
}

// TestAggregateGrouped proves rows of a group, sorted by the group key
// across shards, combine into one row per group; the group keys may be
// hidden columns; Fields reach the client once, without hidden columns.
func TestAggregateGrouped(t *testing.T) {
	defer goleak.VerifyNone(t)
	// SELECT a, count(*), sum(x) ... GROUP BY a, b: b is hidden column 0.
	fs := []Field{typedField("a", oidInt8, 0), typedField("count", oidInt8, 0), typedField("sum", oidNumeric, 0), typedField("b", oidInt8, 0)}
	keys := []SortKey{{Ordinal: 1, Collation: -1, Text: "a", Clause: "GROUP BY"}, {Hidden: 0, Collation: -1, Text: "b", Clause: "GROUP BY"}}
	in, scripts := aggMerge(t, fs, 1, keys,
		[][][]byte{row("2", "1", "1.5", "1"), row("2", "2", "NULL", "7"), row("10", "3", "3", "1"), row("NULL", "1", "1", "NULL")},
		[][][]byte{row("2", "4", "2.25", "1"), row("10", "1", "NULL", "1"), row("10", "5", "5", "2"), row("NULL", "2", "2", "NULL")},
		[][][]byte{row("1", "1", "0", "1"), row("2", "3", "NULL", "7"), row("NULL", "1", "NULL", "NULL")},
	)
	a := &Aggregate{
		Input:     in,
		Columns:   []AggregateColumn{{Func: AggFirst, Text: "a"}, {Func: AggCount, Text: "count(*)"}, {Func: AggSum, Text: "sum(x)"}},
		Groups:    []int{0, 3},
		GroupText: []string{"a", "b"},
		Hidden:    1,
	}
	c, tag, err := runAgg(t, a, scripts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1|1|0", "2|5|3.75", "2|5|NULL", "10|4|3", "10|5|5", "NULL|4|3"}
	if got := c.values(); !slices.Equal(got, want) {
		t.Errorf("rows\n%q, want\n%q", got, want)
	}
	if tag != "SELECT 6" {
		t.Errorf("tag %q, want SELECT 6", tag)
	}
	wantVisibleFields(t, c, fs[:3])
}

// TestAggregateGroupedNoRows proves GROUP BY over no rows answers no rows.
func TestAggregateGroupedNoRows(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("a", oidInt8, 0), typedField("count", oidInt8, 0)}
	in, scripts := aggMerge(t, fs, 0, []SortKey{{Ordinal: 1, Collation: -1, Text: "a"}}, nil, nil)
	a := &Aggregate{Input: in, Columns: []AggregateColumn{{Func: AggFirst, Text: "a"}, {Func: AggCount, Text: "count(*)"}},
		Groups: []int{0}, GroupText: []string{"a"}}
	c, tag, err := runAgg(t, a, scripts)
	if err != nil {
		t.Fatal(err)
	}
	if c.rowsN != 0 || tag != "SELECT 0" {
		t.Errorf("rows %q tag %q, want none and SELECT 0", c.values(), tag)
	}
	wantVisibleFields(t, c, fs)
}

// TestAggregateHaving proves HAVING conditions on combined values drop
// the groups that do not meet them: same types, mixed numeric types, and
// NULL (not true).
func TestAggregateHaving(t *testing.T) {
	defer goleak.VerifyNone(t)
	keys := []SortKey{{Ordinal: 1, Collation: -1, Text: "g", Clause: "GROUP BY"}}
	// SELECT g, count(*) ... HAVING <value> <op> <const>: hidden are the
	// value's partial and the constant.
	run := func(t *testing.T, constField, partialField Field, value AggregateColumn, op string, perShard ...[][][]byte) (*collector, Tag) {
		t.Helper()
		fs := []Field{typedField("g", oidInt8, 0), typedField("count", oidInt8, 0), partialField, constField}
		in, scripts := aggMerge(t, fs, 2, keys, perShard...)
		a := &Aggregate{
			Input:     in,
			Columns:   []AggregateColumn{{Func: AggFirst, Text: "g"}, {Func: AggCount, Text: "count(*)"}},
			Having:    []Having{{Value: value, Partial: 0, Op: op, Const: 1, Text: value.Text + " " + op + " const"}},
			Groups:    []int{0},
			GroupText: []string{"g"},
			Hidden:    2,
		}
		c, tag, err := runAgg(t, a, scripts)
		if err != nil {
			t.Fatal(err)
		}
		wantVisibleFields(t, c, fs[:2])
		return c, tag
	}
	count := AggregateColumn{Func: AggCount, Text: "count(*)"}
	t.Run("count > int8", func(t *testing.T) {
		c, tag := run(t, fInt8, fInt8, count, ">",
			[][][]byte{row("1", "1", "1", "2"), row("2", "2", "2", "2"), row("3", "1", "1", "2")},
			[][][]byte{row("1", "1", "1", "2"), row("2", "1", "1", "2"), row("3", "5", "5", "2")})
		if got, want := c.values(), []string{"2|3", "3|6"}; !slices.Equal(got, want) {
			t.Errorf("rows %q, want %q", got, want)
		}
		if tag != "SELECT 2" {
			t.Errorf("tag %q, want SELECT 2", tag)
		}
	})
	t.Run("count > numeric 2.5", func(t *testing.T) {
		c, tag := run(t, fNum, fInt8, count, ">",
			[][][]byte{row("1", "1", "1", "2.5"), row("2", "2", "2", "2.5"), row("3", "10", "10", "2.5")},
			[][][]byte{row("1", "1", "1", "2.5"), row("2", "1", "1", "2.5")})
		if got, want := c.values(), []string{"2|3", "3|10"}; !slices.Equal(got, want) {
			t.Errorf("rows %q, want %q", got, want)
		}
		if tag != "SELECT 2" {
			t.Errorf("tag %q, want SELECT 2", tag)
		}
	})
	t.Run("count <= numeric 2.5", func(t *testing.T) {
		c, _ := run(t, fNum, fInt8, count, "<=",
			[][][]byte{row("1", "1", "1", "2.5"), row("2", "2", "2", "2.5"), row("3", "10", "10", "2.5")},
			[][][]byte{row("1", "1", "1", "2.5"), row("2", "1", "1", "2.5")})
		if got, want := c.values(), []string{"1|2"}; !slices.Equal(got, want) {
			t.Errorf("rows %q, want %q", got, want)
		}
	})
	t.Run("NULL sum drops the group", func(t *testing.T) {
		sum := AggregateColumn{Func: AggSum, Text: "sum(x)"}
		c, tag := run(t, fInt8, fInt8, sum, "<",
			[][][]byte{row("1", "1", "NULL", "100"), row("2", "1", "3", "100")},
			[][][]byte{row("1", "2", "NULL", "100"), row("2", "1", "NULL", "100")})
		if got, want := c.values(), []string{"2|2"}; !slices.Equal(got, want) {
			t.Errorf("rows %q, want %q", got, want)
		}
		if tag != "SELECT 1" {
			t.Errorf("tag %q, want SELECT 1", tag)
		}
	})
	t.Run("NULL constant drops the group", func(t *testing.T) {
		c, _ := run(t, fInt8, fInt8, count, ">",
			[][][]byte{row("1", "5", "5", "NULL"), row("2", "5", "5", "1")})
		if got, want := c.values(), []string{"2|5"}; !slices.Equal(got, want) {
			t.Errorf("rows %q, want %q", got, want)
		}
	})
}

// TestAggregateExtra proves an Extra column passes a hidden column's value
// on after the output columns, with its field.
func TestAggregateExtra(t *testing.T) {
	defer goleak.VerifyNone(t)
	// SELECT g, count(*) ... GROUP BY g; hidden: g's collation... and k.
	fs := []Field{typedField("g", oidInt8, 0), typedField("count", oidInt8, 0), typedField("z", oidInt8, 0), typedField("k", oidText, 0)}
	keys := []SortKey{{Ordinal: 1, Collation: -1, Text: "g", Clause: "GROUP BY"}}
	in, scripts := aggMerge(t, fs, 2, keys,
		[][][]byte{row("1", "2", "0", "C"), row("2", "1", "0", "C")},
		[][][]byte{row("1", "3", "0", "C"), row("3", "4", "0", "POSIX")})
	a := &Aggregate{
		Input:     in,
		Columns:   []AggregateColumn{{Func: AggFirst, Text: "g"}, {Func: AggCount, Text: "count(*)"}},
		Extra:     []AggregateColumn{{Func: AggFirst, From: 1, Text: "k"}},
		Groups:    []int{0},
		GroupText: []string{"g"},
		Hidden:    2,
	}
	c, tag, err := runAgg(t, a, scripts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.values(), []string{"1|5|C", "2|1|C", "3|4|POSIX"}; !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
	if tag != "SELECT 3" {
		t.Errorf("tag %q, want SELECT 3", tag)
	}
	wantVisibleFields(t, c, []Field{fs[0], fs[1], fs[3]})
}
