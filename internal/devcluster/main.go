// Command devcluster is what `make run` starts: two local Postgres shards, a
// shardgate with embedded etcd, and the sample keyspace app, kept so that a
// second run finds its data again: the gateway's under .run/, the shards'
// there too unless the servers run as another OS user (see shardsDir).
// Ctrl-C stops everything; -clean removes what runs kept.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/internal/testcert"
)

func main() {
	var (
		runDir    = flag.String("dir", ".run", "where the shards' and etcd's data live")
		bin       = flag.String("bin", "bin", "directory holding the shardgate and shardctl binaries")
		listen    = flag.String("listen", "127.0.0.1:6432", "the gateway's Postgres address")
		admin     = flag.String("admin", "127.0.0.1:9090", "the gateway's admin HTTP address")
		etcd      = flag.String("etcd", "127.0.0.1:2379", "the embedded etcd's client address")
		firstPort = flag.Int("shard-port", 15432, "port of the first shard; the second uses the next")
		clean     = flag.Bool("clean", false, "remove the data that runs keep (the gateway's and the shards') and exit")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := cluster{repo: ".", runDir: *runDir, bin: *bin, listen: *listen, admin: *admin, etcd: *etcd, firstPort: *firstPort, out: os.Stdout}
	run := c.run
	if *clean {
		run = func(context.Context) error { return c.clean() }
	}
	if err := run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "devcluster: %v\n", err)
		os.Exit(1)
	}
}

// cluster is what a dev cluster is made of and where it prints.
type cluster struct {
	repo                             string // the repository, for testdata/
	runDir, bin, listen, admin, etcd string
	firstPort                        int
	out                              io.Writer
}

// The sample user and its password: a development cluster on loopback.
const (
	sampleUser     = "app"
	samplePassword = "app"
	// The sample admin of the admin console (database shardgate).
	sampleAdmin         = "admin"
	sampleAdminPassword = "admin"
)

// The sample keyspace app lives in a database of the same name on each
// shard, owned by shardRole, the role the gateway logs in to the shards as.
// That role is no superuser, so the sample user can neither read server
// files nor run programs on the shards: the habit a production deployment
// needs too.
const (
	shardDB   = "app"
	shardRole = "app"
)

// shardCount is how many shards the dev cluster has.
const shardCount = 2

// shardPasswordFile, in the gateway's data directory, holds shardRole's
// password; the shards are registered with a reference to it.
const shardPasswordFile = "shard-role.password"

func (c *cluster) run(ctx context.Context) error {
	runDir, err := filepath.Abs(c.runDir)
	if err != nil {
		return err
	}
	bin, listen, admin, etcd, out := c.bin, c.listen, c.admin, c.etcd, c.out
	gatewayDir := filepath.Join(runDir, "gateway")
	if err := os.MkdirAll(gatewayDir, 0o700); err != nil {
		return err
	}
	dataDir, err := shardsDir(runDir)
	if err != nil {
		return err
	}
	if dataDir != runDir {
		if err := pgtest.MkdirServer(dataDir); err != nil {
			return err
		}
	}
	password, err := shardPassword(filepath.Join(gatewayDir, shardPasswordFile))
	if err != nil {
		return err
	}
	var shards []*pgtest.Cluster
	defer func() {
		for _, c := range shards {
			if err := c.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "devcluster: stopping a shard: %v\n", err)
			}
		}
	}()
	for i := range shardCount {
		sh, err := c.startShard(ctx, dataDir, i, password)
		if sh != nil {
			shards = append(shards, sh)
		}
		if err != nil {
			return fmt.Errorf("shard s%d: %w", i, err)
		}
	}

	certs, err := localCertificate(filepath.Join(gatewayDir, "tls"))
	if err != nil {
		return err
	}
	gw := exec.Command(filepath.Join(bin, "shardgate"), "--data-dir", gatewayDir,
		"--listen", listen, "--listen-admin", admin, "--etcd-listen", etcd, "--log-format", "console", "--log-level", "warn",
		"--tls-cert", certs.CertFile, "--tls-key", certs.KeyFile, "--ssl", "allow")
	gw.Stdout, gw.Stderr = out, out
	// The gateway gets its own process group so that Ctrl-C reaches only
	// devcluster, which then drains the gateway before stopping the shards.
	gw.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := gw.Start(); err != nil {
		return fmt.Errorf("start shardgate: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- gw.Wait() }()
	defer func() {
		_ = gw.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	if err := waitHealthy(ctx, "http://"+admin+"/healthz", exited); err != nil {
		return err
	}

	shardctl := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "shardctl"), append([]string{"--etcd", etcd}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("shardctl %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
		}
		return string(out), nil
	}
	if err := loadSample(shardctl, shards, gatewayDir, c.repo); err != nil {
		return err
	}
	if err := addAdmin(shardctl, gatewayDir); err != nil {
		return err
	}
	if err := checkRegistered(shardctl, shards, gatewayDir); err != nil {
		return err
	}
	if missing, err := schemaMissing(ctx, shards[0]); err != nil {
		return err
	} else if missing {
		if err := createSchema(ctx, listen, c.repo, out); err != nil {
			return err
		}
	}
	c.printReady(dataDir, gatewayDir)
	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "\nstopping")
		return nil
	case err := <-exited:
		exited <- err // for the deferred wait
		return fmt.Errorf("shardgate exited: %v", err)
	}
}

