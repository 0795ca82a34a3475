package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestOrderByAndLimitAcrossShards runs ORDER BY, LIMIT and OFFSET over
// both shards through the gateway and compares each answer, row for row in
// order, with the same statement over one table holding every row on one
// Postgres — in the simple protocol, and in the extended one with text,
// binary and per-column result formats.
func TestOrderByAndLimitAcrossShards(t *testing.T) {
	g := startMovableGateway(t)
	c := g.connect(t, "app", "")
	names := []string{"'alice'", "'Alice'", "'älice'", "'bob'", "NULL", "''", "'bob'", "'zoë'", "'Zed'", "'a b'"}
	var values []string
	for id := 1; id <= 300; id++ {
		values = append(values, fmt.Sprintf("(%d, %s)", id*7919%1000-500, names[id%len(names)]))
	}
	rows := strings.Join(values, ", ")
	exec(t, c, "insert into users (id, name) values "+rows)
	// The same rows, all on one server: what one Postgres answers.
	direct := g.direct(t, 0)
	exec(t, direct, "create table users_all (id bigint primary key, name text)")
	exec(t, direct, "insert into users_all (id, name) values "+rows)

	queries := []string{
		"select id, name from users order by name, id",
		"select name, id from users order by id desc limit 7 offset 3",
		"select * from users order by name nulls first, id desc",
		"select id from users order by lower(name) desc, id limit 11",
		"select id, name as n from users order by n, 1 desc",
		"select name from users order by id fetch first 5 rows only",
		"select id from users order by id offset 295",
		"select id from users order by id limit 0",
		"select id from users order by id limit all offset 2",
		"select id, name from users where id in (1, 2, 3, -1, -2, -3, 100, 200) order by name collate \"C\" desc, id",
		"select id from users order by id limit null",
	}
	for _, q := range queries {
		want := allRows(t, direct, strings.ReplaceAll(q, "from users", "from users_all"), nil, nil)
		if got := allRows(t, c, q, nil, nil); !slices.Equal(got, want) {
			t.Errorf("%s, simple protocol:\n got %q\nwant %q", q, got, want)
		}
		// Per column: binary, text, binary, ...
		var each []int16
		for i := range columns(want) {
			each = append(each, int16(1-i%2))
		}
		for _, formats := range [][]int16{{0}, {1}, each} {
			want := allRows(t, direct, strings.ReplaceAll(q, "from users", "from users_all"), nil, formats)
			if got := allRows(t, c, q, nil, formats); !slices.Equal(got, want) {
				t.Errorf("%s, result formats %v:\n got %q\nwant %q", q, formats, got, want)
			}
		}
	}
	// LIMIT and OFFSET as parameters, bound per execution.
	q := "select id, name from users order by id limit $1 offset $2"
	for _, args := range [][][]byte{{[]byte("4"), []byte("2")}, {nil, []byte("297")}, {[]byte("3"), nil}} {
		want := allRows(t, direct, strings.ReplaceAll(q, "from users", "from users_all"), args, nil)
		if got := allRows(t, c, q, args, nil); !slices.Equal(got, want) {
			t.Errorf("%s with %q:\n got %q\nwant %q", q, args, got, want)
		}
	}
	// Postgres's own errors, before any row.
	for sql, want := range map[string]string{
		"select id from users order by id limit -1":  "2201W",
		"select id from users order by id offset -1": "2201X",
		"select id from users order by nothere":      "42703",
	} {
		if _, err := c.Exec(t.Context(), sql).ReadAll(); code(err) != want {
			t.Errorf("%s: %v, want %s", sql, err, want)
		}
	}
	// A collation that does not order by bytes is never merged in
	// another order: the merge refuses it and the rows are gathered to
	// one shard, which sorts them.
	icu := `select name, id from users order by name collate "und-x-icu", id`
	if got, want := allRows(t, c, icu, nil, nil), allRows(t, direct, strings.ReplaceAll(icu, "from users", "from users_all"), nil, nil); !slices.Equal(got, want) {
		t.Errorf("ORDER BY under an ICU collation: got %q, want %q", got, want)
	}
	// The session goes on.
	if got := one(t, c, "select count(*) from users"); got != "300" {
		t.Fatalf("count: %s", got)
	}
}

