package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// The fuzz targets run the real Server against inputs a client chooses,
// without Postgres: FuzzStartup and FuzzSASL need no shard at all, and
// FuzzMessages runs sessions over fakeShard, a stand-in that answers every
// statement at once. Their seeds are kept as files under testdata/fuzz, so
// every `go test` runs them; -rewrite-fuzz-seeds writes those files from the
// seed lists below after a change.

var rewriteFuzzSeeds = flag.Bool("rewrite-fuzz-seeds", false, "rewrite proxy/testdata/fuzz seed files from the seed lists in fuzz_test.go")

const (
	// fuzzStartupTimeout is the StartupTimeout of the fuzzed servers: short,
	// as inputs that stop half-way wait for it.
	fuzzStartupTimeout = 200 * time.Millisecond
	// fuzzMaxMessage is the MaxMessageSize of the fuzzed servers.
	fuzzMaxMessage = 1 << 20
	// fuzzSlack is how much longer than it should a fuzzed server may take
	// to answer or close, on a machine busy with fuzz workers.
	fuzzSlack = 5 * time.Second
	// fuzzPassword is alice's password in the startup fixture; no fuzz
	// input knows it, so none may ever be let in.
	fuzzPassword = "correct horse battery staple"
)

// FuzzStartup sends arbitrary bytes as the first bytes of a connection:
// startup packets, SSLRequest, GSSEncRequest, CancelRequest, garbage. With
// hold set the client then waits instead of half-closing, so the startup
// timeout must end the connection. The server must answer or close in time,
// never let anyone in, and still greet the next client.
func FuzzStartup(f *testing.F) {
	for _, s := range startupSeeds() {
		f.Add(s.data, s.hold)
	}
	fx := newStartupFixture(f)
	f.Fuzz(fx.startup)
}

func (fx *startupFixture) startup(t *testing.T, data []byte, hold bool) {
	conn := fx.ln.dial(t)
	defer conn.Close()
	start := time.Now()
	resp, err := exchangeRaw(conn, data, !hold, fuzzStartupTimeout+fuzzSlack)
	if err != nil {
		t.Fatalf("after %v: %v (answer so far %q)", time.Since(start), err, resp)
	}
	checkStartupAnswer(t, resp)
	conn.Close()
	fx.check(t)
}

// FuzzSASL runs a valid startup packet (for alice, who has a password, or
// for an unknown user) and then sends arbitrary bytes as the
// SASLInitialResponse; if the server goes on with AuthenticationSASLContinue,
// second follows as the SASLResponse. Nobody may get in without the password.
func FuzzSASL(f *testing.F) {
	for _, s := range saslSeeds() {
		f.Add(s.known, s.first, s.second)
	}
	fx := newStartupFixture(f)
	f.Fuzz(func(t *testing.T, known bool, first, second []byte) {
		user := "mallory"
		if known {
			user = "alice"
		}
		conn := fx.ln.dial(t)
		defer conn.Close()
		deadline := time.Now().Add(fuzzStartupTimeout + fuzzSlack)
		_ = conn.SetDeadline(deadline)
		if _, err := conn.Write(startupPacket("user", user, "database", "app")); err != nil {
			t.Fatal(err)
		}
		fe := pgproto3.NewFrontend(conn, conn)
		msg, err := fe.Receive()
		if _, ok := msg.(*pgproto3.AuthenticationSASL); !ok {
			t.Fatalf("startup answered %T %v, want AuthenticationSASL", msg, err)
		}
		var answer []byte
		if _, err := conn.Write(first); err != nil && !peerClosed(err) {
			t.Fatal(err)
		}
		if !wholeMessages(first) {
			// The server waits for the rest of a message: end it here.
			_ = conn.CloseWrite()
		}
		if msg, err := fe.Receive(); err == nil {
			if _, ok := msg.(*pgproto3.AuthenticationSASLContinue); ok {
				if _, err := conn.Write(second); err != nil && !peerClosed(err) {
					t.Fatal(err)
				}
			} else {
				answer = appendMessage(t, answer, msg)
			}
		}
		_ = conn.CloseWrite()
		rest, err := readUntilClose(conn)
		if err != nil {
			t.Fatalf("server neither answered nor closed: %v", err)
		}
		checkStartupAnswer(t, append(answer, rest...))
		conn.Close()
		fx.check(t)
	})
}

// FuzzMessages starts a session normally (trust authentication, keyspace
// app or pinned over two fake shards) and then sends arbitrary bytes as
// client messages: the message reader, the planner, the extended-protocol
// queue, transactions and COPY all run. The session must end once the
// client half-closes, its answer must be well-formed, and a canary session
// on the same server must be unaffected.
func FuzzMessages(f *testing.F) {
	for _, s := range messageSeeds() {
		f.Add(s.pinned, s.data)
	}
	fx := newMessagesFixture(f)
	f.Fuzz(func(t *testing.T, pinned bool, data []byte) {
		ks := "app"
		if pinned {
			ks = "pinned"
		}
		conn := fx.ln.dial(t)
		defer conn.Close()
		input := append(startupPacket("user", "fuzzer", "database", ks), data...)
		resp, err := exchangeRaw(conn, input, true, 10*time.Second)
		if err != nil {
			t.Fatalf("session did not end after the client half-closed: %v (answer so far %d bytes)", err, len(resp))
		}
		msgs, err := decodeBackend(resp)
		if err != nil {
			t.Fatalf("malformed answer: %v", err)
		}
		ready := false
		for i, m := range msgs {
			switch m := m.(type) {
			case *pgproto3.ReadyForQuery:
				ready = true
			case *pgproto3.ErrorResponse:
				// The gateway answers a client's end of input in the
				// middle of COPY FROM with XX000 (it does not classify
				// io.ErrUnexpectedEOF); that can only be its last word.
				lastWords := i == len(msgs)-1 || i == len(msgs)-2 && isReady(msgs[i+1])
				if m.Code == codeInternal && !lastWords {
					t.Fatalf("internal error answered to a client message: %+v", m)
				}
			}
		}
		if !ready {
			t.Fatalf("startup did not finish: %d messages", len(msgs))
		}
		conn.Close()
		fx.check(t)
	})
}

