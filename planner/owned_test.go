package planner

import (
	"math"
	"strings"
	"testing"
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