// columns returns the column lines of allRows's answer.
func columns(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "[") || !strings.Contains(l, ":") {
			break
		}
		out = append(out, l)
	}
	return out
}

// allRows runs sql (in the extended protocol when formats or args are
// given) and returns its column types and rows as lines.
func allRows(t *testing.T, c *pgconn.PgConn, sql string, args [][]byte, formats []int16) []string {
	t.Helper()
	var r *pgconn.Result
	if args == nil && formats == nil {
		rs, err := c.Exec(t.Context(), sql).ReadAll()
		if err != nil || len(rs) != 1 {
			t.Fatalf("%s: %v", sql, err)
		}
		r = rs[0]
	} else {
		r = c.ExecParams(t.Context(), sql, args, nil, nil, formats).Read()
		if r.Err != nil {
			t.Fatalf("%s: %v", sql, r.Err)
		}
	}
	var out []string
	for _, f := range r.FieldDescriptions {
		out = append(out, fmt.Sprintf("%s:%d:%d", f.Name, f.DataTypeOID, f.Format))
	}
	for _, row := range r.Rows {
		out = append(out, fmt.Sprintf("%q", row))
	}
	return append(out, r.CommandTag.String())
}

// TestAggregatesAcrossShards: aggregates whose groups span both shards,
// combined at the gateway, give one Postgres's answer — values, types,
// scales — in both protocols and result formats.
func TestAggregatesAcrossShards(t *testing.T) {
	g := startMovableGateway(t)
	c := g.connect(t, "app", "")
	exec(t, c, "alter table users add column n int, add column amount numeric(10,2), add column flag bool")
	var values []string
	for id := 1; id <= 200; id++ {
		name, n, amount, flag := fmt.Sprintf("'g%d'", id%7), fmt.Sprint(id%13-6), fmt.Sprintf("%d.%02d", id%50, id%100), fmt.Sprint(id%3 != 0)
		if id%11 == 0 {
			name, n, amount, flag = "NULL", "NULL", "NULL", "NULL"
		}
		values = append(values, fmt.Sprintf("(%d, %s, %s, %s, %s)", id, name, n, amount, flag))
	}
	rows := strings.Join(values, ", ")
	exec(t, c, "insert into users (id, name, n, amount, flag) values "+rows)
	direct := g.direct(t, 0)
	exec(t, direct, "create table users_all (id bigint primary key, name text, n int, amount numeric(10,2), flag bool)")
	exec(t, direct, "insert into users_all (id, name, n, amount, flag) values "+rows)

	ordered := []string{
		"select name, count(*), count(n), sum(n), sum(amount), min(amount), max(name), avg(n), avg(amount), bool_and(flag), bool_or(flag), every(flag) from users group by name order by name",
		"select name, count(*) as c from users group by 1 order by 1 desc nulls last limit 3 offset 1",
		"select name, sum(id) from users where id > 50 group by name order by name",
		"select name, count(*) filter (where flag), avg(n) filter (where n > 0) from users group by name order by name",
		"select lower(name), count(distinct id) from users group by lower(name) order by lower(name)",
		"select name, count(*) from users group by name having count(*) > 25 order by name",
		"select name, avg(n) from users group by name having avg(n) >= 0.5 and name <> 'g3' and 2 < sum(n) order by name",
		"select name from users group by name having max(amount) > 48.5 and count(*) > 27.5 order by 1",
		"select name, count(*) from users group by name order by count(*) desc, name limit 3",
		"select name, sum(amount) as s, max(n) from users group by name order by s nulls first, 1 desc",
		"select name, avg(amount) from users group by name order by 2 desc nulls last, name offset 2",
		"select distinct name from users order by name",
		"select distinct name, flag from users order by name desc, flag",
		"select distinct on (name) name, id, amount from users order by name, id desc",
		"select distinct name from users order by name limit 3 offset 1",
		"select distinct on (flag) flag, n from users order by flag nulls first, n desc nulls last",
	}
	single := []string{
		"select count(*), sum(n), sum(amount), min(name), max(amount), avg(amount), avg(n), bool_or(flag) from users",
		"select sum(n), avg(amount), max(name), count(n) from users where id < 0",
		"select count(distinct id), sum(distinct id), min(distinct name) from users",
	}
	for _, q := range append(ordered, single...) {
		want := allRows(t, direct, strings.ReplaceAll(q, "from users", "from users_all"), nil, nil)
		if got := allRows(t, c, q, nil, nil); !slices.Equal(got, want) {
			t.Errorf("%s, simple protocol:\n got %q\nwant %q", q, got, want)
		}
		for _, formats := range [][]int16{{0}, {1}} {
			want := allRows(t, direct, strings.ReplaceAll(q, "from users", "from users_all"), nil, formats)
			if got := allRows(t, c, q, nil, formats); !slices.Equal(got, want) {
				t.Errorf("%s, result formats %v:\n got %q\nwant %q", q, formats, got, want)
			}
		}
	}
	// Without ORDER BY the groups come in some order: compare as sets.
	for _, q := range []string{"select name, count(*), sum(amount) from users group by name", "select distinct flag, n from users"} {
		want := allRows(t, direct, strings.ReplaceAll(q, "from users", "from users_all"), nil, nil)
		got := allRows(t, c, q, nil, nil)
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", q, got, want)
		}
	}
	// Sums of floats depend on the order rows are added in: refused.
	if _, err := c.Exec(t.Context(), "select sum(n::float8) from users").ReadAll(); code(err) != "0A000" {
		t.Errorf("sum of a float across shards: %v, want 0A000", err)
	}
}

