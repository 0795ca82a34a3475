package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// evalExec wraps the fake executor for Evaluate: it records every Query
// whole (the fake's calls leave Values and Describe out), answers Setting
// from settings, and, when answer is set, scripts the shard's answer to
// each statement (n counts them from 0) from the statement itself.
type evalExec struct {
	*fakeExec
	settings map[string]string
	answer   func(n int, q Query) *script

	mu      sync.Mutex
	queries []Query
}

func newEvalExec(scripts map[string]*script) *evalExec {
	if scripts == nil {
		scripts = map[string]*script{}
	}
	return &evalExec{fakeExec: newFake(newTopo(), scripts)}
}

// Setting implements Settings: the session's settings, "" for the others.
func (e *evalExec) Setting(name string) string { return e.settings[strings.ToLower(name)] }

func (e *evalExec) Query(ctx context.Context, shard string, q Query, emit func(*Batch) error) (Tag, error) {
	cp := q
	cp.Params = slices.Clone(q.Params)
	if q.Values != nil {
		cp.Values = make([][]byte, len(q.Values))
		for i, v := range q.Values {
			cp.Values[i] = slices.Clone(v)
		}
	}
	e.mu.Lock()
	n := len(e.queries)
	e.queries = append(e.queries, cp)
	e.mu.Unlock()
	if e.answer != nil {
		s := e.answer(n, q)
		e.fakeExec.mu.Lock()
		e.fakeExec.scripts[shard] = s
		e.fakeExec.mu.Unlock()
	}
	return e.fakeExec.Query(ctx, shard, q, emit)
}

// Queries returns the statements received so far.
func (e *evalExec) Queries() []Query {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.queries)
}

// parseArray reads a one-dimensional array literal as array_in does for
// the elements Evaluate writes: {} or elements separated by commas, each
// NULL or double-quoted with a backslash escaping the next character.
// nil is NULL.
func parseArray(s string) ([][]byte, error) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, fmt.Errorf("array %q is not in braces", s)
	}
	body := s[1 : len(s)-1]
	out := [][]byte{}
	if body == "" {
		return out, nil
	}
	for i := 0; ; {
		switch {
		case strings.HasPrefix(body[i:], "NULL"):
			out = append(out, nil)
			i += len("NULL")
		case body[i] == '"':
			v := []byte{}
			for i++; ; i++ {
				if i >= len(body) {
					return nil, fmt.Errorf("array %q: unterminated element", s)
				}
				c := body[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' {
					if i++; i >= len(body) {
						return nil, fmt.Errorf("array %q: backslash at the end", s)
					}
					c = body[i]
				}
				v = append(v, c)
			}
			out = append(out, v)
		default:
			return nil, fmt.Errorf("array %q: unquoted element at %d", s, i)
		}
		if i == len(body) {
			return out, nil
		}
		if body[i] != ',' {
			return nil, fmt.Errorf("array %q: %q after an element", s, body[i])
		}
		i++
	}
}

// echo is a shard that answers an evaluating statement with its columns
// as they are: fields, then one row per element of the arrays.
func echo(fields []Field) func(int, Query) *script {
	return func(_ int, q Query) *script {
		rows, err := unnestValues(q.Values)
		if err != nil {
			return &script{Stop: stopFail, Err: err}
		}
		return &script{Fields: fields, Rows: rows, BatchSize: 100, Tag: Tag(fmt.Sprintf("SELECT %d", len(rows)))}
	}
}

// unnestValues reads a statement's array parameters back into rows, as
// unnest(...) WITH ORDINALITY does.
func unnestValues(values [][]byte) ([][][]byte, error) {
	var rows [][][]byte
	for j, v := range values {
		elems, err := parseArray(string(v))
		if err != nil {
			return nil, err
		}
		if j == 0 {
			rows = make([][][]byte, len(elems))
		}
		if len(elems) != len(rows) {
			return nil, fmt.Errorf("array %d has %d elements, the first %d", j+1, len(elems), len(rows))
		}
		for i, e := range elems {
			rows[i] = append(rows[i], e)
		}
	}
	return rows, nil
}