// exchange writes input to conn (half-closing it after, if closeWrite),
// reads the answer until the server closes, and fails if that takes longer
// than limit.
func exchangeRaw(conn *net.UnixConn, input []byte, closeWrite bool, limit time.Duration) ([]byte, error) {
	_ = conn.SetDeadline(time.Now().Add(limit))
	wrote := make(chan error, 1)
	go func() {
		// Written concurrently: a server that answers while the client
		// still writes must not deadlock the test.
		_, err := conn.Write(input)
		if closeWrite {
			_ = conn.CloseWrite()
		}
		wrote <- err
	}()
	resp, err := readUntilClose(conn)
	if werr := <-wrote; werr != nil && !peerClosed(werr) && err == nil {
		err = werr
	}
	return resp, err
}

// readAll reads until the peer closes; a deadline passing is an error.
func readUntilClose(conn net.Conn) ([]byte, error) {
	var out []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := conn.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				return out, nil
			}
			return out, err
		}
	}
}

// isClosed reports whether a write failed because the server had already
// closed the connection, which it may do at any point of a bad input.
func peerClosed(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// checkStartupAnswer checks what a server said to a client that does not
// know any password: after any 'N' answers to encryption requests, only
// authentication requests and FATAL errors with the codes of the startup
// phase, and never AuthenticationOk.
func checkStartupAnswer(t *testing.T, resp []byte) {
	t.Helper()
	// An 'N' declining encryption is one byte; a message's length starts
	// with a zero byte.
	for len(resp) > 0 && resp[0] == 'N' && (len(resp) == 1 || resp[1] != 0) {
		resp = resp[1:]
	}
	msgs, err := decodeBackend(resp)
	if err != nil {
		t.Fatalf("malformed answer %q: %v", resp, err)
	}
	for _, m := range msgs {
		switch m := m.(type) {
		case *pgproto3.AuthenticationSASL, *pgproto3.AuthenticationSASLContinue:
		case *pgproto3.ErrorResponse:
			switch m.Code {
			case codeProtocolViolation, "28P01", "28000", codeTooManyConnections, codeFeatureNotSupp:
			default:
				t.Fatalf("unexpected error in the startup phase: %+v", m)
			}
		default:
			t.Fatalf("a client without the password got %T", m)
		}
	}
}

// decodeBackend splits a server's answer into messages; a message cut
// short is an error.
func decodeBackend(b []byte) ([]pgproto3.BackendMessage, error) {
	var out []pgproto3.BackendMessage
	for len(b) > 0 {
		if len(b) < 5 {
			return out, fmt.Errorf("after %d messages: %d bytes of a message header", len(out), len(b))
		}
		n := int(int32(binary.BigEndian.Uint32(b[1:5])))
		if n < 4 || n+1 > len(b) {
			return out, fmt.Errorf("after %d messages: %c message of length %d in %d bytes", len(out), b[0], n, len(b))
		}
		// A Frontend of its own per message: Receive reuses messages.
		m, err := pgproto3.NewFrontend(bytes.NewReader(b[:n+1]), io.Discard).Receive()
		if err != nil {
			return out, fmt.Errorf("after %d messages: %w", len(out), err)
		}
		out = append(out, m)
		b = b[n+1:]
	}
	return out, nil
}

func isReady(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok }

func appendMessage(t *testing.T, dst []byte, m pgproto3.BackendMessage) []byte {
	t.Helper()
	out, err := m.Encode(dst)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wholeMessages reports whether b is a sequence of complete messages, each
// a type byte and a length that covers the rest of it.
func wholeMessages(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 5 {
			return false
		}
		n := int(int32(binary.BigEndian.Uint32(b[1:5])))
		if n < 4 || n+1 > len(b) {
			return false
		}
		b = b[n+1:]
	}
	return true
}

// pairListener is a net.Listener that hands out one end of a Unix socket
// pair per dial: the fuzzed server's sessions get a real socket (deadlines,
// half-close) without ports, so millions of connections leave nothing in
// TIME_WAIT.
type pairListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPairListener() *pairListener {
	return &pairListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pairListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pairListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pairListener) Addr() net.Addr { return pairAddr{} }

// dial connects a client to the listener's server.
func (l *pairListener) dial(tb testing.TB) *net.UnixConn {
	tb.Helper()
	c, err := l.connect()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func (l *pairListener) connect() (*net.UnixConn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	client, err := fileConn(fds[0])
	if err != nil {
		syscall.Close(fds[1])
		return nil, err
	}
	server, err := fileConn(fds[1])
	if err != nil {
		client.Close()
		return nil, err
	}
	select {
	case l.conns <- pairConn{server}:
		return client, nil
	case <-l.done:
		client.Close()
		server.Close()
		return nil, net.ErrClosed
	}
}

func fileConn(fd int) (*net.UnixConn, error) {
	f := os.NewFile(uintptr(fd), "socketpair")
	defer f.Close() // FileConn holds its own duplicate
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// pairConn gives the server end of a socket pair an address to log: an
// unnamed Unix socket has none.
type pairConn struct{ *net.UnixConn }

func (pairConn) RemoteAddr() net.Addr { return pairAddr{} }
func (pairConn) LocalAddr() net.Addr  { return pairAddr{} }

type pairAddr struct{}

func (pairAddr) Network() string { return "pair" }
func (pairAddr) String() string  { return "socketpair" }

// serveFixture runs srv on a pairListener until the test ends.
func serveFixture(tb testing.TB, srv *Server) *pairListener {
	ln := newPairListener()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			tb.Errorf("Serve: %v", err)
		}
	})
	return ln
}

