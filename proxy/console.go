package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// ConsoleDatabase is the database name that reaches the admin console: a
// pgbouncer-style set of SHOW commands, RELOAD, PAUSE and RESUME over the
// simple query protocol, for users with the admin flag.
const ConsoleDatabase = "shardgate"

// consoleCheckTimeout bounds SHOW SHARDS' health check of the shards.
const consoleCheckTimeout = 5 * time.Second

// clientInfo is what SHOW CLIENTS tells about a session beyond the server's
// session map. connected and addr are set before the session is shared;
// requested is written by the session's goroutine and read by the console's.
type clientInfo struct {
	connected time.Time
	addr      net.Addr
	// requested is when the latest query came, in Unix nanoseconds; 0
	// before the first.
	requested atomic.Int64
}

// acceptConsole admits a session of the admin console, whose user has
// authenticated already, and greets it as accept greets a keyspace's
// session. It needs no shard, so the console works with every shard down.
//
// Only users with the admin flag get in, under auth: trust too: trust
// spares a user the password, not the grant, and the console shows every
// session and can hold all traffic. So a user of the console must exist in
// etcd with the flag (shardctl user grant NAME --admin).
func (s *session) acceptConsole(snap *topology.Snapshot) bool {
	if !snap.User(s.user).IsAdmin() {
		s.srv.count(authFailures, "no_grant")
		s.log.Warn("user is not an admin; refused the admin console")
		return s.fatal("42501", fmt.Sprintf("permission denied for database %q: user %q is not an admin of the gateway", ConsoleDatabase, s.user))
	}
	s.console = true
	for _, p := range [][2]string{
		{"server_version", "shardgate " + buildVersion()},
		{"server_encoding", "UTF8"},
		{"client_encoding", "UTF8"},
		{"DateStyle", "ISO, MDY"},
		{"TimeZone", "UTC"}, // of the times the console shows
		{"integer_datetimes", "on"},
		{"standard_conforming_strings", "on"},
		{"is_superuser", "off"},
		{"session_authorization", s.user},
	} {
		s.be.Send(&pgproto3.ParameterStatus{Name: p[0], Value: p[1]})
	}
	// A cancel request ends a PAUSE that waits.
	var key [8]byte
	_, _ = rand.Read(key[:])
	pid := gatewayPID(binary.BigEndian.Uint32(key[:4]))
	s.key = cancelKey(pid, key[4:])
	s.srv.register(s)
	s.log.Info("admin console session opened")
	s.be.Send(&pgproto3.BackendKeyData{ProcessID: pid, SecretKey: key[4:]})
	s.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	return s.be.Flush() == nil
}

// consoleQuery answers a Query message of the admin console: one or more
// commands separated by semicolons, run in order until one fails. Errors
// leave the session as it was.
func (s *session) consoleQuery(ctx context.Context, sql string) {
	defer s.readyForQuery()
	s.requested.Store(time.Now().UnixNano())
	cmds := consoleCommands(sql)
	if len(cmds) == 0 {
		s.be.Send(&pgproto3.EmptyQueryResponse{})
		return
	}
	ctx, done := s.statementContext(ctx)
	defer done()
	for _, cmd := range cmds {
		if err := s.consoleCommand(ctx, cmd); err != nil {
			s.sendError(err, "", 0)
			return
		}
	}
}

// consoleBatch answers extended-protocol messages on a console session.
// The console speaks the simple query protocol only, as pgbouncer's does;
// after a Flush the messages up to the next Sync are dropped, as after any
// error.
func (s *session) consoleBatch(batch []pgproto3.FrontendMessage, final bool) {
	if len(batch) == 0 {
		return
	}
	s.sendError(&planner.Error{Code: codeFeatureNotSupp, Message: "the admin console takes the simple query protocol only",
		Hint: "psql uses it; with a driver, send the command as a simple query (pgx: QueryExecModeSimpleProtocol)."}, "", 0)
	s.ignoreTillSync = !final
}

