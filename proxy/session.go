package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// flushBytes is how much row data a session buffers before writing it to
// the client, so a large result streams in bounded memory.
const flushBytes = 64 << 10

// session is one client connection.
type session struct {
	srv *Server
	// activity is open from a statement that may write, or the first of
	// a transaction, until the session is idle outside a transaction
	// (see fences).
	activity *activity
	conn     net.Conn
	be       *clientWire
	log      *zap.Logger
	keyspace string
	user     string
	pending  int // bytes sent to be since the last flush
	// cancel ends the session's context, cancelling its running statement.
	cancel context.CancelFunc
	key    uint64 // cancel key: process id and secret
	// admitted is set once the session counts against MaxClientConns.
	admitted bool
	// backendRole is the role the session's statements run as on the
	// shards ("" for each shard's own).
	backendRole string
	// tls is set once the connection is encrypted.
	tls bool

	// startup holds the settings of the startup packet; settings those the
	// client changed since (SET), as parameter name -> statement. RESET
	// returns a setting to its startup value, as in Postgres.
	startup  map[string]string
	settings map[string]string
	// reported are the ParameterStatus values the client has.
	reported map[string]string
	txn      *txn
	// steer is what the session wrote where a reshard steers reads (see
	// steerRead); shadow is the shadow read of the statement about to run.
	steer  *steerState
	shadow *shadowRead
	// pinned are the backends a session-pooled session holds.
	pinned map[string]*backend

	// The extended query protocol: the client's prepared statements and
	// portals, and the Execute that waits for the next message (extended).
	statements map[string]*prepared
	portals    map[string]*portal
	held       *pgproto3.Execute
	// paused is the result a row-limited Execute left paused, in the
	// transaction (see pausedRun).
	paused *pausedRun
	// described is set while an Execute runs: the client learnt the result
	// columns from Describe, so no RowDescription goes out.
	described bool
	portalSeq int // names backend portals
	// ignoreTillSync is set after an error in the extended protocol: the
	// messages up to the next Sync are dropped.
	ignoreTillSync bool
	// ending is set once a FATAL error went out: the session ends.
	ending bool
	// console is set for a session of the admin console (see console.go).
	console bool
	// statePinned is set while the session holds backends, under
	// transaction pooling, for the state it left on them (see pin.go).
	statePinned bool
	// changedSchema is set from a schema-changing statement until its
	// transaction ends (see describecache.go).
	changedSchema bool
	// learned names the reference tables the session created (see
	// planner.Statement.Learns) until its keyspace's snapshot lists them;
	// learnedVS is the vschema it last planned by with them.
	learned   []string
	learnedVS struct{ base, ext *vschema.Keyspace }
	// currvals are the values the global sequences last gave the session
	// (by keyspace and sequence), lastval the last of any.
	currvals   map[string]int64
	lastval    int64
	hasLastval bool
	// schemaChanges counts the schema changes the session planned;
	// txnCat is the catalog its transaction saw after the last of them.
	schemaChanges int
	txnCat        struct {
		cat        *vschema.Catalog
		at         int
		txn        *txn
		base, with *vschema.Keyspace // with is base with cat attached
	}
	// listens is set once the session ran LISTEN (see notify.go).
	listens bool
	// clientInfo is what SHOW CLIENTS tells of the session (see console.go).
	clientInfo

	// stmtCtx is the context of the session's statements, child of
	// stmtParent, until a cancel request ends it (see statementContext);
	// stmtRunning is set while a statement runs.
	stmtMu      sync.Mutex
	stmtCtx     context.Context
	stmtParent  context.Context
	stmtCancel  context.CancelFunc
	stmtRunning bool
	stmtDone    func()
	// noticeFn and notifyFn are forwardNotice and forwardNotification,
	// for the backends the session uses.
	noticeFn func(*pgproto3.NoticeResponse)
	notifyFn func(*pgproto3.NotificationResponse)
	// emitFn is emit, bound once (see emitter); dataRow is what emit
	// sends each row in.
	emitFn  func(*engine.Batch) error
	dataRow pgproto3.DataRow
	// terminated is set by pg_terminate_backend of the session's process
	// id (see signal.go): it ends with FATAL 57P01.
	terminated atomic.Bool
	// executeQueued is set while an Execute waits for the next message,
	// and cancelQueued when a cancel request came meanwhile.
	executeQueued, cancelQueued bool
}

// maxAuthMessage bounds the messages of a client that has not logged in
// yet (Postgres allows SASL tokens of 64 KiB), so that unauthenticated
// clients cannot make the gateway allocate much.
const maxAuthMessage = 64 << 10

// setConn makes conn the session's connection (again, after TLS), reading
// small messages only until the client has logged in.
func (s *session) setConn(conn net.Conn) {
	s.conn = conn
	s.be = newClientWire(conn)
	s.be.SetMaxBodyLen(maxAuthMessage)
}

// handshake runs the startup phase: SSL and GSS encryption requests are
// declined, a CancelRequest cancels another session's statement, and a
// StartupMessage names the keyspace. It returns false if the session ends.
func (s *session) handshake(ctx context.Context) bool {
	if t := s.srv.startupTimeout(); t > 0 {
		// A client that never finishes its startup is dropped.
		_ = s.conn.SetDeadline(time.Now().Add(t))
	}
	for {
		msg, err := s.be.ReceiveStartupMessage()
		if err != nil {
			s.log.Debug("startup failed", zap.Error(err))
			s.rejectGarbage(err)
			return false
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if !s.startTLS() {
				return false
			}
		case *pgproto3.GSSEncRequest:
			if _, err := s.conn.Write([]byte{'N'}); err != nil {
				return false
			}
		case *pgproto3.CancelRequest:
			s.srv.cancel(m.ProcessID, m.SecretKey)
			return false
		case *pgproto3.StartupMessage:
			if s.srv.sslMode == SSLRequire && !s.tls {
				s.srv.count(refused, "tls_required")
				return s.fatal("28000", "this gateway accepts only TLS connections (ssl: require); connect with sslmode=require or stronger")
			}
			if msg := s.srv.admit(s, m.Parameters["user"]); msg != "" {
				s.srv.count(refused, "too_many_clients")
				return s.fatal(codeTooManyConnections, msg)
			}
			if !s.accept(ctx, m) {
				return false
			}
			_ = s.conn.SetDeadline(time.Time{})
			s.be.SetMaxBodyLen(s.srv.maxMessageSize()) // 0: no limit
			return true
		default:
			return false
		}
	}
}

