package driversuite

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/internal/syncbuf"
	"github.com/shardgate/shardgate/topology"
)

// binDir holds the shardgate and shardctl binaries, built once.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "driversuite-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/shardgate/shardgate/cmd/shardgate", "github.com/shardgate/shardgate/cmd/shardctl")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// suite is one driver's test suite and what it needs from a server.
type suite struct {
	name   string // key of Exceptions
	module string
	db     string // database made for it; also the keyspace's name
	user   string // superuser it connects as (directly, through the gateway, and the gateway to the shard)
	// setup runs as superuser in the suite's database before any run.
	setup []string
	// env returns the environment variables that point the suite at host:port.
	env func(host, port string) []string
	// home holds the files of the suite's home directory, by name. Each run
	// gets a new one, so the suite finds no ~/.pgpass or
	// ~/.pg_service.conf of the machine's.
	home map[string]string
	// pkgs are the packages to test.
	pkgs []string
	// skip names top-level tests that run in no mode, with the reason
	// they cannot run in this harness at all.
	skip map[string]string
	// txSkip names top-level tests not run through transaction pooling
	// because there they break other tests running at the same time; each
	// also has an entry in Exceptions.
	txSkip map[string]string
}

var suites = []suite{
	{
		name:   "pgx",
		module: "github.com/jackc/pgx/v5",
		db:     "pgx_test",
		user:   "postgres",
		// As in pgx's testsetup/postgresql_setup.sql, except the roles for
		// TLS and password logins: those tests need a server configured
		// for them and skip without their PGX_TEST_*_CONN_STRING.
		setup: []string{
			"create extension hstore",
			"create extension ltree",
			"create domain uint64 as numeric(20,0)",
			// pgtype's aclitem test needs this role to exist.
			`create user " tricky, ' } "" \ test user " superuser password 'secret'`,
		},
		env: func(host, port string) []string {
			dsn := fmt.Sprintf("host=%s port=%s user=postgres password=%s dbname=pgx_test sslmode=disable", host, port, password)
			return []string{"PGX_TEST_DATABASE=" + dsn, "PGX_TEST_TCP_CONN_STRING=" + dsn}
		},
		pkgs: []string{"./..."},
	},
	{
		name:   "pq",
		module: "github.com/lib/pq",
		db:     "pqgo",
		user:   "pqgo",
		// lib/pq's Docker setup makes pqgo the superuser that owns pqgo. The
		// roles for TLS and password logins are left out: their tests need a
		// server with TLS and a matching pg_hba.conf, and the gateway
		// authenticates clients itself.
		//
		// The environment holds the values pqtest.DSN would default to
		// (its config tests expect them), set here because a few tests
		// connect before it runs. The password is in ~/.pgpass, since those
		// tests expect none in the environment; its line names only the
		// suite's database and user, which TestPgpass does not use.
		env: func(host, port string) []string {
			return []string{"PGHOST=localhost", "PGPORT=" + port, "PGUSER=pqgo", "PGDATABASE=pqgo", "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=20"}
		},
		home: map[string]string{".pgpass": "*:*:pqgo:pqgo:" + password + "\n"},
		pkgs: []string{"./..."},
		// These examples connect to servers written into them and call
		// log.Fatal when those do not answer, which ends the package's
		// test binary.
		skip: map[string]string{
			"Example_openConfig":       "connects to localhost:5432",
			"ExampleNewConnector":      "connects to the host postgres (lib/pq's test setup adds it to /etc/hosts)",
			"ExampleRegisterTLSConfig": "connects to the host postgres over TLS with lib/pq's test certificates",
		},
		txSkip: map[string]string{
			"TestPing": "terminates the backend pg_backend_pid() named, which under transaction pooling is a pooled connection that parallel tests are using",
		},
	},
}

// password is every suite user's password at the gateways, which check it
// with SCRAM as in production. The server trusts them; a client sends the
// password only when asked.
const password = "secret"

// modes are the three ways a suite reaches the server, in the order they run.
var modes = []string{"direct", "session", "transaction"}