// waitSessions waits until the server has n sessions, as it should once
// every fuzzed connection is closed.
func waitSessions(t *testing.T, srv *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(fuzzSlack)
	for srv.ActiveSessions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions linger after their clients closed, want %d", srv.ActiveSessions(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// startupFixture is a SCRAM server over a snapshot without keyspaces and
// with one user, alice, whose password no fuzz input knows.
type startupFixture struct {
	srv *Server
	ln  *pairListener
}

func newStartupFixture(tb testing.TB) *startupFixture {
	verifier, err := topology.NewVerifier(fuzzPassword)
	if err != nil {
		tb.Fatal(err)
	}
	snap := &topology.Snapshot{Users: map[string]*topology.User{
		"alice": {Name: "alice", Verifier: verifier, Keyspaces: []string{"app"}},
	}}
	pools := NewPools(DefaultPoolConfig, zap.NewNop())
	tb.Cleanup(pools.Close)
	srv := NewServer(Config{
		Topology: func() *topology.Snapshot { return snap }, Pools: pools, Log: zap.NewNop(), GatewayID: "fuzz",
		Auth: AuthSCRAM, StartupTimeout: fuzzStartupTimeout, MaxMessageSize: fuzzMaxMessage,
		// Small limits: a session that is never uncounted shows at once.
		MaxClientConns: 2, MaxClientConnsPerUser: 2,
	})
	return &startupFixture{srv: srv, ln: serveFixture(tb, srv)}
}

// check asserts that the server survived an input: it greets a new client
// with AuthenticationSASL, and every session ends once its client left.
func (fx *startupFixture) check(t *testing.T) {
	t.Helper()
	conn := fx.ln.dial(t)
	_ = conn.SetDeadline(time.Now().Add(fuzzSlack))
	if _, err := conn.Write(startupPacket("user", "alice", "database", "app")); err != nil {
		t.Fatalf("server gone: %v", err)
	}
	msg, err := pgproto3.NewFrontend(conn, conn).Receive()
	if _, ok := msg.(*pgproto3.AuthenticationSASL); !ok {
		t.Fatalf("next client got %T %+v, %v; want AuthenticationSASL", msg, msg, err)
	}
	conn.Close()
	waitSessions(t, fx.srv, 0)
}

// messagesFixture is a trust server over two fake shards with a canary
// session that checks, after each input, that the server and its pools
// still serve others.
type messagesFixture struct {
	srv    *Server
	ln     *pairListener
	canary *pgconn.PgConn
}

const fuzzVSchema = `
keyspaces:
  app:
    sharded: true
    tables:
      users: {column: id, type: bigint}
      orders: {column: user_id, type: bigint}
      names: {column: name, type: text}
      countries: {kind: reference}
  pinned:
    sharded: true
    pooling: session
    tables:
      users: {column: id, type: bigint}
`

func newMessagesFixture(tb testing.TB) *messagesFixture {
	ctx := context.Background()
	etcd, err := topology.StartEmbedded(ctx, tb.TempDir(), "", zap.NewNop())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(etcd.Close)
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	store := topology.NewStore(cli, "fuzz")
	for _, name := range []string{"s0", "s1"} {
		sh := startFakeShard(tb)
		if err := store.AddShard(ctx, topology.Shard{Name: name, DSN: sh.dsn()}); err != nil {
			tb.Fatal(err)
		}
	}
	f, err := vschema.Parse([]byte(fuzzVSchema))
	if err != nil {
		tb.Fatal(err)
	}
	for _, ks := range []string{"app", "pinned"} {
		if err := store.CreateKeyspace(ctx, ks, 16, []string{"s0", "s1"}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := store.ApplyVSchemas(ctx, f.Keyspaces["app"], f.Keyspaces["pinned"]); err != nil {
		tb.Fatal(err)
	}
	snap, err := store.Load(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	pools := NewPools(PoolConfig{MaxConns: 4, IdleTimeout: time.Minute, AcquireTimeout: 2 * time.Second, ConnectTimeout: 2 * time.Second}, zap.NewNop())
	tb.Cleanup(pools.Close) // after the server's cleanup, which runs first
	srv := NewServer(Config{
		Topology: func() *topology.Snapshot { return snap }, Pools: pools, Log: zap.NewNop(), TwoPC: store, GatewayID: "fuzz",
		Auth: AuthTrust, StartupTimeout: 2 * time.Second, MaxMessageSize: fuzzMaxMessage,
	})
	fx := &messagesFixture{srv: srv, ln: serveFixture(tb, srv)}
	cfg, err := pgconn.ParseConfig("host=127.0.0.1 user=canary dbname=app sslmode=disable")
	if err != nil {
		tb.Fatal(err)
	}
	cfg.DialFunc = func(context.Context, string, string) (net.Conn, error) { return fx.ln.connect() }
	if fx.canary, err = pgconn.ConnectConfig(ctx, cfg); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { fx.canary.Close(context.Background()) })
	return fx
}

// check asserts that the canary session still runs statements, and that
// the fuzzed session ended.
func (fx *messagesFixture) check(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fuzzSlack)
	defer cancel()
	for _, sql := range []string{"select 1", "select * from users where id = 7", "begin; insert into users (id) values (1), (2); commit"} {
		if _, err := fx.canary.Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatalf("canary session %q: %v", sql, err)
		}
	}
	if s := fx.canary.TxStatus(); s != 'I' {
		t.Fatalf("canary session in transaction status %c", s)
	}
	waitSessions(t, fx.srv, 1)
}

// fakeShard is a stand-in for a Postgres shard: it speaks enough of the
// protocol for every path of a session to run — startup, settings, simple
// and extended queries, transactions, two-phase commit, COPY in and out —
// and answers every statement at once. Selects return no rows; a statement
// containing 1/0 fails with 22012, as it would on Postgres.
type fakeShard struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startFakeShard(tb testing.TB) *fakeShard {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	sh := &fakeShard{ln: ln, conns: map[net.Conn]bool{}}
	sh.wg.Add(1)
	go func() {
		defer sh.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			sh.mu.Lock()
			sh.conns[conn] = true
			sh.mu.Unlock()
			sh.wg.Add(1)
			go func() {
				defer sh.wg.Done()
				defer func() {
					sh.mu.Lock()
					delete(sh.conns, conn)
					sh.mu.Unlock()
					conn.Close()
				}()
				(&fakeBackend{be: pgproto3.NewBackend(conn, conn), conn: conn}).serve()
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		sh.mu.Lock()
		for c := range sh.conns {
			c.Close()
		}
		sh.mu.Unlock()
		sh.wg.Wait()
	})
	return sh
}

func (sh *fakeShard) dsn() string {
	return fmt.Sprintf("postgres://fake@%s/fake?sslmode=disable&connect_timeout=2", sh.ln.Addr())
}

// fakeBackend is one connection of a fakeShard.
type fakeBackend struct {
	be     *pgproto3.Backend
	conn   net.Conn
	status byte // 'I', 'T' or 'E'
	// skip drops extended-protocol messages after an error, until Sync.
	skip     bool
	prepared map[string]fakeStatement
	portals  map[string]fakeStatement
}

type fakeStatement struct {
	sql  string
	oids []uint32
}

var paramRef = regexp.MustCompile(`\$([0-9]+)`)

func (b *fakeBackend) serve() {
	for {
		msg, err := b.be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		if _, ok := msg.(*pgproto3.StartupMessage); ok {
			break
		}
		if _, ok := msg.(*pgproto3.CancelRequest); ok {
			return
		}
		if _, err := b.conn.Write([]byte{'N'}); err != nil {
			return
		}
	}
	b.status, b.prepared, b.portals = 'I', map[string]fakeStatement{}, map[string]fakeStatement{}
	b.be.Send(&pgproto3.AuthenticationOk{})
	for _, p := range [][2]string{
		{"server_version", "17.0"}, {"server_encoding", "UTF8"}, {"client_encoding", "UTF8"},
		{"DateStyle", "ISO, MDY"}, {"IntervalStyle", "postgres"}, {"TimeZone", "UTC"},
		{"integer_datetimes", "on"}, {"standard_conforming_strings", "on"}, {"is_superuser", "on"},
		{"application_name", ""}, {"default_transaction_read_only", "off"}, {"in_hot_standby", "off"},
		{"scram_iterations", "4096"},
	} {
		b.be.Send(&pgproto3.ParameterStatus{Name: p[0], Value: p[1]})
	}
	b.be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	b.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if b.be.Flush() != nil {
		return
	}
	for {
		msg, err := b.be.Receive()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			if !b.query(m.String) {
				return
			}
			b.be.Send(&pgproto3.ReadyForQuery{TxStatus: b.status})
		case *pgproto3.Parse:
			if !b.skip && b.check(m.Query) {
				b.prepared[m.Name] = fakeStatement{sql: m.Query, oids: slices.Clone(m.ParameterOIDs)}
				b.be.Send(&pgproto3.ParseComplete{})
			}
		case *pgproto3.Bind:
			if b.skip {
				break
			}
			st, ok := b.prepared[m.PreparedStatement]
			if !ok {
				b.fail("26000", fmt.Sprintf("prepared statement %q does not exist", m.PreparedStatement))
				break
			}
			b.portals[m.DestinationPortal] = st
			b.be.Send(&pgproto3.BindComplete{})
		case *pgproto3.Describe:
			if b.skip {
				break
			}
			st, ok := b.prepared[m.Name]
			if m.ObjectType == 'P' {
				st, ok = b.portals[m.Name]
			}
			if !ok {
				b.fail("26000", fmt.Sprintf("%c %q does not exist", m.ObjectType, m.Name))
				break
			}
			if m.ObjectType == 'S' {
				b.be.Send(&pgproto3.ParameterDescription{ParameterOIDs: st.paramOIDs()})
			}
			if returnsRows(st.sql) {
				b.be.Send(fakeRows)
			} else {
				b.be.Send(&pgproto3.NoData{})
			}
		case *pgproto3.Execute:
			if b.skip {
				break
			}
			st, ok := b.portals[m.Portal]
			if !ok {
				b.fail("34000", fmt.Sprintf("portal %q does not exist", m.Portal))
				break
			}
			b.statement(st.sql)
		case *pgproto3.Close:
			if !b.skip {
				if m.ObjectType == 'S' {
					delete(b.prepared, m.Name)
				} else {
					delete(b.portals, m.Name)
				}
				b.be.Send(&pgproto3.CloseComplete{})
			}
		case *pgproto3.Sync:
			b.skip = false
			if b.status == 'I' {
				delete(b.portals, "")
			}
			b.be.Send(&pgproto3.ReadyForQuery{TxStatus: b.status})
		case *pgproto3.Flush:
		case *pgproto3.FunctionCall:
			// Every function returns NULL here, at once, as one that exists.
			b.be.Send(&pgproto3.FunctionCallResponse{})
			b.be.Send(&pgproto3.ReadyForQuery{TxStatus: b.status})
			if b.be.Flush() != nil {
				return
			}
		case *pgproto3.Terminate:
			return
		default:
			// Stray COPY messages: ignored, as by Postgres.
			continue
		}
		switch msg.(type) {
		case *pgproto3.Query, *pgproto3.Sync, *pgproto3.Flush:
			if b.be.Flush() != nil {
				return
			}
		}
	}
}

