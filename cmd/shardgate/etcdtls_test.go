package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/internal/testcert"
	"github.com/shardgate/shardgate/topology"
)

// externalEtcd is an etcd that wants credentials, as an external cluster
// would, and the global shardctl flags that carry them.
type externalEtcd struct {
	t         *testing.T
	endpoints []string
	ctlArgs   []string
}

// shardctl runs the CLI with e's credentials and checks its exit code.
func (e *externalEtcd) shardctl(wantCode int, args ...string) {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "shardctl"), append(append([]string{}, e.ctlArgs...), args...)...)
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
}

// loadApp registers shards s0 and s1 and keyspace app, as newEnv does.
func (e *externalEtcd) loadApp(shards []*pgtest.Cluster) {
	e.t.Helper()
	for i, c := range shards {
		e.shardctl(0, "shard", "add", "s"+itoa(i), "--dsn", c.DSN("postgres"))
	}
	e.shardctl(0, "keyspace", "create", "app", "--logical-shards", "256", "--shards", "s0,s1")
	e.shardctl(0, "vschema", "apply", repoPath("testdata/vschema/app.yaml"))
}

// checkGatewayQueries runs a write and a read through gw.
func checkGatewayQueries(t *testing.T, gw *gateway) {
	t.Helper()
	c := gw.connect("app")
	mustQuery(t, c, "create table users (id bigint primary key, name text, email text, country text)")
	mustQuery(t, c, "insert into users (id, name) values (1, 'a'), (2, 'b'), (3, 'c')")
	if got := mustQuery(t, c, "select name from users where id = 2"); len(got) != 1 || got[0][0] != "b" {
		t.Errorf("select through the gateway = %q, want [[b]]", got)
	}
}

// gatewayFails runs shardgate, which must exit non-zero within a minute, and
// returns its output.
func gatewayFails(t *testing.T, etcd []string, extraArgs ...string) string {
	t.Helper()
	args := append([]string{"--etcd", strings.Join(etcd, ","), "--listen", freeAddr(t), "--listen-admin", freeAddr(t), "--auth", "trust"}, extraArgs...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "shardgate"), args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("shardgate %s still running after a minute:\n%s", strings.Join(extraArgs, " "), out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("shardgate %s: %v, want a non-zero exit\n%s", strings.Join(extraArgs, " "), err, out)
	}
	return string(out)
}

// TestEtcdClientCertificate runs the gateway against an etcd that serves
// TLS and accepts only clients with a certificate from its CA.
func TestEtcdClientCertificate(t *testing.T) {
	shards := pgtest.Start(t, 2)
	dir := t.TempDir()
	ca, err := testcert.NewCA(dir, "etcd-ca")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue(dir, "etcd-server", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(dir, "etcd-client")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	et, err := topology.StartEmbedded(ctx, filepath.Join(dir, "etcd"), "", zap.NewNop(), topology.WithClientTLS(topology.EmbeddedTLS{
		CertFile: server.CertFile, KeyFile: server.KeyFile, TrustedCAFile: ca.CertFile, ClientCertAuth: true,
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(et.Close)
	eps := et.Endpoints()
	if !strings.HasPrefix(eps[0], "https://") {
		t.Fatalf("endpoints %q, want https", eps)
	}
	creds := []string{"--etcd-ca", ca.CertFile, "--etcd-cert", client.CertFile, "--etcd-key", client.KeyFile}
	e := &externalEtcd{t: t, endpoints: eps, ctlArgs: append([]string{"--etcd", strings.Join(eps, ",")}, creds...)}
	e.loadApp(shards)

	checkGatewayQueries(t, startGateway(t, eps, creds...))

	t.Run("without client certificate", func(t *testing.T) {
		out := gatewayFails(t, eps, "--etcd-ca", ca.CertFile, "--topology-timeout", "2s")
		if !strings.Contains(out, "no topology from etcd ["+eps[0]+"]") || !strings.Contains(out, "after 2s") {
			t.Errorf("shardgate without a client certificate says:\n%s\nwant no topology from etcd %s after 2s", out, eps[0])
		}
	})
	t.Run("unreadable certificate", func(t *testing.T) {
		missing := filepath.Join(dir, "missing.crt")
		out := gatewayFails(t, eps, "--etcd-ca", ca.CertFile, "--etcd-cert", missing, "--etcd-key", client.KeyFile)
		if !strings.Contains(out, "etcd client certificate: open "+missing) {
			t.Errorf("shardgate with a missing client certificate says:\n%s", out)
		}
	})
}

// TestEtcdPassword runs the gateway against an etcd with authentication on,
// as a user that may use only the cluster's keys.
func TestEtcdPassword(t *testing.T) {
	shards := pgtest.Start(t, 2)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	et, err := topology.StartEmbedded(ctx, filepath.Join(dir, "etcd"), "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(et.Close)
	eps := et.Endpoints()
	enableEtcdAuth(t, eps, "shardgate", "gw-pa55word", "/shardgate/local/")
	good := filepath.Join(dir, "good.pw")
	bad := filepath.Join(dir, "bad.pw")
	for f, pw := range map[string]string{good: "gw-pa55word\n", bad: "wrong\n"} {
		if err := os.WriteFile(f, []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	creds := []string{"--etcd-username", "shardgate", "--etcd-password-file", good}
	e := &externalEtcd{t: t, endpoints: eps, ctlArgs: append([]string{"--etcd", strings.Join(eps, ",")}, creds...)}
	e.loadApp(shards)

	checkGatewayQueries(t, startGateway(t, eps, creds...))

	t.Run("wrong password", func(t *testing.T) {
		out := gatewayFails(t, eps, "--etcd-username", "shardgate", "--etcd-password-file", bad)
		if !strings.Contains(out, "authentication failed") {
			t.Errorf("shardgate with a wrong etcd password says:\n%s", out)
		}
	})
	t.Run("no user", func(t *testing.T) {
		out := gatewayFails(t, eps, "--topology-timeout", "2s")
		if !strings.Contains(out, "no topology from etcd") || !strings.Contains(out, "user name is empty") {
			t.Errorf("shardgate without an etcd user says:\n%s", out)
		}
	})
}

// enableEtcdAuth turns on etcd's authentication with a root user and adds
// user with readwrite access to the keys under prefix.
func enableEtcdAuth(t *testing.T, endpoints []string, user, password, prefix string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, "root", "root-pa55word"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, user); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, user, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, user, password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, user, user); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("enabling etcd auth, step %d: %v", i, err)
		}
	}
}
