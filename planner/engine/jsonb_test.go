package engine

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// jsonbPostgresOrder is ground truth from PostgreSQL 15.18, in a database
// created by initdb --locale=C -E UTF8. A table t (id serial, v jsonb) held
// 90 values; the lists below are what
//
//	SELECT dense_rank() OVER (ORDER BY t.v), t.v::text AS out FROM t ORDER BY t.v
//
// printed, in its order, one inner list per rank: values in a list are equal
// to jsonb_cmp, values in different lists are not. The self-join
//
//	SELECT a.v::text, b.v::text FROM t a, t b WHERE a.v = b.v AND a.id <> b.id
//
// returned exactly the pairs of different rows within one list. Inputs
// included 1e2, -0, -0.000, "\ud83d\ude00", {"b": 2, "a": 1} and
// {"a": 1, "a": 2}; the text here is Postgres's output for them.
// Note `[]` before `null`: the raw-scalar quirk compareJsonb describes.
var jsonbPostgresOrder = [][]string{
	{`[]`},
	{`null`},
	{`""`},
	{`"\u0001"`},
	{`"\n"`},
	{`" "`},
	{`"A"`},
	{`"a"`},
	{`"a\"b"`},
	{`"a/b"`},
	{`"a\\b"`},
	{`"aa"`},
	{`"ab"`},
	{`"b"`},
	{`"null"`},
	{`"tab\t"`},
	{`"true"`},
	{`"z"`},
	{`"é"`, `"é"`},
	{`"€"`},
	{`"😀"`},
	{`-1000000000000000000000000000000`},
	{`-1`},
	{`-0.5`},
	{`0`, `0`, `0.0`, `0.000`},
	{`0.000000000000000000000000000001`},
	{`0.1`},
	{`1.0`, `1`, `1.00`},
	{`2`},
	{`100`, `100.0`, `100`},
	{`99999999999999999999.99`},
	{`1000000000000000000000000000000`},
	{`12345678901234567890123456789012345678901234567890`},
	{`false`},
	{`true`},
	{`[null]`},
	{`["a"]`},
	{`[1]`, `[1.0]`},
	{`[2]`},
	{`[false]`},
	{`[true]`},
	{`[[]]`},
	{`[[1]]`},
	{`[[1, 2]]`},
	{`[{}]`},
	{`[null, null]`},
	{`["a", 1]`},
	{`[1, 2]`},
	{`[1, [2]]`},
	{`[2, 1]`},
	{`[100, "x"]`, `[100, "x"]`},
	{`[[], []]`},
	{`[{"a": 1}, 1]`},
	{`[1, 2, 3]`},
	{`[1, 2, {"a": [3]}]`},
	{`{}`},
	{`{"": 1}`},
	{`{"a": null}`},
	{`{"a": "x"}`},
	{`{"a": 1.0}`, `{"a": 1}`},
	{`{"a": 2}`, `{"a": 2}`},
	{`{"a": true}`},
	{`{"a": []}`},
	{`{"a": [1]}`},
	{`{"a": {}}`},
	{`{"a": {"b": 1}}`},
	{`{"aa": 1}`},
	{`{"ab": 1}`},
	{`{"b": 1}`},
	{`{"é": 1}`},
	{`{"a": 1, "b": 2}`, `{"a": 1, "b": 2}`},
	{`{"a": 1, "zz": 2}`},
	{`{"a": 3, "zz": 1}`},
	{`{"a": [1, {"b": null}], "c": {"d": [false, "x"]}}`},
	{`{"a": [1, {"b": null}], "c": {"d": [true, "x"]}}`},
	{`{"b": 1, "aa": 2}`},
	{`{"a": 1, "b": 2, "c": 3}`},
}

// jsonbPostgresInput pairs raw JSON with the text PostgreSQL 15.18 printed
// for it (SELECT i::jsonb::text): jsonb_in sorts keys, keeps the last of
// duplicates, decodes escapes and writes numbers without exponent.
var jsonbPostgresInput = []struct{ in, out string }{
	{`1e2`, `100`},
	{`-0`, `0`},
	{`1E+2`, `100`},
	{`0.5e-1`, `0.05`},
	{`-0.0e5`, `0`},
	{`{"a":1,"a":2}`, `{"a": 2}`},
	{`{"zz":1,"a":3,"zz":4}`, `{"a": 3, "zz": 4}`},
	{`"\ud83d\ude00"`, `"😀"`},
	{`"\u00e9\u0041"`, `"éA"`},
	{`"\/\b\f\r"`, `"/\b\f\r"`},
	{` [ 1 , 2 ] `, `[1, 2]`},
	{`{"b":{"y":1,"x":2},"a":[]}`, `{"a": [], "b": {"x": 2, "y": 1}}`},
	{`{"é":1,"b":2,"ab":3}`, `{"b": 2, "ab": 3, "é": 1}`},
	{`[1E-2, 10e-1]`, `[0.01, 1.0]`},
}

// jsonbForm is jsonb_out's text as a shard sends it in format: as is (0),
// or after jsonb_send's version byte (1; PostgreSQL 15.18's jsonb_send
// printed \x01 and then the text).
func jsonbForm(text string, format int16) []byte {
	if format == 1 {
		return append([]byte{1}, text...)
	}
	return []byte(text)
}

