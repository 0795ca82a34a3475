package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// sortInput is a Primitive that emits Fields, then each of batches, then
// n more rows of repeat (when repeat is set) and returns tag or err. It
// records the error emit returned, if any.
type sortInput struct {
	fields  []Field
	batches [][][][]byte
	repeat  [][]byte
	n       int
	tag     Tag
	err     error

	emitErr error
	emitted int
}

func (s *sortInput) Inputs() []Primitive { return nil }
func (s *sortInput) Describe() string    { return "sortInput" }
func (s *sortInput) Stream(_ context.Context, _ Executor, _ Params, emit func(*Batch) error) (Tag, error) {
	if err := emit(&Batch{Fields: slices.Clone(s.fields)}); err != nil {
		s.emitErr = err
		return "", err
	}
	for _, b := range s.batches {
		rows := cloneRows(b)
		err := emit(&Batch{Rows: rows})
		scribble(&Batch{Rows: rows})
		if err != nil {
			s.emitErr = err
			return "", err
		}
		s.emitted += len(b)
	}
	for i := 0; i < s.n; i++ {
		if err := emit(&Batch{Rows: [][][]byte{s.repeat}}); err != nil {
			s.emitErr = err
			return "", err
		}
		s.emitted++
	}
	if s.err != nil {
		return "", s.err
	}
	return s.tag, nil
}

func runSort(t *testing.T, s *Sort) (*collector, Tag, error) {
	t.Helper()
	c := &collector{}
	tag, err := s.Stream(testCtx(t), newFake(newTopo(), nil), nil, c.emit)
	if c.badOrder {
		t.Errorf("rows before Fields")
	}
	return c, tag, err
}

// TestSortOrders proves Sort orders every row by output-column keys,
// DESC and NULLS FIRST or LAST, numerically for integers and in byte
// order for text under C, and takes the hidden columns away.
func TestSortOrders(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("label", oidText, 0), typedField("n", oidInt8, 0), typedField("coll", oidText, 0)}
	batches := [][][][]byte{
		{row("b", "2", "C"), row("a", "10", "C"), row("c", "NULL", "C")},
		{row("B", "2", "C"), row("d", "-1", "C")},
		{row("e", "NULL", "C"), row("a2", "2", "C")},
	}
	tests := []struct {
		name string
		keys []SortKey
		want []string
	}{
		{"n DESC NULLS FIRST, label",
			[]SortKey{{Ordinal: 2, Collation: -1, Desc: true, NullsFirst: true, Text: "n"}, {Ordinal: 1, Collation: 0, Text: "label"}},
			[]string{"c|NULL", "e|NULL", "a|10", "B|2", "a2|2", "b|2", "d|-1"}},
		{"n DESC NULLS LAST, label DESC",
			[]SortKey{{Ordinal: 2, Collation: -1, Desc: true, Text: "n"}, {Ordinal: 1, Collation: 0, Desc: true, Text: "label"}},
			[]string{"a|10", "b|2", "a2|2", "B|2", "d|-1", "e|NULL", "c|NULL"}},
		{"n NULLS FIRST, label",
			[]SortKey{{Ordinal: 2, Collation: -1, NullsFirst: true, Text: "n"}, {Ordinal: 1, Collation: 0, Text: "label"}},
			[]string{"c|NULL", "e|NULL", "d|-1", "B|2", "a2|2", "b|2", "a|10"}},
		{"label under C",
			[]SortKey{{Ordinal: 1, Collation: 0, Text: "label"}},
			[]string{"B|2", "a|10", "a2|2", "b|2", "c|NULL", "d|-1", "e|NULL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &sortInput{fields: fs, batches: batches, tag: "SELECT 7"}
			c, tag, err := runSort(t, &Sort{Input: in, Keys: tt.keys, Hidden: 1})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.values(); !slices.Equal(got, tt.want) {
				t.Errorf("rows\n%q, want\n%q", got, tt.want)
			}
			if tag != "SELECT 7" {
				t.Errorf("tag %q, want SELECT 7", tag)
			}
			wantVisibleFields(t, c, fs[:2])
		})
	}
}

