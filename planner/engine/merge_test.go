package engine

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// mergeTarget returns a target of the default topology that resolves to n
// shards (1 to 4), and those shards.
func mergeTarget(t *testing.T, n int) (Target, []string) {
	t.Helper()
	var (
		target Target
		shards []string
	)
	switch n {
	case 1:
		target, shards = keysOn(3), []string{"s3"}
	case 2:
		target, shards = keysOn(1, 2), []string{"s0", "s1"}
	case 3:
		target, shards = keysOn(1, 2, 3), []string{"s0", "s1", "s3"}
	default:
		target, shards = Target{Kind: TargetAll}, allShards
	}
	if got := target.Resolve(newTopo(), nil); !slices.Equal(got, shards) {
		t.Fatalf("%s resolves to %v, want %v", target, got, shards)
	}
	return target, shards
}

// typedField is a column of type oid sent in format.
func typedField(name string, oid uint32, format int16) Field {
	return Field{Name: name, DataTypeOID: oid, DataTypeSize: -1, TypeModifier: -1, Format: format}
}

// genRow is a generated row: a unique label and four nullable bigint
// columns. The shards return label, a, b and the hidden c, d.
type genRow struct {
	label string
	v     [4]*int64
}

// genFields are the shards' columns of genRows, hidden ones included.
func genFields(format int16) []Field {
	return []Field{
		typedField("label", oidText, format),
		typedField("a", oidInt8, format),
		typedField("b", oidInt8, format),
		typedField("c", oidInt8, format),
		typedField("d", oidInt8, format),
	}
}

// int8Value is v as a shard sends a bigint in format; nil stays NULL.
func int8Value(v *int64, format int16) []byte {
	switch {
	case v == nil:
		return nil
	case format == 1:
		return binary.BigEndian.AppendUint64(nil, uint64(*v))
	}
	return []byte(strconv.FormatInt(*v, 10))
}

func (r genRow) cells(format int16) [][]byte {
	out := [][]byte{[]byte(r.label)}
	for _, v := range r.v {
		out = append(out, int8Value(v, format))
	}
	return out
}

// genCol is the genRow column (index into v) key k reads, for the layout
// label, a, b | c, d.
func genCol(k SortKey) int {
	if k.Ordinal > 0 {
		return k.Ordinal - 2
	}
	return 2 + k.Hidden
}

