package vschema

import (
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	f, err := Parse([]byte(`
keyspaces:
  app:
    sharded: true
    tables:
      users: {column: id, type: bigint}
      sessions: {column: token, type: varchar, vindex: hash}
      devices: {column: id, type: uuid}
      countries: {kind: reference}
      billing.invoices: {column: account_id, type: int}
      billing.plans: {kind: reference}
    unlisted_tables: reference
  legacy:
    sharded: false
    tables:
      anything:
`))
	if err != nil {
		t.Fatal(err)
	}
	app := f.Keyspaces["app"]
	if app.Name != "app" || !app.Sharded {
		t.Fatalf("app: %+v", app)
	}
	u := app.Table("users")
	if u.Kind != Sharded || u.Type != Int || u.Vindex != VindexHash || u.Column != "id" {
		t.Errorf("users: %+v", u)
	}
	if s := app.Table("sessions"); s.Type != Text {
		t.Errorf("sessions: %+v", s)
	}
	if c := app.Table("countries"); c.Kind != Reference {
		t.Errorf("countries: %+v", c)
	}
	if !u.CoLocated(app.Table("users")) || u.CoLocated(app.Table("sessions")) || u.CoLocated(app.Table("countries")) {
		t.Error("co-location")
	}
	if inv := app.Table("billing.invoices"); inv == nil || inv.Column != "account_id" || app.Table("billing.plans").Kind != Reference {
		t.Errorf("tables of schema billing: %+v", app.Tables)
	}
	if app.UnlistedTables != ReferenceUnlisted || f.Keyspaces["legacy"].UnlistedTables != RefuseUnlisted {
		t.Errorf("unlisted_tables: app %q, legacy %q", app.UnlistedTables, f.Keyspaces["legacy"].UnlistedTables)
	}
	if f.Keyspaces["legacy"].Sharded || f.Keyspaces["legacy"].Table("anything") == nil {
		t.Errorf("legacy: %+v", f.Keyspaces["legacy"])
	}
	// What etcd stores reads back the same.
	back, err := ParseKeyspace("app", app.JSON())
	if err != nil || back.Table("users").Type != Int || back.Name != "app" {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"not yaml", "keyspaces: [", "vschema"},
		{"empty", "", "no keyspaces"},
		{"unknown field", "keyspaces: {app: {sharded: true, tablez: {}}}", "tablez"},
		{"unknown vindex", "keyspaces: {app: {sharded: true, tables: {t: {column: id, type: int, vindex: md5}}}}", `unknown vindex "md5"`},
		{"missing column", "keyspaces: {app: {sharded: true, tables: {t: {type: int}}}}", "missing sharding column"},
		{"missing type", "keyspaces: {app: {sharded: true, tables: {t: {column: id}}}}", "missing type"},
		{"unknown type", "keyspaces: {app: {sharded: true, tables: {t: {column: id, type: float}}}}", `unknown column type "float"`},
		{"unknown kind", "keyspaces: {app: {sharded: true, tables: {t: {kind: global}}}}", `unknown kind "global"`},
		{"reference with column", "keyspaces: {app: {sharded: true, tables: {t: {kind: reference, column: id}}}}", "reference table"},
		{"unsharded with column", "keyspaces: {app: {tables: {t: {column: id, type: int}}}}", "unsharded keyspace"},
		{"duplicate table", "keyspaces:\n  app:\n    sharded: true\n    tables:\n      t: {column: id, type: int}\n      t: {column: id, type: int}\n", "t"},
		{"bad keyspace name", "keyspaces: {App-1: {sharded: true}}", "keyspace name"},
		{"bad table name", `keyspaces: {app: {sharded: true, tables: {"Users": {column: id, type: int}}}}`, "table name"},
		{"table of schema public", `keyspaces: {app: {sharded: true, tables: {public.users: {column: id, type: int}}}}`, "named without it"},
		{"two schemas", `keyspaces: {app: {sharded: true, tables: {a.b.c: {kind: reference}}}}`, "schema.table"},
		{"bad sequence ids", "keyspaces: {app: {sharded: true, sequence_ids: uuid}}", `unknown sequence_ids "uuid"`},
		{"negative sequence block", "keyspaces: {app: {sharded: true, sequence_block: -5}}", "sequence_block -5"},
		{"bad unlisted policy", "keyspaces: {app: {sharded: true, unlisted_tables: sharded}}", `unknown unlisted_tables "sharded"`},
		{"unlisted in unsharded", "keyspaces: {app: {unlisted_tables: reference}}", "applies to sharded keyspaces"},
		{"negative pin cap", "keyspaces: {app: {sharded: false, max_pinned_sessions: -1}}", "max_pinned_sessions -1 is negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestKeyspaceID(t *testing.T) {
	tab := &Table{Kind: Sharded, Column: "id", Type: Int, Vindex: VindexHash}
	for _, in := range []string{"42", " 42", "+42", "42 "} {
		if id, ok := tab.KeyspaceID(in); !ok || id != HashInt64(42) {
			t.Errorf("%q: %d %v", in, id, ok)
		}
	}
	for _, in := range []string{"4.2", "x", "", "99999999999999999999"} {
		if _, ok := tab.KeyspaceID(in); ok {
			t.Errorf("%q routed", in)
		}
	}
}

// TestWithReference: learned tables are added as reference tables to a copy;
// listed ones keep their kind, and the original is left alone.
func TestWithReference(t *testing.T) {
	f, err := Parse([]byte("keyspaces: {app: {sharded: true, unlisted_tables: reference, tables: {users: {column: id, type: int}}}}"))
	if err != nil {
		t.Fatal(err)
	}
	app := f.Keyspaces["app"]
	if app.WithReference("users") != app {
		t.Fatal("WithReference of a listed table made a copy")
	}
	got := app.WithReference("users", "audit.log", "plans", "plans")
	if got == app || app.Table("plans") != nil {
		t.Fatal("WithReference changed the original")
	}
	if got.Table("users").Kind != Sharded || got.Table("plans").Kind != Reference || got.Table("audit.log").Name != "audit.log" || len(got.Tables) != 3 {
		t.Fatalf("WithReference: %+v", got.Tables)
	}
	if got.UnlistedTables != ReferenceUnlisted || !got.Sharded {
		t.Fatalf("WithReference lost the keyspace's settings: %+v", got)
	}
}
