package main

import (
	"strings"
	"testing"

	"github.com/shardgate/shardgate/topology"
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

	// A password in the DSN is refused, and the refusal says why.
	for _, dsn := range []string{
		"postgres://app:s3cret@127.0.0.1:5432/app",
		"host=10.0.0.2 user=app password=s3cret dbname=app",
		"host=10.0.0.2 user=app dbname=app sslkey=/k.pem sslpassword=s3cret",
		"postgres://app@10.0.0.2/app?password=s3cret",
	} {
		record(e.run("", "shard", "add", "s0", "--dsn", dsn)).fails(t, "holds a password", "stored in etcd", "--password-file", "--allow-password-in-dsn")
	}
	record(e.run("postgres://app:s3cret@10.0.0.3/app\n", "shard", "add", "s0", "--dsn", "-")).fails(t, "holds a password")

	out := record(e.run("", "shard", "add", "s0", "--dsn", "postgres://app:s3cret@127.0.0.1:5432/app", "--allow-password-in-dsn")).ok(t)
	if !strings.Contains(out, "added shard s0 (postgres://app:xxxxx@127.0.0.1:5432/app; password: in DSN)") {
		t.Errorf("shard add printed %q", out)
	}
	record(e.run("", "shard", "add", "s1", "--dsn", "host=10.0.0.2 user=app password=s3cret dbname=app", "--allow-password-in-dsn")).ok(t)
	// --dsn - reads the DSN from stdin, keeping it out of the process list.
	record(e.run("postgres://app:s3cret@10.0.0.3/app?sslmode=require\n", "shard", "add", "s2", "--dsn", "-", "--allow-password-in-dsn")).ok(t)
	// A duplicate is refused, and its DSN is not echoed either.
	record(e.run("", "shard", "add", "s0", "--dsn", "postgres://app:s3cret@10.0.0.9/app", "--allow-password-in-dsn")).fails(t, "shard s0 already exists")
	record(e.run("", "shard", "add", "S-0", "--dsn", "postgres://app:s3cret@10.0.0.9/app", "--allow-password-in-dsn")).fails(t, `shard name "S-0"`)

	// Passwords by reference: nothing secret reaches etcd.
	const tlsDSN = "host=10.0.0.4 user=app dbname=app sslmode=verify-full sslrootcert=/etc/shardgate/ca.pem"
	out = record(e.run("", "shard", "add", "s3", "--dsn", tlsDSN, "--password-file", "/run/secrets/s3")).ok(t)
	if !strings.Contains(out, "added shard s3 ("+tlsDSN+"; password: file:/run/secrets/s3)") {
		t.Errorf("shard add printed %q", out)
	}
	record(e.run("", "shard", "add", "s4", "--dsn", "postgres://app@10.0.0.5/app", "--password-env", "S4_PASSWORD")).ok(t)
	record(e.run("", "shard", "add", "s5", "--dsn", "host=10.0.0.6 user=app passfile=/etc/shardgate/pgpass", "--weight", "3")).ok(t)
	record(e.run("", "shard", "add", "s6", "--dsn", "host=10.0.0.7", "--weight", "0")).fails(t, "--weight 0 must be between 1 and 1000")

	out = record(e.run("", "shard", "list")).ok(t)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := [][]string{
		{"NAME", "DSN", "PASSWORD", "WEIGHT"},
		{"s0", "postgres://app:xxxxx@127.0.0.1:5432/app", "in DSN", "1"},
		{"s1", "host=10.0.0.2 user=app password=xxxxx dbname=app", "in DSN", "1"},
		{"s2", "postgres://app:xxxxx@10.0.0.3/app?sslmode=require", "in DSN", "1"},
		{"s3", tlsDSN, "file:/run/secrets/s3", "1"},
		{"s4", "postgres://app@10.0.0.5/app", "env:S4_PASSWORD", "1"},
		{"s5", "host=10.0.0.6 user=app passfile=/etc/shardgate/pgpass", "-", "3"},
	}
	if len(lines) != len(want) {
		t.Fatalf("shard list printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	// The columns are aligned: each starts where its heading does.
	dsnCol, pwCol, weightCol := strings.Index(lines[0], "DSN"), strings.Index(lines[0], "PASSWORD"), strings.Index(lines[0], "WEIGHT")
	for i, w := range want {
		l := lines[i]
		if len(l) < weightCol {
			t.Errorf("shard list line %d = %q is short", i, l)
			continue
		}
		name, dsn, pw, weight := strings.TrimSpace(l[:dsnCol]), strings.TrimSpace(l[dsnCol:pwCol]), strings.TrimSpace(l[pwCol:weightCol]), strings.TrimSpace(l[weightCol:])
		if name != w[0] || dsn != w[1] || pw != w[2] || weight != w[3] {
			t.Errorf("shard list line %d = %q, want %q", i, l, w)
		}
	}

	if strings.Contains(all.String(), secret) {
		t.Errorf("the password was printed:\n%s", all.String())
	}
	// With --allow-password-in-dsn it is stored, of course: gateways need it.
	snap := e.load()
	if got := snap.Shards["s0"].DSN; got != "postgres://app:s3cret@127.0.0.1:5432/app" {
		t.Errorf("stored DSN of s0 = %q", got)
	}
	if got := snap.Shards["s2"].DSN; got != "postgres://app:s3cret@10.0.0.3/app?sslmode=require" {
		t.Errorf("stored DSN of s2 (from stdin) = %q", got)
	}
	if got := *snap.Shards["s3"]; got != (topology.Shard{Name: "s3", DSN: tlsDSN, PasswordFile: "/run/secrets/s3", Weight: 1}) {
		t.Errorf("stored s3 = %+v", got)
	}
	if got := *snap.Shards["s4"]; got != (topology.Shard{Name: "s4", DSN: "postgres://app@10.0.0.5/app", PasswordEnv: "S4_PASSWORD", Weight: 1}) {
		t.Errorf("stored s4 = %+v", got)
	}
}

func TestShardAddPasswordReferenceErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--dsn", "host=db", "--password-file", "/f", "--password-env", "V"}, []string{"--password-file and --password-env exclude each other"}},
		{[]string{"--dsn", "host=db", "--password-file", "relative/pw"}, []string{`password_file "relative/pw" must be an absolute path`}},
		{[]string{"--dsn", "host=db", "--password-env", "A=B"}, []string{`password_env "A=B" is not an environment variable name`}},
		// Two passwords: refused even when a password in the DSN is allowed.
		{[]string{"--dsn", "host=db password=s3cret", "--password-file", "/f", "--allow-password-in-dsn"}, []string{"its DSN holds a password and password_file /f names another"}},
	} {
		r := e.run("", append([]string{"shard", "add", "s0"}, tc.args...)...)
		r.fails(t, tc.want...)
		if strings.Contains(r.stderr, "s3cret") {
			t.Errorf("%v printed the password: %q", tc.args, r.stderr)
		}
	}
	if out := e.run("", "shard", "list").ok(t); strings.Count(out, "\n") != 1 {
		t.Errorf("a refused shard was stored:\n%s", out)
	}
}