// TestDriverSuites runs the test suites of pgx and lib/pq directly against
// a Postgres server, then through a shardgate with session pooling and one
// with transaction pooling in front of the same server and database, and
// fails for every test that passes directly but not through a gateway,
// except those Exceptions admits. It logs each run's counts, its slowest
// tests and every difference with the first lines of its output; with
// -artifacts the go test -json events of each run are kept.
func TestDriverSuites(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	goEnv, err := homeGoEnv(ctx, goBin)
	if err != nil {
		t.Fatal(err)
	}

	// The sources come from the module proxy while the servers start.
	srcRoot := t.TempDir()
	srcErrs := make([]error, len(suites))
	var fetching sync.WaitGroup
	for i, s := range suites {
		fetching.Go(func() {
			version, err := requiredVersion(ctx, goBin, s.module)
			if err == nil {
				err = Fetch(ctx, goBin, s.module, version, filepath.Join(srcRoot, s.name))
			}
			srcErrs[i] = err
			t.Logf("%s: %s@%s", s.name, s.module, version)
		})
	}
	e := startEnv(t, ctx)
	fetching.Wait()
	if err := errors.Join(srcErrs...); err != nil {
		t.Fatal(err)
	}

	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			for _, name := range slices.Sorted(maps.Keys(s.skip)) {
				t.Logf("%s: not run: %s: %s", s.name, name, s.skip[name])
			}
			for _, name := range slices.Sorted(maps.Keys(s.txSkip)) {
				t.Logf("%s: not run through transaction pooling: %s: %s", s.name, name, s.txSkip[name])
			}
			dir := filepath.Join(srcRoot, s.name)
			runs := map[string]*Run{}
			for _, mode := range modes {
				runs[mode] = runSuite(t, ctx, goBin, goEnv, dir, s, mode, e.addr(mode))
			}
			for _, mode := range modes[1:] {
				rerunFailures(t, ctx, goBin, goEnv, dir, s, mode, e.addr(mode), runs["direct"], runs[mode])
				report(t, s.name, mode, Compare(runs["direct"], runs[mode], mode, Exceptions[s.name]))
			}
		})
	}
	for _, mode := range modes[1:] {
		checkMemoryReturns(t, mode, e.gateways[mode])
	}
}

// report logs the tests that pass directly but not through the gateway in
// mode, and fails the test for those no exception admits.
func report(t *testing.T, suite, mode string, c *Comparison) {
	t.Helper()
	var failed, excepted strings.Builder
	for _, d := range c.Diffs {
		b := &failed
		if d.Exception != "" {
			b = &excepted
		}
		fmt.Fprintf(b, "\n  %s: %s", d.Gateway.Name, d.Gateway.Status)
		if d.Exception != "" {
			fmt.Fprintf(b, "\n      exception: %s", d.Exception)
		}
		for _, l := range firstLines(summary(d.Gateway.Output), 4) {
			fmt.Fprintf(b, "\n      %s", strings.TrimSpace(l))
		}
	}
	if excepted.Len() > 0 {
		t.Logf("%s, %s pooling: passing directly, not through the gateway, admitted by Exceptions:%s", suite, mode, excepted.String())
	}
	for _, name := range c.Unused {
		t.Logf("%s, %s pooling: the test of the exception for %s passed through the gateway this time; if it keeps passing, drop the exception", suite, mode, name)
	}
	if n := len(c.Failures()); n > 0 {
		t.Errorf("%s, %s pooling: %d tests pass directly but not through the gateway:%s", suite, mode, n, failed.String())
	}
}

