package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shardgate/shardgate/topology"
)

// The hostile tests send a real gateway what a broken or malicious client
// might, each on its own connection, while another session runs queries;
// that session must never notice.

// hostilePassword is tester's password when a hostile gateway uses SCRAM.
const hostilePassword = "hostile-test-password"

// hostileSlack is how much later than it should the gateway may act, on a
// busy test machine.
const hostileSlack = 2 * time.Second

// startHostileGateway starts a gateway over two real Postgres shards and a
// real etcd, like startGateway, with the front door settings of limits
// (StartupTimeout, MaxMessageSize, MaxClientConns, MaxClientConnsPerUser,
// Auth; trust if unset). Under SCRAM, users tester and loader have
// hostilePassword. The
// setup session it leaves open counts against the client limits.
func startHostileGateway(t *testing.T, limits Config) *testGateway {
	t.Helper()
	ctx := context.Background()
	shards, store := startShards(t, "test")
	extra := ""
	if limits.Auth == AuthSCRAM {
		v, err := topology.NewVerifier(hostilePassword)
		if err != nil {
			t.Fatal(err)
		}
		for _, user := range []string{"tester", "loader"} {
			if err := store.AddUser(ctx, topology.User{Name: user, Verifier: v, Keyspaces: []string{"app"}}); err != nil {
				t.Fatal(err)
			}
		}
		extra = "password=" + hostilePassword
	} else {
		limits.Auth = AuthTrust
	}
	snap, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	pools := NewPools(DefaultPoolConfig, log)
	cfg := limits
	cfg.Topology, cfg.Pools, cfg.Log, cfg.TwoPC, cfg.GatewayID = func() *topology.Snapshot { return snap }, pools, log, store, "test"
	srv := NewServer(cfg)
	t.Cleanup(pools.Close) // after the server, which closes first
	g := &testGateway{addr: serveLoopback(t, srv), shards: shards, snap: snap, srv: srv, store: store}
	c := g.connect(t, "app", extra)
	exec(t, c, "create table users (id bigint primary key, name text)")
	exec(t, c, "insert into users (id, name) values (1, 'a'), (2, 'b'), (3, 'c')")
	return g
}

