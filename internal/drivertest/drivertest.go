// Package drivertest runs one client scenario, unmodified, through every real
// PostgreSQL client the gateway must support: psql, pgx, lib/pq,
// node-postgres, psycopg2 and the PostgreSQL JDBC driver.
//
// The scenario (schema, prepared inserts, keyed and scatter reads, rollback, a
// multi-shard commit, savepoints, SET/SHOW, cancel, COPY) is written once per
// client: Go functions in this package for pgx and lib/pq, and programs under
// testdata/drivers/ for the others. Every step prints "ok <step>" and the last
// line is "ok all"; a failure exits non-zero (or returns an error) naming the
// step. The programs take their connection from the environment (PGHOST,
// PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE), so the same programs run
// against a plain Postgres and against the gateway.
//
// The Ensure functions make a client available, installing what is missing
// with apt-get (as root) or npm, once per process. A client that cannot be
// made available is an error, never a reason to skip.
package drivertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Client names one real client of the scenario.
type Client string

// The clients whose scenario Run can run.
const (
	Psql     Client = "psql"     // psql with testdata/drivers/psql/scenario.sql
	Pgx      Client = "pgx"      // pgx v5, in process (RunPgx)
	LibPQ    Client = "libpq"    // lib/pq through database/sql, in process (RunLibPQ)
	Node     Client = "node"     // node-postgres with testdata/drivers/node/scenario.js
	Psycopg2 Client = "psycopg2" // psycopg2 with testdata/drivers/python/scenario.py
	JDBC     Client = "jdbc"     // pgJDBC with testdata/drivers/java/Scenario.java
)

// Clients lists every client, in the order tests run them.
var Clients = []Client{Psql, Pgx, LibPQ, Node, Psycopg2, JDBC}

// steps are the scenario's steps in order; each prints "ok <step>".
var steps = []string{
	"schema", "insert-prepared", "select-by-key", "select-scatter", "rollback",
	"multi-shard-commit", "savepoint", "set-show", "cancel", "copy",
}

// Steps returns the steps client c's scenario reports, in order, without the
// final "all". psql has no cancel step: it cannot send a CancelRequest when
// reading a script.
func Steps(c Client) []string {
	if c == Psql {
		return slices.DeleteFunc(slices.Clone(steps), func(s string) bool { return s == "cancel" })
	}
	return slices.Clone(steps)
}

// EnvFromDSN returns the libpq environment variables (PGHOST, PGPORT,
// PGDATABASE, PGUSER, PGPASSWORD when the URL has one, and PGSSLMODE, default
// "disable") for a URL such as postgres://user@host:port/db?sslmode=disable.
func EnvFromDSN(dsn string) (map[string]string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("drivertest: parsing DSN: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Errorf("drivertest: DSN scheme %q is not postgres", u.Scheme)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	env := map[string]string{
		"PGHOST":     u.Hostname(),
		"PGPORT":     port,
		"PGDATABASE": strings.TrimPrefix(u.Path, "/"),
		"PGUSER":     u.User.Username(),
		"PGSSLMODE":  "disable",
	}
	if pw, ok := u.User.Password(); ok {
		env["PGPASSWORD"] = pw
	}
	if m := u.Query().Get("sslmode"); m != "" {
		env["PGSSLMODE"] = m
	}
	return env, nil
}

// dsnFromEnv is the inverse of EnvFromDSN, for the in-process Go clients.
func dsnFromEnv(env map[string]string) (string, error) {
	for _, k := range []string{"PGHOST", "PGPORT", "PGDATABASE", "PGUSER"} {
		if env[k] == "" {
			return "", fmt.Errorf("drivertest: %s is not set", k)
		}
	}
	u := url.URL{
		Scheme: "postgres",
		User:   url.User(env["PGUSER"]),
		Host:   net.JoinHostPort(env["PGHOST"], env["PGPORT"]),
		Path:   "/" + env["PGDATABASE"],
	}
	if pw, ok := env["PGPASSWORD"]; ok {
		u.User = url.UserPassword(env["PGUSER"], pw)
	}
	mode := env["PGSSLMODE"]
	if mode == "" {
		mode = "disable"
	}
	u.RawQuery = url.Values{"sslmode": {mode}}.Encode()
	return u.String(), nil
}