// refCompare is the order Postgres gives genRows under keys.
func refCompare(keys []SortKey, x, y genRow) int {
	for _, k := range keys {
		a, b := x.v[genCol(k)], y.v[genCol(k)]
		switch {
		case a == nil && b == nil:
			continue
		case a == nil && k.NullsFirst, b == nil && !k.NullsFirst:
			return -1
		case a == nil, b == nil:
			return 1
		}
		c := cmp.Compare(*a, *b)
		if k.Desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

func sameValue(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func showValue(v []byte) string {
	if v == nil {
		return "NULL"
	}
	return fmt.Sprintf("%q", v)
}

// checkMerged checks that what the client got is the sorted union of pool:
// every row once, as the shard sent its visible columns (label, a, b),
// each no greater than the next under keys.
func checkMerged(t *testing.T, keys []SortKey, format int16, pool map[string]genRow, c *collector) {
	t.Helper()
	if c.badOrder {
		t.Error("a row came before Fields")
	}
	var (
		prev *genRow
		seen = map[string]bool{}
		n    int
	)
	for _, b := range c.batches {
		for _, r := range b.Rows {
			n++
			if len(r) != 3 {
				t.Fatalf("row %d has %d columns, want the 3 visible ones: %q", n, len(r), r)
			}
			src, ok := pool[string(r[0])]
			if !ok {
				t.Fatalf("row %d: label %q is no shard's", n, r[0])
			}
			if seen[src.label] {
				t.Fatalf("row %s emitted twice", src.label)
			}
			seen[src.label] = true
			want := src.cells(format)[:3]
			for j := range want {
				if !sameValue(r[j], want[j]) {
					t.Errorf("row %s column %d = %s, want %s", src.label, j, showValue(r[j]), showValue(want[j]))
				}
			}
			if prev != nil && refCompare(keys, *prev, src) > 0 {
				t.Errorf("row %d: %s %v came after %s %v", n, src.label, derefs(src.v), prev.label, derefs(prev.v))
			}
			prev = &src
		}
	}
	if n != len(pool) {
		t.Errorf("client got %d rows, want %d", n, len(pool))
	}
}

func derefs(vs [4]*int64) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		if v == nil {
			out[i] = "NULL"
		} else {
			out[i] = strconv.FormatInt(*v, 10)
		}
	}
	return out
}

// wantVisibleFields checks the client got exactly one Fields batch, first,
// equal to want.
func wantVisibleFields(t *testing.T, c *collector, want []Field) {
	t.Helper()
	if c.fieldsN != 1 {
		t.Fatalf("client got %d Fields batches, want 1", c.fieldsN)
	}
	if len(c.batches) == 0 || c.batches[0].Fields == nil {
		t.Fatalf("first batch is not Fields: %+v", c.batches)
	}
	if got := c.batches[0].Fields; !slices.Equal(got, want) {
		t.Errorf("Fields = %+v, want %+v", got, want)
	}
	if len(c.batches[0].Rows) != 0 {
		t.Errorf("the Fields batch carries rows")
	}
}

// TestMergeSortOrders proves MergeSort merges 2 to 4 shards' sorted
// streams, arriving in batches, into their sorted union under one or
// several bigint keys in text and binary format, ascending and descending,
// NULLs first or last, keys named by ordinal or among the hidden columns;
// the client sees Fields once, first, without the hidden columns, rows
// without them, and the shards' tags added up.
func TestMergeSortOrders(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name   string
		shards int
		format int16
		keys   []SortKey
	}{
		{"2 shards text a", 2, 0, []SortKey{{Ordinal: 2, Collation: -1, Text: "a"}}},
		{"2 shards binary a", 2, 1, []SortKey{{Ordinal: 2, Collation: -1, Text: "a"}}},
		{"3 shards binary a desc", 3, 1, []SortKey{{Ordinal: 2, Collation: -1, Desc: true, NullsFirst: true, Text: "a"}}},
		{"3 shards text a desc nulls last", 3, 0, []SortKey{{Ordinal: 2, Collation: -1, Desc: true, Text: "a"}}},
		{"4 shards text a nulls first, b desc nulls last", 4, 0, []SortKey{
			{Ordinal: 2, Collation: -1, NullsFirst: true, Text: "a"},
			{Ordinal: 3, Collation: -1, Desc: true, Text: "b"},
		}},
		{"4 shards binary hidden c desc, hidden d, b nulls first", 4, 1, []SortKey{
			{Hidden: 0, Collation: -1, Desc: true, Text: "c"},
			{Hidden: 1, Collation: -1, Text: "d"},
			{Ordinal: 3, Collation: -1, NullsFirst: true, Text: "b"},
		}},
		{"2 shards binary hidden d then a desc", 2, 1, []SortKey{
			{Hidden: 1, Collation: -1, Text: "d"},
			{Ordinal: 2, Collation: -1, Desc: true, NullsFirst: true, Text: "a"},
		}},
		{"3 shards text b desc, c, a, d desc", 3, 0, []SortKey{
			{Ordinal: 3, Collation: -1, Desc: true, NullsFirst: true, Text: "b"},
			{Hidden: 0, Collation: -1, Text: "c"},
			{Ordinal: 2, Collation: -1, Text: "a"},
			{Hidden: 1, Collation: -1, Desc: true, Text: "d"},
		}},
	}
	vals := []int64{math.MinInt64, -100, -3, -2, -1, 0, 1, 2, 3, 10, math.MaxInt64}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			target, shards := mergeTarget(t, tc.shards)
			pool := map[string]genRow{}
			scripts := map[string]*script{}
			total := 0
			for _, s := range shards {
				n := 4 + rng.IntN(12)
				rows := make([]genRow, n)
				for j := range rows {
					rows[j].label = fmt.Sprintf("%s-%d", s, j)
					for col := range rows[j].v {
						if rng.IntN(5) > 0 {
							v := vals[rng.IntN(len(vals))]
							rows[j].v[col] = &v
						}
					}
					pool[rows[j].label] = rows[j]
				}
				slices.SortStableFunc(rows, func(x, y genRow) int { return refCompare(tc.keys, x, y) })
				sc := &script{Fields: genFields(tc.format), BatchSize: 1 + rng.IntN(4), Tag: Tag(fmt.Sprintf("SELECT %d", n))}
				for _, r := range rows {
					sc.Rows = append(sc.Rows, r.cells(tc.format))
				}
				scripts[s] = sc
				total += n
			}
			f := newFake(newTopo(), scripts)
			m := &MergeSort{Target: target, Query: Query{SQL: "SELECT label, a, b, c, d FROM t ORDER BY ...", Params: []int{1}, Hidden: 2}, Keys: tc.keys}
			var c collector
			tag, err := m.Stream(testCtx(t), f, nil, c.emit)
			if err != nil {
				t.Fatal(err)
			}
			if want := Tag(fmt.Sprintf("SELECT %d", total)); tag != want {
				t.Errorf("tag = %q, want %q", tag, want)
			}
			wantVisibleFields(t, &c, genFields(tc.format)[:3])
			checkMerged(t, tc.keys, tc.format, pool, &c)
			calls := f.Calls()
			if got := callShards(calls); !slices.Equal(got, shards) {
				t.Errorf("queried %v, want %v", got, shards)
			}
			for _, cl := range calls {
				if cl.SQL != m.Query.SQL || !slices.Equal(cl.Params, []int{1}) {
					t.Errorf("call %+v, want the MergeSort's query", cl)
				}
			}
			if n := f.Active(); n != 0 {
				t.Errorf("%d shard queries still running", n)
			}
		})
	}
}

// TestMergeSortNullOrder pins where NULLs go under each direction, against
// hand-written answers: ASC puts them last and DESC first unless the key
// says otherwise.
func TestMergeSortNullOrder(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name       string
		desc       bool
		nullsFirst bool
		want       []string
	}{
		{"asc (nulls last)", false, false, []string{"-5", "1", "2", "3", "NULL", "NULL"}},
		{"asc nulls first", false, true, []string{"NULL", "NULL", "-5", "1", "2", "3"}},
		{"desc (nulls first)", true, true, []string{"NULL", "NULL", "3", "2", "1", "-5"}},
		{"desc nulls last", true, false, []string{"3", "2", "1", "-5", "NULL", "NULL"}},
	}
	for _, format := range []int16{0, 1} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s format %d", tc.name, format), func(t *testing.T) {
				keys := []SortKey{{Ordinal: 2, Collation: -1, Desc: tc.desc, NullsFirst: tc.nullsFirst, Text: "a"}}
				one := func(label string, v ...int64) genRow {
					r := genRow{label: label}
					if len(v) > 0 {
						r.v[0] = &v[0]
					}
					return r
				}
				data := map[string][]genRow{
					"s0": {one("x1", 1), one("x3", 3), one("xn")},
					"s1": {one("y2", 2), one("yn"), one("y-5", -5)},
				}
				target, shards := mergeTarget(t, 2)
				scripts := map[string]*script{}
				for _, s := range shards {
					rows := data[s]
					slices.SortStableFunc(rows, func(x, y genRow) int { return refCompare(keys, x, y) })
					sc := &script{Fields: genFields(format), BatchSize: 2, Tag: "SELECT 3"}
					for _, r := range rows {
						sc.Rows = append(sc.Rows, r.cells(format))
					}
					scripts[s] = sc
				}
				f := newFake(newTopo(), scripts)
				var c collector
				_, err := (&MergeSort{Target: target, Query: Query{SQL: "q", Hidden: 2}, Keys: keys}).Stream(testCtx(t), f, nil, c.emit)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, b := range c.batches {
					for _, r := range b.Rows {
						switch {
						case r[1] == nil:
							got = append(got, "NULL")
						case format == 1:
							got = append(got, strconv.FormatInt(int64(binary.BigEndian.Uint64(r[1])), 10))
						default:
							got = append(got, string(r[1]))
						}
					}
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("a = %v, want %v", got, tc.want)
				}
			})
		}
	}
}