// TestSortOverScatter proves Sort orders rows that arrive from several
// shards in any order.
func TestSortOverScatter(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("label", oidText, 0), typedField("n", oidInt8, 0)}
	target, shards := mergeTarget(t, 3)
	scripts := map[string]*script{}
	for i, s := range shards {
		scripts[s] = &script{Fields: fs, Rows: [][][]byte{row(s+"a", string(rune('1'+i))), row(s+"b", string(rune('4'+i)))}, Tag: "SELECT 2"}
	}
	x := newFake(newTopo(), scripts)
	c := &collector{}
	s := &Sort{Input: &Scatter{Target: target, Query: Query{SQL: "SELECT label, n FROM t"}},
		Keys: []SortKey{{Ordinal: 2, Collation: -1, Desc: true, Text: "n"}}}
	tag, err := s.Stream(testCtx(t), x, nil, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"s3b|6", "s1b|5", "s0b|4", "s3a|3", "s1a|2", "s0a|1"}
	if got := c.values(); !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
	if tag != "SELECT 6" {
		t.Errorf("tag %q, want SELECT 6", tag)
	}
	wantVisibleFields(t, c, fs)
}

// TestSortNoRows proves Sort over no rows sends the Fields and no rows.
func TestSortNoRows(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("n", oidInt8, 0)}
	c, tag, err := runSort(t, &Sort{Input: &sortInput{fields: fs, tag: "SELECT 0"}, Keys: []SortKey{{Ordinal: 1, Collation: -1, Text: "n"}}})
	if err != nil {
		t.Fatal(err)
	}
	if c.rowsN != 0 || tag != "SELECT 0" {
		t.Errorf("rows %q tag %q", c.values(), tag)
	}
	wantVisibleFields(t, c, fs)
}

// TestSortCollationRefused proves text keys under a collation that is not
// byte order, or an unknown one, are refused with 0A000 and no rows.
func TestSortCollationRefused(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("label", oidText, 0), typedField("coll", oidText, 0)}
	for _, tt := range []struct {
		name  string
		coll  int
		name2 string
	}{{"und-x-icu", 0, "und-x-icu"}, {"en_US", 0, "en_US.UTF-8"}, {"unknown", -1, "C"}} {
		t.Run(tt.name, func(t *testing.T) {
			in := &sortInput{fields: fs, batches: [][][][]byte{{row("b", tt.name2), row("a", tt.name2)}}, tag: "SELECT 2"}
			c, _, err := runSort(t, &Sort{Input: in, Keys: []SortKey{{Ordinal: 1, Collation: tt.coll, Text: "label"}}, Hidden: 1})
			wantCode(t, err, CodeFeatureNotSupported)
			if c.rowsN != 0 {
				t.Errorf("client got %d rows", c.rowsN)
			}
		})
	}
}

// TestSortInputError proves an error of the input passes through as it is.
func TestSortInputError(t *testing.T) {
	defer goleak.VerifyNone(t)
	boom := &shardError{code: "57014"}
	in := &sortInput{fields: []Field{typedField("n", oidInt8, 0)}, batches: [][][][]byte{{row("1"), row("2")}}, err: boom}
	c, _, err := runSort(t, &Sort{Input: in, Keys: []SortKey{{Ordinal: 1, Collation: -1, Text: "n"}}})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
	if c.rowsN != 0 {
		t.Errorf("client got %d rows", c.rowsN)
	}
}

// TestSortUnreadableKey proves a key value Sort cannot read fails the
// statement with XX000.
func TestSortUnreadableKey(t *testing.T) {
	defer goleak.VerifyNone(t)
	in := &sortInput{fields: []Field{typedField("n", oidInt8, 0)}, batches: [][][][]byte{{row("1"), row("x"), row("2")}}}
	c, _, err := runSort(t, &Sort{Input: in, Keys: []SortKey{{Ordinal: 1, Collation: -1, Text: "n"}}})
	wantCode(t, err, CodeInternal)
	if c.rowsN != 0 {
		t.Errorf("client got %d rows", c.rowsN)
	}
}

