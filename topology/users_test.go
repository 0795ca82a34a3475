package topology

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/xdg-go/scram"

	"github.com/shardgate/shardgate/internal/pgtest"
)

// scramLogin runs a whole SCRAM-SHA-256 conversation between an xdg-go/scram
// client that knows password and a server that knows only creds, the way a
// Postgres client talks to the gateway (the client sends no user name).
func scramLogin(creds scram.StoredCredentials, password string) error {
	srv, err := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) { return creds, nil })
	if err != nil {
		return err
	}
	cl, err := scram.SHA256.NewClient("", password, "")
	if err != nil {
		return err
	}
	cc, sc := cl.NewConversation(), srv.NewConversation()
	msg, err := cc.Step("")
	for err == nil && !cc.Done() {
		if msg, err = sc.Step(msg); err != nil {
			break
		}
		msg, err = cc.Step(msg)
	}
	if err != nil {
		return err
	}
	if !sc.Valid() || !cc.Valid() {
		return errors.New("conversation ended without both sides valid")
	}
	return nil
}

func pgExec(t *testing.T, conn *pgconn.PgConn, sql string) []*pgconn.Result {
	t.Helper()
	res, err := conn.Exec(t.Context(), sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return res
}

func pgConnect(t *testing.T, dsn string) *pgconn.PgConn {
	t.Helper()
	conn, err := pgconn.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func rolpassword(t *testing.T, conn *pgconn.PgConn, role string) string {
	t.Helper()
	res := pgExec(t, conn, "select rolpassword from pg_authid where rolname = '"+role+"'")
	if len(res[0].Rows) != 1 {
		t.Fatalf("role %s not found", role)
	}
	return string(res[0].Rows[0][0])
}

// TestVerifierFromPostgres parses verifiers that Postgres made and checks
// that the keys NewVerifier's derivation gives for Postgres's salt are
// Postgres's own, SASLprep's corner cases included.
func TestVerifierFromPostgres(t *testing.T) {
	pg := pgtest.Start(t, 1)[0]
	conn := pgConnect(t, pg.DSN("postgres"))
	pgExec(t, conn, "set password_encryption = 'scram-sha-256'; create role x login password 'secret'")

	stored := rolpassword(t, conn, "x")
	v, err := ParseVerifier(stored)
	if err != nil {
		t.Fatalf("ParseVerifier(%q): %v", stored, err)
	}
	if v.Iterations != 4096 || len(v.Salt) != 16 || len(v.StoredKey) != 32 || len(v.ServerKey) != 32 {
		t.Errorf("parsed %+v", v)
	}
	if v.String() != stored {
		t.Errorf("String() = %q, want Postgres's %q", v.String(), stored)
	}
	if err := scramLogin(v.Credentials(), "secret"); err != nil {
		t.Errorf("login with the right password against Postgres's verifier: %v", err)
	}
	if err := scramLogin(v.Credentials(), "Secret"); err == nil {
		t.Error("login with a wrong password succeeded")
	}
	u := &User{Name: "x", Verifier: stored}
	creds, err := u.Credentials()
	if err != nil || scramLogin(creds, "secret") != nil {
		t.Errorf("User.Credentials: %v", err)
	}

	passwords := []string{
		"secret",
		"with space and ~!@#$%^&*()",
		"pa\u0308sswörd",     // decomposed ä: NFKC composes it
		"\ufb01x",            // ligature fi: NFKC splits it
		"a\u00a0b\u3000c",    // non-ASCII spaces map to ' '
		"x\u00ady\u200dz",    // soft hyphen and ZWJ map to nothing
		"\u00ad",             // nothing left: Postgres uses the raw password
		"ä\ue000",            // private use is prohibited: raw
		"ä\u0007",            // a control character is prohibited: raw
		"\u05d0a",            // mixed right-to-left and left-to-right: raw
		"ä😀",                 // unassigned in Unicode 3.2: raw
		"\u0627\u0644\u0644", // right-to-left only is fine
	}
	for i, pw := range passwords {
		role := "r" + strconv.Itoa(i)
		pgExec(t, conn, "create role "+role+" login password '"+pw+"'")
		pv, err := ParseVerifier(rolpassword(t, conn, role))
		if err != nil {
			t.Fatal(err)
		}
		mine, err := deriveVerifier(pw, pv.Salt, pv.Iterations)
		if err != nil {
			t.Fatal(err)
		}
		if mine.String() != pv.String() {
			t.Errorf("password %+q: derived %s, Postgres stored %s", pw, mine, pv)
		}
	}
}

// TestNewVerifierLogsIntoPostgres stores a verifier made by NewVerifier in a
// real Postgres and logs in with the password over TCP with SCRAM.
func TestNewVerifierLogsIntoPostgres(t *testing.T) {
	pg := pgtest.Start(t, 1)[0]
	conn := pgConnect(t, pg.DSN("postgres"))
	hba := filepath.Join(pg.Dir, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	// Rewriting the existing file keeps its owner (postgres, when we are
	// root) and mode. The first matching line wins.
	if err := os.WriteFile(hba, append([]byte("host all x 127.0.0.1/32 scram-sha-256\n"), old...), 0o600); err != nil {
		t.Fatal(err)
	}
	pgExec(t, conn, "select pg_reload_conf()")

	for _, pw := range []string{"secret", "pa\u0308sswörd"} {
		v, err := NewVerifier(pw)
		if err != nil {
			t.Fatal(err)
		}
		pgExec(t, conn, "drop role if exists x; create role x login password '"+v+"'")
		if got := rolpassword(t, conn, "x"); got != v {
			t.Fatalf("Postgres stored %q, want the verifier %q as is", got, v)
		}
		login := func(password string) error {
			u := url.URL{
				Scheme: "postgres", User: url.UserPassword("x", password),
				Host: net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), Path: "/postgres", RawQuery: "sslmode=disable",
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := pgconn.Connect(ctx, u.String())
			if err != nil {
				return err
			}
			return c.Close(ctx)
		}
		// It must be SCRAM that lets x in, not the trust lines below.
		var pgErr *pgconn.PgError
		if err := login("wrong"); !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
			t.Fatalf("login with a wrong password: %v, want 28P01 invalid_password", err)
		}
		if err := login(pw); err != nil {
			t.Errorf("login as x with %+q and a NewVerifier verifier: %v", pw, err)
		}
	}
}

func TestNewVerifier(t *testing.T) {
	a, err := NewVerifier("secret")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewVerifier("secret")
	if a == b {
		t.Error("two verifiers of one password are equal: the salt is not random")
	}
	if strings.Contains(a, "secret") {
		t.Errorf("verifier %q holds the password", a)
	}
	v, err := ParseVerifier(a)
	if err != nil {
		t.Fatal(err)
	}
	if v.Iterations != VerifierIterations || len(v.Salt) != 16 || v.String() != a {
		t.Errorf("NewVerifier made %q, parsed %+v", a, v)
	}
	if err := scramLogin(v.Credentials(), "secret"); err != nil {
		t.Error(err)
	}
	if _, err := NewVerifier(""); err == nil {
		t.Error("NewVerifier accepted an empty password")
	}
}

func TestParseVerifierRejects(t *testing.T) {
	good, _ := NewVerifier("secret")
	v, _ := ParseVerifier(good)
	for _, s := range []string{
		"",
		"hunter2",
		"md5" + strings.Repeat("0", 32),
		"SCRAM-SHA-1$4096:" + strings.SplitN(good, "$", 2)[1],
		strings.Replace(good, "$4096:", "$0:", 1),
		strings.Replace(good, "$4096:", "$x:", 1),
		strings.Replace(good, "$4096:", "$4096", 1),
		good[:strings.LastIndex(good, ":")],
		good + "x",
		strings.Replace(good, "$", "$$", 1),
		Verifier{Iterations: 4096, Salt: v.Salt, StoredKey: v.StoredKey[:16], ServerKey: v.ServerKey}.String(),
		Verifier{Iterations: 4096, Salt: nil, StoredKey: v.StoredKey, ServerKey: v.ServerKey}.String(),
	} {
		if _, err := ParseVerifier(s); err == nil {
			t.Errorf("ParseVerifier(%q) succeeded", s)
		} else if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("ParseVerifier(%q) = %v: the error repeats the input", s, err)
		}
	}
}

func mustVerifier(t *testing.T, password string) string {
	t.Helper()
	v, err := NewVerifier(password)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestStoreUsers(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a")
	for _, ks := range []string{"app", "logs"} {
		if err := s.CreateKeyspace(ctx, ks, 2, []string{"a"}); err != nil {
			t.Fatal(err)
		}
	}
	v1, v2 := mustVerifier(t, "one"), mustVerifier(t, "two")

	if err := s.AddUser(ctx, User{Name: "Alice.Smith", Verifier: v1, Keyspaces: []string{"logs", "app", "logs"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(ctx, User{Name: "bob", Verifier: v2, BackendRole: "app_ro"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(ctx, User{Name: "Alice.Smith", Verifier: v2}); !errors.Is(err, ErrConflict) {
		t.Errorf("adding Alice.Smith twice: %v, want ErrConflict", err)
	}
	if err := s.AddUser(ctx, User{Name: "carol", Verifier: v1, Keyspaces: []string{"app", "ghost"}}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "keyspace ghost") {
		t.Errorf("adding a user with a grant of a missing keyspace: %v, want ErrNotFound naming ghost", err)
	}
	for _, u := range []User{
		{Name: "", Verifier: v1},
		{Name: "1x", Verifier: v1},
		{Name: "a/b", Verifier: v1},
		{Name: strings.Repeat("x", 64), Verifier: v1},
		{Name: "dave", Verifier: "hunter2"},
		{Name: "dave", Verifier: ""},
		{Name: "dave", Verifier: v1, Keyspaces: []string{"App"}},
		{Name: "dave", Verifier: v1, BackendRole: "no such"},
	} {
		if err := s.AddUser(ctx, u); err == nil {
			t.Errorf("AddUser(%+v) succeeded", u)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("AddUser error repeats the would-be verifier: %v", err)
		}
	}
	if err := s.AddUser(ctx, User{Name: strings.Repeat("x", 63), Verifier: v1}); err != nil {
		t.Errorf("a 63-byte name: %v", err)
	}
	if err := s.RemoveUser(ctx, strings.Repeat("x", 63)); err != nil {
		t.Fatal(err)
	}

	users, err := s.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []User{
		{Name: "Alice.Smith", Verifier: v1, Keyspaces: []string{"app", "logs"}},
		{Name: "bob", Verifier: v2, BackendRole: "app_ro"},
	}
	if !slices.EqualFunc(users, want, userEqual) {
		t.Fatalf("Users = %+v, want %+v", users, want)
	}

	// Grants are idempotent and need the keyspace; revokes are idempotent.
	for range 2 {
		if err := s.Grant(ctx, "bob", "logs"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Grant(ctx, "bob", "ghost"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Grant of a missing keyspace: %v, want ErrNotFound", err)
	}
	if err := s.Grant(ctx, "nobody", "app"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Grant to a missing user: %v, want ErrNotFound", err)
	}
	for range 2 {
		if err := s.Revoke(ctx, "Alice.Smith", "logs"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetVerifier(ctx, "Alice.Smith", v2); err != nil {
		t.Fatal(err)
	}
	if err := s.SetVerifier(ctx, "Alice.Smith", "md5"+strings.Repeat("0", 32)); err == nil {
		t.Error("SetVerifier accepted an md5 hash")
	}
	if err := s.SetVerifier(ctx, "nobody", v2); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetVerifier of a missing user: %v, want ErrNotFound", err)
	}
	if err := s.RemoveUser(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RemoveUser of a missing user: %v, want ErrNotFound", err)
	}

	snap := mustLoad(t, s)
	alice, bob := snap.User("Alice.Smith"), snap.User("bob")
	if alice == nil || bob == nil || len(snap.Users) != 2 || snap.User("alice.smith") != nil {
		t.Fatalf("snapshot users %+v", snap.Users)
	}
	if !alice.CanUse("app") || alice.CanUse("logs") || alice.Verifier != v2 {
		t.Errorf("alice = %+v", *alice)
	}
	if !bob.CanUse("logs") || bob.CanUse("app") || bob.BackendRole != "app_ro" {
		t.Errorf("bob = %+v", *bob)
	}
	if (*User)(nil).CanUse("app") || (*Snapshot)(nil).User("bob") != nil {
		t.Error("nil User or Snapshot answers")
	}

	// User changes are no topology changes: the revision guard of topology
	// writes ignores them.
	rev := snap.Revision
	if err := s.Grant(ctx, "Alice.Smith", "logs"); err != nil {
		t.Fatal(err)
	}
	if resp, err := te.cli.Txn(ctx).If(s.unchangedSince(rev)...).Commit(); err != nil || !resp.Succeeded {
		t.Errorf("topology guard after a grant: %v, succeeded %v", err, resp != nil && resp.Succeeded)
	}

	if err := s.RemoveUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if snap := mustLoad(t, s); snap.User("bob") != nil || !snap.User("Alice.Smith").CanUse("logs") {
		t.Errorf("after removing bob: %+v", snap.Users)
	}
}

func userEqual(a, b User) bool {
	return a.Name == b.Name && a.Verifier == b.Verifier && slices.Equal(a.Keyspaces, b.Keyspaces) && a.BackendRole == b.BackendRole && a.Admin == b.Admin
}

// TestStoreUserAdmin grants and revokes the admin console: the flag is
// stored as "admin", reaches the snapshot, and records written before it
// existed read as not admin.
func TestStoreUserAdmin(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	v := mustVerifier(t, "pw")
	if err := s.AddUser(ctx, User{Name: "root", Verifier: v, Admin: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(ctx, User{Name: "app", Verifier: v}); err != nil {
		t.Fatal(err)
	}
	// A record from before the flag: no "admin" key at all.
	if _, err := te.cli.Put(ctx, "/shardgate/test/users/old", `{"name":"old","verifier":"`+v+`"}`); err != nil {
		t.Fatal(err)
	}
	raw := func(name string) string {
		t.Helper()
		resp, err := te.cli.Get(ctx, "/shardgate/test/users/"+name)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("etcd record of %s: %v", name, err)
		}
		return string(resp.Kvs[0].Value)
	}
	if r := raw("root"); !strings.Contains(r, `"admin":true`) {
		t.Errorf("root's record %s lacks \"admin\":true", r)
	}
	if r := raw("app"); strings.Contains(r, "admin") {
		t.Errorf("a user without the flag stores it: %s", r)
	}
	snap := mustLoad(t, s)
	if !snap.User("root").IsAdmin() || snap.User("app").IsAdmin() || snap.User("old").IsAdmin() || snap.User("nobody").IsAdmin() {
		t.Errorf("admin flags in the snapshot: %+v", snap.Users)
	}

	for range 2 { // idempotent both ways
		if err := s.SetAdmin(ctx, "app", true); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAdmin(ctx, "root", false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetAdmin(ctx, "nobody", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetAdmin of a missing user: %v, want ErrNotFound", err)
	}
	users, err := s.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []User{{Name: "app", Verifier: v, Admin: true}, {Name: "old", Verifier: v}, {Name: "root", Verifier: v}}
	if !slices.EqualFunc(users, want, userEqual) {
		t.Fatalf("Users = %+v, want %+v", users, want)
	}
}

// TestStoreUserRecordsInvalid writes bad user records straight to etcd: each
// is left out of the snapshot (that user cannot log in) while the rest of the
// topology loads; Users names it.
func TestStoreUserRecordsInvalid(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a")
	if err := s.AddUser(ctx, User{Name: "good", Verifier: mustVerifier(t, "pw")}); err != nil {
		t.Fatal(err)
	}
	for key, value := range map[string]string{
		"users/garbage":  "{",
		"users/renamed":  `{"name": "other", "verifier": "` + mustVerifier(t, "pw") + `"}`,
		"users/plain":    `{"name": "plain", "verifier": "hunter2"}`,
		"users/a/b":      `{}`, // no user key at all
		"users/bad name": `{"name": "bad name", "verifier": "` + mustVerifier(t, "pw") + `"}`,
	} {
		if _, err := te.cli.Put(ctx, s.prefix+key, value); err != nil {
			t.Fatal(err)
		}
	}
	snap := mustLoad(t, s)
	if len(snap.Users) != 1 || snap.User("good") == nil || len(snap.Shards) != 1 {
		t.Fatalf("snapshot: users %+v, shards %+v", snap.Users, snap.Shards)
	}
	if _, err := s.Users(ctx); err == nil {
		t.Error("Users succeeded over bad records")
	}
	for _, name := range []string{"garbage", "renamed", "plain"} {
		if err := s.RemoveUser(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := te.cli.Delete(ctx, s.prefix+"users/bad name"); err != nil {
		t.Fatal(err)
	}
	if users, err := s.Users(ctx); err != nil || len(users) != 1 {
		t.Errorf("Users = %+v, %v", users, err)
	}
}

// TestWatcherFollowsUsers checks that user changes reach Snapshot() without
// a restart, and that a bad user record costs only that user.
func TestWatcherFollowsUsers(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	addShards(t, s, "a", "b")
	for _, ks := range []string{"app", "logs"} {
		if err := s.CreateKeyspace(ctx, ks, 2, []string{"a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddUser(ctx, User{Name: "early", Verifier: mustVerifier(t, "pw")}); err != nil {
		t.Fatal(err)
	}
	// Bad before the watcher starts: left out of the first snapshot.
	if _, err := te.cli.Put(ctx, s.userKey("broken"), "{"); err != nil {
		t.Fatal(err)
	}
	log, logs := watcherLogger(t)
	var got notes
	w := NewWatcher(s, log, got.add)
	runWatcher(t, w)
	waitReady(t, w)
	if w.Snapshot().User("early") == nil || w.Snapshot().User("broken") != nil {
		t.Fatalf("first snapshot users %+v", w.Snapshot().Users)
	}
	if logs.FilterMessageSnippet("user record that does not parse").Len() != 1 {
		t.Error("the broken user record was not logged")
	}
	topoRev := w.Snapshot().Revision

	v := mustVerifier(t, "secret")
	if err := s.AddUser(ctx, User{Name: "Alice", Verifier: v}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return w.Snapshot().User("Alice") != nil }, 5*time.Second, "added user visible")
	if err := s.Grant(ctx, "Alice", "app"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return w.Snapshot().User("Alice").CanUse("app") }, 5*time.Second, "grant visible")
	if err := s.Grant(ctx, "Alice", "logs"); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, "Alice", "app"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { u := w.Snapshot().User("Alice"); return u.CanUse("logs") && !u.CanUse("app") }, 5*time.Second,
		"revoke visible")
	v2 := mustVerifier(t, "secret2")
	if err := s.SetVerifier(ctx, "Alice", v2); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return w.Snapshot().User("Alice").Verifier == v2 }, 5*time.Second, "new verifier visible")
	creds, err := w.Snapshot().User("Alice").Credentials()
	if err != nil || scramLogin(creds, "secret2") != nil {
		t.Errorf("Alice cannot log in with the new password: %v", err)
	}
	// User changes do not move the topology revision a gateway acknowledges.
	if r := w.Snapshot().Revision; r != topoRev {
		t.Errorf("snapshot revision %d after user changes only, want %d", r, topoRev)
	}

	// A record that turns bad takes that user out, and only that user.
	if _, err := te.cli.Put(ctx, s.userKey("early"), `{"name": "early", "verifier": "hunter2"}`); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return w.Snapshot().User("early") == nil }, 5*time.Second, "user with a bad record gone")
	if w.Snapshot().User("Alice") == nil {
		t.Fatal("Alice gone with early's bad record")
	}
	// A bad record of a user that was not there changes nothing.
	eventually(t, func() bool { n := got.all(); return n[len(n)-1] == w.Snapshot() }, 5*time.Second,
		"notify called with the current snapshot")
	n := len(got.all())
	if _, err := te.cli.Put(ctx, s.userKey("ghost"), "{"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return logs.FilterMessageSnippet("user record that does not parse").Len() == 3 }, 5*time.Second,
		"bad records logged")
	// Topology changes still flow.
	addShards(t, s, "c")
	eventually(t, func() bool { return w.Snapshot().Shards["c"] != nil }, 5*time.Second, "shard c visible")
	eventually(t, func() bool { n := got.all(); return n[len(n)-1] == w.Snapshot() }, 5*time.Second,
		"notify called with the current snapshot")
	if m := len(got.all()); m != n+1 {
		t.Errorf("%d installs after the ghost record and a new shard, want 1", m-n)
	}
	if r := w.Snapshot().Revision; r <= topoRev {
		t.Errorf("snapshot revision %d after a topology change, want > %d", r, topoRev)
	}

	// A grant whose keyspace went away just dangles.
	if _, err := te.cli.Delete(ctx, s.mapKey("logs")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return w.Snapshot().Keyspace("logs") == nil }, 5*time.Second, "keyspace logs gone")
	if u := w.Snapshot().User("Alice"); u == nil || !u.CanUse("logs") {
		t.Errorf("Alice after logs went away: %+v", u)
	}
	if err := s.RemoveUser(ctx, "Alice"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return w.Snapshot().User("Alice") == nil }, 5*time.Second, "removed user gone")

	if want := mustLoad(t, s); !usersEqual(w.Snapshot().Users, want.Users) {
		t.Errorf("watcher users %+v, Load %+v", w.Snapshot().Users, want.Users)
	}
	if logs.FilterMessageSnippet("ignoring invalid topology").Len() != 0 {
		t.Error("a user record made the whole topology invalid")
	}
}

func usersEqual(a, b map[string]*User) bool {
	if len(a) != len(b) {
		return false
	}
	for name, u := range a {
		if b[name] == nil || !userEqual(*u, *b[name]) {
			return false
		}
	}
	return true
}
