package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// addShards registers shards s0..s(n-1).
func (e *testEnv) addShards(n int) {
	e.t.Helper()
	for i := range n {
		e.run("", "shard", "add", fmt.Sprintf("s%d", i), "--dsn", fmt.Sprintf("postgres://app@10.0.0.%d/app", i+1)).ok(e.t)
	}
}

func TestKeyspaceCreateList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addShards(3)

	out := e.run("", "keyspace", "create", "app", "--shards", "s0,s1").ok(t)
	if !strings.Contains(out, "created keyspace app: 256 logical shards on s0, s1") {
		t.Errorf("keyspace create printed %q", out)
	}
	e.run("", "keyspace", "create", "meta", "--logical-shards", "1", "--shards", "s2").ok(t)
	e.run("", "keyspace", "create", "small", "--logical-shards", "4", "--shards", "s0, s1,s2").ok(t)

	snap := e.load()
	app := snap.Keyspace("app")
	if app == nil || app.Map.LogicalCount != 256 || app.Map.Version != 1 {
		t.Fatalf("keyspace app stored as %+v", app)
	}
	for i, sh := range app.Map.Placement {
		if want := []string{"s0", "s1"}[i/128]; sh != want {
			t.Fatalf("app: logical shard %d on %s, want %s (even placement)", i, sh, want)
		}
	}
	if got := snap.Keyspace("small").Map.Placement; !slices.Equal(got, []string{"s0", "s0", "s1", "s2"}) {
		t.Errorf("small placed on %v", got)
	}

	e.run("", "vschema", "apply", "-").fails(t) // empty stdin: nothing to apply
	e.run("keyspaces: {meta: {sharded: false, tables: {settings: {}}}}", "vschema", "apply", "-").ok(t)

	out = e.run("", "keyspace", "list").ok(t)
	want := [][]string{
		{"NAME", "SHARDED", "LOGICAL", "SHARDS", "VERSION", "TABLES"},
		{"app", "-", "256", "s0,s1", "1", "-"},
		{"meta", "no", "1", "s2", "1", "1"},
		{"small", "-", "4", "s0,s1,s2", "1", "-"},
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("keyspace list printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); !slices.Equal(got, w) {
			t.Errorf("keyspace list line %d = %q, want %q", i, got, w)
		}
	}
}

func TestKeyspaceCreateErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addShards(2)
	e.run("", "keyspace", "create", "app", "--shards", "s0,s1").ok(t)

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"other", "--shards", "s0,s9"}, "shard s9 is not registered"},
		{[]string{"other", "--shards", "s0", "--logical-shards", "100"}, "logical shard count 100 must be a power of two"},
		{[]string{"other", "--shards", "s0", "--logical-shards", "0"}, "must be a power of two"},
		{[]string{"other", "--shards", "s0", "--logical-shards", "-4"}, "must be a power of two"},
		{[]string{"other", "--shards", "s0", "--logical-shards", "131072"}, "between 1 and 65536"},
		{[]string{"app", "--shards", "s0,s1"}, "keyspace app already exists"},
		{[]string{"app", "--shards", "s1", "--logical-shards", "16"}, "keyspace app already exists"},
		{[]string{"other", "--shards", "s0,s0"}, "shard s0 listed twice"},
		{[]string{"other", "--shards", "s0,s1", "--logical-shards", "1"}, "2 shards but only 1 logical shards"},
		{[]string{"Other", "--shards", "s0"}, `keyspace name "Other"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			e.run("", append([]string{"keyspace", "create"}, tt.args...)...).fails(t, tt.want)
		})
	}
	snap := e.load()
	if len(snap.Keyspaces) != 1 || snap.Keyspace("app").Map.LogicalCount != 256 || snap.Keyspace("app").Map.Version != 1 {
		t.Errorf("failed creates changed the topology: %v", snap.Keyspaces)
	}
}