// runSuite runs suite s in dir against addr (host:port) and logs its counts.
func runSuite(t *testing.T, ctx context.Context, goBin string, goEnv []string, dir string, s suite, mode, addr string) *Run {
	t.Helper()
	env := runEnv(t, goEnv, s, addr)
	args := []string{"-timeout", "8m"}
	skips := maps.Clone(s.skip)
	if mode == "transaction" {
		maps.Copy(skips, s.txSkip)
	}
	if skip := skipPattern(skips); skip != "" {
		args = append(args, "-skip", skip)
	}
	// The events of each run are kept with -artifacts.
	raw, err := os.Create(filepath.Join(t.ArtifactDir(), s.name+"-"+mode+".json"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	start := time.Now()
	run, stderr, err := GoTest(ctx, goBin, dir, env, raw, append(args, s.pkgs...)...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", s.name, mode, err, stderr)
	}
	// A test that panics (lib/pq's listener tests do when a connection
	// takes over 100 ms, which a loaded machine sometimes makes them)
	// ends its package's binary, and the tests after it never run. Such a
	// package runs once more; a -timeout is a hang and does not.
	for _, pkg := range run.Crashed() {
		if run.Packages[pkg].TimedOut {
			continue
		}
		t.Logf("%s %s: the test binary of %s crashed; running the package again:\n    %s", s.name, mode, pkg,
			strings.Join(firstLines(crashLines(run, pkg), 3), "\n    "))
		again, stderr, err := GoTest(ctx, goBin, dir, env, raw, append(args, pkg)...)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", s.name, mode, err, stderr)
		}
		run.Replace(pkg, again)
	}
	pass, fail, skip := run.Counts()
	t.Logf("%s %-11s: %4d passed, %3d failed, %3d skipped (%s)", s.name, mode, pass, fail, skip, time.Since(start).Round(time.Second))
	for _, p := range slices.Sorted(maps.Keys(run.Packages)) {
		res := run.Packages[p]
		switch res.Status {
		case Pass:
			t.Logf("  %-40s %6.1fs", p, res.Elapsed)
		case Fail, Missing:
			// The output of a package whose tests failed is only "FAIL"; a
			// build error or a crash outside a test says more.
			out := slices.DeleteFunc(slices.Clone(res.Output), func(l string) bool {
				return l == "FAIL" || strings.HasPrefix(l, "FAIL\t") || strings.TrimSpace(l) == ""
			})
			t.Logf("  %-40s %6.1fs %s\n    %s", p, res.Elapsed, res.Status, strings.Join(firstLines(out, 8), "\n    "))
		}
	}
	slowest := slices.SortedFunc(maps.Values(run.Results), func(a, b *Result) int { return cmp.Compare(b.Elapsed, a.Elapsed) })
	for _, res := range slowest[:min(5, len(slowest))] {
		t.Logf("  slow: %6.1fs %s %s", res.Elapsed, res.Name, res.Status)
	}
	return run
}

// runEnv is the environment of one run of suite s against addr, with a
// home directory of its own.
func runEnv(t *testing.T, goEnv []string, s suite, addr string) []string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	home := t.TempDir()
	for name, content := range s.home {
		if err := os.WriteFile(filepath.Join(home, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return append(suiteEnv(goEnv, home), s.env(host, port)...)
}

// rerunFailures runs once more, on their own, the top-level tests that
// passed directly but not through the gateway with no exception, and takes
// their second outcome. Some of the suites' tests are timing-sensitive
// (pgx's cancel stress test allows a second for an answer) and a machine
// busy with other packages' tests can miss that once; a test that fails
// again is a real difference.
func rerunFailures(t *testing.T, ctx context.Context, goBin string, goEnv []string, dir string, s suite, mode, addr string, direct, run *Run) {
	t.Helper()
	byPkg := map[string]map[string]string{} // top-level test names by package
	for _, d := range Compare(direct, run, mode, Exceptions[s.name]).Failures() {
		pkg := d.Direct.Package
		top, _, _ := strings.Cut(strings.TrimPrefix(d.Direct.Name, pkg+"."), "/")
		if byPkg[pkg] == nil {
			byPkg[pkg] = map[string]string{}
		}
		byPkg[pkg][top] = ""
	}
	for _, pkg := range slices.Sorted(maps.Keys(byPkg)) {
		tests := slices.Sorted(maps.Keys(byPkg[pkg]))
		again, stderr, err := GoTest(ctx, goBin, dir, runEnv(t, goEnv, s, addr), io.Discard, "-timeout", "8m", "-run", skipPattern(byPkg[pkg]), pkg)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", s.name, mode, err, stderr)
		}
		for name, res := range again.Results {
			run.Results[name] = res
		}
		t.Logf("%s %s: ran again on their own: %s %s", s.name, mode, pkg, strings.Join(tests, ", "))
	}
}

// skipPattern is a -skip (or -run) pattern for the top-level tests named
// in skip, or "".
func skipPattern(skip map[string]string) string {
	if len(skip) == 0 {
		return ""
	}
	var names []string
	for _, name := range slices.Sorted(maps.Keys(skip)) {
		names = append(names, regexp.QuoteMeta(name))
	}
	return "^(" + strings.Join(names, "|") + ")$"
}

// env is the server and the gateways the suites run against.
type env struct {
	pg       *pgtest.Cluster
	gateways map[string]*gateway // by pooling mode
}

// addr is where a suite connects in mode.
func (e *env) addr(mode string) string {
	if g := e.gateways[mode]; g != nil {
		return g.addr
	}
	return net.JoinHostPort(e.pg.Host, strconv.Itoa(e.pg.Port))
}

// startEnv starts a Postgres server with each suite's database, an etcd,
// and a gateway for each pooling mode.
func startEnv(t *testing.T, ctx context.Context) *env {
	t.Helper()
	pg, err := pgtest.StartCluster(ctx, pgtest.Options{Settings: map[string]string{
		// The suites run tests in parallel, and two gateways keep pools.
		"max_connections": "400",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Errorf("stopping postgres: %v", err)
		}
	})
	setupServer(t, ctx, pg)
	etcd, err := topology.StartEmbedded(ctx, t.TempDir(), "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcd.Close)
	e := &env{pg: pg, gateways: map[string]*gateway{}}
	for _, mode := range modes[1:] {
		e.gateways[mode] = startGateway(t, ctx, etcd.Endpoints(), pg, mode)
	}
	return e
}

// requiredVersion returns the version of module that this module's go.mod
// requires.
func requiredVersion(ctx context.Context, goBin, module string) (string, error) {
	out, err := exec.CommandContext(ctx, goBin, "list", "-m", "-f", "{{.Version}}", module).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// suiteEnv is the environment for `go test` of a suite: ours without
// PostgreSQL's variables, outside any workspace, with home as HOME and
// goEnv (the go command's settings that default to places under HOME).
func suiteEnv(goEnv []string, home string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "PQ") || strings.HasPrefix(kv, "HOME=")
	})
	env = append(env, goEnv...)
	return append(env, "HOME="+home, "GOWORK=off", "GOTOOLCHAIN=local")
}

// homeGoEnv returns the go command's settings whose defaults lie under
// HOME, as NAME=value, so that a suite run with another HOME shares our
// build and module caches and configuration.
func homeGoEnv(ctx context.Context, goBin string) ([]string, error) {
	names := []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOENV"}
	out, err := exec.CommandContext(ctx, goBin, append([]string{"env"}, names...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	values := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(values) != len(names) {
		return nil, fmt.Errorf("go env %s: %q", strings.Join(names, " "), out)
	}
	env := make([]string, len(names))
	for i, name := range names {
		env[i] = name + "=" + values[i]
	}
	return env, nil
}

// setupServer makes each suite's database and what the suite expects in it.
func setupServer(t *testing.T, ctx context.Context, pg *pgtest.Cluster) {
	t.Helper()
	run := func(db string, stmts ...string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, pg.DSN(db))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		for _, stmt := range stmts {
			if _, err := conn.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %s: %v", db, stmt, err)
			}
		}
	}
	for _, s := range suites {
		if s.user != "postgres" {
			run("postgres", "create role "+pgx.Identifier{s.user}.Sanitize()+" superuser login")
		}
		run("postgres", "create database "+pgx.Identifier{s.db}.Sanitize()+" owner "+pgx.Identifier{s.user}.Sanitize())
		run(s.db, s.setup...)
	}
}

// gateway is a running shardgate process.
type gateway struct {
	addr, admin string
	log         *syncbuf.Buffer
	pid         int
	idleRSS     int64 // bytes, once it took its first sessions
}

// startGateway configures the cluster named after mode in etcd (one shard
// per suite, pointing at its database, and an unsharded keyspace named like
// the database with that pooling mode), starts a shardgate for it and waits
// until every keyspace takes connections.
func startGateway(t *testing.T, ctx context.Context, etcd []string, pg *pgtest.Cluster, mode string) *gateway {
	t.Helper()
	cluster := mode
	vschema := "keyspaces:\n"
	for _, s := range suites {
		dsn := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", s.user, pg.Host, pg.Port, s.db)
		shardctl(t, etcd, cluster, "shard", "add", s.name, "--dsn", dsn)
		shardctl(t, etcd, cluster, "keyspace", "create", s.db, "--logical-shards", "1", "--shards", s.name)
		vschema += fmt.Sprintf("  %s:\n    sharded: false\n    pooling: %s\n", s.db, mode)
	}
	vsFile := filepath.Join(t.TempDir(), "vschema.yaml")
	if err := os.WriteFile(vsFile, []byte(vschema), 0o644); err != nil {
		t.Fatal(err)
	}
	shardctl(t, etcd, cluster, "vschema", "apply", vsFile)
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range suites {
		shardctl(t, etcd, cluster, "user", "add", s.user, "--keyspace", s.db, "--password-file", pwFile)
	}

	g := &gateway{addr: freeAddr(t), admin: freeAddr(t), log: &syncbuf.Buffer{}}
	cmd := exec.Command(filepath.Join(binDir, "shardgate"),
		"--etcd", strings.Join(etcd, ","), "--cluster", cluster,
		"--listen", g.addr, "--listen-admin", g.admin,
		// As many backend connections as the suites open at once directly.
		"--pool-max-conns", "150",
		// Closed soon after the suites, so that the memory check finds the
		// gateway as idle as it was at the start, not holding 150 pooled
		// connections for reuse.
		"--pool-idle-timeout", "10s",
		"--log-level", "warn")
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = g.log, g.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g.pid = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("shardgate (%s pooling) log:\n%s", mode, tailLines(g.log.String(), 100))
		}
	})
	deadline := time.Now().Add(time.Minute)
	for _, s := range suites {
		dsn := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", s.user, password, g.addr, s.db)
		for {
			select {
			case err := <-exited:
				exited <- err
				t.Fatalf("shardgate exited at start: %v\n%s", err, g.log.String())
			default:
			}
			if ready(ctx, g.admin, dsn) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("shardgate (%s pooling) not ready for %s within a minute\n%s", mode, s.db, g.log.String())
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	rss, err := processRSS(g.pid)
	if err != nil {
		t.Fatal(err)
	}
	g.idleRSS = rss
	return g
}

// processStatus is what the kernel says of the process's memory and threads.
func processStatus(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	var out strings.Builder
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "Rss") || strings.HasPrefix(line, "Threads") || strings.HasPrefix(line, "VmHWM") {
			out.WriteString(line)
		}
	}
	return out.String()
}

