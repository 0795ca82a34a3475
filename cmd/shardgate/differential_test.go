package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
)

// TestDifferentialAgainstOnePostgres loads the same data into one plain
// Postgres and into the sharded keyspace, runs the same statements on both,
// and requires the same answers: rows (in order where the statement orders
// them), command tags, and afterwards the same table contents.
func TestDifferentialAgainstOnePostgres(t *testing.T) {
	e := newEnv(t)
	plain := pgtest.Start(t, 1)[0]
	direct, err := pgconn.Connect(t.Context(), plain.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(t.Context())
	gw := e.gw.connect("app")

	setup := statements(t, "testdata/sql/differential/schema.sql")
	setup = append(setup, "INSERT INTO countries (code, name) VALUES ('de', 'Germany'), ('fr', 'France'), ('jp', 'Japan'), ('us', 'United States')")
	countries := []string{"'de'", "'fr'", "'jp'", "'us'", "NULL"}
	var users, orders []string
	for id := 1; id <= 300; id++ {
		email := fmt.Sprintf("'u%d@example.com'", id)
		if id%7 == 0 {
			email = "NULL"
		}
		users = append(users, fmt.Sprintf("(%d, 'user %d', %s, %s, %d)", id, id, email, countries[id%5], id*37%100))
		for k := 1; k <= id%4; k++ {
			orders = append(orders, fmt.Sprintf("(%d, %d, %d.%02d)", id, k, id, k*7))
		}
	}
	users = append(users, "(-1, 'negative', NULL, 'de', 1)", "(10000000000, 'big', NULL, 'us', 99)")
	setup = append(setup,
		"INSERT INTO users (id, name, email, country, score) VALUES "+strings.Join(users, ", "),
		"INSERT INTO orders (user_id, id, amount) VALUES "+strings.Join(orders, ", "))
	for _, s := range setup {
		mustQuery(t, direct, s)
		mustQuery(t, gw, s)
	}

	compare := func(sql string) {
		t.Helper()
		want, werr := results(direct, sql)
		got, gerr := results(gw, sql)
		if werr != nil || gerr != nil {
			t.Errorf("%s:\n  postgres:  %v\n  shardgate: %v", sql, werr, gerr)
			return
		}
		ordered := hasTopLevelOrderBy(sql)
		if !ordered {
			want, got = sortRows(want), sortRows(got)
		}
		if !slices.Equal(want, got) {
			t.Errorf("%s: answers differ\n  postgres:  %d rows %.300q\n  shardgate: %d rows %.300q", sql, len(want), want, len(got), got)
		}
	}
	for _, sql := range statements(t, "testdata/sql/differential/reads.sql") {
		compare(sql)
	}
	for _, sql := range statements(t, "testdata/sql/differential/writes.sql") {
		compare(sql)
	}
	for _, table := range []string{"users", "orders", "countries"} {
		compare("select * from " + table)
	}
	// Every copy of the reference table changed alike.
	for i := range e.shards {
		want, _ := results(direct, "select * from countries")
		got, _ := results(e.backend(i), "select * from countries")
		if !slices.Equal(sortRows(want), sortRows(got)) {
			t.Errorf("countries on shard s%d: %q, want %q", i, got, want)
		}
	}
}

// results runs sql and flattens every result into lines: one per row
// (columns joined by |), then the command tag.
func results(c *pgconn.PgConn, sql string) ([]string, error) {
	rs, err := c.Exec(context.Background(), sql).ReadAll()
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, r := range rs {
		for _, row := range r.Rows {
			cols := make([]string, len(row))
			for i, v := range row {
				if v == nil {
					cols[i] = "NULL"
				} else {
					cols[i] = string(v)
				}
			}
			lines = append(lines, strings.Join(cols, "|"))
		}
		lines = append(lines, "tag: "+r.CommandTag.String())
	}
	return lines, nil
}

// sortRows sorts row lines but keeps command tags last, in order.
func sortRows(lines []string) []string {
	var rows, tags []string
	for _, l := range lines {
		if strings.HasPrefix(l, "tag: ") {
			tags = append(tags, l)
		} else {
			rows = append(rows, l)
		}
	}
	slices.Sort(rows)
	return append(rows, tags...)
}

func hasTopLevelOrderBy(sql string) bool {
	s := strings.ToLower(sql)
	return strings.Contains(s, " order by ") && !strings.Contains(s, "over (order by")
}

// statements reads a file of statements, each ending with a semicolon at
// the end of a line; lines starting with -- are comments.
func statements(t *testing.T, rel string) []string {
	t.Helper()
	data, err := os.ReadFile(repoPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var cur []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") || strings.TrimSpace(line) == "" {
			continue
		}
		cur = append(cur, line)
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(strings.Join(cur, "\n")), ";"))
			cur = nil
		}
	}
	return out
}