// evalField is an input column of type oid with modifier typmod, in text.
func evalField(name string, oid uint32, typmod int32) Field {
	return Field{Name: name, DataTypeOID: oid, DataTypeSize: -1, TypeModifier: typmod}
}

// evalRows builds n rows: a bigint label 0..n-1 and a text column that
// is NULL every 7th row.
func evalRows(n int) [][][]byte {
	rows := make([][][]byte, n)
	for i := range rows {
		v := fmt.Sprintf(`v"%d`, i)
		if i%7 == 3 {
			v = "NULL"
		}
		rows[i] = row(fmt.Sprint(i), v)
	}
	return rows
}

// inBatches splits rows into batches of size.
func inBatches(rows [][][]byte, size int) [][][][]byte {
	var out [][][][]byte
	for len(rows) > 0 {
		n := min(size, len(rows))
		out = append(out, rows[:n])
		rows = rows[n:]
	}
	return out
}

// rowStrings prints rows as collector.values does.
func rowStrings(rows [][][]byte) []string {
	c := &collector{batches: []Batch{{Rows: rows}}}
	return c.values()
}

// runEval runs e over x and returns what the client got.
func runEval(t *testing.T, e *Evaluate, x Executor) (*collector, Tag, error) {
	t.Helper()
	c := &collector{}
	tag, err := e.Stream(testCtx(t), x, nil, c.emit)
	if c.badOrder {
		t.Errorf("rows before Fields")
	}
	return c, tag, err
}

// TestEvaluateStatement proves Evaluate asks the topology's first shard,
// as any shard, once, to compute its expressions over the input rows
// passed as one text array per column: the statement, its Values (the
// client's parameters not used), Describe set; and that the client gets
// the shard's columns and rows and a tag counting them.
func TestEvaluateStatement(t *testing.T) {
	defer goleak.VerifyNone(t)
	in := &sortInput{
		fields:  []Field{evalField("k", oidInt8, -1), evalField("sum", oidNumeric, 655366)},
		batches: [][][][]byte{{row("1", "2.50"), row("2", "NULL")}, {row("NULL", "-1.25")}},
		tag:     "SELECT 3",
	}
	out := []Field{{Name: "k", DataTypeOID: oidInt8, DataTypeSize: 8, TypeModifier: -1},
		{Name: "double", DataTypeOID: oidNumeric, DataTypeSize: -1, TypeModifier: -1}}
	shardRows := [][][]byte{row("1", "5.00"), row("2", "NULL"), row("NULL", "-2.50")}
	x := newEvalExec(map[string]*script{"s0": {Fields: out, Rows: shardRows, Tag: "SELECT 3"}})
	e := &Evaluate{Input: in, Exprs: []string{"", `sg_v.sg_2 * 2 AS "double"`}, Texts: []string{"k", "sum(x) * 2"}}
	c, tag, err := runEval(t, e, x)
	if err != nil {
		t.Fatal(err)
	}
	qs := x.Queries()
	if len(qs) != 1 {
		t.Fatalf("%d statements, want 1: %+v", len(qs), qs)
	}
	q := qs[0]
	wantSQL := `SELECT sg_v.sg_1 AS "k", sg_v.sg_2 * 2 AS "double" ` +
		`FROM unnest($1::pg_catalog.int8[], $2::pg_catalog.numeric(10, 2)[]) WITH ORDINALITY AS sg_v(sg_1, sg_2, sg_n) ORDER BY sg_v.sg_n`
	if q.SQL != wantSQL {
		t.Errorf("SQL\n%s, want\n%s", q.SQL, wantSQL)
	}
	if got, want := rowStrings([][][]byte{q.Values}), []string{`{"1","2",NULL}|{"2.50",NULL,"-1.25"}`}; !slices.Equal(got, want) {
		t.Errorf("Values %q, want %q", got, want)
	}
	if !q.AnyShard || !q.Describe {
		t.Errorf("AnyShard %v Describe %v, want both set", q.AnyShard, q.Describe)
	}
	// The array parameters replace the client's (Values wins over
	// Params): no client parameter is passed on.
	if len(q.Params) != 0 {
		t.Errorf("Params %v, want none", q.Params)
	}
	// The result is the client's, in its formats: nothing hidden, not
	// internal.
	if q.Internal || q.Hidden != 0 {
		t.Errorf("Internal %v Hidden %d, want neither", q.Internal, q.Hidden)
	}
	if calls := x.Calls(); len(calls) != 1 || calls[0].Shard != "s0" || !calls[0].AnyShard {
		t.Errorf("calls %+v, want one on s0 (the first shard), any shard", calls)
	}
	wantVisibleFields(t, c, out)
	if got, want := c.values(), rowStrings(shardRows); !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
	if tag != "SELECT 3" {
		t.Errorf("tag %q, want SELECT 3", tag)
	}
}