// startTLS answers an SSLRequest: 'S' and a TLS handshake when TLS is
// configured, 'N' otherwise. A second SSLRequest is a protocol violation.
func (s *session) startTLS() bool {
	if s.tls {
		return s.fatal(codeProtocolViolation, "SSLRequest after the connection is encrypted")
	}
	if s.be.inputWaiting() {
		// Bytes sent before the answer would be read as if encrypted.
		return s.fatal(codeProtocolViolation, "received unencrypted data after SSL request")
	}
	if s.srv.tls == nil || s.srv.sslMode == SSLDisable {
		_, err := s.conn.Write([]byte{'N'})
		return err == nil
	}
	if _, err := s.conn.Write([]byte{'S'}); err != nil {
		return false
	}
	tc := tls.Server(s.conn, s.srv.tls)
	if err := tc.Handshake(); err != nil {
		s.log.Info("TLS handshake failed", zap.Error(err))
		return false
	}
	s.tls = true
	s.setConn(tc)
	return true
}

// rejectGarbage answers a startup packet that is not one the way Postgres
// does, with 08P01, when the connection still takes an answer.
func (s *session) rejectGarbage(err error) {
	var ne net.Error
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) {
		return
	}
	s.srv.count(refused, "protocol")
	s.fatal(codeProtocolViolation, "invalid startup packet")
}

func refused(m *Metrics) *prometheus.CounterVec      { return m.Refused }
func authFailures(m *Metrics) *prometheus.CounterVec { return m.AuthFailures }

// accept checks the startup parameters and greets the client as Postgres
// does: AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery.
func (s *session) accept(ctx context.Context, m *pgproto3.StartupMessage) bool {
	s.user = m.Parameters["user"]
	s.keyspace = m.Parameters["database"]
	if s.keyspace == "" {
		s.keyspace = s.user
	}
	s.log = s.log.With(zap.String("keyspace", s.keyspace), zap.String("user", s.user))
	if s.user == "" {
		return s.fatal(codeProtocolViolation, "no PostgreSQL user name specified in startup packet")
	}
	startup, err := startupSettings(m.Parameters)
	if err != nil {
		return s.fatal(codeFeatureNotSupp, err.Error())
	}
	s.startup, s.settings, s.reported, s.pinned = startup, map[string]string{}, map[string]string{}, map[string]*backend{}
	s.statements, s.portals = map[string]*prepared{}, map[string]*portal{}
	snap := s.srv.topo()
	if s.srv.auth != AuthTrust && !s.authenticate(snap) {
		return false
	}
	s.be.Send(&pgproto3.AuthenticationOk{})
	if s.keyspace == ConsoleDatabase {
		return s.acceptConsole(snap)
	}
	ks := snap.Keyspace(s.keyspace)
	if ks == nil {
		s.srv.count(authFailures, "unknown_keyspace")
		return s.fatal(codeInvalidCatalogName, fmt.Sprintf("database %q does not exist", s.keyspace))
	}
	if s.srv.auth != AuthTrust && !snap.User(s.user).CanUse(s.keyspace) {
		s.srv.count(authFailures, "no_grant")
		s.log.Warn("user has no grant on the keyspace")
		return s.fatal("42501", fmt.Sprintf("permission denied for database %q", s.keyspace))
	}
	if u := snap.User(s.user); u != nil {
		s.backendRole = u.BackendRole
	}
	if ks.VSchema() == nil {
		return s.fatal(codeInvalidCatalogName, fmt.Sprintf("keyspace %q has no vschema yet; apply one with 'shardctl vschema apply'", s.keyspace))
	}
	// A backend with the client's settings applied validates them and
	// tells the values to report.
	err = s.onAnyShard(ks, func(shard string) error {
		b, err := s.backendFor(ctx, shard, s.effective(nil))
		if err != nil {
			return err
		}
		s.reportParameters(b)
		s.giveBack(b)
		return nil
	})
	if err == nil {
		_, err = lookupEncoding(s.reported["client_encoding"])
	}
	if err != nil {
		return s.fatalErr(err)
	}
	s.be.Send(&pgproto3.ParameterStatus{Name: "session_authorization", Value: s.user})
	var key [8]byte
	_, _ = rand.Read(key[:])
	pid := gatewayPID(binary.BigEndian.Uint32(key[:4]))
	if b := s.pinned[ks.Shards()[0]]; b != nil && !ks.VSchema().Sharded {
		// The client owns this one backend: tell it its real process id,
		// as tools that look themselves up in pg_stat_activity expect.
		// Cancel requests still go through the gateway's own key.
		pid = b.pg.PID()
	}
	s.key = cancelKey(pid, key[4:])
	s.srv.register(s)
	s.be.Send(&pgproto3.BackendKeyData{ProcessID: pid, SecretKey: key[4:]})
	s.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	return s.be.Flush() == nil
}

func cancelKey(pid uint32, secret []byte) uint64 {
	if len(secret) != 4 {
		return 0
	}
	return uint64(pid)<<32 | uint64(binary.BigEndian.Uint32(secret))
}

// reportedParameters are the settings Postgres reports with ParameterStatus.
var reportedParameters = []string{
	"application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
	"in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser", "scram_iterations",
	"server_encoding", "server_version", "standard_conforming_strings", "TimeZone",
}

// reportParameters sends the client every reported parameter whose value on
// b differs from what the client was told.
func (s *session) reportParameters(b *backend) {
	for _, name := range reportedParameters {
		v := b.pg.ParameterStatus(name)
		if old, ok := s.reported[name]; (ok || v != "") && old != v {
			s.reported[name] = v
			s.be.Send(&pgproto3.ParameterStatus{Name: name, Value: v})
		}
	}
}

// startupSettings turns startup parameters into settings statements, as
// Postgres applies them: first the switches of the "options" parameter
// (-c name=value, --name=value), then the other parameters, which win.
// Values are taken as Postgres takes them from a startup packet: as the
// setting's text, so search_path=a,b is two schemas.
func startupSettings(params map[string]string) (map[string]string, error) {
	out := map[string]string{}
	add := func(name, value string) {
		name = strings.ToLower(name)
		out[name] = "SELECT pg_catalog.set_config(" + quoteLiteral(name) + ", " + quoteLiteral(value) + ", false)"
	}
	if opts, ok := params["options"]; ok {
		args := splitOptions(opts)
		for i := 0; i < len(args); i++ {
			a := args[i]
			switch {
			case a == "-c" && i+1 < len(args):
				i++
				a = args[i]
			case strings.HasPrefix(a, "-c"):
				a = a[2:]
			case strings.HasPrefix(a, "--"):
				a = a[2:]
			default:
				return nil, fmt.Errorf("startup option %q is not supported by shardgate; use -c name=value", a)
			}
			n, v, ok := strings.Cut(a, "=")
			if !ok {
				return nil, fmt.Errorf("startup option %q lacks a value", a)
			}
			add(strings.ReplaceAll(n, "-", "_"), v)
		}
	}
	for name, value := range params {
		switch strings.ToLower(name) {
		case "user", "database", "options":
		case "replication":
			if v := strings.ToLower(value); v != "false" && v != "off" && v != "0" && v != "no" {
				return nil, errors.New("replication connections are not supported by shardgate")
			}
		default:
			add(name, value)
		}
	}
	return out, nil
}

