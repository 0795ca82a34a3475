package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/topology"
)

// testEnv is one test's real etcd and the cluster name the test owns in it.
type testEnv struct {
	t        *testing.T
	endpoint string
	cluster  string
}

// newEnv starts an embedded etcd for the test and picks a cluster name
// unique to it.
func newEnv(t *testing.T) *testEnv {
	t.Helper()
	e, err := topology.StartEmbedded(t.Context(), t.TempDir(), "", zap.NewNop())
	if err != nil {
		t.Fatalf("starting embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	return &testEnv{t: t, endpoint: e.Endpoints()[0], cluster: clusterFor(t)}
}

// clusterFor turns the test's name into a valid --cluster.
func clusterFor(t *testing.T) string {
	return "test-" + strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, t.Name())
}

// withCluster returns an env on the same etcd for another cluster.
func (e *testEnv) withCluster(name string) *testEnv {
	return &testEnv{t: e.t, endpoint: e.endpoint, cluster: name}
}

// result is what one shardctl run left behind.
type result struct {
	code           int
	stdout, stderr string
}

// run runs shardctl against the env's etcd and cluster, with stdin as input.
func (e *testEnv) run(stdin string, args ...string) result {
	e.t.Helper()
	return runCLI(e.t, stdin, append([]string{"--etcd", e.endpoint, "--cluster", e.cluster}, args...)...)
}

// runCLI runs shardctl in-process with exactly args. A generous time limit
// keeps a hanging command from hanging the test binary.
func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// ok fails the test unless r succeeded, and returns its stdout.
func (r result) ok(t *testing.T) string {
	t.Helper()
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q, stdout %q; want success", r.code, r.stderr, r.stdout)
	}
	return r.stdout
}

// fails checks that r failed the way every shardctl error must: exit 1,
// nothing on stdout, and exactly one line "shardctl: ..." on stderr that
// contains each of want.
func (r result) fails(t *testing.T, want ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit %d, want 1 (stdout %q, stderr %q)", r.code, r.stdout, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "shardctl: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr %q, want exactly one line \"shardctl: ...\"", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not contain %q", r.stderr, w)
		}
	}
}

// store opens the env's cluster directly, to check what the CLI stored.
func (e *testEnv) store() *topology.Store {
	e.t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{e.endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cli.Close() })
	return topology.NewStore(cli, e.cluster)
}