// TestEvaluateCastTypes proves each input column is cast from its array
// to its own type, schema-qualified, with its modifier: numeric's
// precision and scale, varchar's and bpchar's length, the time types'
// precision.
func TestEvaluateCastTypes(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		oid    uint32
		typmod int32
		want   string
	}{
		{oidInt8, -1, "pg_catalog.int8"},
		{oidInt4, -1, "pg_catalog.int4"},
		{oidInt2, -1, "pg_catalog.int2"},
		{oidNumeric, -1, "pg_catalog.numeric"},
		{oidNumeric, 655366, "pg_catalog.numeric(10, 2)"},  // numeric(10,2)
		{oidNumeric, 1310724, "pg_catalog.numeric(20, 0)"}, // numeric(20)
		{oidNumeric, 131081, "pg_catalog.numeric(2, 5)"},   // numeric(2,5): scale past precision, Postgres 15
		{oidVarchar, 24, "pg_catalog.varchar(20)"},
		{oidVarchar, -1, "pg_catalog.varchar"},
		{oidBpchar, 9, "pg_catalog.bpchar(5)"},
		{oidTimestamptz, 3, "pg_catalog.timestamptz(3)"},
		{oidTimestamptz, 0, "pg_catalog.timestamptz(0)"},
		{oidTimestamptz, -1, "pg_catalog.timestamptz"},
		{oidTimestamp, 6, "pg_catalog.timestamp(6)"},
		{1083, 2, "pg_catalog.time(2)"},
		{1266, -1, "pg_catalog.timetz"},
		{oidText, -1, "pg_catalog.text"},
		{oidBool, -1, "pg_catalog.bool"},
		{oidBytea, -1, "pg_catalog.bytea"},
		{oidDate, -1, "pg_catalog.date"},
		{oidInterval, -1, "pg_catalog.interval"},
		{oidUUID, -1, "pg_catalog.uuid"},
		{oidJsonb, -1, "pg_catalog.jsonb"},
		{114, -1, "pg_catalog.json"},
		{18, -1, `pg_catalog."char"`},
		{oidName, -1, "pg_catalog.name"},
		{869, -1, "pg_catalog.inet"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			in := &sortInput{fields: []Field{evalField("c", tt.oid, tt.typmod)}, batches: [][][][]byte{{row("v")}}}
			x := newEvalExec(map[string]*script{"s0": {Fields: []Field{evalField("c", tt.oid, tt.typmod)}, Rows: [][][]byte{row("v")}}})
			if _, _, err := runEval(t, &Evaluate{Input: in, Exprs: []string{""}, Texts: []string{"c"}}, x); err != nil {
				t.Fatal(err)
			}
			// A passed-on column with a type modifier gets it back after
			// unnest, which drops it.
			col := "sg_v.sg_1"
			if tt.typmod >= 0 {
				col += "::" + tt.want
			}
			want := `SELECT ` + col + ` AS "c" FROM unnest($1::` + tt.want + `[]) WITH ORDINALITY AS sg_v(sg_1, sg_n) ORDER BY sg_v.sg_n`
			if qs := x.Queries(); len(qs) != 1 || qs[0].SQL != want {
				t.Errorf("statements %+v, want one of\n%s", qs, want)
			}
		})
	}
}

