package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// Left runs on s0 and Right on s1 in every SetOp test.
const setOpLeft, setOpRight = "s0", "s1"

// setOp is a SetOp whose Left is a Route to s0 and whose Right is one to
// s1.
func setOp(kind SetOpKind, all bool, cols ...string) *SetOp {
	return &SetOp{Kind: kind, All: all, Columns: cols,
		Left:  &Route{Target: keysOn(1), Query: Query{SQL: "SELECT left", Describe: true}},
		Right: &Route{Target: keysOn(2), Query: Query{SQL: "SELECT right", Describe: true}}}
}

// runSetOp runs op over the fake with left's and right's scripts and the
// session's settings, and returns what the client got and the shards
// queried, in order.
func runSetOp(t *testing.T, ctx context.Context, op *SetOp, left, right *script, settings sessionSettings, c *collector) (Tag, []string, error) {
	t.Helper()
	x := distinctExec{newFake(newTopo(), map[string]*script{setOpLeft: left, setOpRight: right}), settings}
	tag, err := op.Stream(ctx, x, nil, c.emit)
	if c.badOrder {
		t.Errorf("rows before Fields")
	}
	if c.fieldsN > 1 {
		t.Errorf("client got %d Fields batches", c.fieldsN)
	}
	var shards []string
	for _, call := range x.Calls() {
		shards = append(shards, call.Shard)
	}
	return tag, shards, err
}

// TestSetOpKinds proves each set operation, with and without ALL, keeps
// the rows Postgres keeps, in order, taking NULL for equal to NULL and
// values that print differently (1.5 and 1.50) for equal, and that
// INTERSECT and EXCEPT read Right first.
func TestSetOpKinds(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("n", oidNumeric, 0), typedField("s", oidText, 0)}
	left := []string{"1.5|a", "1.50|a", "2|NULL", "NULL|NULL", "2|NULL", "3|b", "1.5|a"}
	right := []string{"1.500|a", "NULL|NULL", "1.5|a", "NULL|NULL", "2.0|NULL", "4|c"}
	rows := func(vals []string) [][][]byte {
		var out [][][]byte
		for _, v := range vals {
			out = append(out, row(strings.Split(v, "|")...))
		}
		return out
	}
	for _, tt := range []struct {
		kind   SetOpKind
		all    bool
		want   []string
		shards []string
	}{
		{SetUnion, true, append(slices.Clone(left), right...), []string{setOpLeft, setOpRight}},
		{SetUnion, false, []string{"1.5|a", "2|NULL", "NULL|NULL", "3|b", "4|c"}, []string{setOpLeft, setOpRight}},
		{SetIntersect, false, []string{"1.5|a", "2|NULL", "NULL|NULL"}, []string{setOpRight, setOpLeft}},
		// (1.5, a) is twice in Right: Left's first two pass.
		{SetIntersect, true, []string{"1.5|a", "1.50|a", "2|NULL", "NULL|NULL"}, []string{setOpRight, setOpLeft}},
		{SetExcept, false, []string{"3|b"}, []string{setOpRight, setOpLeft}},
		// Left's occurrences past Right's count pass.
		{SetExcept, true, []string{"2|NULL", "3|b", "1.5|a"}, []string{setOpRight, setOpLeft}},
	} {
		op := setOp(tt.kind, tt.all, "n", "s")
		t.Run(op.name(), func(t *testing.T) {
			c := &collector{}
			tag, shards, err := runSetOp(t, testCtx(t), op,
				&script{Fields: fs, Rows: rows(left), BatchSize: 3, Tag: "SELECT 7"},
				&script{Fields: fs, Rows: rows(right), BatchSize: 2, Tag: "SELECT 6"}, nil, c)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.values(); !slices.Equal(got, tt.want) {
				t.Errorf("rows\n%q, want\n%q", got, tt.want)
			}
			if want := Tag(fmt.Sprintf("SELECT %d", len(tt.want))); tag != want {
				t.Errorf("tag %q, want %q", tag, want)
			}
			if !slices.Equal(shards, tt.shards) {
				t.Errorf("shards queried %v, want %v", shards, tt.shards)
			}
			wantVisibleFields(t, c, fs)
		})
	}
}