// textScripts returns scripts for shards whose rows are label, name
// (visible) and the hidden columns hidden(name) gives, sorted by name in
// byte order (reversed when desc).
func textScripts(data map[string][]string, oid uint32, hiddenFields []Field, hidden func(name string) [][]byte, desc bool) map[string]*script {
	scripts := map[string]*script{}
	for s, names := range data {
		names = slices.Clone(names)
		slices.Sort(names)
		if desc {
			slices.Reverse(names)
		}
		sc := &script{
			Fields:    append([]Field{typedField("label", oidText, 0), typedField("name", oid, 0)}, hiddenFields...),
			BatchSize: 2,
			Tag:       Tag(fmt.Sprintf("SELECT %d", len(names))),
		}
		for i, n := range names {
			sc.Rows = append(sc.Rows, append([][]byte{[]byte(fmt.Sprintf("%s-%d", s, i)), []byte(n)}, hidden(n)...))
		}
		scripts[s] = sc
	}
	return scripts
}

// TestMergeSortTextByteOrder proves text keys under a collation that
// orders by bytes (C, "C", C.UTF-8, POSIX — as the hidden collation column
// names it) merge in byte order: 'B' < 'a' < 'ä'. The collation column is
// found among the hidden columns, and is projected away.
func TestMergeSortTextByteOrder(t *testing.T) {
	defer goleak.VerifyNone(t)
	data := map[string][]string{
		"s0": {"B", "ab", "ä"},
		"s1": {"Z", "a", "zz", ""},
		"s2": {"Ä", "b"},
		"s3": {},
	}
	want := []string{"", "B", "Z", "a", "ab", "b", "zz", "Ä", "ä"}
	for _, coll := range []string{"C", `"C"`, "C.UTF-8", "POSIX"} {
		for _, desc := range []bool{false, true} {
			for _, hiddenKey := range []bool{false, true} {
				name := fmt.Sprintf("%s desc=%v hidden key=%v", coll, desc, hiddenKey)
				t.Run(name, func(t *testing.T) {
					// With a visible key: label, name | coll. With a
					// hidden key: label, name | name again, coll.
					key := SortKey{Ordinal: 2, Collation: 0, Desc: desc, NullsFirst: desc, Text: "name"}
					hiddenFields := []Field{typedField("coll", oidText, 0)}
					hidden := func(n string) [][]byte { return [][]byte{[]byte(coll)} }
					if hiddenKey {
						key = SortKey{Hidden: 0, Collation: 1, Desc: desc, NullsFirst: desc, Text: "name"}
						hiddenFields = []Field{typedField("k", oidText, 0), typedField("coll", oidText, 0)}
						hidden = func(n string) [][]byte { return [][]byte{[]byte(n), []byte(coll)} }
					}
					f := newFake(newTopo(), textScripts(data, oidText, hiddenFields, hidden, desc))
					var c collector
					m := &MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q", Hidden: len(hiddenFields)}, Keys: []SortKey{key}}
					tag, err := m.Stream(testCtx(t), f, nil, c.emit)
					if err != nil {
						t.Fatal(err)
					}
					if tag != "SELECT 9" {
						t.Errorf("tag = %q", tag)
					}
					wantVisibleFields(t, &c, []Field{typedField("label", oidText, 0), typedField("name", oidText, 0)})
					var got []string
					for _, b := range c.batches {
						for _, r := range b.Rows {
							if len(r) != 2 {
								t.Fatalf("row %q: want the 2 visible columns", r)
							}
							got = append(got, string(r[1]))
						}
					}
					w := slices.Clone(want)
					if desc {
						slices.Reverse(w)
					}
					if !slices.Equal(got, w) {
						t.Errorf("names = %q, want %q", got, w)
					}
				})
			}
		}
	}
}

