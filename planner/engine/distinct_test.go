package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// distinctExec is the fake with session settings.
type distinctExec struct {
	*fakeExec
	settings sessionSettings
}

func (x distinctExec) Setting(name string) string { return x.settings.Setting(name) }

// runDistinct runs d over a fake with scripts and settings and returns
// what the client got.
func runDistinct(t *testing.T, d *HashDistinct, scripts map[string]*script, settings sessionSettings) (*collector, Tag, error) {
	t.Helper()
	x := distinctExec{newFake(newTopo(), scripts), settings}
	c := &collector{}
	tag, err := d.Stream(testCtx(t), x, nil, c.emit)
	if c.badOrder {
		t.Errorf("rows before Fields")
	}
	return c, tag, err
}

// oneColumn returns rows of one value each; "NULL" is SQL NULL.
func oneColumn(vals ...string) [][][]byte {
	rows := make([][][]byte, len(vals))
	for i, v := range vals {
		rows[i] = row(v)
	}
	return rows
}

func bits8(u uint64) string { return string(binary.BigEndian.AppendUint64(nil, u)) }
func bits4(u uint32) string { return string(binary.BigEndian.AppendUint32(nil, u)) }

// TestHashDistinctValues proves HashDistinct keeps the first of the values
// Postgres's = calls equal, type by type and in both formats, and drops
// the later ones.
func TestHashDistinctValues(t *testing.T) {
	defer goleak.VerifyNone(t)
	const uuid1, uuid2 = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"
	hour := int64(3600e6)
	tests := []struct {
		name   string
		oid    uint32
		format int16
		vals   []string
		keep   []int // indexes of vals the client gets, in order
	}{
		{"int8", oidInt8, 0, []string{"1", "2", "1", "3", "2", "-1"}, []int{0, 1, 3, 5}},
		{"int8 NULLs", oidInt8, 0, []string{"NULL", "0", "NULL", "NULL", "0"}, []int{0, 1}},
		{"int4 binary", oidInt4, 1, []string{send32(1), send32(2), send32(1), send32(-1)}, []int{0, 1, 3}},
		{"int2", oidInt2, 0, []string{"7", "7", "-7"}, []int{0, 2}},
		{"oid", oidOID, 0, []string{"4294967295", "1", "4294967295"}, []int{0, 1}},
		{"bool", oidBool, 0, []string{"t", "f", "t", "NULL", "f"}, []int{0, 1, 3}},
		{"bool binary", oidBool, 1, []string{"\x01", "\x00", "\x01"}, []int{0, 1}},
		{"numeric by value", oidNumeric, 0,
			[]string{"1.5", "1.50", "1.500", "2", "2.0", "NaN", "NaN", "0", "0.00", "-1.5", "-1.50", "Infinity", "-Infinity", "Infinity", "100", "100.00", "10"},
			[]int{0, 3, 5, 7, 9, 11, 12, 14, 16}},
		{"numeric binary by value", oidNumeric, 1,
			[]string{decSend(0, 0, 1, 1, 5000), decSend(0, 0, 2, 1, 5000), decSend(0, 0, 0, 100), decSend(0, 0, 1, 100),
				decSend(0, 0xC000, 0), decSend(0, 0xC000, 0), decSend(0, 0, 0), decSend(0, 0, 3), decSend(0, 0x4000, 1, 1, 5000),
				decSend(0, 0, 8, 1, 5000, 0)},
			[]int{0, 2, 4, 6, 8}},
		{"float8 -0 and NaN", oidFloat8, 0,
			[]string{"0", "-0", "NaN", "NaN", "1.5", "Infinity", "-Infinity", "1.5", "Infinity", "0.1", "0.30000000000000004", "0.3"},
			[]int{0, 2, 4, 5, 6, 9, 10, 11}},
		{"float8 binary -0 and NaNs", oidFloat8, 1,
			[]string{sendF8(0), sendF8(math.Copysign(0, -1)), sendF8(math.NaN()), bits8(0xfff8000000000000), bits8(0x7ff0000000000001), sendF8(1)},
			[]int{0, 2, 5}},
		{"float4 binary -0 and NaNs", oidFloat4, 1,
			[]string{sendF4(0), sendF4(float32(math.Copysign(0, -1))), bits4(0x7fc00000), bits4(0xffc00001), sendF4(0.1)},
			[]int{0, 2, 4}},
		{"float4", oidFloat4, 0, []string{"0.1", "-0", "0", "0.1", "NaN"}, []int{0, 1, 4}},
		{"text", oidText, 0, []string{"a", "a ", "a", "A", "", "NULL", ""}, []int{0, 1, 3, 4, 5}},
		{"varchar", oidVarchar, 0, []string{"a", "a ", "a"}, []int{0, 1}},
		{"name", oidName, 1, []string{"a", "b", "a"}, []int{0, 1}},
		{"bpchar trailing spaces", oidBpchar, 0, []string{"a", "a  ", "a ", "b", "", "   ", " a", "NULL"}, []int{0, 3, 4, 6, 7}},
		{"bpchar binary", oidBpchar, 1, []string{"ab  ", "ab", "ab \t"}, []int{0, 2}},
		{"bytea hex and escape", oidBytea, 0, []string{`\x41`, `A`, `\101`, `\x61`, `\\`, `\x5c`, `\x`, ``}, []int{0, 3, 4, 6}},
		{"bytea binary", oidBytea, 1, []string{"A", "a", "A"}, []int{0, 1}},
		{"uuid", oidUUID, 0, []string{uuid1, uuid2, uuid1}, []int{0, 1}},
		{"date", oidDate, 0, []string{"2024-01-01", "2024-01-01", "infinity", "2024-01-02", "infinity", "0001-01-01 BC"}, []int{0, 2, 3, 5}},
		{"date binary", oidDate, 1, []string{send32(1), send32(1), send32(math.MaxInt32)}, []int{0, 2}},
		{"timestamp", oidTimestamp, 0, []string{"2024-01-01 00:00:00", "2024-01-01 00:00:00.5", "2024-01-01 00:00:00"}, []int{0, 1}},
		{"timestamptz across offsets", oidTimestamptz, 0,
			[]string{"2024-01-01 00:00:00+00", "2024-01-01 01:00:00+01", "2023-12-31 19:00:00-05", "2024-01-01 00:00:00.5+00"},
			[]int{0, 3}},
		{"timestamptz binary", oidTimestamptz, 1, []string{send64(0), send64(1), send64(0)}, []int{0, 1}},
		{"interval spans", oidInterval, 0,
			[]string{"1 mon", "30 days", "720:00:00", "1 day", "24:00:00", "1 year", "360 days", "12 mons", "-1 days +24:00:00", "00:00:00"},
			[]int{0, 3, 5, 8}},
		{"interval binary spans", oidInterval, 1,
			[]string{sendInterval(0, 0, 1), sendInterval(0, 30, 0), sendInterval(720*hour, 0, 0), sendInterval(0, 1, 0), sendInterval(24*hour, 0, 0)},
			[]int{0, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := []Field{typedField("v", tt.oid, tt.format)}
			// Two rows a batch: duplicates within a batch and across batches.
			in := &sortInput{fields: fs, tag: "SELECT 99"}
			rows := oneColumn(tt.vals...)
			for len(rows) > 0 {
				n := min(2, len(rows))
				in.batches, rows = append(in.batches, rows[:n]), rows[n:]
			}
			c, tag, err := runDistinct(t, &HashDistinct{Input: in, Columns: []string{"v"}}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, i := range tt.keep {
				want = append(want, tt.vals[i])
			}
			if got := c.values(); !slices.Equal(got, want) {
				t.Errorf("rows\n%q, want\n%q", got, want)
			}
			if want := Tag(fmt.Sprintf("SELECT %d", len(tt.keep))); tag != want {
				t.Errorf("tag %q, want %q", tag, want)
			}
			wantVisibleFields(t, c, fs)
		})
	}
}

// TestHashDistinctFormatsAgree proves a value's key is the same whether it
// arrives in text or in binary.
func TestHashDistinctFormatsAgree(t *testing.T) {
	for _, tt := range []struct {
		oid          uint32
		text, binary string
	}{
		{oidInt8, "-42", send64(-42)},
		{oidInt4, "42", send32(42)},
		{oidInt2, "-7", send16(-7)},
		{oidOID, "4294967295", bits4(math.MaxUint32)},
		{oidBool, "t", "\x01"},
		{oidFloat8, "-0", sendF8(0)},
		{oidFloat8, "NaN", bits8(0xfff8000000000001)},
		{oidFloat8, "1.5", sendF8(1.5)},
		{oidFloat4, "0.1", sendF4(0.1)},
		{oidNumeric, "1.50", decSend(0, 0, 1, 1, 5000)},
		{oidNumeric, "-12345.678", decSend(1, 0x4000, 3, 1, 2345, 6780)},
		{oidNumeric, "0.000", decSend(0, 0, 0)},
		{oidNumeric, "NaN", decSend(0, 0xC000, 0)},
		{oidNumeric, "-Infinity", decSend(0, 0xF000, 0)},
		{oidText, "héllo", "héllo"},
		{oidBpchar, "ab   ", "ab"},
		{oidBytea, `\x00ff`, "\x00\xff"},
		{oidBytea, `a\\b\000`, "a\\b\x00"},
		{oidUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "\xa0\xee\xbc\x99\x9c\x0b\x4e\xf8\xbb\x6d\x6b\xb9\xbd\x38\x0a\x11"},
		{oidDate, "2000-01-02", send32(1)},
		{oidDate, "-infinity", send32(math.MinInt32)},
		{oidTimestamp, "2000-01-01 00:00:01", send64(1e6)},
		{oidTimestamptz, "2000-01-01 01:00:00+01", send64(0)},
		{oidInterval, "1 mon", sendInterval(0, 30, 0)},
		{oidInterval, "1 day 01:00:00", sendInterval(25*3600e6, 0, 0)},
	} {
		t.Run(fmt.Sprintf("%s %s", typeName(tt.oid), tt.text), func(t *testing.T) {
			var keys [2]string
			for format, v := range []string{tt.text, tt.binary} {
				k, err := distinctKey("DISTINCT v", tt.oid, int16(format), sessionSettings{})
				if err != nil {
					t.Fatal(err)
				}
				key, ok := k(nil, []byte(v))
				if !ok {
					t.Fatalf("format %d cannot read %q", format, v)
				}
				keys[format] = string(key)
			}
			if keys[0] != keys[1] {
				t.Errorf("text key %x, binary key %x", keys[0], keys[1])
			}
		})
	}
}

// TestHashDistinctRows proves rows are equal when all their visible columns
// are, NULLs included, whatever their hidden columns, which the client
// does not get; and that the columns of a key do not run into each other.
func TestHashDistinctRows(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("a", oidText, 0), typedField("b", oidText, 0), typedField("n", oidNumeric, 0),
		typedField("coll", oidText, 0), typedField("junk", 3802, 0)}
	rows := [][][]byte{
		row("ab", "c", "1", "C", `{}`),
		row("a", "bc", "1", "C", `{}`),
		row("ab", "c", "1.0", "C", `{"x": 1}`), // = the first
		row("NULL", "c", "1", "C", `{}`),
		row("", "c", "1", "C", `{}`),
		row("NULL", "c", "1.00", "C", `[]`), // = the fourth
		row("NULL", "NULL", "NULL", "C", `{}`),
		row("NULL", "NULL", "NULL", "C", `{}`),
		row("abc", "", "1", "C", `{}`),
		row("ab", "c", "NULL", "C", `{}`),
		row("a\x01", "b", "1", "C", `{}`),
		row("a", "\x01b", "1", "C", `{}`),
	}
	in := &sortInput{fields: fs, batches: [][][][]byte{rows[:3], rows[3:]}}
	c, tag, err := runDistinct(t, &HashDistinct{Input: in, Columns: []string{"a", "b", "n"}, Hidden: 2}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ab|c|1", "a|bc|1", "NULL|c|1", "|c|1", "NULL|NULL|NULL", "abc||1", "ab|c|NULL", "a\x01|b|1", "a|\x01b|1"}
	if got := c.values(); !slices.Equal(got, want) {
		t.Errorf("rows\n%q, want\n%q", got, want)
	}
	if tag != "SELECT 9" {
		t.Errorf("tag %q, want SELECT 9", tag)
	}
	wantVisibleFields(t, c, fs[:3])
}

// TestHashDistinctAcrossShards proves rows duplicated within and across
// shards reach the client once each, and the tag counts them.
func TestHashDistinctAcrossShards(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("k", oidInt8, 0), typedField("x", oidNumeric, 0), typedField("coll", oidText, 0)}
	target, shards := mergeTarget(t, 3)
	perShard := [][][][]byte{
		{row("1", "1.5", "C"), row("2", "2", "C"), row("1", "1.50", "C"), row("3", "NULL", "C")},
		{row("2", "2.000", "C"), row("4", "4", "C"), row("3", "NULL", "C"), row("1", "1.5", "C")},
		{row("5", "5", "C"), row("1", "1.500", "C"), row("4", "4.0", "C"), row("6", "NaN", "C"), row("6", "NaN", "C")},
	}
	scripts := map[string]*script{}
	for i, s := range shards {
		scripts[s] = &script{Fields: fs, Rows: perShard[i], BatchSize: 2, Tag: Tag(fmt.Sprintf("SELECT %d", len(perShard[i])))}
	}
	d := &HashDistinct{Input: &Scatter{Target: target, Query: Query{SQL: "SELECT DISTINCT k, x, coll FROM t", Hidden: 1}},
		Columns: []string{"k", "x"}, Hidden: 1}
	c, tag, err := runDistinct(t, d, scripts, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Which of equal rows comes first depends on the shards' timing; the
	// integer says which row it is.
	got := map[string]int{}
	for _, v := range c.values() {
		k, x, _ := strings.Cut(v, "|")
		got[k]++
		if !strings.HasPrefix(x, k) && !(k == "3" && x == "NULL") && !(k == "6" && x == "NaN") {
			t.Errorf("row %q", v)
		}
	}
	for k := 1; k <= 6; k++ {
		if n := got[strconv.Itoa(k)]; n != 1 {
			t.Errorf("k=%d came %d times", k, n)
		}
	}
	if tag != "SELECT 6" {
		t.Errorf("tag %q, want SELECT 6", tag)
	}
	wantVisibleFields(t, c, fs[:2])
}

// TestHashDistinctStreams proves a new row reaches the client before the
// shard sends its next batch, not when the input ends.
func TestHashDistinctStreams(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("k", oidInt8, 0)}
	target, shards := mergeTarget(t, 1)
	c := &collector{}
	scripts := map[string]*script{shards[0]: {Fields: fs, Rows: oneColumn("1", "1", "2", "1", "3"), Tag: "SELECT 5",
		// Batch n (the Fields are batch 0) holds row n-1: before it, the
		// client must have every new row of the earlier ones.
		Before: func(_ context.Context, n int) error {
			if want := []int{0, 0, 1, 1, 2, 2}[n]; c.rowsN != want {
				return fmt.Errorf("before batch %d the client has %d rows, want %d", n, c.rowsN, want)
			}
			return nil
		}}}
	x := newFake(newTopo(), scripts)
	d := &HashDistinct{Input: &Scatter{Target: target, Query: Query{SQL: "SELECT DISTINCT k FROM t"}}, Columns: []string{"k"}}
	tag, err := d.Stream(testCtx(t), x, nil, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.values(), []string{"1", "2", "3"}; !slices.Equal(got, want) || tag != "SELECT 3" {
		t.Errorf("rows %q tag %q, want %q SELECT 3", got, tag, want)
	}
}

// TestHashDistinctStreamsWhileShardsRun proves rows reach the client while
// shards still run, and that cancelling the statement's context then ends
// it with the context's error, every shard stopped.
func TestHashDistinctStreamsWhileShardsRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("k", oidInt8, 0)}
	target, shards := mergeTarget(t, 4)
	scripts := map[string]*script{}
	for _, s := range shards {
		scripts[s] = &script{Fields: fs, Rows: oneColumn("1", "2"), Stop: stopBlock, StopAfter: 2}
	}
	x := newFake(newTopo(), scripts)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	c := &collector{onRows: func(b *Batch) error {
		cancel() // the client has a row while every shard still runs
		return nil
	}}
	d := &HashDistinct{Input: &Scatter{Target: target, Query: Query{SQL: "SELECT DISTINCT k FROM t"}}, Columns: []string{"k"}}
	_, err := d.Stream(ctx, x, nil, c.emit)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if c.rowsN == 0 || c.rowsN > 2 {
		t.Errorf("client got %d rows, want 1 or 2", c.rowsN)
	}
	for _, s := range shards {
		if done, _ := x.Returned(s); !done {
			t.Errorf("shard %s still runs", s)
		}
	}
}