// TestSetOpBinary proves values are keyed in the format they come in:
// binary numerics of another scale, floats -0 and 0, and int8.
func TestSetOpBinary(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("n", oidNumeric, 1), typedField("f", oidFloat8, 1), typedField("i", oidInt8, 1)}
	one5, one50 := decSend(0, 0, 1, 1, 5000), decSend(0, 0, 2, 1, 5000)
	left := [][][]byte{
		{[]byte(one5), []byte(sendF8(0)), []byte(send64(1))},
		{[]byte(one5), []byte(sendF8(1)), []byte(send64(1))},
		{nil, []byte(sendF8(0)), nil},
	}
	right := [][][]byte{
		{[]byte(one50), []byte(sendF8(math.Copysign(0, -1))), []byte(send64(1))},
		{nil, []byte(sendF8(0)), nil},
	}
	c := &collector{}
	tag, _, err := runSetOp(t, testCtx(t), setOp(SetIntersect, false, "n", "f", "i"),
		&script{Fields: fs, Rows: left}, &script{Fields: fs, Rows: right}, nil, c)
	if err != nil {
		t.Fatal(err)
	}
	if tag != "SELECT 2" || c.rowsN != 2 || string(c.batches[1].Rows[0][1]) != sendF8(0) {
		t.Errorf("tag %q, rows %q", tag, c.values())
	}
}

// TestSetOpTypeMismatch proves sides whose columns differ in type or
// format are refused with 0A000 naming the column and the types, and in
// number with Postgres's 42601.
func TestSetOpTypeMismatch(t *testing.T) {
	defer goleak.VerifyNone(t)
	ints := []Field{typedField("x", oidInt4, 0), typedField("y", oidText, 0)}
	for _, tt := range []struct {
		name    string
		kind    SetOpKind
		right   []Field
		code    string
		message string
	}{
		{"types", SetIntersect, []Field{typedField("x", oidInt8, 0), typedField("y", oidText, 0)}, CodeFeatureNotSupported,
			"INTERSECT of column x of types integer and bigint across shards is not supported"},
		{"second column", SetExcept, []Field{typedField("x", oidInt4, 0), typedField("y", oidVarchar, 0)}, CodeFeatureNotSupported,
			"EXCEPT of column y of types text and character varying across shards is not supported"},
		{"formats", SetIntersect, []Field{typedField("x", oidInt4, 1), typedField("y", oidText, 0)}, CodeFeatureNotSupported,
			"INTERSECT of column x in formats 0 and 1 across shards is not supported"},
		{"count", SetUnion, ints[:1], CodeSyntaxError, "each UNION query must have the same number of columns"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &collector{}
			_, _, err := runSetOp(t, testCtx(t), setOp(tt.kind, false, "x", "y"),
				&script{Fields: ints, Rows: [][][]byte{row("1", "a")}}, &script{Fields: tt.right}, nil, c)
			if e := wantCode(t, err, tt.code); e.Message != tt.message {
				t.Errorf("message %q, want %q", e.Message, tt.message)
			}
			if tt.kind != SetUnion && len(c.batches) != 0 {
				t.Errorf("client got %+v", c.batches)
			}
		})
	}

	// UNION ALL knows Right's types only after Left's rows went.
	c := &collector{}
	_, _, err := runSetOp(t, testCtx(t), setOp(SetUnion, true, "x", "y"),
		&script{Fields: ints, Rows: [][][]byte{row("1", "a")}},
		&script{Fields: []Field{typedField("x", oidInt8, 0), typedField("y", oidText, 0)}, Rows: [][][]byte{row("2", "b")}}, nil, c)
	e := wantCode(t, err, CodeFeatureNotSupported)
	if !strings.Contains(e.Hint, "Cast both sides to one type") {
		t.Errorf("hint %q", e.Hint)
	}
	if got := c.values(); !slices.Equal(got, []string{"1|a"}) {
		t.Errorf("rows %q, want Left's", got)
	}
}