// TestMergeSortRefusals proves keys the merge cannot order as Postgres
// would are refused with 0A000 naming the collation or the key, before any
// row reaches the client, and every shard's query ends.
func TestMergeSortRefusals(t *testing.T) {
	defer goleak.VerifyNone(t)
	collated := func(coll string) func(string) [][]byte {
		return func(string) [][]byte { return [][]byte{[]byte(coll)} }
	}
	none := func(string) [][]byte { return nil }
	collField := []Field{typedField("coll", oidText, 0)}
	data := map[string][]string{"s0": {"a", "b"}, "s1": {"A", "c"}, "s2": {"d"}, "s3": {"e"}}
	// Values that name byte-order collations, so that a merge reading the
	// collation of a key of unknown collation from some other column
	// would not refuse for another reason.
	collNames := map[string][]string{"s0": {"C", "POSIX"}, "s1": {"C.UTF-8"}, "s2": {"ucs_basic"}, "s3": {"c"}}
	tests := []struct {
		name     string
		oid      uint32
		hidden   []Field
		cells    func(string) [][]byte
		key      SortKey
		contains []string
	}{
		{"en_US.UTF-8", oidText, collField, collated("en_US.UTF-8"),
			SortKey{Ordinal: 2, Collation: 0, Text: "name"}, []string{"en_US.UTF-8", "name"}},
		{"und-x-icu quoted", oidText, collField, collated(`"und-x-icu"`),
			SortKey{Ordinal: 2, Collation: 0, Text: "name"}, []string{"und-x-icu"}},
		{"varchar under de_DE", oidVarchar, collField, collated("de_DE"),
			SortKey{Ordinal: 2, Collation: 0, Desc: true, NullsFirst: true, Text: "name"}, []string{"de_DE"}},
		{"text with unknown collation", oidText, nil, none,
			SortKey{Ordinal: 2, Collation: -1, Text: "name"}, []string{"name"}},
		{"varchar with unknown collation", oidVarchar, nil, none,
			SortKey{Ordinal: 2, Collation: -1, Text: "name"}, []string{"name"}},
		{"bpchar with unknown collation", oidBpchar, nil, none,
			SortKey{Ordinal: 2, Collation: -1, Text: "name"}, []string{"name"}},
		{"money", 790, nil, none,
			SortKey{Ordinal: 2, Collation: -1, Text: "price"}, []string{"price", "money"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := data
			if tc.key.Collation < 0 {
				d = collNames
			}
			f := newFake(newTopo(), textScripts(d, tc.oid, tc.hidden, tc.cells, tc.key.Desc))
			var c collector
			m := &MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q", Hidden: len(tc.hidden)}, Keys: []SortKey{tc.key}}
			_, err := m.Stream(testCtx(t), f, nil, c.emit)
			e := wantCode(t, err, CodeFeatureNotSupported)
			for _, s := range tc.contains {
				if !strings.Contains(e.Message, s) {
					t.Errorf("message %q does not name %s", e.Message, s)
				}
			}
			if c.rowsN != 0 {
				t.Errorf("client got %d rows before the refusal", c.rowsN)
			}
			for _, s := range allShards {
				if done, _ := f.Returned(s); !done {
					t.Errorf("shard %s never returned", s)
				}
			}
			if n := f.Active(); n != 0 {
				t.Errorf("%d shard queries still running", n)
			}
		})
	}
}