// consoleCommands splits a query string into commands, each a list of
// words, dropping -- comments and empty commands.
func consoleCommands(sql string) [][]string {
	var b strings.Builder
	for line := range strings.Lines(sql) {
		// Console words never hold "--", so it always starts a comment.
		line, _, _ = strings.Cut(line, "--")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	var cmds [][]string
	for part := range strings.SplitSeq(b.String(), ";") {
		if words := strings.Fields(part); len(words) > 0 {
			cmds = append(cmds, words)
		}
	}
	return cmds
}

// pgbouncerOnly are pgbouncer console commands shardgate does not have.
var pgbouncerOnly = []string{"SUSPEND", "KILL", "KILL_CLIENT", "SHUTDOWN", "DISABLE", "ENABLE", "RECONNECT", "WAIT_CLOSE", "SET"}

// pgbouncerOnlyShow are pgbouncer SHOW items shardgate does not have.
var pgbouncerOnlyShow = []string{"DATABASES", "USERS", "LISTS", "FDS", "SOCKETS", "ACTIVE_SOCKETS", "MEM", "DNS_HOSTS",
	"DNS_ZONES", "TOTALS", "STATS_TOTALS", "STATS_AVERAGES", "STATE", "PEERS", "PEER_POOLS", "PREPARED_STATEMENTS"}

// sqlVerbs start SQL statements, which belong to a keyspace's sessions.
var sqlVerbs = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "WITH", "VALUES", "TABLE", "BEGIN", "START",
	"COMMIT", "END", "ROLLBACK", "ABORT", "RESET", "DISCARD", "PREPARE", "EXECUTE", "DEALLOCATE", "COPY", "CREATE",
	"ALTER", "DROP", "TRUNCATE", "EXPLAIN", "ANALYZE", "VACUUM", "LISTEN", "NOTIFY", "DO", "CALL"}

// consoleHelp lists the console's commands for SHOW HELP.
var consoleHelp = [][2]string{
	{"SHOW POOLS", "client sessions by keyspace and user: active, held by PAUSE, and their backend pools' connections"},
	{"SHOW CLIENTS", "every client session: user, keyspace, state, address, times"},
	{"SHOW SERVERS", "backend connection pools by shard and role: connections in use, idle, waiting sessions"},
	{"SHOW SHARDS", "each shard checked now: up or down, why, and its keyspaces"},
	{"SHOW STATS", "totals since the gateway started: transactions, statements by kind, bytes, times"},
	{"SHOW TOPOLOGY", "keyspaces and the placement of their logical shards"},
	{"SHOW CONFIG", "the gateway's settings"},
	{"SHOW VERSION", "the gateway's version"},
	{"SHOW HELP", "this list"},
	{"RELOAD", "apply changed settings without a restart"},
	{"PAUSE [keyspace]", "wait until the keyspace's (or every) session is between transactions, then hold new statements"},
	{"RESUME [keyspace]", "let held statements run; without a keyspace, end every pause"},
}

// consoleCommand runs one console command.
func (s *session) consoleCommand(ctx context.Context, words []string) error {
	verb := strings.ToUpper(words[0])
	args := words[1:]
	switch verb {
	case "SHOW":
		if len(args) != 1 {
			return consoleSyntaxError("SHOW takes one item, as in SHOW POOLS; SHOW HELP lists them")
		}
		return s.consoleShow(ctx, strings.ToUpper(args[0]))
	case "RELOAD":
		if len(args) != 0 {
			return consoleSyntaxError("RELOAD takes no arguments")
		}
		return s.consoleReload()
	case "PAUSE", "RESUME":
		if len(args) > 1 {
			return consoleSyntaxError(verb + " takes at most one keyspace")
		}
		ks := ""
		if len(args) == 1 {
			// An empty name must not turn into "every keyspace".
			if ks = consoleIdent(args[0]); ks == "" {
				return consoleSyntaxError("zero-length delimited identifier")
			}
		}
		if verb == "PAUSE" {
			return s.consolePause(ctx, ks)
		}
		if err := s.srv.gate.resume(ks); err != nil {
			return err
		}
		s.log.Info("RESUME by an admin", zap.String("scope", pauseScope(ks)))
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("RESUME")})
		return nil
	}
	switch {
	case slices.Contains(pgbouncerOnly, verb):
		return &planner.Error{Code: codeFeatureNotSupp, Message: fmt.Sprintf("%s is not supported by shardgate's admin console", verb),
			Hint: "SHOW HELP lists the commands."}
	case slices.Contains(sqlVerbs, verb):
		return &planner.Error{Code: codeFeatureNotSupp, Message: "the admin console runs console commands, not SQL",
			Hint: "Connect to a keyspace's database for SQL; SHOW HELP lists the console's commands."}
	}
	return consoleSyntaxError(fmt.Sprintf("%q is not an admin console command; SHOW HELP lists them", words[0]))
}