// TestEvaluateNegativeNumericScale proves a numeric column with a negative
// scale (numeric(3,-2), allowed since Postgres 15) is cast to its own
// type: Postgres keeps the scale in the modifier's low 11 bits, sign
// included (typmod 198658 is numeric(3,-2)).
func TestEvaluateNegativeNumericScale(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := evalField("c", oidNumeric, 198658)
	in := &sortInput{fields: []Field{f}, batches: [][][][]byte{{row("1200")}}}
	x := newEvalExec(map[string]*script{"s0": {Fields: []Field{f}, Rows: [][][]byte{row("1200")}}})
	if _, _, err := runEval(t, &Evaluate{Input: in, Exprs: []string{""}, Texts: []string{"c"}}, x); err != nil {
		t.Fatal(err)
	}
	want := `SELECT sg_v.sg_1::pg_catalog.numeric(3, -2) AS "c" FROM unnest($1::pg_catalog.numeric(3, -2)[]) WITH ORDINALITY AS sg_v(sg_1, sg_n) ORDER BY sg_v.sg_n`
	if qs := x.Queries(); len(qs) != 1 || qs[0].SQL != want {
		t.Errorf("statements %+v, want one of\n%s", qs, want)
	}
}

// TestEvaluateQuoting proves every value reaches its array as one quoted
// element that reads back as itself: quotes, backslashes, commas, braces,
// spaces, the string NULL (quoted) against SQL NULL (bare), the empty
// string.
func TestEvaluateQuoting(t *testing.T) {
	defer goleak.VerifyNone(t)
	vals := [][]byte{
		[]byte(`say "hi"`), []byte(`back\slash`), []byte(`a,b`), []byte(`{x}`), []byte(` spaced `),
		[]byte("NULL"), nil, []byte(""), []byte(`\"`), []byte("tab\tnew\nline"), []byte("héllo"),
	}
	rows := make([][][]byte, len(vals))
	for i, v := range vals {
		rows[i] = [][]byte{v}
	}
	in := &sortInput{fields: []Field{evalField("s", oidText, -1)}, batches: [][][][]byte{rows[:4], rows[4:]}}
	x := newEvalExec(nil)
	x.answer = echo([]Field{evalField("s", oidText, -1)})
	c, tag, err := runEval(t, &Evaluate{Input: in, Exprs: []string{""}, Texts: []string{"s"}}, x)
	if err != nil {
		t.Fatal(err)
	}
	qs := x.Queries()
	if len(qs) != 1 || len(qs[0].Values) != 1 {
		t.Fatalf("statements %+v, want one with one array", qs)
	}
	want := `{"say \"hi\"","back\\slash","a,b","{x}"," spaced ","NULL",NULL,"","\\\"","tab` + "\t" + `new` + "\n" + `line","héllo"}`
	if got := string(qs[0].Values[0]); got != want {
		t.Errorf("array\n%s, want\n%s", got, want)
	}
	if got, want := c.values(), rowStrings(rows); !slices.Equal(got, want) {
		t.Errorf("rows read back %q, want %q", got, want)
	}
	// The string NULL and SQL NULL stay apart.
	if got := c.batches[1].Rows; got[5][0] == nil || got[6][0] != nil {
		t.Errorf("the string NULL and SQL NULL read back as %q and %q", got[5][0], got[6][0])
	}
	if tag != Tag(fmt.Sprintf("SELECT %d", len(vals))) {
		t.Errorf("tag %q", tag)
	}
}