// splitOptions splits the startup "options" parameter as Postgres does: at
// whitespace, where a backslash makes the next character (a space, a
// backslash) part of the word.
func splitOptions(s string) []string {
	var (
		out  []string
		word strings.Builder
		in   bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			word.WriteByte(s[i])
			in = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			if in {
				out = append(out, word.String())
				word.Reset()
				in = false
			}
		default:
			word.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, word.String())
	}
	return out
}

// effective returns the settings a backend must have for this session:
// startup settings, overridden by SET, overridden by a transaction's.
// The result must not be changed: it may be the session's own map.
func (s *session) effective(inTxn map[string]string) map[string]string {
	if inTxn == nil {
		inTxn = s.settings
	}
	if len(inTxn) == 0 {
		return s.startup
	}
	out := maps.Clone(s.startup)
	maps.Copy(out, inTxn)
	return out
}

// backendFor returns a backend of shard with this session's settings (as
// txnSettings has them, if a transaction changed them): the session's own
// under session pooling, else one borrowed from the pool. Give it back with
// giveBack.
func (s *session) backendFor(ctx context.Context, shard string, txnSettings map[string]string) (*backend, error) {
	b := s.pinned[shard]
	if b == nil {
		sh, ok := s.srv.topo().Shards[shard]
		if !ok {
			return nil, fmt.Errorf("shard %s is not in the topology", shard)
		}
		var err error
		if b, err = s.srv.pools.acquireAs(ctx, sh, s.backendRole); err != nil {
			return nil, err
		}
		if s.ownsBackends() {
			s.pinned[shard] = b
		}
	}
	want := s.effective(txnSettings)
	if err := b.syncSettings(ctx, want); err != nil {
		s.giveBack(b)
		return nil, err
	}
	if s.noticeFn == nil {
		// Bound once: a method value allocates.
		s.noticeFn, s.notifyFn = s.forwardNotice, s.forwardNotification
	}
	b.notice, b.notify = s.noticeFn, s.notifyFn
	b.scope = want["search_path"]
	return b, nil
}

// onAnyShard runs try on a shard of ks for work that any of them can do:
// one the session's transaction or session pooling already holds, else the
// first that is up. When a shard cannot be reached, or its connection turns
// out dead before it answered, it tries the next: nothing ran there, so
// trying elsewhere is safe. try must not change data.
func (s *session) onAnyShard(ks *topology.Keyspace, try func(shard string) error) error {
	return tryShards(s.anyShards(ks), try)
}

// anyShards lists the shards of ks to try, in order, for work that any of
// them can do (see onAnyShard).
func (s *session) anyShards(ks *topology.Keyspace) []string {
	if t := s.txn; t != nil && len(t.order) > 0 {
		return t.order[:1]
	}
	for _, shard := range ks.Shards() {
		if s.pinned[shard] != nil {
			return []string{shard}
		}
	}
	return s.srv.pools.Order(ks.Shards())
}

// tryShards runs try on each shard in turn until one runs it.
func tryShards(shards []string, try func(shard string) error) error {
	var err error
	for _, shard := range shards {
		if err = try(shard); !nothingRan(err) {
			return err
		}
	}
	return err
}

// nothingRan reports whether err says that a request never reached a
// shard that could run it.
func nothingRan(err error) bool {
	var (
		unreach *ShardUnreachableError
		lost    *ShardConnectionLostError
	)
	return errors.As(err, &unreach) || errors.As(err, &lost) && !lost.Answered
}

// forwardNotice sends a shard's notice (NOTICE, WARNING, ...) to the client.
func (s *session) forwardNotice(m *pgproto3.NoticeResponse) {
	s.be.Send(m)
}

// giveBack returns a borrowed backend unless the session holds it. A held
// backend whose connection broke is let go, so the session gets a new one.
func (s *session) giveBack(b *backend) {
	if s.pinned[b.shard] == b && !b.pg.IsClosed() {
		return
	}
	if s.pinned[b.shard] == b {
		delete(s.pinned, b.shard)
	}
	b.release()
}

// close ends what the session holds on backends: an open transaction rolls
// back, pinned backends return to their pools.
func (s *session) close() {
	// What the session held goes back to the operating system if it was
	// a lot.
	defer memory.soon()
	// A client that leaves in the middle of a transaction leaves its own
	// connections (session pooling) to end with it, as its backend would
	// on Postgres, and the next session gets a new one.
	abandoned := s.txn != nil && s.ownsBackends()
	if s.txn != nil {
		_ = s.rollback(context.Background(), s.txn)
		s.txn = nil
	}
	s.paused = nil
	s.endActivity()
	for shard, b := range s.pinned {
		// What the session left on its own connection (temporary tables,
		// cursors, prepared statements, advisory locks, settings) must not
		// reach the next one, as pgbouncer's server_reset_query does.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if abandoned {
			b.pg.Close(ctx)
		} else if err := b.run(ctx, "DISCARD ALL"); err != nil {
			b.pg.Close(ctx)
		} else {
			b.state.prepared = nil
			b.state.forget()
		}
		cancel()
		b.release()
		delete(s.pinned, shard)
	}
	// Counted as pinned until its backends are clear, so the cap and the
	// gauge never see a pinned connection as free.
	s.unpinAll()
}

// fatal sends a FATAL error and ends the session.
func (s *session) fatal(code, msg string) bool {
	s.log.Info("refused connection", zap.String("code", code), zap.String("reason", msg))
	s.srv.metrics.clientError(code)
	s.be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg})
	_ = s.be.Flush()
	return false
}

func (s *session) fatalErr(err error) bool {
	e := errorResponse(err, "", 0, s.log)
	s.log.Info("refused connection", zap.String("code", e.Code), zap.String("reason", e.Message))
	s.srv.metrics.clientError(e.Code)
	e.Severity, e.SeverityUnlocalized = "FATAL", "FATAL"
	s.be.Send(e)
	_ = s.be.Flush()
	return false
}