// withLoad runs hostile while a session of user loader runs `select 1` and
// a keyed select, at least 200 times and until hostile returns, and fails
// the test if that session sees any error.
func withLoad(t *testing.T, g *testGateway, extra string, hostile func()) {
	t.Helper()
	c := g.connect(t, "app", "user=loader "+extra)
	stop := make(chan struct{})
	result := make(chan error, 1)
	var ran atomic.Int64
	go func() {
		ctx := context.Background()
		for i := 0; ; i++ {
			if i >= 200 {
				select {
				case <-stop:
					result <- nil
					return
				default:
				}
			}
			ran.Add(1)
			for _, sql := range []string{"select 1", fmt.Sprintf("select name from users where id = %d", i%3+1)} {
				rs, err := c.Exec(ctx, sql).ReadAll()
				if err == nil && (len(rs) != 1 || len(rs[0].Rows) != 1) {
					err = fmt.Errorf("%d results", len(rs))
				}
				if err != nil {
					result <- fmt.Errorf("query %d %q: %w", i, sql, err)
					return
				}
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-result; err != nil {
			t.Errorf("the other session was disturbed: %v", err)
		}
		t.Logf("the other session ran %d rounds of queries", ran.Load())
	}()
	hostile()
}

// dialGateway opens a raw client connection to the gateway.
func dialGateway(t *testing.T, g *testGateway) *net.TCPConn {
	t.Helper()
	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn.(*net.TCPConn)
}

// readUntil reads what the gateway sends until it closes the connection,
// failing if that takes longer than limit. It returns the bytes and when
// the connection closed.
func readUntil(t *testing.T, conn net.Conn, limit time.Duration) ([]byte, time.Time) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	b, err := readUntilClose(conn)
	if err != nil {
		t.Fatalf("the gateway kept the connection open for %v (%v); got %q", limit, err, b)
	}
	return b, time.Now()
}

// expectRefusal checks an answer that may only be a FATAL 08P01, or
// nothing (the gateway just closed).
func expectRefusal(t *testing.T, what string, b []byte) {
	t.Helper()
	msgs, err := decodeBackend(b)
	if err != nil {
		t.Fatalf("%s: malformed answer %q: %v", what, b, err)
	}
	for _, m := range msgs {
		e, ok := m.(*pgproto3.ErrorResponse)
		if !ok || e.Code != codeProtocolViolation || e.Severity != "FATAL" {
			t.Fatalf("%s: answered %T %+v, want FATAL 08P01 or nothing", what, m, m)
		}
	}
}

// startSession sends a startup packet and reads up to ReadyForQuery (trust).
func startSession(t *testing.T, conn net.Conn) {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(startupPacket("user", "hostile", "database", "app")); err != nil {
		t.Fatal(err)
	}
	fe := pgproto3.NewFrontend(conn, conn)
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("startup: %v", err)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	_ = conn.SetDeadline(time.Time{})
}

func TestHostileStartupTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	g := startHostileGateway(t, Config{StartupTimeout: timeout, MaxMessageSize: 1 << 20})
	for _, tc := range []struct {
		name string
		sent []byte
	}{
		{"silent", nil},
		{"half a length", []byte{0, 0}},
		{"half a startup packet", startupPacket("user", "hostile", "database", "app")[:12]},
		{"SSLRequest, then silence", encodeMsgs(&pgproto3.SSLRequest{})},
		{"GSSEncRequest, then silence", encodeMsgs(&pgproto3.GSSEncRequest{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withLoad(t, g, "", func() {
				conn := dialGateway(t, g)
				start := time.Now()
				if _, err := conn.Write(tc.sent); err != nil {
					t.Fatal(err)
				}
				b, closed := readUntil(t, conn, timeout+hostileSlack)
				if elapsed := closed.Sub(start); elapsed < timeout-50*time.Millisecond {
					t.Fatalf("closed after %v, before the startup timeout of %v", elapsed, timeout)
				}
				if rest := bytes.TrimLeft(b, "N"); len(rest) > 0 {
					t.Fatalf("answered %q", b)
				}
			})
		})
	}
}

func TestHostileGarbage(t *testing.T) {
	g := startHostileGateway(t, Config{StartupTimeout: 5 * time.Second, MaxMessageSize: 1 << 20})
	valid := startupPacket("user", "hostile", "database", "app")
	for _, tc := range []struct {
		name string
		sent []byte
		// closeWrite half-closes after sending: the gateway must not
		// wait for the startup timeout then.
		closeWrite bool
	}{
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: gateway\r\n\r\n"), false},
		{"binary noise", []byte("\x00\x00\x00\x10\xde\xad\xbe\xef\x01\x02\x03\x04\x05\x06\x07\x08"), false},
		{"length below minimum", []byte("\x00\x00\x00\x02"), false},
		{"length above maximum", []byte("\x7f\xff\xff\xff\x00\x03\x00\x00"), false},
		{"unsupported protocol", []byte("\x00\x00\x00\x08\x00\x02\x00\x00"), false},
		{"truncated startup packet", valid[:len(valid)-5], true},
		{"truncated length", valid[:3], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withLoad(t, g, "", func() {
				conn := dialGateway(t, g)
				if _, err := conn.Write(tc.sent); err != nil {
					t.Fatal(err)
				}
				if tc.closeWrite {
					_ = conn.CloseWrite()
				}
				b, _ := readUntil(t, conn, hostileSlack)
				expectRefusal(t, tc.name, b)
				if tc.closeWrite && len(b) > 0 {
					t.Fatalf("answered %q to a packet cut short", b)
				}
			})
		})
	}
	t.Run("SSLRequest then nonsense", func(t *testing.T) {
		withLoad(t, g, "", func() {
			conn := dialGateway(t, g)
			if _, err := conn.Write(encodeMsgs(&pgproto3.SSLRequest{})); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(hostileSlack))
			one := make([]byte, 1)
			if _, err := io.ReadFull(conn, one); err != nil || one[0] != 'N' {
				t.Fatalf("SSLRequest without TLS configured: %q, %v; want N", one, err)
			}
			// A TLS ClientHello to a gateway that just declined TLS.
			if _, err := conn.Write([]byte("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03nonsense")); err != nil {
				t.Fatal(err)
			}
			b, _ := readUntil(t, conn, hostileSlack)
			expectRefusal(t, "nonsense after N", b)
		})
	})
}