// TestEvaluateBatches proves more than evaluateBatchRows rows take several
// statements, each of at most that many rows, together every row once in
// the input's order; the client gets Fields once, every row in order, and
// a tag counting them all.
func TestEvaluateBatches(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, n := range []int{1, 999, 1000, 1001, 2500} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			fs := []Field{evalField("k", oidInt8, -1), evalField("v", oidText, -1)}
			rows := evalRows(n)
			in := &sortInput{fields: fs, batches: inBatches(rows, 7)}
			x := newEvalExec(nil)
			x.answer = echo(fs)
			c, tag, err := runEval(t, &Evaluate{Input: in, Exprs: []string{"", ""}, Texts: []string{"k", "v"}}, x)
			if err != nil {
				t.Fatal(err)
			}
			var sent [][][]byte
			nonEmpty := 0
			qs := x.Queries()
			for i, q := range qs {
				if q.SQL != qs[0].SQL {
					t.Errorf("statement %d is %q, the first %q", i, q.SQL, qs[0].SQL)
				}
				got, err := unnestValues(q.Values)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) > evaluateBatchRows {
					t.Errorf("statement %d has %d rows, more than %d", i, len(got), evaluateBatchRows)
				}
				if len(got) > 0 {
					nonEmpty++
				} else if i != len(qs)-1 {
					t.Errorf("statement %d of %d has no rows", i, len(qs))
				}
				sent = append(sent, got...)
			}
			if want := (n + evaluateBatchRows - 1) / evaluateBatchRows; nonEmpty != want {
				t.Errorf("%d statements with rows, want %d", nonEmpty, want)
			}
			if got, want := rowStrings(sent), rowStrings(rows); !slices.Equal(got, want) {
				t.Errorf("the statements carry %d rows, want the input's %d in order", len(got), len(want))
			}
			wantVisibleFields(t, c, fs)
			if got, want := c.values(), rowStrings(rows); !slices.Equal(got, want) {
				t.Errorf("client got %d rows, want the input's %d in order", len(got), len(want))
			}
			if want := Tag(fmt.Sprintf("SELECT %d", n)); tag != want {
				t.Errorf("tag %q, want %q", tag, want)
			}
		})
	}
}

// TestEvaluateBatchBytes proves rows whose values pass evaluateBatchBytes
// go in several statements before evaluateBatchRows rows.
func TestEvaluateBatchBytes(t *testing.T) {
	defer goleak.VerifyNone(t)
	const size = 300 << 10
	rows := make([][][]byte, 10)
	for i := range rows {
		rows[i] = [][]byte{[]byte(strings.Repeat(string(rune('a'+i)), size))}
	}
	fs := []Field{evalField("v", oidText, -1)}
	in := &sortInput{fields: fs, batches: [][][][]byte{rows}}
	x := newEvalExec(nil)
	x.answer = echo(fs)
	c, _, err := runEval(t, &Evaluate{Input: in, Exprs: []string{""}}, x)
	if err != nil {
		t.Fatal(err)
	}
	qs := x.Queries()
	if len(qs) < 3 {
		t.Errorf("%d statements for %d bytes of values, want at least 3", len(qs), len(rows)*size)
	}
	for i, q := range qs {
		if len(q.Values[0]) > evaluateBatchBytes+size+64 {
			t.Errorf("statement %d passes %d bytes", i, len(q.Values[0]))
		}
	}
	if got, want := c.values(), rowStrings(rows); !slices.Equal(got, want) {
		t.Errorf("client got %d rows, want the input's %d in order", len(got), len(want))
	}
}

