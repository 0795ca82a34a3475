package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/internal/testcert"
	"github.com/shardgate/shardgate/topology"
)

// tlsEtcd is an embedded etcd that serves clients over TLS and accepts only
// those with a certificate from its CA, and the files such a client needs.
type tlsEtcd struct {
	endpoint      string
	ca, cert, key string
}

func startTLSEtcd(t *testing.T) *tlsEtcd {
	t.Helper()
	dir := t.TempDir()
	ca, err := testcert.NewCA(dir, "etcd-ca")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue(dir, "etcd-server", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(dir, "shardctl")
	if err != nil {
		t.Fatal(err)
	}
	e, err := topology.StartEmbedded(t.Context(), filepath.Join(dir, "data"), "", zap.NewNop(), topology.WithClientTLS(topology.EmbeddedTLS{
		CertFile: server.CertFile, KeyFile: server.KeyFile, TrustedCAFile: ca.CertFile, ClientCertAuth: true,
	}))
	if err != nil {
		t.Fatalf("starting embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	return &tlsEtcd{endpoint: e.Endpoints()[0], ca: ca.CertFile, cert: client.CertFile, key: client.KeyFile}
}

func TestEtcdClientCertificate(t *testing.T) {
	t.Parallel()
	et := startTLSEtcd(t)
	cluster := clusterFor(t)
	withCert := []string{"--etcd", et.endpoint, "--cluster", cluster, "--etcd-ca", et.ca, "--etcd-cert", et.cert, "--etcd-key", et.key}
	runCLI(t, "", append(withCert, "shard", "add", "s0", "--dsn", "postgres://127.0.0.1:5432/app")...).ok(t)
	if out := runCLI(t, "", append(withCert, "shard", "list")...).ok(t); !strings.Contains(out, "s0") {
		t.Errorf("shard list over TLS = %q, want s0", out)
	}

	// etcd refuses the handshake; the client retries until --timeout, as
	// it would for an etcd that is down.
	for name, args := range map[string][]string{
		"no client certificate": {"--etcd-ca", et.ca},
		"untrusted server":      {"--etcd-cert", et.cert, "--etcd-key", et.key},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			r := runCLI(t, "", append(append([]string{"--etcd", et.endpoint, "--cluster", cluster, "--timeout", "1s"}, args...), "shard", "list")...)
			elapsed := time.Since(start)
			r.fails(t, "no answer from etcd at "+et.endpoint+" within 1s", "certificate", "--etcd-ca, --etcd-cert")
			if elapsed > 10*time.Second {
				t.Errorf("took %v with --timeout 1s", elapsed)
			}
		})
	}
}

// TestEtcdClientCertificateEnv cannot run in parallel: it sets the process
// environment, which the flag defaults are read from.
func TestEtcdClientCertificateEnv(t *testing.T) {
	et := startTLSEtcd(t)
	t.Setenv("SHARDGATE_ETCD", et.endpoint)
	t.Setenv("SHARDGATE_CLUSTER", clusterFor(t))
	t.Setenv("SHARDGATE_ETCD_CA", et.ca)
	t.Setenv("SHARDGATE_ETCD_CERT", et.cert)
	t.Setenv("SHARDGATE_ETCD_KEY", et.key)
	runCLI(t, "", "shard", "add", "s0", "--dsn", "postgres://127.0.0.1:5432/app").ok(t)
	if out := runCLI(t, "", "shard", "list").ok(t); !strings.Contains(out, "s0") {
		t.Errorf("shard list with SHARDGATE_ETCD_* = %q, want s0", out)
	}
}

func TestEtcdSecurityFlagErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := testcert.NewCA(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(dir, "client")
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	notPEM := writeSecret(t, dir, "not.pem", "hello\n")
	empty := writeSecret(t, dir, "empty", "\n")
	// Nothing listens here: every case must fail before it dials.
	etcd := closedPort(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"missing CA", []string{"--etcd-ca", missing}, []string{"--etcd-ca: open " + missing, "no such file"}},
		{"CA not PEM", []string{"--etcd-ca", notPEM}, []string{"--etcd-ca: " + notPEM + " holds no PEM certificate"}},
		{"cert without key", []string{"--etcd-cert", client.CertFile}, []string{"--etcd-cert and --etcd-key go together", "'shardctl shard list --help'"}},
		{"key without cert", []string{"--etcd-key", client.KeyFile}, []string{"--etcd-cert and --etcd-key go together"}},
		{"missing cert", []string{"--etcd-cert", missing, "--etcd-key", client.KeyFile}, []string{"--etcd-cert/--etcd-key: open " + missing}},
		{"key not a key", []string{"--etcd-cert", client.CertFile, "--etcd-key", ca.CertFile}, []string{"--etcd-cert/--etcd-key:"}},
		{"TLS over http", []string{"--etcd", "http://" + etcd, "--etcd-ca", ca.CertFile}, []string{"--etcd http://" + etcd + " is plain http", "https://"}},
		{"username without password", []string{"--etcd-username", "root"}, []string{"--etcd-username and --etcd-password-file go together"}},
		{"password without username", []string{"--etcd-password-file", empty}, []string{"--etcd-username and --etcd-password-file go together"}},
		{"missing password file", []string{"--etcd-username", "root", "--etcd-password-file", missing}, []string{"--etcd-password-file: open " + missing}},
		{"empty password file", []string{"--etcd-username", "root", "--etcd-password-file", empty}, []string{"--etcd-password-file: " + empty + ": first line is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"--etcd", etcd, "--timeout", "10s"}, tt.args...), "shard", "list")
			start := time.Now()
			runCLI(t, "", args...).fails(t, tt.want...)
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("took %v: it dialled etcd", elapsed)
			}
		})
	}
}

func TestEtcdPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	enableEtcdAuth(t, e.endpoint, "shardctl", "pa55word", "/shardgate/"+e.cluster+"/")
	dir := t.TempDir()
	good := writeSecret(t, dir, "good", "pa55word\nignored\n")
	bad := writeSecret(t, dir, "bad", "wrong\n")

	as := func(user, passwordFile string, args ...string) result {
		return e.run("", append([]string{"--etcd-username", user, "--etcd-password-file", passwordFile, "--timeout", "5s"}, args...)...)
	}
	as("shardctl", good, "shard", "add", "s0", "--dsn", "postgres://127.0.0.1:5432/app").ok(t)
	if out := as("shardctl", good, "shard", "list").ok(t); !strings.Contains(out, "s0") {
		t.Errorf("shard list as shardctl = %q, want s0", out)
	}
	as("shardctl", bad, "shard", "list").fails(t, "connecting to etcd at "+e.endpoint, "authentication failed")
	as("nobody", good, "shard", "list").fails(t, "authentication failed")
	e.run("", "--timeout", "5s", "shard", "list").fails(t, "user name is empty")
	// With a user name the client authenticates before the first request;
	// an etcd that is not there must still fail within --timeout.
	start := time.Now()
	runCLI(t, "", "--etcd", closedPort(t), "--etcd-username", "shardctl", "--etcd-password-file", good, "--timeout", "1s", "shard", "list").
		fails(t, "connecting to etcd", "no answer from etcd", "within 1s")
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("unreachable etcd with a user name: took %v with --timeout 1s", elapsed)
	}
	// The role grants only this cluster's keys.
	e.withCluster(e.cluster+"-other").run("", "--etcd-username", "shardctl", "--etcd-password-file", good, "shard", "list").fails(t, "permission denied")
}

// enableEtcdAuth turns on etcd's authentication with a root user and adds
// user with readwrite access to the keys under prefix. Nothing can be done
// on the etcd without a user afterwards.
func enableEtcdAuth(t *testing.T, endpoint, user, password, prefix string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := t.Context()
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

func writeSecret(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