// TestExplainAcrossShards: EXPLAIN through the gateway shows its plan, the
// shards it resolves to, and each shard's own plan; ANALYZE adds the
// shards' rows and times; a refused statement's EXPLAIN is refused alike.
func TestExplainAcrossShards(t *testing.T) {
	g := startMovableGateway(t)
	c := g.connect(t, "app", "")
	exec(t, c, "insert into users (id, name) values (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')")
	plan := func(sql string) string {
		t.Helper()
		rs := exec(t, c, sql)
		var lines []string
		for _, r := range rs[0].Rows {
			lines = append(lines, string(r[0]))
		}
		return strings.Join(lines, "\n")
	}
	key, _ := keyOn(t, g.cur.Load(), "s1")
	routed := plan(fmt.Sprintf("explain select name from users where id = %d", key))
	for _, want := range []string{"Gateway plan:", fmt.Sprintf("Route keys(%d)", key), "-> s1", "Shard s1: SELECT name FROM users WHERE id = ", "Scan"} {
		if !strings.Contains(routed, want) {
			t.Errorf("EXPLAIN of a routed statement lacks %q:\n%s", want, routed)
		}
	}
	if strings.Contains(routed, "Shard s0") {
		t.Errorf("EXPLAIN of a routed statement shows s0:\n%s", routed)
	}
	merged := plan("explain (analyze, costs off, timing off) select name, count(*), avg(id) from users group by name order by name")
	for _, want := range []string{"Aggregate cols(name=first, count(*)=count, avg(id)=avg)", "MergeSort all", "-> s0, s1", "Shard s0: SELECT name, count(*), avg(id)", "Shard s1: ", "actual rows=", "Execution Time"} {
		if !strings.Contains(merged, want) {
			t.Errorf("EXPLAIN ANALYZE of a merged aggregate lacks %q:\n%s", want, merged)
		}
	}
	if _, err := c.Exec(t.Context(), "explain select name from users order by id limit 3 for update").ReadAll(); code(err) != "0A000" {
		t.Errorf("EXPLAIN of a refused statement: %v, want 0A000", err)
	}
	// Extended protocol, with a parameter.
	r := c.ExecParams(t.Context(), "explain select name from users where id = $1", [][]byte{[]byte(fmt.Sprint(key))}, nil, nil, nil).Read()
	if r.Err != nil || len(r.Rows) < 3 || r.FieldDescriptions[0].Name != "QUERY PLAN" {
		t.Fatalf("extended EXPLAIN: %v, %d rows", r.Err, len(r.Rows))
	}
}