// startShard starts shard i with its data in dataDir and gives it the
// sample's role and database. A shard that started is returned even with an
// error, for the caller to stop.
func (c *cluster) startShard(ctx context.Context, dataDir string, i int, password string) (*pgtest.Cluster, error) {
	dir := shardDir(dataDir, i)
	fmt.Fprintf(c.out, "starting Postgres shard s%d on 127.0.0.1:%d, data in %s\n", i, c.firstPort+i, dir)
	sh, err := pgtest.StartCluster(ctx, pgtest.Options{Dir: dir, Port: c.firstPort + i})
	if err != nil {
		return nil, err
	}
	return sh, prepareShard(ctx, sh, password)
}

// printReady tells how to connect and where the data lives.
func (c *cluster) printReady(dataDir, gatewayDir string) {
	owner := "this user"
	if name, other, err := pgtest.ServerUser(); err == nil && other {
		owner = "OS user " + name
	}
	fmt.Fprintf(c.out, `
shardgate is running: keyspace app on shards s0 (127.0.0.1:%d) and s1 (127.0.0.1:%d).
Connect with:

    psql "%s"

The gateway reaches the shards as role %s, which owns database %s there and is no superuser.
Data: the shards' in %s (owned by %s), the gateway's and etcd's in %s.
Status page: http://%s/  (also /readyz, /topology, /metrics, /debug/pprof/)
Admin console (SHOW POOLS, SHOW CLIENTS, SHOW SHARDS, PAUSE, RESUME, ...):

    psql "%s"

Topology: %s --etcd %s topology show app
Press Ctrl-C to stop.
`, c.firstPort, c.firstPort+1, psqlDSN(c.listen), shardRole, shardDB, dataDir, owner, gatewayDir,
		c.admin, consoleDSN(c.listen), filepath.Join(c.bin, "shardctl"), c.etcd)
}

// psqlDSN is the connection string the cluster prints: the sample user
// over TLS (the gateway's self-signed certificate is not verified).
func psqlDSN(listen string) string {
	host, port, _ := strings.Cut(listen, ":")
	return fmt.Sprintf("host=%s port=%s dbname=app user=%s password=%s sslmode=require", host, port, sampleUser, samplePassword)
}

// consoleDSN is the connection string of the admin console as the sample
// admin.
func consoleDSN(listen string) string {
	host, port, _ := strings.Cut(listen, ":")
	return fmt.Sprintf("host=%s port=%s dbname=shardgate user=%s password=%s sslmode=require", host, port, sampleAdmin, sampleAdminPassword)
}

// localCertificate makes a self-signed certificate for the gateway in dir
// unless a previous run did.
func localCertificate(dir string) (*testcert.Pair, error) {
	p := &testcert.Pair{CertFile: filepath.Join(dir, "shardgate.crt"), KeyFile: filepath.Join(dir, "shardgate.key")}
	if _, err := os.Stat(p.KeyFile); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	_, p, err := testcert.SelfSigned(dir, "localhost", "127.0.0.1")
	return p, err
}

