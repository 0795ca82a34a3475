package engine

import (
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// The expected values below are PostgreSQL 15.18's, for
//
//	SELECT variance(x), var_pop(x), stddev(x), stddev_pop(x) FROM ...
//
// as psql prints them, and in binary as numeric_send sends them; each
// shard's partials are its count(x), sum((x)::numeric) and
// sum((x)::numeric * (x)::numeric), as the planner asks for them.

// varianceColumns are the four aggregates over hidden columns count 0,
// sum 1 and sum of squares 2.
var varianceColumns = []AggregateColumn{
	{Func: AggVarSamp, Count: 0, Sum: 1, Squares: 2, Text: "variance(g)"},
	{Func: AggVarPop, Count: 0, Sum: 1, Squares: 2, Text: "var_pop(g)"},
	{Func: AggStddevSamp, Count: 0, Sum: 1, Squares: 2, Text: "stddev(g)"},
	{Func: AggStddevPop, Count: 0, Sum: 1, Squares: 2, Text: "stddev_pop(g)"},
}

// varianceFields are a shard's columns for varianceColumns: the four
// aggregates of its own rows (visible, in format), then count, sum and
// sum of squares (hidden, in hiddenFormat).
func varianceFields(format, hiddenFormat int16) []Field {
	fs := []Field{
		typedField("variance", oidNumeric, format), typedField("var_pop", oidNumeric, format),
		typedField("stddev", oidNumeric, format), typedField("stddev_pop", oidNumeric, format),
	}
	return append(fs, typedField("sg_count", oidInt8, hiddenFormat),
		typedField("sg_sum", oidNumeric, hiddenFormat), typedField("sg_squares", oidNumeric, hiddenFormat))
}

// partialRow is a shard's row of varianceFields in text: its own
// aggregates, which do not combine and which the gateway must not read
// (-1, impossible for a variance), then its partials.
func partialRow(count, sum, squares string) [][]byte {
	return row("-1", "-1", "-1", "-1", count, sum, squares)
}

// unhex decodes hex, for binary values.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAggregateVariance proves variance, var_pop, stddev and stddev_pop
// without GROUP BY combine the shards' counts, sums and sums of squares
// into Postgres's numeric results, digit for digit: a shard without rows
// (count 0, sums NULL) adds nothing, one row leaves the sample aggregates
// NULL and the population ones 0, no rows at all give NULL.
func TestAggregateVariance(t *testing.T) {
	defer goleak.VerifyNone(t)
	empty := [][][]byte{partialRow("0", "NULL", "NULL")}
	tests := []struct {
		name     string
		perShard [][][][]byte
		want     string
	}{
		// generate_series(1, 10): 1..4 on one shard, 5..10 on another.
		{"1..10 over three shards, one empty",
			[][][][]byte{{partialRow("4", "10", "30")}, {partialRow("6", "45", "355")}, empty},
			"9.1666666666666667|8.2500000000000000|3.0276503540974917|2.8722813232690143"},
		{"1..10 with the empty shard first",
			[][][][]byte{empty, {partialRow("6", "45", "355")}, {partialRow("4", "10", "30")}},
			"9.1666666666666667|8.2500000000000000|3.0276503540974917|2.8722813232690143"},
		// (1.5), (2.25), (-0.001): the sums' scales grow from shard to shard.
		{"numerics one per shard",
			[][][][]byte{{partialRow("1", "1.5", "2.25")}, {partialRow("1", "2.25", "5.0625")}, {partialRow("1", "-0.001", "0.000001")}},
			"1.3137503333333333|0.87583355555555555556|1.1461894840441232|0.93585979481734097816"},
		{"one row",
			[][][][]byte{empty, {partialRow("1", "5", "25")}, empty},
			"NULL|0|NULL|0"},
		{"only NULLs",
			[][][][]byte{empty, empty, empty},
			"NULL|NULL|NULL|NULL"},
		{"no shard answered a row",
			[][][][]byte{nil, nil, nil},
			"NULL|NULL|NULL|NULL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := varianceFields(0, 0)
			in, scripts := aggScatter(t, fs, tt.perShard...)
			c, tag, err := runAgg(t, &Aggregate{Input: in, Columns: varianceColumns, Hidden: 3}, scripts)
			if err != nil {
				t.Fatal(err)
			}
			wantVisibleFields(t, c, fs[:4])
			if got := c.values(); !slices.Equal(got, []string{tt.want}) {
				t.Errorf("rows %q, want [%q]", got, tt.want)
			}
			if tag != "SELECT 1" {
				t.Errorf("tag %q, want SELECT 1", tag)
			}
		})
	}
}

