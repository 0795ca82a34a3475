package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/internal/syncbuf"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freePortPair returns a port p such that p and p+1 were both free a moment
// ago: the dev cluster's second shard listens on the port after the first.
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		next, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		l.Close()
		if err == nil {
			next.Close()
			return p
		}
	}
	t.Fatal("no two adjacent free ports")
	return 0
}

// TestMakeRun starts the cluster `make run` starts, with no setup, from a
// checkout in a private folder (mode 0700 like a mktemp -d folder, and owned
// by root when the test runs as root, so the OS user postgres cannot enter
// it). It reads the psql line it prints and uses it as a new user would,
// checks that the sample user is no superuser on the shards, stops the
// cluster the way Ctrl-C does, starts it again over the same data, and
// finally removes everything the way `make clean` does.
func TestMakeRun(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "github.com/shardgate/shardgate/cmd/shardgate", "github.com/shardgate/shardgate/cmd/shardctl")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// Like mktemp -d (t.TempDir's folders are 0755).
	home, err := os.MkdirTemp("", "devcluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	if fi, err := os.Stat(home); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the checkout's folder should be private (0700): %v, %v", fi.Mode(), err)
	}
	runDir := filepath.Join(home, "checkout", ".run")
	c := cluster{repo: filepath.Join("..", ".."), runDir: runDir, bin: bin,
		listen: "127.0.0.1:" + strconv.Itoa(freePort(t)), admin: "127.0.0.1:" + strconv.Itoa(freePort(t)),
		etcd: "127.0.0.1:" + strconv.Itoa(freePort(t)), firstPort: freePortPair(t), out: &syncbuf.Buffer{}}
	t.Cleanup(func() {
		if err := c.clean(); err != nil {
			t.Errorf("clean: %v", err)
		}
	})

	first := startDevCluster(t, &c)
	dataDir := checkDataDir(t, runDir, first.out)
	if !strings.Contains(first.out.String(), "created the sample tables") {
		t.Errorf("the first run did not create the sample tables:\n%s", first.out)
	}
	if got := psql(t, first.dsn, "select count(*) from users", "select name from users where id = 42"); got != "100\nuser 42\n" {
		t.Errorf("sample queries: %q", got)
	}
	checkNotSuperuser(t, first.dsn)
	if got := strings.Split(strings.TrimSpace(psql(t, first.console, "show shards")), "\n"); len(got) != 2 ||
		!strings.HasPrefix(got[0], "s0|") || !strings.HasPrefix(got[1], "s1|") {
		t.Errorf("the admin console's SHOW SHARDS: %q", got)
	}
	// Users 1 and 42 live on different shards, so this commit is a
	// two-phase commit by the shards' role.
	psql(t, first.dsn, "begin", "update users set name = 'renamed 1' where id = 1", "update users set name = 'renamed 42' where id = 42", "commit")
	for i, want := range []string{"1", "42"} {
		if got := queryShard(t, c.firstPort+i, "select id from users where id in (1, 42)"); got != want {
			t.Errorf("shard s%d holds user %s, want %s", i, got, want)
		}
		if got := queryShard(t, c.firstPort+i, "select tableowner from pg_tables where tablename = 'users'"); got != shardRole {
			t.Errorf("shard s%d: users is owned by %q, want %q", i, got, shardRole)
		}
	}
	if err := c.clean(); err == nil {
		t.Error("clean removed the data of a running cluster")
	}
	stopDevCluster(t, first)

	second := startDevCluster(t, &c)
	if again := checkDataDir(t, runDir, second.out); again != dataDir {
		t.Errorf("the second run keeps the shards' data in %s, the first in %s", again, dataDir)
	}
	if strings.Contains(second.out.String(), "created the sample tables") {
		t.Errorf("the second run created the sample tables again:\n%s", second.out)
	}
	if got := psql(t, second.dsn, "select count(*) from users", "select name from users where id = 1", "select name from users where id = 42"); got != "100\nrenamed 1\nrenamed 42\n" {
		t.Errorf("the second run does not find the first run's data: %q", got)
	}
	stopDevCluster(t, second)

	if err := c.clean(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{runDir, dataDir} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after clean: %v", d, err)
		}
	}
}