// TestHashDistinctShardError proves a shard failing mid-stream fails the
// statement with its error.
func TestHashDistinctShardError(t *testing.T) {
	defer goleak.VerifyNone(t)
	boom := &shardError{code: "57014"}
	fs := []Field{typedField("k", oidInt8, 0)}
	target, shards := mergeTarget(t, 2)
	scripts := map[string]*script{
		shards[0]: {Fields: fs, Rows: oneColumn("1", "2", "3"), Tag: "SELECT 3"},
		shards[1]: {Fields: fs, Rows: oneColumn("3", "4", "5"), Stop: stopFail, StopAfter: 2, Err: boom},
	}
	d := &HashDistinct{Input: &Scatter{Target: target, Query: Query{SQL: "SELECT DISTINCT k FROM t"}}, Columns: []string{"k"}}
	_, _, err := runDistinct(t, d, scripts, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
}

// TestHashDistinctInputError proves an error the input returns after its
// rows passes through as it is.
func TestHashDistinctInputError(t *testing.T) {
	defer goleak.VerifyNone(t)
	boom := &shardError{code: "XX001"}
	in := &sortInput{fields: []Field{typedField("k", oidInt8, 0)}, batches: [][][][]byte{oneColumn("1", "1", "2")}, err: boom}
	c, _, err := runDistinct(t, &HashDistinct{Input: in, Columns: []string{"k"}}, nil, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
	if c.rowsN != 2 {
		t.Errorf("client got %d rows before the error, want 2", c.rowsN)
	}
}

// TestHashDistinctRefusals proves columns whose values the gateway cannot
// tell equal as Postgres does are refused with 0A000 when the columns
// arrive, before the client gets anything, and that hidden columns of any
// type are not.
func TestHashDistinctRefusals(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name     string
		fs       []Field
		hidden   int
		settings sessionSettings
		message  string
	}{
		{"json", []Field{typedField("k", oidInt8, 0), typedField("doc", 114, 0)}, 0, nil,
			"DISTINCT doc of type json across shards is not supported"},
		{"json binary", []Field{typedField("doc", 114, 1)}, 0, nil,
			"DISTINCT doc of type json across shards is not supported"},
		{"unknown type", []Field{typedField("doc", 99999, 0), typedField("coll", oidText, 0)}, 1, nil,
			"DISTINCT doc of type with OID 99999 across shards is not supported"},
		{"float text rounded", []Field{typedField("f", oidFloat8, 0)}, 0, sessionSettings{"extra_float_digits": "0"},
			`DISTINCT f of type double precision across shards is not supported with extra_float_digits "0"`},
		{"date text in German", []Field{typedField("d", oidDate, 0)}, 0, sessionSettings{"DateStyle": "German, DMY"},
			`DISTINCT d of type date across shards is not supported with DateStyle "German, DMY"`},
		{"interval text in ISO 8601", []Field{typedField("i", oidInterval, 0)}, 0, sessionSettings{"IntervalStyle": "iso_8601"},
			`DISTINCT i of type interval across shards is not supported with IntervalStyle "iso_8601"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cols []string
			for _, f := range tt.fs[:len(tt.fs)-tt.hidden] {
				cols = append(cols, f.Name)
			}
			vals := make([]string, len(tt.fs))
			for i := range vals {
				vals[i] = "1"
			}
			target, shards := mergeTarget(t, 2)
			scripts := map[string]*script{}
			for _, s := range shards {
				scripts[s] = &script{Fields: tt.fs, Rows: [][][]byte{row(vals...)}, Tag: "SELECT 1"}
			}
			d := &HashDistinct{Input: &Scatter{Target: target, Query: Query{SQL: "SELECT DISTINCT ...", Hidden: tt.hidden}}, Columns: cols, Hidden: tt.hidden}
			c, _, err := runDistinct(t, d, scripts, tt.settings)
			if e := wantCode(t, err, CodeFeatureNotSupported); e.Message != tt.message {
				t.Errorf("message %q, want %q", e.Message, tt.message)
			}
			if len(c.batches) != 0 {
				t.Errorf("client got %+v", c.batches)
			}
		})
	}

	// The same settings do not matter in binary.
	for _, f := range []Field{typedField("f", oidFloat8, 1), typedField("d", oidDate, 1), typedField("i", oidInterval, 1)} {
		settings := sessionSettings{"extra_float_digits": "0", "DateStyle": "German, DMY", "IntervalStyle": "iso_8601"}
		if _, err := distinctKey("DISTINCT "+f.Name, f.DataTypeOID, f.Format, settings); err != nil {
			t.Errorf("%s in binary: %v", typeName(f.DataTypeOID), err)
		}
	}
}

// TestHashDistinctBrokenShards proves shards answering with other columns
// than planned, or values the gateway cannot read, fail with XX000.
func TestHashDistinctBrokenShards(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tt := range []struct {
		name string
		d    *HashDistinct
		fs   []Field
		rows [][][]byte
	}{
		{"too few columns", &HashDistinct{Columns: []string{"a", "b"}}, []Field{typedField("a", oidInt8, 0)}, nil},
		{"too many columns", &HashDistinct{Columns: []string{"a"}, Hidden: 1},
			[]Field{typedField("a", oidInt8, 0), typedField("b", oidInt8, 0), typedField("c", oidText, 0)}, nil},
		{"short row", &HashDistinct{Columns: []string{"a"}, Hidden: 1},
			[]Field{typedField("a", oidInt8, 0), typedField("c", oidText, 0)}, [][][]byte{row("1")}},
		{"unreadable", &HashDistinct{Columns: []string{"a"}}, []Field{typedField("a", oidInt8, 0)}, oneColumn("1", "x")},
		{"unreadable binary", &HashDistinct{Columns: []string{"a"}}, []Field{typedField("a", oidInt8, 1)}, oneColumn(send32(1))},
		{"bad format", &HashDistinct{Columns: []string{"a"}}, []Field{typedField("a", oidInt8, 2)}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.d.Input = &sortInput{fields: tt.fs, batches: [][][][]byte{tt.rows}}
			_, _, err := runDistinct(t, tt.d, nil, nil)
			wantCode(t, err, CodeInternal)
		})
	}
}

// TestHashDistinctMemoryLimit proves HashDistinct fails with 53200 once
// the keys it remembers pass the session's shardgate.query_memory, and
// stops reading its input there; duplicates, which it does not remember
// again, do not count.
func TestHashDistinctMemoryLimit(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("k", oidText, 0)}
	// Each key takes 1 KiB: a NULL mark, the length in 2 bytes, the 973
	// bytes and distinctEntryBytes. 64 of them fill the 64 kB limit.
	value := func(i int) string { return fmt.Sprintf("%0973d", i) }
	var vals []string
	for i := range 100 {
		vals = append(vals, value(i))
	}
	settings := sessionSettings{"shardgate.query_memory": "64kB"}
	in := &sortInput{fields: fs, batches: [][][][]byte{oneColumn(vals[:64]...), oneColumn(vals[64:]...)}}
	c, _, err := runDistinct(t, &HashDistinct{Input: in, Columns: []string{"k"}}, nil, settings)
	e := wantCode(t, err, "53200")
	if want := "out of memory: the distinct rows of a statement across shards take more than 64 KiB in the gateway"; e.Message != want {
		t.Errorf("message %q, want %q", e.Message, want)
	}
	if !strings.Contains(e.Hint, "ORDER BY") || !strings.Contains(e.Hint, "SET shardgate.query_memory") {
		t.Errorf("hint %q does not suggest ORDER BY and the setting", e.Hint)
	}
	if in.emitErr == nil || in.emitted != 64 {
		t.Errorf("the input emitted %d rows and got %v: want 64 and the error", in.emitted, in.emitErr)
	}
	if c.rowsN != 64 {
		t.Errorf("client got %d rows, want the 64 of the first batch", c.rowsN)
	}

	// Many duplicates of few values stay under the limit.
	in = &sortInput{fields: fs, repeat: row(value(7)), n: 1000, tag: "SELECT 1000"}
	c, tag, err := runDistinct(t, &HashDistinct{Input: in, Columns: []string{"k"}}, nil, settings)
	if err != nil {
		t.Fatal(err)
	}
	if c.rowsN != 1 || tag != "SELECT 1" {
		t.Errorf("client got %d rows, tag %q", c.rowsN, tag)
	}

	// Without the setting, the limit is the default's.
	in = &sortInput{fields: fs, batches: [][][][]byte{oneColumn(vals...)}}
	if _, _, err := runDistinct(t, &HashDistinct{Input: in, Columns: []string{"k"}}, nil, nil); err != nil {
		t.Fatal(err)
	}

	// A malformed setting fails before the input runs.
	in = &sortInput{fields: fs, batches: [][][][]byte{oneColumn(vals...)}}
	c, _, err = runDistinct(t, &HashDistinct{Input: in, Columns: []string{"k"}}, nil, sessionSettings{"shardgate.query_memory": "lots"})
	wantCode(t, err, codeInvalidParameterValue)
	if len(c.batches) != 0 {
		t.Errorf("client got %+v", c.batches)
	}
}

// TestHashDistinctEmitError proves an error from the client stops the
// input and is returned.
func TestHashDistinctEmitError(t *testing.T) {
	defer goleak.VerifyNone(t)
	gone := errors.New("client gone")
	in := &sortInput{fields: []Field{typedField("k", oidInt8, 0)}, batches: [][][][]byte{oneColumn("1"), oneColumn("2")}}
	c := &collector{onRows: func(*Batch) error { return gone }}
	_, err := (&HashDistinct{Input: in, Columns: []string{"k"}}).Stream(testCtx(t), newFake(newTopo(), nil), nil, c.emit)
	if !errors.Is(err, gone) || !errors.Is(in.emitErr, gone) || in.emitted != 0 {
		t.Errorf("error %v, input's %v after %d rows", err, in.emitErr, in.emitted)
	}
}

// TestHashDistinctDescribe proves the plan prints with its columns.
func TestHashDistinctDescribe(t *testing.T) {
	s := &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT DISTINCT a, b FROM t"}}
	d := &HashDistinct{Input: s, Columns: []string{"a", "b"}}
	if got, want := d.Describe(), "HashDistinct cols(a, b)"; got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
	if in := d.Inputs(); len(in) != 1 || in[0] != s {
		t.Errorf("Inputs() = %v", in)
	}
	if got := Format(d); !strings.HasPrefix(got, "HashDistinct cols(a, b)\n  Scatter ") {
		t.Errorf("Format:\n%s", got)
	}
}

// TestHashDistinctNoRows proves no rows give the columns, no rows and
// SELECT 0.
func TestHashDistinctNoRows(t *testing.T) {
	defer goleak.VerifyNone(t)
	fs := []Field{typedField("k", oidInt8, 0), typedField("coll", oidText, 0)}
	c, tag, err := runDistinct(t, &HashDistinct{Input: &sortInput{fields: fs}, Columns: []string{"k"}, Hidden: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.rowsN != 0 || tag != "SELECT 0" {
		t.Errorf("rows %q tag %q", c.values(), tag)
	}
	wantVisibleFields(t, c, fs[:1])
}

// TestHashDistinctCollations proves HashDistinct refuses text under a
// nondeterministic collation, which its hidden last column reports, and
// goes on under deterministic ones, in both formats.
func TestHashDistinctCollations(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range []struct {
		name          string
		format        int16
		deterministic string
		refused       bool
	}{
		{"deterministic", 0, "t", false},
		{"nondeterministic", 0, "f", true},
		{"deterministic binary", 1, "\x01", false},
		{"nondeterministic binary", 1, "\x00", true},
		{"no text column", 0, "NULL", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := []Field{typedField("name", oidText, 0), typedField("sg_deterministic", oidBool, tc.format)}
			in := &sortInput{fields: fs, batches: [][][][]byte{{row("a", tc.deterministic), row("A", tc.deterministic)}}}
			c, _, err := runDistinct(t, &HashDistinct{Input: in, Columns: []string{"name"}, Hidden: 1, Deterministic: true}, nil, nil)
			if !tc.refused {
				if err != nil || c.rowsN != 2 {
					t.Fatalf("rows %q, err %v", c.values(), err)
				}
				return
			}
			e := wantCode(t, err, CodeFeatureNotSupported)
			if !strings.Contains(e.Message, "nondeterministic collation") || c.rowsN != 0 {
				t.Errorf("message %q, rows %q", e.Message, c.values())
			}
		})
	}
}

// TestHashDistinctArrays proves one-dimensional arrays are equal when
// their elements are, in both formats: {1.5} = {1.50}, a NULL element is
// no value, and a longer array is another.
func TestHashDistinctArrays(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range []struct {
		name   string
		oid    uint32
		format int16
		values []string
		want   int
	}{
		{"int4[]", 1007, 0, []string{"{1,2}", "{1,2}", "{1,2,NULL}", "{1,NULL}", "{}", "{1,NULL}", "{}"}, 4},
		{"numeric[]", 1231, 0, []string{"{1.5,2}", "{1.50,2.0}", "{1.5}"}, 2},
		{"int4[] binary", 1007, 1, []string{sendArray(oidInt4, send32(1), send32(2)), sendArray(oidInt4, send32(1), send32(2)), sendArray(oidInt4, send32(1), "")}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &sortInput{fields: []Field{typedField("a", tc.oid, tc.format)}, batches: [][][][]byte{oneColumn(tc.values...)}, tag: "SELECT"}
			c, _, err := runDistinct(t, &HashDistinct{Input: in, Columns: []string{"a"}}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.rowsN != tc.want {
				t.Errorf("%d distinct rows of %q, want %d", c.rowsN, tc.values, tc.want)
			}
		})
	}
}
