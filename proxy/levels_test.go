package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestQueryLevelsAcrossShards runs, over two shards, the statements whose
// parts the gateway runs one after another: a join of tables that are not
// co-located, a subquery pulled out of its statement, a UNION that holds
// its rows to remove duplicates. EXPLAIN shows each step with the SQL its
// shards run; answers are checked against what the rows say.
func TestQueryLevelsAcrossShards(t *testing.T) {
	g := startMovableGateway(t)
	c := g.connect(t, "app", "")
	exec(t, c, `create table tags (tag text primary key, user_id bigint, label text collate "und-x-icu")`)
	var users, tags []string
	for i := 1; i <= 40; i++ {
		users = append(users, fmt.Sprintf("(%d, 'user %02d')", i, i))
		tags = append(tags, fmt.Sprintf("('tag-%02d', %d, '%c%d')", i, (i*7)%45, "aBcD"[i%4], i))
	}
	exec(t, c, "insert into users (id, name) values "+strings.Join(users, ", "))
	exec(t, c, "insert into tags (tag, user_id, label) values "+strings.Join(tags, ", "))
	lines := func(sql string) string {
		t.Helper()
		var out []string
		for _, r := range exec(t, c, sql)[0].Rows {
			out = append(out, string(r[0]))
		}
		return strings.Join(out, "\n")
	}

	// A join at the gateway: tags first, then each tag's row on the shard
	// of the user it names.
	join := "select t.tag, u.name from tags t left join users u on u.id = t.user_id where t.tag < 'tag-20'"
	plan := lines("explain (costs off) " + join)
	for _, want := range []string{
		`Bind $1=rows of "SELECT * FROM tags t WHERE t.tag < 'tag-20'"`,
		"AS sg_collations FROM tags t WHERE t.tag < 'tag-20'",
		"Shard s0: SELECT *, (SELECT pg_catalog.jsonb_object_agg(",
		"Shard s1: SELECT t.tag, u.name FROM (SELECT sg_r.\"tag\"::pg_catalog.text AS \"tag\"",
		"pg_catalog.jsonb_to_recordset($1)",
		"Function Scan on jsonb_to_recordset",
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("EXPLAIN of a join at the gateway lacks %q:\n%s", want, plan)
		}
	}
	var want []string
	for i := 1; i < 20; i++ {
		name := "NULL"
		if u := (i * 7) % 45; u >= 1 && u <= 40 {
			name = fmt.Sprintf("user %02d", u)
		}
		want = append(want, fmt.Sprintf("tag-%02d|%s", i, name))
	}
	if got := rowsOf(t, c, join+" order by t.tag"); !slices.Equal(got, want) {
		t.Errorf("join at the gateway:\n got %q\nwant %q", got, want)
	}

	// A subquery over sharded rows runs first; its value is bound into
	// the statement.
	pulled := "select id from users where id > (select avg(id) + 15 from users) order by id"
	plan = lines("explain (costs off) " + pulled)
	for _, want := range []string{`Bind $1=value of "SELECT avg(id) + 15 FROM users"`, "Shard s0: SELECT NULL, avg(id) AS sg_value", "FROM users WHERE id > $1 ORDER BY id", "Filter: ((id)::numeric > 35.5"} {
		if !strings.Contains(plan, want) {
			t.Errorf("EXPLAIN of a pulled subquery lacks %q:\n%s", want, plan)
		}
	}
	if got := rowsOf(t, c, pulled); !slices.Equal(got, []string{"36", "37", "38", "39", "40"}) {
		t.Errorf("pulled subquery: got %q", got)
	}

	// With the client's parameters, in the extended protocol: the
	// subquery and the statement each read theirs, the subquery's value
	// bound after them.
	r := c.ExecParams(t.Context(), "select id from users where id > (select avg(id) + $1 from users) and name <> $2 order by id", [][]byte{[]byte("15"), []byte("user 39")}, nil, nil, nil).Read()
	var got []string
	for _, row := range r.Rows {
		got = append(got, string(row[0]))
	}
	if r.Err != nil || !slices.Equal(got, []string{"36", "37", "38", "40"}) {
		t.Errorf("pulled subquery with parameters: %v %q", r.Err, got)
	}
	r = c.ExecParams(t.Context(), "select u.id, rank() over (order by u.name desc) from users u where u.id < $1 order by 2", [][]byte{[]byte("4")}, nil, nil, nil).Read()
	got = nil
	for _, row := range r.Rows {
		got = append(got, string(row[0])+"|"+string(row[1]))
	}
	if r.Err != nil || !slices.Equal(got, []string{"3|1", "2|2", "1|3"}) {
		t.Errorf("gathered window with a parameter: %v %q", r.Err, got)
	}

	// Rows gathered to one shard keep the collation their column declares:
	// a window over all rows sorts them as Postgres would.
	ranked := rowsOf(t, c, "select label, rank() over (order by label) from tags where tag < 'tag-09' order by 2")
	if want := []string{"a4|1", "a8|2", "B1|3", "B5|4", "c2|5", "c6|6", "D3|7", "D7|8"}; !slices.Equal(ranked, want) {
		t.Errorf("a window over rows of a column with its own collation:\n got %q\nwant %q", ranked, want)
	}

	// A UNION past the session's memory limit fails with 53200, and the
	// session goes on.
	exec(t, c, "set shardgate.query_memory = '64kB'")
	union := "select repeat(name, 200) from users union select repeat(tag, 200) from tags"
	if _, err := c.Exec(t.Context(), union).ReadAll(); code(err) != "53200" {
		t.Errorf("UNION past the memory limit: %v, want 53200", err)
	}
	exec(t, c, "reset shardgate.query_memory")
	if got := rowsOf(t, c, "select count(*) from ("+union+") u"); !slices.Equal(got, []string{"80"}) {
		t.Errorf("UNION under the default limit: %q rows", got)
	}
}

// rowsOf returns the rows of sql, columns joined by |, NULL as NULL.
func rowsOf(t *testing.T, c *pgconn.PgConn, sql string) []string {
	t.Helper()
	var out []string
	for _, r := range exec(t, c, sql)[0].Rows {
		vals := make([]string, len(r))
		for i, v := range r {
			vals[i] = "NULL"
			if v != nil {
				vals[i] = string(v)
			}
		}
		out = append(out, strings.Join(vals, "|"))
	}
	return out
}