// paramOIDs gives the statement's parameter types: the ones the client
// gave, text for the rest, as many as it refers to.
func (st fakeStatement) paramOIDs() []uint32 {
	n := len(st.oids)
	for _, m := range paramRef.FindAllStringSubmatch(st.sql, -1) {
		if i, err := strconv.Atoi(m[1]); err == nil && i > n && i <= 1000 {
			n = i
		}
	}
	oids := make([]uint32, n)
	for i := range oids {
		oids[i] = 25
		if i < len(st.oids) && st.oids[i] != 0 {
			oids[i] = st.oids[i]
		}
	}
	return oids
}

// fakeRows describes the result of every read: one text column.
var fakeRows = &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("?column?"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}}

// fail answers an error, failing the transaction and, in the extended
// protocol, skipping to Sync.
func (b *fakeBackend) fail(code, msg string) {
	b.be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code, Message: msg})
	if b.status == 'T' {
		b.status = 'E'
	}
	b.skip = true
}

// check fails sql as Postgres would, if it divides by zero or runs in a
// failed transaction.
func (b *fakeBackend) check(sql string) bool {
	upper := strings.ToUpper(strings.TrimSpace(sql))
	switch {
	case b.status == 'E' && !strings.HasPrefix(upper, "ROLLBACK") && !strings.HasPrefix(upper, "COMMIT") && !strings.HasPrefix(upper, "ABORT") && !strings.HasPrefix(upper, "END"):
		b.fail("25P02", "current transaction is aborted, commands ignored until end of transaction block")
		return false
	case strings.Contains(strings.ReplaceAll(sql, " ", ""), "1/0"):
		b.fail("22012", "division by zero")
		return false
	}
	return true
}