// TestEvaluateNoRows proves an input without rows still runs one
// statement, over empty arrays, so that the client gets the columns.
func TestEvaluateNoRows(t *testing.T) {
	defer goleak.VerifyNone(t)
	in := &sortInput{fields: []Field{evalField("k", oidInt8, -1), evalField("n", oidNumeric, -1)}, tag: "SELECT 0"}
	out := []Field{evalField("k", oidInt8, -1), evalField("?column?", oidNumeric, -1)}
	x := newEvalExec(map[string]*script{"s0": {Fields: out, Tag: "SELECT 0"}})
	c, tag, err := runEval(t, &Evaluate{Input: in, Exprs: []string{"", `sg_v.sg_2 + 1 AS "?column?"`}}, x)
	if err != nil {
		t.Fatal(err)
	}
	qs := x.Queries()
	if len(qs) != 1 {
		t.Fatalf("%d statements, want 1", len(qs))
	}
	if got := rowStrings([][][]byte{qs[0].Values}); !slices.Equal(got, []string{"{}|{}"}) {
		t.Errorf("Values %q, want two empty arrays", got)
	}
	wantVisibleFields(t, c, out)
	if c.rowsN != 0 || tag != "SELECT 0" {
		t.Errorf("rows %q tag %q, want none and SELECT 0", c.values(), tag)
	}
}

// TestEvaluatePassThrough proves an input column passed on as it is
// (Exprs[i] == "") is aliased by its name, quoted, and keeps the table
// column it comes from in the client's Fields, while computed columns keep
// what the shard said.
func TestEvaluatePassThrough(t *testing.T) {
	defer goleak.VerifyNone(t)
	a := evalField(`we"ird Name`, oidInt8, -1)
	a.TableOID, a.TableAttributeNumber = 16384, 2
	b := evalField("count", oidInt8, -1)
	c := evalField("g", oidText, -1)
	c.TableOID, c.TableAttributeNumber = 16390, 1
	in := &sortInput{fields: []Field{a, b, c}, batches: [][][][]byte{{row("1", "2", "x")}}}
	// What the shard describes: unnest's columns come from no table.
	shard := []Field{evalField(`we"ird Name`, oidInt8, -1), evalField("plus", oidInt8, -1), evalField("g", oidText, -1)}
	shard[1].TableOID, shard[1].TableAttributeNumber = 99, 9 // not the gateway's to change
	x := newEvalExec(map[string]*script{"s0": {Fields: shard, Rows: [][][]byte{row("1", "3", "x")}}})
	e := &Evaluate{Input: in, Exprs: []string{"", `sg_v.sg_2 + 1 AS plus`, ""}, Texts: []string{`"we""ird Name"`, "count(*) + 1", "g"}}
	cl, _, err := runEval(t, e, x)
	if err != nil {
		t.Fatal(err)
	}
	want := `SELECT sg_v.sg_1 AS "we""ird Name", sg_v.sg_2 + 1 AS plus, sg_v.sg_3 AS "g" FROM unnest(` +
		`$1::pg_catalog.int8[], $2::pg_catalog.int8[], $3::pg_catalog.text[]) WITH ORDINALITY AS sg_v(sg_1, sg_2, sg_3, sg_n) ORDER BY sg_v.sg_n`
	if qs := x.Queries(); len(qs) != 1 || qs[0].SQL != want {
		t.Errorf("statements %+v, want one of\n%s", qs, want)
	}
	wantFields := slices.Clone(shard)
	wantFields[0].TableOID, wantFields[0].TableAttributeNumber = 16384, 2
	wantFields[2].TableOID, wantFields[2].TableAttributeNumber = 16390, 1
	wantVisibleFields(t, cl, wantFields)
	if got, want := e.Describe(), `Evaluate on any shard sql="SELECT sg_v.sg_1, sg_v.sg_2 + 1 AS plus, sg_v.sg_3 FROM unnest(...) AS sg_v"`; got != want {
		t.Errorf("Describe %s, want %s", got, want)
	}
}

