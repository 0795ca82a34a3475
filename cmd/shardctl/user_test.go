package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/xdg-go/scram"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/topology"
)

// canLogIn runs a SCRAM-SHA-256 conversation of a client knowing password
// against a server knowing only the stored verifier, as a gateway would.
func canLogIn(t *testing.T, verifier, password string) bool {
	t.Helper()
	v, err := topology.ParseVerifier(verifier)
	if err != nil {
		t.Fatalf("stored verifier: %v", err)
	}
	srv, err := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) { return v.Credentials(), nil })
	if err != nil {
		t.Fatal(err)
	}
	cl, err := scram.SHA256.NewClient("", password, "")
	if err != nil {
		t.Fatal(err)
	}
	cc, sc := cl.NewConversation(), srv.NewConversation()
	msg, err := cc.Step("")
	for err == nil && !cc.Done() {
		if msg, err = sc.Step(msg); err == nil {
			msg, err = cc.Step(msg)
		}
	}
	return err == nil && sc.Valid() && cc.Valid()
}

// rawUser returns the etcd value of user name, as stored.
func (e *testEnv) rawUser(name string) string {
	e.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.endpoint}, Logger: zap.NewNop()})
	if err != nil {
		e.t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(e.t.Context(), "/shardgate/"+e.cluster+"/users/"+name)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		e.t.Fatalf("no etcd key for user %s", name)
	}
	return string(resp.Kvs[0].Value)
}

// listRows runs "user list" and returns its rows, fields split on runs of
// two or more spaces (BACKEND ROLE holds one).
func (e *testEnv) listRows() [][]string {
	e.t.Helper()
	out := e.run("", "user", "list").ok(e.t)
	var rows [][]string
	for line := range strings.SplitSeq(strings.TrimSuffix(out, "\n"), "\n") {
		var fields []string
		for f := range strings.SplitSeq(line, "  ") {
			if f = strings.TrimSpace(f); f != "" {
				fields = append(fields, f)
			}
		}
		rows = append(rows, fields)
	}
	return rows
}

func TestUserLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addShards(1)
	e.run("", "keyspace", "create", "app", "--logical-shards", "2", "--shards", "s0").ok(t)
	e.run("", "keyspace", "create", "logs", "--logical-shards", "1", "--shards", "s0").ok(t)
	const pw, pw2 = "correct horse", "battery staple"
	var all strings.Builder
	record := func(r result) result {
		all.WriteString(r.stdout)
		all.WriteString(r.stderr)
		return r
	}

	out := record(e.run(pw+"\nignored second line\n", "user", "add", "Alice", "--keyspace", "app", "--keyspace", "logs", "--keyspace", "app")).ok(t)
	if out != "added user Alice, granted app, logs\n" {
		t.Errorf("user add printed %q", out)
	}
	out = record(e.run(pw2+"\r\n", "user", "add", "bob", "--backend-role", "app_ro")).ok(t)
	if !strings.Contains(out, "added user bob; it can use no keyspace yet") {
		t.Errorf("user add printed %q", out)
	}
	record(e.run(pw+"\n", "user", "add", "Alice")).fails(t, "user Alice already exists")
	record(e.run(pw+"\n", "user", "add", "carol", "--keyspace", "ghost")).fails(t, "keyspace ghost does not exist")
	record(e.run(pw+"\n", "user", "add", "9lives")).fails(t, `user name "9lives"`)
	record(e.run(pw+"\n", "user", "add", "carol", "--backend-role", "x y")).fails(t, "--backend-role", `"x y"`)
	e.run("", "user", "add", "carol").fails(t, "no password on stdin")
	e.run("\n", "user", "add", "carol").fails(t, "no password on stdin")
	// Never from a flag.
	record(e.run("", "user", "add", "carol", "--password", pw)).fails(t, "unknown flag: --password")

	if rows := e.listRows(); len(rows) != 3 ||
		strings.Join(rows[0], "|") != "NAME|KEYSPACES|BACKEND ROLE|ADMIN" ||
		strings.Join(rows[1], "|") != "Alice|app,logs|-|-" ||
		strings.Join(rows[2], "|") != "bob|-|app_ro|-" {
		t.Errorf("user list: %q", rows)
	}

	out = record(e.run("", "user", "grant", "bob", "--keyspace", "logs")).ok(t)
	if out != "granted logs to bob\n" {
		t.Errorf("user grant printed %q", out)
	}
	record(e.run("", "user", "grant", "bob", "--keyspace", "logs")).ok(t) // idempotent
	record(e.run("", "user", "grant", "bob", "--keyspace", "ghost")).fails(t, "keyspace ghost does not exist")
	record(e.run("", "user", "grant", "nobody", "--keyspace", "app")).fails(t, "user nobody does not exist")
	record(e.run("", "user", "grant", "bob")).fails(t, "missing --keyspace or --admin")
	out = record(e.run("", "user", "revoke", "Alice", "--keyspace", "logs", "--keyspace", "ghost")).ok(t)
	if out != "revoked logs from Alice\nAlice was not granted ghost; nothing to revoke\n" {
		t.Errorf("user revoke printed %q", out)
	}
	record(e.run("", "user", "revoke", "nobody", "--keyspace", "app")).fails(t, "user nobody does not exist")

	out = record(e.run(pw2+"\n", "user", "passwd", "Alice")).ok(t)
	if out != "changed the password of user Alice\n" {
		t.Errorf("user passwd printed %q", out)
	}
	record(e.run(pw2+"\n", "user", "passwd", "nobody")).fails(t, "user nobody does not exist")

	snap := e.load()
	alice, bob := snap.User("Alice"), snap.User("bob")
	if alice == nil || bob == nil || !alice.CanUse("app") || alice.CanUse("logs") || !bob.CanUse("logs") || bob.BackendRole != "app_ro" {
		t.Fatalf("stored users %+v", snap.Users)
	}
	if !canLogIn(t, alice.Verifier, pw2) || canLogIn(t, alice.Verifier, pw) {
		t.Error("Alice's stored verifier is not that of her new password")
	}
	if !canLogIn(t, bob.Verifier, pw2) {
		t.Error("bob's verifier (password given with CRLF) does not take the password")
	}
	for _, name := range []string{"Alice", "bob"} {
		if raw := e.rawUser(name); strings.Contains(raw, pw) || strings.Contains(raw, pw2) || strings.Contains(raw, "horse") {
			t.Errorf("etcd holds a password for %s: %s", name, raw)
		}
	}
	if s := all.String(); strings.Contains(s, pw) || strings.Contains(s, pw2) || strings.Contains(s, "SCRAM-SHA-256$") {
		t.Errorf("a password or a verifier was printed:\n%s", s)
	}

	out = e.run("", "user", "remove", "bob").ok(t)
	if out != "removed user bob\n" {
		t.Errorf("user remove printed %q", out)
	}
	e.run("", "user", "remove", "bob").fails(t, "user bob does not exist")
	if rows := e.listRows(); len(rows) != 2 || rows[1][0] != "Alice" {
		t.Errorf("user list after remove: %q", rows)
	}
}

// TestUserAdmin grants the admin console with user add, grant and revoke,
// alone and together with keyspaces.
func TestUserAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addShards(1)
	e.run("", "keyspace", "create", "app", "--logical-shards", "1", "--shards", "s0").ok(t)

	out := e.run("pw\n", "user", "add", "ops", "--admin").ok(t)
	if out != "added user ops; it can use no keyspace yet (shardctl user grant ops --keyspace KS)\ngranted the admin console to ops\n" {
		t.Errorf("user add --admin printed %q", out)
	}
	e.run("pw\n", "user", "add", "app", "--keyspace", "app").ok(t)
	if rows := e.listRows(); len(rows) != 3 ||
		strings.Join(rows[1], "|") != "app|app|-|-" ||
		strings.Join(rows[2], "|") != "ops|-|-|yes" {
		t.Errorf("user list: %q", rows)
	}

	out = e.run("", "user", "grant", "app", "--admin", "--keyspace", "app").ok(t)
	if out != "granted the admin console to app\ngranted app to app\n" {
		t.Errorf("user grant --admin printed %q", out)
	}
	e.run("", "user", "grant", "app", "--admin").ok(t) // idempotent
	e.run("", "user", "grant", "nobody", "--admin").fails(t, "user nobody does not exist")
	if snap := e.load(); !snap.User("app").IsAdmin() || !snap.User("app").CanUse("app") || !snap.User("ops").IsAdmin() {
		t.Fatalf("after grant: %+v", snap.Users)
	}
	if !strings.Contains(e.rawUser("app"), `"admin":true`) {
		t.Errorf("etcd record of app: %s", e.rawUser("app"))
	}

	out = e.run("", "user", "revoke", "ops", "--admin").ok(t)
	if out != "revoked the admin console from ops\n" {
		t.Errorf("user revoke --admin printed %q", out)
	}
	out = e.run("", "user", "revoke", "ops", "--admin").ok(t)
	if out != "ops was not granted the admin console; nothing to revoke\n" {
		t.Errorf("second user revoke --admin printed %q", out)
	}
	e.run("", "user", "revoke", "ops").fails(t, "missing --keyspace or --admin")
	e.run("", "user", "revoke", "nobody", "--admin").fails(t, "user nobody does not exist")
	if snap := e.load(); snap.User("ops").IsAdmin() || !snap.User("app").IsAdmin() {
		t.Errorf("after revoke: %+v", snap.Users)
	}
}

func TestUserPasswordFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("from file\r\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The file wins over stdin.
	e.run("from stdin\n", "user", "add", "u1", "--password-file", file).ok(t)
	if v := e.load().User("u1").Verifier; !canLogIn(t, v, "from file") {
		t.Error("the verifier is not that of the file's first line")
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\nx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.run("", "user", "passwd", "u1", "--password-file", empty).fails(t, "--password-file "+empty, "empty password")
	e.run("", "user", "passwd", "u1", "--password-file", filepath.Join(dir, "missing")).fails(t, "--password-file", "no such file")
	e.run("", "user", "passwd", "u1", "--password-file", file).ok(t)
}

func TestAskTwice(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		input, want, err string
	}{
		{"pw\npw\n", "pw", ""},
		{"pw\r\npw\n", "pw", ""},
		{"pw\npx\n", "", "the passwords do not match"},
		{"pw\n", "", "the passwords do not match"},
		{"\n\n", "", "empty password"},
		{"", "", "empty password"},
	} {
		var prompts strings.Builder
		got, err := askTwice(bufio.NewReader(strings.NewReader(tt.input)), &prompts, "alice", true)
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("askTwice(%q) = %q, %v; want %q, %q", tt.input, got, err, tt.want, tt.err)
		}
		if !strings.HasPrefix(prompts.String(), "Password for user alice: \n") || strings.Contains(prompts.String(), "pw") {
			t.Errorf("askTwice(%q) prompted %q", tt.input, prompts.String())
		}
	}
}