// serve reads and answers client messages until the client leaves or the
// server shuts down.
func (s *session) serve(ctx context.Context) {
	defer s.stopPaused()
	for {
		s.srv.markIdle(s, true, s.txn != nil && s.txn.explicit)
		stopWatch := func() {}
		if !s.be.inputWaiting() && s.paused == nil {
			// Only a client that waits for nothing more of its own is
			// idle: it may hear from its backend meanwhile.
			s.be.trimOutput()
			stopWatch = s.watchNotifications()
		}
		var (
			msg pgproto3.FrontendMessage
			err error
		)
		if !s.terminated.Load() {
			// Once it is set, a pg_terminate_backend's read deadline ends
			// the read; one that came before the handshake cleared the
			// deadline is seen here.
			msg, err = s.be.Receive()
		}
		if s.terminated.Load() {
			msg, err = nil, errTerminated
		}
		stopWatch()
		s.srv.markIdle(s, false, false)
		if isInvalidFormat(err) {
			s.invalidMessage(ctx, msg)
			if err := s.be.Flush(); err != nil {
				return
			}
			continue
		}
		if err != nil {
			s.readFailed(err)
			return
		}
		if s.held != nil {
			switch msg.(type) {
			case *pgproto3.Sync, *pgproto3.Flush:
			default:
				// More follows the Execute before its Sync.
				s.runHeld(ctx, false)
			}
		}
		if s.paused != nil && !s.continuesPaused(msg) {
			s.settle()
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			if s.console {
				s.consoleQuery(ctx, m.String)
				break
			}
			s.simpleQuery(ctx, m.String)
		case *pgproto3.Terminate:
			return
		case *pgproto3.Sync:
			s.runHeld(ctx, true)
			s.readyForQuery()
		case *pgproto3.Flush:
			s.runHeld(ctx, false)
		case *pgproto3.Parse, *pgproto3.Bind, *pgproto3.Describe, *pgproto3.Execute, *pgproto3.Close:
			s.extended(ctx, msg)
			if s.be.buffered() < clientBufferSize && !s.ending {
				// Postgres too answers these at the next Sync or Flush,
				// or once its output buffer is full.
				continue
			}
		case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail:
			// Stray COPY data after a refused COPY: Postgres ignores it too.
		case *pgproto3.FunctionCall:
			s.functionCall(ctx, m)
		default:
			s.fatal(codeProtocolViolation, fmt.Sprintf("invalid frontend message type %d", s.be.lastType))
			return
		}
		if err := s.be.Flush(); err != nil || s.ending {
			return
		}
		s.pending = 0
		if s.srv.draining() && s.txn == nil {
			s.be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: codeAdminShutdown,
				Message: "terminating connection due to administrator command"})
			_ = s.be.Flush()
			return
		}
	}
}

// errTerminated ends the read of a session that pg_terminate_backend ended.
var errTerminated = errors.New("terminated by pg_terminate_backend")

// clientBufferSize is Postgres's output buffer: answers of the extended
// protocol wait for a Sync or Flush until this much is waiting.
const clientBufferSize = 8192

// readFailed answers a client message that could not be read as Postgres
// does: FATAL 08P01 for bytes that are no valid message, nothing for a
// connection that ended.
func (s *session) readFailed(err error) {
	if s.terminated.Load() {
		s.fatal(codeAdminShutdown, "terminating connection due to administrator command")
		return
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !s.srv.draining() {
		s.log.Debug("client read failed", zap.Error(err))
	}
	var unknown *unknownMessageError
	switch {
	case errors.As(err, &unknown):
		s.fatal(codeProtocolViolation, unknown.Error())
	case malformed(err):
		s.fatal(codeProtocolViolation, "invalid frontend message: "+err.Error())
	}
}

// invalidMessage answers a message with bytes left after its content:
// ERROR 08P01, and in the extended protocol the messages up to the next
// Sync are dropped, as Postgres does.
func (s *session) invalidMessage(ctx context.Context, msg pgproto3.FrontendMessage) {
	if s.paused != nil {
		s.settle()
	}
	switch msg.(type) {
	case *pgproto3.Parse, *pgproto3.Bind, *pgproto3.Describe, *pgproto3.Execute, *pgproto3.Close, *pgproto3.Flush:
		if s.held != nil {
			s.runHeld(ctx, false)
		}
		if !s.ignoreTillSync {
			s.fail(ctx, &planner.Error{Code: codeProtocolViolation, Message: "invalid message format"}, "", 0)
			s.ignoreTillSync = true
			if s.txn == nil {
				clear(s.portals)
			}
		}
	default:
		s.sendError(&planner.Error{Code: codeProtocolViolation, Message: "invalid message format"}, "", 0)
		s.readyForQuery()
	}
}

// malformed reports whether a failed read of a client message found bytes
// that are no valid message, rather than a connection that ended.
func malformed(err error) bool {
	var ne net.Error
	return !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) && !errors.As(err, &ne)
}

// statementContext returns a context for one statement, below ctx, that a
// cancel request can end, and done, to call when the statement ends.
// Statements share one context until a cancel ends it: making one per
// statement would cost each an allocation and a registration with ctx.
func (s *session) statementContext(ctx context.Context) (context.Context, func()) {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if s.stmtCtx == nil || s.stmtParent != ctx || s.stmtCtx.Err() != nil {
		if s.stmtCancel != nil {
			s.stmtCancel()
		}
		s.stmtCtx, s.stmtCancel = context.WithCancel(ctx)
		s.stmtParent = ctx
	}
	s.stmtRunning = true
	if s.stmtDone == nil {
		s.stmtDone = s.statementDone // bound once: a method value allocates
	}
	return s.stmtCtx, s.stmtDone
}

// statementDone ends what statementContext began.
func (s *session) statementDone() {
	s.stmtMu.Lock()
	s.stmtRunning = false
	s.stmtMu.Unlock()
}

// cancelStatement cancels the running statement, if any: its backends get
// a cancel request and answer 57014, as Postgres would.
func (s *session) cancelStatement() {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	switch {
	case s.stmtRunning:
		s.stmtCancel()
	case s.executeQueued:
		// The Execute waits for its Sync or Flush here, where Postgres
		// would be running it: it is cancelled when it runs.
		s.cancelQueued = true
	}
}