func TestJsonbOrderMatchesPostgres(t *testing.T) {
	type ranked struct {
		text string
		rank int
	}
	var values []ranked
	for rank, group := range jsonbPostgresOrder {
		for _, text := range group {
			values = append(values, ranked{text, rank})
		}
	}
	for _, format := range []int16{0, 1} {
		order := jsonbOrder(format)
		compare := func(a, b ranked) int {
			c, err := order(jsonbForm(a.text, format), jsonbForm(b.text, format))
			if err != nil {
				t.Fatalf("format %d: compare %s with %s: %v", format, a.text, b.text, err)
			}
			return c
		}

		// Every pair, both ways round, against Postgres's ranks.
		for _, a := range values {
			for _, b := range values {
				if got, want := jsonbSign(compare(a, b)), jsonbSign(a.rank-b.rank); got != want {
					t.Errorf("format %d: %s vs %s: got %d, Postgres %d", format, a.text, b.text, got, want)
				}
			}
		}

		// Sorting a shuffled copy gives Postgres's order, ties only among equals.
		shuffled := slices.Clone(values)
		rand.New(rand.NewPCG(1, uint64(format))).Shuffle(len(shuffled), func(i, j int) {
			shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		})
		slices.SortStableFunc(shuffled, compare)
		for i := 1; i < len(shuffled); i++ {
			if shuffled[i-1].rank > shuffled[i].rank {
				t.Errorf("format %d: sorted %s before %s", format, shuffled[i-1].text, shuffled[i].text)
			}
		}
	}
}

func jsonbSign(n int) int {
	return min(max(n, -1), 1)
}

func TestJsonbKeyMatchesPostgres(t *testing.T) {
	type keyed struct {
		text string
		rank int
		key  []byte
	}
	var values []keyed
	for rank, group := range jsonbPostgresOrder {
		for _, text := range group {
			for _, format := range []int16{0, 1} {
				key, ok := jsonbKey(jsonbForm(text, format), format)
				if !ok {
					t.Fatalf("format %d: cannot read %s", format, text)
				}
				values = append(values, keyed{text, rank, key})
			}
		}
	}
	for _, a := range values {
		for _, b := range values {
			if same := bytes.Equal(a.key, b.key); same != (a.rank == b.rank) {
				t.Errorf("%s and %s: keys equal %v, Postgres equal %v", a.text, b.text, same, a.rank == b.rank)
			}
		}
	}
}

func TestJsonbReadsInputAsPostgres(t *testing.T) {
	order := jsonbOrder(0)
	for _, tc := range jsonbPostgresInput {
		in, ok1 := jsonbKey([]byte(tc.in), 0)
		out, ok2 := jsonbKey([]byte(tc.out), 0)
		if !ok1 || !ok2 || !bytes.Equal(in, out) {
			t.Errorf("jsonbKey(%s) = %q, %v; jsonbKey(%s) = %q, %v", tc.in, in, ok1, tc.out, out, ok2)
		}
		if c, err := order([]byte(tc.in), []byte(tc.out)); c != 0 || err != nil {
			t.Errorf("compare %s with %s = %d, %v; want 0", tc.in, tc.out, c, err)
		}
	}
}

// TestJsonbNumberLimits checks numeric's limits at their edges, as
// PostgreSQL 15.18 takes ('...'::jsonb) or refuses ("value overflows
// numeric format") them.
func TestJsonbNumberLimits(t *testing.T) {
	for v, want := range map[string]bool{
		`10e131070`: true, `100e131070`: false, `0.001e131075`: false, `1e131072`: false,
		`1e-16383`: true, `0.0e-16382`: true, `1.5e-16383`: false, `0.0e-16383`: false, `1.000e-16381`: false,
		`0e1073741822`: true, `0e1073741823`: false, `0e-1073741822`: false, `1e2147483648`: false,
	} {
		if _, ok := jsonbKey([]byte(v), 0); ok != want {
			t.Errorf("jsonbKey(%s) readable %v, Postgres %v", v, ok, want)
		}
	}
}

// TestJsonbRefusesUnreadable feeds text Postgres refuses as jsonb (and so
// never prints) and broken binary framing.
func TestJsonbRefusesUnreadable(t *testing.T) {
	for _, tc := range []struct {
		v      string
		format int16
	}{
		{``, 0}, {`nul`, 0}, {`NaN`, 0}, {`Infinity`, 0}, {`01`, 0}, {`1.`, 0}, {`.5`, 0},
		{`-`, 0}, {`1e`, 0}, {`1 2`, 0}, {`[1,]`, 0}, {`[1`, 0},
		{`{"a"}`, 0}, {`{"a": 1,}`, 0}, {`{1: 2}`, 0}, {`"abc`, 0}, {"\"a\tb\"", 0},
		{`"\x"`, 0}, {`"\u12"`, 0}, {`"\u0000"`, 0}, {`"\ud800"`, 0}, {`"\ud800\u0041"`, 0},
		{`"\udc00\udc00"`, 0}, {`'a'`, 0},
		{"", 1}, {"\x02null", 1}, {"null", 1},
	} {
		if key, ok := jsonbKey([]byte(tc.v), tc.format); ok {
			t.Errorf("jsonbKey(%q, %d) = %q, want unreadable", tc.v, tc.format, key)
		}
		valid := jsonbForm("null", tc.format)
		_, err := jsonbOrder(tc.format)(valid, []byte(tc.v))
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeInternal {
			t.Errorf("compare %q in format %d: got %v, want an XX000 error", tc.v, tc.format, err)
		}
	}
}
