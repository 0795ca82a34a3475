// Package pgtest starts throwaway PostgreSQL servers for tests, and a local
// development server whose data survives restarts.
//
// Every cluster is a real postgres process listening on 127.0.0.1 with trust
// authentication for the superuser postgres; one started with Options.TLS
// instead admits TCP connections only over TLS with a SCRAM password, like a
// hardened production server, and keeps trust for the unix socket.
// Durability is switched off (fsync, full_page_writes, synchronous_commit)
// because nothing here is worth keeping after a crash. initdb runs once per
// binary version and OS user; new clusters are copies of that template, so
// starting one costs well under a second.
//
// initdb, pg_ctl and postgres refuse to run as root. When the process is
// root, they run as the OS user postgres (which Debian's postgresql package
// creates), and every directory they use is owned by that user.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// templateLayout changes whenever the way the template is made changes
// (initdb flags), so a template cached by an older version is not reused.
const templateLayout = "1"

// startAttempts bounds the retries when a free port is taken by someone else
// between choosing it and postgres binding it.
const startAttempts = 5

// stopTimeout bounds pg_ctl stop and the cleanup after a failed start; neither
// has a caller's context.
const stopTimeout = 90 * time.Second

var errPortInUse = errors.New("port already in use")

// Binaries returns the directory holding the PostgreSQL server binaries
// (initdb, pg_ctl, postgres). It uses $PG_BINDIR if set, else the directory
// `pg_config --bindir` names if it holds initdb, else the newest
// /usr/lib/postgresql/*/bin. When none is found and the process is root, it
// installs Debian's postgresql package and looks again. The search (and any
// installation) happens once per process; later calls return the same result.
// It is safe for concurrent use.
func Binaries() (string, error) { return binaries() }

var binaries = sync.OnceValues(func() (string, error) {
	dir, err := lookBinaries()
	if err == nil || os.Getenv("PG_BINDIR") != "" || os.Geteuid() != 0 {
		return dir, err
	}
	if ierr := installPostgres(); ierr != nil {
		return "", fmt.Errorf("%w; installing them failed: %w", err, ierr)
	}
	return lookBinaries()
})

func lookBinaries() (string, error) {
	if dir := os.Getenv("PG_BINDIR"); dir != "" {
		if hasServerBinaries(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("pgtest: PG_BINDIR=%s does not hold initdb, pg_ctl and postgres", dir)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); hasServerBinaries(dir) {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	matches = slices.DeleteFunc(matches, func(d string) bool { return !hasServerBinaries(d) })
	if len(matches) > 0 {
		// Newest major version first; "9.6" < "15" needs a numeric comparison.
		slices.SortFunc(matches, func(a, b string) int { return compareVersions(versionOf(b), versionOf(a)) })
		return matches[0], nil
	}
	return "", errors.New("pgtest: PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: " +
		"install them (Debian/Ubuntu: apt-get install -y postgresql) or set PG_BINDIR to their directory")
}

func hasServerBinaries(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// versionOf returns the version part of /usr/lib/postgresql/<version>/bin.
func versionOf(bindir string) string { return filepath.Base(filepath.Dir(bindir)) }

func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		ai, aerr := strconv.Atoi(as[i])
		bi, berr := strconv.Atoi(bs[i])
		if aerr != nil || berr != nil {
			if c := strings.Compare(as[i], bs[i]); c != 0 {
				return c
			}
			continue
		}
		if ai != bi {
			return ai - bi
		}
	}
	return len(as) - len(bs)
}

func installPostgres() error {
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{
		{"apt-get", "update"},
		{"apt-get", "install", "-y", "postgresql"},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, tail(out, 20))
		}
	}
	return nil
}

// runner runs the server binaries as the right OS user: the current one, or
// postgres when the process is root.
type runner struct {
	cred     *syscall.Credential // nil: run as the current user
	uid, gid int
	name     string
	env      []string
}