// TestEvaluateUnsupportedType proves a column of a type whose text a shard
// cannot be trusted to read back (record, an array, a modifier it cannot
// print) is refused with 0A000 naming the column, before any statement
// runs or any column reaches the client.
func TestEvaluateUnsupportedType(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name string
		f    Field
		want string // in the message
	}{
		{"record", evalField("r", 2249, -1), "ROW(a, b)"},
		{"int4[]", evalField("r", 1007, -1), "ROW(a, b)"},
		{"xml", evalField("r", 142, -1), "ROW(a, b)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &sortInput{fields: []Field{evalField("k", oidInt8, -1), tt.f}, batches: [][][][]byte{{row("1", "(1,2)")}}}
			x := newEvalExec(map[string]*script{"s0": {Fields: fields("k", "r")}})
			c, _, err := runEval(t, &Evaluate{Input: in, Exprs: []string{"", ""}, Texts: []string{"k", "ROW(a, b)"}}, x)
			e := wantCode(t, err, CodeFeatureNotSupported)
			if !strings.Contains(e.Message, tt.want) {
				t.Errorf("message %q does not name %s", e.Message, tt.want)
			}
			if qs := x.Queries(); len(qs) != 0 {
				t.Errorf("%d statements ran", len(qs))
			}
			if len(c.batches) != 0 {
				t.Errorf("client got %+v", c.batches)
			}
		})
	}
}

// TestEvaluateFloatDigits proves float columns pass to the shard when
// floats print exactly (extra_float_digits unset or 1 and more), and are
// refused with 0A000 and a hint when they print rounded.
func TestEvaluateFloatDigits(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		oid     uint32
		setting string
		ok      bool
	}{
		{oidFloat8, "", true},
		{oidFloat8, "1", true},
		{oidFloat8, "3", true},
		{oidFloat4, "1", true},
		{oidFloat8, "0", false},
		{oidFloat8, "-15", false},
		{oidFloat4, "0", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %q", typeName(tt.oid), tt.setting), func(t *testing.T) {
			f := evalField("f", tt.oid, -1)
			in := &sortInput{fields: []Field{f}, batches: [][][][]byte{{row("0.1")}}}
			x := newEvalExec(map[string]*script{"s0": {Fields: []Field{f}, Rows: [][][]byte{row("0.1")}}})
			x.settings = map[string]string{"extra_float_digits": tt.setting}
			c, _, err := runEval(t, &Evaluate{Input: in, Exprs: []string{""}, Texts: []string{"max(f)"}}, x)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				want := "$1::pg_catalog." + literalTypes[tt.oid] + "[]"
				if qs := x.Queries(); len(qs) != 1 || !strings.Contains(qs[0].SQL, want) {
					t.Errorf("statements %+v, want one casting %s", qs, want)
				}
				return
			}
			e := wantCode(t, err, CodeFeatureNotSupported)
			if !strings.Contains(e.Message, "max(f)") || !strings.Contains(e.Message, "extra_float_digits") || e.Hint == "" {
				t.Errorf("error %+v: want the column, the setting and a hint", e)
			}
			if qs := x.Queries(); len(qs) != 0 || len(c.batches) != 0 {
				t.Errorf("%d statements ran, client got %+v", len(qs), c.batches)
			}
		})
	}
}