// memStats is what the gateway's heap profile says of its memory (the
// runtime.MemStats lines), to tell the Go heap from the rest.
func memStats(admin string) string {
	resp, err := http.Get("http://" + admin + "/debug/pprof/heap?debug=1")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_, stats, _ := strings.Cut(string(b), "# runtime.MemStats")
	return "runtime.MemStats" + stats
}

// processRSS is the resident memory of process pid, in bytes.
func processRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// checkMemoryReturns waits until the gateway, its clients gone and its
// idle backend connections closed (the pool looks for those every minute),
// holds at most twice the memory it held idle, and fails the test if it
// keeps more for three minutes.
func checkMemoryReturns(t *testing.T, mode string, g *gateway) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		rss, err := processRSS(g.pid)
		if err != nil {
			t.Fatal(err)
		}
		if rss <= 2*g.idleRSS {
			t.Logf("shardgate (%s pooling): %d MiB resident idle, %d MiB after the suites", mode, g.idleRSS>>20, rss>>20)
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("shardgate (%s pooling) holds %d MiB three minutes after the suites, more than twice its %d MiB idle\n%s\n%s", mode, rss>>20, g.idleRSS>>20, processStatus(g.pid), memStats(g.admin))
			return
		}
		time.Sleep(500 * time.Millisecond) // polling for the gateway to give memory back
	}
}