// Ensure makes client c available (see EnsurePsql, EnsureNode,
// EnsurePsycopg2 and EnsureJava; the Go clients need nothing). Run calls it;
// calling it first keeps installation out of a caller's timings.
func Ensure(c Client) error {
	var err error
	switch c {
	case Pgx, LibPQ:
	case Psql:
		_, err = EnsurePsql()
	case Node:
		_, err = EnsureNode()
	case Psycopg2:
		_, err = EnsurePsycopg2()
	case JDBC:
		_, err = EnsureJava()
	default:
		err = fmt.Errorf("drivertest: unknown client %q", c)
	}
	return err
}

// Run runs client c's scenario with the connection parameters in env (as
// EnvFromDSN returns them) and returns everything it printed, stdout and
// stderr interleaved. It makes the client available first (see the Ensure
// functions). The error is non-nil when the scenario failed; the output then
// says where. Cancelling ctx kills the scenario program.
func Run(ctx context.Context, c Client, env map[string]string) (string, error) {
	return run(ctx, c, env, "scenario")
}

// StateClients are the clients of the session-state scenario (RunState).
var StateClients = []Client{Psycopg2, Node}

// StateSteps are the session-state scenario's steps in order.
var StateSteps = []string{"temp-table", "cursor-with-hold", "sql-prepare", "large-object", "listen-notify", "pool-reset"}

// RunState runs client c's session-state scenario (testdata/drivers/python/
// state.py or node/state.js: a temporary table, a cursor WITH HOLD, SQL
// PREPARE, a large object, LISTEN/NOTIFY while idle, a driver pool's reset)
// as Run runs the main one. c must be one of StateClients.
func RunState(ctx context.Context, c Client, env map[string]string) (string, error) {
	if !slices.Contains(StateClients, c) {
		return "", fmt.Errorf("drivertest: %s has no session-state scenario", c)
	}
	return run(ctx, c, env, "state")
}

// run runs client c's program named scenario (scenario or state).
func run(ctx context.Context, c Client, env map[string]string, scenario string) (string, error) {
	if c == Pgx || c == LibPQ {
		dsn, err := dsnFromEnv(env)
		if err != nil {
			return "", err
		}
		var out bytes.Buffer
		if c == Pgx {
			err = RunPgx(ctx, &out, dsn)
		} else {
			err = RunLibPQ(ctx, &out, dsn)
		}
		if err != nil {
			fmt.Fprintf(&out, "FAIL %v\n", err)
		}
		return out.String(), err
	}

	root, err := scenarioRoot()
	if err != nil {
		return "", err
	}
	var (
		args  []string
		extra []string // environment the client itself needs
	)
	switch c {
	case Psql:
		psql, err := EnsurePsql()
		if err != nil {
			return "", err
		}
		// -X: no ~/.psqlrc; the script sets ON_ERROR_STOP itself, the flag
		// covers a failure before its first line.
		args = []string{psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", filepath.Join(root, "psql", "scenario.sql")}
	case Node:
		nodePath, err := EnsureNode()
		if err != nil {
			return "", err
		}
		node, err := exec.LookPath("node")
		if err != nil {
			return "", fmt.Errorf("drivertest: node: %w", err)
		}
		args = []string{node, filepath.Join(root, "node", scenario+".js")}
		extra = []string{"NODE_PATH=" + nodePath}
	case Psycopg2:
		python, err := EnsurePsycopg2()
		if err != nil {
			return "", err
		}
		args = []string{python, filepath.Join(root, "python", scenario+".py")}
	case JDBC:
		classpath, err := EnsureJava()
		if err != nil {
			return "", err
		}
		java, err := exec.LookPath("java")
		if err != nil {
			return "", fmt.Errorf("drivertest: java: %w", err)
		}
		args = []string{java, "-cp", classpath, "Scenario"}
	default:
		return "", fmt.Errorf("drivertest: unknown client %q", c)
	}
	// A scratch working directory: psql's scenario writes its COPY files there.
	dir, err := os.MkdirTemp("", "drivertest-"+string(c)+"-")
	if err != nil {
		return "", fmt.Errorf("drivertest: %w", err)
	}
	defer os.RemoveAll(dir)

	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), extra...)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("drivertest: %s scenario: %w", c, err)
	}
	return out.String(), nil
}

// cleanEnv is this process's environment without the variables that would
// change where a client connects or what code it loads; Run sets those.
func cleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(name, "PG") || name == "NODE_PATH" || name == "NODE_OPTIONS" ||
			name == "CLASSPATH" || name == "JAVA_TOOL_OPTIONS" || name == "PYTHONPATH" || name == "PSQLRC"
	})
}

