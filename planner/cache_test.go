package planner

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/shardgate/shardgate/planner/engine"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		sql, norm string // norm "": not cacheable
	}{
		{"select * from users where id = 42", "select * from users where id = \x00i"},
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;", "SELECT abalance FROM pgbench_accounts WHERE aid = \x00i;"},
		{"select 2147483647, 2147483648, 007", "select \x00i, \x00n, \x00i"},
		{"select 'a''b', 'c'", "select \x00s, \x00s"},
		{"select 1.5, .5, 1e5, 1e-5, 0x1f, 1_000, 5.", "select 1.5, .5, 1e5, 1e-5, 0x1f, 1_000, 5."},
		{"select x1, t2.c3, $1, $12 from t4", "select x1, t2.c3, $1, $12 from t4"},
		{"select E'it\\'s', e'\\\\', B'101', X'1f', N'n', U&'d\\0061t', U&\"d\\0061t\", 'back\\slash'",
			"select E'it\\'s', e'\\\\', B'101', X'1f', N'n', U&'d\\0061t', U&\"d\\0061t\", 'back\\slash'"},
		{"select \"col 1\", \"a\"\"b\" from t where k = 3", "select \"col 1\", \"a\"\"b\" from t where k = \x00i"},
		{"select 1 -- 2\n, /* 3 /* 4 */ 5 */ 6", "select \x00i -- 2\n, /* 3 /* 4 */ 5 */ \x00i"},
		{"select $$ 1 $$, $f$ '2' $f$, 3", "select $$ 1 $$, $f$ '2' $f$, \x00i"},
		{"select a-1, b+-2, c::int[], d[3:4]", "select a-\x00i, b+-\x00i, c::int[], d[\x00i:\x00i]"},
		{"select 'a'\n'b'", ""},
		{"select 'a' -- c\n 'b'", ""},
		{"select 'unterminated", ""},
		{"select \"unterminated", ""},
		{"select /* open", ""},
		{"select $x$ open", ""},
	} {
		norm, _, ok := normalize(tc.sql)
		if !ok {
			norm = ""
		}
		if norm != tc.norm {
			t.Errorf("normalize(%q) = %q, want %q", tc.sql, norm, tc.norm)
		}
	}
}

// TestCacheGivesEachTextItsOwnPlan: for every statement of the golden plans
// and more, a text that differs from one planned before only in its literals
// gets from the cache either nothing or exactly the plan the planner gives
// that text.
func TestCacheGivesEachTextItsOwnPlan(t *testing.T) {
	f := newFake(t)
	c := NewCache(100000)
	var texts []string
	datadriven.RunTest(t, "testdata/plans", func(t *testing.T, d *datadriven.TestData) string {
		texts = append(texts, d.Input)
		return d.Expected
	})
	texts = append(texts,
		"select * from users where id = 7",
		"select * from users where id = '7'",
		"select * from users where id = 7 and name = 'x' limit 3",
		"select * from users where id in (7)",
		"select * from users where id in (7, 8)",
		"select * from users where id = 7 or id = 8",
		"select * from users where id = 2147483648",
		"update users set name = 'n', score = score + -5 where id = 3",
		"delete from users where id = 4 returning *",
		"insert into users (id, name) values (5, 'five')",
		"insert into users (id, name) values ('5', 'five') returning id",
		"insert into users (id, name) values (5, 'a'), (6, 'b')",
		"select u.*, o.* from users u join orders o on o.user_id = u.id where u.id = 2 and o.id = 9",
		"select * from users where id = 1 and exists (select 1 from orders where user_id = 1)",
		"select * from countries where code = 'se'",
		"select 1, 'x'",
		"select pg_cancel_backend(12)",
		"set work_mem = '5MB'",
	)
	values := map[byte][]string{
		classInt:    {"0", "7", "2147483647", "00042", "1", "8"},
		classBigInt: {"2147483648", "9223372036854775807", "99999999999999999999"},
		classString: {"''", "'x'", "'42'", "'it''s'", "'00000000-0000-0000-0000-00000000002a'", "'-5'", "'se'"},
	}
	hits := 0
	for _, sql := range texts {
		if _, err := c.Plan(f.vs, sql); err != nil {
			continue
		}
		_, lits, ok := normalize(sql)
		if !ok || len(lits) == 0 {
			continue
		}
		for v := range 6 {
			var b strings.Builder
			last := 0
			for i, l := range lits {
				choices := values[l.class]
				b.WriteString(sql[last:l.start])
				b.WriteString(choices[(v+i*(v%2))%len(choices)])
				last = l.end
			}
			b.WriteString(sql[last:])
			variant := b.String()
			cached, ok := c.Lookup(f.vs, variant)
			if !ok {
				continue
			}
			hits++
			fresh, err := Plan(f.vs, variant)
			if err != nil {
				t.Errorf("%q: the cache gave a plan, the planner refuses: %v", variant, err)
				continue
			}
			if !reflect.DeepEqual(cached, fresh) {
				t.Errorf("%q after %q: the cache's plan\n%s\nthe planner's\n%s", variant, sql, describeAll(cached), describeAll(fresh))
			}
		}
	}
	if hits < 100 {
		t.Errorf("only %d texts got their plan from the cache", hits)
	}
	h, m, n := c.Stats()
	t.Logf("%d variants from the cache; hits %d, misses %d, entries %d", hits, h, m, n)
}