var serverUser = sync.OnceValues(func() (*runner, error) {
	// The caller's PG* variables (PGDATA, PGPORT, PGHOST, ...) would change what
	// pg_ctl and postgres do; the harness passes everything explicitly.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
	if os.Geteuid() != 0 {
		name := strconv.Itoa(os.Getuid())
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
		return &runner{uid: os.Getuid(), gid: os.Getgid(), name: name, env: env}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, so the server must run as the OS user postgres, "+
			"which does not exist (Debian's postgresql package creates it: apt-get install -y postgresql): %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("pgtest: uid of user postgres: %w", err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("pgtest: gid of user postgres: %w", err)
	}
	env = slices.DeleteFunc(env, func(kv string) bool {
		return strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "USER=") || strings.HasPrefix(kv, "LOGNAME=")
	})
	home := u.HomeDir
	if home == "" {
		home = "/"
	}
	env = append(env, "HOME="+home, "USER="+u.Username, "LOGNAME="+u.Username)
	return &runner{
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		uid:  uid, gid: gid, name: u.Username, env: env,
	}, nil
})

// command returns a command that runs as the server's OS user.
func (r *runner) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = r.env
	// The working directory must be readable by the server's user.
	cmd.Dir = "/"
	if r.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// own makes path belong to the server's user (a no-op when that is us).
func (r *runner) own(path string) error {
	if r.cred == nil {
		return nil
	}
	return os.Chown(path, r.uid, r.gid)
}

// mkdirTemp creates a new directory under os.TempDir() with mode 0700, owned
// by the server's user.
func (r *runner) mkdirTemp(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	if err := r.own(dir); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("pgtest: %w", err)
	}
	return dir, nil
}