// loadSample registers the shards, the sample keyspace and the sample user
// unless a previous run did.
func loadSample(shardctl func(...string) (string, error), shards []*pgtest.Cluster, dir, repo string) error {
	if _, err := shardctl("vschema", "show", "app"); err == nil {
		return nil
	}
	for i, c := range shards {
		_, err := shardctl("shard", "add", fmt.Sprintf("s%d", i), "--dsn", shardDSN(c), "--password-file", filepath.Join(dir, shardPasswordFile))
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			return err
		}
	}
	if _, err := shardctl("keyspace", "create", "app", "--logical-shards", "256", "--shards", "s0,s1"); err != nil && !strings.Contains(err.Error(), "already exists") {
		return err
	}
	if _, err := shardctl("vschema", "apply", filepath.Join(repo, "testdata", "vschema", "app.yaml")); err != nil {
		return err
	}
	pw := filepath.Join(dir, sampleUser+".password")
	if err := os.WriteFile(pw, []byte(samplePassword+"\n"), 0o600); err != nil {
		return err
	}
	if _, err := shardctl("user", "add", sampleUser, "--keyspace", "app", "--password-file", pw); err != nil && !strings.Contains(err.Error(), "already exists") {
		return err
	}
	return nil
}

// addAdmin adds the sample admin of the admin console unless a previous
// run did.
func addAdmin(shardctl func(...string) (string, error), dir string) error {
	pw := filepath.Join(dir, sampleAdmin+".password")
	if err := os.WriteFile(pw, []byte(sampleAdminPassword+"\n"), 0o600); err != nil {
		return err
	}
	if _, err := shardctl("user", "add", sampleAdmin, "--admin", "--password-file", pw); err != nil && !strings.Contains(err.Error(), "already exists") {
		return err
	}
	return nil
}

// checkRegistered makes sure the shards registered in etcd are this run's:
// shard entries cannot be changed in place, and the gateway's data may
// have been made by an older devcluster (which logged in as the superuser)
// or for other ports.
func checkRegistered(shardctl func(...string) (string, error), shards []*pgtest.Cluster, dir string) error {
	list, err := shardctl("shard", "list")
	if err != nil {
		return err
	}
	registered := map[string]string{}
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] != "NAME" {
			registered[f[0]] = f[1]
		}
	}
	for i, c := range shards {
		name := fmt.Sprintf("s%d", i)
		if got, want := registered[name], shardDSN(c); got != want {
			return fmt.Errorf("etcd in %s registers shard %s as %q, not %q: that data was made by an older "+
				"devcluster or for other ports; run `make clean` to start over", dir, name, got, want)
		}
	}
	return nil
}

// shardDSN is how the gateway reaches a shard: as shardRole, to the
// keyspace's database. It holds no password; the shard's password_file
// does (pgtest's servers trust loopback, but the reference is what a
// production shard needs).
func shardDSN(c *pgtest.Cluster) string {
	u := url.URL{Scheme: "postgres", User: url.User(shardRole), Host: c.Host + ":" + strconv.Itoa(c.Port),
		Path: "/" + shardDB, RawQuery: "sslmode=disable"}
	return u.String()
}

// shardPassword returns shardRole's password from path, making a random
// one on the first run. It is base32, so it needs no quoting in SQL.
func shardPassword(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	password := rand.Text()
	return password, os.WriteFile(path, []byte(password+"\n"), 0o600)
}

// prepareShard makes shardRole (a login role with no privilege beyond its
// own objects) and its database on a shard, and sets the role's password
// to the current one. Every run does it, so a shard made by an older
// devcluster gets them too.
func prepareShard(ctx context.Context, c *pgtest.Cluster, password string) error {
	conn, err := pgconn.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	stmts := []string{
		fmt.Sprintf(`DO $$ BEGIN CREATE ROLE %s; EXCEPTION WHEN duplicate_object THEN NULL; END $$`, shardRole),
		fmt.Sprintf(`ALTER ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '%s'`, shardRole, password),
	}
	res := conn.ExecParams(ctx, "SELECT 1 FROM pg_database WHERE datname = $1", [][]byte{[]byte(shardDB)}, nil, nil, nil).Read()
	if res.Err != nil {
		return res.Err
	}
	if len(res.Rows) == 0 {
		// CREATE DATABASE cannot run inside the DO block's transaction.
		stmts = append(stmts, fmt.Sprintf("CREATE DATABASE %s OWNER %s", shardDB, shardRole))
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s).ReadAll(); err != nil {
			// Not the statement: it holds the password.
			return fmt.Errorf("making role %s and database %s: %w", shardRole, shardDB, err)
		}
	}
	return nil
}