// TestMergeSortNumeric proves numeric keys merge by value: 12.5, 12.50 and
// 12.500 are equal (so the next key decides between them), NaN sorts
// above every number.
func TestMergeSortNumeric(t *testing.T) {
	defer goleak.VerifyNone(t)
	type nrow struct {
		num string
		tie int64
	}
	// Each shard's rows, in ascending (num, tie) order.
	data := map[string][]nrow{
		"s0": {{"-1", 0}, {"12.50", 1}, {"NaN", 5}},
		"s1": {{"0.001", 0}, {"3", 0}, {"12.5", 2}, {"100", 0}},
		"s2": {{"12.500", 0}, {"12.5", 3}, {"NaN", 2}},
		"s3": {{"-1000000000000000000000.5", 0}, {"99.99", 0}},
	}
	wantAsc := []string{
		"-1000000000000000000000.5/0", "-1/0", "0.001/0", "3/0",
		"12.500/0", "12.50/1", "12.5/2", "12.5/3",
		"99.99/0", "100/0", "NaN/2", "NaN/5",
	}
	for _, desc := range []bool{false, true} {
		t.Run(fmt.Sprintf("desc=%v", desc), func(t *testing.T) {
			scripts := map[string]*script{}
			for s, rows := range data {
				rows = slices.Clone(rows)
				if desc {
					slices.Reverse(rows)
				}
				sc := &script{
					Fields:    []Field{typedField("num", oidNumeric, 0), typedField("tie", oidInt8, 0)},
					BatchSize: 1,
					Tag:       Tag(fmt.Sprintf("SELECT %d", len(rows))),
				}
				for _, r := range rows {
					sc.Rows = append(sc.Rows, row(r.num, strconv.FormatInt(r.tie, 10)))
				}
				scripts[s] = sc
			}
			f := newFake(newTopo(), scripts)
			keys := []SortKey{
				{Ordinal: 1, Collation: -1, Desc: desc, NullsFirst: desc, Text: "num"},
				{Ordinal: 2, Collation: -1, Desc: desc, NullsFirst: desc, Text: "tie"},
			}
			var c collector
			tag, err := (&MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}, Keys: keys}).Stream(testCtx(t), f, nil, c.emit)
			if err != nil {
				t.Fatal(err)
			}
			if tag != "SELECT 12" {
				t.Errorf("tag = %q", tag)
			}
			got := c.values()
			for i := range got {
				got[i] = strings.Replace(got[i], "|", "/", 1)
			}
			want := slices.Clone(wantAsc)
			if desc {
				slices.Reverse(want)
			}
			if !slices.Equal(got, want) {
				t.Errorf("rows =\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// holdExec wraps the fake to watch what MergeSort holds: for every row
// batch a shard hands over it counts the shard's batches handed whose rows
// have not all reached the client (which the merge must be holding), and
// it checks that when the merge lets a shard's emit return, every row of
// that batch has reached the client.
type holdExec struct {
	*fakeExec
	mu        sync.Mutex
	delivered map[string]bool
	handed    map[string][][]string // per shard, the labels of each batch
	maxHeld   map[string]int
	problems  []string
}

func newHoldExec(f *fakeExec) *holdExec {
	return &holdExec{fakeExec: f, delivered: map[string]bool{}, handed: map[string][][]string{}, maxHeld: map[string]int{}}
}

func (h *holdExec) Query(ctx context.Context, shard string, q Query, emit func(*Batch) error) (Tag, error) {
	return h.fakeExec.Query(ctx, shard, q, func(b *Batch) error {
		if b.Fields != nil {
			return emit(b)
		}
		labels := make([]string, len(b.Rows))
		for i, r := range b.Rows {
			labels[i] = string(r[0])
		}
		h.mu.Lock()
		h.handed[shard] = append(h.handed[shard], labels)
		held := 0
		for _, ls := range h.handed[shard] {
			if slices.ContainsFunc(ls, func(l string) bool { return !h.delivered[l] }) {
				held++
			}
		}
		h.maxHeld[shard] = max(h.maxHeld[shard], held)
		h.mu.Unlock()
		err := emit(b)
		if err == nil {
			h.mu.Lock()
			for _, l := range labels {
				if !h.delivered[l] {
					h.problems = append(h.problems, fmt.Sprintf("shard %s got its batch back before row %s reached the client", shard, l))
				}
			}
			h.mu.Unlock()
		}
		return err
	})
}

// deliver records the rows the client received.
func (h *holdExec) deliver(b *Batch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range b.Rows {
		h.delivered[string(r[0])] = true
	}
}

// interleaved returns scripts for shards where shard i holds keys i, i+n,
// i+2n, ... (n shards), so the merge takes turns between all of them.
// Rows are label, k | hk (the key again, hidden), k in text.
func interleaved(shards []string, perShard int, batchSize func(i int) int) map[string]*script {
	n := len(shards)
	scripts := map[string]*script{}
	for i, s := range shards {
		sc := &script{
			Fields:    []Field{typedField("label", oidText, 0), typedField("k", oidInt8, 0), typedField("hk", oidInt8, 0)},
			BatchSize: batchSize(i),
			Tag:       Tag(fmt.Sprintf("SELECT %d", perShard)),
		}
		for j := range perShard {
			k := strconv.Itoa(i + j*n)
			sc.Rows = append(sc.Rows, row(fmt.Sprintf("%s-%d", s, j), k, k))
		}
		scripts[s] = sc
	}
	return scripts
}

// interleavedWant is the merged output of interleaved: label|k in key order.
func interleavedWant(shards []string, perShard int) []string {
	var out []string
	for k := range len(shards) * perShard {
		out = append(out, fmt.Sprintf("%s-%d|%d", shards[k%len(shards)], k/len(shards), k))
	}
	return out
}

// hiddenKey orders interleaved rows by their hidden key.
var hiddenKey = []SortKey{{Hidden: 0, Collation: -1, Text: "hk"}}

// TestMergeSortHoldsOneBatchPerShard proves MergeSort keeps at most one
// batch per shard: a shard's emit returns only once the merge has passed
// every row of the batch on, and the rows the client gets stay valid
// though the fake scribbles over each batch once emit returns.
func TestMergeSortHoldsOneBatchPerShard(t *testing.T) {
	defer goleak.VerifyNone(t)
	const perShard = 12
	f := newFake(newTopo(), interleaved(allShards, perShard, func(i int) int { return i + 1 }))
	h := newHoldExec(f)
	c := collector{onRows: func(b *Batch) error { h.deliver(b); return nil }}
	tag, err := (&MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q", Hidden: 1}, Keys: hiddenKey}).Stream(testCtx(t), h, nil, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	if tag != "SELECT 48" {
		t.Errorf("tag = %q", tag)
	}
	if got, want := c.values(), interleavedWant(allShards, perShard); !slices.Equal(got, want) {
		t.Errorf("rows =\n%q\nwant\n%q", got, want)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.problems {
		t.Error(p)
	}
	for _, s := range allShards {
		if h.maxHeld[s] != 1 {
			t.Errorf("shard %s: up to %d batches held at once, want 1", s, h.maxHeld[s])
		}
		if want := (perShard + (slices.Index(allShards, s) + 1) - 1) / (slices.Index(allShards, s) + 1); len(h.handed[s]) != want {
			t.Errorf("shard %s handed %d row batches, want %d", s, len(h.handed[s]), want)
		}
	}
}

// TestMergeSortShardError proves an error from one shard in the middle of
// its rows fails the statement with that very error, after the rows merged
// before it, and cancels the other shards, which return.
func TestMergeSortShardError(t *testing.T) {
	defer goleak.VerifyNone(t)
	boom := &shardError{code: "22012"}
	scripts := interleaved(allShards, 5, func(int) int { return 1 })
	// s1's rows come first in the merged order (keys -2, -1, then 1, 5,
	// ...), and it fails after two.
	s1 := scripts["s1"]
	s1.Rows[0][1], s1.Rows[0][2] = []byte("-2"), []byte("-2")
	s1.Rows[1][1], s1.Rows[1][2] = []byte("-1"), []byte("-1")
	s1.Stop, s1.StopAfter, s1.Err = stopFail, 2, boom
	f := newFake(newTopo(), scripts)
	// x records whether each shard's context was cancelled by the time
	// its query returned.
	x := &ctxExec{fakeExec: f, cancelled: map[string]error{}}
	var c collector
	_, err := (&MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q", Hidden: 1}, Keys: hiddenKey}).Stream(testCtx(t), x, nil, c.emit)
	var se *shardError
	if !errors.As(err, &se) || se != boom {
		t.Fatalf("err = %v (%T), want the shard's error", err, err)
	}
	if got, want := c.values(), []string{"s1-0|-2", "s1-1|-1"}; !slices.Equal(got, want) {
		t.Errorf("client got %q, want %q", got, want)
	}
	for _, s := range []string{"s0", "s2", "s3"} {
		done, err := f.Returned(s)
		if !done || err == nil {
			t.Errorf("shard %s: returned %v, %v; want stopped with an error", s, done, err)
		}
		x.mu.Lock()
		cerr := x.cancelled[s]
		x.mu.Unlock()
		if !errors.Is(cerr, context.Canceled) {
			t.Errorf("shard %s's query returned with its context not cancelled (%v)", s, cerr)
		}
	}
	if n := f.Active(); n != 0 {
		t.Errorf("%d shard queries still running", n)
	}
}

// TestMergeSortShardErrorWhileWaiting proves a shard that fails while the
// merge waits for another shard's rows fails the statement at once: the
// slow shard, blocked until cancelled, is cancelled and returns, rather
// than the statement waiting for it.
func TestMergeSortShardErrorWhileWaiting(t *testing.T) {
	defer goleak.VerifyNone(t)
	// The guard: a merge that waits for the blocked shard ends here.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	boom := &shardError{code: "42P01"}
	var f *fakeExec
	scripts := interleaved(allShards, 3, func(int) int { return 1 })
	// s0 answers with Fields, then is slow to give its first row.
	scripts["s0"].Stop, scripts["s0"].StopAfter = stopBlock, 0
	// s1 fails before its first row, once s0 is blocked.
	scripts["s1"].Start = func(ctx context.Context) error {
		if err := f.await(ctx, func() bool { return f.blocked["s0"] }); err != nil {
			return err
		}
		return boom
	}
	f = newFake(newTopo(), scripts)
	var c collector
	_, err := (&MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q", Hidden: 1}, Keys: hiddenKey}).Stream(ctx, f, nil, c.emit)
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want the failing shard's error (the merge waited for the blocked shard until the guard timed out?)", err)
	}
	if done, err := f.Returned("s0"); !done || !errors.Is(err, context.Canceled) {
		t.Errorf("blocked shard s0: returned %v, %v; want cancelled", done, err)
	}
	if c.rowsN != 0 {
		t.Errorf("client got %d rows", c.rowsN)
	}
	if n := f.Active(); n != 0 {
		t.Errorf("%d shard queries still running", n)
	}
}

// TestMergeSortEmitError proves an error from the client's emit, on Fields
// or on rows, stops every shard and is the statement's error, and emit is
// not called again.
func TestMergeSortEmitError(t *testing.T) {
	defer goleak.VerifyNone(t)
	errEmit := errors.New("client went away")
	for _, failAt := range []int{0, 1, 2, 5} { // 0: the Fields batch
		t.Run(fmt.Sprintf("batch %d", failAt), func(t *testing.T) {
			f := newFake(newTopo(), interleaved(allShards, 4, func(int) int { return 1 }))
			calls, after := 0, 0
			failed := false
			emit := func(b *Batch) error {
				if failed {
					after++
					return nil
				}
				if calls++; calls-1 == failAt {
					failed = true
					return errEmit
				}
				return nil
			}
			_, err := (&MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q", Hidden: 1}, Keys: hiddenKey}).Stream(testCtx(t), f, nil, emit)
			if err != errEmit {
				t.Fatalf("err = %v, want emit's error", err)
			}
			if after != 0 {
				t.Errorf("emit called %d times after it failed", after)
			}
			for _, s := range allShards {
				if done, err := f.Returned(s); !done || err == nil {
					t.Errorf("shard %s: returned %v, %v; want stopped with an error", s, done, err)
				}
			}
			if n := f.Active(); n != 0 {
				t.Errorf("%d shard queries still running", n)
			}
		})
	}
}

// TestMergeSortParentCancel proves cancelling the statement's context ends
// the merge with the context's error, whether the merge is passing rows on
// or waiting for a shard, and every shard's query ends.
func TestMergeSortParentCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("mid-stream", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		scripts := interleaved(allShards, 4, func(int) int { return 1 })
		for _, sc := range scripts {
			// A shard notices cancellation between batches, and blocks
			// once its rows are out until cancelled.
			sc.Before = func(ctx context.Context, _ int) error { return ctx.Err() }
			sc.Stop, sc.StopAfter = stopBlock, 4
		}
		f := newFake(newTopo(), scripts)
		c := collector{}
		c.onRows = func(*Batch) error {
			if c.rowsN >= 2 {
				cancel()
			}
			return nil
		}
		_, err := (&MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q", Hidden: 1}, Keys: hiddenKey}).Stream(ctx, f, nil, c.emit)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if c.rowsN >= 16 {
			t.Errorf("client got all %d rows", c.rowsN)
		}
		if n := f.Active(); n != 0 {
			t.Errorf("%d shard queries still running", n)
		}
	})
	t.Run("waiting for a shard", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		scripts := interleaved(allShards, 2, func(int) int { return 1 })
		scripts["s2"].Stop, scripts["s2"].StopAfter = stopBlock, 1
		f := newFake(newTopo(), scripts)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if f.await(ctx, func() bool { return f.blocked["s2"] }) == nil {
				cancel()
			}
		}()
		_, err := (&MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q", Hidden: 1}, Keys: hiddenKey}).Stream(ctx, f, nil, (&collector{}).emit)
		<-done
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if n := f.Active(); n != 0 {
			t.Errorf("%d shard queries still running", n)
		}
	})
}

// TestMergeSortBrokenShards proves a shard whose columns differ in number
// from the others' fails the statement with XX000, and a key value the
// merge cannot read fails it too; every shard's query ends.
func TestMergeSortBrokenShards(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name     string
		edit     func(scripts map[string]*script)
		code     string
		contains string
	}{
		{"a shard with an extra column", func(sc map[string]*script) {
			sc["s2"].Fields = append(sc["s2"].Fields, typedField("extra", oidText, 0))
			for i := range sc["s2"].Rows {
				sc["s2"].Rows[i] = append(sc["s2"].Rows[i], []byte("x"))
			}
		}, CodeInternal, ""},
		{"a shard with a column fewer", func(sc map[string]*script) {
			sc["s1"].Fields = sc["s1"].Fields[:2]
			for i := range sc["s1"].Rows {
				sc["s1"].Rows[i] = sc["s1"].Rows[i][:2]
			}
		}, CodeInternal, ""},
		{"unreadable text bigint", func(sc map[string]*script) {
			sc["s3"].Rows[0][2] = []byte("3x")
		}, CodeInternal, "3x"},
		{"unreadable binary bigint", func(sc map[string]*script) {
			for _, s := range sc {
				s.Fields[2].Format = 1
				for _, r := range s.Rows {
					n, _ := strconv.ParseInt(string(r[2]), 10, 64)
					r[2] = binary.BigEndian.AppendUint64(nil, uint64(n))
				}
			}
			sc["s0"].Rows[1][2] = []byte{0, 0, 0, 1} // 4 bytes
		}, CodeInternal, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scripts := interleaved(allShards, 3, func(int) int { return 2 })
			tc.edit(scripts)
			f := newFake(newTopo(), scripts)
			var c collector
			_, err := (&MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q", Hidden: 1}, Keys: hiddenKey}).Stream(testCtx(t), f, nil, c.emit)
			if err == nil {
				t.Fatalf("no error; client got %q", c.values())
			}
			e := wantCode(t, err, tc.code)
			if !strings.Contains(e.Message, tc.contains) {
				t.Errorf("message %q does not name %q", e.Message, tc.contains)
			}
			for _, s := range allShards {
				if done, _ := f.Returned(s); !done {
					t.Errorf("shard %s never returned", s)
				}
			}
			if n := f.Active(); n != 0 {
				t.Errorf("%d shard queries still running", n)
			}
		})
	}
}

// TestMergeSortEmptyShards proves shards without rows take no part in the
// order, whichever they are, and a result without rows still gives the
// client Fields once.
func TestMergeSortEmptyShards(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name  string
		empty []string
	}{
		{"first and third empty", []string{"s0", "s2"}},
		{"last empty", []string{"s3"}},
		{"all but one empty", []string{"s0", "s1", "s3"}},
		{"all empty", allShards},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scripts := interleaved(allShards, 3, func(int) int { return 2 })
			var want []string
			for _, w := range interleavedWant(allShards, 3) {
				s, _, _ := strings.Cut(w, "-")
				if !slices.Contains(tc.empty, s) {
					want = append(want, w)
				}
			}
			for _, s := range tc.empty {
				scripts[s].Rows, scripts[s].Tag = nil, "SELECT 0"
			}
			f := newFake(newTopo(), scripts)
			var c collector
			tag, err := (&MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q", Hidden: 1}, Keys: hiddenKey}).Stream(testCtx(t), f, nil, c.emit)
			if err != nil {
				t.Fatal(err)
			}
			if wantTag := Tag(fmt.Sprintf("SELECT %d", len(want))); tag != wantTag {
				t.Errorf("tag = %q, want %q", tag, wantTag)
			}
			wantVisibleFields(t, &c, []Field{typedField("label", oidText, 0), typedField("k", oidInt8, 0)})
			if got := c.values(); !slices.Equal(got, want) {
				t.Errorf("rows = %q, want %q", got, want)
			}
		})
	}
}

// TestMergeSortSingleShard proves a MergeSort whose target resolves to one
// shard passes that shard's rows on, in its order, without the hidden
// columns, with its tag.
func TestMergeSortSingleShard(t *testing.T) {
	defer goleak.VerifyNone(t)
	scripts := interleaved([]string{"s3"}, 5, func(int) int { return 2 })
	f := newFake(newTopo(), scripts)
	target, _ := mergeTarget(t, 1)
	var c collector
	tag, err := (&MergeSort{Target: target, Query: Query{SQL: "q", Hidden: 1}, Keys: hiddenKey}).Stream(testCtx(t), f, nil, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	if tag != "SELECT 5" {
		t.Errorf("tag = %q", tag)
	}
	wantVisibleFields(t, &c, []Field{typedField("label", oidText, 0), typedField("k", oidInt8, 0)})
	if got, want := c.values(), interleavedWant([]string{"s3"}, 5); !slices.Equal(got, want) {
		t.Errorf("rows = %q, want %q", got, want)
	}
	if got := callShards(f.Calls()); !slices.Equal(got, []string{"s3"}) {
		t.Errorf("queried %v", got)
	}
}

// TestMergeSortOnlyHiddenColumns proves a result whose every column is
// hidden reaches the client as Fields with no columns (not a missing
// Fields batch) and rows with no columns.
func TestMergeSortOnlyHiddenColumns(t *testing.T) {
	defer goleak.VerifyNone(t)
	scripts := map[string]*script{}
	for i, s := range allShards {
		scripts[s] = &script{Fields: []Field{typedField("k", oidInt8, 0)}, Rows: [][][]byte{row(strconv.Itoa(i)), row(strconv.Itoa(i + 4))}, Tag: "SELECT 2"}
	}
	f := newFake(newTopo(), scripts)
	var c collector
	tag, err := (&MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q", Hidden: 1}, Keys: hiddenKey}).Stream(testCtx(t), f, nil, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	if tag != "SELECT 8" {
		t.Errorf("tag = %q", tag)
	}
	wantVisibleFields(t, &c, []Field{})
	if c.rowsN != 8 {
		t.Errorf("client got %d rows, want 8", c.rowsN)
	}
	for _, b := range c.batches {
		for _, r := range b.Rows {
			if len(r) != 0 {
				t.Errorf("row %q has columns", r)
			}
		}
	}
}

// TestShardsOfMergedPlans: the shards of a plan whose leaves merge (under
// Limit and Aggregate) are every shard the merge reaches — what the proxy
// decides transactions and row-limited Executes by.
func TestShardsOfMergedPlans(t *testing.T) {
	topo := newTopo()
	ms := &MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "q"}}
	plan := &Route{Target: Target{Kind: TargetAll}, Multi: &Limit{Input: &Aggregate{Input: ms}}}
	if got := Shards(plan, topo, nil); !slices.Equal(got, topo.Shards()) {
		t.Fatalf("Shards = %v, want %v", got, topo.Shards())
	}
}