// checkReachable reports an error naming the first directory above path that
// the server's user cannot traverse. It only knows the user's primary group,
// which is all the server processes have.
func (r *runner) checkReachable(path string) error {
	if r.cred == nil {
		return nil
	}
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		var bit os.FileMode = 0o001
		switch {
		case int(st.Uid) == r.uid:
			bit = 0o100
		case int(st.Gid) == r.gid:
			bit = 0o010
		}
		if fi.Mode().Perm()&bit == 0 {
			return fmt.Errorf("pgtest: %s cannot be reached by OS user %s, which runs the server: "+
				"%s is not searchable by it (choose a directory elsewhere, e.g. under %s)", path, r.name, d, os.TempDir())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

var (
	templateMu  sync.Mutex
	templateDir string // the data directory of the template cluster, once made
)

// template returns a freshly initdb'ed data directory to copy new clusters
// from. It lives under os.TempDir() with a name derived from the binaries'
// version and the server's uid, so that one initdb serves every test process
// on the machine (go test runs packages in parallel processes) and no process
// leaves its own copy behind. It is created under a private name and renamed
// into place, so a template that exists is complete.
func template(ctx context.Context, bin string, r *runner) (string, error) {
	templateMu.Lock()
	defer templateMu.Unlock()
	if templateDir != "" && r.usableTemplate(templateDir) {
		return templateDir, nil
	}
	out, err := r.command(ctx, filepath.Join(bin, "pg_ctl"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("pgtest: %s --version: %w", filepath.Join(bin, "pg_ctl"), err)
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s", templateLayout, bin, out)
	shared := filepath.Join(os.TempDir(), fmt.Sprintf("shardgate-pgtest-%d-%016x", r.uid, h.Sum64()))
	if r.usableTemplate(filepath.Join(shared, "data")) {
		templateDir = filepath.Join(shared, "data")
		return templateDir, nil
	}

	build, err := r.mkdirTemp("shardgate-pgtest-build-")
	if err != nil {
		return "", err
	}
	if err := r.checkReachable(build); err != nil {
		os.RemoveAll(build)
		return "", err
	}
	if err := initdb(ctx, bin, r, filepath.Join(build, "data")); err != nil {
		os.RemoveAll(build)
		return "", err
	}
	switch err := os.Rename(build, shared); {
	case err == nil:
		templateDir = filepath.Join(shared, "data")
	case r.usableTemplate(filepath.Join(shared, "data")):
		// Another process won the race.
		os.RemoveAll(build)
		templateDir = filepath.Join(shared, "data")
	default:
		// Something we cannot use sits at the shared name; keep ours private.
		templateDir = filepath.Join(build, "data")
	}
	return templateDir, nil
}

// usableTemplate reports whether dir is an initialized data directory owned by
// the server's user.
func (r *runner) usableTemplate(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == r.uid
}

func initdb(ctx context.Context, bin string, r *runner, dir string) error {
	base := []string{"-D", dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "-N"}
	out, err := r.command(ctx, filepath.Join(bin, "initdb"), append(base, "--locale=C.UTF-8")...).CombinedOutput()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("pgtest: initdb: %w", ctx.Err())
	}
	// C.UTF-8 is not installed everywhere; fall back to the plain C locale.
	os.RemoveAll(dir)
	out2, err2 := r.command(ctx, filepath.Join(bin, "initdb"), append(base, "--no-locale")...).CombinedOutput()
	if err2 == nil {
		return nil
	}
	return fmt.Errorf("pgtest: initdb --locale=C.UTF-8: %w\n%s\ninitdb --no-locale: %w\n%s", err, tail(out, 10), err2, tail(out2, 10))
}

// Options configure one cluster. The zero value asks for a temporary cluster
// on a free loopback port.
type Options struct {
	// Dir is the data directory. "" means a new temporary directory, removed
	// by Stop. A Dir that already holds a data directory is reused as it is,
	// so a development cluster survives restarts; a missing or empty Dir is
	// initialized.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Settings are extra server settings (postgresql.conf names), passed as
	// -c name=value. They override the harness's defaults, except port and
	// listen_addresses, which the Cluster controls, and the TLS settings.
	Settings map[string]string
	// TLS makes a cluster that accepts TCP connections only over TLS and
	// with a SCRAM-SHA-256 password (hostssl ... scram-sha-256), like a
	// hardened production server. Every start makes a new throwaway CA and
	// server certificate for 127.0.0.1 and localhost (see CAFile); create
	// roles with passwords with CreateRole. The superuser postgres keeps
	// trust authentication over the unix socket only, which DSN then uses.
	// The data directory's own pg_hba.conf is left alone.
	TLS bool
}

// Cluster is one running PostgreSQL server listening on 127.0.0.1, with the
// superuser postgres and trust authentication (for a TLS cluster: over the
// unix socket only).
type Cluster struct {
	Host string // always 127.0.0.1
	Port int
	Dir  string // the data directory

	bin      string
	run      *runner
	temp     bool   // Dir is ours to remove
	sockDir  string // a temporary socket directory outside Dir, or ""
	settings map[string]string
	tls      bool

	stopOnce sync.Once
	stopErr  error
}

// StartCluster initializes (unless opts.Dir already holds one) and starts a
// cluster, and returns once it accepts connections. Cancelling ctx abandons
// the start; a server that got started is stopped again. The caller must call
// Stop.
func StartCluster(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := Binaries()
	if err != nil {
		return nil, err
	}
	r, err := serverUser()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Host: "127.0.0.1", bin: bin, run: r, settings: opts.Settings, tls: opts.TLS}
	if err := c.prepareDir(ctx, opts.Dir); err != nil {
		c.removeTemp()
		return nil, err
	}
	if c.tls {
		if err := r.writeTLS(filepath.Join(c.Dir, tlsDir)); err != nil {
			c.removeTemp()
			return nil, err
		}
	}
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				c.removeTemp()
				return nil, err
			}
		}
		err = c.start(ctx, port)
		if err == nil {
			return c, nil
		}
		if opts.Port != 0 || attempt == startAttempts || !errors.Is(err, errPortInUse) || ctx.Err() != nil {
			c.removeTemp()
			return nil, err
		}
	}
}

// prepareDir sets c.Dir and c.sockDir, creating the data directory from the
// template when needed.
func (c *Cluster) prepareDir(ctx context.Context, dir string) error {
	if dir == "" {
		d, err := c.run.mkdirTemp("pgtest-")
		if err != nil {
			return err
		}
		c.Dir, c.temp = d, true
		if err := c.run.checkReachable(d); err != nil {
			return err
		}
		if err := c.copyTemplate(ctx); err != nil {
			return err
		}
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		c.Dir = abs
		if _, err := os.Stat(filepath.Join(abs, "PG_VERSION")); err != nil {
			entries, err := os.ReadDir(abs)
			switch {
			case errors.Is(err, os.ErrNotExist):
				if err := os.MkdirAll(abs, 0o700); err != nil {
					return fmt.Errorf("pgtest: %w", err)
				}
			case err != nil:
				return fmt.Errorf("pgtest: %w", err)
			case len(entries) > 0:
				return fmt.Errorf("pgtest: %s is neither empty nor a PostgreSQL data directory", abs)
			}
			if err := c.run.own(abs); err != nil {
				return fmt.Errorf("pgtest: %w", err)
			}
			if err := c.run.checkReachable(abs); err != nil {
				return err
			}
			if err := c.copyTemplate(ctx); err != nil {
				return err
			}
		} else if err := c.run.checkReachable(abs); err != nil {
			return err
		}
	}
	// A unix socket path is limited to about 107 bytes.
	if len(c.Dir)+len("/.s.PGSQL.65535.lock") > 100 {
		d, err := c.run.mkdirTemp("pgs-")
		if err != nil {
			return err
		}
		c.sockDir = d
	}
	return nil
}