func TestUserImport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addShards(1)
	e.run("", "keyspace", "create", "app", "--logical-shards", "1", "--shards", "s0").ok(t)
	pg := pgtest.Start(t, 1)[0]
	conn, err := pgconn.Connect(t.Context(), pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(t.Context(), sql).ReadAll(); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	const alicePW, carolPW, bobPW = "alice-Pa55word", "carol-pw-XYZ", "bob-md5-pw"
	exec("set password_encryption = 'scram-sha-256'")
	exec("create role alice login password '" + alicePW + "'")
	exec("create role carol login password '" + carolPW + "'")
	exec("create role nologin_role password 'x-unused'") // NOLOGIN: never imported
	exec("create role dave login")                       // no password
	exec("create role \"Bad Name\" login password 'x-bad'")
	exec("set password_encryption = 'md5'")
	exec("create role bob login password '" + bobPW + "'")
	authid := func(role string) string {
		t.Helper()
		res, err := conn.Exec(t.Context(), "select rolpassword from pg_authid where rolname = '"+role+"'").ReadAll()
		if err != nil || len(res[0].Rows) != 1 {
			t.Fatalf("pg_authid of %s: %v", role, err)
		}
		return string(res[0].Rows[0][0])
	}

	r := e.run(pg.DSN("postgres")+"\n", "user", "import", "--from", "-")
	if r.code != 0 {
		t.Fatalf("user import: exit %d, stderr %q", r.code, r.stderr)
	}
	wantOut := "imported alice: new user without keyspaces (shardctl user grant alice --keyspace KS)\n" +
		"imported carol: new user without keyspaces (shardctl user grant carol --keyspace KS)\n" +
		"imported 2 roles, skipped 2 (see the warnings)\n"
	if r.stdout != wantOut {
		t.Errorf("user import printed\n%s\nwant\n%s", r.stdout, wantOut)
	}
	warnings := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(warnings) != 2 ||
		!strings.HasPrefix(warnings[0], `shardctl: warning: role "Bad Name" skipped: user name "Bad Name"`) ||
		!strings.HasPrefix(warnings[1], `shardctl: warning: role "bob" has an md5 password`) {
		t.Errorf("user import warned %q", r.stderr)
	}
	for _, c := range []struct{ role, pw string }{{"alice", alicePW}, {"carol", carolPW}} {
		raw := e.rawUser(c.role)
		if strings.Contains(raw, c.pw) || strings.Contains(raw, "Pa55") {
			t.Errorf("etcd holds %s's password: %s", c.role, raw)
		}
		u := e.load().User(c.role)
		if u == nil || u.Verifier != authid(c.role) {
			t.Fatalf("user %s = %+v, want the verifier of pg_authid %s", c.role, u, authid(c.role))
		}
		if !strings.Contains(raw, authid(c.role)) {
			t.Errorf("etcd value of %s does not hold pg_authid's verifier: %s", c.role, raw)
		}
		if !canLogIn(t, u.Verifier, c.pw) {
			t.Errorf("%s cannot log in with the imported verifier", c.role)
		}
	}
	if snap := e.load(); len(snap.Users) != 2 {
		t.Errorf("imported users %v", snap.Users)
	}
	if strings.Contains(r.stdout+r.stderr, bobPW) || strings.Contains(r.stdout+r.stderr, "SCRAM-SHA-256$") {
		t.Errorf("import printed a password or a verifier: %q %q", r.stdout, r.stderr)
	}

	// A new password in Postgres, imported again for one role: the verifier
	// follows, the grants stay.
	e.run("", "user", "grant", "alice", "--keyspace", "app").ok(t)
	exec("set password_encryption = 'scram-sha-256'")
	exec("alter role alice password 'alice-new'")
	exec("alter role carol password 'carol-new'")
	out := e.run("", "user", "import", "--from", pg.DSN("postgres"), "--role", "alice").ok(t)
	if out != "imported alice: updated the verifier of the existing user\nimported 1 roles\n" {
		t.Errorf("second import printed %q", out)
	}
	snap := e.load()
	if a := snap.User("alice"); !a.CanUse("app") || a.Verifier != authid("alice") || !canLogIn(t, a.Verifier, "alice-new") {
		t.Errorf("alice after the second import: %+v", a)
	}
	if snap.User("carol").Verifier == authid("carol") {
		t.Error("carol was imported although only alice was named")
	}

	// A named role without a password is warned about.
	r = e.run("", "user", "import", "--from", pg.DSN("postgres"), "--role", "dave")
	if r.code != 0 || r.stdout != "imported 0 roles, skipped 1 (see the warnings)\n" ||
		r.stderr != "shardctl: warning: role \"dave\" has no password; skipped\n" {
		t.Errorf("import of dave: %+v", r)
	}
	e.run("", "user", "import", "--from", pg.DSN("postgres"), "--role", "alice", "--role", "ghost", "--role", "nologin_role").
		fails(t, "no login role ghost, nologin_role")
	e.run("", "user", "import").fails(t, "missing --from")
	e.run("", "user", "import", "--from", "-").fails(t, "reading the DSN from stdin")

	// Reading pg_authid needs a superuser; the error says so, and a
	// password in the DSN is never printed.
	dsn := strings.Replace(pg.DSN("postgres"), "postgres@", "alice:alice-new@", 1)
	r = e.run("", "user", "import", "--from", dsn)
	r.fails(t, "permission denied", "superuser")
	if strings.Contains(r.stderr, "alice-new") {
		t.Errorf("the DSN's password was printed: %q", r.stderr)
	}
	r = e.run("", "--timeout", "2s", "user", "import", "--from", "postgres://x:s3cret@"+closedPort(t)+"/db?sslmode=disable")
	r.fails(t, "connecting to Postgres")
	if strings.Contains(r.stderr, "s3cret") {
		t.Errorf("the DSN's password was printed: %q", r.stderr)
	}
}