// ready reports whether the gateway says it is ready and takes a session for
// dsn.
func ready(ctx context.Context, admin, dsn string) bool {
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return false
	}
	defer c.Close(ctx)
	// A statement in each protocol, as an idle gateway in service has run.
	if _, err := c.Exec(ctx, "select 1").ReadAll(); err != nil {
		return false
	}
	return c.ExecParams(ctx, "select $1::int", [][]byte{[]byte("1")}, nil, nil, nil).Read().Err == nil
}

// shardctl runs the CLI against etcd and cluster and fails the test when it
// fails.
func shardctl(t *testing.T, etcd []string, cluster string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "shardctl"),
		append([]string{"--etcd", strings.Join(etcd, ","), "--cluster", cluster}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("shardctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		// lib/pq's tests take these ports for pgbouncer, pgpool and
		// CockroachDB and skip tests there.
		if _, port, _ := net.SplitHostPort(addr); port != "6432" && port != "7432" && port != "26257" {
			return addr
		}
	}
}

// crashLines returns the panic lines of package pkg's tests in run.
func crashLines(run *Run, pkg string) []string {
	var lines []string
	for _, res := range append(slices.Collect(maps.Values(run.Results)), run.Packages[pkg]) {
		if res.Package != pkg {
			continue
		}
		for _, l := range res.Output {
			if strings.HasPrefix(l, "panic: ") {
				lines = append(lines, res.Name+": "+l)
			}
		}
	}
	return lines
}

// summary drops the stack of testify's failure messages from a test's output.
func summary(output []string) []string {
	var lines []string
	for _, l := range output {
		f := strings.TrimSpace(l)
		if strings.HasPrefix(f, "Error Trace:") || strings.HasPrefix(f, "/") || strings.HasPrefix(f, "Test:") || f == "" {
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

func firstLines(lines []string, n int) []string { return lines[:min(n, len(lines))] }

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