func consoleSyntaxError(msg string) error {
	return &planner.Error{Code: "42601", Message: "syntax error: " + msg}
}

// consoleIdent reads a keyspace name as Postgres reads an identifier: folded
// to lower case unless double-quoted.
func consoleIdent(word string) string {
	if len(word) >= 2 && word[0] == '"' && word[len(word)-1] == '"' {
		return strings.ReplaceAll(word[1:len(word)-1], `""`, `"`)
	}
	return strings.ToLower(word)
}

func (s *session) consoleShow(ctx context.Context, item string) error {
	var r *consoleResult
	switch item {
	case "POOLS":
		r = s.srv.showPools()
	case "CLIENTS":
		r = s.srv.showClients()
	case "SERVERS":
		r = s.srv.showServers()
	case "SHARDS":
		ctx, cancel := context.WithTimeout(ctx, consoleCheckTimeout)
		defer cancel()
		r = s.srv.showShards(ctx)
	case "STATS":
		r = s.srv.showStats()
	case "TOPOLOGY":
		r = s.srv.showTopology()
	case "CONFIG":
		r = s.srv.showConfig()
	case "VERSION":
		r = newConsoleResult(textCol("version"))
		r.add("shardgate " + buildVersion())
	case "HELP":
		r = newConsoleResult(textCol("command"), textCol("description"))
		for _, h := range consoleHelp {
			r.add(h[0], h[1])
		}
	default:
		if slices.Contains(pgbouncerOnlyShow, item) {
			return &planner.Error{Code: codeFeatureNotSupp, Message: fmt.Sprintf("SHOW %s is not supported by shardgate's admin console", item),
				Hint: "SHOW HELP lists what is."}
		}
		return consoleSyntaxError(fmt.Sprintf("SHOW %s is not an admin console command; SHOW HELP lists them", item))
	}
	s.sendResult(r, "SHOW")
	return nil
}

func (s *session) consoleReload() error {
	if s.srv.reload == nil {
		return &planner.Error{Code: codeFeatureNotSupp, Message: "reload is not configured"}
	}
	s.log.Info("RELOAD by an admin")
	if err := s.srv.reload(); err != nil {
		// The hook may have applied part (settings that need a restart
		// are reported after the rest applied): its error says what.
		return &planner.Error{Code: "F0000", Message: "reload: " + err.Error(), Hint: "The gateway's log tells what was applied."}
	}
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("RELOAD")})
	return nil
}

// pauseScope names what PAUSE or RESUME of keyspace ks covers, for the log.
func pauseScope(ks string) string {
	if ks == "" {
		return "every keyspace"
	}
	return "keyspace " + ks
}

func (s *session) consolePause(ctx context.Context, ks string) error {
	if ks != "" && s.srv.topo().Keyspace(ks) == nil {
		return &planner.Error{Code: codeInvalidCatalogName, Message: fmt.Sprintf("database %q does not exist", ks)}
	}
	if err := s.srv.pause(ctx, ks); err != nil {
		return err
	}
	s.log.Info("PAUSE by an admin", zap.String("scope", pauseScope(ks)))
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("PAUSE")})
	return nil
}

// consoleResult is a result of the console, every value in text format as
// pgbouncer sends them.
type consoleResult struct {
	cols []pgproto3.FieldDescription
	rows [][][]byte
}

// Type OIDs of console columns.
const (
	oidBool = 16
	oidInt8 = 20
	oidText = 25
)

func consoleColumn(name string, oid uint32, size int16) pgproto3.FieldDescription {
	return pgproto3.FieldDescription{Name: []byte(name), DataTypeOID: oid, DataTypeSize: size, TypeModifier: -1}
}

func textCol(name string) pgproto3.FieldDescription { return consoleColumn(name, oidText, -1) }
func intCol(name string) pgproto3.FieldDescription  { return consoleColumn(name, oidInt8, 8) }
func boolCol(name string) pgproto3.FieldDescription { return consoleColumn(name, oidBool, 1) }

func newConsoleResult(cols ...pgproto3.FieldDescription) *consoleResult {
	return &consoleResult{cols: cols}
}