// TestAggregateVarianceBinary proves the variances come out in binary when
// the client asks for them so, Postgres's numeric_send bytes, whether the
// hidden partials come in text or (the client asking for every column in
// binary) in binary too.
func TestAggregateVarianceBinary(t *testing.T) {
	defer goleak.VerifyNone(t)
	// generate_series(1, 10) over three shards.
	want1to10 := [][]byte{
		unhex(t, "0005000000000010000906821a0a1a0a1a0b"), // 9.1666666666666667
		unhex(t, "0002000000000010000809c4"),             // 8.2500000000000000
		unhex(t, "00050000000000100003011413ab10011335"), // 3.0276503540974917
		unhex(t, "0005000000000010000222121fc40cc5008f"), // 2.8722813232690143
	}
	binNum := func(s string) []byte { return unhex(t, s) }
	binRow := func(count int64, sum, squares []byte) [][]byte {
		return [][]byte{nil, nil, nil, nil, bin(count), sum, squares}
	}
	tests := []struct {
		name         string
		hiddenFormat int16
		perShard     [][][][]byte
		want         [][]byte
	}{
		{"hidden in text", 0,
			[][][][]byte{{partialRow("4", "10", "30")}, {partialRow("6", "45", "355")}, {partialRow("0", "NULL", "NULL")}},
			want1to10},
		{"hidden in binary", 1,
			[][][][]byte{
				{binRow(4, binNum("0001000000000000000a"), binNum("0001000000000000001e"))},
				{binRow(6, binNum("0001000000000000002d"), binNum("00010000000000000163"))},
				{binRow(0, nil, nil)}},
			want1to10},
		{"one row: NULL and 0", 1,
			[][][][]byte{{binRow(0, nil, nil)}, {binRow(1, binNum("00010000000000000005"), binNum("00010000000000000019"))}},
			[][]byte{nil, unhex(t, "0000000000000000"), nil, unhex(t, "0000000000000000")}},
		{"only NULLs", 1,
			[][][][]byte{{binRow(0, nil, nil)}, {binRow(0, nil, nil)}},
			[][]byte{nil, nil, nil, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := varianceFields(1, tt.hiddenFormat)
			in, scripts := aggScatter(t, fs, tt.perShard...)
			c, _, err := runAgg(t, &Aggregate{Input: in, Columns: varianceColumns, Hidden: 3}, scripts)
			if err != nil {
				t.Fatal(err)
			}
			wantVisibleFields(t, c, fs[:4])
			if c.rowsN != 1 {
				t.Fatalf("client got %d rows, want 1", c.rowsN)
			}
			got := c.batches[1].Rows[0]
			for i, w := range tt.want {
				if !sameValue(got[i], w) {
					t.Errorf("%s = %x, want %x", varianceColumns[i].Text, got[i], w)
				}
			}
		})
	}
}

// TestAggregateVarianceGrouped proves each group's variances combine from
// its own partials, the groups' rows coming sorted from three shards, a
// group present on one shard only included.
func TestAggregateVarianceGrouped(t *testing.T) {
	defer goleak.VerifyNone(t)
	// SELECT g, variance(x), var_pop(x), stddev(x), stddev_pop(x) ...
	// GROUP BY g, over g 1: (1.5), (2.25), (-0.001); g 2: (2), (4), (4),
	// (4), (5), (5), (7), (9); g 3: (3).
	fs := append([]Field{typedField("g", oidInt8, 0)}, varianceFields(0, 0)...)
	keys := []SortKey{{Ordinal: 1, Collation: -1, Text: "g", Clause: "GROUP BY"}}
	part := func(g, count, sum, squares string) [][]byte {
		return append(row(g), partialRow(count, sum, squares)...)
	}
	in, scripts := aggMerge(t, fs, 3, keys,
		[][][]byte{part("1", "1", "1.5", "2.25"), part("2", "3", "15", "101")},
		[][][]byte{part("1", "1", "2.25", "5.0625"), part("2", "2", "8", "32"), part("3", "1", "3", "9")},
		[][][]byte{part("1", "1", "-0.001", "0.000001"), part("2", "3", "17", "99")},
	)
	// The partials are still hidden columns 0, 1 and 2.
	cols := append([]AggregateColumn{{Func: AggFirst, Text: "g"}}, varianceColumns...)
	a := &Aggregate{Input: in, Columns: cols, Groups: []int{0}, GroupText: []string{"g"}, Hidden: 3}
	c, tag, err := runAgg(t, a, scripts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"1|1.3137503333333333|0.87583355555555555556|1.1461894840441232|0.93585979481734097816",
		"2|4.5714285714285714|4.0000000000000000|2.1380899352993951|2.0000000000000000",
		"3|NULL|0|NULL|0",
	}
	if got := c.values(); !slices.Equal(got, want) {
		t.Errorf("rows\n%q, want\n%q", got, want)
	}
	if tag != "SELECT 3" {
		t.Errorf("tag %q, want SELECT 3", tag)
	}
	wantVisibleFields(t, c, fs[:5])
}

// TestAggregateVarianceFloatRefused proves the variances of a double
// precision argument (whose result is double precision, not exact) are
// refused with 0A000 naming the aggregate, before any row reaches the
// client.
func TestAggregateVarianceFloatRefused(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, col := range varianceColumns {
		t.Run(col.Text, func(t *testing.T) {
			fs := []Field{fFloat8, typedField("sg_count", oidInt8, 0), typedField("sg_sum", oidNumeric, 0), typedField("sg_squares", oidNumeric, 0)}
			in, scripts := aggScatter(t, fs, [][][]byte{row("0.5", "2", "3", "5")}, [][][]byte{row("NULL", "1", "1.5", "2.25")})
			c, _, err := runAgg(t, &Aggregate{Input: in, Columns: []AggregateColumn{col}, Hidden: 3}, scripts)
			e := wantCode(t, err, CodeFeatureNotSupported)
			if !strings.Contains(e.Message, col.Text) || !strings.Contains(e.Message, "double precision") {
				t.Errorf("message %q does not name %s and its type", e.Message, col.Text)
			}
			if len(c.batches) != 0 {
				t.Errorf("client got %+v", c.batches)
			}
		})
	}
}