// TestSetOpTypeModifiers proves the output columns are Left's, of no
// table, with the type modifier both sides share or -1 where they differ;
// Left's when Right's was not known yet when Left's rows had to go.
func TestSetOpTypeModifiers(t *testing.T) {
	defer goleak.VerifyNone(t)
	const numeric10_2, numeric12_2 = 10<<16 | 2 + 4, 12<<16 | 2 + 4
	field := func(name string, typmod int32) Field {
		f := typedField(name, oidNumeric, 0)
		f.TableOID, f.TableAttributeNumber, f.TypeModifier = 16384, 1, typmod
		return f
	}
	want := func(typmods ...int32) []Field {
		fs := []Field{typedField("a", oidNumeric, 0), typedField("b", oidNumeric, 0)}
		for i := range fs {
			fs[i].TypeModifier = typmods[i]
		}
		return fs
	}
	left := []Field{field("a", numeric10_2), field("b", numeric10_2)}
	right := []Field{field("c", numeric10_2), field("d", numeric12_2)}
	for _, tt := range []struct {
		name     string
		op       *SetOp
		leftRows [][][]byte
		want     []Field
	}{
		{"INTERSECT", setOp(SetIntersect, false, "a", "b"), [][][]byte{row("1", "1")}, want(numeric10_2, -1)},
		{"EXCEPT ALL", setOp(SetExcept, true, "a", "b"), nil, want(numeric10_2, -1)},
		{"UNION of no Left rows", setOp(SetUnion, false, "a", "b"), nil, want(numeric10_2, -1)},
		{"UNION ALL with Left rows", setOp(SetUnion, true, "a", "b"), [][][]byte{row("1", "1")}, want(numeric10_2, numeric10_2)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &collector{}
			_, _, err := runSetOp(t, testCtx(t), tt.op, &script{Fields: left, Rows: tt.leftRows},
				&script{Fields: right, Rows: [][][]byte{row("1", "1")}}, nil, c)
			if err != nil {
				t.Fatal(err)
			}
			wantVisibleFields(t, c, tt.want)
		})
	}
}

// TestSetOpNoRows proves empty sides give the columns, no rows and
// SELECT 0, for every operation.
func TestSetOpNoRows(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("k", oidInt8, 0)}
	for _, kind := range []SetOpKind{SetUnion, SetIntersect, SetExcept} {
		for _, all := range []bool{false, true} {
			op := setOp(kind, all, "k")
			t.Run(op.name(), func(t *testing.T) {
				c := &collector{}
				tag, _, err := runSetOp(t, testCtx(t), op, &script{Fields: fs, Tag: "SELECT 0"}, &script{Fields: fs, Tag: "SELECT 0"}, nil, c)
				if err != nil {
					t.Fatal(err)
				}
				if c.rowsN != 0 || tag != "SELECT 0" {
					t.Errorf("rows %q tag %q", c.values(), tag)
				}
				wantVisibleFields(t, c, fs)
			})
		}
	}
}

// TestSetOpMemoryLimit proves the keys a SetOp holds count against
// shardgate.query_memory, past which the statement fails with 53200
// saying what held them; duplicates, UNION ALL and Left's rows of
// INTERSECT and EXCEPT ALL hold nothing more.
func TestSetOpMemoryLimit(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("k", oidText, 0)}
	// Each key takes 1 KiB: a NULL mark, the length in 2 bytes, the 965
	// bytes and setOpEntryBytes. 64 of them fill the 64 kB limit.
	values := func(from, n int) [][][]byte {
		var out [][][]byte
		for i := from; i < from+n; i++ {
			out = append(out, row(fmt.Sprintf("%0965d", i)))
		}
		return out
	}
	repeat := func(n int) [][][]byte {
		var out [][][]byte
		for range n {
			out = append(out, row("same"))
		}
		return out
	}
	settings := sessionSettings{"shardgate.query_memory": "64kB"}
	for _, tt := range []struct {
		name        string
		op          *SetOp
		left, right [][][]byte
		held        string // "" when the statement succeeds
		passed      int
	}{
		{"UNION", setOp(SetUnion, false, "k"), values(0, 40), values(40, 40),
			"the distinct rows of a UNION across shards take", 64},
		{"INTERSECT", setOp(SetIntersect, false, "k"), values(0, 10), values(0, 65),
			"counting the rows of the right side of INTERSECT across shards takes", 0},
		{"EXCEPT", setOp(SetExcept, false, "k"), values(100, 40), values(0, 30),
			"the distinct rows of the left side of EXCEPT across shards take", 32},
		{"INTERSECT ALL", setOp(SetIntersect, true, "k"), values(0, 200), values(0, 64), "", 64},
		{"EXCEPT ALL", setOp(SetExcept, true, "k"), values(100, 200), values(0, 64), "", 200},
		{"UNION ALL", setOp(SetUnion, true, "k"), values(0, 100), values(0, 100), "", 200},
		{"UNION of duplicates", setOp(SetUnion, false, "k"), repeat(1000), repeat(1000), "", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &collector{}
			tag, _, err := runSetOp(t, testCtx(t), tt.op, &script{Fields: fs, Rows: tt.left, BatchSize: 8},
				&script{Fields: fs, Rows: tt.right, BatchSize: 8}, settings, c)
			if tt.held == "" {
				if err != nil {
					t.Fatal(err)
				}
				if want := Tag(fmt.Sprintf("SELECT %d", tt.passed)); tag != want {
					t.Errorf("tag %q, want %q", tag, want)
				}
				return
			}
			e := wantCode(t, err, codeOutOfMemory)
			if want := "out of memory: " + tt.held + " more than 64 KiB in the gateway"; e.Message != want {
				t.Errorf("message %q, want %q", e.Message, want)
			}
			if !strings.Contains(e.Hint, "SET shardgate.query_memory") {
				t.Errorf("hint %q does not name the setting", e.Hint)
			}
			if c.rowsN != tt.passed {
				t.Errorf("client got %d rows, want %d", c.rowsN, tt.passed)
			}
		})
	}
}