func TestHostileHugeMessage(t *testing.T) {
	g := startHostileGateway(t, Config{StartupTimeout: 5 * time.Second, MaxMessageSize: 1 << 20})
	for _, typ := range []byte{'Q', 'P', 'd', 'p'} {
		t.Run(string(typ), func(t *testing.T) {
			withLoad(t, g, "", func() {
				conn := dialGateway(t, g)
				startSession(t, conn)
				before := memStats()
				start := time.Now()
				// A message that claims 1 GiB, and a little of it.
				if _, err := conn.Write([]byte(string(typ) + be32(0x40000000) + "select 1 from")); err != nil {
					t.Fatal(err)
				}
				b, closed := readUntil(t, conn, hostileSlack)
				if elapsed := closed.Sub(start); elapsed > time.Second {
					t.Errorf("closed after %v, not at once", elapsed)
				}
				expectRefusal(t, "1 GiB message", b)
				after := memStats()
				const limit = 50 << 20
				if grew := after.TotalAlloc - before.TotalAlloc; grew > limit {
					t.Errorf("the gateway allocated %d MiB for a message it refused", grew>>20)
				}
				if after.HeapAlloc > before.HeapAlloc+limit {
					t.Errorf("heap grew from %d to %d MiB", before.HeapAlloc>>20, after.HeapAlloc>>20)
				}
			})
		})
	}
}

// memStats returns the memory statistics after a garbage collection.
func memStats() runtime.MemStats {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

func TestHostileCancelWrongKey(t *testing.T) {
	g := startHostileGateway(t, Config{StartupTimeout: 5 * time.Second, MaxMessageSize: 1 << 20})
	victim := g.connect(t, "app", "")
	exec(t, victim, "select 1")
	pid, secret := victim.PID(), victim.SecretKey()
	flipped := bytes.Clone(secret)
	flipped[len(flipped)-1] ^= 1
	wrong := []struct {
		name   string
		packet []byte
	}{
		{"next pid", encodeMsgs(&pgproto3.CancelRequest{ProcessID: pid + 1, SecretKey: secret})},
		{"one bit of the secret", encodeMsgs(&pgproto3.CancelRequest{ProcessID: pid, SecretKey: flipped})},
		{"long secret", encodeMsgs(&pgproto3.CancelRequest{ProcessID: pid, SecretKey: append(bytes.Clone(secret), make([]byte, 28)...)})},
		{"short secret", []byte(be32(14) + be32(80877102) + be32(pid) + string(secret[:2]))},
		{"no secret", []byte(be32(12) + be32(80877102) + be32(pid))},
		{"zero key", encodeMsgs(&pgproto3.CancelRequest{ProcessID: 0, SecretKey: []byte{0, 0, 0, 0}})},
	}
	withLoad(t, g, "", func() {
		result := make(chan error, 1)
		go func() {
			_, err := victim.Exec(context.Background(), "select pg_sleep(3)").ReadAll()
			result <- err
		}()
		waitActive(t, g, "select pg_sleep(3)")
		for _, w := range wrong {
			conn := dialGateway(t, g)
			if _, err := conn.Write(w.packet); err != nil {
				t.Fatal(err)
			}
			b, _ := readUntil(t, conn, hostileSlack)
			expectRefusal(t, "cancel request with "+w.name, b)
		}
		if err := <-result; err != nil {
			t.Errorf("a cancel request with a wrong key cancelled the statement: %v", err)
		}
	})
	// The right key does cancel: the wrong ones failed for their keys.
	result := make(chan error, 1)
	go func() {
		_, err := victim.Exec(context.Background(), "select pg_sleep(30)").ReadAll()
		result <- err
	}()
	waitActive(t, g, "select pg_sleep(30)")
	if err := cancelRequest(g.addr, pid, secret); err != nil {
		t.Fatal(err)
	}
	if err := <-result; code(err) != codeQueryCanceled {
		t.Fatalf("cancel with the right key: %v, want 57014", err)
	}
}

// waitActive waits until a shard runs sql.
func waitActive(t *testing.T, g *testGateway, sql string) {
	t.Helper()
	var direct []*pgconn.PgConn
	for _, sh := range g.shards {
		c, err := pgconn.Connect(context.Background(), sh.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		direct = append(direct, c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, c := range direct {
			rs := exec(t, c, fmt.Sprintf("select count(*) from pg_stat_activity where query = '%s' and state = 'active'", sql))
			if string(rs[0].Rows[0][0]) != "0" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q never started", sql)
		}
	}
}

func TestHostileClientLimits(t *testing.T) {
	// The setup session (tester) and the load (loader) count too.
	g := startHostileGateway(t, Config{StartupTimeout: 5 * time.Second, MaxMessageSize: 1 << 20, MaxClientConns: 5, MaxClientConnsPerUser: 2})
	connectAs := func(user string) (*pgconn.PgConn, error) {
		c, err := pgconn.Connect(context.Background(), g.dsn("app", "user="+user))
		if err == nil {
			t.Cleanup(func() { c.Close(context.Background()) })
		}
		return c, err
	}
	withLoad(t, g, "", func() {
		first, err := connectAs("alice")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := connectAs("alice"); err != nil {
			t.Fatal(err)
		}
		_, err = connectAs("alice")
		if code(err) != codeTooManyConnections || !strings.Contains(err.Error(), `too many connections for role "alice"`) {
			t.Fatalf("third session of alice, past max_client_conns_per_user: %v", err)
		}
		if _, err := connectAs("bob"); err != nil {
			t.Fatalf("bob, at the overall limit: %v", err)
		}
		_, err = connectAs("carol")
		if code(err) != codeTooManyConnections || !strings.Contains(err.Error(), "sorry, too many clients already") {
			t.Fatalf("sixth client, past max_client_conns: %v", err)
		}
		// A cancel request at the limit is not refused as a client.
		conn := dialGateway(t, g)
		if _, err := conn.Write(encodeMsgs(&pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}})); err != nil {
			t.Fatal(err)
		}
		if b, _ := readUntil(t, conn, hostileSlack); len(b) != 0 {
			t.Fatalf("cancel request at the limit answered %q", b)
		}
		first.Close(context.Background())
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := connectAs("carol")
			if err == nil {
				break
			}
			if code(err) != codeTooManyConnections || time.Now().After(deadline) {
				t.Fatalf("no room after a client left: %v", err)
			}
		}
	})
}