// simpleQuery answers a Query message: plan every statement, run them in
// order, stop at the first error, end with ReadyForQuery. Several statements
// in one message form one implicit transaction, as in Postgres.
func (s *session) simpleQuery(ctx context.Context, sql string) {
	defer s.readyForQuery()
	defer s.unpinIfClean()
	if err := s.waitResumed(ctx); err != nil {
		s.sendError(err, sql, 0)
		return
	}
	ks := s.routingKeyspace()
	if ks == nil || ks.VSchema() == nil {
		s.sendError(&planner.Error{Code: codeInvalidCatalogName, Message: fmt.Sprintf("database %q does not exist", s.keyspace)}, sql, 0)
		return
	}
	var stmts []*planner.Statement
	err := s.checkStatementSize(sql)
	if err == nil {
		sql, err = s.decodeClient(sql)
	}
	if err == nil {
		stmts, err = s.plan(ctx, s.planVSchema(ctx, ks), sql)
		if err != nil && planner.SingleStatement(sql) {
			err = s.postgresVerdict(ctx, ks, sql, nil, err)
		}
	}
	if err != nil {
		if s.txn != nil && s.txn.explicit {
			s.txn.failed = true
		}
		s.sendError(err, sql, 0)
		return
	}
	if len(stmts) == 0 {
		if err := s.checkOwnBackends(ctx); err != nil {
			s.sendError(err, sql, 0)
			return
		}
		s.be.Send(&pgproto3.EmptyQueryResponse{})
		return
	}
	ctx, done := s.statementContext(ctx)
	defer done()
	if ks, err = s.passFences(ctx, ks, s.txn != nil || len(stmts) > 1, nil, stmts...); err != nil {
		s.sendError(err, sql, 0)
		return
	}
	if len(stmts) == 1 {
		ks, s.shadow = s.steerRead(ks, stmts[0], nil)
		defer func() { s.shadow = nil }() // unused when the statement ran elsewhere
	}
	if shard, ok := oneShard(stmts, ks); ok && len(stmts) > 1 && s.txn == nil && len(s.pinned) == 0 && !discards(stmts) && !leavesState(stmts) {
		// Every statement runs on the same shard: send the string as the
		// client wrote it, so the shard gives it Postgres's implicit
		// transaction itself, in one round trip.
		if shard == "" {
			start := time.Now()
			s.runAnywhere(ctx, ks, sql)
			for _, st := range stmts {
				s.observe(st, KindSingleShard, start)
			}
			return
		}
		start := time.Now()
		s.runOnShard(ctx, shard, sql, readOnly(stmts))
		for _, st := range stmts {
			s.observe(st, KindSingleShard, start)
		}
		return
	}
	if len(stmts) > 1 && s.txn == nil {
		s.txn = newTxn(false, "BEGIN", s.settings)
	}
	offset := 0
	for i, st := range stmts {
		offset = strings.Index(sql[offset:], st.SQL) + offset
		if err := s.execute(ctx, ks, st); err != nil {
			s.fail(ctx, err, sql, offset)
			return
		}
		if s.txn == nil && i < len(stmts)-1 {
			// A COMMIT or ROLLBACK ended the transaction; the rest of the
			// string runs in a new implicit one.
			s.txn = newTxn(false, "BEGIN", s.settings)
		}
	}
	if s.txn != nil && !s.txn.explicit {
		t := s.txn
		s.txn = nil
		if err := s.commit(ctx, t); err != nil {
			s.sendError(err, sql, 0)
		} else {
			s.settings = t.settings
		}
	}
}

// fail reports err and applies Postgres's rule for errors: an explicit
// transaction turns failed until ROLLBACK, an implicit one rolls back.
func (s *session) fail(ctx context.Context, err error, sql string, offset int) {
	s.sendError(err, sql, offset)
	if s.txn == nil {
		return
	}
	if s.txn.explicit {
		s.txn.failed = true
		return
	}
	t := s.txn
	s.txn = nil
	_ = s.rollback(context.Background(), t)
}

// execute runs one planned statement and sends its CommandComplete.
func (s *session) execute(ctx context.Context, ks *topology.Keyspace, st *planner.Statement) error {
	defer s.observe(st, statementKind(st, ks, nil), time.Now())
	t := s.txn
	if t != nil && t.failed && (st.Control == nil || st.Control.Kind == planner.Begin || st.Control.Kind == planner.Savepoint || st.Control.Kind == planner.Release) {
		return &planner.Error{Code: "25P02", Message: "current transaction is aborted, commands ignored until end of transaction block"}
	}
	if s.deallocated(st) {
		return nil
	}
	if ok, err := s.signalled(st, nil); ok {
		return err
	}
	switch {
	case st.Control != nil:
		return s.control(ctx, st)
	case st.Setting != nil:
		return s.set(ctx, ks, st)
	case st.Copy != nil && st.Copy.From:
		return s.copyFrom(ctx, ks, st)
	case st.Copy != nil:
		return s.copyTo(ctx, ks, st)
	}
	if st.NoTransaction && t != nil {
		return &planner.Error{Code: "25001", Message: fmt.Sprintf("%s cannot run inside a transaction block", firstWords(st.SQL))}
	}
	if t == nil && !st.ReadOnly && !st.NoTransaction && len(engine.Shards(st.Root, ks, nil)) > 1 {
		// One statement that writes on several shards is all or nothing,
		// as on one Postgres: give it a transaction of its own.
		t = newTxn(false, "BEGIN", s.settings)
		s.txn = t
		defer func() {
			if s.txn == t {
				s.txn = nil
			}
		}()
		tag, err := s.stream(ctx, ks, st)
		if err != nil {
			_ = s.rollback(context.Background(), t)
			return err
		}
		if err := s.commit(ctx, t); err != nil {
			return err
		}
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
		return nil
	}
	tag, err := s.stream(ctx, ks, st)
	if err != nil {
		return err
	}
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	return nil
}

// stream runs a planned statement's primitives through the session.
func (s *session) stream(ctx context.Context, ks *topology.Keyspace, st *planner.Statement) (engine.Tag, error) {
	x := &sessionExecutor{s: s, ks: ks, st: st, policy: ks.VSchema().MultiShardWrites, shadow: s.shadow}
	s.shadow = nil
	tag, err := st.Root.Stream(ctx, x, nil, s.emitter())
	s.countRefusal(err)
	if err == nil {
		s.noteSequences(st)
	}
	if pe := (*planner.Error)(nil); errors.As(err, &pe) && pe.Code == codeFeatureNotSupp {
		// Refused across shards: Postgres's own error comes first, as
		// it does at Parse in the extended protocol.
		err = s.postgresVerdict(ctx, ks, st.SQL, nil, err)
	}
	return tag, err
}

// parseTurn waits for a large statement's turn at parsing (see parseGate)
// and returns the function that ends it.
func (s *session) parseTurn(ctx context.Context, n int) (func(), error) {
	leave, err := s.srv.parse.enter(ctx, n)
	if err != nil || n < largeStatement {
		return leave, err
	}
	return func() {
		leave()
		memory.soon()
	}, nil
}