// TestSetOpBadMemorySetting proves a malformed shardgate.query_memory
// fails the statement with 22023 before any shard is queried.
func TestSetOpBadMemorySetting(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("k", oidInt8, 0)}
	c := &collector{}
	_, shards, err := runSetOp(t, testCtx(t), setOp(SetUnion, true, "k"), &script{Fields: fs}, &script{Fields: fs},
		sessionSettings{"shardgate.query_memory": "64 MiB"}, c)
	e := wantCode(t, err, codeInvalidParameterValue)
	if want := `invalid value for parameter "shardgate.query_memory": "64 MiB"`; e.Message != want {
		t.Errorf("message %q, want %q", e.Message, want)
	}
	if len(shards) != 0 || len(c.batches) != 0 {
		t.Errorf("shards %v queried, client got %+v", shards, c.batches)
	}
}

// TestMemoryLimit proves shardgate.query_memory reads as Postgres reads
// work_mem: kB by default, case-sensitive units, fractions rounded to the
// next smaller unit, within work_mem's bounds.
func TestMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  int    // bytes
		err   string // the message's start when it fails
	}{
		{"", 256 << 20, ""},
		{"DEFAULT", 256 << 20, ""},
		{"64kB", 64 << 10, ""},
		{"1MB", 1 << 20, ""},
		{"2GB", 2 << 30, ""},
		{"1TB", 1 << 40, ""},
		{"65536", 64 << 20, ""},
		{" 1 MB ", 1 << 20, ""},
		{"1.5MB", 1536 << 10, ""},
		{"1.0001GB", 1 << 30, ""},
		{"1e3", 1000 << 10, ""},
		{"65536B", 64 << 10, ""},
		{"0x100", 256 << 10, ""},
		{"0100", 64 << 10, ""}, // octal, as strtol reads it
		{"+128kB", 128 << 10, ""},
		{"1mb", 0, `invalid value for parameter "shardgate.query_memory": "1mb"`},
		{"1 M", 0, "invalid value"},
		{"lots", 0, "invalid value"},
		{"1MB of it", 0, "invalid value"},
		{"08", 0, "invalid value"},
		{".", 0, "invalid value"},
		{"3TB", 0, "invalid value"},
		{"10", 0, `10 kB is outside the valid range for parameter "shardgate.query_memory" (64 kB .. 2147483647 kB)`},
		{"-1MB", 0, "-1024 kB is outside the valid range"},
		{"100B", 0, "0 kB is outside the valid range"},
	} {
		t.Run(tt.value, func(t *testing.T) {
			got, err := memoryLimit(sessionSettings{"Shardgate.Query_Memory": tt.value})
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Errorf("memoryLimit = %d, %v; want %d", got, err, tt.want)
				}
				return
			}
			if e := wantCode(t, err, codeInvalidParameterValue); !strings.HasPrefix(e.Message, tt.err) {
				t.Errorf("message %q, want %q", e.Message, tt.err)
			}
		})
	}
	if got := byteSize(256 << 20); got != "256 MiB" {
		t.Errorf("the default prints as %q", got)
	}
}