// add appends a row: strings, integers, booleans and times in their text
// form, nil (or a zero time) as NULL.
func (r *consoleResult) add(vals ...any) {
	row := make([][]byte, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case string:
			row[i] = []byte(v)
		case int:
			row[i] = strconv.AppendInt(nil, int64(v), 10)
		case int64:
			row[i] = strconv.AppendInt(nil, v, 10)
		case bool:
			row[i] = []byte{'f'}
			if v {
				row[i][0] = 't'
			}
		case time.Time:
			if !v.IsZero() {
				row[i] = []byte(v.UTC().Format("2006-01-02 15:04:05 UTC"))
			}
		case nil:
		default:
			panic(fmt.Sprintf("console value of type %T", v))
		}
	}
	r.rows = append(r.rows, row)
}

func (s *session) sendResult(r *consoleResult, tag string) {
	s.be.Send(&pgproto3.RowDescription{Fields: r.cols})
	for _, row := range r.rows {
		s.be.Send(&pgproto3.DataRow{Values: row})
	}
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
}

// splitDuration splits d into whole seconds and the microseconds beyond,
// as pgbouncer's maxwait and maxwait_us.
func splitDuration(d time.Duration) (int64, int64) {
	return int64(d / time.Second), int64(d%time.Second) / int64(time.Microsecond)
}

// showPools answers SHOW POOLS: a row per keyspace and user with client
// sessions. cl_active counts the sessions not held by PAUSE (idle ones
// too, as pgbouncer counts them), cl_waiting those held, maxwait the
// longest hold. sv_active and sv_idle count the connections of the backend
// pools the sessions use: the keyspace's shards, as the user's backend
// role; keyspaces on the same shards share those pools.
func (srv *Server) showPools() *consoleResult {
	type key struct{ ks, user string }
	type counts struct {
		active, waiting int
		maxwait         time.Duration
	}
	byKey := map[key]*counts{}
	now := time.Now()
	srv.mu.Lock()
	srv.gate.mu.Lock()
	for sess, state := range srv.sessions {
		if state == clientLogin || sess.console {
			continue
		}
		k := key{sess.keyspace, sess.user}
		c := byKey[k]
		if c == nil {
			c = &counts{}
			byKey[k] = c
		}
		if since, held := srv.gate.heldSince(sess); held {
			c.waiting++
			c.maxwait = max(c.maxwait, now.Sub(since))
		} else {
			c.active++
		}
	}
	srv.gate.mu.Unlock()
	srv.mu.Unlock()
	keys := make([]key, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].ks != keys[j].ks {
			return keys[i].ks < keys[j].ks
		}
		return keys[i].user < keys[j].user
	})
	r := newConsoleResult(textCol("database"), textCol("user"), intCol("cl_active"), intCol("cl_waiting"),
		intCol("sv_active"), intCol("sv_idle"), intCol("maxwait"), intCol("maxwait_us"), textCol("pool_mode"), boolCol("paused"))
	snap := srv.topo()
	for _, k := range keys {
		c := byKey[k]
		role := ""
		if u := snap.User(k.user); u != nil {
			role = u.BackendRole
		}
		var svActive, svIdle int
		mode := any(nil)
		if ks := snap.Keyspace(k.ks); ks != nil {
			for _, shard := range ks.Shards() {
				inUse, idle := srv.pools.roleStats(shard, role)
				svActive += inUse
				svIdle += idle
			}
			if vs := ks.VSchema(); vs != nil {
				mode = string(vs.Pooling)
				if vs.Pooling == "" {
					mode = string(vschema.PoolTransaction)
				}
			}
		}
		secs, us := splitDuration(c.maxwait)
		r.add(k.ks, k.user, c.active, c.waiting, svActive, svIdle, secs, us, mode, srv.gate.isPaused(k.ks))
	}
	return r
}

// roleStats returns the connections in use and idle of the pool that
// sessions with backend role ("" for the DSN's own) use for shard; none
// before the first use.
func (p *Pools) roleStats(shard, role string) (inUse, idle int) {
	p.mu.Lock()
	sp := p.pools[poolKey{shard, role, false}]
	p.mu.Unlock()
	if sp == nil {
		return 0, 0
	}
	st := sp.pool.Stat()
	return int(st.AcquiredConns()), int(st.IdleConns())
}