// plan returns the plan of sql for vs from the plan cache, or plans it,
// taking its turn at parsing; a refusal is counted.
func (s *session) plan(ctx context.Context, vs *vschema.Keyspace, sql string) ([]*planner.Statement, error) {
	stmts, ok := s.srv.plans.Lookup(vs, sql)
	if !ok {
		leave, err := s.parseTurn(ctx, len(sql))
		if err != nil {
			return nil, err
		}
		stmts, err = s.srv.plans.Plan(vs, sql)
		leave()
		s.countRefusal(err)
		if err != nil {
			return nil, err
		}
	}
	s.noteSchemaChanges(stmts)
	return stmts, nil
}

// checkStatementSize refuses a statement text longer than the server's
// max_statement_size, before parsing it costs several times its size.
func (s *session) checkStatementSize(sql string) error {
	if limit := s.srv.maxStatementSize(); limit > 0 && len(sql) > limit {
		return &planner.Error{Code: "54000",
			Message: fmt.Sprintf("statement text of %d bytes is longer than max_statement_size (%d bytes)", len(sql), limit),
			Hint:    "Send bulk data with COPY, or raise max_statement_size."}
	}
	return nil
}

// observe counts a statement of a kind that started at start.
func (s *session) observe(st *planner.Statement, kind StatementKind, start time.Time) {
	d := time.Since(start)
	s.srv.metrics.statement(kind, d)
	if kind != KindGateway && kind != KindRefused {
		s.srv.latency.observe(d)
	}
}

// countRefusal counts a statement the planner or the engine refused as
// unsupported.
func (s *session) countRefusal(err error) {
	if err == nil {
		return // before errors.As, whose target would escape on every statement
	}
	var plErr *planner.Error
	if errors.As(err, &plErr) && plErr.Code == codeFeatureNotSupp {
		s.srv.metrics.statement(KindRefused, 0)
	}
}

// statementKind says where st runs with these parameters.
func statementKind(st *planner.Statement, ks *topology.Keyspace, args engine.Params) StatementKind {
	switch {
	case st.Control != nil, st.Setting != nil:
		return KindGateway
	case st.Copy != nil:
		if len(st.Copy.Target.Resolve(ks, nil)) > 1 {
			return KindScatter
		}
		return KindSingleShard
	}
	switch r := st.Root.(type) {
	case *engine.Route:
		if r.Target.Single() {
			return KindSingleShard // the common case, without resolving
		}
	case *engine.Broadcast:
		return KindBroadcast
	}
	if len(engine.Shards(st.Root, ks, args)) > 1 {
		return KindScatter
	}
	return KindSingleShard
}

func firstWords(sql string) string {
	w := strings.Fields(sql)
	if len(w) > 3 {
		w = w[:3]
	}
	return strings.ToUpper(strings.Join(w, " "))
}

// oneShard reports whether every statement runs as it is on one shard,
// the same for all (or on any shard), and none is session or transaction
// control. The shard is "" when any shard will do.
func oneShard(stmts []*planner.Statement, ks *topology.Keyspace) (string, bool) {
	shard := ""
	for _, st := range stmts {
		if st.Root == nil {
			return "", false
		}
		on, q, ok := engine.OneQuery(st.Root, ks, nil)
		switch {
		case !ok || q.SQL != st.SQL || (!q.AnyShard && shard != "" && on != shard):
			return "", false
		case !q.AnyShard:
			shard = on
		}
	}
	return shard, true
}

// runAnywhere forwards a whole query string that any shard can answer to
// one that is up.
func (s *session) runAnywhere(ctx context.Context, ks *topology.Keyspace, sql string) {
	err := s.onAnyShard(ks, func(shard string) error {
		b, err := s.backendFor(ctx, shard, nil)
		if err != nil {
			return err
		}
		defer s.giveBack(b)
		return s.relay(ctx, b, sql)
	})
	if err != nil {
		s.sendError(err, sql, 0)
	}
}

// runOnShard forwards a whole query string to one shard and relays every
// result.
func (s *session) runOnShard(ctx context.Context, shard, sql string, readOnly bool) {
	b, err := s.backendFor(ctx, shard, nil)
	if err != nil {
		s.sendError(err, sql, 0)
		return
	}
	defer s.giveBack(b)
	if err := s.relay(ctx, b, sql); err != nil {
		if !readOnly {
			err = outcomeUnknown(err, "the query string's implicit transaction")
		}
		s.sendError(err, sql, 0)
	}
}

// checkOwnBackends sends an empty query (a driver's ping) on to the
// backends the session owns, so that one that is ending — terminated, its
// FATAL maybe not sent yet — ends the session as it would on Postgres.
func (s *session) checkOwnBackends(ctx context.Context) error {
	if !s.ownsBackends() {
		return nil
	}
	for _, b := range s.pinned {
		if err := b.exec(ctx, "", discardRows, discardTag); err != nil {
			return err
		}
	}
	return nil
}

// leavesState reports whether a statement of stmts may leave state on its
// backend that pins the session to it (see pin.go).
func leavesState(stmts []*planner.Statement) bool {
	for _, st := range stmts {
		if st.SessionState != "" || st.Opaque {
			return true
		}
	}
	return false
}

// discards reports whether a statement of stmts throws away backend state
// the gateway keeps track of.
func discards(stmts []*planner.Statement) bool {
	for _, st := range stmts {
		if st.Discards != 0 || st.Deallocate != "" {
			return true
		}
	}
	return false
}

// readOnly reports whether no statement of stmts changes data.
func readOnly(stmts []*planner.Statement) bool {
	for _, st := range stmts {
		if !st.ReadOnly {
			return false
		}
	}
	return true
}

// relay runs a query string on b and sends the client every result.
func (s *session) relay(ctx context.Context, b *backend, sql string) error {
	return b.exec(ctx, sql, s.emitter(), func(tag engine.Tag) error {
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
		return nil
	})
}

// emit writes a result batch to the client, flushing when enough is
// buffered.
// emitter returns s.emit as a function value, made once per session.
func (s *session) emitter() func(*engine.Batch) error {
	if s.emitFn == nil {
		s.emitFn = s.emit
	}
	return s.emitFn
}

