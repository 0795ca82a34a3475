package pgtest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