// TestMergeSortLean proves the shards run the statement without collation
// names once a run showed the keys' types have none, that every plan
// sharing the KeyTypes learns it, and that a key whose column turned into
// text since is refused (0A000) rather than merged under an unknown
// collation, after which the names are asked for again.
func TestMergeSortLean(t *testing.T) {
	defer goleak.VerifyNone(t)
	data := map[string][]string{"s0": {"1", "4"}, "s1": {"2", "9"}, "s2": {"3"}, "s3": {}}
	key := SortKey{Ordinal: 2, Collation: 0, Text: "n"}
	types := &KeyTypes{}
	plan := func() *MergeSort {
		return &MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "probe", Hidden: 1}, Keys: []SortKey{key}, Lean: "lean",
			Probes: []Probe{{Column: 0, Ordinal: 2}}, Types: types}
	}
	run := func(oid uint32, coll string) ([]string, error) {
		hidden := func(string) [][]byte { return [][]byte{[]byte(coll)} }
		if coll == "" {
			hidden = func(string) [][]byte { return [][]byte{nil} }
		}
		f := newFake(newTopo(), textScripts(data, oid, []Field{typedField("coll", oidText, 0)}, hidden, false))
		var c collector
		_, err := plan().Stream(testCtx(t), f, nil, c.emit)
		var sqls []string
		for _, call := range f.Calls() {
			sqls = append(sqls, call.SQL)
		}
		slices.Sort(sqls)
		return slices.Compact(sqls), err
	}

	if sqls, err := run(oidInt8, "en_US.UTF-8"); err != nil || !slices.Equal(sqls, []string{"probe"}) {
		t.Fatalf("first run: shards ran %q, err %v; want the probing statement", sqls, err)
	}
	if sqls, err := run(oidInt8, ""); err != nil || !slices.Equal(sqls, []string{"lean"}) {
		t.Fatalf("second run of bigint keys: shards ran %q, err %v; want the lean statement", sqls, err)
	}
	sqls, err := run(oidText, "")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeFeatureNotSupported || !strings.Contains(e.Message, "changed its type") {
		t.Fatalf("lean run whose key is text now: %v, want 0A000 about the changed type", err)
	}
	if !slices.Equal(sqls, []string{"lean"}) {
		t.Fatalf("shards ran %q", sqls)
	}
	if sqls, err := run(oidText, "C"); err != nil || !slices.Equal(sqls, []string{"probe"}) {
		t.Fatalf("after the refusal: shards ran %q, err %v; want the probing statement", sqls, err)
	}
	if sqls, err := run(oidText, "C"); err != nil || !slices.Equal(sqls, []string{"probe"}) {
		t.Fatalf("text keys: shards ran %q, err %v; want the probing statement every time", sqls, err)
	}
}