func describeAll(stmts []*Statement) string {
	var b strings.Builder
	for _, st := range stmts {
		fmt.Fprintf(&b, "%q %+v\n", st.SQL, *st)
		if st.Root != nil {
			b.WriteString(engine.Format(st.Root))
		}
	}
	return b.String()
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	f := newFake(t)
	c := NewCache(2)
	for _, sql := range []string{"select 1 from users", "select 2 from users", "select 1 from users", "select 3 from countries"} {
		if _, err := c.Plan(f.vs, sql); err != nil {
			t.Fatal(err)
		}
	}
	// "select n from users" is one entry (the literal varies); the
	// countries one is the other.
	if _, _, n := c.Stats(); n != 2 {
		t.Fatalf("entries: %d", n)
	}
	for _, sql := range []string{"select 4 from orders", "select 5 from countries"} {
		if _, err := c.Plan(f.vs, sql); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := c.Lookup(f.vs, "select 1 from users"); ok {
		t.Error("the least recently used entry is still there")
	}
	if _, ok := c.Lookup(f.vs, "select 5 from countries"); !ok {
		t.Error("the most recent entry is gone")
	}
	// A text of another vschema is planned anew.
	other := *f.vs
	if _, ok := c.Lookup(&other, "select 5 from countries"); ok {
		t.Error("a plan of another vschema was given")
	}
}

// TestCacheServesKeyedStatements: the statements an application runs most,
// by key, are planned once per shape.
func TestCacheServesKeyedStatements(t *testing.T) {
	f := newFake(t)
	c := NewCache(100)
	for _, shape := range []string{
		"SELECT name FROM users WHERE id = %d;",
		"select * from users where id = %d",
		"select * from users where id = '%d' and name = 'x'",
		"UPDATE users SET score = score + -5 WHERE id = %d",
		"delete from users where id = %d",
		"insert into users (id, name) values (%d, 'n')",
		"select o.* from users u join orders o on o.user_id = u.id where u.id = %d",
	} {
		if _, err := c.Plan(f.vs, fmt.Sprintf(shape, 1)); err != nil {
			t.Fatalf("%s: %v", shape, err)
		}
		for _, v := range []int{2, 3, 1 << 30} {
			sql := fmt.Sprintf(shape, v)
			cached, ok := c.Lookup(f.vs, sql)
			if !ok {
				t.Errorf("%q: not from the cache", sql)
				continue
			}
			if fresh, err := Plan(f.vs, sql); err != nil || !reflect.DeepEqual(cached, fresh) {
				t.Errorf("%q: the cache's plan\n%s\nthe planner's (%v)\n%s", sql, describeAll(cached), err, describeAll(fresh))
			}
		}
	}
}

// TestCacheServesMultiShardStatements: statements that run on every shard,
// whose rewritten SQL carries their literals, are planned once per shape
// too; a literal the plan computes with (an OFFSET added to the LIMIT)
// keeps its text out of the cache.
func TestCacheServesMultiShardStatements(t *testing.T) {
	f := newFake(t)
	c := NewCache(100)
	for _, tc := range []struct {
		shape  string
		cached bool
	}{
		{"select id, name from users where name > 'n%d' order by name desc, id limit 10", true},
		{"select name, count(*), max(id) from users where id > %d group by name having count(*) > 1 order by name", true},
		{"select count(*) from users where score < %d", true},
		{"select distinct name from users where id < %d order by name", true},
		{"update users set score = %d where name = 'x'", true},
		{"select id from users order by id limit 5 offset %d", false},
	} {
		if _, err := c.Plan(f.vs, fmt.Sprintf(tc.shape, 1)); err != nil {
			t.Fatalf("%s: %v", tc.shape, err)
		}
		for _, v := range []int{2, 3, 1 << 30} {
			sql := fmt.Sprintf(tc.shape, v)
			cached, ok := c.Lookup(f.vs, sql)
			if ok != tc.cached {
				t.Errorf("%q: from the cache %v, want %v", sql, ok, tc.cached)
			}
			if !ok {
				continue
			}
			if fresh, err := Plan(f.vs, sql); err != nil || !reflect.DeepEqual(cached, fresh) {
				t.Errorf("%q: the cache's plan\n%s\nthe planner's (%v)\n%s", sql, describeAll(cached), err, describeAll(fresh))
			}
		}
	}
}
