package main

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
)

// migrationFile is an application's migrations in one psql file.
const migrationFile = "testdata/migrations/saas.sql"

// TestMigrationUnchanged runs an application's migration file with psql,
// unchanged, through the gateway into a keyspace of three shards, and
// straight into one plain Postgres: schemas, enum, domain, composite and
// range types, PL/pgSQL functions and triggers, a procedure, an aggregate
// and an operator, views and a materialized view, extensions, a sequence,
// comments, grants, a policy, a DO block, later renames and added columns,
// CREATE INDEX CONCURRENTLY, and a table the vschema does not list.
// Afterwards every shard's schema dump is the plain Postgres's, the
// application's rows behave as the schema says, and the same file run
// again fails as it does on one Postgres, with the same notices first.
func TestMigrationUnchanged(t *testing.T) {
	e := newEnvOf(t, 3, "saas", "testdata/vschema/saas.yaml")
	plain := pgtest.Start(t, 1)[0]
	bin, err := pgtest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	servers := []string{plain.DSN("postgres")}
	for _, s := range e.shards {
		servers = append(servers, s.DSN("postgres"))
	}
	for _, dsn := range servers {
		c, err := pgconn.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		mustQuery(t, c, "create role app_reader")
		c.Close(context.Background())
	}
	psql := func(dsn string) (string, error) {
		out, err := exec.Command(filepath.Join(bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose",
			"-f", repoPath(migrationFile), dsn).CombinedOutput()
		return string(out), err
	}
	through, err := psql(e.gw.dsn("saas"))
	if err != nil {
		t.Fatalf("the migration through the gateway: %v\n%s", err, through)
	}
	direct, err := psql(plain.DSN("postgres"))
	if err != nil {
		t.Fatalf("the migration on one Postgres: %v\n%s", err, direct)
	}
	if through != direct {
		t.Errorf("psql said through the gateway:\n%s\nand on one Postgres:\n%s", through, direct)
	}

	dump := func(dsn string) string {
		out, err := exec.Command(filepath.Join(bin, "pg_dump"), "--schema-only", dsn).CombinedOutput()
		if err != nil {
			t.Fatalf("pg_dump: %v\n%s", err, out)
		}
		var keep []string
		for _, l := range strings.Split(string(out), "\n") {
			// A random key newer pg_dump versions fence the script with.
			if !strings.HasPrefix(l, `\restrict`) && !strings.HasPrefix(l, `\unrestrict`) {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	want := dump(plain.DSN("postgres"))
	for _, word := range []string{"TYPE public.account_status", "TRIGGER accounts_status", "MATERIALIZED VIEW billing.invoices_by_plan", "POLICY projects_of_account", "projects_live", "OPERATOR billing.~~~", "TABLE public.feature_flags"} {
		if !strings.Contains(want, word) {
			t.Fatalf("the plain Postgres's dump lacks %q: the migration did not run whole", word)
		}
	}
	for i, s := range e.shards {
		if got := dump(s.DSN("postgres")); got != want {
			t.Errorf("shard s%d's schema differs from one Postgres's: %s", i, firstDifference(got, want))
		}
	}

	// The schema at work: a trigger writes on the account's shard, the
	// learned table is a reference table, a data migration's rows are on
	// every copy.
	c := e.gw.connect("saas")
	mustQuery(t, c, "insert into accounts (id, name, email) values (1, 'one', 'One@example.com'), (2, 'two', 'two@example.com'), (3, 'three', 'three@example.com')")
	mustQuery(t, c, "update accounts set status = 'active' where id in (1, 3)")
	got := mustQuery(t, c, "select account_id, detail->>'to' from audit.events order by account_id")
	if len(got) != 2 || got[0][0] != "1" || got[1][0] != "3" || got[1][1] != "active" {
		t.Fatalf("audit events: %q, want the trigger's two", got)
	}
	// Without column lists: the gateway names them from the catalog and
	// routes each row (the foreign key to accounts checks it landed on
	// its account's shard).
	mustQuery(t, c, "insert into accounts values (4, 'four', 'four@example.com')")
	mustQuery(t, c, "insert into projects values (4, default, 'roadmap', false), (1, default, 'launch', true)")
	if _, err := query(c, "insert into projects values (4, default, 'x'), (1, default)"); err == nil || !strings.Contains(err.Error(), "VALUES lists must all be the same length") {
		t.Fatalf("rows of different lengths: %v, want Postgres's error", err)
	}
	if got := mustQuery(t, c, "select account_id, name, archived, priority from projects order by account_id"); len(got) != 2 || got[0][3] != "normal" || got[0][2] != "t" || got[1][1] != "roadmap" {
		t.Fatalf("projects inserted without column lists: %q", got)
	}
	// Invoice numbers come from the global sequence the migration made
	// (START 1000, later INCREMENT BY 10), whichever shard each goes to.
	got = mustQuery(t, c, "insert into billing.invoices (account_id, plan_code) values (1, 'pro'), (2, 'free'), (3, 'pro') returning number")
	if !slices.Equal([]string{got[0][0], got[1][0], got[2][0]}, []string{"1000", "1010", "1020"}) {
		t.Fatalf("invoice numbers: %q, want 1000, 1010 and 1020", got)
	}
	if got := mustQuery(t, c, "select id, name from feature_flags order by id"); len(got) != 2 || got[0][0] != "1" || got[1][1] != "dark_mode" {
		t.Fatalf("feature flags' identity ids: %q", got)
	}

	// INSERT ... SELECT: each shard inserts the rows of its own accounts;
	// every copy of a reference table the same rows.
	mustQuery(t, c, "insert into audit.events (account_id, what) select id, 'welcome' from accounts")
	if got := mustQuery(t, c, "select count(*) from audit.events where what = 'welcome'"); got[0][0] != "4" {
		t.Fatalf("welcome events: %q, want one per account", got)
	}
	mustQuery(t, c, "insert into plans (code, title) select code || '-yearly', title || ' yearly' from plans")
	if _, err := query(c, "insert into feature_flags (name) select name || '_v2' from feature_flags"); pgCode(err) != "0A000" {
		t.Fatalf("INSERT ... SELECT leaving an identity column to each copy: %v, want 0A000", err)
	}

	// A view over a sharded table reads as its query.
	if got := mustQuery(t, c, "select id, name from current_accounts order by id"); len(got) != 2 || got[0][0] != "1" || got[1][0] != "3" {
		t.Fatalf("view current_accounts: %q, want accounts 1 and 3", got)
	}
	if got := mustQuery(t, c, "select count(*) from current_accounts a join projects p on p.account_id = a.id"); got[0][0] != "1" {
		t.Fatalf("a view joined with a co-located table: %q, want 1", got)
	}
	if got := mustQuery(t, c, "select id, name from accounts where email = 'ONE@EXAMPLE.COM'"); len(got) != 1 {
		t.Fatalf("a citext domain compared without case: %q", got)
	}
	for i := range e.shards {
		b := e.backend(i)
		events := mustQuery(t, b, "select account_id from audit.events except select id from accounts")
		if len(events) != 0 {
			t.Errorf("shard s%d holds audit events of accounts it does not hold: %q", i, events)
		}
		if n := mustQuery(t, b, "select count(*) from feature_flags")[0][0]; n != "2" {
			t.Errorf("shard s%d holds %s feature flags, want both", i, n)
		}
		if n := mustQuery(t, b, "select count(*) from plans where code like '%-yearly'")[0][0]; n != "2" {
			t.Errorf("shard s%d holds %s yearly plans, want both", i, n)
		}
	}
	if got := mustQuery(t, c, "select name from feature_flags where enabled"); len(got) != 1 || got[0][0] != "new_billing" {
		t.Fatalf("feature flags through the gateway: %q", got)
	}

	// Run again, it fails where one Postgres fails, having said the same.
	through, err = psql(e.gw.dsn("saas"))
	if err == nil {
		t.Fatal("the migration ran twice through the gateway")
	}
	direct, err = psql(plain.DSN("postgres"))
	if err == nil {
		t.Fatal("the migration ran twice on one Postgres")
	}
	if through != direct || !strings.Contains(direct, "42710") {
		t.Errorf("run again, psql said through the gateway:\n%s\nand on one Postgres:\n%s", through, direct)
	}
}

// firstDifference shows where got and want first differ, by line.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return "line " + itoa(i+1) + ": got " + g[i] + ", want " + w[i]
		}
	}
	return "got " + itoa(len(g)) + " lines, want " + itoa(len(w))
}

// TestConcurrentIndexAcrossShards: CREATE INDEX CONCURRENTLY runs on each
// shard apart, outside a transaction, as Postgres requires. Where it fails
// (duplicates on one copy of a reference table), the error says on which
// shards it was applied, and the invalid index Postgres leaves behind is
// dropped, so the statement can be run again once the data is fixed.
func TestConcurrentIndexAcrossShards(t *testing.T) {
	e := newEnv(t)
	c := e.gw.connect("app")
	mustQuery(t, c, "create table countries (code text primary key, name text)")
	mustQuery(t, c, "insert into countries (code, name) values ('de', 'Germany'), ('fr', 'France')")
	// A copy that went wrong behind the gateway's back.
	mustQuery(t, e.backend(1), "insert into countries (code, name) values ('xx', 'France')")

	_, err := query(c, "create unique index concurrently countries_name on countries (name)")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("unique index over duplicates: %v, want 23505", err)
	}
	if want := "applied on shards s0; failed on shard s1; not run on shards none. What it left on shard s1 was removed."; !strings.Contains(pgErr.Detail, want) {
		t.Fatalf("detail %q, want it to contain %q", pgErr.Detail, want)
	}
	index := "select indisvalid from pg_index where indexrelid = to_regclass('countries_name')"
	if got := mustQuery(t, e.backend(0), index); len(got) != 1 || got[0][0] != "t" {
		t.Fatalf("on s0, where it was applied: %q, want a valid index", got)
	}
	if got := mustQuery(t, e.backend(1), index); len(got) != 0 {
		t.Fatalf("on s1, where it failed: %q, want no index left", got)
	}

	mustQuery(t, e.backend(1), "delete from countries where code = 'xx'")
	mustQuery(t, c, "create unique index concurrently if not exists countries_name on countries (name)")
	for i := range e.shards {
		if got := mustQuery(t, e.backend(i), index); len(got) != 1 || got[0][0] != "t" {
			t.Fatalf("run again, on s%d: %q, want a valid index", i, got)
		}
	}
	mustQuery(t, c, "begin")
	if _, err := query(c, "create index concurrently countries_code on countries (code)"); pgCode(err) != "25001" {
		t.Fatalf("CREATE INDEX CONCURRENTLY in a transaction block: %v, want 25001", err)
	}
	mustQuery(t, c, "rollback")
}