func TestShardListEmpty(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if out := e.run("", "shard", "list").ok(t); strings.Join(strings.Fields(out), " ") != "NAME DSN PASSWORD WEIGHT" {
		t.Errorf("shard list on an empty cluster printed %q", out)
	}
	e.run("", "shard", "add", "s0", "--dsn", "-").fails(t, "reading the DSN from stdin")
	e.run("", "shard", "add", "s0", "--dsn", " ").fails(t, "empty DSN")
}

// TestDSNPassword covers what shardctl relies on to refuse and redact DSNs
// that hold a secret: every form pgx (and libpq) reads a password or
// sslpassword from, and malformed strings where the readers could disagree
// about where a password ends.
func TestDSNPassword(t *testing.T) {
	for _, tc := range []struct {
		dsn    string
		has    bool
		secret string // must not survive RedactDSN
	}{
		{"postgres://app:s3cret@db/app", true, "s3cret"},
		{"postgresql://app:s3cret@db:5432,db2:5433/app?sslmode=verify-full", true, "s3cret"},
		{"postgres://app@db/app?password=s3cret", true, "s3cret"},
		{"postgres://app@db/app?sslmode=require&sslpassword=s3cret", true, "s3cret"},
		{"postgres://app@db/app?pass%77ord=s3cret", true, "s3cret"},
		{"postgres://app:@db/app", false, ""},
		{"postgres://app@db/app?password=", false, ""},
		{"postgres://app@db/app?passfile=/etc/pgpass", false, ""},
		{"  postgres://app:s3cret@db/app", true, "s3cret"},
		{"POSTGRES://app:s3cret@db/app", true, "s3cret"},
		// libpq ends the user info at the first '@', net/url at the last.
		{"postgres://app:pa@ss3cret@db/app", true, "ss3cret"},
		// A raw '/' in the password: neither reads it as one, but it is.
		{"postgres://app:pa/s3cret@db/app", true, "s3cret"},
		// libpq takes an '@' even after the '?' as the end of the user info.
		{"postgres://app:s3cret?x=1@db/app", true, "s3cret"},
		{"postgres://db/app?password=a@s3cret", true, "s3cret"},
		{"postgres://app@db:5432/app?application_name=a@b", false, ""},
		{"host=db password=s3cret", true, "s3cret"},
		{"host=db password = s3cret", true, "s3cret"},
		{"host=db password='a s3cret'", true, "s3cret"},
		{`host=db password='it\'s s3cret'`, true, "s3cret"},
		{`host=db password=a\ s3cret`, true, "s3cret"},
		{"host=db sslkey=/k sslpassword=s3cret", true, "s3cret"},
		{"host=db password=''", false, ""},
		{"host=db password=", false, ""},
		{"host=db passfile=/etc/pgpass user=app", false, ""},
		{"host=db user=app sslmode=verify-full sslrootcert=/ca.pem", false, ""},
		// Unreadable: hidden whole when it might hold a password.
		{"host=db password=x s3cret port=5432", true, "s3cret"},
		{"host=db password='s3cret", true, "s3cret"},
		{"app:s3cret@db", true, "s3cret"},
	} {
		if got := topology.DSNHasPassword(tc.dsn); got != tc.has {
			t.Errorf("DSNHasPassword(%q) = %v, want %v", tc.dsn, got, tc.has)
		}
		if tc.secret != "" {
			if got := topology.RedactDSN(tc.dsn); strings.Contains(got, tc.secret) {
				t.Errorf("RedactDSN(%q) = %q leaks %q", tc.dsn, got, tc.secret)
			}
		} else if got := topology.RedactDSN(tc.dsn); got != strings.TrimLeft(tc.dsn, " ") {
			t.Errorf("RedactDSN(%q) = %q, want it unchanged", tc.dsn, got)
		}
	}
	if got := topology.RedactDSN("postgres://app:s3cret@db:5432/app?sslmode=require&sslpassword=k3y&password=p"); got != "postgres://app:xxxxx@db:5432/app?sslmode=require&sslpassword=xxxxx&password=xxxxx" {
		t.Errorf("RedactDSN kept the parameters' order badly: %q", got)
	}
}
