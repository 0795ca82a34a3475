package planner

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/topology"
)

func TestPassOver(t *testing.T) {
	vs := newFake(t).vs
	skip := []KeyRange{{Lo: -100, Hi: 200}, {Lo: 1000, Hi: math.MaxInt64}}
	const users = `(hashint8extended(u.id::int8, 0) BETWEEN -100 AND 200 OR hashint8extended(u.id::int8, 0) >= 1000) IS NOT TRUE`
	cases := []struct{ in, want string }{
		{"SELECT count(*) FROM users u WHERE u.name = $1",
			"SELECT count(*) FROM users u WHERE u.name = $1 AND " + users},
		{"SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id, countries",
			"SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id, countries WHERE " + users + " AND (hashint8extended(o.user_id::int8, 0) BETWEEN -100 AND 200 OR hashint8extended(o.user_id::int8, 0) >= 1000) IS NOT TRUE"},
		{"SELECT id FROM sessions WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = 1) UNION ALL SELECT 1",
			"SELECT id FROM sessions WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = 1 AND " + users + ") AND (hashtextextended(sessions.token::text COLLATE \"C\", 0) BETWEEN -100 AND 200 OR hashtextextended(sessions.token::text COLLATE \"C\", 0) >= 1000) IS NOT TRUE UNION ALL SELECT 1"},
		{"UPDATE users u SET n = n + 1 FROM countries c WHERE c.code = u.cc",
			"UPDATE users u SET n = n + 1 FROM countries c WHERE c.code = u.cc AND " + users},
		{"DELETE FROM users AS u",
			"DELETE FROM users u WHERE " + users},
		{"COPY users (id, name) TO STDOUT (FORMAT csv)",
			"COPY (SELECT id, name FROM users WHERE (hashint8extended(users.id::int8, 0) BETWEEN -100 AND 200 OR hashint8extended(users.id::int8, 0) >= 1000) IS NOT TRUE) TO STDOUT CSV"},
		{"INSERT INTO users (id) SELECT 1", "INSERT INTO users (id) SELECT 1"},
		{"SELECT * FROM countries", "SELECT * FROM countries"},
	}
	for _, c := range cases {
		got, err := PassOver(c.in, vs, skip)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
	for _, sql := range []string{"TRUNCATE users", "WITH users AS (SELECT 1 AS id) SELECT * FROM users"} {
		if _, err := PassOver(sql, vs, skip); err == nil || !strings.Contains(err.Error(), "users") {
			t.Errorf("%s: want a refusal naming users, got %v", sql, err)
		}
	}
}

// TestPassOverLive runs rewritten statements on Postgres and compares them
// with the same statements over each sharded table filtered first: joins
// (outer ones padding rows with NULLs), rows without a sharding value
// (which go with the lowest keyspace id), subqueries and aggregates.
func TestPassOverLive(t *testing.T) {
	pg := pgtest.Start(t, 1)[0]
	conn, err := pgconn.Connect(t.Context(), pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	exec := func(sql string) []string {
		t.Helper()
		res, err := conn.Exec(t.Context(), sql).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		var rows []string
		for _, r := range res[len(res)-1].Rows {
			var f []string
			for _, v := range r {
				if v == nil {
					f = append(f, "NULL")
				} else {
					f = append(f, string(v))
				}
			}
			rows = append(rows, strings.Join(f, ","))
		}
		slices.Sort(rows)
		return rows
	}
	exec(`create table users (id bigint primary key, name text);
create table orders (id bigint primary key, user_id bigint, total int);
insert into users select g, 'u' || g from generate_series(1, 60) g;
insert into orders select g, case when g > 150 then null else g % 70 + 1 end, g from generate_series(1, 160) g`)
	vs := newFake(t).vs
	m := topology.ShardMap{LogicalCount: 8}
	var skip []KeyRange
	for _, l := range []int{0, 1, 5} {
		lo, hi := m.Range(l)
		if n := len(skip); n > 0 && skip[n-1].Hi+1 == lo {
			skip[n-1].Hi = hi
		} else {
			skip = append(skip, KeyRange{lo, hi})
		}
	}
	// kept filters a table as the rewrite must behave: rows of logical
	// shards 0, 1 and 5 go, and so do rows without a sharding value.
	kept := func(table, col string) string {
		return fmt.Sprintf("(select * from %s where %s is not null and (hashint8extended(%s, 0) > %d and hashint8extended(%s, 0) not between %d and %d))",
			table, col, col, skip[0].Hi, col, skip[1].Lo, skip[1].Hi)
	}
	for _, q := range []struct{ sql, want string }{
		{"select count(*), sum(total) from orders", "select count(*), sum(total) from " + kept("orders", "user_id") + " orders"},
		{"select u.id, o.id from users u left join orders o on o.user_id = u.id",
			"select u.id, o.id from " + kept("users", "id") + " u left join " + kept("orders", "user_id") + " o on o.user_id = u.id"},
		{"select o.id, u.name from orders o left join users u on u.id = o.user_id",
			"select o.id, u.name from " + kept("orders", "user_id") + " o left join " + kept("users", "id") + " u on u.id = o.user_id"},
		{"select u.id, o.id from users u full join orders o on o.user_id = u.id",
			"select u.id, o.id from " + kept("users", "id") + " u full join " + kept("orders", "user_id") + " o on o.user_id = u.id"},
		{"select id from users u where exists (select 1 from orders o where o.user_id = u.id and o.total > 20)",
			"select id from " + kept("users", "id") + " u where exists (select 1 from " + kept("orders", "user_id") + " o where o.user_id = u.id and o.total > 20)"},
		{"select user_id, count(*) from orders group by user_id having count(*) > 1",
			"select user_id, count(*) from " + kept("orders", "user_id") + " orders group by user_id having count(*) > 1"},
	} {
		rewritten, err := PassOver(q.sql, vs, skip)
		if err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
		got, want := exec(rewritten), exec(q.want)
		if len(want) == 0 {
			t.Fatalf("%s: the filtered statement finds nothing; the test data is wrong", q.want)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s\nrewritten %s\n got %d rows %.300v\nwant %d rows %.300v", q.sql, rewritten, len(got), got, len(want), want)
		}
	}
	// The rows the rewrite passes over really are there.
	if all := exec("select count(*) from orders"); all[0] != "160" {
		t.Fatalf("orders: %v", all)
	}
}