// showClients answers SHOW CLIENTS: a row per client session, the
// console's own included, oldest first. state is login, idle,
// idle_in_transaction, active, or waiting (held by PAUSE, for wait
// seconds and wait_us microseconds).
func (srv *Server) showClients() *consoleResult {
	type client struct {
		sess   *session
		state  string
		wait   time.Duration
		user   any
		db     any
		tlsVer string
	}
	now := time.Now()
	var clients []client
	srv.mu.Lock()
	srv.gate.mu.Lock()
	for sess, state := range srv.sessions {
		c := client{sess: sess, state: string(state)}
		// The fields accept sets are read only once the session is past
		// its login, which the state records under srv.mu.
		if state != clientLogin {
			c.user, c.db = sess.user, sess.keyspace
			if tc, ok := sess.conn.(*tls.Conn); ok {
				c.tlsVer = tls.VersionName(tc.ConnectionState().Version)
			}
		}
		if since, held := srv.gate.heldSince(sess); held {
			c.state, c.wait = "waiting", now.Sub(since)
		}
		clients = append(clients, c)
	}
	srv.gate.mu.Unlock()
	srv.mu.Unlock()
	sort.Slice(clients, func(i, j int) bool { return clients[i].sess.connected.Before(clients[j].sess.connected) })
	r := newConsoleResult(textCol("type"), textCol("user"), textCol("database"), textCol("state"), textCol("addr"), intCol("port"),
		textCol("connect_time"), textCol("request_time"), intCol("wait"), intCol("wait_us"), textCol("tls"))
	for _, c := range clients {
		addr, port := any(c.sess.addr.String()), any(nil)
		if host, p, err := net.SplitHostPort(c.sess.addr.String()); err == nil {
			addr = host
			if n, err := strconv.Atoi(p); err == nil {
				port = n
			}
		}
		var requested time.Time
		if ns := c.sess.requested.Load(); ns != 0 {
			requested = time.Unix(0, ns)
		}
		secs, us := splitDuration(c.wait)
		r.add("C", c.user, c.db, c.state, addr, port, c.sess.connected, requested, secs, us, c.tlsVer)
	}
	return r
}

// showServers answers SHOW SERVERS: a row per backend connection pool
// (shard and role). Pools lend connections without naming them, so unlike
// pgbouncer's the rows count connections: in use (sv_active), idle, open
// (sv_total), the most (pool_size), and the sessions waiting for one.
func (srv *Server) showServers() *consoleResult {
	r := newConsoleResult(textCol("shard"), textCol("user"), intCol("sv_active"), intCol("sv_idle"), intCol("sv_total"),
		intCol("pool_size"), intCol("cl_waiting"), intCol("acquire_count"), intCol("avg_wait_us"), boolCol("superuser"))
	for _, st := range srv.pools.Stats() {
		var avg int64
		if st.Acquires > 0 {
			avg = st.AcquireWait.Microseconds() / st.Acquires
		}
		r.add(st.Shard, st.Role, st.InUse, st.Idle, st.Open, st.Max, st.Waiting, st.Acquires, avg, st.Superuser)
	}
	return r
}

// showShards answers SHOW SHARDS: every shard of the topology, checked
// now (a connection and a ping), with its keyspaces.
func (srv *Server) showShards(ctx context.Context) *consoleResult {
	snap := srv.topo()
	r := newConsoleResult(textCol("shard"), textCol("state"), textCol("keyspaces"), textCol("dsn"), textCol("password_source"),
		textCol("error"), textCol("superuser_roles"))
	for _, st := range srv.pools.Check(ctx, snap) {
		var keyspaces []string
		for name, ks := range snap.Keyspaces {
			if slices.Contains(ks.Shards(), st.Name) {
				keyspaces = append(keyspaces, name)
			}
		}
		sort.Strings(keyspaces)
		state, errText := "up", any(nil)
		if !st.Up {
			state, errText = "down", st.Error
		}
		sh := snap.Shards[st.Name]
		r.add(st.Name, state, strings.Join(keyspaces, ","), sh.RedactedDSN(), sh.PasswordSource(), errText, strings.Join(st.SuperuserRoles, ","))
	}
	return r
}