// TestRowLimitedExecuteAcrossShards: a result merged from several shards,
// fetched a few rows at a time (JDBC's fetch size, a driver's cursor), comes
// back whole, each row once, in order, with Postgres's PortalSuspended and
// CommandComplete — in a transaction, and alone before a Sync.
func TestRowLimitedExecuteAcrossShards(t *testing.T) {
	g := startMovableGateway(t)
	c := g.connect(t, "app", "")
	var values []string
	for id := 1; id <= 100; id++ {
		values = append(values, fmt.Sprintf("(%d, 'n%03d')", id, 100-id))
	}
	exec(t, c, "insert into users (id, name) values "+strings.Join(values, ", "))
	conn := c.Conn()
	exec(t, c, "begin")
	var fetched []string
	send := func(msgs ...pgproto3.FrontendMessage) {
		t.Helper()
		if _, err := conn.Write(encodeMsgs(msgs...)); err != nil {
			t.Fatal(err)
		}
	}
	fe := pgproto3.NewFrontend(conn, conn)
	receive := func() (rows []string, end string) {
		t.Helper()
		for {
			msg, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := msg.(type) {
			case *pgproto3.DataRow:
				rows = append(rows, string(m.Values[0]))
			case *pgproto3.PortalSuspended:
				end = "suspended"
			case *pgproto3.CommandComplete:
				end = string(m.CommandTag)
			case *pgproto3.ErrorResponse:
				t.Fatalf("error: %s", m.Message)
			case *pgproto3.ReadyForQuery:
				return rows, end
			}
		}
	}
	send(&pgproto3.Parse{Name: "s", Query: "select name from users order by name"}, &pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s"},
		&pgproto3.Execute{Portal: "p", MaxRows: 30}, &pgproto3.Sync{})
	rows, end := receive()
	if len(rows) != 30 || end != "suspended" {
		t.Fatalf("first fetch: %d rows, %s", len(rows), end)
	}
	fetched = append(fetched, rows...)
	for _, want := range []string{"suspended", "suspended", "SELECT 10"} {
		send(&pgproto3.Execute{Portal: "p", MaxRows: 30}, &pgproto3.Sync{})
		rows, end := receive()
		if end != want {
			t.Fatalf("fetch: %d rows, %s, want %s", len(rows), end, want)
		}
		fetched = append(fetched, rows...)
	}
	if len(fetched) != 100 || !slices.IsSorted(fetched) || fetched[0] != "n000" || fetched[99] != "n099" {
		t.Fatalf("fetched %d rows: %q", len(fetched), fetched)
	}
	// The transaction's end closes the portal, as on Postgres.
	send(&pgproto3.Query{String: "commit"})
	receive()
	send(&pgproto3.Execute{Portal: "p", MaxRows: 30}, &pgproto3.Sync{})
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			if e.Code != "34000" {
				t.Fatalf("after commit: %s %s", e.Code, e.Message)
			}
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	// Outside a transaction, the row limit before a Sync: the first rows,
	// then the portal ends with the Sync.
	send(&pgproto3.Bind{DestinationPortal: "q", PreparedStatement: "s"}, &pgproto3.Execute{Portal: "q", MaxRows: 7}, &pgproto3.Sync{})
	rows, end = receive()
	if len(rows) != 7 || end != "suspended" || rows[0] != "n000" || rows[6] != "n006" {
		t.Fatalf("alone: %q, %s", rows, end)
	}

	// In a transaction, other statements between the Executes of a paused
	// result (which holds the shards' connections) find them free: the
	// rest of the result waits in the gateway, and the next Executes read
	// it, every row once, in order.
	send(&pgproto3.Query{String: "begin"})
	receive()
	send(&pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "s"}, &pgproto3.Execute{Portal: "r", MaxRows: 40}, &pgproto3.Sync{})
	fetched, end = receive()
	if len(fetched) != 40 || end != "suspended" {
		t.Fatalf("first fetch in the transaction: %d rows, %s", len(fetched), end)
	}
	send(&pgproto3.Query{String: "update users set name = name where id = 1"})
	if _, end := receive(); end != "UPDATE 1" {
		t.Fatalf("a write between the Executes: %s", end)
	}
	send(&pgproto3.Bind{DestinationPortal: "other", PreparedStatement: "s"}, &pgproto3.Execute{Portal: "other", MaxRows: 0}, &pgproto3.Sync{})
	if rows, end := receive(); len(rows) != 100 || end != "SELECT 100" {
		t.Fatalf("another portal between the Executes: %d rows, %s", len(rows), end)
	}
	for _, want := range []string{"suspended", "SELECT 20"} {
		send(&pgproto3.Execute{Portal: "r", MaxRows: 40}, &pgproto3.Sync{})
		rows, end := receive()
		if end != want {
			t.Fatalf("fetch after the others: %d rows, %s, want %s", len(rows), end, want)
		}
		fetched = append(fetched, rows...)
	}
	if len(fetched) != 100 || !slices.IsSorted(fetched) || fetched[0] != "n000" || fetched[99] != "n099" {
		t.Fatalf("fetched %d rows: %q", len(fetched), fetched)
	}
	send(&pgproto3.Query{String: "commit"})
	if _, end := receive(); end != "COMMIT" {
		t.Fatalf("commit: %s", end)
	}
}