func (s *session) emit(b *engine.Batch) error {
	if b.Fields != nil && !s.described {
		fields := make([]pgproto3.FieldDescription, len(b.Fields))
		for i, f := range b.Fields {
			fields[i] = pgproto3.FieldDescription{
				Name: []byte(f.Name), TableOID: f.TableOID, TableAttributeNumber: f.TableAttributeNumber,
				DataTypeOID: f.DataTypeOID, DataTypeSize: f.DataTypeSize, TypeModifier: f.TypeModifier, Format: f.Format,
			}
		}
		s.be.Send(&pgproto3.RowDescription{Fields: fields})
	}
	for _, row := range b.Rows {
		// One DataRow serves every row: Send encodes it at once, and a
		// new one each would escape to the heap.
		s.dataRow.Values = row
		s.be.Send(&s.dataRow)
		for _, v := range row {
			s.pending += len(v) + 4
		}
	}
	s.dataRow.Values = nil
	if s.pending >= flushBytes {
		s.pending = 0
		return s.flushClient()
	}
	return nil
}

// flushClient writes what is buffered for the client. A write that fails
// (the client went away, or took nothing for the write timeout) may have
// left half a message on the wire: the session ends.
func (s *session) flushClient() error {
	err := s.be.Flush()
	if err != nil {
		s.ending = true
	}
	return err
}

func (s *session) sendError(err error, sql string, offset int) {
	if s.terminated.Load() {
		// Whatever failed, the statement was cancelled for its end.
		err = &planner.Error{Code: codeAdminShutdown, Message: "terminating connection due to administrator command"}
	}
	e := errorResponse(err, sql, offset, s.log)
	if s.terminated.Load() {
		e.Severity = "FATAL"
	}
	lost, unknown := (*ShardConnectionLostError)(nil), (*OutcomeUnknownError)(nil)
	if errors.As(err, &lost) && !errors.As(err, &unknown) && (s.ownsBackends() || s.statePinned) {
		// The session's own connection is gone, and what it held there
		// with it (under transaction pooling: the state it was pinned
		// for, which must not vanish silently): the session ends, with
		// the backend's last word if it gave one (57P01 when terminated),
		// as a direct client's would.
		e.Severity = "FATAL"
		if pgErr := (*pgconn.PgError)(nil); errors.As(lost.Err, &pgErr) {
			e.Code, e.Message = pgErr.Code, pgErr.Message
		}
	}
	e.SeverityUnlocalized = e.Severity
	if e.Severity == "FATAL" {
		s.log.Warn("ending the session", zap.String("code", e.Code), zap.String("reason", e.Message))
		s.ending = true
	}
	s.srv.metrics.clientError(e.Code)
	s.be.Send(e)
}

// routingKeyspace returns the session's keyspace as its statements see it:
// the snapshot its transaction runs by, else the current one.
func (s *session) routingKeyspace() *topology.Keyspace {
	if t := s.txn; t != nil && t.ks != nil {
		return t.ks
	}
	return s.srv.topo().Keyspace(s.keyspace)
}

// ownsBackends reports whether the session holds its backend connections
// for its life (session pooling).
func (s *session) ownsBackends() bool {
	ks := s.srv.topo().Keyspace(s.keyspace)
	return ks != nil && ks.VSchema() != nil && ks.VSchema().Pooling == vschema.PoolSession
}

// readyForQuery tells the client the session waits for its next query,
// unless a FATAL error ends it.
func (s *session) readyForQuery() {
	s.settleSchemaChanges()
	s.endActivity()
	if !s.ending {
		s.be.Send(&pgproto3.ReadyForQuery{TxStatus: s.txn.status()})
	}
}

func (s *session) notice(code, msg string) {
	s.be.Send(&pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: code, Message: msg})
}

// SchemaVersion implements engine.SchemaVersioned: the schema changes this
// gateway knows of (its own, and other gateways' through etcd) and the
// search_path that resolves the statement's names. Like the describe
// cache, it does not vouch for a session that may see a schema of its own.
func (x *sessionExecutor) SchemaVersion() (string, bool) {
	s := x.s
	if s.changedSchema || s.statePinned || x.ks.VSchema().Pooling == vschema.PoolSession {
		return "", false
	}
	return strconv.FormatUint(s.srv.describes.generation.Load(), 10) + "\x00" + x.ks.SchemaChange +
		"\x00" + s.startup["search_path"] + "\x00" + s.settings["search_path"], true
}

// sessionExecutor runs a statement's primitives on the session's backends:
// inside its transaction when there is one (joining shards as needed), else
// on a backend borrowed for the one query. With a binding it uses the
// extended protocol, passing parameters and result formats through. A
// statement that runs on several shards calls Query from a goroutine per
// shard: mu keeps the session's backends and transaction consistent, while
// each shard's own exchange runs unlocked.
type sessionExecutor struct {
	s      *session
	ks     *topology.Keyspace
	st     *planner.Statement
	policy vschema.MultiShardWrites

	bind    *binding    // nil for the simple protocol
	shape   resultShape // the result columns the client was told of, with bind
	portal  string
	maxRows uint32
	// shadow, when set, is run on its target too once its source
	// answered it whole.
	shadow *shadowRead

	mu        sync.Mutex
	suspended bool // set when maxRows cut the result short
	last      *backend
}

var _ engine.Executor = (*sessionExecutor)(nil)

// Topology implements engine.Executor: the keyspace as the statement found
// it.
func (x *sessionExecutor) Topology() engine.Topology { return x.ks }

// Gather implements engine.Gatherer. Not inside a transaction: the plan
// that refused may have left a shard's part of it failed.
func (x *sessionExecutor) Gather(sql string) (engine.Primitive, error) {
	if x.InTransaction() {
		return nil, errors.New("gathering inside a transaction")
	}
	return planner.Gather(x.s.planVSchema(context.Background(), x.ks), sql)
}

// InTransaction implements engine.Transactional.
func (x *sessionExecutor) InTransaction() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.s.txn != nil
}

// Query implements engine.Executor.
func (x *sessionExecutor) Query(ctx context.Context, shard string, q engine.Query, emit func(*engine.Batch) error) (engine.Tag, error) {
	if !q.AnyShard || !x.st.ReadOnly {
		// A statement that may write (a function with side effects in a
		// SELECT without tables) is never tried a second time elsewhere.
		return x.queryOn(ctx, shard, q, emit)
	}
	var tag engine.Tag
	x.mu.Lock()
	shards := x.s.anyShards(x.ks)
	x.mu.Unlock()
	err := tryShards(shards, func(shard string) error {
		var err error
		tag, err = x.queryOn(ctx, shard, q, emit)
		return err
	})
	return tag, err
}

