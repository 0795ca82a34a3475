package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/internal/syncbuf"
)

// Server settings for every PostgreSQL server of the benchmark, alike, so
// that the data set (scale 10: ~160MB) fits in shared buffers.
var serverSettings = map[string]string{"shared_buffers": "256MB"}

// Pool sizes: pgbouncer's per database and user, shardgate's per shard.
const poolSize = 20

// endpoint is how pgbench reaches one target.
type endpoint struct {
	host, port, user, db string
}

// env is everything the benchmark runs against.
type env struct {
	root      string // the repository
	pgbench   string // path of the pgbench binary
	direct    endpoint
	pgbouncer endpoint
	sharded   endpoint // keyspace bench over two shards
	single    endpoint // keyspace tpcb on one shard
	shardDSNs []string // keyspace bench's databases on its two shards
	bouncer   *proc
	gateway   *proc
	clkTck    int
	versions  map[string]string
	// For the reshard scenario: the servers, the binaries, etcd.
	directPG, s0, s1 *pgtest.Cluster
	tmp, binDir      string
	etcd             string
}

// proc is a process we started and must stop.
type proc struct {
	name   string
	admin  string // the gateway's admin address, for profiles
	etcd   string // the gateway's embedded etcd
	cmd    *exec.Cmd
	log    *syncbuf.Buffer
	exited chan error
}

func startProc(name string, cmd *exec.Cmd) (*proc, error) {
	p := &proc{name: name, cmd: cmd, log: &syncbuf.Buffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	// Its own process group: Ctrl-C reaches only us, and we stop it.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.exited <- cmd.Wait() }()
	return p, nil
}

// stop sends SIGTERM and kills the process if it has not exited within 15s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		p.exited <- err
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		err := <-p.exited
		p.exited <- err
	}
}

// running reports an error if the process has exited.
func (p *proc) running() error {
	select {
	case err := <-p.exited:
		p.exited <- err
		msg := fmt.Sprintf("%s exited (%v)", p.name, err)
		if l := errorLine(p.log.String()); l != "" {
			msg += ": " + l
		}
		return errors.New(msg)
	default:
		return nil
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// errorLine is the last line of a process's log that reports an error.
func errorLine(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.ToLower(lines[i])
		if strings.Contains(l, "error") || strings.Contains(l, "fatal") || strings.Contains(l, "panic") {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func ep(addr, user, db string) endpoint {
	host, port, _ := net.SplitHostPort(addr)
	return endpoint{host: host, port: port, user: user, db: db}
}

func (e endpoint) dsn() string {
	return fmt.Sprintf("host=%s port=%s dbname=%s user=%s sslmode=disable", e.host, e.port, e.db, e.user)
}

// repoRoot is the module's directory, for testdata/ and the binaries' sources.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run bench inside the shardgate module")
	}
	return filepath.Dir(mod), nil
}

// setup starts the servers, pgbouncer and the gateway and loads pgbench's
// tables. Whatever it starts is registered in cl.
func setup(ctx context.Context, o options, cl *cleanups) (*env, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	e := &env{root: root, versions: map[string]string{}, clkTck: 100}
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			e.clkTck = n
		}
	}
	bin, err := pgtest.Binaries()
	if err != nil {
		return nil, err
	}
	e.pgbench = filepath.Join(bin, "pgbench")
	if _, err := os.Stat(e.pgbench); err != nil {
		e.pgbench = "pgbench"
	}
	tmp, err := os.MkdirTemp("", "shardgate-bench-")
	if err != nil {
		return nil, err
	}
	cl.add(func() { os.RemoveAll(tmp) })

	// The gateway's binaries, built as the tests build them.
	logf("building shardgate and shardctl")
	binDir := filepath.Join(tmp, "bin")
	build := exec.CommandContext(ctx, "go", "build", "-o", binDir+string(filepath.Separator), "./cmd/shardgate", "./cmd/shardctl")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %w: %s", err, lastLine(string(out)))
	}

	// Three servers: the direct one (also behind pgbouncer) and two shards.
	logf("starting PostgreSQL: one server for direct and pgbouncer, two shards")
	servers := make([]*pgtest.Cluster, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() { servers[i], errs[i] = pgtest.StartCluster(ctx, pgtest.Options{Settings: serverSettings}) })
	}
	wg.Wait()
	for _, s := range servers {
		if s != nil {
			cl.add(func() {
				if err := s.Stop(); err != nil {
					fmt.Fprintf(os.Stderr, "bench: stopping postgres: %v\n", err)
				}
			})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	direct, s0, s1 := servers[0], servers[1], servers[2]
	e.directPG, e.s0, e.s1, e.tmp, e.binDir = direct, s0, s1, tmp, binDir
	e.direct = endpoint{host: direct.Host, port: strconv.Itoa(direct.Port), user: "postgres", db: "postgres"}
	if v, err := queryOne(ctx, direct.DSN("postgres"), "show server_version"); err == nil {
		e.versions["postgres"] = v
	}
	// The single-shard keyspace lives in its own database on shard s0's server.
	if _, err := queryOne(ctx, s0.DSN("postgres"), "create database tpcb"); err != nil {
		return nil, fmt.Errorf("create database tpcb: %w", err)
	}

	if e.bouncer, e.pgbouncer, err = startPgbouncer(ctx, tmp, direct, cl); err != nil {
		return nil, err
	}
	if out, err := exec.Command(pgbouncerPath(), "--version").Output(); err == nil {
		e.versions["pgbouncer"] = strings.SplitN(string(out), "\n", 2)[0]
	}

	if e.gateway, e.sharded, e.single, err = startGateway(ctx, root, tmp, binDir, s0, s1, cl); err != nil {
		return nil, err
	}
	e.shardDSNs = []string{s0.DSN("postgres"), s1.DSN("postgres")}
	e.etcd = e.gateway.etcd
	if out, err := exec.Command(e.pgbench, "--version").Output(); err == nil {
		e.versions["pgbench"] = strings.TrimSpace(string(out))
	}

	// pgbench's tables: directly, and through the gateway for both keyspaces.
	for _, t := range []struct {
		name string
		ep   endpoint
	}{{"direct", e.direct}, {"shardgate keyspace bench (2 shards)", e.sharded}, {"shardgate keyspace tpcb (1 shard)", e.single}} {
		logf("pgbench -i -s %d: %s", o.scale, t.name)
		if _, err := e.runPgbench(ctx, o, t.ep, "-i", "-q", "-s", strconv.Itoa(o.scale)); err != nil {
			return nil, fmt.Errorf("initializing %s: %w", t.name, err)
		}
	}
	// The table of the sequence scenarios: on one Postgres its own
	// sequence, through the gateway a global one.
	for _, ep := range []endpoint{e.direct, e.sharded} {
		if _, err := queryOne(ctx, ep.dsn(), idsTable); err != nil {
			return nil, fmt.Errorf("creating bench_ids: %w", err)
		}
	}
	return e, nil
}

// idsTable is the table the sequence scenarios insert into (sharded by id
// in keyspace bench).
const idsTable = "CREATE TABLE bench_ids (id bigserial PRIMARY KEY, note text)"

func queryOne(ctx context.Context, dsn, sql string) (string, error) {
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	res := conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return "", res.Err
	}
	if len(res.Rows) > 0 && len(res.Rows[0]) > 0 {
		return string(res.Rows[0][0]), nil
	}
	return "", nil
}

