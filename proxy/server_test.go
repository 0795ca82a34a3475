package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

const testVSchema = `
keyspaces:
  app:
    sharded: true
    tables:
      users: {column: id, type: bigint}
      tags: {column: tag, type: text}
`

// testGateway is a Server on a loopback port over two real Postgres shards
// and a real embedded etcd.
type testGateway struct {
	addr   string
	shards []*pgtest.Cluster
	snap   *topology.Snapshot
	srv    *Server
	store  *topology.Store
	// reg holds the gateway's metrics.
	reg     *prometheus.Registry
	metrics *Metrics
}

func startGateway(t testing.TB, pool PoolConfig) *testGateway {
	return startGatewayLimit(t, pool, 0)
}

func startGatewayLimit(t testing.TB, pool PoolConfig, maxClients int) *testGateway {
	t.Helper()
	ctx := context.Background()
	shards, store := startShards(t, "test")
	// A shard nobody can reach, with a password that must never show.
	if err := store.AddShard(ctx, topology.Shard{Name: "dead", DSN: "postgres://app:s3cret@127.0.0.1:1/app?connect_timeout=1"}); err != nil {
		t.Fatal(err)
	}
	f, err := vschema.Parse([]byte(testVSchema + `
  broken:
    sharded: false
  strict:
    sharded: true
    multi_shard_writes: refuse
    tables:
      users: {column: id, type: bigint}
  pinned:
    sharded: true
    pooling: session
    tables:
      users: {column: id, type: bigint}
  solo:
    sharded: false
    pooling: session
  solotx:
    sharded: false
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateKeyspace(ctx, "broken", 1, []string{"dead"}); err != nil {
		t.Fatal(err)
	}
	for _, ks := range []string{"solo", "solotx"} {
		if err := store.CreateKeyspace(ctx, ks, 1, []string{"s0"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ks := range []string{"strict", "pinned"} {
		if err := store.CreateKeyspace(ctx, ks, 16, []string{"s0", "s1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.ApplyVSchemas(ctx, f.Keyspaces["broken"], f.Keyspaces["strict"], f.Keyspaces["pinned"], f.Keyspaces["solo"], f.Keyspaces["solotx"]); err != nil {
		t.Fatal(err)
	}
	snap, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	pools := NewPools(pool, log)
	pools.Sync(snap)
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	srv := NewServer(Config{Topology: func() *topology.Snapshot { return snap }, Pools: pools, Log: log, TwoPC: store, GatewayID: "test", MaxClientConns: maxClients, Auth: AuthTrust, Metrics: metrics})
	reg.MustRegister(pools, srv)
	t.Cleanup(pools.Close) // after the server, which closes first
	g := &testGateway{addr: serveLoopback(t, srv), shards: shards, snap: snap, srv: srv, store: store, reg: reg, metrics: metrics}
	c := g.connect(t, "app", "")
	exec(t, c, "create table users (id bigint primary key, name text check (name <> 'forbidden'))")
	return g
}

func (g *testGateway) dsn(ks, extra string) string {
	host, port, _ := net.SplitHostPort(g.addr)
	return fmt.Sprintf("host=%s port=%s dbname=%s user=tester sslmode=prefer %s", host, port, ks, extra)
}

func (g *testGateway) connect(t testing.TB, ks, extra string) *pgconn.PgConn {
	t.Helper()
	c, err := pgconn.Connect(context.Background(), g.dsn(ks, extra))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func exec(t testing.TB, c *pgconn.PgConn, sql string) []*pgconn.Result {
	t.Helper()
	rs, err := c.Exec(context.Background(), sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return rs
}

func code(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// etcd's client and server keep package-level goroutines.
		goleak.IgnoreTopFunction("go.etcd.io/etcd/client/pkg/v3/logutil.(*MergeLogger).outputLoop"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
	)
}

func TestStartupAndGreeting(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	c := g.connect(t, "app", "application_name=probe")
	// sslmode=prefer sent an SSLRequest first; the gateway declined it and
	// the session went on in plain text.
	for name, want := range map[string]string{"application_name": "probe", "server_encoding": "UTF8", "session_authorization": "tester"} {
		if got := c.ParameterStatus(name); got != want {
			t.Errorf("ParameterStatus %s = %q, want %q", name, got, want)
		}
	}
	if v := c.ParameterStatus("server_version"); !strings.HasPrefix(v, "1") {
		t.Errorf("server_version %q is not the backends' version", v)
	}
	if c.PID() == 0 || len(c.SecretKey()) == 0 {
		t.Error("no BackendKeyData")
	}
	if c.TxStatus() != 'I' {
		t.Errorf("transaction status %c", c.TxStatus())
	}
	for _, tc := range []struct{ ks, extra, code, contains string }{
		{"nosuch", "", "3D000", `database "nosuch" does not exist`},
		{"app", "DateStyle=Nonsense", "22023", `invalid value for parameter "DateStyle"`},
		{"app", "no_such_setting=1", "42704", `unrecognized configuration parameter "no_such_setting"`},
		{"app", "replication=database", "0A000", "replication"},
	} {
		_, err := pgconn.Connect(context.Background(), g.dsn(tc.ks, tc.extra))
		if code(err) != tc.code || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("connect %s %s: %v, want %s containing %q", tc.ks, tc.extra, err, tc.code, tc.contains)
		}
	}
}

func TestSimpleQueryProtocol(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	c := g.connect(t, "app", "")

	// An empty query string answers as Postgres does (EmptyQueryResponse).
	direct, err := pgconn.Connect(context.Background(), g.shards[0].DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(context.Background())
	for _, q := range []string{"", " ; -- nothing"} {
		want, got := exec(t, direct, q), exec(t, c, q)
		if len(got) != len(want) || len(got) > 0 && (got[0].CommandTag != want[0].CommandTag || len(got[0].Rows) != 0) {
			t.Fatalf("empty query %q: %+v, Postgres gives %+v", q, got, want)
		}
	}
	// Several statements on one shard run as Postgres's implicit
	// transaction: all or nothing.
	_, err = c.Exec(context.Background(), "insert into users (id, name) values (1, 'a'); insert into users (id, name) values (1, 'again')").ReadAll()
	if code(err) != "23505" {
		t.Fatalf("duplicate in one query string: %v", err)
	}
	if rs := exec(t, c, "select count(*) from users where id = 1"); string(rs[0].Rows[0][0]) != "0" {
		t.Fatal("the first insert of a failed query string was kept")
	}
	// Statements that write on several shards are all or nothing too: a
	// failure on the second shard undoes the first.
	var a, b int
	for b = 2; g.snap.Keyspace("app").ShardFor(vschema.HashInt64(int64(b))) == g.snap.Keyspace("app").ShardFor(vschema.HashInt64(1)); b++ {
	}
	a = 1
	exec(t, c, fmt.Sprintf("insert into users (id, name) values (%d, 'b')", b))
	_, err = c.Exec(context.Background(), fmt.Sprintf("insert into users (id, name) values (%d, 'a'); insert into users (id) values (%d)", a, b)).ReadAll()
	if code(err) != "23505" {
		t.Fatalf("multi-shard multi-statement write: %v", err)
	}
	if rs := exec(t, c, fmt.Sprintf("select id from users where id = %d", a)); len(rs[0].Rows) != 0 {
		t.Fatal("a failed query string was partly applied")
	}
	exec(t, c, fmt.Sprintf("insert into users (id, name) values (%d, 'a')", a))
	rs := exec(t, c, fmt.Sprintf("select name from users where id = %d; select name from users; select 1", a))
	if len(rs) != 3 || len(rs[0].Rows) != 1 || len(rs[1].Rows) != 2 || rs[1].CommandTag.String() != "SELECT 2" {
		t.Fatalf("three reads: %+v", rs)
	}
	// A failing statement stops the rest of the string.
	results, err := c.Exec(context.Background(), "select 1; selec 2; select 3").ReadAll()
	if code(err) != "42601" || len(results) != 0 {
		t.Fatalf("syntax error in a string: %d results, %v", len(results), err)
	}
	// The extended protocol routes by a bound parameter.
	rr := c.ExecParams(context.Background(), "select name from users where id = $1", [][]byte{[]byte(fmt.Sprint(b))}, nil, nil, nil).Read()
	if rr.Err != nil || len(rr.Rows) != 1 || string(rr.Rows[0][0]) != "b" {
		t.Fatalf("extended protocol: %v %q", rr.Err, rr.Rows)
	}
}

func TestShardFailuresAreClear(t *testing.T) {
	g := startGateway(t, PoolConfig{MaxConns: 1, IdleTimeout: time.Minute, AcquireTimeout: 300 * time.Millisecond, ConnectTimeout: time.Second})

	// An unreachable shard: 08006, and the DSN's password appears nowhere.
	_, err := pgconn.Connect(context.Background(), g.dsn("broken", ""))
	if code(err) != "08006" || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("unreachable shard: %v", err)
	}

	// One backend connection per shard: while a long statement holds it,
	// another session's statement waits, then fails with 53300.
	busy := g.connect(t, "app", "")
	other := g.connect(t, "app", "")
	exec(t, other, "select 1") // both sessions are set up
	var wg sync.WaitGroup
	wg.Add(1)
	started := make(chan struct{})
	go func() {
		defer wg.Done()
		close(started)
		busy.Exec(context.Background(), "select pg_sleep(2)").ReadAll()
	}()
	<-started
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := other.Exec(context.Background(), "select 1").ReadAll()
		if code(err) == "53300" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 53300 while the only connection was busy (last: %v)", err)
		}
	}
	wg.Wait()
	if rs := exec(t, other, "select 1"); string(rs[0].Rows[0][0]) != "1" {
		t.Fatal("session unusable after 53300")
	}
}

func TestClientGoneMidResult(t *testing.T) {
	g := startGateway(t, PoolConfig{MaxConns: 1, IdleTimeout: time.Minute, AcquireTimeout: 5 * time.Second, ConnectTimeout: time.Second})
	c := g.connect(t, "app", "")
	// A big result, abandoned by a client that closes its socket.
	mrr := c.Exec(context.Background(), "select repeat('x', 1000) from generate_series(1, 200000)")
	mrr.NextResult()
	mrr.ResultReader().NextRow()
	c.Conn().Close()
	// The single backend connection comes back to serve the next client.
	other := g.connect(t, "app", "")
	if rs := exec(t, other, "select 7"); string(rs[0].Rows[0][0]) != "7" {
		t.Fatal("pool did not recover")
	}
}

func TestShutdownDrains(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	busy := g.connect(t, "app", "")
	idle := g.connect(t, "app", "")
	exec(t, idle, "select 1")
	result := make(chan error, 1)
	go func() {
		_, err := busy.Exec(context.Background(), "select pg_sleep(0.5)").ReadAll()
		result <- err
	}()
	// Wait until the statement runs on a backend.
	direct, err := pgconn.Connect(context.Background(), g.shards[0].DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs := exec(t, direct, "select count(*) from pg_stat_activity where query = 'select pg_sleep(0.5)' and state = 'active'")
		if string(rs[0].Rows[0][0]) == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("statement never started")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-result; err != nil {
		t.Fatalf("running statement did not finish: %v", err)
	}
	if _, err := idle.Exec(context.Background(), "select 1").ReadAll(); err == nil {
		t.Fatal("idle session survived Shutdown")
	}
	if g.srv.ActiveSessions() != 0 {
		t.Fatalf("%d sessions after Shutdown", g.srv.ActiveSessions())
	}
}

// cancelRequest sends a CancelRequest with the given key on a new connection.
func cancelRequest(addr string, pid uint32, secret []byte) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	buf, err := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret}).Encode(nil)
	if err != nil {
		return err
	}
	_, err = conn.Write(buf)
	return err
}

func TestMaxClientConnections(t *testing.T) {
	g := startGatewayLimit(t, DefaultPoolConfig, 3) // startGateway keeps one session open
	first := g.connect(t, "app", "")
	g.connect(t, "app", "")
	_, err := pgconn.Connect(context.Background(), g.dsn("app", ""))
	if code(err) != "53300" || !strings.Contains(err.Error(), "too many clients") {
		t.Fatalf("third client: %v", err)
	}
	first.Close(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := pgconn.Connect(context.Background(), g.dsn("app", ""))
		if err == nil {
			c.Close(context.Background())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room after a client left: %v", err)
		}
	}
}