// devRun is one run of a dev cluster in a test.
type devRun struct {
	dsn     string          // from the printed psql line
	console string          // from the printed psql line of the admin console
	out     *syncbuf.Buffer // what the run printed
	stop    func() error    // Ctrl-C; later calls return the first's result
}

// startDevCluster runs c until it prints its psql line. The run is stopped
// when the test ends, before the cleanups registered earlier (which remove
// its data) run.
func startDevCluster(t *testing.T, c *cluster) *devRun {
	t.Helper()
	out := &syncbuf.Buffer{}
	c.out = out
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.run(ctx) }()
	r := &devRun{out: out, stop: sync.OnceValue(func() error {
		cancel()
		return <-done
	})}
	t.Cleanup(func() { r.stop() })
	deadline := time.After(2 * time.Minute)
	for !strings.Contains(out.String(), "Press Ctrl-C") {
		select {
		case err := <-done:
			done <- err // for r.stop
			t.Fatalf("devcluster ended: %v\n%s", err, out)
		case <-deadline:
			t.Fatalf("no psql line after 2 minutes:\n%s", out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	m := regexp.MustCompile(`psql "([^"]+)"`).FindAllStringSubmatch(out.String(), -1)
	if len(m) != 2 {
		t.Fatalf("want two psql lines, the sample keyspace's and the admin console's:\n%s", out)
	}
	for _, line := range m {
		if !strings.Contains(line[1], "sslmode=require") {
			t.Errorf("the printed line does not ask for TLS: %s", line[1])
		}
	}
	r.dsn, r.console = m[0][1], m[1][1]
	return r
}

// stopDevCluster stops r the way Ctrl-C does and checks that it ended well.
func stopDevCluster(t *testing.T, r *devRun) {
	t.Helper()
	if err := r.stop(); err != nil {
		t.Fatalf("stopping: %v\n%s", err, r.out)
	}
}

// checkDataDir checks that the output says where the shards' data lives and
// that the servers' OS user owns it alone, and returns it.
func checkDataDir(t *testing.T, runDir string, out *syncbuf.Buffer) string {
	t.Helper()
	dataDir, err := shardsDir(runDir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "data in "+filepath.Join(dataDir, "s0")) {
		t.Errorf("the output does not say that shard s0's data is in %s:\n%s", filepath.Join(dataDir, "s0"), out)
	}
	name, other, err := pgtest.ServerUser()
	if err != nil {
		t.Fatal(err)
	}
	if !other {
		if dataDir != runDir {
			t.Errorf("the shards' data is in %s, want the run directory %s", dataDir, runDir)
		}
		return dataDir
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; strconv.Itoa(int(uid)) != u.Uid || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: mode %v, owner uid %d; want a directory of mode 0700 owned by %s (uid %s)", dataDir, fi.Mode(), uid, name, u.Uid)
	}
	return dataDir
}

// checkNotSuperuser checks that the sample user reaches the shards as a
// role that is no superuser and may not read server files.
func checkNotSuperuser(t *testing.T, dsn string) {
	t.Helper()
	if got := psql(t, dsn, "select current_user", "select rolsuper from pg_roles where rolname = current_user"); got != shardRole+"\nf\n" {
		t.Errorf("current_user and its rolsuper: %q, want %s and f", got, shardRole)
	}
	ctx := t.Context()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "select pg_read_file('/etc/hostname')").ReadAll()
	if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("pg_read_file through the sample user: %v, want SQLSTATE 42501", err)
	}
}

// psql runs psql with the printed connection string and the commands given,
// stopping at the first error, and returns its unaligned output.
func psql(t *testing.T, dsn string, commands ...string) string {
	t.Helper()
	bin, err := pgtest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-X", "-At", "-v", "ON_ERROR_STOP=1", dsn}
	for _, c := range commands {
		args = append(args, "-c", c)
	}
	out, err := exec.Command(filepath.Join(bin, "psql"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", commands, err, out)
	}
	return string(out)
}

// queryShard runs sql as the superuser in the sample database of the shard
// on port, and returns the first column of its rows, one a line.
func queryShard(t *testing.T, port int, sql string) string {
	t.Helper()
	ctx := t.Context()
	conn, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", port, shardDB))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	res := conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("%s: %v", sql, res.Err)
	}
	var rows []string
	for _, r := range res.Rows {
		rows = append(rows, string(r[0]))
	}
	return strings.Join(rows, "\n")
}
