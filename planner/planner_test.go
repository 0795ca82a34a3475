package planner

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// fakeTopology is a two-shard keyspace with 8 logical shards.
type fakeTopology struct {
	vs *vschema.Keyspace
	m  *topology.ShardMap
}

func (f *fakeTopology) ShardFor(h int64) string { return f.m.ShardFor(h) }
func (f *fakeTopology) Shards() []string        { return f.m.Shards() }

// call is one statement a plan sent to a shard.
type call struct {
	shard string
	q     engine.Query
}

// recorder runs plans against the fake topology: every shard answers with
// no rows and the tag "SELECT 0"; it records what was sent where.
type recorder struct {
	topo  *fakeTopology
	mu    sync.Mutex
	calls []call
	seqs  map[string]int64
}

func (r *recorder) Topology() engine.Topology { return r.topo }

// NextVal and the rest implement engine.Sequencer: each sequence counts
// from 1.
func (r *recorder) NextVal(_ context.Context, seq string) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seqs == nil {
		r.seqs = map[string]int64{}
	}
	r.seqs[seq]++
	return r.seqs[seq], nil
}

func (r *recorder) CurrVal(_ context.Context, seq string) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seqs[seq], nil
}

func (r *recorder) LastVal() (int64, error) { return 0, nil }

func (r *recorder) SetVal(context.Context, string, int64, bool) error { return nil }

func (r *recorder) Setting(string) string { return "" }

func (r *recorder) Query(_ context.Context, shard string, q engine.Query, emit func(*engine.Batch) error) (engine.Tag, error) {
	r.mu.Lock()
	r.calls = append(r.calls, call{shard, q})
	r.mu.Unlock()
	if q.Describe {
		// A numeric column for each entry of the select list (a * counts
		// as one), as a shard would describe the statement.
		tree, err := pg_query.Parse(q.SQL)
		if err != nil {
			return "", err
		}
		sel := tree.Stmts[0].Stmt.GetSelectStmt()
		for sel.GetLarg() != nil {
			sel = sel.Larg // a set operation's columns are its first arm's
		}
		fields := make([]engine.Field, len(sel.GetTargetList()))
		for i := range fields {
			fields[i] = engine.Field{Name: "c" + strconv.Itoa(i+1), DataTypeOID: 1700, TypeModifier: -1}
		}
		if err := emit(&engine.Batch{Fields: fields}); err != nil {
			return "", err
		}
	}
	return "SELECT 0", nil
}

// run plans sql, runs its first statement with args, and returns what it
// sent to the shards, sorted by shard, or the error planning or running
// it gave.
func (f *fakeTopology) run(sql string, args engine.Params) ([]call, error) {
	stmts, err := Plan(f.vs, sql)
	if err != nil {
		return nil, err
	}
	return f.runPlan(stmts[0].Root, args)
}

// runPlan runs a plan against the fake and returns what it sent where.
func (f *fakeTopology) runPlan(root engine.Primitive, args engine.Params) ([]call, error) {
	r := &recorder{topo: f}
	if _, err := root.Stream(context.Background(), r, args, func(*engine.Batch) error { return nil }); err != nil {
		return nil, err
	}
	slices.SortStableFunc(r.calls, func(a, b call) int { return strings.Compare(a.shard, b.shard) })
	return r.calls, nil
}

// shardsOf lists the shards of calls, each once.
func shardsOf(calls []call) []string {
	var out []string
	for _, c := range calls {
		if !slices.Contains(out, c.shard) {
			out = append(out, c.shard)
		}
	}
	return out
}

const testVSchema = `
keyspaces:
  app:
    sharded: true
    tables:
      users: {column: id, type: bigint}
      orders: {column: user_id, type: bigint}
      sessions: {column: token, type: text}
      devices: {column: id, type: uuid}
      countries: {kind: reference}
      billing.invoices: {column: account_id, type: bigint}
`

func newFake(t testing.TB) *fakeTopology {
	f, err := vschema.Parse([]byte(testVSchema))
	if err != nil {
		t.Fatal(err)
	}
	return &fakeTopology{vs: f.Keyspaces["app"], m: &topology.ShardMap{LogicalCount: 8, Placement: topology.EvenPlacement(8, []string{"s0", "s1"})}}
}