// showStats answers SHOW STATS: one row of totals since the gateway
// started. Statement counts and times come from the gateway's metrics (all
// zero without them); total_wait_time adds up the waits for a backend
// connection and the holds of PAUSE. Times are in microseconds, as
// pgbouncer's.
func (srv *Server) showStats() *consoleResult {
	t := srv.metrics.totals()
	var wait time.Duration
	for _, st := range srv.pools.Stats() {
		wait += st.AcquireWait
	}
	wait += time.Duration(srv.gate.heldNanos.Load())
	var queries int64
	for _, n := range t.statements {
		queries += n
	}
	var avg int64
	if queries > 0 {
		avg = t.duration.Microseconds() / queries
	}
	cols := []pgproto3.FieldDescription{intCol("total_xact_count"), intCol("total_query_count"), intCol("total_received"),
		intCol("total_sent"), intCol("total_query_time"), intCol("total_wait_time"), intCol("avg_query_time")}
	vals := []any{srv.gate.xacts.Load(), queries, t.received, t.sent, t.duration.Microseconds(), wait.Microseconds(), avg}
	for _, k := range statementKinds {
		cols = append(cols, intCol(string(k)+"_count"))
		vals = append(vals, t.statements[k])
	}
	r := newConsoleResult(cols...)
	r.add(vals...)
	return r
}

// statementKinds are the kinds SHOW STATS counts, in its column order.
var statementKinds = []StatementKind{KindSingleShard, KindScatter, KindBroadcast, KindGateway, KindRefused}

// metricTotals are the totals of the gateway's statement and traffic
// metrics.
type metricTotals struct {
	statements     map[StatementKind]int64
	duration       time.Duration
	received, sent int64
}

// totals reads the metrics' current values; a nil *Metrics reads zeros.
func (m *Metrics) totals() metricTotals {
	t := metricTotals{statements: map[StatementKind]int64{}}
	if m == nil {
		return t
	}
	read := func(c prometheus.Metric) *dto.Metric {
		var out dto.Metric
		// Writing a counter or a histogram of the client library's own
		// cannot fail.
		_ = c.Write(&out)
		return &out
	}
	for _, k := range statementKinds {
		t.statements[k] = int64(read(m.statements.WithLabelValues(string(k))).GetCounter().GetValue())
		h := read(m.duration.WithLabelValues(string(k)).(prometheus.Metric)).GetHistogram()
		t.duration += time.Duration(h.GetSampleSum() * float64(time.Second))
	}
	t.received = int64(read(m.received).GetCounter().GetValue())
	t.sent = int64(read(m.sent).GetCounter().GetValue())
	return t
}

// showTopology answers SHOW TOPOLOGY: a row per keyspace with its logical
// shards' placement as runs ("0-7 s0, 8-15 s1"), at the snapshot's etcd
// revision.
func (srv *Server) showTopology() *consoleResult {
	snap := srv.topo()
	r := newConsoleResult(textCol("keyspace"), boolCol("sharded"), textCol("pool_mode"), intCol("logical_shards"),
		textCol("placement"), intCol("map_version"), intCol("revision"))
	names := make([]string, 0, len(snap.Keyspaces))
	for name := range snap.Keyspaces {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ks := snap.Keyspaces[name]
		sharded, mode := any(nil), any(nil)
		if vs := ks.VSchema(); vs != nil {
			sharded, mode = vs.Sharded, string(vs.Pooling)
			if vs.Pooling == "" {
				mode = string(vschema.PoolTransaction)
			}
		}
		r.add(name, sharded, mode, ks.Map.LogicalCount, placementRuns(ks.Map.Placement), ks.Map.Version, snap.Revision)
	}
	return r
}

// placementRuns writes a placement as runs of logical shards on the same
// physical shard.
func placementRuns(placement []string) string {
	var runs []string
	for i := 0; i < len(placement); {
		j := i
		for j+1 < len(placement) && placement[j+1] == placement[i] {
			j++
		}
		if i == j {
			runs = append(runs, fmt.Sprintf("%d %s", i, placement[i]))
		} else {
			runs = append(runs, fmt.Sprintf("%d-%d %s", i, j, placement[i]))
		}
		i = j + 1
	}
	return strings.Join(runs, ", ")
}

// showConfig answers SHOW CONFIG with the settings Config.Settings lists.
func (srv *Server) showConfig() *consoleResult {
	r := newConsoleResult(textCol("key"), textCol("value"))
	if srv.settings != nil {
		for _, kv := range srv.settings() {
			r.add(kv[0], kv[1])
		}
	}
	return r
}