// TestHostileUnauthenticatedMessageMemory checks that a client that has not
// authenticated cannot make the gateway allocate what its SASL message
// claims, up to MaxMessageSize (64 MiB by default in cmd/shardgate), before
// a byte of it arrived (pgproto3 allocates a message's buffer from its
// length field): five bytes per connection would pin 64 MiB for
// StartupTimeout, on as many connections as MaxClientConns allows. Postgres
// reads authentication messages of at most 64 KiB (PG_MAX_AUTH_TOKEN_LENGTH).
func TestHostileUnauthenticatedMessageMemory(t *testing.T) {
	const (
		maxMessage = 64 << 20 // cmd/shardgate's default max_message_size
		claim      = 48 << 20
		conns      = 4
		limit      = 16 << 20 // all of them together
	)
	g := startHostileGateway(t, Config{Auth: AuthSCRAM, StartupTimeout: 5 * time.Second, MaxMessageSize: maxMessage})
	withLoad(t, g, "password="+hostilePassword, func() {
		before := memStats()
		var wg sync.WaitGroup
		for i := 0; i < conns; i++ {
			conn := dialGateway(t, g)
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(startupPacket("user", fmt.Sprintf("nobody%d", i), "database", "app")); err != nil {
				t.Fatal(err)
			}
			msg, err := pgproto3.NewFrontend(conn, conn).Receive()
			if _, ok := msg.(*pgproto3.AuthenticationSASL); !ok {
				t.Fatalf("startup: %T %v", msg, err)
			}
			// A SASLInitialResponse that claims 48 MiB and never comes.
			if _, err := conn.Write([]byte("p" + be32(claim+4))); err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = readUntilClose(conn)
			}()
		}
		// Give the gateway time to read the four headers. The heap after
		// a collection holds only what is live: the load's garbage is gone.
		var grew int64
		deadline := time.Now().Add(hostileSlack)
		for time.Now().Before(deadline) && grew <= limit {
			grew = int64(memStats().HeapAlloc) - int64(before.HeapAlloc)
		}
		if grew > limit {
			t.Errorf("%d unauthenticated clients that sent %d bytes each made the gateway allocate %d MiB", conns, len(startupPacket("user", "nobody0", "database", "app"))+5, grew>>20)
		}
		// The startup timeout ends them.
		wg.Wait()
	})
}