// TestSetOpRightError proves an error of Right fails the statement and is
// returned as it is: before any row for INTERSECT, after Left's for UNION.
func TestSetOpRightError(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("k", oidInt8, 0)}
	boom := &shardError{code: "57P01"}
	for _, tt := range []struct {
		op   *SetOp
		want []string
	}{
		{setOp(SetIntersect, false, "k"), nil},
		{setOp(SetUnion, false, "k"), []string{"1", "2"}},
	} {
		t.Run(tt.op.name(), func(t *testing.T) {
			c := &collector{}
			_, _, err := runSetOp(t, testCtx(t), tt.op, &script{Fields: fs, Rows: oneColumn("1", "2", "1")},
				&script{Fields: fs, Rows: oneColumn("1", "3"), Stop: stopFail, StopAfter: 1, Err: boom}, nil, c)
			if err != boom {
				t.Fatalf("error %v, want the shard's %v", err, boom)
			}
			if got := c.values(); !slices.Equal(got, tt.want) {
				t.Errorf("rows %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSetOpEmitError proves an error from the client stops the statement
// and is returned; Right does not run.
func TestSetOpEmitError(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("k", oidInt8, 0)}
	gone := errors.New("client gone")
	c := &collector{onRows: func(*Batch) error { return gone }}
	_, shards, err := runSetOp(t, testCtx(t), setOp(SetUnion, false, "k"),
		&script{Fields: fs, Rows: oneColumn("1", "2")}, &script{Fields: fs, Rows: oneColumn("3")}, nil, c)
	if !errors.Is(err, gone) || c.rowsN != 1 || !slices.Equal(shards, []string{setOpLeft}) {
		t.Errorf("error %v after %d rows, shards %v", err, c.rowsN, shards)
	}
}

// TestSetOpCancel proves a SetOp stops at the next batch once its context
// ends mid-stream, returning the context's error without reading on or
// starting Right.
func TestSetOpCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("k", oidInt8, 0)}
	for _, op := range []*SetOp{setOp(SetUnion, true, "k"), setOp(SetUnion, false, "k")} {
		t.Run(op.name(), func(t *testing.T) {
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			c := &collector{onRows: func(*Batch) error { cancel(); return nil }}
			var batches int
			left := &script{Fields: fs, Rows: oneColumn("1", "2", "3", "4"), Stop: stopBlock, StopAfter: 4,
				Before: func(context.Context, int) error { batches++; return nil }}
			_, shards, err := runSetOp(t, ctx, op, left, &script{Fields: fs, Rows: oneColumn("5")}, nil, c)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("error %v, want context.Canceled", err)
			}
			// Fields, the row the client cancelled on, and the next,
			// which SetOp refused.
			if c.rowsN != 1 || batches != 3 || !slices.Equal(shards, []string{setOpLeft}) {
				t.Errorf("client got %d rows of %d batches, shards %v", c.rowsN, batches, shards)
			}
		})
	}

	// INTERSECT cancelled while it streams Left.
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	c := &collector{onRows: func(*Batch) error { cancel(); return nil }}
	_, shards, err := runSetOp(t, ctx, setOp(SetIntersect, true, "k"),
		&script{Fields: fs, Rows: oneColumn("1", "2", "3"), Stop: stopBlock, StopAfter: 3},
		&script{Fields: fs, Rows: oneColumn("1", "2", "3")}, nil, c)
	if !errors.Is(err, context.Canceled) || c.rowsN != 1 || !slices.Equal(shards, []string{setOpRight, setOpLeft}) {
		t.Errorf("error %v after %d rows, shards %v", err, c.rowsN, shards)
	}
}

// TestSetOpDescribe proves the plan prints with its operation and
// columns, over both inputs.
func TestSetOpDescribe(t *testing.T) {
	op := setOp(SetIntersect, true, "a", "b")
	if got, want := op.Describe(), "SetOp INTERSECT ALL cols(a, b)"; got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
	if in := op.Inputs(); len(in) != 2 || in[0] != op.Left || in[1] != op.Right {
		t.Errorf("Inputs() = %v", in)
	}
	want := "SetOp INTERSECT ALL cols(a, b)\n  " + op.Left.Describe() + "\n  " + op.Right.Describe() + "\n"
	if got := Format(op); got != want {
		t.Errorf("Format:\n%s\nwant:\n%s", got, want)
	}
	if got := setOp(SetExcept, false, "x").Describe(); got != "SetOp EXCEPT cols(x)" {
		t.Errorf("Describe() = %q", got)
	}
}
