package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardgate/shardgate/vschema"
)

const goodVSchema = `# two keyspaces in one file
keyspaces:
  app:
    sharded: true
    tables:
      users:
        column: id
        type: bigint
      orders:
        column: user_id
        type: int8
        vindex: hash
      events:
        column: tenant
        type: varchar
      countries:
        kind: reference
  meta:
    sharded: false
    tables:
      settings: {}
`

// newVSchemaEnv returns an env with keyspaces app (sharded, on s0 and s1) and
// meta (one shard) and no vschemas.
func newVSchemaEnv(t *testing.T) *testEnv {
	e := newEnv(t)
	e.addShards(2)
	e.run("", "keyspace", "create", "app", "--logical-shards", "16", "--shards", "s0,s1").ok(t)
	e.run("", "keyspace", "create", "meta", "--logical-shards", "1", "--shards", "s0").ok(t)
	return e
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vschema.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVSchemaApplyShowRoundTrip(t *testing.T) {
	t.Parallel()
	e := newVSchemaEnv(t)

	out := e.run("", "vschema", "apply", writeFile(t, goodVSchema)).ok(t)
	for _, w := range []string{"applied vschema of keyspace app (4 tables)", "applied vschema of keyspace meta (1 table)"} {
		if !strings.Contains(out, w) {
			t.Errorf("vschema apply printed %q, want %q", out, w)
		}
	}
	want, err := vschema.Parse([]byte(goodVSchema))
	if err != nil {
		t.Fatal(err)
	}
	snap := e.load()
	for name, ks := range want.Keyspaces {
		got := snap.Keyspace(name).VSchema()
		if got == nil || !bytes.Equal(got.JSON(), ks.JSON()) {
			t.Errorf("stored vschema of %s = %v, want %s", name, got, ks.JSON())
		}
	}

	shown := e.run("", "vschema", "show", "app").ok(t)
	f, err := vschema.Parse([]byte(shown))
	if err != nil {
		t.Fatalf("vschema show output does not parse: %v\n%s", err, shown)
	}
	if len(f.Keyspaces) != 1 || !bytes.Equal(f.Keyspaces["app"].JSON(), want.Keyspaces["app"].JSON()) {
		t.Errorf("vschema show app printed\n%s\nwant the vschema applied", shown)
	}
	// Applying what show printed changes nothing.
	if out := e.run(shown, "vschema", "apply", "-").ok(t); !strings.Contains(out, "vschema of keyspace app unchanged") {
		t.Errorf("re-applying the shown vschema printed %q", out)
	}

	// show | apply into another cluster gives the same vschema there.
	all := e.run("", "vschema", "show").ok(t)
	copyEnv := e.withCluster(e.cluster + "-copy")
	copyEnv.addShards(2)
	copyEnv.run("", "keyspace", "create", "app", "--logical-shards", "16", "--shards", "s0,s1").ok(t)
	copyEnv.run("", "keyspace", "create", "meta", "--logical-shards", "1", "--shards", "s1").ok(t)
	copyEnv.run(all, "vschema", "apply", "-").ok(t)
	if again := copyEnv.run("", "vschema", "show").ok(t); again != all {
		t.Errorf("vschema show after show | apply:\n%s\nwant\n%s", again, all)
	}

	// A changed file is applied again.
	changed := strings.Replace(goodVSchema, "type: varchar", "type: uuid", 1)
	out = e.run(changed, "vschema", "apply", "-").ok(t)
	if !strings.Contains(out, "applied vschema of keyspace app") || !strings.Contains(out, "keyspace meta unchanged") {
		t.Errorf("applying a changed vschema printed %q", out)
	}
	if typ := e.load().Keyspace("app").VSchema().Table("events").Type; typ != vschema.UUID {
		t.Errorf("events.tenant has type %q after the change, want uuid", typ)
	}
}

func TestVSchemaApplyInvalid(t *testing.T) {
	t.Parallel()
	e := newVSchemaEnv(t)
	tests := []struct {
		name, file string
		want       []string
	}{
		{"bad yaml", "keyspaces: [app\n  sharded: true\n", []string{"vschema:", "yaml"}},
		{"not a vschema", "hello: world\n", []string{"unknown field", "hello"}},
		{"misspelt field", "keyspaces:\n  app:\n    sharded: true\n    tables:\n      users: {colum: id, type: int}\n", []string{"unknown field", "colum"}},
		{"unknown vindex", "keyspaces:\n  app:\n    sharded: true\n    tables:\n      users: {column: id, type: int, vindex: lookup}\n", []string{`unknown vindex "lookup"`}},
		{"missing column", "keyspaces:\n  app:\n    sharded: true\n    tables:\n      users: {type: int}\n", []string{"keyspace app, table users: missing sharding column"}},
		{"several problems", "keyspaces:\n  app:\n    sharded: true\n    tables:\n      users: {type: int}\n      orders: {column: id, type: float}\n", []string{"missing sharding column", `unknown column type "float"`}},
		{"unknown keyspace", "keyspaces:\n  app:\n    sharded: true\n    tables:\n      users: {column: id, type: int}\n  ghost:\n    sharded: false\n", []string{"keyspace ghost does not exist"}},
		{"unsharded on many shards", "keyspaces:\n  app:\n    sharded: false\n", []string{"keyspace app is unsharded in the vschema but placed on 2 shards"}},
		{"sharded table in one-shard keyspace", "keyspaces:\n  meta:\n    sharded: true\n    tables:\n      users: {column: id, type: int}\n", []string{"keyspace meta has 1 logical shard"}},
		{"empty", "", []string{"no keyspaces"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.run("", "vschema", "apply", writeFile(t, tt.file)).fails(t, tt.want...)
			e.run(tt.file, "vschema", "apply", "-").fails(t, tt.want...)
		})
	}
	e.run("", "vschema", "apply", filepath.Join(t.TempDir(), "missing.yaml")).fails(t, "missing.yaml", "no such file")

	snap := e.load()
	for name, ks := range snap.Keyspaces {
		if ks.VSchema() != nil {
			t.Errorf("keyspace %s got a vschema from an invalid file", name)
		}
	}
}

func TestVSchemaShowErrors(t *testing.T) {
	t.Parallel()
	e := newVSchemaEnv(t)
	e.run("", "vschema", "show", "app").fails(t, "keyspace app has no vschema yet")
	e.run("", "vschema", "show", "ghost").fails(t, "keyspace ghost does not exist")
	e.run("", "vschema", "show").fails(t, "no keyspace of cluster "+e.cluster+" has a vschema")
}
