package main

import (
	"strings"
	"testing"
)

func TestShardAddList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const secret = "s3cret"
	var all strings.Builder
	record := func(r result) result {
		all.WriteString(r.stdout)
		all.WriteString(r.stderr)
		return r
	}

	out := record(e.run("", "shard", "add", "s0", "--dsn", "postgres://app:s3cret@127.0.0.1:5432/app")).ok(t)
	if !strings.Contains(out, "added shard s0 (postgres://app:xxxxx@127.0.0.1:5432/app)") {
		t.Errorf("shard add printed %q", out)
	}
	record(e.run("", "shard", "add", "s1", "--dsn", "host=10.0.0.2 user=app password=s3cret dbname=app")).ok(t)
	// --dsn - reads the DSN from stdin, keeping it out of the process list.
	record(e.run("postgres://app:s3cret@10.0.0.3/app?sslmode=require\n", "shard", "add", "s2", "--dsn", "-")).ok(t)
	// A duplicate is refused, and its DSN is not echoed either.
	record(e.run("", "shard", "add", "s0", "--dsn", "postgres://app:s3cret@10.0.0.9/app")).fails(t, "shard s0 already exists")
	record(e.run("", "shard", "add", "S-0", "--dsn", "postgres://app:s3cret@10.0.0.9/app")).fails(t, `shard name "S-0"`)

	out = record(e.run("", "shard", "list")).ok(t)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := [][]string{
		{"NAME", "DSN"},
		{"s0", "postgres://app:xxxxx@127.0.0.1:5432/app"},
		{"s1", "host=10.0.0.2 user=app password=xxxxx dbname=app"},
		{"s2", "postgres://app:xxxxx@10.0.0.3/app?sslmode=require"},
	}
	if len(lines) != len(want) {
		t.Fatalf("shard list printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		name, dsn, _ := strings.Cut(lines[i], " ")
		if name != w[0] || strings.TrimSpace(dsn) != w[1] {
			t.Errorf("shard list line %d = %q, want %q and %q", i, lines[i], w[0], w[1])
		}
	}
	// The columns are aligned: every DSN starts at the same offset.
	if col := strings.Index(lines[0], "DSN"); strings.Index(lines[1], "postgres") != col {
		t.Errorf("shard list columns not aligned:\n%s", out)
	}

	if strings.Contains(all.String(), secret) {
		t.Errorf("the password was printed:\n%s", all.String())
	}
	// It is stored, of course: gateways need it.
	snap := e.load()
	if got := snap.Shards["s0"].DSN; got != "postgres://app:s3cret@127.0.0.1:5432/app" {
		t.Errorf("stored DSN of s0 = %q", got)
	}
	if got := snap.Shards["s2"].DSN; got != "postgres://app:s3cret@10.0.0.3/app?sslmode=require" {
		t.Errorf("stored DSN of s2 (from stdin) = %q", got)
	}
}

func TestShardListEmpty(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if out := e.run("", "shard", "list").ok(t); strings.TrimSpace(out) != "NAME  DSN" {
		t.Errorf("shard list on an empty cluster printed %q", out)
	}
	e.run("", "shard", "add", "s0", "--dsn", "-").fails(t, "reading the DSN from stdin")
	e.run("", "shard", "add", "s0", "--dsn", " ").fails(t, "empty DSN")
}