// scenarioRoot returns the repository's testdata/drivers directory. The
// scenario programs are read from the source tree, which a test always has.
var scenarioRoot = sync.OnceValues(func() (string, error) {
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", ".."))
	}
	// Built with -trimpath: walk up from the working directory to go.mod.
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				candidates = append(candidates, d)
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, c := range candidates {
		dir := filepath.Join(c, "testdata", "drivers")
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return filepath.Clean(dir), nil
		}
	}
	return "", fmt.Errorf("drivertest: testdata/drivers not found (looked under %q)", candidates)
})

// EnsurePsql returns the path of a psql binary, installing Debian's
// postgresql-client when none is found. It works once per process; later
// calls return the first result. It is safe for concurrent use.
func EnsurePsql() (string, error) { return ensurePsql() }

var ensurePsql = sync.OnceValues(func() (string, error) {
	find := func() (string, error) {
		if p, err := exec.LookPath("psql"); err == nil {
			return p, nil
		}
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
		if len(matches) > 0 {
			return matches[len(matches)-1], nil
		}
		return "", errors.New("drivertest: psql not found")
	}
	if p, err := find(); err == nil {
		return p, nil
	}
	if err := aptInstall("postgresql-client"); err != nil {
		return "", err
	}
	return find()
})

// nodePackages are the files that pin the node scenario's npm packages.
var nodePackages = []string{"package.json", "package-lock.json"}

// EnsureNode makes node, npm and the node scenario's npm packages (pg,
// pg-copy-streams, pinned by testdata/drivers/node/package-lock.json)
// available and returns the node_modules directory to use as NODE_PATH. The
// packages are installed with `npm ci` into the user's cache directory, in a
// folder keyed by the hash of the package files, so later processes reuse
// them; node and npm come from Debian when missing. It works once per
// process; later calls return the first result. It is safe for concurrent use.
func EnsureNode() (string, error) { return ensureNode() }

var ensureNode = sync.OnceValues(func() (string, error) {
	_, nodeErr := exec.LookPath("node")
	_, npmErr := exec.LookPath("npm")
	if nodeErr != nil || npmErr != nil {
		if err := aptInstall("nodejs", "npm"); err != nil {
			return "", err
		}
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("drivertest: npm: %w", err)
	}
	root, err := scenarioRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, "node")
	key, err := hashFiles(src, nodePackages...)
	if err != nil {
		return "", err
	}
	dir, err := cached("node-"+key, func(tmp string) error {
		for _, name := range nodePackages {
			if err := copyFile(filepath.Join(src, name), filepath.Join(tmp, name)); err != nil {
				return err
			}
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = tmp
		cmd.Env = cleanEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("npm ci in %s: %w\n%s", tmp, err, out)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("drivertest: installing the node packages: %w", err)
	}
	return filepath.Join(dir, "node_modules"), nil
})

// EnsurePsycopg2 returns a python3 that can import psycopg2, installing
// Debian's python3-psycopg2 when needed. It prefers /usr/bin/python3, the
// interpreter Debian's package installs into, over one first on PATH (such as
// pyenv's, which does not see Debian's modules). It works once per process;
// later calls return the first result. It is safe for concurrent use.
func EnsurePsycopg2() (string, error) { return ensurePsycopg2() }

var ensurePsycopg2 = sync.OnceValues(func() (string, error) {
	find := func() (string, error) {
		var tried []string
		candidates := []string{"/usr/bin/python3"}
		if p, err := exec.LookPath("python3"); err == nil {
			candidates = append(candidates, p)
		}
		for _, py := range candidates {
			if _, err := os.Stat(py); err != nil {
				continue
			}
			cmd := exec.Command(py, "-c", "import psycopg2")
			cmd.Env = cleanEnv()
			out, err := cmd.CombinedOutput()
			if err == nil {
				return py, nil
			}
			tried = append(tried, fmt.Sprintf("%s: %v: %s", py, err, bytes.TrimSpace(out)))
		}
		return "", fmt.Errorf("drivertest: no python3 can import psycopg2 (%s)", strings.Join(tried, "; "))
	}
	if py, err := find(); err == nil {
		return py, nil
	}
	if err := aptInstall("python3-psycopg2"); err != nil {
		return "", err
	}
	return find()
})

// EnsureDjango returns a python3 that can import Django and psycopg2,
// installing Debian's python3-django (and python3-psycopg2) when needed.
// It works once per process; later calls return the first result. It is
// safe for concurrent use.
func EnsureDjango() (string, error) { return ensureDjango() }

var ensureDjango = sync.OnceValues(func() (string, error) {
	py, err := EnsurePsycopg2()
	if err != nil {
		return "", err
	}
	importable := func() error {
		cmd := exec.Command(py, "-c", "import django")
		cmd.Env = cleanEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("drivertest: %s cannot import django: %v: %s", py, err, bytes.TrimSpace(out))
		}
		return nil
	}
	if importable() == nil {
		return py, nil
	}
	if err := aptInstall("python3-django"); err != nil {
		return "", err
	}
	return py, importable()
})