// schemaMissing reports whether the sample tables are still to be made: the
// shards' data decides, not etcd, since either may be new.
func schemaMissing(ctx context.Context, c *pgtest.Cluster) (bool, error) {
	conn, err := pgconn.Connect(ctx, c.DSN(shardDB))
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	res := conn.ExecParams(ctx, "SELECT to_regclass('public.users') IS NULL", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return false, res.Err
	}
	return string(res.Rows[0][0]) == "t", nil
}

// shardsDir is where the shards' data directories live. When the servers
// run as another OS user (postgres, because we are root), that user must be
// able to reach them, and a checkout may sit in a folder it cannot enter (a
// mktemp -d folder, root's home): the data then lives in a folder of that
// user's under /var/tmp (which, unlike /tmp, survives a reboot), named from
// the run directory's path so that each checkout has its own and finds it
// again. Otherwise it lives in the run directory.
func shardsDir(runDir string) (string, error) {
	_, other, err := pgtest.ServerUser()
	if err != nil || !other {
		return runDir, err
	}
	if p, err := filepath.EvalSymlinks(runDir); err == nil {
		runDir = p
	}
	sum := sha256.Sum256([]byte(runDir))
	return filepath.Join("/var/tmp", "shardgate-dev-"+hex.EncodeToString(sum[:8])), nil
}

// shardDir is the data directory of shard i.
func shardDir(dataDir string, i int) string { return filepath.Join(dataDir, fmt.Sprintf("s%d", i)) }

// clean removes what runs keep: the run directory and the shards' data. It
// refuses while a shard's server runs, which would go on without its files.
func (c *cluster) clean() error {
	runDir, err := filepath.Abs(c.runDir)
	if err != nil {
		return err
	}
	dirs := []string{runDir}
	// Without a server user to run them, no shard can have been made.
	dataDir, err := shardsDir(runDir)
	if err == nil && dataDir != runDir {
		dirs = append(dirs, dataDir)
	}
	if err == nil && serving(dataDir) {
		return fmt.Errorf("a dev cluster still runs on %s: stop it (Ctrl-C) first", dataDir)
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "removed %s\n", d)
	}
	return nil
}

// createSchema creates the sample tables through the gateway and fills them.
func createSchema(ctx context.Context, listen, repo string, out io.Writer) error {
	var conn *pgconn.PgConn
	var err error
	// The gateway picks up the new keyspace and user through its etcd watch.
	for deadline := time.Now().Add(10 * time.Second); ; {
		conn, err = pgconn.Connect(ctx, psqlDSN(listen))
		if err == nil || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("connect to shardgate: %w", err)
	}
	defer conn.Close(ctx)
	schema, err := os.ReadFile(filepath.Join(repo, "testdata", "sql", "app_schema.sql"))
	if err != nil {
		return err
	}
	stmts := strings.Split(strings.TrimSpace(string(schema)), ";\n")
	countries := []string{"de", "fr", "jp", "us"}
	for id := 1; id <= 100; id++ {
		stmts = append(stmts,
			fmt.Sprintf("INSERT INTO users (id, name, email, country) VALUES (%d, 'user %d', 'user%d@example.com', '%s')", id, id, id, countries[id%4]),
			fmt.Sprintf("INSERT INTO orders (user_id, id, amount) VALUES (%d, 1, %d.50), (%d, 2, %d.25)", id, id, id, id*2))
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s).ReadAll(); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	fmt.Fprintln(out, "created the sample tables users, orders (sharded by user id) and countries (reference), with 100 users")
	return nil
}

// waitHealthy polls the gateway's health endpoint until it answers.
func waitHealthy(ctx context.Context, url string, exited chan error) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("shardgate exited at start: %v", err)
		case <-deadline:
			return errors.New("shardgate did not become healthy within 60s")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// serving reports whether a server runs on one of the shards' data
// directories: its postmaster.pid names a live process.
func serving(dataDir string) bool {
	for i := range shardCount {
		b, err := os.ReadFile(filepath.Join(shardDir(dataDir, i), "postmaster.pid"))
		if err != nil {
			continue
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if pid, err := strconv.Atoi(first); err == nil && pid > 0 && syscall.Kill(pid, 0) != syscall.ESRCH {
			return true
		}
	}
	return false
}
