package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestVolatileValuesComputedOnce writes now(), gen_random_uuid(),
// random() and CURRENT_TIMESTAMP through the gateway into a reference
// table's copies, into rows of a sharded table on both shards, and with a
// broadcast UPDATE: the gateway computes each value once, so every copy
// and every shard stores the same, as one Postgres would.
func TestVolatileValuesComputedOnce(t *testing.T) {
	e := newEnv(t)
	c := e.gw.connect("app")
	mustQuery(t, c, "create table countries (code text primary key, name text, at timestamptz, token uuid, r float8)")
	mustQuery(t, c, "create table users (id bigint primary key, name text, seen timestamptz)")

	// A reference table: every copy holds the same rows, each row its own
	// uuid.
	mustQuery(t, c, "insert into countries (code, name, at, token, r) values ('de', 'Germany', now(), gen_random_uuid(), random()), ('fr', 'France', current_timestamp, gen_random_uuid(), random())")
	copies := func(sql string) [][][]string {
		var out [][][]string
		for i := range e.shards {
			out = append(out, mustQuery(t, e.backend(i), sql))
		}
		return out
	}
	rows := copies("select code, at, token, r from countries order by code")
	if !slices.EqualFunc(rows[0], rows[1], slices.Equal) {
		t.Fatalf("the copies differ:\n s0 %q\n s1 %q", rows[0], rows[1])
	}
	if len(rows[0]) != 2 || rows[0][0][2] == rows[0][1][2] || rows[0][0][1] == "" {
		t.Fatalf("rows %q: want two rows with their own uuids", rows[0])
	}

	// A multi-row insert whose rows land on both shards: every row gets
	// the value the gateway computed once for its own now().
	var values []string
	for id := 1; id <= 12; id++ {
		values = append(values, fmt.Sprintf("(%d, 'u%d', now())", id, id))
	}
	mustQuery(t, c, "insert into users (id, name, seen) values "+strings.Join(values, ", "))
	seen := mustQuery(t, c, "select count(distinct seen), count(*) from users")
	if seen[0][0] != "1" || seen[0][1] != "12" {
		t.Fatalf("users' seen: %q, want one value for all 12 rows (12 bound values: $1 must not eat the start of $10)", seen)
	}
	for i := range e.shards {
		if n := mustQuery(t, e.backend(i), "select count(*) from users"); n[0][0] == "0" {
			t.Fatalf("shard s%d holds none of the rows: the insert did not span shards", i)
		}
	}

	// Volatile column defaults of a reference table: the gateway computes
	// them once for every copy, with DEFAULT and DEFAULT VALUES too.
	mustQuery(t, c, "alter table countries alter column token set default gen_random_uuid(), alter column at set default clock_timestamp(), alter column code set default 'zz'")
	mustQuery(t, c, "insert into countries (code, name) values ('it', 'Italy'), ('es', 'Spain')")
	mustQuery(t, c, "insert into countries (code, token) values ('pt', default)")
	mustQuery(t, c, "insert into countries default values")
	rows = copies("select code, token, at from countries order by code")
	if !slices.EqualFunc(rows[0], rows[1], slices.Equal) || len(rows[0]) != 6 || rows[0][2][1] == rows[0][3][1] || rows[0][5][0] != "zz" {
		t.Fatalf("countries' copies differ, or share a token:\n s0 %q\n s1 %q", rows[0], rows[1])
	}
	if _, err := query(c, "update countries set token = default"); pgCode(err) != "0A000" {
		t.Fatalf("SET token = DEFAULT on a reference table: %v, want 0A000", err)
	}

	// A broadcast UPDATE with a value that is the same for every row.
	mustQuery(t, c, "update countries set at = now() + interval '1 day'")
	rows = copies("select code, at from countries order by code")
	if !slices.EqualFunc(rows[0], rows[1], slices.Equal) || rows[0][0][1] != rows[0][1][1] {
		t.Fatalf("after UPDATE the copies differ:\n s0 %q\n s1 %q", rows[0], rows[1])
	}
	// One that differs by row stays refused.
	if _, err := query(c, "update countries set r = random()"); pgCode(err) != "0A000" {
		t.Fatalf("UPDATE with random() across copies: %v, want 0A000", err)
	}
}