func (x *sessionExecutor) queryOn(ctx context.Context, shard string, q engine.Query, emit func(*engine.Batch) error) (engine.Tag, error) {
	if q.Spread {
		sql, err := x.s.srv.owned.limit(x.ks, shard, q.SQL)
		if err != nil {
			return "", err
		}
		q.SQL = sql
	}
	b, err := x.acquire(ctx, shard)
	if err != nil {
		return "", err
	}
	var tag engine.Tag
	b.gather = q.Gathered
	notice := b.notice
	if q.Quiet {
		b.notice = nil
	}
	bind := x.bind.subset(q.Params)
	if q.Values != nil {
		bind = x.bind.withValues(q.Values)
	}
	if q.Bound != nil {
		bind = bind.withBound(q.BoundFrom, q.Bound)
	}
	shadow := x.shadowOn(shard, q.SQL, bind)
	if shadow != nil {
		emit = shadow.digesting(emit)
	}
	if bind == nil {
		err = b.exec(ctx, q.SQL, emit, func(t engine.Tag) error {
			tag = t
			return nil
		})
	} else {
		var suspended bool
		portal, maxRows := x.portal, x.maxRows
		if q.Internal {
			maxRows = 0
		}
		if maxRows == 0 {
			// It runs to its end: the unnamed portal, which the shard drops
			// at the next statement, as Postgres drops the client's, so
			// it holds no table the transaction alters next.
			portal = ""
		}
		tag, suspended, err = b.execBound(ctx, q.SQL, bind.forEngine(q), portal, maxRows, x.s.txn == nil, x.shape, emit)
		x.mu.Lock()
		x.suspended = x.suspended || suspended
		x.mu.Unlock()
	}
	b.gather, b.notice = false, notice
	if shadow != nil && err == nil && !x.suspended {
		x.s.srv.shadows.start(x.s.srv.background, shadow, time.Now())
	}
	return tag, x.done(b, err)
}

// shadowOn returns the statement's shadow read if q, bound as bind, is
// what it runs on its source shard.
func (x *sessionExecutor) shadowOn(shard, sql string, bind *binding) *shadowRead {
	r := x.shadow
	if r == nil || shard != r.source {
		return nil
	}
	x.shadow = nil // one run only
	r.sql, r.bind = sql, bind.detached()
	r.settings = maps.Clone(x.s.effective(nil))
	return r
}

// acquire gets the statement a backend of shard: the transaction's, or
// one of its own.
func (x *sessionExecutor) acquire(ctx context.Context, shard string) (*backend, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	s := x.s
	var b *backend
	if t := s.txn; t != nil {
		if t.ks == nil {
			t.ks = x.ks
		}
		if !x.st.ReadOnly {
			if err := s.noteWrite(t, shard, x.policy); err != nil {
				return nil, err
			}
		}
		var err error
		if b, err = s.join(ctx, t, shard); err != nil {
			return nil, err
		}
	} else {
		var err error
		if b, err = s.backendFor(ctx, shard, nil); err != nil {
			return nil, err
		}
	}
	x.last = b
	if x.st.SessionState != "" || x.st.Opaque {
		if err := s.reservePin(); err != nil {
			if s.txn == nil {
				s.giveBack(b)
			}
			return nil, err
		}
	}
	return b, nil
}

// done ends the statement's use of b: it notes what the statement left
// there and gives b back if it was borrowed for the statement alone.
func (x *sessionExecutor) done(b *backend, err error) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	s := x.s
	if s.txn == nil {
		defer s.giveBack(b)
	}
	if x.st.Opaque {
		// DO and CALL may SET anything: resync the connection next time.
		b.state.forget()
	}
	if err != nil && s.txn == nil && !x.st.ReadOnly {
		// The shard committed the statement on its own, or not.
		err = outcomeUnknown(err, firstWords(x.st.SQL))
	}
	if err == nil && x.st.Discards != 0 {
		s.discarded(b, x.st.Discards)
	}
	if err == nil && x.st.SessionState == planner.StateListen {
		s.listens = true
	}
	switch {
	case err != nil:
	case x.st.SessionState != "":
		s.pin(b, x.st.SessionState)
	case x.st.Opaque:
		// DO and CALL run code that may leave anything: pinned until the
		// check after the statement finds nothing left.
		s.pin(b, "DO/CALL")
	}
	return err
}

// deallocated runs DEALLOCATE of a statement the client prepared with the
// protocol (Parse), which lives in the gateway: SQL's DEALLOCATE and Close
// reach the same statements, as on Postgres. It reports whether it did.
func (s *session) deallocated(st *planner.Statement) bool {
	if _, ok := s.statements[st.Deallocate]; !ok || st.Deallocate == "" {
		return false
	}
	delete(s.statements, st.Deallocate)
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("DEALLOCATE")})
	return true
}

// discarded forgets what a DEALLOCATE ALL or DISCARD ALL threw away on b:
// its prepared statements (the client's own among them, as on Postgres,
// where both share one namespace) and, for DISCARD ALL, the session's
// settings and portals.
func (s *session) discarded(b *backend, d planner.Discard) {
	b.state.prepared = nil
	clear(s.statements)
	if d == planner.DiscardAll {
		s.listens = false
		b.state.forget()
		clear(s.settings)
		clear(s.portals)
	}
}

// topologyKeyspace is a compile-time check that topology keyspaces are what
// plans run against.
var _ engine.Topology = (*topology.Keyspace)(nil)

// Setting implements engine.Settings: the session's value of a setting that
// changes how values print. The ones Postgres reports come from what the
// client was told; the others from the statement that set them, "?" when
// that statement does not read as a plain value.
func (x *sessionExecutor) Setting(name string) string {
	s := x.s
	for k, v := range s.reported {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	var inTxn map[string]string
	if s.txn != nil {
		inTxn = s.txn.settings
	}
	sql, ok := s.effective(inTxn)[strings.ToLower(name)]
	if !ok {
		return ""
	}
	if v, ok := settingValue(sql); ok {
		return v
	}
	return "?"
}

// settingValue reads the value a settings statement gives: SET name = v,
// SET name TO v, or SELECT set_config('name', 'v', ...).
func settingValue(sql string) (string, bool) {
	if _, rest, ok := strings.Cut(sql, "set_config("); ok {
		parts := strings.Split(rest, ",")
		if len(parts) < 2 {
			return "", false
		}
		return unquote(strings.TrimSpace(parts[1]))
	}
	lower := strings.ToLower(sql)
	i := strings.Index(lower, "=")
	if j := strings.Index(lower, " to "); i < 0 || j >= 0 && j < i {
		if j < 0 {
			return "", false
		}
		i = j + 3
	}
	return unquote(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(sql[i+1:]), ";")))
}

// unquote reads a literal value: 'text' or a bare word or number.
func unquote(v string) (string, bool) {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return strings.ReplaceAll(v[1:len(v)-1], "''", "'"), true
	}
	if v == "" || strings.ContainsAny(v, "', ()") {
		return "", false
	}
	return v, true
}