// query answers a simple-protocol query: each statement in turn (split at
// semicolons, quotes notwithstanding), stopping at the first error. It
// returns false if the connection is lost during COPY.
func (b *fakeBackend) query(sql string) bool {
	if strings.TrimSpace(sql) == "" || strings.HasPrefix(strings.TrimSpace(sql), "--") {
		b.be.Send(&pgproto3.EmptyQueryResponse{})
		return true
	}
	for _, stmt := range strings.Split(sql, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if !b.check(stmt) {
			return true
		}
		upper := strings.ToUpper(stmt)
		switch {
		case strings.Contains(upper, "PG_ATTRIBUTE"):
			b.be.Send(fakeRows)
			b.be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("id")}})
			b.be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("name")}})
			b.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 2")})
		case strings.HasPrefix(strings.TrimSpace(upper), "COPY") && strings.Contains(upper, "STDIN"):
			return b.copyIn()
		case strings.HasPrefix(strings.TrimSpace(upper), "COPY"):
			b.be.Send(&pgproto3.CopyOutResponse{})
			b.be.Send(&pgproto3.CopyData{Data: []byte("1\tx\n")})
			b.be.Send(&pgproto3.CopyDone{})
			b.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("COPY 1")})
		default:
			b.statement(stmt)
		}
		if b.status == 'E' {
			return true
		}
	}
	return true
}

// statement answers one statement that is not COPY.
func (b *fakeBackend) statement(stmt string) {
	words := strings.Fields(strings.ToUpper(stmt))
	if len(words) == 0 {
		b.be.Send(&pgproto3.EmptyQueryResponse{})
		return
	}
	tag := words[0]
	switch {
	case returnsRows(stmt):
		b.be.Send(fakeRows)
		tag = "SELECT 0"
	case tag == "BEGIN" || tag == "START":
		b.status = 'T'
		if tag == "START" {
			tag = "START TRANSACTION"
		}
	case tag == "PREPARE" && len(words) > 1 && words[1] == "TRANSACTION":
		b.status, tag = 'I', "PREPARE TRANSACTION"
	case (tag == "COMMIT" || tag == "ROLLBACK") && len(words) > 1 && words[1] == "PREPARED":
		tag += " PREPARED"
	case tag == "ROLLBACK" && len(words) > 1 && words[1] == "TO", tag == "SAVEPOINT", tag == "RELEASE":
		if b.status == 'I' {
			b.fail("25P01", tag+" can only be used in transaction blocks")
			return
		}
	case tag == "COMMIT" || tag == "END":
		if b.status == 'E' {
			tag = "ROLLBACK"
		}
		b.status, tag = 'I', strings.Replace(tag, "END", "COMMIT", 1)
	case tag == "ROLLBACK" || tag == "ABORT":
		b.status, tag = 'I', "ROLLBACK"
	case tag == "INSERT":
		tag = "INSERT 0 1"
	case tag == "UPDATE" || tag == "DELETE" || tag == "MERGE":
		tag += " 1"
	case tag == "DEALLOCATE":
		clear(b.prepared)
	}
	b.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
}

// isRead reports whether a statement returns rows.
func returnsRows(stmt string) bool {
	words := strings.Fields(strings.ToUpper(stmt))
	if len(words) == 0 {
		return false
	}
	switch strings.TrimLeft(words[0], "(") {
	case "SELECT", "SHOW", "VALUES", "TABLE", "WITH", "EXPLAIN", "FETCH":
		return true
	}
	return false
}

// copyIn runs COPY FROM STDIN: CopyInResponse, then data until CopyDone or
// CopyFail.
func (b *fakeBackend) copyIn() bool {
	b.be.Send(&pgproto3.CopyInResponse{})
	if b.be.Flush() != nil {
		return false
	}
	rows := 0
	for {
		msg, err := b.be.Receive()
		if err != nil {
			return false
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			rows += bytes.Count(m.Data, []byte("\n"))
		case *pgproto3.CopyDone:
			b.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("COPY " + strconv.Itoa(rows))})
			return true
		case *pgproto3.CopyFail:
			b.fail("57014", "COPY from stdin failed: "+m.Message)
			b.skip = false
			return true
		case *pgproto3.Sync, *pgproto3.Flush:
		default:
			b.fail(codeProtocolViolation, fmt.Sprintf("unexpected message %T during COPY from stdin", msg))
			b.skip = false
			return true
		}
	}
}

// startupPacket encodes a protocol 3.0 StartupMessage with its parameters
// in the order given (pgproto3 encodes a map, in random order).
func startupPacket(params ...string) []byte {
	body := binary.BigEndian.AppendUint32(nil, pgproto3.ProtocolVersion30)
	for _, p := range params {
		body = append(append(body, p...), 0)
	}
	body = append(body, 0)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...)
}

// frame encodes a typed message with the given body.
func rawMsg(typ byte, body ...string) []byte {
	b := strings.Join(body, "")
	out := append([]byte{typ}, binary.BigEndian.AppendUint32(nil, uint32(len(b)+4))...)
	return append(out, b...)
}

