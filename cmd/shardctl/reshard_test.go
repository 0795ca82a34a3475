package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/topology"
)

// TestReshardPlan: a plan is printed from the shards' own catalogs, kept
// only once confirmed, reserves its logical shards against other
// workflows and is dropped by cancel; bad input fails with one line and
// changes nothing.
func TestReshardPlan(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pg := pgtest.Start(t, 2)
	for i, c := range pg {
		conn, err := pgconn.Connect(t.Context(), c.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		sql := `create table users (id bigint primary key, name text);
create table orders (id bigint primary key, user_id bigint);
create table countries (code text primary key);
insert into users select g, 'u' || g from generate_series(1, 1000) g;
analyze users;`
		if i == 1 {
			sql += "create table events (user_id bigint, at timestamptz);"
		}
		if _, err := conn.Exec(t.Context(), sql).ReadAll(); err != nil {
			t.Fatal(err)
		}
		conn.Close(context.Background())
	}
	e.run("", "shard", "add", "s0", "--dsn", pg[0].DSN("postgres")).ok(t)
	e.run("", "shard", "add", "s1", "--dsn", pg[1].DSN("postgres")).ok(t)
	e.run("", "shard", "add", "s2", "--dsn", "postgres://app@10.0.0.3/app").ok(t)
	e.run("", "shard", "add", "s3", "--dsn", "postgres://app@10.0.0.4/app").ok(t)
	e.run("", "keyspace", "create", "app", "--logical-shards", "64", "--shards", "s0,s1").ok(t)
	const vschema = `keyspaces:
  app:
    sharded: true
    tables:
      users: {column: id, type: bigint}
      orders: {column: user_id, type: bigint}
      countries: {kind: reference}
`
	e.run(vschema, "vschema", "apply", "-").ok(t)

	// Declined: printed, not recorded.
	out := e.run("n\n", "reshard", "create", "grow", "--keyspace", "app", "--to", "s2,s3").ok(t)
	for _, want := range []string{
		"workflow grow, keyspace app: 32 of 64 logical shards move",
		"  16-31: s0 -> s2\n", "  48-63: s1 -> s3\n",
		"Record this plan? [y/N] not recorded",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("reshard create printed\n%s\nwant %q in it", out, want)
		}
	}
	// users: 1000 rows analyzed on s0, a quarter of the keyspace's
	// logical shards (half of s0's) leave it.
	if !hasLine(out, "users", "s0", "500") || !hasLine(out, "countries", "s0", "(reference: copied whole)") || !hasLine(out, "orders", "s1", "never analyzed") {
		t.Errorf("reshard create printed\n%s\nwant users s0 500, countries as reference, orders never analyzed", out)
	}
	if out := e.run("", "reshard", "list").ok(t); strings.Count(out, "\n") != 1 {
		t.Errorf("after a declined plan, reshard list printed %q", out)
	}

	// Confirmed.
	out = e.run("yes\n", "reshard", "create", "grow", "--keyspace", "app", "--to", "s2,s3").ok(t)
	if !strings.Contains(out, "recorded workflow grow (phase planned)") {
		t.Errorf("reshard create printed %q", out)
	}
	out = e.run("", "reshard", "list").ok(t)
	if !hasLine(out, "grow", "app", "planned", "16-31: s0 -> s2, 48-63: s1 -> s3") {
		t.Errorf("reshard list printed %q", out)
	}
	out = e.run("", "reshard", "show", "grow").ok(t)
	for _, want := range []string{"32 of 64 logical shards move", "phase:", "planned", "shard map version 1", "controller:", "'shardctl reshard start grow' drives it"} {
		if !strings.Contains(out, want) {
			t.Errorf("reshard show printed\n%s\nwant %q in it", out, want)
		}
	}

	// Bad input: one line each, nothing recorded.
	e.run("", "reshard", "create", "grow", "--keyspace", "app", "--move", "0:s2", "--apply").fails(t, "workflow grow already exists")
	e.run("", "reshard", "create", "more", "--keyspace", "app", "--move", "30-33:s3", "--apply").fails(t, "logical shard 30 of keyspace app is being moved by workflow grow already")
	e.run("", "reshard", "create", "x", "--keyspace", "nope", "--to", "s2", "--apply").fails(t, "keyspace nope does not exist")
	e.run("", "reshard", "create", "x", "--keyspace", "app", "--to", "s9", "--apply").fails(t, "shard s9 is not registered")
	e.run("", "reshard", "create", "x", "--keyspace", "app", "--move", "0:s9", "--apply").fails(t, "shard s9 is not registered")
	e.run("", "reshard", "create", "x", "--keyspace", "app", "--move", "0-64:s2", "--apply").fails(t, "out of range")
	e.run("", "reshard", "create", "x", "--keyspace", "app", "--apply").fails(t, "missing --to or --move")
	e.run("", "reshard", "create", "Bad Name", "--keyspace", "app", "--to", "s2").fails(t, `workflow name "Bad Name"`)
	e.run("", "reshard", "create", "x", "--keyspace", "app", "--to", "s2", "--move", "0:s2").fails(t, "exclude each other")
	e.run("", "reshard", "show", "nope").fails(t, "workflow nope does not exist")
	e.run("", "reshard", "cancel", "nope").fails(t, "workflow nope does not exist")
	// A table the stream could not apply by key is named.
	e.run(strings.Replace(vschema, "orders:", "events: {column: user_id, type: bigint}\n      orders:", 1), "vschema", "apply", "-").ok(t)
	e.run("", "reshard", "create", "ev", "--keyspace", "app", "--move", "40:s3", "--apply").fails(t, "table events has no primary key on shard s1")
	e.run("", "reshard", "create", "ev", "--keyspace", "app", "--move", "0:s3", "--apply").fails(t, "table events of the vschema does not exist on shard s0")
	if all, err := e.store().Workflows(t.Context()); err != nil || len(all) != 1 {
		t.Fatalf("workflows after bad input: %+v, %v; want grow only", all, err)
	}

	out = e.run("", "reshard", "cancel", "grow").ok(t)
	if !strings.Contains(out, "cancelled workflow grow") {
		t.Errorf("reshard cancel printed %q", out)
	}
	if _, err := e.store().Workflow(t.Context(), "grow"); err == nil {
		t.Fatal("workflow grow still recorded after cancel")
	}
	// Its logical shards are free again.
	e.run(vschema, "vschema", "apply", "-").ok(t)
	e.run("", "reshard", "create", "more", "--keyspace", "app", "--move", "30-33:s3", "--apply").ok(t)
	w, err := e.store().Workflow(t.Context(), "more")
	if err != nil || w.Phase != topology.PhasePlanned || len(w.Moves) != 4 {
		t.Fatalf("workflow more: %+v, %v", w, err)
	}
}

// hasLine reports whether some line of out holds every field, in order.
func hasLine(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for _, f := range fields {
			i := strings.Index(rest, f)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(f):]
		}
		if ok {
			return true
		}
	}
	return false
}