// load reads the env's topology.
func (e *testEnv) load() *topology.Snapshot {
	e.t.Helper()
	snap, err := e.store().Load(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	return snap
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	// Nothing listens here: a command that got as far as etcd would fail
	// with a different message than the one expected.
	etcd := closedPort(t)
	tests := []struct {
		args []string
		want []string
	}{
		{nil, []string{"missing command", "shard", "'shardctl --help'"}},
		{[]string{"shrad"}, []string{`unknown command "shrad"`, `did you mean "shard"`, "'shardctl --help'"}},
		{[]string{"shard"}, []string{"missing command", "add, list", "'shardctl shard --help'"}},
		{[]string{"shard", "bogus"}, []string{`unknown command "bogus" for "shardctl shard"`, "'shardctl shard --help'"}},
		{[]string{"shard", "add"}, []string{"missing NAME", "'shardctl shard add --help'"}},
		{[]string{"shard", "add", "s0"}, []string{"missing --dsn", "'shardctl shard add --help'"}},
		{[]string{"shard", "add", "s0", "s1", "--dsn", "x"}, []string{`unexpected argument "s1"`}},
		{[]string{"shard", "add", "s0", "--bogus"}, []string{"unknown flag: --bogus", "'shardctl shard add --help'"}},
		{[]string{"shard", "add", "s0", "--dsn"}, []string{"flag needs an argument", "--dsn"}},
		{[]string{"shard", "list", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"--timeout", "soon", "shard", "list"}, []string{`invalid argument "soon"`, "--timeout"}},
		{[]string{"--timeout", "0s", "shard", "list"}, []string{"--timeout must be positive"}},
		{[]string{"--cluster", "a/b", "shard", "list"}, []string{"--cluster"}},
		{[]string{"--etcd", ",", "shard", "list"}, []string{"--etcd names no endpoints"}},
		{[]string{"keyspace", "create"}, []string{"missing KEYSPACE"}},
		{[]string{"keyspace", "create", "app"}, []string{"missing --shards"}},
		{[]string{"keyspace", "create", "app", "--shards", "s0", "--logical-shards", "many"}, []string{`invalid argument "many"`}},
		{[]string{"vschema", "apply"}, []string{"missing FILE"}},
		{[]string{"vschema", "show", "a", "b"}, []string{`unexpected argument "b"`}},
		{[]string{"topology", "move", "app", "--to", "s1"}, []string{"missing --logical"}},
		{[]string{"topology", "move", "app", "--logical", "1"}, []string{"missing --to"}},
		{[]string{"topology", "show", "a", "b"}, []string{`unexpected argument "b"`}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			args := append([]string{"--etcd", etcd, "--timeout", "10s"}, tt.args...)
			runCLI(t, "", args...).fails(t, tt.want...)
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	out := runCLI(t, "", "--help").ok(t)
	for _, w := range []string{"shard", "keyspace", "vschema", "topology", "--etcd", "--cluster", "--timeout"} {
		if !strings.Contains(out, w) {
			t.Errorf("shardctl --help does not mention %q:\n%s", w, out)
		}
	}
	out = runCLI(t, "", "topology", "move", "--help").ok(t)
	if !strings.Contains(out, "routing only") || !strings.Contains(out, "does NOT move any rows") {
		t.Errorf("topology move --help does not say it moves no rows:\n%s", out)
	}
}

func TestUnreachableEtcd(t *testing.T) {
	t.Parallel()
	addr := closedPort(t)
	for _, args := range [][]string{
		{"shard", "list"},
		{"shard", "add", "s0", "--dsn", "postgres://app:s3cret@127.0.0.1:5432/app", "--allow-password-in-dsn"},
		{"topology", "move", "app", "--logical", "0", "--to", "s0"},
	} {
		start := time.Now()
		r := runCLI(t, "", append([]string{"--etcd", addr, "--timeout", "1s"}, args...)...)
		elapsed := time.Since(start)
		r.fails(t, "no answer from etcd at "+addr+" within 1s")
		if strings.Contains(r.stderr, "s3cret") {
			t.Errorf("password in stderr: %q", r.stderr)
		}
		// The timeout is 1s; a hang would take the minute runCLI allows.
		if elapsed > 10*time.Second {
			t.Errorf("%v took %v with --timeout 1s", args, elapsed)
		}
	}
}

// TestEnvDefaults cannot run in parallel: it sets the process environment.
// Running alone, it also checks that runs leave no goroutine behind (that the
// etcd client is closed).
func TestEnvDefaults(t *testing.T) {
	e := newEnv(t)
	other := e.withCluster(e.cluster + "-other")
	t.Setenv("SHARDGATE_ETCD", e.endpoint)
	t.Setenv("SHARDGATE_CLUSTER", e.cluster)
	// etcd finishes starting its own serving goroutines in the background;
	// one answered request shows they are up before the baseline is taken.
	e.load()
	ignore := goleak.IgnoreCurrent()
	runCLI(t, "", "shard", "add", "s0", "--dsn", "postgres://127.0.0.1/app").ok(t)
	// A flag overrides the environment.
	runCLI(t, "", "--cluster", other.cluster, "shard", "add", "s1", "--dsn", "postgres://127.0.0.1/app").ok(t)
	runCLI(t, "", "--etcd", closedPort(t), "--timeout", "100ms", "shard", "list").fails(t, "no answer from etcd")
	goleak.VerifyNone(t, ignore)

	if snap := e.load(); snap.Shards["s0"] == nil || snap.Shards["s1"] != nil {
		t.Errorf("cluster %s from SHARDGATE_CLUSTER has shards %v, want s0", e.cluster, snap.Shards)
	}
	if snap := other.load(); snap.Shards["s1"] == nil || snap.Shards["s0"] != nil {
		t.Errorf("--cluster %s did not override SHARDGATE_CLUSTER: shards %v", other.cluster, snap.Shards)
	}
}