// TestMergeLeanAcrossTypeChanges: once a merge saw its sort key (or the
// max it combines, or the distinct values) is of a type without
// collations, the shards run its statement without computing collation
// names (planner/engine/lean.go).
// The answers stay Postgres's when the column turns into text through the gateway
// (the gateway knows, and asks for the collation again); when it changes
// on the shards behind the gateway's back, the one statement that ran
// without the collation is refused with 0A000, and the next is answered.
func TestMergeLeanAcrossTypeChanges(t *testing.T) {
	g := startMovableGateway(t)
	c := g.connect(t, "app", "")
	exec(t, c, "alter table users add column score int")
	var values []string
	for id := 1; id <= 60; id++ {
		values = append(values, fmt.Sprintf("(%d, %d)", id, id*37%23))
	}
	exec(t, c, "insert into users (id, score) values "+strings.Join(values, ", "))
	direct := g.direct(t, 0)
	exec(t, direct, "create table users_all (id bigint primary key, score int)")
	exec(t, direct, "insert into users_all (id, score) values "+strings.Join(values, ", "))

	// A merge by the key, groups merged with their max, and distinct
	// values (in no order: compared sorted).
	queries := []string{
		"select id, score from users order by score desc, id limit 9",
		"select id % 4 as k, count(*), max(score) from users group by 1 order by 1",
		"select distinct score from users",
		"select distinct on (score) score, id from users order by score, id",
	}
	rows := func(c *pgconn.PgConn, q string) []string {
		got := allRows(t, c, q, nil, nil)
		if !strings.Contains(q, "order by") {
			slices.Sort(got)
		}
		return got
	}
	check := func(what string) {
		t.Helper()
		for _, q := range queries {
			want := rows(direct, strings.ReplaceAll(q, "from users", "from users_all"))
			for range 3 {
				if got := rows(c, q); !slices.Equal(got, want) {
					t.Fatalf("%s: %s\n got %q\nwant %q", what, q, got, want)
				}
			}
		}
	}
	check("integer key")

	// Through the gateway: no statement fails.
	exec(t, c, "alter table users alter column score type text using score::text")
	exec(t, direct, "alter table users_all alter column score type text using score::text")
	check("text key, changed through the gateway")
	exec(t, c, "alter table users alter column score type int using score::int")
	exec(t, direct, "alter table users_all alter column score type int using score::int")
	check("integer key again, changed through the gateway")

	// Behind the gateway's back: the merge refuses its first run, which
	// then gathers the rows to one shard; Postgres's answers every time.
	for i := range g.shards {
		shard := g.direct(t, i)
		exec(t, shard, "alter table users alter column score type text using score::text")
		shard.Close(t.Context())
	}
	exec(t, direct, "alter table users_all alter column score type text using score::text")
	check("text key, changed on the shards")
}
