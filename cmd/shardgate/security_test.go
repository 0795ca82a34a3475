package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardgate/shardgate/internal/drivertest"
	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/internal/testcert"
)

// secureEnv is an env whose gateway wants SCRAM over TLS (ssl: require),
// with a user "app" (password "app-secret") granted keyspace app and a user
// "outsider" granted nothing.
type secureEnv struct {
	*env
	gw      *gateway
	dir     string
	ca      *testcert.CA
	certs   *testcert.Pair
	adminTk string
}

func newSecureEnv(t *testing.T) *secureEnv {
	t.Helper()
	e := newEnv(t)
	e.gw.stop()
	s := &secureEnv{env: e, dir: t.TempDir(), adminTk: "admin-token-for-tests"}
	var err error
	if s.ca, err = testcert.NewCA(s.dir, "test-ca"); err != nil {
		t.Fatal(err)
	}
	if s.certs, err = s.ca.Issue(s.dir, "gateway", "localhost", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	s.addUser("app", "app-secret", "--keyspace", "app")
	s.addUser("outsider", "outsider-secret")
	s.gw = startGateway(t, e.etcd.Endpoints(), "--auth", "scram-sha-256", "--ssl", "require",
		"--tls-cert", s.certs.CertFile, "--tls-key", s.certs.KeyFile, "--admin-token", s.adminTk)
	return s
}

func (s *secureEnv) addUser(name, password string, args ...string) {
	s.t.Helper()
	f := filepath.Join(s.dir, name+".pw")
	if err := os.WriteFile(f, []byte(password+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	s.shardctl(0, append([]string{"user", "add", name, "--password-file", f}, args...)...)
}

// dsn is a libpq connection string for the gateway with TLS verified
// against the test CA.
func (s *secureEnv) dsn(user, password, ks string) string {
	_, port, _ := strings.Cut(s.gw.addr, ":")
	return fmt.Sprintf("host=localhost port=%s dbname=%s user=%s password=%s sslmode=verify-full sslrootcert=%s", port, ks, user, password, s.ca.CertFile)
}

func TestSecurityClientAuthentication(t *testing.T) {
	s := newSecureEnv(t)
	ctx := context.Background()

	// pgx: SCRAM over verified TLS; the session is encrypted.
	c, err := pgconn.Connect(ctx, s.dsn("app", "app-secret", "app"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Conn().(*tls.Conn); !ok {
		t.Fatal("pgx session is not TLS")
	}
	mustQuery(t, c, "create table users (id bigint primary key, name text, email text, country text)")
	mustQuery(t, c, "insert into users (id, name) values (1, 'one')")
	c.Close(ctx)

	// psql, the same way, insisting on channel binding (SCRAM-SHA-256-PLUS).
	out, errOut, code := psql(t, s.dsn("app", "app-secret", "app")+" channel_binding=require", "-c", "select name from users where id = 1")
	if code != 0 || out != "one\n" {
		t.Fatalf("psql: exit %d %q %q", code, out, errOut)
	}
	// psycopg2, the same way.
	if _, err := drivertest.EnsurePsycopg2(); err != nil {
		t.Fatal(err)
	}
	py := exec.Command("/usr/bin/python3", "-c", "import psycopg2,sys; c=psycopg2.connect(sys.argv[1]); k=c.cursor(); k.execute('select name from users where id = 1'); print(k.fetchone()[0])", s.dsn("app", "app-secret", "app"))
	if pyOut, err := py.CombinedOutput(); err != nil || string(pyOut) != "one\n" {
		t.Fatalf("psycopg2: %v %s", err, pyOut)
	}

	// Wrong password and unknown user: the same 28P01 and the same text.
	_, errWrong := pgconn.Connect(ctx, s.dsn("app", "wrong", "app"))
	_, errUnknown := pgconn.Connect(ctx, s.dsn("nobody", "wrong", "app"))
	if pgCode(errWrong) != "28P01" || pgCode(errUnknown) != "28P01" {
		t.Fatalf("wrong password: %v; unknown user: %v", errWrong, errUnknown)
	}
	if strings.ReplaceAll(pgMessage(errUnknown), "nobody", "X") != strings.ReplaceAll(pgMessage(errWrong), "app", "X") {
		t.Fatalf("the answers differ: %q vs %q", pgMessage(errWrong), pgMessage(errUnknown))
	}
	// No grant: 42501. Unknown keyspace: 3D000.
	if _, err := pgconn.Connect(ctx, s.dsn("outsider", "outsider-secret", "app")); pgCode(err) != "42501" {
		t.Fatalf("no grant: %v", err)
	}
	if _, err := pgconn.Connect(ctx, s.dsn("app", "app-secret", "nosuch")); pgCode(err) != "3D000" {
		t.Fatalf("unknown keyspace: %v", err)
	}
	// A grant takes effect without a restart.
	s.shardctl(0, "user", "grant", "outsider", "--keyspace", "app")
	eventually(t, 10*time.Second, "the new grant at the gateway", func() bool {
		c, err := pgconn.Connect(ctx, s.dsn("outsider", "outsider-secret", "app"))
		if err == nil {
			c.Close(ctx)
		}
		return err == nil
	})
	// Failures are logged with the client address and counted.
	if log := s.gw.log.String(); !strings.Contains(log, "authentication failed") || !strings.Contains(log, `"client":"127.0.0.1:`) {
		t.Fatalf("no log of the failures:\n%s", log)
	}
	if m := s.admin(t, "/metrics", s.adminTk); !strings.Contains(m, `shardgate_auth_failures_total{reason="password"} 2`) {
		t.Fatalf("metrics:\n%s", grepLines(m, "shardgate_"))
	}
}

func TestSecurityTLS(t *testing.T) {
	s := newSecureEnv(t)
	ctx := context.Background()

	// ssl: require refuses a plaintext client clearly.
	_, port, _ := strings.Cut(s.gw.addr, ":")
	_, err := pgconn.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%s dbname=app user=app password=app-secret sslmode=disable", port))
	if pgCode(err) != "28000" || !strings.Contains(err.Error(), "accepts only TLS") {
		t.Fatalf("plaintext: %v", err)
	}
	// GSS encryption is declined with 'N'; an SSLRequest then gets 'S' and
	// a TLS 1.2+ handshake.
	raw, err := net.Dial("tcp", s.gw.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	answer := func(msg pgproto3.FrontendMessage) byte {
		b, _ := msg.Encode(nil)
		raw.Write(b)
		one := make([]byte, 1)
		if _, err := raw.Read(one); err != nil {
			t.Fatal(err)
		}
		return one[0]
	}
	if a := answer(&pgproto3.GSSEncRequest{}); a != 'N' {
		t.Fatalf("GSSENCRequest answered %q", a)
	}
	if a := answer(&pgproto3.SSLRequest{}); a != 'S' {
		t.Fatalf("SSLRequest answered %q", a)
	}
	roots := x509.NewCertPool()
	roots.AddCert(s.ca.Cert)
	tc := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: tls.VersionTLS11})
	if err := tc.Handshake(); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}

	// A certificate replaced on disk is served to new connections, while
	// an open session keeps working.
	open, err := pgconn.Connect(ctx, s.dsn("app", "app-secret", "app"))
	if err != nil {
		t.Fatal(err)
	}
	before := s.servedSerial(t)
	if _, err := s.ca.Issue(s.dir, "gateway", "localhost", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	after := s.servedSerial(t)
	if before == after {
		t.Fatal("the replaced certificate is not served")
	}
	if got := mustQuery(t, open, "select 1"); got[0][0] != "1" {
		t.Fatal("open session broke when the certificate changed")
	}
	open.Close(ctx)
}

// servedSerial returns the serial number of the certificate the gateway
// presents now, after its TLS upgrade.
func (s *secureEnv) servedSerial(t *testing.T) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(s.ca.Cert)
	var serial string
	cfg, err := pgconn.ParseConfig(s.dsn("app", "app-secret", "app"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig.VerifyConnection = func(cs tls.ConnectionState) error {
		serial = cs.PeerCertificates[0].SerialNumber.String()
		return nil
	}
	c, err := pgconn.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close(context.Background())
	return serial
}

func TestSecurityAdmin(t *testing.T) {
	s := newSecureEnv(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		if code := s.adminStatus(t, path, ""); code != http.StatusOK {
			t.Fatalf("%s without a token: %d", path, code)
		}
	}
	for _, path := range []string{"/topology", "/metrics"} {
		if code := s.adminStatus(t, path, ""); code != http.StatusUnauthorized {
			t.Fatalf("%s without a token: %d", path, code)
		}
		if code := s.adminStatus(t, path, "wrong"); code != http.StatusUnauthorized {
			t.Fatalf("%s with a wrong token: %d", path, code)
		}
		if code := s.adminStatus(t, path, s.adminTk); code != http.StatusOK {
			t.Fatalf("%s with the token: %d", path, code)
		}
	}
	// A non-loopback admin address without a token: the gateway refuses
	// to start.
	out, err := execOutput(filepath.Join(binDir, "shardgate"), "--etcd", strings.Join(s.etcd.Endpoints(), ","),
		"--listen-admin", "0.0.0.0:0", "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(out, "set admin_token") {
		t.Fatalf("non-loopback admin without a token: %v\n%s", err, out)
	}
	// trust authentication is refused off loopback too.
	out, err = execOutput(filepath.Join(binDir, "shardgate"), "--etcd", strings.Join(s.etcd.Endpoints(), ","),
		"--listen", "0.0.0.0:0", "--auth", "trust", "--admin-token", "x")
	if err == nil || !strings.Contains(out, "auth: trust") {
		t.Fatalf("trust off loopback: %v\n%s", err, out)
	}
}

func (s *secureEnv) adminStatus(t *testing.T, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.gw.admin+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *secureEnv) admin(t *testing.T, path, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.gw.admin+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

func pgMessage(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	return ""
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSecurityImportedRole moves a role from a plain Postgres behind the
// gateway: its password keeps working, and etcd holds only its verifier.
func TestSecurityImportedRole(t *testing.T) {
	s := newSecureEnv(t)
	ctx := context.Background()
	plain := pgtestStart(t)
	admin := connectOrFail(t, plain.DSN("postgres"))
	mustQuery(t, admin, "create role importme login password 'imported-pw-123'")
	s.shardctl(0, "user", "import", "--from", plain.DSN("postgres"), "--role", "importme")
	s.shardctl(0, "user", "grant", "importme", "--keyspace", "app")
	eventually(t, 10*time.Second, "the imported user at the gateway", func() bool {
		c, err := pgconn.Connect(ctx, s.dsn("importme", "imported-pw-123", "app"))
		if err == nil {
			c.Close(ctx)
		}
		return err == nil
	})
	raw := s.etcdDump(t)
	if strings.Contains(raw, "imported-pw-123") || !strings.Contains(raw, "SCRAM-SHA-256$4096:") {
		t.Fatalf("etcd holds a password, or no verifier:\n%s", raw)
	}
}

// TestSecurityShardsOverTLS serves through shards that accept only
// "hostssl ... scram-sha-256", verified against their CA, with the shard
// password given by file; the password shows nowhere.
func TestSecurityShardsOverTLS(t *testing.T) {
	const secret = "shard-s3cret-pw-42"
	const wrong = "wrong-s3cret-pw-43"
	ctx := context.Background()
	shards := make([]*pgtest.Cluster, 2)
	for i := range shards {
		c, err := pgtest.StartCluster(ctx, pgtest.Options{TLS: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Stop() })
		if err := c.CreateRole(ctx, "gw", secret); err != nil {
			t.Fatal(err)
		}
		su := connectOrFail(t, c.DSN("postgres"))
		mustQuery(t, su, "grant create on schema public to gw")
		shards[i] = c
	}
	e := &env{t: t, shards: shards, etcdDir: t.TempDir()}
	e.startEtcd("")
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.pw"), filepath.Join(dir, "bad.pw")
	os.WriteFile(good, []byte(secret+"\n"), 0o600)
	os.WriteFile(bad, []byte(wrong+"\n"), 0o600)
	for i, c := range shards {
		e.shardctl(0, "shard", "add", fmt.Sprintf("s%d", i), "--dsn", c.TLSDSN("postgres", "gw"), "--password-file", good)
	}
	e.shardctl(0, "keyspace", "create", "app", "--logical-shards", "16", "--shards", "s0,s1")
	e.shardctl(0, "vschema", "apply", repoPath("testdata/vschema/app.yaml"))
	e.gw = startGateway(t, e.etcd.Endpoints(), "--admin-token", "tok", "--log-level", "debug")
	// A shard whose password file is wrong (added once the gateway is
	// ready: /readyz wants every shard reachable).
	e.shardctl(0, "shard", "add", "bad", "--dsn", shards[0].TLSDSN("postgres", "gw"), "--password-file", bad)
	e.shardctl(0, "keyspace", "create", "broken", "--logical-shards", "1", "--shards", "bad")
	brokenVS := filepath.Join(dir, "broken.yaml")
	os.WriteFile(brokenVS, []byte("keyspaces:\n  broken:\n    sharded: false\n"), 0o644)
	e.shardctl(0, "vschema", "apply", brokenVS)

	c := e.gw.connect("app")
	mustQuery(t, c, "create table users (id bigint primary key, name text, email text, country text)")
	mustQuery(t, c, "insert into users (id, name) values (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')")
	if got := mustQuery(t, c, "select count(*) from users"); got[0][0] != "4" {
		t.Fatalf("through TLS shards: %q", got)
	}
	if got := mustQuery(t, c, "select ssl from pg_stat_ssl where pid = pg_backend_pid()"); got[0][0] != "t" {
		t.Fatalf("the gateway's shard connection is not TLS: %q", got)
	}
	// A shard whose password is wrong: a clear error, no secret in it.
	var err error
	eventually(t, 10*time.Second, "keyspace broken at the gateway", func() bool {
		_, err = pgconnConnect(e.gw.dsn("broken"))
		return pgCode(err) != "3D000"
	})
	if err == nil || pgCode(err) != "08006" {
		t.Fatalf("shard with a wrong password: %v", err)
	}
	var seen []string
	seen = append(seen, err.Error())
	out, errOut := e.shardctl(0, "shard", "list")
	seen = append(seen, out, errOut)
	for _, path := range []string{"/topology", "/metrics", "/readyz"} {
		req, _ := http.NewRequest("GET", "http://"+e.gw.admin+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		seen = append(seen, b.String())
	}
	seen = append(seen, e.gw.log.String())
	for _, text := range seen {
		if strings.Contains(text, secret) || strings.Contains(text, wrong) {
			t.Fatalf("a shard password leaked:\n%s", text)
		}
	}
}

func pgtestStart(t *testing.T) *pgtest.Cluster { return pgtest.Start(t, 1)[0] }

func connectOrFail(t *testing.T, dsn string) *pgconn.PgConn {
	t.Helper()
	c, err := pgconn.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// etcdDump returns every key and value under the cluster's prefix.
func (s *secureEnv) etcdDump(t *testing.T) string {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: s.etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(context.Background(), "/shardgate/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, kv := range resp.Kvs {
		fmt.Fprintf(&b, "%s = %s\n", kv.Key, kv.Value)
	}
	return b.String()
}

// TestSecurityBackendRole runs a user's statements as its backend role on
// the shards: it reads what that role may read and nothing more.
func TestSecurityBackendRole(t *testing.T) {
	s := newSecureEnv(t)
	ctx := context.Background()
	app, err := pgconn.Connect(ctx, s.dsn("app", "app-secret", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	mustQuery(t, app, "create table users (id bigint primary key, name text, email text, country text)")
	mustQuery(t, app, "insert into users (id, name) values (1, 'one'), (2, 'two')")
	for i := range s.shards {
		mustQuery(t, s.backend(i), "create role reader login; grant select on users to reader")
	}
	s.addUser("analyst", "analyst-secret", "--keyspace", "app", "--backend-role", "reader")
	var c *pgconn.PgConn
	eventually(t, 10*time.Second, "user analyst at the gateway", func() bool {
		c, err = pgconn.Connect(ctx, s.dsn("analyst", "analyst-secret", "app"))
		return err == nil
	})
	defer c.Close(ctx)
	if got := mustQuery(t, c, "select current_user, session_user"); got[0][0] != "reader" || got[0][1] != "reader" {
		t.Fatalf("backend role: %q", got)
	}
	if got := mustQuery(t, c, "select name from users where id = 2"); got[0][0] != "two" {
		t.Fatalf("read as reader: %q", got)
	}
	if _, err := query(c, "insert into users (id, name) values (3, 'three')"); pgCode(err) != "42501" {
		t.Fatalf("write as reader: %v", err)
	}
	if _, err := query(c, "reset role; insert into users (id, name) values (3, 'three')"); pgCode(err) != "42501" {
		t.Fatalf("RESET ROLE escaped the backend role: %v", err)
	}
	// The app user's own sessions still run as the shard's role.
	if got := mustQuery(t, app, "select current_user"); got[0][0] == "reader" {
		t.Fatal("the backend role leaked to another user's session")
	}
}
