package engine

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// The expected values in this file are PostgreSQL 15.18's (initdb
// --locale=C), as psql -At prints them in text and as
// encode(array_send(...), 'hex') shows them in binary; each test names
// the statement it took them from.

// Array type OIDs, as in Postgres's pg_type.dat.
const (
	oidInt4Array  = 1007
	oidTextArray  = 1009
	oidInt8Array  = 1016
	oidBoxArray   = 1020
	oidInetArray  = 1041
	oidByteaArray = 1001
)

// textElems are the text elements of an array, "NULL" for SQL NULL.
func textElems(vals ...string) [][]byte {
	out := make([][]byte, len(vals))
	for i, v := range vals {
		if v != "NULL" {
			out[i] = []byte(v)
		}
	}
	return out
}

// hexRow builds a row of binary values from hex, "NULL" for SQL NULL.
func hexRow(t *testing.T, vals ...string) [][]byte {
	t.Helper()
	r := make([][]byte, len(vals))
	for i, v := range vals {
		if v != "NULL" {
			r[i] = unhex(t, v)
		}
	}
	return r
}

// sameElems compares split elements, NULL (nil) apart from empty.
func sameElems(got, want [][]byte) bool {
	return slices.EqualFunc(got, want, func(a, b []byte) bool {
		return (a == nil) == (b == nil) && bytes.Equal(a, b)
	})
}

// showElems prints elements for messages, NULL for nil.
func showElems(es [][]byte) []string {
	out := make([]string, len(es))
	for i, e := range es {
		if e == nil {
			out[i] = "NULL"
		} else {
			out[i] = string(e)
		}
	}
	return out
}

// TestSplitArrayText proves splitArray reads array_out's text: each
// element de-quoted and unescaped, NULL apart from the string "NULL" and
// from the empty string, and each raw token as array_out wrote it.
func TestSplitArrayText(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		elems [][]byte
		raw   []string
	}{
		// SELECT ARRAY[1, -2, 9223372036854775807]::int8[]
		{"int8", `{1,-2,9223372036854775807}`,
			textElems("1", "-2", "9223372036854775807"),
			[]string{"1", "-2", "9223372036854775807"}},
		// SELECT ARRAY['a"b', 'c\d', 'e,f', '{g}', 'h i', '', NULL, 'NULL',
		// 'null', 'plain', ' lead', 'x}y']::text[]
		{"quoted text", `{"a\"b","c\\d","e,f","{g}","h i","",NULL,"NULL","null",plain," lead","x}y"}`,
			[][]byte{[]byte(`a"b`), []byte(`c\d`), []byte("e,f"), []byte("{g}"), []byte("h i"), {}, nil,
				[]byte("NULL"), []byte("null"), []byte("plain"), []byte(" lead"), []byte("x}y")},
			[]string{`"a\"b"`, `"c\\d"`, `"e,f"`, `"{g}"`, `"h i"`, `""`, "NULL", `"NULL"`, `"null"`, "plain", `" lead"`, `"x}y"`}},
		// SELECT ARRAY[''::text]
		{"one empty string", `{""}`, [][]byte{{}}, []string{`""`}},
		// SELECT ARRAY[NULL, NULL]::int4[]
		{"NULLs", `{NULL,NULL}`, [][]byte{nil, nil}, []string{"NULL", "NULL"}},
		// array_in reads NULL in any case; array_out writes NULL.
		{"null in lower case", `{null,1}`, [][]byte{nil, []byte("1")}, []string{"null", "1"}},
		// SELECT ARRAY['\x00ff'::bytea, NULL]
		{"bytea", `{"\\x00ff",NULL}`, [][]byte{[]byte(`\x00ff`), nil}, []string{`"\\x00ff"`, "NULL"}},
		// SELECT ARRAY['2020-01-02 03:04:05+00'::timestamptz]
		{"timestamptz", `{"2020-01-02 03:04:05+00"}`, textElems("2020-01-02 03:04:05+00"), []string{`"2020-01-02 03:04:05+00"`}},
		// SELECT ARRAY['{"a": [1, "x,y"]}'::jsonb, 'null'::jsonb]
		{"jsonb", `{"{\"a\": [1, \"x,y\"]}","null"}`,
			textElems(`{"a": [1, "x,y"]}`, "null"), []string{`"{\"a\": [1, \"x,y\"]}"`, `"null"`}},
		// SELECT '{}'::int4[]
		{"empty", `{}`, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, ok := splitArray([]byte(tt.in), 0)
			if !ok {
				t.Fatalf("splitArray(%s) refused it", tt.in)
			}
			if !sameElems(a.elems, tt.elems) {
				t.Errorf("elements %q, want %q", showElems(a.elems), showElems(tt.elems))
			}
			raw := make([]string, len(a.raw))
			for i, r := range a.raw {
				raw[i] = string(r)
			}
			if !slices.Equal(raw, tt.raw) {
				t.Errorf("raw %q, want %q", raw, tt.raw)
			}
			// The raw tokens written back are the array itself.
			oes := make([]orderedElement, len(a.elems))
			for i := range a.elems {
				oes[i] = orderedElement{elem: a.elems[i], raw: a.raw[i]}
			}
			if got := buildArray(oes, 0, 0); string(got) != tt.in {
				t.Errorf("buildArray = %s, want %s", got, tt.in)
			}
		})
	}
}