// copyTemplate fills the existing, empty c.Dir with a copy of the template.
func (c *Cluster) copyTemplate(ctx context.Context) error {
	tmpl, err := template(ctx, c.bin, c.run)
	if err != nil {
		return err
	}
	// cp -a keeps the owner (postgres when we are root) and the 0700 mode
	// postgres insists on.
	if out, err := exec.CommandContext(ctx, "cp", "-a", tmpl+"/.", c.Dir).CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: copying template %s to %s: %w\n%s", tmpl, c.Dir, err, tail(out, 10))
	}
	if err := os.Chmod(c.Dir, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return c.run.own(c.Dir)
}

func (c *Cluster) logFile() string { return filepath.Join(c.Dir, "pgtest.log") }

func (c *Cluster) socketDir() string {
	if c.sockDir != "" {
		return c.sockDir
	}
	return c.Dir
}

// serverOptions returns the -c options for postgres, quoted for the shell
// that pg_ctl starts it with.
func (c *Cluster) serverOptions(port int) string {
	s := map[string]string{
		"unix_socket_directories":   c.socketDir(),
		"fsync":                     "off",
		"synchronous_commit":        "off",
		"full_page_writes":          "off",
		"max_connections":           "200",
		"max_prepared_transactions": "100",
		"wal_level":                 "logical",
		"shared_buffers":            "32MB",
	}
	for k, v := range c.settings {
		s[k] = v
	}
	if c.tls {
		maps.Copy(s, c.tlsSettings())
	}
	s["listen_addresses"] = c.Host
	s["port"] = strconv.Itoa(port)
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(s)) {
		fmt.Fprintf(&b, " -c %s", shellQuote(k+"="+s[k]))
	}
	return strings.TrimSpace(b.String())
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// start starts the server on port and checks that it answers a query.
func (c *Cluster) start(ctx context.Context, port int) error {
	var logStart int64
	if fi, err := os.Stat(c.logFile()); err == nil {
		logStart = fi.Size()
	}
	c.Port = port
	out, err := c.run.command(ctx, filepath.Join(c.bin, "pg_ctl"), "start", "-w", "-t", "60",
		"-D", c.Dir, "-l", c.logFile(), "-o", c.serverOptions(port)).CombinedOutput()
	if err != nil {
		// pg_ctl may have been killed by ctx after the postmaster started.
		c.stopServer("immediate")
		log := c.logTail(logStart)
		if bytes.Contains(log, []byte("Address already in use")) {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return fmt.Errorf("pgtest: starting postgres in %s on port %d: %w\n%s\nserver log:\n%s", c.Dir, port, err, bytes.TrimSpace(out), log)
	}
	if err := c.ping(ctx); err != nil {
		c.stopServer("immediate")
		return fmt.Errorf("pgtest: postgres in %s on port %d started but does not answer: %w\nserver log:\n%s", c.Dir, port, err, c.logTail(logStart))
	}
	return nil
}

// ping connects as DSN does: over TCP, or over the unix socket for a TLS
// cluster, whose TCP port wants TLS and a password.
func (c *Cluster) ping(ctx context.Context) error {
	conn, err := pgconn.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SELECT 1").ReadAll()
	return err
}

// logTail returns the last lines the server logged after offset.
func (c *Cluster) logTail(offset int64) []byte {
	f, err := os.Open(c.logFile())
	if err != nil {
		return []byte("(no log: " + err.Error() + ")")
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil
	}
	b, _ := io.ReadAll(f)
	return tail(b, 30)
}

// stopServer runs pg_ctl stop in the given mode if a postmaster.pid exists,
// and waits for the server to exit.
func (c *Cluster) stopServer(mode string) error {
	if _, err := os.Stat(filepath.Join(c.Dir, "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	out, err := c.run.command(ctx, filepath.Join(c.bin, "pg_ctl"), "stop", "-D", c.Dir, "-m", mode, "-w", "-t", "60").CombinedOutput()
	if err != nil {
		// The server may have died, leaving a stale postmaster.pid.
		if _, serr := os.Stat(filepath.Join(c.Dir, "postmaster.pid")); errors.Is(serr, os.ErrNotExist) ||
			bytes.Contains(out, []byte("Is server running?")) {
			return nil
		}
		return fmt.Errorf("pgtest: pg_ctl stop -D %s: %w\n%s", c.Dir, err, bytes.TrimSpace(out))
	}
	return nil
}

// removeTemp removes the directories the cluster created for itself.
func (c *Cluster) removeTemp() error {
	var errs []error
	if c.temp && c.Dir != "" {
		errs = append(errs, os.RemoveAll(c.Dir))
	}
	if c.sockDir != "" {
		errs = append(errs, os.RemoveAll(c.sockDir))
	}
	return errors.Join(errs...)
}

// DSN returns a URL for database db as the superuser postgres, for example
// "postgres://postgres@127.0.0.1:5433/db?sslmode=disable". For a TLS
// cluster it connects over the unix socket instead
// ("postgres://postgres@/db?host=%2Ftmp%2Fpgtest-1&port=5433"), because the
// TCP port admits only TLS and passwords; see TLSDSN for that.
func (c *Cluster) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	if c.tls {
		u.Host = ""
		u.RawQuery = url.Values{"host": {c.socketDir()}, "port": {strconv.Itoa(c.Port)}}.Encode()
	}
	return u.String()
}

// Stop shuts the server down (fast mode: open sessions are rolled back) and
// waits for it to exit, then removes a temporary data directory. Calling it
// again returns the first call's result. It is safe for concurrent use.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.stopErr = errors.Join(c.stopServer("fast"), c.removeTemp())
	})
	return c.stopErr
}

