// Command devcluster is what `make run` starts: two local Postgres shards, a
// shardgate with embedded etcd, and the sample keyspace app, all kept under
// .run/ so that a second run finds its data again. Ctrl-C stops everything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := cluster{repo: ".", runDir: *runDir, bin: *bin, listen: *listen, admin: *admin, etcd: *etcd, firstPort: *firstPort, out: os.Stdout}
	if err := c.run(ctx); err != nil {
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
)

func (c *cluster) run(ctx context.Context) error {
	runDir, err := filepath.Abs(c.runDir)
	if err != nil {
		return err
	}
	bin, listen, admin, etcd, firstPort, out := c.bin, c.listen, c.admin, c.etcd, c.firstPort, c.out
	if err := os.MkdirAll(runDir, 0o755); err != nil {
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
	for i := range 2 {
		fmt.Fprintf(out, "starting Postgres shard s%d on 127.0.0.1:%d\n", i, firstPort+i)
		c, err := pgtest.StartCluster(ctx, pgtest.Options{Dir: filepath.Join(runDir, fmt.Sprintf("s%d", i)), Port: firstPort + i})
		if err != nil {
			return fmt.Errorf("shard s%d: %w", i, err)
		}
		shards = append(shards, c)
	}

	certs, err := localCertificate(filepath.Join(runDir, "gateway", "tls"))
	if err != nil {
		return err
	}
	gw := exec.Command(filepath.Join(bin, "shardgate"), "--data-dir", filepath.Join(runDir, "gateway"),
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

	shardctl := func(args ...string) error {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "shardctl"), append([]string{"--etcd", etcd}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("shardctl %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
		}
		return nil
	}
	created, err := loadSample(ctx, shardctl, shards, filepath.Join(runDir, "gateway"), c.repo)
	if err != nil {
		return err
	}
	if created {
		if err := createSchema(ctx, listen, c.repo, out); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, `
shardgate is running: keyspace app on shards s0 (127.0.0.1:%d) and s1 (127.0.0.1:%d).
Connect with:

    psql "%s"

Admin: http://%s/readyz  http://%s/topology
Topology: %s --etcd %s topology show app
Press Ctrl-C to stop.
`, firstPort, firstPort+1, psqlDSN(listen), admin, admin, filepath.Join(bin, "shardctl"), etcd)
	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "\nstopping")
		return nil
	case err := <-exited:
		exited <- err // for the deferred wait
		return fmt.Errorf("shardgate exited: %v", err)
	}
}

// psqlDSN is the connection string the cluster prints: the sample user
// over TLS (the gateway's self-signed certificate is not verified).
func psqlDSN(listen string) string {
	host, port, _ := strings.Cut(listen, ":")
	return fmt.Sprintf("host=%s port=%s dbname=app user=%s password=%s sslmode=require", host, port, sampleUser, samplePassword)
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
// unless a previous run did. It reports whether it created the keyspace.
func loadSample(ctx context.Context, shardctl func(...string) error, shards []*pgtest.Cluster, dir, repo string) (bool, error) {
	if err := shardctl("vschema", "show", "app"); err == nil {
		return false, nil
	}
	for i, c := range shards {
		if err := shardctl("shard", "add", fmt.Sprintf("s%d", i), "--dsn", c.DSN("postgres")); err != nil && !strings.Contains(err.Error(), "already exists") {
			return false, err
		}
	}
	if err := shardctl("keyspace", "create", "app", "--logical-shards", "256", "--shards", "s0,s1"); err != nil && !strings.Contains(err.Error(), "already exists") {
		return false, err
	}
	if err := shardctl("vschema", "apply", filepath.Join(repo, "testdata", "vschema", "app.yaml")); err != nil {
		return false, err
	}
	pw := filepath.Join(dir, sampleUser+".password")
	if err := os.WriteFile(pw, []byte(samplePassword+"\n"), 0o600); err != nil {
		return false, err
	}
	if err := shardctl("user", "add", sampleUser, "--keyspace", "app", "--password-file", pw); err != nil && !strings.Contains(err.Error(), "already exists") {
		return false, err
	}
	return true, nil
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
