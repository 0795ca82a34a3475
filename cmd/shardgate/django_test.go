package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/shardgate/shardgate/internal/drivertest"
	"github.com/shardgate/shardgate/internal/pgtest"
)

// TestDjangoUnchanged runs a small Django app (testdata/drivers/django),
// unchanged, through the gateway and against one plain Postgres: Django's
// migrate for contenttypes, auth and the app, with tenants sharded by
// their id and every other table a reference table the gateway learns
// from migrate's CREATE TABLE; then creating, reading, updating and
// deleting through the ORM (bulk_create, a savepoint rolled back, a
// many-to-many, a protected delete). Both give the same rows, ids
// included, and the tenants are spread over the shards.
func TestDjangoUnchanged(t *testing.T) {
	py, err := drivertest.EnsureDjango()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOf(t, 2, "shop", "testdata/drivers/django/vschema.yaml")
	plain := pgtest.Start(t, 1)[0]
	app := func(host, port, db string) map[string]any {
		t.Helper()
		cmd := exec.Command(py, repoPath("testdata/drivers/django/app.py"))
		cmd.Env = append(withoutPG(os.Environ()), "PGHOST="+host, "PGPORT="+port, "PGDATABASE="+db, "PGUSER="+map[bool]string{true: "app", false: "postgres"}[db == "shop"])
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("the app against %s:%s/%s: %v\n%s", host, port, db, err, stderr.String())
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("the app's output: %v\n%s", err, out)
		}
		return got
	}
	host, port, _ := net.SplitHostPort(e.gw.addr)
	through := app(host, port, "shop")
	direct := app(plain.Host, itoa(plain.Port), "postgres")
	a, _ := json.MarshalIndent(through, "", " ")
	b, _ := json.MarshalIndent(direct, "", " ")
	if string(a) != string(b) {
		t.Fatalf("through the gateway:\n%s\none Postgres:\n%s\nfirst difference: %s", a, b, firstDifference(string(a), string(b)))
	}
	types := itoa(len(direct["content_types"].([]any)))
	for i := range e.shards {
		n := mustQuery(t, e.backend(i), "select count(*) from shop_tenant")[0][0]
		if n == "0" {
			t.Errorf("shard s%d holds no tenants: they were not spread", i)
		}
		if got := mustQuery(t, e.backend(i), "select count(*) from django_content_type"); got[0][0] != types {
			t.Errorf("shard s%d holds %s content types, want all %s: a reference table", i, got[0][0], types)
		}
	}
}

// withoutPG is env without the PG* variables, which libpq would read.
func withoutPG(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
}