// Start starts n temporary clusters concurrently for a test, fails the test
// if any does not start, and stops them all when the test ends.
func Start(t testing.TB, n int) []*Cluster { return StartWith(t, n, nil) }

// StartWith is Start with server settings that replace the defaults (for
// example synchronous_commit=on, for a test that crashes a server and
// expects every acknowledged commit after it).
func StartWith(t testing.TB, n int, settings map[string]string) []*Cluster {
	t.Helper()
	clusters := make([]*Cluster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { clusters[i], errs[i] = StartCluster(t.Context(), Options{Settings: settings}) })
	}
	wg.Wait()
	for _, c := range clusters {
		if c != nil {
			t.Cleanup(func() {
				if err := c.Stop(); err != nil {
					t.Errorf("stopping postgres: %v", err)
				}
			})
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return clusters
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of b.
func tail(b []byte, n int) []byte {
	b = bytes.TrimRight(b, "\n")
	lines := bytes.SplitAfter(b, []byte("\n"))
	return bytes.Join(lines[max(0, len(lines)-n):], nil)
}

// StartStandby starts a streaming standby of primary, made from a base
// backup of it (pg_basebackup -R), on a free loopback port, and stops it
// when the test ends.
func StartStandby(t testing.TB, primary *Cluster) *Cluster {
	t.Helper()
	ctx := t.Context()
	dir, err := primary.run.mkdirTemp("pgtest-standby-")
	if err != nil {
		t.Fatal(err)
	}
	out, err := primary.run.command(ctx, filepath.Join(primary.bin, "pg_basebackup"), "-h", primary.Host, "-p", strconv.Itoa(primary.Port),
		"-U", "postgres", "-D", dir, "-R", "-X", "stream", "--checkpoint=fast").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("pgtest: pg_basebackup: %v\n%s", err, tail(out, 10))
	}
	c, err := StartCluster(ctx, Options{Dir: dir, Settings: primary.settings, TLS: primary.tls})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	c.temp = true
	t.Cleanup(func() { c.Stop() })
	return c
}

// CrashRestart stops the server at once, as a crash would (pg_ctl stop -m
// immediate: no checkpoint, recovery at the next start), and starts it
// again on the same port.
func (c *Cluster) CrashRestart(ctx context.Context) error {
	if err := c.stopServer("immediate"); err != nil {
		return err
	}
	return c.start(ctx, c.Port)
}
