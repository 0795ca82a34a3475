package pgtest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func query(t *testing.T, c *Cluster, sql string) [][][]byte {
	t.Helper()
	conn, err := pgconn.Connect(t.Context(), c.DSN("postgres"))
	if err != nil {
		t.Fatalf("connect %s: %v", c.DSN("postgres"), err)
	}
	defer conn.Close(context.Background())
	res := conn.ExecParams(t.Context(), sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("%s: %v", sql, res.Err)
	}
	return res.Rows
}

func TestStart(t *testing.T) {
	cs := Start(t, 2)
	if cs[0].Port == cs[1].Port || cs[0].Dir == cs[1].Dir {
		t.Fatalf("clusters share port or dir: %+v %+v", cs[0], cs[1])
	}
	for _, c := range cs {
		rows := query(t, c, "SELECT version()")
		if len(rows) != 1 || !strings.HasPrefix(string(rows[0][0]), "PostgreSQL ") {
			t.Fatalf("SELECT version() = %q", rows)
		}
		rows = query(t, c, "SELECT current_setting('wal_level'), current_setting('max_prepared_transactions'), current_setting('server_encoding')")
		if got := string(rows[0][0]) + " " + string(rows[0][1]) + " " + string(rows[0][2]); got != "logical 100 UTF8" {
			t.Errorf("settings = %q, want %q", got, "logical 100 UTF8")
		}
	}

	query(t, cs[0], "CREATE TABLE only_here (id int)")
	exists := "SELECT to_regclass('only_here') IS NOT NULL"
	if got := string(query(t, cs[0], exists)[0][0]); got != "t" {
		t.Errorf("table missing in the cluster that created it: %s", got)
	}
	if got := string(query(t, cs[1], exists)[0][0]); got != "f" {
		t.Errorf("table created in one cluster is visible in the other: %s", got)
	}

	c := cs[0]
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
	if err != nil {
		t.Fatalf("port still taken after Stop: %v", err)
	}
	l.Close()
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("temporary data directory %s not removed: %v", c.Dir, err)
	}
}

func TestDevClusterSurvivesRestart(t *testing.T) {
	r, err := serverUser()
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir() is not reachable by the postgres user when we are root.
	parent, err := r.mkdirTemp("pgtest-dev-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	dir := filepath.Join(parent, "data")

	c, err := StartCluster(t.Context(), Options{Dir: dir, Settings: map[string]string{"application_name": "it's dev"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	if got := string(query(t, c, "SELECT current_setting('application_name')")[0][0]); got != "it's dev" {
		t.Errorf("application_name = %q", got)
	}
	query(t, c, "CREATE TABLE kept (id int)")
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		t.Fatalf("Stop removed a given Dir: %v", err)
	}

	c2, err := StartCluster(t.Context(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Stop() })
	if got := string(query(t, c2, "SELECT to_regclass('kept') IS NOT NULL")[0][0]); got != "t" {
		t.Errorf("table lost across restart")
	}
}

func TestTail(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 3, ""},
		{"a", 3, "a"},
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 3, "a\nb\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
	} {
		if got := string(tail([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("tail(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestTLSCluster: a TLS cluster admits TCP connections only over TLS with a
// SCRAM password, its certificate verifies against CAFile for 127.0.0.1 and
// localhost, and the harness's own DSN still works.
func TestTLSCluster(t *testing.T) {
	c, err := StartCluster(t.Context(), Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	if !c.TLS() || c.CAFile() == "" {
		t.Fatalf("TLS() = %v, CAFile() = %q", c.TLS(), c.CAFile())
	}
	// The superuser's DSN goes over the unix socket.
	if got := string(query(t, c, "SELECT current_setting('ssl') || ' ' || (inet_server_addr() IS NULL)::text")[0][0]); got != "on true" {
		t.Errorf("ssl, unix socket = %q, want %q", got, "on true")
	}
	const password = "it's a s3cret pass"
	if err := c.CreateRole(t.Context(), "app", password); err != nil {
		t.Fatal(err)
	}
	if got := string(query(t, c, "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'app'")[0][0]); got != "SCRAM-SHA-256$" {
		t.Errorf("app's password is stored as %q..., want a SCRAM verifier", got)
	}

	connect := func(dsn, password string) (*pgconn.PgConn, error) {
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			t.Fatalf("ParseConfig: %v", err)
		}
		cfg.Password = password
		return pgconn.ConnectConfig(t.Context(), cfg)
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		dsn := strings.Replace(c.TLSDSN("postgres", "app"), "host=127.0.0.1", "host="+host, 1)
		conn, err := connect(dsn, password)
		if err != nil {
			t.Fatalf("verify-full to %s: %v", host, err)
		}
		res := conn.ExecParams(t.Context(), "SELECT ssl, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()", nil, nil, nil, nil).Read()
		conn.Close(context.Background())
		if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "t" || string(res.Rows[0][1]) != "app" {
			t.Errorf("pg_stat_ssl over %s: %q, %v", host, res.Rows, res.Err)
		}
	}

	port := strconv.Itoa(c.Port)
	for _, tc := range []struct {
		name, dsn, password, want string
	}{
		{"no_tls", "host=127.0.0.1 port=" + port + " user=app dbname=postgres sslmode=disable", password, "no pg_hba.conf entry"},
		{"wrong_password", c.TLSDSN("postgres", "app"), "wrong", "password authentication failed"},
		{"superuser_without_password", c.TLSDSN("postgres", "postgres"), "", "password authentication failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := connect(tc.dsn, tc.password)
			if err == nil {
				conn.Close(context.Background())
				t.Fatal("connected")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}

	fi, err := os.Stat(filepath.Join(c.Dir, tlsDir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("server.key mode = %v, want 0600", fi.Mode().Perm())
	}
	r, err := serverUser()
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != r.uid {
		t.Errorf("server.key owned by uid %d, want %d (%s)", st.Uid, r.uid, r.name)
	}
}