// jdbcJar is where Debian's libpostgresql-jdbc-java puts the driver.
const jdbcJar = "/usr/share/java/postgresql.jar"

// EnsureJava makes a JDK and the PostgreSQL JDBC driver available (Debian's
// default-jdk-headless and libpostgresql-jdbc-java when missing), compiles
// testdata/drivers/java/Scenario.java into the user's cache directory (keyed
// by the hash of the source and the driver jar), and returns the class path
// that runs it: `java -cp CLASSPATH Scenario`. It works once per process;
// later calls return the first result. It is safe for concurrent use.
func EnsureJava() (string, error) { return ensureJava() }

var ensureJava = sync.OnceValues(func() (string, error) {
	_, javaErr := exec.LookPath("java")
	_, javacErr := exec.LookPath("javac")
	_, jarErr := os.Stat(jdbcJar)
	if javaErr != nil || javacErr != nil || jarErr != nil {
		if err := aptInstall("default-jdk-headless", "libpostgresql-jdbc-java"); err != nil {
			return "", err
		}
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		return "", fmt.Errorf("drivertest: javac: %w", err)
	}
	jar, err := filepath.EvalSymlinks(jdbcJar)
	if err != nil {
		return "", fmt.Errorf("drivertest: the JDBC driver: %w", err)
	}
	root, err := scenarioRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, "java", "Scenario.java")
	key, err := hashFiles("", src, jar)
	if err != nil {
		return "", err
	}
	dir, err := cached("java-"+key, func(tmp string) error {
		cmd := exec.Command(javac, "-cp", jar, "-d", tmp, src)
		cmd.Env = cleanEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("javac %s: %w\n%s", src, err, out)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("drivertest: compiling the JDBC scenario: %w", err)
	}
	return dir + string(os.PathListSeparator) + jar, nil
})

// apt serializes apt-get in this process; apt-get itself waits for the dpkg
// lock another process holds.
var apt struct {
	sync.Mutex
	updated bool
}

// aptInstall installs Debian packages, running apt-get update first once per
// process. It needs root.
func aptInstall(pkgs ...string) error {
	apt.Lock()
	defer apt.Unlock()
	if os.Geteuid() != 0 {
		return fmt.Errorf("drivertest: a client is missing and installing it needs root: apt-get install -y %s",
			strings.Join(pkgs, " "))
	}
	run := func(args ...string) error {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(cleanEnv(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("drivertest: apt-get %s: %w\n%s", strings.Join(args, " "), err, tailLines(out, 20))
		}
		return nil
	}
	if !apt.updated {
		if err := run("-o", "DPkg::Lock::Timeout=300", "update"); err != nil {
			return err
		}
		apt.updated = true
	}
	return run(append([]string{"-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends"}, pkgs...)...)
}

// cached returns the directory name under the user's cache directory
// (shardgate/drivers), creating it with fill when it does not exist yet. fill
// works in a temporary directory that is renamed into place when it
// succeeds, so a concurrent process never sees half a directory.
func cached(name string, fill func(tmp string) error) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	parent := filepath.Join(base, "shardgate", "drivers")
	dir := filepath.Join(parent, name)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return dir, nil
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, name+".tmp-")
	if err != nil {
		return "", err
	}
	if err := fill(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	// MkdirTemp made it private; other users may run the clients too.
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		// Another process got there first.
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return dir, nil
		}
		return "", err
	}
	return dir, nil
}

// hashFiles returns a short hex hash of the named files' contents (relative
// to dir unless absolute). A missing file hashes as absent.
func hashFiles(dir string, names ...string) (string, error) {
	h := sha256.New()
	for _, name := range names {
		path := name
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, name)
		}
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(h, "%s: absent\n", name)
			continue
		}
		if err != nil {
			return "", fmt.Errorf("drivertest: %w", err)
		}
		fmt.Fprintf(h, "%s:\n", filepath.Base(name))
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("drivertest: reading %s: %w", path, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// tailLines returns the last n lines of b.
func tailLines(b []byte, n int) []byte {
	lines := bytes.SplitAfter(bytes.TrimRight(b, "\n"), []byte("\n"))
	return bytes.Join(lines[max(0, len(lines)-n):], nil)
}
