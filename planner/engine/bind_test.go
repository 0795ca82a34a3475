package engine

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sqlExec is a recording Executor that answers by statement: the first
// answer whose key the statement's text starts with.
type sqlExec struct {
	topo     Topology
	answers  map[string]func(ctx context.Context, shard string, q Query, emit func(*Batch) error) (Tag, error)
	settings map[string]string

	mu    sync.Mutex
	calls []boundCall
}

// boundCall is one statement a shard got, as it ran there.
type boundCall struct {
	shard string
	q     Query
}

func (e *sqlExec) Topology() Topology { return e.topo }

func (e *sqlExec) Setting(name string) string { return e.settings[name] }

func (e *sqlExec) Query(ctx context.Context, shard string, q Query, emit func(*Batch) error) (Tag, error) {
	e.mu.Lock()
	e.calls = append(e.calls, boundCall{shard, q})
	e.mu.Unlock()
	for prefix, answer := range e.answers {
		if strings.HasPrefix(q.SQL, prefix) {
			return answer(ctx, shard, q, emit)
		}
	}
	return "", errors.New("sqlExec: no answer for " + q.SQL)
}

// callsOf returns the calls whose statement starts with prefix.
func (e *sqlExec) callsOf(prefix string) []boundCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []boundCall
	for _, c := range e.calls {
		if strings.HasPrefix(c.q.SQL, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// rowsAnswer answers with one column of type oid and the given values
// (nil for NULL), in one batch.
func rowsAnswer(name string, oid uint32, values ...[]byte) func(context.Context, string, Query, func(*Batch) error) (Tag, error) {
	return func(_ context.Context, _ string, _ Query, emit func(*Batch) error) (Tag, error) {
		if err := emit(&Batch{Fields: []Field{{Name: name, DataTypeOID: oid, TypeModifier: -1}}}); err != nil {
			return "", err
		}
		rows := make([][][]byte, len(values))
		for i, v := range values {
			rows[i] = [][]byte{v}
		}
		if len(rows) > 0 {
			if err := emit(&Batch{Rows: rows}); err != nil {
				return "", err
			}
		}
		return "SELECT 1", nil
	}
}

// outerAnswer answers the bound statement with one row per shard naming
// the shard.
func outerAnswer(_ context.Context, shard string, _ Query, emit func(*Batch) error) (Tag, error) {
	if err := emit(&Batch{Fields: []Field{{Name: "shard", DataTypeOID: oidText, TypeModifier: -1}}}); err != nil {
		return "", err
	}
	if err := emit(&Batch{Rows: [][][]byte{{[]byte(shard)}}}); err != nil {
		return "", err
	}
	return "SELECT 1", nil
}

func collect(t *testing.T, p Primitive, x Executor) ([]string, error) {
	t.Helper()
	var rows []string
	_, err := p.Stream(context.Background(), x, nil, func(b *Batch) error {
		for _, r := range b.Rows {
			rows = append(rows, string(r[0]))
		}
		return nil
	})
	return rows, err
}

func TestBindValueExistsArray(t *testing.T) {
	x := &sqlExec{topo: newTopo(), answers: map[string]func(context.Context, string, Query, func(*Batch) error) (Tag, error){
		"SELECT max":    rowsAnswer("max", oidInt8, []byte("42")),
		"SELECT 1 FROM": rowsAnswer("?column?", oidInt4, []byte("1"), []byte("1")),
		"SELECT name":   rowsAnswer("name", oidText, []byte(`a"b`), nil, []byte(`c\d`)),
		"SELECT * FROM": outerAnswer,
	}}
	b := &Bind{
		Subqueries: []Subquery{
			{Plan: &Route{Target: Target{Kind: TargetAny}, Query: Query{SQL: "SELECT max(id) FROM t"}}, Kind: SubqueryValue, Param: 2, SQL: "SELECT max(id) FROM t"},
			{Plan: &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT 1 FROM t"}}, Kind: SubqueryExists, Param: 3, SQL: "SELECT 1 FROM t"},
			{Plan: &Route{Target: Target{Kind: TargetAny}, Query: Query{SQL: "SELECT name FROM t"}}, Kind: SubqueryArray, Param: 4, SQL: "SELECT name FROM t"},
		},
		Input: &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT * FROM t WHERE id = $2 AND $3 AND name = ANY($4) AND x = $1"}},
	}
	rows, err := collect(t, b, x)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("rows %q, want one per shard", rows)
	}
	// The subqueries ran for the gateway: in text, described.
	for _, c := range append(x.callsOf("SELECT max"), x.callsOf("SELECT name")...) {
		if !c.q.Internal || !c.q.Describe {
			t.Errorf("subquery %q ran as %+v, want Internal and Describe", c.q.SQL, c.q)
		}
	}
	outer := x.callsOf("SELECT * FROM")
	if len(outer) != 4 {
		t.Fatalf("the statement ran %d times, want once per shard", len(outer))
	}
	want := []BoundValue{{Text: []byte("42"), OID: oidInt8}, {Text: []byte("true"), OID: oidBool}, {Text: []byte(`{"a\"b",NULL,"c\\d"}`), OID: 1009}}
	for _, c := range outer {
		if c.q.BoundFrom != 2 || len(c.q.Bound) != 3 {
			t.Fatalf("bound from $%d: %+v", c.q.BoundFrom, c.q.Bound)
		}
		for i, v := range c.q.Bound {
			if string(v.Text) != string(want[i].Text) || v.OID != want[i].OID {
				t.Errorf("$%d = %q (%d), want %q (%d)", i+2, v.Text, v.OID, want[i].Text, want[i].OID)
			}
		}
	}
}

func TestBindNoRowsAndTooMany(t *testing.T) {
	x := &sqlExec{topo: newTopo(), answers: map[string]func(context.Context, string, Query, func(*Batch) error) (Tag, error){
		"SELECT none":   rowsAnswer("v", oidInt4),
		"SELECT two":    rowsAnswer("v", oidInt4, []byte("1"), []byte("2")),
		"SELECT empty":  rowsAnswer("v", oidText, []byte{}),
		"SELECT * FROM": outerAnswer,
	}}
	run := func(kind SubqueryKind, sql string) (*Query, error) {
		b := &Bind{
			Subqueries: []Subquery{{Plan: &Route{Target: Target{Kind: TargetAny}, Query: Query{SQL: sql}}, Kind: kind, Param: 1, SQL: sql}},
			Input:      &Route{Target: Target{Kind: TargetAny}, Query: Query{SQL: "SELECT * FROM t WHERE v = $1"}},
		}
		x.calls = nil
		if _, err := collect(t, b, x); err != nil {
			return nil, err
		}
		q := x.callsOf("SELECT * FROM")[0].q
		return &q, nil
	}
	q, err := run(SubqueryValue, "SELECT none")
	if err != nil || q.Bound[0].Text != nil || q.Bound[0].OID != oidInt4 {
		t.Errorf("a scalar subquery without rows: %v %+v, want NULL of its type", err, q)
	}
	q, err = run(SubqueryValue, "SELECT empty")
	if err != nil || q.Bound[0].Text == nil || len(q.Bound[0].Text) != 0 {
		t.Errorf("a scalar subquery of an empty string: %v %+v, want the empty string, not NULL", err, q)
	}
	q, err = run(SubqueryExists, "SELECT none")
	if err != nil || string(q.Bound[0].Text) != "false" {
		t.Errorf("EXISTS without rows: %v %+v, want false", err, q)
	}
	q, err = run(SubqueryArray, "SELECT none")
	if err != nil || string(q.Bound[0].Text) != "{}" {
		t.Errorf("IN without rows: %v %+v, want an empty array", err, q)
	}
	if _, err := run(SubqueryValue, "SELECT two"); code(err) != "21000" {
		t.Errorf("a scalar subquery of two rows: %v, want 21000", err)
	}
	if got := len(x.callsOf("SELECT * FROM")); got != 0 {
		t.Errorf("the statement ran %d times after its subquery failed", got)
	}
}

// code returns the SQLSTATE of an engine error, "" for others.
func code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// TestBindRowsPartitioned runs a join at the gateway: the outer side's
// rows go, as a relation, each to the shard of the key it joins; a NULL
// key's to the first shard; a shard without rows gets an empty relation.
func TestBindRowsPartitioned(t *testing.T) {
	topo := newTopo()
	table := testTable(t)
	on0, on1 := intOn(t, topo, "s0"), intOn(t, topo, "s1")
	side := func(_ context.Context, _ string, _ Query, emit func(*Batch) error) (Tag, error) {
		if err := emit(&Batch{Fields: []Field{{Name: "id", DataTypeOID: oidUUID, TypeModifier: -1}, {Name: "owner", DataTypeOID: oidInt8, TypeModifier: -1}}}); err != nil {
			return "", err
		}
		return "SELECT 3", emit(&Batch{Rows: [][][]byte{
			{[]byte("a"), []byte(strconv.FormatInt(on0, 10))}, {[]byte("b"), []byte(strconv.FormatInt(on1, 10))}, {[]byte("c"), nil},
		}})
	}
	x := &sqlExec{topo: topo, answers: map[string]func(context.Context, string, Query, func(*Batch) error) (Tag, error){
		"SELECT * FROM devices": side,
		"SELECT d.id":           outerAnswer,
	}}
	b := &Bind{
		Subqueries: []Subquery{{Plan: &Route{Target: Target{Kind: TargetAny}, Query: Query{SQL: "SELECT * FROM devices d"}}, Kind: SubqueryRows, Param: 1,
			SQL: "SELECT * FROM devices d", Partition: &Partition{Column: "owner", Table: table}}},
		Input: &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT d.id FROM " + PartsFunction(1) + "() d(" + RowsColumns(1) + ") JOIN t ON t.id = d.owner"}},
	}
	if _, err := collect(t, b, x); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range x.callsOf("SELECT d.id") {
		wantSQL := `SELECT d.id FROM (SELECT sg_r."id"::pg_catalog.uuid AS "id", sg_r."owner"::pg_catalog.int8 AS "owner" FROM pg_catalog.jsonb_to_recordset($1) AS sg_r("id" pg_catalog.text, "owner" pg_catalog.text)) d JOIN t ON t.id = d.owner`
		if c.q.SQL != wantSQL {
			t.Errorf("shard %s ran %s\nwant %s", c.shard, c.q.SQL, wantSQL)
		}
		got[c.shard] = string(c.q.Bound[0].Text)
	}
	want := map[string]string{
		"s0": `[{"id":"a","owner":"` + strconv.FormatInt(on0, 10) + `"},{"id":"c","owner":null}]`,
		"s1": `[{"id":"b","owner":"` + strconv.FormatInt(on1, 10) + `"}]`,
		"s2": `[]`, "s3": `[]`,
	}
	for shard, w := range want {
		if got[shard] != w {
			t.Errorf("shard %s got rows %s, want %s", shard, got[shard], w)
		}
	}
}

// TestBindInnerError: the statement that reads the outer side's rows
// fails on one shard; the whole statement fails with that error, and the
// other shards' parts are cancelled.
func TestBindInnerError(t *testing.T) {
	boom := &Error{Code: "22012", Message: "division by zero"}
	x := &sqlExec{topo: newTopo(), answers: map[string]func(context.Context, string, Query, func(*Batch) error) (Tag, error){
		"SELECT * FROM devices": rowsAnswer("owner", oidInt8, []byte("1")),
		"SELECT d.id": func(ctx context.Context, shard string, q Query, emit func(*Batch) error) (Tag, error) {
			if shard == "s1" {
				return "", boom
			}
			<-ctx.Done() // the others wait until the failure cancels them
			return "", ctx.Err()
		},
	}}
	b := &Bind{
		Subqueries: []Subquery{{Plan: &Route{Target: Target{Kind: TargetAny}, Query: Query{SQL: "SELECT * FROM devices d"}}, Kind: SubqueryRows, Param: 1, SQL: "SELECT * FROM devices d"}},
		Input:      &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT d.id FROM " + RowsFunction(1) + "() d(" + RowsColumns(1) + ")"}},
	}
	done := make(chan error, 1)
	go func() {
		_, err := collect(t, b, x)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, boom) && code(err) != "22012" {
			t.Fatalf("got %v, want the shard's division by zero", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the statement did not fail when one shard did")
	}
}

// TestBindCancel: cancelling the statement mid-stream stops it, in the
// subquery and in the statement.
func TestBindCancel(t *testing.T) {
	for _, where := range []string{"subquery", "statement"} {
		ctx, cancel := context.WithCancel(context.Background())
		// A shard that has sent a row, when the client goes away.
		blocked := func(ctx context.Context, _ string, _ Query, emit func(*Batch) error) (Tag, error) {
			if err := emit(&Batch{Fields: []Field{{Name: "v", DataTypeOID: oidInt4, TypeModifier: -1}}}); err != nil {
				return "", err
			}
			if err := emit(&Batch{Rows: [][][]byte{{[]byte("1")}}}); err != nil {
				return "", err
			}
			cancel()
			<-ctx.Done()
			return "", ctx.Err()
		}
		answers := map[string]func(context.Context, string, Query, func(*Batch) error) (Tag, error){
			"SELECT v": rowsAnswer("v", oidInt4, []byte("1")),
			"SELECT *": blocked,
		}
		if where == "subquery" {
			answers["SELECT v"] = blocked
		}
		x := &sqlExec{topo: newTopo(), answers: answers}
		b := &Bind{
			Subqueries: []Subquery{{Plan: &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT v FROM t"}}, Kind: SubqueryArray, Param: 1, SQL: "SELECT v FROM t"}},
			Input:      &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT * FROM t WHERE v = ANY($1)"}},
		}
		_, err := b.Stream(ctx, x, nil, func(*Batch) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled in the %s: %v, want context.Canceled", where, err)
		}
		if where == "subquery" && len(x.callsOf("SELECT *")) > 0 {
			t.Errorf("the statement ran after its subquery was cancelled")
		}
	}
}

func TestBindMemoryLimit(t *testing.T) {
	big := make([][]byte, 200)
	for i := range big {
		big[i] = []byte(strings.Repeat("x", 1000))
	}
	x := &sqlExec{topo: newTopo(), settings: map[string]string{"shardgate.query_memory": "64kB"}, answers: map[string]func(context.Context, string, Query, func(*Batch) error) (Tag, error){
		"SELECT v":      rowsAnswer("v", oidText, big...),
		"SELECT * FROM": outerAnswer,
	}}
	for _, kind := range []SubqueryKind{SubqueryArray, SubqueryRows} {
		b := &Bind{
			Subqueries: []Subquery{{Plan: &Route{Target: Target{Kind: TargetAny}, Query: Query{SQL: "SELECT v FROM t"}}, Kind: kind, Param: 1, SQL: "SELECT v FROM t"}},
			Input:      &Route{Target: Target{Kind: TargetAny}, Query: Query{SQL: "SELECT * FROM t"}},
		}
		if _, err := collect(t, b, x); code(err) != "53200" {
			t.Errorf("%s of 200 kB under a 64 kB limit: %v, want 53200", kind, err)
		}
	}
}

// roundsExec is a sqlExec that says whether it runs in a transaction.
type roundsExec struct {
	*sqlExec
	inTxn bool
}

func (e *roundsExec) InTransaction() bool { return e.inTxn }

// TestBindRounds: a join whose statement answers row by row runs once per
// round of the joined table's rows as they come, outside a transaction;
// inside one, once with all of them.
func TestBindRounds(t *testing.T) {
	defer func(old int) { rowsRound = old }(rowsRound)
	rowsRound = 60
	topo := newTopo()
	table := testTable(t)
	var side [][]byte
	for i := range 20 {
		side = append(side, []byte(strconv.Itoa(i)))
	}
	for _, inTxn := range []bool{false, true} {
		x := &roundsExec{sqlExec: &sqlExec{topo: topo, answers: map[string]func(context.Context, string, Query, func(*Batch) error) (Tag, error){
			"SELECT * FROM devices": rowsAnswer("owner", oidInt8, side...),
			"SELECT d.owner":        outerAnswer,
		}}, inTxn: inTxn}
		b := &Bind{
			Subqueries: []Subquery{{Plan: &Route{Target: Target{Kind: TargetAny}, Query: Query{SQL: "SELECT * FROM devices d"}}, Kind: SubqueryRows, Param: 1,
				SQL: "SELECT * FROM devices d", Partition: &Partition{Column: "owner", Table: table}, Rounds: true}},
			Input: &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT d.owner FROM " + PartsFunction(1) + "() d(" + RowsColumns(1) + ")"}},
		}
		var fields, rows int
		tag, err := b.Stream(context.Background(), x, nil, func(batch *Batch) error {
			if batch.Fields != nil {
				fields++
			}
			rows += len(batch.Rows)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		statements := len(x.callsOf("SELECT d.owner")) / len(topo.Shards())
		seen := map[string]int{}
		for _, c := range x.callsOf("SELECT d.owner") {
			var got []map[string]*string
			if err := json.Unmarshal(c.q.Bound[0].Text, &got); err != nil {
				t.Fatal(err)
			}
			for _, r := range got {
				seen[*r["owner"]]++
			}
		}
		switch {
		case !inTxn && statements < 3, inTxn && statements != 1:
			t.Errorf("in a transaction %v: the statement ran %d times", inTxn, statements)
		case fields != 1:
			t.Errorf("in a transaction %v: the columns came %d times", inTxn, fields)
		case rows != statements*len(topo.Shards()) || tag != Tag("SELECT "+strconv.Itoa(rows)):
			t.Errorf("in a transaction %v: %d rows, tag %q", inTxn, rows, tag)
		case len(seen) != len(side):
			t.Errorf("in a transaction %v: %d of %d rows reached the statement", inTxn, len(seen), len(side))
		}
		for v, n := range seen {
			if n != 1 {
				t.Errorf("row %s went to the statement %d times", v, n)
			}
		}
	}
}

// TestBoundOnTokens: a placeholder is replaced only where it stands
// whole, so $1's does not eat the start of $10's.
func TestBoundOnTokens(t *testing.T) {
	var bound []BoundValue
	for i := 1; i <= 10; i++ {
		bound = append(bound, BoundValue{OID: oidNumeric, From: [2]string{"::" + ValueType(i)}, To: [2]string{"::pg_catalog.numeric(" + strconv.Itoa(i) + ", 0)"}})
	}
	q := Query{SQL: "SELECT $1::" + ValueType(1) + ", $10::" + ValueType(10), Bound: bound, BoundFrom: 1}.boundOn("s0")
	if want := "SELECT $1::pg_catalog.numeric(1, 0), $10::pg_catalog.numeric(10, 0)"; q.SQL != want {
		t.Fatalf("got %s\nwant %s", q.SQL, want)
	}
}

// TestBindRowsPartitionType: a join column whose printed value would not
// hash as the key it equals (char(n) keeps trailing spaces a comparison
// with text drops) is refused before any row, not finally: the statement
// may gather instead.
func TestBindRowsPartitionType(t *testing.T) {
	x := &sqlExec{topo: newTopo(), answers: map[string]func(context.Context, string, Query, func(*Batch) error) (Tag, error){
		"SELECT * FROM c": rowsAnswer("code", oidBpchar, []byte("a   ")),
		"SELECT c.code":   outerAnswer,
	}}
	b := &Bind{
		Subqueries: []Subquery{{Plan: &Route{Target: Target{Kind: TargetAny}, Query: Query{SQL: "SELECT * FROM c"}}, Kind: SubqueryRows, Param: 1,
			SQL: "SELECT * FROM c", Partition: &Partition{Column: "code", Table: testTable(t)}}},
		Input: &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT c.code FROM " + PartsFunction(1) + "() c(" + RowsColumns(1) + ")"}},
	}
	_, err := collect(t, b, x)
	var e *Error
	if !errors.As(err, &e) || e.Code != "0A000" || e.Final {
		t.Fatalf("a char(n) join column: %v, want a refusal that is not final", err)
	}
	if n := len(x.callsOf("SELECT c.code")); n != 0 {
		t.Fatalf("the statement ran %d times", n)
	}
}