// TestUnlistedTablesLearned: under unlisted_tables: reference, a table the
// vschema does not list becomes a reference table when CREATE TABLE makes
// it: the same transaction goes on using it, other sessions see it once it
// committed, every shard holds its rows, and one rolled back answers as on
// one Postgres.
func TestUnlistedTablesLearned(t *testing.T) {
	e := newEnvOf(t, 2, "saas", "testdata/vschema/saas.yaml")
	c := e.gw.connect("saas")
	mustQuery(t, c, "begin")
	mustQuery(t, c, "create table notes (id bigint primary key, body text)")
	mustQuery(t, c, "insert into notes (id, body) values (1, 'first'), (2, 'second')")
	if _, err := c.ExecParams(context.Background(), "insert into notes (id, body) values ($1, $2)", [][]byte{[]byte("3"), []byte("third")}, nil, nil, nil).Close(); err != nil {
		t.Fatalf("a prepared insert into the new table in its transaction: %v", err)
	}
	mustQuery(t, c, "create index notes_body on notes (body)")
	mustQuery(t, c, "commit")

	other := e.gw.connect("saas")
	if got := mustQuery(t, other, "select count(*), max(body) from notes"); got[0][0] != "3" || got[0][1] != "third" {
		t.Fatalf("notes from another session: %q", got)
	}
	for i := range e.shards {
		if got := mustQuery(t, e.backend(i), "select count(*) from notes"); got[0][0] != "3" {
			t.Fatalf("shard s%d holds %s notes, want every one: a reference table", i, got[0][0])
		}
	}

	// Renamed, it is known by its new name.
	mustQuery(t, c, "alter table notes rename to memos")
	if got := mustQuery(t, other, "select count(*) from memos"); got[0][0] != "3" {
		t.Fatalf("memos, renamed from notes: %q", got)
	}

	mustQuery(t, c, "begin")
	mustQuery(t, c, "create table ghost (id bigint primary key)")
	mustQuery(t, c, "rollback")
	if _, err := query(other, "select * from ghost"); pgCode(err) != "42P01" {
		t.Fatalf("a table whose creation rolled back: %v, want 42P01 as from one Postgres", err)
	}
}