// runSortWith runs s with the session's settings.
func runSortWith(t *testing.T, s *Sort, settings sessionSettings) (*collector, Tag, error) {
	t.Helper()
	c := &collector{}
	tag, err := s.Stream(testCtx(t), distinctExec{newFake(newTopo(), nil), settings}, nil, c.emit)
	if c.badOrder {
		t.Errorf("rows before Fields")
	}
	return c, tag, err
}

// TestSortMemoryLimit proves Sort fails with 53200 once the rows it holds
// pass the session's shardgate.query_memory, and stops reading its input
// there.
func TestSortMemoryLimit(t *testing.T) {
	defer goleak.VerifyNone(t)
	const limit, size = 1 << 20, 64 << 10
	big := make([]byte, size)
	in := &sortInput{fields: []Field{typedField("n", oidInt8, 0), typedField("pad", oidBytea, 0)},
		repeat: [][]byte{[]byte("1"), big}, n: limit/size + 10, tag: "SELECT"}
	c, _, err := runSortWith(t, &Sort{Input: in, Keys: []SortKey{{Ordinal: 1, Collation: -1, Text: "n"}}}, sessionSettings{"shardgate.query_memory": "1MB"})
	e := wantCode(t, err, "53200")
	if want := "out of memory: sorting the combined groups of a statement across shards takes more than 1 MiB in the gateway"; e.Message != want {
		t.Errorf("message %q, want %q", e.Message, want)
	}
	if !strings.Contains(e.Hint, "SET shardgate.query_memory") {
		t.Errorf("hint %q does not name the setting", e.Hint)
	}
	if in.emitErr == nil {
		t.Errorf("the input's emit never failed")
	}
	if in.emitted > limit/size {
		t.Errorf("the input emitted %d rows of %d bytes, past the limit of %d bytes", in.emitted, size, limit)
	}
	if c.rowsN != 0 {
		t.Errorf("client got %d rows", c.rowsN)
	}
}

// TestSortBelowMemoryLimit proves rows just under the limit sort.
func TestSortBelowMemoryLimit(t *testing.T) {
	defer goleak.VerifyNone(t)
	const limit, size = 1 << 20, 64 << 10
	big := make([]byte, size-64)
	in := &sortInput{fields: []Field{typedField("n", oidInt8, 0), typedField("pad", oidBytea, 0)},
		repeat: [][]byte{[]byte("1"), big}, n: limit/size - 1, tag: "SELECT"}
	c, _, err := runSortWith(t, &Sort{Input: in, Keys: []SortKey{{Ordinal: 1, Collation: -1, Text: "n"}}}, sessionSettings{"shardgate.query_memory": "1024"})
	if err != nil {
		t.Fatal(err)
	}
	if c.rowsN != limit/size-1 {
		t.Errorf("client got %d rows, want %d", c.rowsN, limit/size-1)
	}
}

// TestSortBadMemorySetting proves a malformed shardgate.query_memory
// fails the statement with 22023 before the input runs.
func TestSortBadMemorySetting(t *testing.T) {
	defer goleak.VerifyNone(t)
	in := &sortInput{fields: []Field{typedField("n", oidInt8, 0)}, batches: [][][][]byte{{row("1")}}}
	c, _, err := runSortWith(t, &Sort{Input: in, Keys: []SortKey{{Ordinal: 1, Collation: -1, Text: "n"}}}, sessionSettings{"shardgate.query_memory": "1 mb"})
	wantCode(t, err, codeInvalidParameterValue)
	if len(c.batches) != 0 || in.emitted != 0 {
		t.Errorf("client got %+v, the input emitted %d rows", c.batches, in.emitted)
	}
}