// TestEvaluateErrors proves an error of the shard or of the input fails the
// statement with that error, and that no statement follows the failing
// one: the input stops being read.
func TestEvaluateErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{evalField("k", oidInt8, -1), evalField("v", oidText, -1)}
	boom := &shardError{code: "22012"}
	tests := []struct {
		name       string
		rows       int
		shardFails int   // the statement that fails, -1 for none
		inputErr   error // the input's
		want       error
		statements int
	}{
		{"shard fails the only statement", 3, 0, nil, boom, 1},
		{"shard fails the second of three", 2500, 1, nil, boom, 2},
		{"input fails before a statement", 3, -1, boom, boom, 0},
		{"input fails after a statement", 1500, -1, boom, boom, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &sortInput{fields: fs, batches: inBatches(evalRows(tt.rows), 10), err: tt.inputErr}
			x := newEvalExec(nil)
			ok := echo(fs)
			x.answer = func(n int, q Query) *script {
				if n == tt.shardFails {
					return &script{Fields: fs, Stop: stopFail, Err: boom}
				}
				return ok(n, q)
			}
			_, _, err := runEval(t, &Evaluate{Input: in, Exprs: []string{"", ""}}, x)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if qs := x.Queries(); len(qs) != tt.statements {
				t.Errorf("%d statements, want %d", len(qs), tt.statements)
			}
			if tt.shardFails >= 0 && tt.rows > evaluateBatchRows && in.emitErr == nil {
				t.Errorf("the input was read to its end")
			}
		})
	}
}

// TestEvaluateCancel proves cancelling the statement while the shard
// evaluates ends it with the context's error: the shard's query returns,
// no further statement runs, and the input stops being read.
func TestEvaluateCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, n := range []int{3, 2500} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			fs := []Field{evalField("k", oidInt8, -1), evalField("v", oidText, -1)}
			in := &sortInput{fields: fs, batches: inBatches(evalRows(n), 10)}
			// The shard sends one row, then waits for the end of the world.
			x := newEvalExec(map[string]*script{"s0": {Fields: fs, Rows: evalRows(1), Stop: stopBlock, StopAfter: 1}})
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			c := &collector{onRows: func(*Batch) error { cancel(); return nil }}
			_, err := (&Evaluate{Input: in, Exprs: []string{"", ""}}).Stream(ctx, x, nil, c.emit)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("error %v, want context.Canceled", err)
			}
			if done, err := x.Returned("s0"); !done || !errors.Is(err, context.Canceled) {
				t.Errorf("the shard's query returned %v (%v)", done, err)
			}
			if qs := x.Queries(); len(qs) != 1 {
				t.Errorf("%d statements, want 1", len(qs))
			}
			if n > evaluateBatchRows && (in.emitErr == nil || in.emitted >= n) {
				t.Errorf("the input was read to its end")
			}
		})
	}
}

// TestEvaluateCollations proves values read by the expressions get back
// the collation the shards named (passing them as text loses it), none
// when it is the default or the type has none, and a name that is no
// identifier is a broken shard.
func TestEvaluateCollations(t *testing.T) {
	defer goleak.VerifyNone(t)
	fields := []Field{evalField("?column?", oidBool, -1), evalField("max", oidText, -1), evalField("c", oidText, -1),
		evalField("n", oidInt8, -1), evalField("c", oidText, -1)}
	for _, tc := range []struct {
		name, collation, want string
		fails                 bool
	}{
		{"explicit", `"C"`, ` COLLATE "C"`, false},
		{"schema-qualified", `public.mine`, ` COLLATE public.mine`, false},
		{"default", `"default"`, "", false},
		{"broken", `"C"; drop table t`, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &sortInput{fields: fields, batches: [][][][]byte{{row("NULL", "b", tc.collation, "1", "NULL")}}}
			x := newEvalExec(map[string]*script{"s0": {Fields: fields[:1], Rows: [][][]byte{row("t")}}})
			e := &Evaluate{Input: in, Exprs: []string{`sg_v.sg_2 < 'c' AS "?column?"`}, Collations: map[int]int{1: 2, 3: 4}}
			_, _, err := runEval(t, e, x)
			if tc.fails {
				wantCode(t, err, CodeInternal)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			qs := x.Queries()
			want := `unnest($1::pg_catalog.bool[], $2::pg_catalog.text[]` + tc.want + `, $3::pg_catalog.text[], $4::pg_catalog.int8[], $5::pg_catalog.text[])`
			if len(qs) != 1 || !strings.Contains(qs[0].SQL, want) {
				t.Errorf("statements %+v, want one with %s", qs, want)
			}
		})
	}
}