// waitConnect retries a connection until it works, the process exits or
// the time is up.
func waitConnect(ctx context.Context, p *proc, dsn string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := queryOne(ctx, dsn, "select 1")
		if err == nil {
			return nil
		}
		if perr := p.running(); perr != nil {
			return perr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no connection within %s: %w", p.name, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func pgbouncerPath() string {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	return "/usr/sbin/pgbouncer"
}

// startPgbouncer runs pgbouncer in transaction pooling mode in front of
// server, with its ini and userlist in a directory under tmp. pgbouncer
// refuses to run as root; then it runs as the servers' OS user (postgres).
func startPgbouncer(ctx context.Context, tmp string, server *pgtest.Cluster, cl *cleanups) (*proc, endpoint, error) {
	if _, err := os.Stat(pgbouncerPath()); err != nil {
		// As the Postgres harness installs Postgres: Debian's package.
		logf("installing pgbouncer with apt-get")
		if out, err := exec.CommandContext(ctx, "apt-get", "install", "-y", "pgbouncer").CombinedOutput(); err != nil {
			return nil, endpoint{}, fmt.Errorf("pgbouncer is missing and apt-get install -y pgbouncer failed: %v: %s", err, lastLine(string(out)))
		}
	}
	dir := filepath.Join(tmp, "pgbouncer")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, endpoint{}, err
	}
	var cred *syscall.Credential
	if name, other, err := pgtest.ServerUser(); err != nil {
		return nil, endpoint{}, err
	} else if other {
		u, err := user.Lookup(name)
		if err != nil {
			return nil, endpoint{}, err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// tmp is 0700 root's: let pgbouncer's user through to its directory.
		if err := os.Chmod(tmp, 0o711); err != nil {
			return nil, endpoint{}, err
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, endpoint{}, err
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, endpoint{}, err
	}
	host, port, _ := net.SplitHostPort(addr)
	ini := fmt.Sprintf(`[databases]
bench = host=%s port=%d dbname=postgres user=postgres

[pgbouncer]
listen_addr = %s
listen_port = %s
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 1000
max_db_connections = 0
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = %s
`, server.Host, server.Port, host, port, filepath.Join(dir, "userlist.txt"), poolSize, filepath.Join(dir, "pgbouncer.log"))
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(`"postgres" ""`+"\n"), 0o644); err != nil {
		return nil, endpoint{}, err
	}
	iniPath := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(iniPath, []byte(ini), 0o644); err != nil {
		return nil, endpoint{}, err
	}
	cmd := exec.Command(pgbouncerPath(), iniPath)
	cmd.Dir = dir
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	logf("starting pgbouncer (transaction pooling, pool %d) on %s", poolSize, addr)
	p, err := startProc("pgbouncer", cmd)
	if err != nil {
		return nil, endpoint{}, err
	}
	cl.add(p.stop)
	e := ep(addr, "postgres", "bench")
	if err := waitConnect(ctx, p, e.dsn(), 10*time.Second); err != nil {
		return nil, endpoint{}, err
	}
	return p, e, nil
}

// startGateway starts shardgate with an embedded etcd as devcluster does,
// registers the shards and the keyspaces bench (s0, s1) and tpcb (one
// shard, database tpcb on s0's server) with pgbench's vschema, and waits
// until both keyspaces take connections. Clients log in without a password
// (--auth trust, loopback only), as in the tests.
func startGateway(ctx context.Context, root, tmp, binDir string, s0, s1 *pgtest.Cluster, cl *cleanups) (*proc, endpoint, endpoint, error) {
	var listen, admin, etcd string
	for _, a := range []*string{&listen, &admin, &etcd} {
		addr, err := freeAddr()
		if err != nil {
			return nil, endpoint{}, endpoint{}, err
		}
		*a = addr
	}
	gwDir := filepath.Join(tmp, "gateway")
	if err := os.Mkdir(gwDir, 0o700); err != nil {
		return nil, endpoint{}, endpoint{}, err
	}
	cmd := exec.Command(filepath.Join(binDir, "shardgate"), "--data-dir", filepath.Join(gwDir, "etcd"),
		"--listen", listen, "--listen-admin", admin, "--etcd-listen", etcd,
		"--auth", "trust", "--ssl", "disable", "--log-format", "console", "--log-level", "warn",
		"--pool-max-conns", strconv.Itoa(poolSize), "--shutdown-timeout", "5s", "--max-client-conns", "0")
	logf("starting shardgate on %s (embedded etcd on %s)", listen, etcd)
	p, err := startProc("shardgate", cmd)
	if err != nil {
		return nil, endpoint{}, endpoint{}, err
	}
	cl.add(p.stop)
	p.admin, p.etcd = admin, etcd
	if err := waitHealthy(ctx, p, "http://"+admin+"/healthz"); err != nil {
		return nil, endpoint{}, endpoint{}, err
	}
	shardctl := func(args ...string) error {
		c := exec.CommandContext(ctx, filepath.Join(binDir, "shardctl"), append([]string{"--etcd", etcd}, args...)...)
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("shardctl %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
		}
		return nil
	}
	vschema, err := os.ReadFile(filepath.Join(root, "testdata", "vschema", "pgbench.yaml"))
	if err != nil {
		return nil, endpoint{}, endpoint{}, err
	}
	single := strings.Replace(string(vschema), "\n  bench:\n", "\n  tpcb:\n", 1)
	if single == string(vschema) {
		return nil, endpoint{}, endpoint{}, errors.New("testdata/vschema/pgbench.yaml does not define keyspace bench")
	}
	singlePath := filepath.Join(gwDir, "tpcb.yaml")
	if err := os.WriteFile(singlePath, []byte(single), 0o600); err != nil {
		return nil, endpoint{}, endpoint{}, err
	}
	for _, args := range [][]string{
		{"shard", "add", "s0", "--dsn", s0.DSN("postgres")},
		{"shard", "add", "s1", "--dsn", s1.DSN("postgres")},
		{"shard", "add", "t0", "--dsn", s0.DSN("tpcb")},
		{"keyspace", "create", "bench", "--logical-shards", "64", "--shards", "s0,s1"},
		{"vschema", "apply", filepath.Join(root, "testdata", "vschema", "pgbench.yaml")},
		{"keyspace", "create", "tpcb", "--logical-shards", "64", "--shards", "t0"},
		{"vschema", "apply", singlePath},
	} {
		if err := shardctl(args...); err != nil {
			return nil, endpoint{}, endpoint{}, err
		}
	}
	sharded, one := ep(listen, "app", "bench"), ep(listen, "app", "tpcb")
	for _, e := range []endpoint{sharded, one} {
		if err := waitConnect(ctx, p, e.dsn(), 15*time.Second); err != nil {
			return nil, endpoint{}, endpoint{}, err
		}
	}
	return p, sharded, one, nil
}

// waitHealthy polls the gateway's health endpoint until it answers.
func waitHealthy(ctx context.Context, p *proc, url string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := p.running(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("shardgate did not become healthy within 60s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