// encode encodes client messages back to back.
func encodeMsgs(msgs ...pgproto3.FrontendMessage) []byte {
	var out []byte
	for _, m := range msgs {
		var err error
		if out, err = m.Encode(out); err != nil {
			panic(err)
		}
	}
	return out
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// u32 is a big-endian 32-bit integer, as lengths and codes are sent.
func be32(v uint32) string { return string(binary.BigEndian.AppendUint32(nil, v)) }

type startupSeed struct {
	name string
	data []byte
	hold bool
}

func startupSeeds() []startupSeed {
	ssl := encodeMsgs(&pgproto3.SSLRequest{})
	gss := encodeMsgs(&pgproto3.GSSEncRequest{})
	alice := startupPacket("user", "alice", "database", "app")
	cancel := encodeMsgs(&pgproto3.CancelRequest{ProcessID: 1234, SecretKey: []byte{1, 2, 3, 4}})
	version := func(v uint32, params ...string) []byte {
		p := startupPacket(params...)
		binary.BigEndian.PutUint32(p[4:], v)
		return p
	}
	return []startupSeed{
		{name: "startup", data: alice},
		{name: "startup-hold", data: alice, hold: true},
		{name: "startup-unknown-user", data: startupPacket("user", "nobody", "database", "nosuch")},
		{name: "startup-no-user", data: startupPacket("database", "app")},
		{name: "startup-options", data: startupPacket("user", "alice", "database", "app", "options", "-c statement_timeout=1 --search_path=x", "application_name", "fuzz")},
		{name: "startup-bad-options", data: startupPacket("user", "alice", "options", "-x")},
		{name: "startup-replication", data: startupPacket("user", "alice", "replication", "database")},
		{name: "startup-protocol-3.2", data: version(pgproto3.ProtocolVersion32, "user", "alice")},
		{name: "startup-protocol-2.0", data: version(2<<16, "user", "alice")},
		{name: "startup-protocol-4.0", data: version(4<<16, "user", "alice")},
		{name: "startup-unterminated", data: []byte(be32(17) + be32(pgproto3.ProtocolVersion30) + "user\x00alice")},
		{name: "startup-odd-parameter", data: []byte(be32(19) + be32(pgproto3.ProtocolVersion30) + "user\x00alice\x00x\x00\x00")},
		{name: "startup-twice", data: cat(alice, alice)},
		{name: "ssl-then-startup", data: cat(ssl, alice)},
		{name: "ssl-twice-then-startup", data: cat(ssl, ssl, alice)},
		{name: "ssl-then-garbage", data: cat(ssl, []byte("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03hello"))},
		{name: "ssl-hold", data: ssl, hold: true},
		{name: "gss-then-startup", data: cat(gss, alice)},
		{name: "cancel", data: cancel},
		{name: "cancel-long-secret", data: []byte(be32(48) + be32(80877102) + be32(1234) + strings.Repeat("k", 36))},
		{name: "cancel-short-secret", data: []byte(be32(14) + be32(80877102) + be32(1234) + "ab")},
		{name: "cancel-then-startup", data: cat(cancel, alice)},
		{name: "garbage-http", data: []byte("GET / HTTP/1.1\r\nHost: gateway\r\n\r\n")},
		{name: "garbage-tls-hello", data: []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")},
		{name: "garbage-query", data: rawMsg('Q', "select 1\x00")},
		{name: "empty"},
		{name: "empty-hold", hold: true},
		{name: "truncated-length", data: []byte{0, 0}},
		{name: "truncated-length-hold", data: []byte{0, 0}, hold: true},
		{name: "truncated-startup", data: alice[:len(alice)/2]},
		{name: "truncated-startup-hold", data: alice[:len(alice)/2], hold: true},
		{name: "length-too-short", data: []byte(be32(4))},
		{name: "length-negative", data: []byte(be32(0xfffffff0) + "xxxx")},
		{name: "length-huge", data: []byte(be32(0x40000000) + be32(pgproto3.ProtocolVersion30))},
		{name: "length-max-startup", data: []byte(be32(10004) + be32(pgproto3.ProtocolVersion30) + strings.Repeat("a", 100))},
		{name: "startup-then-huge-sasl", data: cat(alice, []byte("p"+be32(0x40000000)))},
		{name: "startup-then-query", data: cat(alice, rawMsg('Q', "select 1\x00"))},
	}
}

type saslSeed struct {
	name          string
	known         bool
	first, second []byte
}

// saslInitial frames a SASLInitialResponse the way a client sends it.
func saslInitial(mech, data string) []byte {
	return rawMsg('p', mech, "\x00", be32(uint32(len(data))), data)
}

func saslSeeds() []saslSeed {
	const nonce = "fyko+d2lbbFgONRv9qkxdawL"
	first := saslInitial("SCRAM-SHA-256", "n,,n=,r="+nonce)
	final := rawMsg('p', "c=biws,r="+nonce+"3rfcNHYJY1ZVvWVs7j,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	return []saslSeed{
		{name: "scram", known: true, first: first, second: final},
		{name: "scram-unknown-user", first: first, second: final},
		{name: "scram-wrong-nonce", known: true, first: first, second: rawMsg('p', "c=biws,r=other,p=AAAA")},
		{name: "scram-no-proof", known: true, first: first, second: rawMsg('p', "c=biws,r="+nonce)},
		{name: "scram-bad-base64", known: true, first: first, second: rawMsg('p', "c=biws,r="+nonce+",p=!!!")},
		{name: "scram-empty-final", known: true, first: first, second: rawMsg('p')},
		{name: "scram-final-huge-length", known: true, first: first, second: []byte("p" + be32(0x40000000))},
		{name: "scram-final-query", known: true, first: first, second: rawMsg('Q', "select 1\x00")},
		{name: "scram-final-terminate", known: true, first: first, second: rawMsg('X')},
		{name: "scram-final-truncated", known: true, first: first, second: final[:len(final)/2]},
		{name: "scram-plus-without-tls", known: true, first: saslInitial("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r="+nonce)},
		{name: "scram-binding-flag-y", known: true, first: saslInitial("SCRAM-SHA-256", "y,,n=,r="+nonce)},
		{name: "scram-authzid", known: true, first: saslInitial("SCRAM-SHA-256", "n,a=admin,n=,r="+nonce)},
		{name: "plain-mechanism", known: true, first: saslInitial("PLAIN", "\x00alice\x00secret")},
		{name: "null-data", known: true, first: rawMsg('p', "SCRAM-SHA-256\x00", be32(0xffffffff))},
		{name: "data-length-too-long", known: true, first: rawMsg('p', "SCRAM-SHA-256\x00", be32(1000), "n,,n=,r=x")},
		{name: "no-mechanism-terminator", known: true, first: rawMsg('p', "SCRAM-SHA-256")},
		{name: "huge-length", known: true, first: []byte("p" + be32(0x40000000))},
		{name: "length-over-max", known: true, first: []byte("p" + be32(fuzzMaxMessage+5) + "n,,")},
		{name: "truncated", known: true, first: first[:len(first)/2]},
		{name: "password-message", known: true, first: rawMsg('p', fuzzPassword, "\x00")},
		{name: "query-instead", known: true, first: rawMsg('Q', "select 1\x00")},
		{name: "terminate", known: true, first: rawMsg('X')},
		{name: "unknown-type", known: true, first: rawMsg('z', "zz")},
		{name: "empty", known: true},
	}
}

type messageSeed struct {
	name   string
	pinned bool
	data   []byte
}

func queryMsg(sql string) []byte { return encodeMsgs(&pgproto3.Query{String: sql}) }

func messageSeeds() []messageSeed {
	keyed := "select * from users where id = $1"
	bind := func(portal, stmt string, params ...string) *pgproto3.Bind {
		b := &pgproto3.Bind{DestinationPortal: portal, PreparedStatement: stmt}
		for _, p := range params {
			b.Parameters = append(b.Parameters, []byte(p))
		}
		return b
	}
	batch := encodeMsgs(
		&pgproto3.Parse{Name: "s1", Query: keyed, ParameterOIDs: []uint32{20}},
		&pgproto3.Describe{ObjectType: 'S', Name: "s1"},
		bind("", "s1", "42"),
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	)
	seeds := []messageSeed{
		{name: "select-1", data: queryMsg("select 1")},
		{name: "select-keyed", data: queryMsg("select * from users where id = 1")},
		{name: "select-scatter", data: queryMsg("select count(*), max(name) from users group by name order by 1 limit 3")},
		{name: "select-join", data: queryMsg("select * from users u join orders o on o.user_id = u.id where u.id in (1, 2, 3)")},
		{name: "select-text-key", data: queryMsg("select * from names where name = 'x' or name = 'y'")},
		{name: "select-reference", data: queryMsg("select * from countries")},
		{name: "empty-query", data: queryMsg("")},
		{name: "syntax-error", data: queryMsg("selec 1; select 2")},
		{name: "shard-error", data: queryMsg("select 1/0")},
		{name: "multi-statement", data: queryMsg("insert into users (id, name) values (1, 'a'); insert into users (id, name) values (2, 'b'); select * from users")},
		{name: "transaction", data: queryMsg("begin; insert into users (id) values (1); insert into users (id) values (2); commit")},
		{name: "transaction-failed", data: cat(queryMsg("begin"), queryMsg("select 1/0"), queryMsg("select 1"), queryMsg("rollback"))},
		{name: "savepoints", data: queryMsg("begin; savepoint a; update users set name = 'x' where id = 1; rollback to a; release a; commit")},
		{name: "settings", data: queryMsg("set application_name = 'fuzz'; set local search_path = x; reset all; show application_name")},
		{name: "set-config", data: queryMsg("select set_config('search_path', 'x', false)")},
		{name: "ddl", data: queryMsg("create table t (id bigint primary key); drop table t")},
		{name: "copy-from", data: cat(queryMsg("copy users (id, name) from stdin"), encodeMsgs(&pgproto3.CopyData{Data: []byte("1\ta\n2\tb\n")}, &pgproto3.CopyDone{}))},
		{name: "copy-from-csv", data: cat(queryMsg("copy users from stdin with (format csv, header true)"), encodeMsgs(&pgproto3.CopyData{Data: []byte("id,name\n1,\"a\"\"b\"\n")}, &pgproto3.CopyDone{}))},
		{name: "copy-from-fail", data: cat(queryMsg("copy users from stdin"), encodeMsgs(&pgproto3.CopyData{Data: []byte("1\t")}, &pgproto3.CopyFail{Message: "no"}))},
		{name: "copy-from-query-inside", data: cat(queryMsg("copy users from stdin"), queryMsg("select 1"))},
		{name: "copy-from-unterminated", data: queryMsg("copy users from stdin")},
		{name: "copy-to", data: queryMsg("copy users to stdout with (format csv, header)")},
		{name: "copy-data-without-copy", data: encodeMsgs(&pgproto3.CopyData{Data: []byte("1\tx\n")}, &pgproto3.CopyDone{}, &pgproto3.CopyFail{Message: "x"}, &pgproto3.Query{String: "select 1"})},
		{name: "extended-batch", data: batch},
		{name: "extended-batch-pinned", pinned: true, data: batch},
		{name: "extended-unnamed", data: encodeMsgs(&pgproto3.Parse{Query: "insert into users (id, name) values ($1, $2)"}, bind("", "", "5", "e"), &pgproto3.Execute{}, &pgproto3.Sync{})},
		{name: "extended-two-executes", data: encodeMsgs(
			&pgproto3.Parse{Query: "update users set name = $2 where id = $1"},
			bind("", "", "1", "a"), &pgproto3.Execute{},
			bind("", "", "2", "b"), &pgproto3.Execute{},
			&pgproto3.Sync{},
		)},
		{name: "extended-max-rows-flush", data: encodeMsgs(
			&pgproto3.Parse{Name: "s", Query: keyed}, bind("p", "s", "1"),
			&pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Flush{},
			&pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{},
		)},
		{name: "extended-in-transaction", data: cat(queryMsg("begin"), encodeMsgs(
			&pgproto3.Parse{Query: "select * from users"}, bind("c", ""), &pgproto3.Execute{Portal: "c", MaxRows: 2},
			&pgproto3.Execute{Portal: "c"}, &pgproto3.Close{ObjectType: 'P', Name: "c"}, &pgproto3.Sync{},
		), queryMsg("commit"))},
		{name: "extended-errors", data: encodeMsgs(
			bind("", "nosuch"), &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Parse{Name: "d", Query: "select 1"}, &pgproto3.Parse{Name: "d", Query: "select 2"}, &pgproto3.Sync{},
			&pgproto3.Describe{ObjectType: 'P', Name: "nosuch"}, &pgproto3.Sync{},
			&pgproto3.Parse{Query: "select 1; select 2"}, &pgproto3.Sync{},
		)},
		{name: "extended-wrong-param-count", data: encodeMsgs(&pgproto3.Parse{Query: keyed}, bind("", ""), &pgproto3.Execute{}, &pgproto3.Sync{})},
		{name: "extended-binary-param", data: encodeMsgs(
			&pgproto3.Parse{Query: keyed, ParameterOIDs: []uint32{20}},
			&pgproto3.Bind{ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{0, 0, 0, 0, 0, 0, 0, 42}}, ResultFormatCodes: []int16{1}},
			&pgproto3.Execute{}, &pgproto3.Sync{},
		)},
		{name: "extended-bad-binary-param", data: encodeMsgs(
			&pgproto3.Parse{Query: keyed, ParameterOIDs: []uint32{20}},
			&pgproto3.Bind{ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{1, 2, 3}}},
			&pgproto3.Execute{}, &pgproto3.Sync{},
		)},
		{name: "extended-null-param", data: encodeMsgs(&pgproto3.Parse{Query: keyed}, &pgproto3.Bind{Parameters: [][]byte{nil}}, &pgproto3.Execute{}, &pgproto3.Sync{})},
		{name: "extended-format-mismatch", data: encodeMsgs(&pgproto3.Parse{Query: keyed}, &pgproto3.Bind{ParameterFormatCodes: []int16{0, 1, 0}, Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{}, &pgproto3.Sync{})},
		{name: "extended-set", data: encodeMsgs(&pgproto3.Parse{Query: "set search_path = $1"}, bind("", "", "x"), &pgproto3.Execute{}, &pgproto3.Sync{})},
		{name: "extended-begin-commit", data: encodeMsgs(
			&pgproto3.Parse{Query: "begin"}, bind("", ""), &pgproto3.Execute{},
			&pgproto3.Parse{Query: "commit"}, bind("", ""), &pgproto3.Execute{}, &pgproto3.Sync{},
		)},
		{name: "extended-copy", data: encodeMsgs(&pgproto3.Parse{Query: "copy users from stdin"}, bind("", ""), &pgproto3.Execute{}, &pgproto3.Sync{})},
		{name: "extended-no-sync", data: encodeMsgs(&pgproto3.Parse{Query: "select 1"}, bind("", ""), &pgproto3.Execute{})},
		{name: "close-and-flush", data: encodeMsgs(&pgproto3.Close{ObjectType: 'S', Name: "x"}, &pgproto3.Close{ObjectType: 'P'}, &pgproto3.Flush{}, &pgproto3.Sync{})},
		{name: "sync-only", data: encodeMsgs(&pgproto3.Sync{}, &pgproto3.Sync{})},
		{name: "function-call", data: encodeMsgs(&pgproto3.FunctionCall{Function: 1, Arguments: [][]byte{[]byte("x")}})},
		{name: "password-message", data: rawMsg('p', "secret\x00")},
		{name: "unknown-type", data: rawMsg('z', "zz")},
		{name: "terminate-then-more", data: cat(encodeMsgs(&pgproto3.Terminate{}), queryMsg("select 1"))},
		{name: "huge-length", data: []byte("Q" + be32(0x40000000) + "select")},
		{name: "length-over-max", data: []byte("Q" + be32(fuzzMaxMessage+5) + "select")},
		{name: "length-too-short", data: []byte("Q" + be32(3))},
		{name: "truncated-query", data: []byte("Q" + be32(100) + "select 1")},
		{name: "truncated-header", data: []byte("Q\x00\x00")},
		{name: "query-unterminated", data: rawMsg('Q', "select 1")},
		{name: "query-embedded-nul", data: rawMsg('Q', "select 1\x00; drop table users\x00")},
		{name: "query-invalid-utf8", data: queryMsg("select '\xff\xfe' from users where id = 1")},
		{name: "query-long-in-list", data: queryMsg("select * from users where id in (" + strings.Repeat("1,", 2000) + "1)")},
		{name: "query-deep-nesting", data: queryMsg("select " + strings.Repeat("(", 500) + "1" + strings.Repeat(")", 500))},
		{name: "pinned-transaction", pinned: true, data: queryMsg("begin; select * from users where id = 1; set application_name = 'p'; commit; select 1")},
	}
	return seeds
}

// marshalSeed writes fuzz arguments in the corpus file format of `go test
// -fuzz` ("go test fuzz v1", then one Go literal per argument).
func marshalSeed(args ...any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case bool:
			fmt.Fprintf(&b, "bool(%v)\n", v)
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		default:
			panic(fmt.Sprintf("unsupported fuzz argument %T", a))
		}
	}
	return b.Bytes()
}

// TestFuzzSeedFiles checks that every seed of the fuzz targets is also a
// file under testdata/fuzz, so a plain `go test` runs it even where f.Add
// lists change; -rewrite-fuzz-seeds writes them.
func TestFuzzSeedFiles(t *testing.T) {
	files := map[string][]byte{}
	for _, s := range startupSeeds() {
		files[filepath.Join("FuzzStartup", "seed-"+s.name)] = marshalSeed(s.data, s.hold)
	}
	for _, s := range saslSeeds() {
		files[filepath.Join("FuzzSASL", "seed-"+s.name)] = marshalSeed(s.known, s.first, s.second)
	}
	for _, s := range messageSeeds() {
		files[filepath.Join("FuzzMessages", "seed-"+s.name)] = marshalSeed(s.pinned, s.data)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join("testdata", "fuzz", name)
		if *rewriteFuzzSeeds {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, files[name], 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, files[name]) {
			t.Errorf("%s is missing or stale; run go test ./proxy -run TestFuzzSeedFiles -rewrite-fuzz-seeds", path)
		}
	}
}