// shardOf is where the fake map puts an int key.
func (f *fakeTopology) shardOf(v int64) string { return f.m.ShardFor(vschema.HashInt64(v)) }

func TestPlanRouting(t *testing.T) {
	f := newFake(t)
	s1, s2 := f.shardOf(1), f.shardOf(2)
	// Find two keys on different shards for the IN-list case.
	other := int64(2)
	for f.shardOf(other) == s1 {
		other++
	}
	cases := []struct {
		sql    string
		shards []string // nil: every shard
		root   string   // the plan's root primitive
	}{
		{"select * from users where id = 1", []string{s1}, "Route"},
		{"select * from users where 1 = id", []string{s1}, "Route"},
		{"select * from users where id = '1'", []string{s1}, "Route"},
		{"select * from users where id = '1'::bigint and name = 'x'", []string{s1}, "Route"},
		{"select * from users u where u.id = -5", []string{f.shardOf(-5)}, "Route"},
		{"select * from users where id = 10000000000", []string{f.shardOf(10000000000)}, "Route"},
		{"select * from users where id in (1, 1)", []string{s1}, "Route"},
		{"select * from users where id = 1 or id = 1", []string{s1}, "Route"},
		{"select * from users where id in (1, " + itoa(other) + ")", []string{"s0", "s1"}, "Route"},
		{"select * from users", nil, "Route"},
		{"select * from users where id = 1.5", nil, "Route"},
		{"select * from users where id > 1", nil, "Route"},
		{"select * from users where id = 1 or name = 'x'", nil, "Route"},
		{"select u.*, o.* from users u join orders o on o.user_id = u.id where u.id = 2", []string{s2}, "Route"},
		{"select * from users u left join orders o on o.user_id = u.id and o.user_id = 2", nil, "Route"},
		{"select * from users u, orders o where o.user_id = u.id and o.user_id = 1", []string{s1}, "Route"},
		{"select * from orders o join countries c on c.code = o.country where o.user_id = 1", []string{s1}, "Route"},
		{"select user_id, count(*) from orders group by user_id", nil, "Route"},
		{"select count(*) from users", nil, "Route"},
		{"select count(*), count(name) as named from users where name like 'a%'", nil, "Route"},
		{"select * from countries", []string{"s0"}, "Route"},
		{"select 1", []string{"s0"}, "Route"},
		{"select relname from pg_class", []string{"s0"}, "Route"},
		{"select * from information_schema.tables", []string{"s0"}, "Route"},
		{"select * from sessions where token = 'abc'", []string{f.m.ShardFor(vschema.HashText("abc"))}, "Route"},
		{"select * from devices where id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", []string{f.m.ShardFor(vschema.HashUUID(uuidOf(t, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")))}, "Route"},
		{"select * from users where id = 1 and exists (select 1 from orders where user_id = 1)", []string{s1}, "Route"},
		{"update users set name = 'x' where id = 1", []string{s1}, "Route"},
		{"update users set name = 'x'", nil, "Route"},
		{"delete from orders where user_id in (1, 2)", nil, ""},
		{"insert into users (id, name) values (1, 'a')", []string{s1}, "InsertSplit"},
		{"insert into countries (code) values ('de')", nil, "Broadcast"},
		{"create table users (id bigint primary key, name text)", nil, "Broadcast"},
		{"create index on orders (user_id)", nil, "Broadcast"},
		{"drop table if exists users, nothere", nil, "Broadcast"},
		{"show server_version", []string{"s0"}, "Route"},
		{"explain select * from users where id = 1", []string{s1}, "Explain"},
	}
	for _, c := range cases {
		stmts, err := Plan(f.vs, c.sql)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		root := stmts[0].Root
		if got := strings.Fields(root.Describe())[0]; c.root != "" && got != c.root {
			t.Errorf("%s: plan\n%s want %s", c.sql, engine.Format(root), c.root)
		}
		calls, err := f.run(c.sql, nil)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		want := c.shards
		if want == nil {
			want = f.Shards()
		}
		if got := shardsOf(calls); !slices.Equal(got, want) {
			t.Errorf("%s: ran on %v, want %v", c.sql, got, want)
		}
		if slices.Equal(engine.Shards(root, f, nil), want) != true {
			t.Errorf("%s: Shards says %v, want %v", c.sql, engine.Shards(root, f, nil), want)
		}
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestPlanGathers checks that statements the shards cannot compute apart
// run with their tables' rows pulled first: a join at the gateway (a
// partitioned relation), or every sharded table gathered to one shard.
func TestPlanGathers(t *testing.T) {
	f := newFake(t)
	for _, sql := range []string{
		"select distinct name from users order by name fetch first 3 rows with ties",
		"select * from users order by id using <",
		"select * from users order by id limit (select count(*) from countries)",
		"select *, name as n from users order by n",
		"select jsonb_agg(name) from users",
		"select count(distinct name), sum(distinct id % 2) from users",
		"select count(*) + $1 from users",
		"select variance(distinct id) from users",
		"select distinct name, count(*) from users group by name",
		"select row_number() over () from users",
		"select * from users u where name = (select max(name) from orders o where o.amount = u.id)",
		"select * from countries c where code in (select country from users u where u.name = c.name)",
		"select id from users intersect select user_id from orders order by 1",
		"select * from users u join sessions s on s.token = u.name",
		"select * from users u join orders o using (id)",
		"select * from users u join orders o on o.id = u.id",
		"select * from countries c left join users u on u.id = c.id",
		"select * from users u right join countries c on u.id = c.id",
		"select * from countries c full join users u on u.id = c.id",
	} {
		stmts, err := Plan(f.vs, sql)
		if err != nil {
			t.Errorf("%s: %v", sql, err)
			continue
		}
		r, ok := stmts[0].Root.(*engine.Route)
		if !ok || r.Refusal != nil {
			t.Errorf("%s: planned as %s", sql, engine.Format(stmts[0].Root))
			continue
		}
		if _, ok := r.Multi.(*engine.Bind); !ok {
			t.Errorf("%s: planned as %s, want a Bind", sql, engine.Format(r))
		}
	}
}

func TestPlanRefusals(t *testing.T) {
	f := newFake(t)
	cases := []struct{ sql, code, contains string }{
		{"selec 1", CodeSyntaxError, "syntax error"},
		{"select * from users order by id limit 3 for update", CodeFeatureNotSupported, "FOR UPDATE"},
		{"select * from nothere", CodeUndefinedTable, "not in the vschema"},
		{"update users set id = 5 where id = 1", CodeFeatureNotSupported, "sharding column"},
		{"update users u set name = 'x' where u.id = (select max(id) from users)", CodeFeatureNotSupported, "subquer"},
		{"select * from users u join sessions s on s.token = u.name for update", CodeFeatureNotSupported, "co-located"},
		{"insert into users (name) values ('x')", CodeFeatureNotSupported, "sharding column"},
		{"insert into users values (1, 'x')", CodeFeatureNotSupported, "name its columns"},
		{"insert into users (id) values (default)", CodeFeatureNotSupported, "DEFAULT"},
		{"insert into users (id) values (1.5)", CodeFeatureNotSupported, "literal"},
		{"insert into users (id, name) select 1, token from sessions", CodeFeatureNotSupported, "INSERT ... SELECT"},
		{"insert into users (id, name) select id, name from users limit 5", CodeFeatureNotSupported, "stays on its shard"},
		{"insert into users (name, id) select id, name from users", CodeFeatureNotSupported, "stays on its shard"},
		{"insert into countries (code) select name from users", CodeFeatureNotSupported, "reads sharded tables"},
		{"insert into countries (code) select code from countries limit 1", CodeFeatureNotSupported, "LIMIT"},
		{"insert into users (id, name) select id, name from users on conflict (id) do update set id = excluded.id + 1", CodeFeatureNotSupported, "ON CONFLICT DO UPDATE of sharding column"},
		{"insert into countries (code, at) values ('de', now()) returning clock_timestamp()", CodeFeatureNotSupported, "in a write that runs on several shards"},
		{"update users set seen = random()", CodeFeatureNotSupported, "random()"},
		{"insert into users (id, n) values (1, 2) returning nextval('s')", CodeFeatureNotSupported, "nextval()"},
		{"insert into users (id, n) values (1, nextval(lower('S')))", CodeFeatureNotSupported, "literal"},
		{"select nextval('s') from users", CodeFeatureNotSupported, "nextval()"},
		{"create table orders (user_id bigint, n bigint default nextval('order_numbers') * 10)", CodeFeatureNotSupported, "nextval()"},
		{"alter table orders alter column n set default 'n' || nextval('order_numbers')", CodeFeatureNotSupported, "nextval()"},
		{"create table sessions (token serial primary key)", CodeFeatureNotSupported, "declared as int8"},
		{"create table users (id text)", CodeFeatureNotSupported, "declared as text"},
		{"create table users (id bigint, email text unique)", CodeFeatureNotSupported, "unique"},
		{"create table orders (id bigint primary key, user_id bigint)", CodeFeatureNotSupported, "unique"},
		{"create table nothere (id int)", CodeUndefinedTable, "not in the vschema"},
		{"create unique index on users (name)", CodeFeatureNotSupported, "unique"},
		{"alter table users drop column id", CodeFeatureNotSupported, "sharding column"},
		{"select set_config('a', 'b', false) from users", CodeFeatureNotSupported, "set_config()"},
		{"create role reader", CodeFeatureNotSupported, "CREATE ROLE"},
		{"alter table users rename to people", CodeFeatureNotSupported, "renaming table users"},
		{"alter table billing.invoices rename column account_id to acct", CodeFeatureNotSupported, "renaming sharding column"},
		{"alter schema billing rename to money", CodeFeatureNotSupported, "billing.invoices"},
		{"alter table users set schema billing", CodeFeatureNotSupported, "another schema"},
		{"create table copy as select * from users", CodeFeatureNotSupported, "CREATE TABLE ... AS"},
		{"create schema billing create table bills (id bigint)", CodeUndefinedTable, "billing.bills"},
		{"create table billing.invoices (id bigint primary key, account_id bigint)", CodeFeatureNotSupported, "unique"},
		{"with x as (delete from users returning id) select * from x", CodeFeatureNotSupported, "WITH"},
		{"create temp table t (a int)", CodeFeatureNotSupported, "temporary"},
		{"select pg_advisory_lock(id) from users where id = 1", CodeFeatureNotSupported, "anchor shard"},
		{"declare c cursor for select 1", CodeFeatureNotSupported, "cursors"},
	}
	for _, c := range cases {
		_, err := f.run(c.sql, nil)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%s: got %v, want error %s", c.sql, err, c.code)
			continue
		}
		if pe.Code != c.code || !strings.Contains(pe.Message, c.contains) {
			t.Errorf("%s: got %s %q, want %s containing %q", c.sql, pe.Code, pe.Message, c.code, c.contains)
		}
	}
}

func TestPlanSplitsMultiRowInsert(t *testing.T) {
	f := newFake(t)
	var vals []string
	for i := 1; i <= 8; i++ {
		vals = append(vals, "("+itoa(int64(i))+", 'n')")
	}
	calls, err := f.run("insert into users (id, name) values "+strings.Join(vals, ", ")+" returning id", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 {
		t.Fatalf("want a split over two shards, got %v", calls)
	}
	for _, c := range calls {
		for i := int64(1); i <= 8; i++ {
			in := strings.Contains(c.q.SQL, "("+itoa(i)+", 'n')")
			if in != (f.shardOf(i) == c.shard) {
				t.Errorf("row %d in %s's SQL %q: %v", i, c.shard, c.q.SQL, in)
			}
		}
		if !strings.Contains(c.q.SQL, "RETURNING id") {
			t.Errorf("lost RETURNING: %s", c.q.SQL)
		}
	}
}

func TestPlanMultiStatement(t *testing.T) {
	f := newFake(t)
	stmts, err := Plan(f.vs, "select * from users where id = 1; select 2 ;")
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 2 || stmts[0].SQL != "select * from users where id = 1" || stmts[1].SQL != "select 2" {
		t.Fatalf("got %#v", stmts)
	}
	if stmts, err := Plan(f.vs, "  -- nothing\n"); err != nil || len(stmts) != 0 {
		t.Fatalf("empty query: %v %v", stmts, err)
	}
}

func uuidOf(t *testing.T, s string) [16]byte {
	u, err := vschema.ParseUUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// unsharded is the vschema of an unsharded keyspace.
func unsharded(t testing.TB) *vschema.Keyspace {
	f, err := vschema.Parse([]byte("keyspaces:\n  legacy:\n    sharded: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	return f.Keyspaces["legacy"]
}

func TestPlanUnshardedPassesThrough(t *testing.T) {
	topo := &fakeTopology{vs: unsharded(t), m: &topology.ShardMap{LogicalCount: 1, Placement: []string{"only"}}}
	for _, sql := range []string{
		"select count(*) from anything order by 1 limit 3",
		"create function f() returns int as 'select 1' language sql",
		"insert into t select * from u",
		"with x as (select 1) select * from x",
	} {
		calls, err := topo.run(sql, nil)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if len(calls) != 1 || calls[0].shard != "only" || calls[0].q.SQL != sql {
			t.Fatalf("%s: %v", sql, calls)
		}
	}
	// Session settings are the session's business here too.
	if stmts, err := Plan(topo.vs, "set search_path = x"); err != nil || stmts[0].Setting == nil {
		t.Fatalf("SET: %v", err)
	}
}

func TestPlanControlAndSettings(t *testing.T) {
	f := newFake(t)
	cases := []struct {
		sql     string
		control *Control
		setting *Setting
	}{
		{"begin", &Control{Kind: Begin}, nil},
		{"start transaction isolation level serializable, read only", &Control{Kind: Begin}, nil},
		{"commit", &Control{Kind: Commit}, nil},
		{"end", &Control{Kind: Commit}, nil},
		{"rollback", &Control{Kind: Rollback}, nil},
		{"abort", &Control{Kind: Rollback}, nil},
		{"savepoint s1", &Control{Kind: Savepoint, Savepoint: "s1"}, nil},
		{"release savepoint s1", &Control{Kind: Release, Savepoint: "s1"}, nil},
		{"rollback to s1", &Control{Kind: RollbackTo, Savepoint: "s1"}, nil},
		{"set search_path = a, b", nil, &Setting{Name: "search_path"}},
		{"SET TimeZone TO 'UTC'", nil, &Setting{Name: "timezone"}},
		{"set time zone 'UTC'", nil, &Setting{Name: "timezone"}},
		{"set local statement_timeout = '1s'", nil, &Setting{Name: "statement_timeout", Local: true}},
		{"set application_name to default", nil, &Setting{Name: "application_name", Reset: true}},
		{"reset datestyle", nil, &Setting{Name: "datestyle", Reset: true}},
		{"reset all", nil, &Setting{Reset: true}},
		{"set transaction isolation level serializable", nil, &Setting{Name: "transaction", Local: true}},
		{"select set_config('search_path', 'x', false)", nil, &Setting{Name: "search_path"}},
		{"select set_config('Search_Path', 'x', true)", nil, &Setting{Name: "search_path", Local: true}},
	}
	for _, c := range cases {
		stmts, err := Plan(f.vs, c.sql)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		st := stmts[0]
		if st.Root != nil {
			t.Errorf("%s: planned as %s", c.sql, engine.Format(st.Root))
		}
		if (c.control == nil) != (st.Control == nil) || c.control != nil && *c.control != *st.Control {
			t.Errorf("%s: control %+v, want %+v", c.sql, st.Control, c.control)
		}
		if (c.setting == nil) != (st.Setting == nil) || c.setting != nil && *c.setting != *st.Setting {
			t.Errorf("%s: setting %+v, want %+v", c.sql, st.Setting, c.setting)
		}
	}
}

// textParams are bound parameters in text form; "" is NULL.
type textParams []string

func (p textParams) Text(i int) (string, bool) {
	if i >= len(p) || p[i] == "" {
		return "", false
	}
	return p[i], true
}

// TestPlanBoundParameters: a parameter that fixes the sharding column
// routes each execution of one plan by its bound value.
func TestPlanBoundParameters(t *testing.T) {
	f := newFake(t)
	a, b := int64(1), int64(2)
	for f.shardOf(b) == f.shardOf(a) {
		b++
	}
	where := func(sql string, params textParams) []string {
		t.Helper()
		calls, err := f.run(sql, params)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return shardsOf(calls)
	}
	if got := where("select * from users where id = $1", textParams{itoa(b)}); !slices.Equal(got, []string{f.shardOf(b)}) {
		t.Fatalf("by parameter: %v", got)
	}
	if got := where("select * from users where id = $1::bigint and name = $2", textParams{itoa(a), "x"}); !slices.Equal(got, []string{f.shardOf(a)}) {
		t.Fatalf("by cast parameter: %v", got)
	}
	if got := where("select * from users where id in ($1, $2)", textParams{itoa(a), itoa(b)}); len(got) != 2 {
		t.Fatalf("IN of parameters over two shards: %v", got)
	}
	// NULL matches no row: one shard answers, with nothing.
	if got := where("select * from users where id = $1", textParams{""}); len(got) != 1 {
		t.Fatalf("a NULL parameter: %v", got)
	}
	// A value the hash cannot read may still match (numeric 7.0 = 7): every shard.
	if got := where("select * from users where id = $1", textParams{"7.0"}); len(got) != 2 {
		t.Fatalf("an unreadable parameter: %v", got)
	}
	// A multi-row INSERT is split by the bound values: each shard gets its
	// rows, with the client's parameter numbers.
	calls, err := f.run("insert into users (id, name) values ($1, $2), ($3, $4) returning id, $5::text", textParams{itoa(a), "x", itoa(b), "y", "z"})
	if err != nil || len(calls) != 2 {
		t.Fatalf("split: %v %v", calls, err)
	}
	for _, c := range calls {
		row := "($1, $2)"
		if c.shard == f.shardOf(b) {
			row = "($3, $4)"
		}
		if c.q.Params != nil || !strings.Contains(c.q.SQL, "VALUES "+row+" RETURNING") || !strings.Contains(c.q.SQL, "$5::text") {
			t.Errorf("part on %s: %q params %v", c.shard, c.q.SQL, c.q.Params)
		}
	}
	// The same rows on one shard run as the client wrote them.
	sql := "insert into users (id, name) values ($1, $2), ($3, $4)"
	calls, err = f.run(sql, textParams{itoa(a), "x", itoa(a), "y"})
	if err != nil || len(calls) != 1 || calls[0].q.SQL != sql {
		t.Fatalf("one shard: %v %v", calls, err)
	}
	var pe *Error
	if _, err := f.run("insert into users (id) values ($1)", textParams{""}); !errors.As(err, &pe) || pe.Code != CodeFeatureNotSupported {
		t.Fatalf("an INSERT of a NULL key: %v", err)
	}
}

// TestDiscards classifies the statements that throw away backend state the
// gateway tracks.
func TestDiscards(t *testing.T) {
	for sql, want := range map[string]Discard{
		"DEALLOCATE ALL":         DiscardPrepared,
		"deallocate prepare all": DiscardPrepared,
		"DEALLOCATE byk":         0,
		"DISCARD ALL":            DiscardAll,
		"DISCARD TEMP":           0,
		"DISCARD PLANS":          0,
		"SELECT 1":               0,
	} {
		stmts, err := Plan(unsharded(t), sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if got := stmts[0].Discards; got != want {
			t.Errorf("%s: Discards = %d, want %d", sql, got, want)
		}
	}
}

// TestClientTwoPhaseControl: the client's own two-phase commit statements
// are transaction control with their identifier; the session decides
// whether the keyspace allows them.
func TestClientTwoPhaseControl(t *testing.T) {
	for sql, want := range map[string]Control{
		"PREPARE TRANSACTION 'a'": {Kind: PrepareTransaction, GID: "a"},
		"COMMIT PREPARED 'b'":     {Kind: CommitPrepared, GID: "b"},
		"ROLLBACK PREPARED 'c'":   {Kind: RollbackPrepared, GID: "c"},
	} {
		stmts, err := Plan(unsharded(t), sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if c := stmts[0].Control; c == nil || *c != want {
			t.Errorf("%s: %+v, want %+v", sql, c, want)
		}
	}
}