// TestSplitArrayBinary proves splitArray reads array_send's format: the
// element type from the header, each element's bytes, NULLs (-1) apart
// from empty elements; and that buildArray writes the same bytes back.
func TestSplitArrayBinary(t *testing.T) {
	tests := []struct {
		name  string
		hex   string
		oid   uint32
		elems [][]byte
	}{
		// SELECT encode(array_send(ARRAY[1, -2, 9223372036854775807]::int8[]), 'hex')
		{"int8", "000000010000000000000014000000030000000100000008000000000000000100000008fffffffffffffffe000000087fffffffffffffff",
			oidInt8, [][]byte{bin(1), bin(-2), bin(9223372036854775807)}},
		// The text[] of TestSplitArrayText.
		{"text with NULL", "0000000100000001000000190000000c000000010000000361226200000003635c6400000003652c66000000037b677d0000000368206900000000ffffffff000000044e554c4c000000046e756c6c00000005706c61696e00000005206c65616400000003787d79",
			oidText, [][]byte{[]byte(`a"b`), []byte(`c\d`), []byte("e,f"), []byte("{g}"), []byte("h i"), {}, nil,
				[]byte("NULL"), []byte("null"), []byte("plain"), []byte(" lead"), []byte("x}y")}},
		// SELECT encode(array_send(ARRAY[''::text]), 'hex')
		{"one empty string", "000000010000000000000019000000010000000100000000", oidText, [][]byte{{}}},
		// SELECT encode(array_send(ARRAY[NULL, NULL]::int4[]), 'hex')
		{"NULLs", "0000000100000001000000170000000200000001ffffffffffffffff", oidInt4, [][]byte{nil, nil}},
		// SELECT encode(array_send(ARRAY['\x00ff'::bytea, NULL]), 'hex')
		{"bytea", "00000001000000010000001100000002000000010000000200ffffffffff", oidBytea, [][]byte{{0x00, 0xff}, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := unhex(t, tt.hex)
			a, ok := splitArray(in, 1)
			if !ok {
				t.Fatalf("splitArray refused %s", tt.hex)
			}
			if a.oid != tt.oid {
				t.Errorf("element type %d, want %d", a.oid, tt.oid)
			}
			if !sameElems(a.elems, tt.elems) {
				t.Errorf("elements %q, want %q", showElems(a.elems), showElems(tt.elems))
			}
			oes := make([]orderedElement, len(a.elems))
			for i := range a.elems {
				oes[i] = orderedElement{elem: a.elems[i]}
			}
			if got := buildArray(oes, 1, a.oid); !bytes.Equal(got, in) {
				t.Errorf("buildArray = %x, want %s", got, tt.hex)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		// SELECT encode(array_send('{}'::int4[]), 'hex')
		a, ok := splitArray(unhex(t, "000000000000000000000017"), 1)
		if !ok || len(a.elems) != 0 || a.oid != oidInt4 {
			t.Errorf("splitArray = %+v, %v; want no elements of type int4", a, ok)
		}
	})
}

// TestSplitArrayRefused proves splitArray refuses what is not a
// one-dimensional array in the format it was told.
func TestSplitArrayRefused(t *testing.T) {
	for _, in := range []string{
		`{{1,2},{3,4}}`, // SELECT ARRAY[[1,2],[3,4]]::int4[]
		`{1,{2}}`,
		`[0:1]={1,2}`, // SELECT '[0:1]={1,2}'::int4[]
		``, `{`, `}`, `1,2`, `{1,2`, `1,2}`,
		`{"a}`, `{"a\"}`, `{"a"b}`, `{"a""b"}`, `{"a" ,b}`,
	} {
		if a, ok := splitArray([]byte(in), 0); ok {
			t.Errorf("splitArray(%q) = %q, want a refusal", in, showElems(a.elems))
		}
	}
	for _, h := range []string{
		"",
		"0000000100000000000000",     // 11 bytes
		"00000000000000000000001700", // no dimensions, a byte more
		// SELECT encode(array_send(ARRAY[[1,2],[3,4]]::int4[]), 'hex')
		"000000020000000000000017000000020000000100000002000000010000000400000001000000040000000200000004000000030000000400000004",
		"00000001000000000000001400000001",                                   // no lower bound
		"0000000100000000000000140000000200000001000000080000000000000001",   // one element of two
		"00000001000000000000001400000001000000010000000800000000000000",     // an element cut short
		"0000000100000000000000140000000100000001000000080000000000000001ff", // a byte too many
		"000000010000000000000014000000010000000100000008",                   // a length, no bytes
		"000000010000000000000014000000010000000100",                         // half a length
	} {
		if a, ok := splitArray(unhex(t, h), 1); ok {
			t.Errorf("splitArray(%s) = %q, want a refusal", h, showElems(a.elems))
		}
	}
}

// freshInput is a Primitive that emits Fields, then each of batches in
// fresh memory that it never touches again, and returns "SELECT n".
type freshInput struct {
	fields  []Field
	batches [][][][]byte
}

func (s *freshInput) Inputs() []Primitive { return nil }
func (s *freshInput) Describe() string    { return "freshInput" }
func (s *freshInput) Stream(_ context.Context, _ Executor, _ Params, emit func(*Batch) error) (Tag, error) {
	if err := emit(&Batch{Fields: slices.Clone(s.fields)}); err != nil {
		return "", err
	}
	n := 0
	for _, b := range s.batches {
		if err := emit(&Batch{Rows: cloneRows(b)}); err != nil {
			return "", err
		}
		n += len(b)
	}
	return Tag("SELECT " + strconv.Itoa(n)), nil
}

// runOrdered runs a over batches from a freshInput.
func runOrdered(t *testing.T, a *Aggregate, fs []Field, batches ...[][][]byte) (*collector, Tag, error) {
	t.Helper()
	a.Input = &freshInput{fields: fs, batches: batches}
	return runAgg(t, a, nil)
}

// arrayAggCase is array_agg(x ORDER BY two keys) over the rows of table
//
//	CREATE TABLE a (shard text, x int8, k1 int4, k2 text);
//	INSERT INTO a VALUES
//	 ('A', 10, 5, 'b'), ('A', 11, 5, 'a'), ('A', 12, NULL, 'a'), ('A', 13, 3, NULL), ('A', NULL, 7, 'z'), ('A', 14, 3, 'c'),
//	 ('B', 20, 5, 'ab'), ('B', 21, 7, 'A'), ('B', 22, NULL, NULL), ('B', 14, 3, 'c'), ('B', 24, 3, 'b'), ('B', -25, -1, 'a'), ('B', 26, NULL, 'b'),
//	 ('B', 9223372036854775807, 5, 'B');
//
// on shards A and B, and none on shard C: keys tie across shards (broken
// by the second key, or with equal elements: (14, 3, 'c') is on both),
// keys and elements are NULL. Each shard's row is its partial, then the
// hidden array of each key with the key's collation, as the planner asks
// for them: array_agg(x ORDER BY <order>), array_agg(<key> ORDER BY
// <order>), its collation, ... WHERE shard = '<shard>'.
type arrayAggCase struct {
	name  string
	order string
	// keyOIDs are the array types of the hidden key columns.
	keyOIDs  []uint32
	keys     []SortKey
	text     [3][]string // shards A, B, C, "NULL" for NULL
	hex      [3][]string
	wantText string
	wantHex  string
}

var arrayAggCases = []arrayAggCase{{
	name:    "k1 DESC NULLS LAST, k2",
	order:   "k1 DESC NULLS LAST, k2",
	keyOIDs: []uint32{oidInt4Array, oidTextArray},
	keys: []SortKey{
		{Hidden: 0, Collation: 1, Desc: true, NullsFirst: false, Text: "k1"},
		{Hidden: 2, Collation: 3, Text: "k2"},
	},
	text: [3][]string{
		{"{NULL,11,10,14,13,12}", "{7,5,5,3,3,NULL}", "C", "{z,a,b,c,NULL,a}", "C"},
		{"{21,9223372036854775807,20,24,14,-25,26,22}", "{7,5,5,3,3,-1,NULL,NULL}", "C", "{A,B,ab,b,c,a,b,NULL}", "C"},
		{"NULL", "NULL", "C", "NULL", "C"},
	},
	hex: [3][]string{
		{"0000000100000001000000140000000600000001ffffffff00000008000000000000000b00000008000000000000000a00000008000000000000000e00000008000000000000000d00000008000000000000000c",
			"000000010000000100000017000000060000000100000004000000070000000400000005000000040000000500000004000000030000000400000003ffffffff", "43",
			"0000000100000001000000190000000600000001000000017a000000016100000001620000000163ffffffff0000000161", "43"},
		{"0000000100000000000000140000000800000001000000080000000000000015000000087fffffffffffffff00000008000000000000001400000008000000000000001800000008000000000000000e00000008ffffffffffffffe700000008000000000000001a000000080000000000000016",
			"00000001000000010000001700000008000000010000000400000007000000040000000500000004000000050000000400000003000000040000000300000004ffffffffffffffffffffffff", "43",
			"0000000100000001000000190000000800000001000000014100000001420000000261620000000162000000016300000001610000000162ffffffff", "43"},
		{"NULL", "NULL", "43", "NULL", "43"},
	},
	wantText: "{21,NULL,9223372036854775807,11,20,10,24,14,14,13,-25,12,26,22}",
	wantHex:  "0000000100000001000000140000000e00000001000000080000000000000015ffffffff000000087fffffffffffffff00000008000000000000000b00000008000000000000001400000008000000000000000a00000008000000000000001800000008000000000000000e00000008000000000000000e00000008000000000000000d00000008ffffffffffffffe700000008000000000000000c00000008000000000000001a000000080000000000000016",
}, {
	name:    "k2 DESC, k1 NULLS FIRST",
	order:   "k2 DESC, k1 NULLS FIRST",
	keyOIDs: []uint32{oidTextArray, oidInt4Array},
	keys: []SortKey{
		{Hidden: 0, Collation: 1, Desc: true, NullsFirst: true, Text: "k2"},
		{Hidden: 2, Collation: 3, NullsFirst: true, Text: "k1"},
	},
	text: [3][]string{
		{"{13,NULL,14,10,12,11}", "{NULL,z,c,b,a,a}", "C", "{3,7,3,5,NULL,5}", "C"},
		{"{22,14,26,24,20,-25,9223372036854775807,21}", "{NULL,c,b,b,ab,a,B,A}", "C", "{NULL,3,NULL,3,5,-1,5,7}", "C"},
		{"NULL", "NULL", "C", "NULL", "C"},
	},
	hex: [3][]string{
		{"000000010000000100000014000000060000000100000008000000000000000dffffffff00000008000000000000000e00000008000000000000000a00000008000000000000000c00000008000000000000000b",
			"0000000100000001000000190000000600000001ffffffff000000017a0000000163000000016200000001610000000161", "43",
			"00000001000000010000001700000006000000010000000400000003000000040000000700000004000000030000000400000005ffffffff0000000400000005", "43"},
		{"000000010000000000000014000000080000000100000008000000000000001600000008000000000000000e00000008000000000000001a00000008000000000000001800000008000000000000001400000008ffffffffffffffe7000000087fffffffffffffff000000080000000000000015",
			"0000000100000001000000190000000800000001ffffffff000000016300000001620000000162000000026162000000016100000001420000000141", "43",
			"0000000100000001000000170000000800000001ffffffff0000000400000003ffffffff0000000400000003000000040000000500000004ffffffff00000004000000050000000400000007", "43"},
		{"NULL", "NULL", "43", "NULL", "43"},
	},
	wantText: "{22,13,NULL,14,14,26,24,10,20,12,-25,11,9223372036854775807,21}",
	wantHex:  "0000000100000001000000140000000e0000000100000008000000000000001600000008000000000000000dffffffff00000008000000000000000e00000008000000000000000e00000008000000000000001a00000008000000000000001800000008000000000000000a00000008000000000000001400000008000000000000000c00000008ffffffffffffffe700000008000000000000000b000000087fffffffffffffff000000080000000000000015",
}}

// arrayAggRun is one way to send a case's partials: the partial's format,
// the hidden columns' format, and the shards in the order they answer.
type arrayAggRun struct {
	name           string
	format, hidden int16
	shards         []int
}

var arrayAggRuns = []arrayAggRun{
	{"text", 0, 0, []int{0, 1, 2}},
	{"text, shards in another order", 0, 0, []int{2, 1, 0}},
	{"binary", 1, 1, []int{0, 1, 2}},
	{"binary, shards in another order", 1, 1, []int{1, 2, 0}},
	{"binary partial, text hidden columns", 1, 0, []int{0, 1, 2}},
}

// fields are the shards' columns of c sent as r says.
func (c arrayAggCase) fields(r arrayAggRun) []Field {
	fs := []Field{typedField("array_agg", oidInt8Array, r.format)}
	for _, oid := range c.keyOIDs {
		fs = append(fs, typedField("sg_order_key", oid, r.hidden), typedField("sg_order_collation", oidText, r.hidden))
	}
	return fs
}

// row is shard i's partial row sent as r says.
func (c arrayAggCase) row(t *testing.T, i int, r arrayAggRun) [][]byte {
	t.Helper()
	var out [][]byte
	for j := range c.text[i] {
		if j == 0 && r.format == 1 || j > 0 && r.hidden == 1 {
			out = append(out, hexRow(t, c.hex[i][j])...)
		} else {
			out = append(out, row(c.text[i][j])...)
		}
	}
	return out
}

// want is Postgres's array_agg in r's format.
func (c arrayAggCase) want(t *testing.T, r arrayAggRun) string {
	if r.format == 1 {
		return string(unhex(t, c.wantHex))
	}
	return c.wantText
}

// column is c's output column.
func (c arrayAggCase) column() AggregateColumn {
	return AggregateColumn{Func: AggArrayAgg, Order: c.keys, Text: "array_agg(x ORDER BY " + c.order + ")"}
}

// TestAggregateArrayAgg proves array_agg(x ORDER BY ...) without GROUP BY
// merges three shards' partials (one shard without rows: NULL partials)
// by the hidden key arrays into Postgres's
//
//	SELECT array_agg(x ORDER BY <order>) FROM a
//
// over all the rows, byte for byte in text and in binary: DESC, NULLS
// FIRST and LAST, ties on the first key broken by the second, text keys
// in byte order under C, NULL elements (with array_send's has-nulls flag
// set though no partial of shard B had one), whichever shard answers
// first.
func TestAggregateArrayAgg(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, c := range arrayAggCases {
		for _, r := range arrayAggRuns {
			t.Run(c.name+"/"+r.name, func(t *testing.T) {
				fs := c.fields(r)
				var batches [][][][]byte
				for _, i := range r.shards {
					batches = append(batches, [][][]byte{c.row(t, i, r)})
				}
				a := &Aggregate{Columns: []AggregateColumn{c.column()}, Hidden: len(fs) - 1}
				col, tag, err := runOrdered(t, a, fs, batches...)
				if err != nil {
					t.Fatal(err)
				}
				wantVisibleFields(t, col, fs[:1])
				if tag != "SELECT 1" {
					t.Errorf("tag %q, want SELECT 1", tag)
				}
				got, want := col.values(), c.want(t, r)
				if !slices.Equal(got, []string{want}) {
					if r.format == 1 {
						t.Errorf("array_agg = %x, want %s", got, c.wantHex)
					} else {
						t.Errorf("array_agg = %q, want %q", got, want)
					}
				}
			})
		}
	}
}

// TestAggregateArrayAggNoRows proves array_agg over shards without rows,
// each sending NULL partials, is NULL, as Postgres's is over no rows.
func TestAggregateArrayAggNoRows(t *testing.T) {
	defer goleak.VerifyNone(t)
	c, r := arrayAggCases[0], arrayAggRuns[2]
	fs := c.fields(r)
	empty := c.row(t, 2, r)
	a := &Aggregate{Columns: []AggregateColumn{c.column()}, Hidden: len(fs) - 1}
	col, _, err := runOrdered(t, a, fs, [][][]byte{empty}, [][][]byte{empty})
	if err != nil {
		t.Fatal(err)
	}
	if got := col.values(); !slices.Equal(got, []string{"NULL"}) {
		t.Errorf("array_agg = %q, want NULL", got)
	}
}

// TestAggregateArrayAggUnordered proves array_agg(x) without ORDER BY
// puts the shards' elements one after another, in the order the shards
// answered, which is an order Postgres could give too.
func TestAggregateArrayAggUnordered(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("array_agg", oidTextArray, 0)}
	a := &Aggregate{Columns: []AggregateColumn{{Func: AggArrayAgg, Text: "array_agg(s)"}}}
	col, _, err := runOrdered(t, a, fs, [][][]byte{row(`{b,"a b",NULL}`)}, [][][]byte{row("NULL")}, [][][]byte{row(`{"NULL",""}`)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := col.values(), []string{`{b,"a b",NULL,"NULL",""}`}; !slices.Equal(got, want) {
		t.Errorf("array_agg = %q, want %q", got, want)
	}
}

// stringAggFields are the shards' columns of
//
//	SELECT string_agg(x, ',' ORDER BY k), string_agg(x, NULL ORDER BY k)
//
// partials in format, hidden columns in hidden: each aggregate's array of
// k, its collation and its array of elements.
func stringAggFields(format, hidden int16) []Field {
	fs := []Field{typedField("string_agg", oidText, format), typedField("string_agg", oidText, format)}
	for range 2 {
		fs = append(fs, typedField("sg_order_key", oidInt4Array, hidden), typedField("sg_order_collation", oidText, hidden),
			typedField("sg_elements", oidTextArray, hidden))
	}
	return fs
}

func stringAggColumns() []AggregateColumn {
	comma := ","
	return []AggregateColumn{
		{Func: AggStringAgg, Order: []SortKey{{Hidden: 0, Collation: 1, Text: "k"}}, Elements: 2, Delimiter: &comma,
			Text: "string_agg(x, ',' ORDER BY k)"},
		{Func: AggStringAgg, Order: []SortKey{{Hidden: 3, Collation: 4, Text: "k"}}, Elements: 5,
			Text: "string_agg(x, NULL ORDER BY k)"},
	}
}

// The rows of string_agg's tests are those of
//
//	CREATE TABLE s (shard text, g text, x text, k int4);
//	INSERT INTO s VALUES
//	 ('A', 'g1', 'a,b', 3), ('A', 'g1', NULL, 1), ('A', 'g1', '', 5),
//	 ('B', 'g1', 'q"x', 2), ('B', 'g1', 'NULL', 4), ('B', 'g1', 'c\d', 6), ('B', 'g1', NULL, 0),
//	 ('A', 'g0', NULL, 1), ('B', 'g0', NULL, 2),
//	 ('B', 'g2', 'u', 10), ('B', 'g2', 'w', 30), ('C', 'g2', 'v', 20), ('C', 'g2', NULL, 25), ('C', 'g2', 'z', -5);

// TestAggregateStringAgg proves string_agg without GROUP BY merges the
// shards' hidden element arrays by the hidden key arrays into Postgres's
//
//	SELECT string_agg(x, ',' ORDER BY k), string_agg(x, NULL ORDER BY k) FROM s WHERE g = '<g>'
//
// skipping NULL elements, keeping empty ones and the string "NULL", with
// the delimiter between elements of different shards, none for a NULL
// delimiter, and NULL when every element is NULL.
func TestAggregateStringAgg(t *testing.T) {
	defer goleak.VerifyNone(t)
	// array_agg(k ORDER BY k), 'C', array_agg(x ORDER BY k) ... WHERE g = 'g1' AND shard = ...
	g1Hidden := [3][]string{
		{"{1,3,5}", "C", `{NULL,"a,b",""}`},
		{"{0,2,4,6}", "C", `{NULL,"q\"x","NULL","c\\d"}`},
		{"NULL", "C", "NULL"},
	}
	g1HiddenHex := [3][]string{
		{"0000000100000000000000170000000300000001000000040000000100000004000000030000000400000005", "43",
			"0000000100000001000000190000000300000001ffffffff00000003612c6200000000"},
		{"00000001000000000000001700000004000000010000000400000000000000040000000200000004000000040000000400000006", "43",
			"0000000100000001000000190000000400000001ffffffff00000003712278000000044e554c4c00000003635c64"},
		{"NULL", "43", "NULL"},
	}
	// The shards' own string_agg(x, ',' ORDER BY k), string_agg(x, NULL ORDER BY k).
	g1Partials := [3][]string{{"a,b,", "a,b"}, {`q"x,NULL,c\d`, `q"xNULLc\d`}, {"NULL", "NULL"}}
	shardRow := func(partials, hidden []string) [][]byte {
		return row(slices.Concat(partials, hidden, hidden)...)
	}
	shardHexRow := func(t *testing.T, partials, hidden []string) [][]byte {
		return append(row(partials...), hexRow(t, slices.Concat(hidden, hidden)...)...)
	}
	t.Run("text", func(t *testing.T) {
		fs := stringAggFields(0, 0)
		a := &Aggregate{Columns: stringAggColumns(), Hidden: 6}
		col, _, err := runOrdered(t, a, fs,
			[][][]byte{shardRow(g1Partials[0], g1Hidden[0])},
			[][][]byte{shardRow(g1Partials[2], g1Hidden[2])},
			[][][]byte{shardRow(g1Partials[1], g1Hidden[1])})
		if err != nil {
			t.Fatal(err)
		}
		wantVisibleFields(t, col, fs[:2])
		if got, want := col.values(), []string{`q"x,a,b,NULL,,c\d|q"xa,bNULLc\d`}; !slices.Equal(got, want) {
			t.Errorf("string_agg = %q, want %q", got, want)
		}
	})
	t.Run("binary", func(t *testing.T) {
		// Text in binary is its bytes.
		fs := stringAggFields(1, 1)
		a := &Aggregate{Columns: stringAggColumns(), Hidden: 6}
		col, _, err := runOrdered(t, a, fs,
			[][][]byte{shardHexRow(t, g1Partials[1], g1HiddenHex[1])},
			[][][]byte{shardHexRow(t, g1Partials[0], g1HiddenHex[0])},
			[][][]byte{shardHexRow(t, g1Partials[2], g1HiddenHex[2])})
		if err != nil {
			t.Fatal(err)
		}
		wantVisibleFields(t, col, fs[:2])
		if got, want := col.values(), []string{`q"x,a,b,NULL,,c\d|q"xa,bNULLc\d`}; !slices.Equal(got, want) {
			t.Errorf("string_agg = %q, want %q", got, want)
		}
	})
	t.Run("only NULL elements", func(t *testing.T) {
		// ... WHERE g = 'g0': both NULL.
		fs := stringAggFields(0, 0)
		a := &Aggregate{Columns: stringAggColumns(), Hidden: 6}
		col, _, err := runOrdered(t, a, fs,
			[][][]byte{shardRow([]string{"NULL", "NULL"}, []string{"{1}", "C", "{NULL}"})},
			[][][]byte{shardRow([]string{"NULL", "NULL"}, []string{"{2}", "C", "{NULL}"})},
			[][][]byte{shardRow([]string{"NULL", "NULL"}, []string{"NULL", "C", "NULL"})})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := col.values(), []string{"NULL|NULL"}; !slices.Equal(got, want) {
			t.Errorf("string_agg = %q, want %q", got, want)
		}
	})
	t.Run("only empty strings", func(t *testing.T) {
		// SELECT string_agg(x, ',' ORDER BY k), string_agg(x, NULL ORDER BY k)
		// FROM (VALUES ('', 1), (NULL, 2), ('', 3)) v(x, k) gives ',' and ''.
		fs := stringAggFields(0, 0)
		a := &Aggregate{Columns: stringAggColumns(), Hidden: 6}
		col, _, err := runOrdered(t, a, fs,
			[][][]byte{shardRow([]string{"", ""}, []string{"{1,2}", "C", `{"",NULL}`})},
			[][][]byte{shardRow([]string{"", ""}, []string{"{3}", "C", `{""}`})})
		if err != nil {
			t.Fatal(err)
		}
		if got := col.batches[len(col.batches)-1].Rows; len(got) != 1 || string(got[0][0]) != "," || got[0][1] == nil || len(got[0][1]) != 0 {
			t.Errorf("string_agg = %q, want \",\" and the empty string (not NULL)", col.values())
		}
	})
}

// stringAggGrouped is
//
//	SELECT g, string_agg(x, '; ' ORDER BY k DESC) FROM s GROUP BY g ORDER BY g
//
// as the shards answer it, sorted by g: per shard, g, its own
// string_agg, then hidden g, g's collation, array_agg(k ORDER BY k DESC),
// its collation, array_agg(x ORDER BY k DESC).
var stringAggGrouped = struct {
	fields []Field
	agg    Aggregate
	shards [3][][][]byte // A, B, C
	want   []string
}{
	fields: []Field{typedField("g", oidText, 0), typedField("string_agg", oidText, 0),
		typedField("sg_group1", oidText, 0), typedField("sg_group_collation1", oidText, 0),
		typedField("sg_order_key", oidInt4Array, 0), typedField("sg_order_collation", oidText, 0),
		typedField("sg_elements", oidTextArray, 0)},
	agg: Aggregate{
		Columns: []AggregateColumn{{Func: AggFirst, Text: "g"}, {Func: AggStringAgg,
			Order:    []SortKey{{Hidden: 2, Collation: 3, Desc: true, NullsFirst: true, Text: "k"}},
			Elements: 4, Delimiter: func() *string { s := "; "; return &s }(), Text: "string_agg(x, '; ' ORDER BY k DESC)"}},
		Groups:    []int{2},
		GroupText: []string{"g"},
		Hidden:    5,
	},
	shards: [3][][][]byte{
		{row("g0", "NULL", "g0", "C", "{1}", "C", "{NULL}"), row("g1", "; a,b", "g1", "C", "{5,3,1}", "C", `{"","a,b",NULL}`)},
		{row("g0", "NULL", "g0", "C", "{2}", "C", "{NULL}"), row("g1", `c\d; NULL; q"x`, "g1", "C", "{6,4,2,0}", "C", `{"c\\d","NULL","q\"x",NULL}`),
			row("g2", "w; u", "g2", "C", "{30,10}", "C", "{w,u}")},
		{row("g2", "v; z", "g2", "C", "{25,20,-5}", "C", "{NULL,v,z}")},
	},
	want: []string{"g0|NULL", `g1|c\d; ; NULL; a,b; q"x`, "g2|w; v; u; z"},
}

// TestAggregateStringAggGrouped proves string_agg with GROUP BY merges
// each group's partials, from the shards that have rows in it, into
// Postgres's value for the group.
func TestAggregateStringAggGrouped(t *testing.T) {
	defer goleak.VerifyNone(t)
	g := stringAggGrouped
	a, s := g.agg, g.shards
	// The groups' rows one after another, as a merge by g sends them.
	col, tag, err := runOrdered(t, &a, g.fields,
		[][][]byte{s[0][0], s[1][0]},
		[][][]byte{s[0][1]},
		[][][]byte{s[1][1], s[1][2], s[2][0]})
	if err != nil {
		t.Fatal(err)
	}
	wantVisibleFields(t, col, g.fields[:2])
	if got := col.values(); !slices.Equal(got, g.want) {
		t.Errorf("rows\n%q, want\n%q", got, g.want)
	}
	if tag != "SELECT 3" {
		t.Errorf("tag %q, want SELECT 3", tag)
	}
}

// TestAggregateOrderedKeepsNoBatchMemory proves array_agg and string_agg
// give Postgres's values when their partials come from shards whose
// batches are valid only until emit returns (result.go: "Everything a
// Batch points to is owned by the sender and valid only until emit
// returns"): the fake Executor overwrites every batch with '#' once emit
// returns, so a partial the aggregate keeps without copying reads '#'.
func TestAggregateOrderedKeepsNoBatchMemory(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, c := range arrayAggCases {
		for _, r := range []arrayAggRun{arrayAggRuns[0], arrayAggRuns[2]} {
			t.Run("array_agg "+c.name+"/"+r.name, func(t *testing.T) {
				fs := c.fields(r)
				in, scripts := aggScatter(t, fs, [][][]byte{c.row(t, 0, r)}, [][][]byte{c.row(t, 1, r)}, [][][]byte{c.row(t, 2, r)})
				a := &Aggregate{Input: in, Columns: []AggregateColumn{c.column()}, Hidden: len(fs) - 1}
				col, _, err := runAgg(t, a, scripts)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := col.values(), c.want(t, r); !slices.Equal(got, []string{want}) {
					if r.format == 1 {
						t.Errorf("array_agg = %x, want %s", got, c.wantHex)
					} else {
						t.Errorf("array_agg = %q, want %q", got, want)
					}
				}
			})
		}
	}
	t.Run("string_agg grouped", func(t *testing.T) {
		g := stringAggGrouped
		keys := []SortKey{{Hidden: 0, Collation: 1, Text: "g", Clause: "GROUP BY"}}
		in, scripts := aggMerge(t, g.fields, g.agg.Hidden, keys, g.shards[0], g.shards[1], g.shards[2])
		a := g.agg
		a.Input = in
		col, _, err := runAgg(t, &a, scripts)
		if err != nil {
			t.Fatal(err)
		}
		if got := col.values(); !slices.Equal(got, g.want) {
			t.Errorf("rows\n%q, want\n%q", got, g.want)
		}
	})
}

// TestAggregateOrderedRefusals proves ordered aggregates the gateway
// cannot combine as Postgres would are refused with 0A000 before any row
// reaches the client: an array_agg whose array type it does not split
// (box[]), a string_agg of bytea, an ORDER BY key of a type it cannot
// compare (inet), a text key under a collation that does not order by
// bytes.
func TestAggregateOrderedRefusals(t *testing.T) {
	defer goleak.VerifyNone(t)
	key := []SortKey{{Hidden: 0, Collation: 1, Text: "k"}}
	tests := []struct {
		name    string
		fs      []Field
		col     AggregateColumn
		rows    [2][][]byte
		message string // a part of the message
	}{
		{"array_agg of box",
			[]Field{typedField("array_agg", oidBoxArray, 0), typedField("k", oidInt4Array, 0), typedField("c", oidText, 0)},
			AggregateColumn{Func: AggArrayAgg, Order: key, Text: "array_agg(b ORDER BY k)"},
			// SELECT array_agg(box '((1,1),(0,0))' ORDER BY k) ...
			[2][][]byte{row("{(1,1),(0,0)}", "{1}", "C"), row("{(2,2),(0,0)}", "{2}", "C")},
			"array_agg(b ORDER BY k)"},
		{"string_agg of bytea",
			[]Field{typedField("string_agg", oidBytea, 0), typedField("k", oidInt4Array, 0), typedField("c", oidText, 0),
				typedField("sg_elements", oidByteaArray, 0)},
			AggregateColumn{Func: AggStringAgg, Order: key, Elements: 2, Text: `string_agg(b, '\x2c'::bytea ORDER BY k)`},
			[2][][]byte{row(`\x01`, "{1}", "C", `{"\\x01"}`), row(`\x02`, "{2}", "C", `{"\\x02"}`)},
			"bytea"},
		{"ORDER BY inet",
			[]Field{typedField("array_agg", oidInt8Array, 0), typedField("k", oidInetArray, 0), typedField("c", oidText, 0)},
			AggregateColumn{Func: AggArrayAgg, Order: key, Text: "array_agg(x ORDER BY k)"},
			[2][][]byte{row("{1}", "{10.0.0.1}", "C"), row("{2}", "{10.0.0.2}", "C")},
			"ORDER BY k"},
		{"array_agg ORDER BY text under en_US.UTF-8",
			[]Field{typedField("array_agg", oidInt8Array, 0), typedField("k", oidTextArray, 0), typedField("c", oidText, 0)},
			AggregateColumn{Func: AggArrayAgg, Order: key, Text: "array_agg(x ORDER BY k)"},
			[2][][]byte{row("{1,2}", "{b,a}", "en_US.UTF-8"), row("{3}", "{B}", "en_US.UTF-8")},
			"en_US.UTF-8"},
		{"string_agg ORDER BY text under en_US.UTF-8",
			[]Field{typedField("string_agg", oidText, 0), typedField("k", oidTextArray, 0), typedField("c", oidText, 0),
				typedField("sg_elements", oidTextArray, 0)},
			AggregateColumn{Func: AggStringAgg, Order: key, Elements: 2, Text: "string_agg(x, ',' ORDER BY k)"},
			[2][][]byte{row("x", "{b}", "en_US.UTF-8", "{x}"), row("y", "{a}", "en_US.UTF-8", "{y}")},
			"en_US.UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, scripts := aggScatter(t, tt.fs, [][][]byte{tt.rows[0]}, [][][]byte{tt.rows[1]})
			a := &Aggregate{Input: in, Columns: []AggregateColumn{tt.col}, Hidden: len(tt.fs) - 1}
			c, _, err := runAgg(t, a, scripts)
			e := wantCode(t, err, CodeFeatureNotSupported)
			if !strings.Contains(e.Message, tt.message) {
				t.Errorf("message %q does not name %q", e.Message, tt.message)
			}
			if c.rowsN != 0 {
				t.Errorf("client got %d rows", c.rowsN)
			}
		})
	}
}

// TestAggregateOrderedBrokenShard proves partials no Postgres sends fail
// the statement with XX000: an array that does not parse, a key array
// whose length is not the elements', a key that does not read as its
// type.
func TestAggregateOrderedBrokenShard(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("array_agg", oidInt8Array, 0), typedField("k", oidInt4Array, 0), typedField("c", oidText, 0)}
	col := AggregateColumn{Func: AggArrayAgg, Order: []SortKey{{Hidden: 0, Collation: 1, Text: "k"}}, Text: "array_agg(x ORDER BY k)"}
	for _, tt := range []struct {
		name string
		rows [2][][]byte
	}{
		{"array cut short", [2][][]byte{row("{1,2", "{1,2}", "C"), row("{3}", "{3}", "C")}},
		{"keys missing", [2][][]byte{row("{1,2}", "{1}", "C"), row("{3}", "{3}", "C")}},
		{"keys NULL", [2][][]byte{row("{1,2}", "NULL", "C"), row("{3}", "{3}", "C")}},
		{"key not an integer", [2][][]byte{row("{1,2}", "{1,x}", "C"), row("{3}", "{3}", "C")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := &Aggregate{Columns: []AggregateColumn{col}, Hidden: 2}
			c, _, err := runOrdered(t, a, fs, [][][]byte{tt.rows[0]}, [][][]byte{tt.rows[1]})
			wantCode(t, err, CodeInternal)
			if c.rowsN != 0 {
				t.Errorf("client got %d rows", c.rowsN)
			}
		})
	}
}

// TestAggregateArrayAggOfArrays proves array_agg of an array, which
// Postgres answers with an array of one more dimension (of the same
// type, so the gateway cannot tell it from the description), is either
// combined into Postgres's value or refused with 0A000 — not failed with
// XX000, which says a shard broke its promise, when the shards answered
// a valid statement as Postgres does. From
//
//	CREATE TABLE arr (shard text, v int4[], k int4);
//	INSERT INTO arr VALUES ('A', ARRAY[1,2], 1), ('A', ARRAY[3,4], 3), ('B', ARRAY[5,NULL], 2);
//	SELECT array_agg(v ORDER BY k) FROM arr;  -- {{1,2},{5,NULL},{3,4}}
//	SELECT array_agg(v ORDER BY k), array_agg(k ORDER BY k) FROM arr WHERE shard = ...;
func TestAggregateArrayAggOfArrays(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("array_agg", oidInt4Array, 0), typedField("k", oidInt4Array, 0), typedField("c", oidText, 0)}
	col := AggregateColumn{Func: AggArrayAgg, Order: []SortKey{{Hidden: 0, Collation: 1, Text: "k"}}, Text: "array_agg(v ORDER BY k)"}
	a := &Aggregate{Columns: []AggregateColumn{col}, Hidden: 2}
	c, _, err := runOrdered(t, a, fs, [][][]byte{row("{{1,2},{3,4}}", "{1,3}", "C")}, [][][]byte{row("{{5,NULL}}", "{2}", "C")})
	if err == nil {
		if got, want := c.values(), []string{"{{1,2},{5,NULL},{3,4}}"}; !slices.Equal(got, want) {
			t.Errorf("array_agg = %q, want %q", got, want)
		}
		return
	}
	wantCode(t, err, CodeFeatureNotSupported)
}