// TestScatterLean proves a Scatter runs its lean statement once a run saw
// its probes' subjects have types without collations, and refuses a lean
// run that meets one with a collation.
func TestScatterLean(t *testing.T) {
	defer goleak.VerifyNone(t)
	data := map[string][]string{"s0": {"1"}, "s1": {"2"}, "s2": {"3"}, "s3": {}}
	types := &KeyTypes{}
	run := func(oid uint32) ([]string, error) {
		f := newFake(newTopo(), textScripts(data, oid, []Field{typedField("det", oidBool, 0)}, func(string) [][]byte { return [][]byte{nil} }, false))
		s := &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "probe", Hidden: 1, Describe: true},
			Lean: "lean", Probes: []Probe{{Column: 0, Ordinal: 2}}, Types: types}
		var c collector
		_, err := s.Stream(testCtx(t), f, nil, c.emit)
		var sqls []string
		for _, call := range f.Calls() {
			sqls = append(sqls, call.SQL)
		}
		slices.Sort(sqls)
		return slices.Compact(sqls), err
	}
	for i, want := range []string{"probe", "lean", "lean"} {
		if sqls, err := run(oidInt8); err != nil || !slices.Equal(sqls, []string{want}) {
			t.Fatalf("run %d of bigint columns: shards ran %q, err %v; want %s", i+1, sqls, err, want)
		}
	}
	if _, err := run(oidText); !strings.Contains(fmt.Sprint(err), "changed its type") {
		t.Fatalf("lean run whose column is text now: %v, want a refusal", err)
	}
	if sqls, err := run(oidText); err != nil || !slices.Equal(sqls, []string{"probe"}) {
		t.Fatalf("after the refusal: shards ran %q, err %v; want the probing statement", sqls, err)
	}
}
