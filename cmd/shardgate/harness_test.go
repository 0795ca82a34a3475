package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/internal/syncbuf"
	"github.com/shardgate/shardgate/topology"
)

// binDir holds the shardgate and shardctl binaries built once for all tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shardgate-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/shardgate/shardgate/cmd/shardgate", "github.com/shardgate/shardgate/cmd/shardctl")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one sharded cluster for a test: two Postgres shards, an etcd the
// test can stop, and a shardgate process with the keyspace app.
type env struct {
	t       *testing.T
	shards  []*pgtest.Cluster
	etcd    *topology.Embedded
	etcdDir string
	gw      *gateway
}

// newEnv starts everything and loads keyspace app (testdata/vschema/app.yaml)
// over shards s0 and s1 with 256 logical shards.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOf(t, 2, "app", "testdata/vschema/app.yaml")
}

// newEnvOf starts n shards s0... and loads keyspace ks over them with 256
// logical shards and the vschema file of the repository's path vschemaFile.
func newEnvOf(t *testing.T, n int, ks, vschemaFile string) *env {
	t.Helper()
	e := &env{t: t, shards: pgtest.Start(t, n), etcdDir: t.TempDir()}
	e.startEtcd("")
	var names []string
	for i, c := range e.shards {
		names = append(names, fmt.Sprintf("s%d", i))
		e.shardctl(0, "shard", "add", names[i], "--dsn", c.DSN("postgres"))
	}
	e.shardctl(0, "keyspace", "create", ks, "--logical-shards", "256", "--shards", strings.Join(names, ","))
	e.shardctl(0, "vschema", "apply", repoPath(vschemaFile))
	e.gw = startGateway(t, e.etcd.Endpoints())
	return e
}

func (e *env) startEtcd(addr string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	et, err := topology.StartEmbedded(ctx, e.etcdDir, addr, zap.NewNop())
	if err != nil {
		e.t.Fatal(err)
	}
	e.etcd = et
	e.t.Cleanup(et.Close)
}

// shardctl runs the CLI against the env's etcd and checks its exit code.
func (e *env) shardctl(wantCode int, args ...string) (stdout, stderr string) {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "shardctl"), append([]string{"--etcd", strings.Join(e.etcd.Endpoints(), ",")}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	if code != wantCode {
		e.t.Fatalf("shardctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// backend connects straight to shard i, bypassing the gateway.
func (e *env) backend(i int) *pgconn.PgConn {
	e.t.Helper()
	c, err := pgconn.Connect(context.Background(), e.shards[i].DSN("postgres"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// gateway is a running shardgate process.
type gateway struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	admin  string
	log    *syncbuf.Buffer
	exited chan error
}

// startGateway runs shardgate against etcd and waits until /readyz says
// ready.
func startGateway(t *testing.T, etcd []string, extraArgs ...string) *gateway {
	t.Helper()
	return startGatewayEnv(t, etcd, nil, extraArgs...)
}

// startGatewayEnv is startGateway with extra environment variables. The
// free ports it picks may be taken by another test's process before the
// gateway binds them: then it starts again on others.
func startGatewayEnv(t *testing.T, etcd []string, env []string, extraArgs ...string) *gateway {
	t.Helper()
	for attempt := 1; ; attempt++ {
		g, err := launchGateway(t, etcd, env, extraArgs...)
		if err == nil {
			return g
		}
		if attempt == 3 || !strings.Contains(g.log.String(), "address already in use") {
			t.Fatalf("%v\n%s", err, g.log.String())
		}
	}
}

// launchGateway starts a gateway on free ports and waits until it is
// ready, or it exits.
func launchGateway(t *testing.T, etcd []string, env []string, extraArgs ...string) (*gateway, error) {
	t.Helper()
	g := &gateway{t: t, addr: freeAddr(t), admin: freeAddr(t), log: &syncbuf.Buffer{}, exited: make(chan error, 1)}
	// Tests connect without passwords unless they ask for SCRAM.
	args := append([]string{"--etcd", strings.Join(etcd, ","), "--listen", g.addr, "--listen-admin", g.admin, "--shutdown-timeout", "10s", "--auth", "trust"}, extraArgs...)
	g.cmd = exec.Command(filepath.Join(binDir, "shardgate"), args...)
	g.cmd.Env = append(os.Environ(), env...)
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.exited <- g.cmd.Wait() }()
	t.Cleanup(func() {
		if g.cmd.ProcessState == nil {
			g.cmd.Process.Kill()
			<-g.exited
		}
		if t.Failed() {
			t.Logf("shardgate log:\n%s", g.log.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-g.exited:
			g.exited <- err
			return g, fmt.Errorf("shardgate exited at start: %v", err)
		default:
		}
		if resp, err := http.Get("http://" + g.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g, nil
			}
		}
		if time.Now().After(deadline) {
			return g, errors.New("shardgate not ready after 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dsn returns a libpq connection string for keyspace ks through the gateway.
func (g *gateway) dsn(ks string) string {
	host, port, _ := net.SplitHostPort(g.addr)
	return fmt.Sprintf("host=%s port=%s dbname=%s user=app sslmode=disable", host, port, ks)
}

// connect opens a client session through the gateway.
func (g *gateway) connect(ks string) *pgconn.PgConn {
	g.t.Helper()
	c, err := pgconn.Connect(context.Background(), g.dsn(ks))
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// stop sends SIGTERM and returns the exit error.
func (g *gateway) stop() error {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-g.exited:
		return err
	case <-time.After(30 * time.Second):
		g.t.Fatal("shardgate did not exit within 30s of SIGTERM")
		return nil
	}
}

// psql runs psql against the gateway with args and returns its output and
// exit code.
func psql(t *testing.T, dsn string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin, err := pgtest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "psql"), append([]string{"-X", "-At", "--no-psqlrc", dsn}, args...)...)
	cmd.Env = append(os.Environ(), "PGOPTIONS=", "PGCLIENTENCODING=UTF8")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errb.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

// query runs sql (simple protocol) and returns the rows of its last result
// as strings ("NULL" for NULL), or the error.
func query(c *pgconn.PgConn, sql string) ([][]string, error) {
	results, err := c.Exec(context.Background(), sql).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(results) == 0 {
		return nil, nil
	}
	var rows [][]string
	for _, r := range results[len(results)-1].Rows {
		row := make([]string, len(r))
		for i, v := range r {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = string(v)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func mustQuery(t *testing.T, c *pgconn.PgConn, sql string) [][]string {
	t.Helper()
	rows, err := query(c, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return rows
}

// pgCode returns the SQLSTATE of a Postgres error, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// repoPath returns a path relative to the repository root.
func repoPath(rel string) string { return filepath.Join("..", "..", rel) }

func itoa(n int) string { return strconv.Itoa(n) }

// pgconnConnect opens a session and closes it at once.
func pgconnConnect(dsn string) (*pgconn.PgConn, error) {
	c, err := pgconn.Connect(context.Background(), dsn)
	if err == nil {
		c.Close(context.Background())
	}
	return c, err
}

// execOutput runs a command and returns its combined output.
func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
