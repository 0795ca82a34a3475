package proxy

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/topology"
)

// Passwords of the console tests' users.
const (
	consoleAdminPW = "admin-pw"
	consoleAppPW   = "app-pw"
)

// consoleGateway is the topology, pools and metrics of console tests: two
// real Postgres shards behind the keyspace app, a real embedded etcd with
// the users "admin" (admin flag) and "app" (granted app, no admin flag).
// Servers over them start with serve.
type consoleGateway struct {
	shards  []*pgtest.Cluster
	snap    *topology.Snapshot
	pools   *Pools
	log     *zap.Logger
	metrics *Metrics
	store   *topology.Store
}

func startConsoleGateway(t *testing.T) *consoleGateway {
	t.Helper()
	ctx := t.Context()
	shards, store := startShards(t, "test")
	for _, u := range []struct {
		name, pw string
		admin    bool
		grants   []string
	}{{"admin", consoleAdminPW, true, nil}, {"app", consoleAppPW, false, []string{"app"}}} {
		v, err := topology.NewVerifier(u.pw)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.AddUser(ctx, topology.User{Name: u.name, Verifier: v, Admin: u.admin, Keyspaces: u.grants}); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	pools := NewPools(DefaultPoolConfig, log)
	t.Cleanup(pools.Close) // after the servers, which close first
	return &consoleGateway{shards: shards, snap: snap, pools: pools, log: log, metrics: NewMetrics(prometheus.NewRegistry()), store: store}
}

// serve starts a Server with cfg over the gateway's topology and pools on
// a loopback port and returns its address. prepare, if set, adjusts the
// server before it serves.
func (g *consoleGateway) serve(t *testing.T, cfg Config, prepare func(*Server)) string {
	t.Helper()
	cfg.Topology = func() *topology.Snapshot { return g.snap }
	cfg.Pools, cfg.Log, cfg.TwoPC, cfg.GatewayID = g.pools, g.log, g.store, "test"
	srv := NewServer(cfg)
	if prepare != nil {
		prepare(srv)
	}
	return serveLoopback(t, srv)
}

func consoleDSN(addr, db, user, password string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=%s sslmode=disable", host, port, db, user, password)
}

func consoleConnect(t *testing.T, addr, db, user, password string) *pgconn.PgConn {
	t.Helper()
	c, err := pgconn.Connect(t.Context(), consoleDSN(addr, db, user, password))
	if err != nil {
		t.Fatalf("connect %s as %s: %v", db, user, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// consoleRows returns a result's column names and its rows by column name.
func consoleRows(r *pgconn.Result) ([]string, []map[string]string) {
	var cols []string
	for _, f := range r.FieldDescriptions {
		cols = append(cols, f.Name)
	}
	rows := make([]map[string]string, 0, len(r.Rows))
	for _, row := range r.Rows {
		m := map[string]string{}
		for i, v := range row {
			if v != nil {
				m[cols[i]] = string(v)
			}
		}
		rows = append(rows, m)
	}
	return cols, rows
}

// consoleShowRows runs a console command on c and returns its rows.
func consoleShowRows(t *testing.T, c *pgconn.PgConn, cmd string) []map[string]string {
	t.Helper()
	_, rows := consoleRows(exec(t, c, cmd)[0])
	return rows
}

// consolePoolRow returns the SHOW POOLS row of keyspace ks and user, or nil.
func consolePoolRow(t *testing.T, admin *pgconn.PgConn, ks, user string) map[string]string {
	t.Helper()
	for _, r := range consoleShowRows(t, admin, "SHOW POOLS") {
		if r["database"] == ks && r["user"] == user {
			return r
		}
	}
	return nil
}

// consoleEventually polls cond until it holds, failing the test after a while.
func consoleEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// consolePsql runs one command with psql as user admin against the console at
// addr and returns the header and the rows of its CSV output.
func consolePsql(t *testing.T, addr, command string) ([]string, []map[string]string) {
	t.Helper()
	psql := "psql"
	if bin, err := pgtest.Binaries(); err == nil {
		if _, err := os.Stat(filepath.Join(bin, "psql")); err == nil {
			psql = filepath.Join(bin, "psql")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := osexec.CommandContext(ctx, psql, "-X", "--csv", "-v", "ON_ERROR_STOP=1",
		"-d", consoleDSN(addr, ConsoleDatabase, "admin", consoleAdminPW), "-c", command)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("psql -c %q: %v\n%s", command, err, stderr.Bytes())
	}
	records, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(records) == 0 {
		t.Fatalf("psql -c %q printed %q: %v", command, out, err)
	}
	var rows []map[string]string
	for _, rec := range records[1:] {
		m := map[string]string{}
		for i, v := range rec {
			m[records[0][i]] = v
		}
		rows = append(rows, m)
	}
	return records[0], rows
}

func consoleAtLeast(t *testing.T, what, value string, least int) {
	t.Helper()
	if n, err := strconv.Atoi(value); err != nil || n < least {
		t.Errorf("%s = %q, want at least %d", what, value, least)
	}
}

// TestConsoleShowThroughPsql answers every SHOW through psql, checks the
// columns and that the rows tell what the gateway does, and SHOW SHARDS
// again with a shard stopped.
func TestConsoleShowThroughPsql(t *testing.T) {
	g := startConsoleGateway(t)
	addr := g.serve(t, Config{Auth: AuthTrust, Metrics: g.metrics,
		Settings: func() [][2]string { return [][2]string{{"pool_max_conns", "20"}, {"log_level", "info"}} }}, nil)
	app := consoleConnect(t, addr, "app", "app", "")
	exec(t, app, "create table users (id bigint primary key, name text)")
	exec(t, app, "begin; insert into users (id, name) values (1, 'a'); commit")
	exec(t, app, "select * from users where id = 1")

	for _, tc := range []struct {
		cmd  string
		cols string
	}{
		{"SHOW POOLS", "database,user,cl_active,cl_waiting,sv_active,sv_idle,maxwait,maxwait_us,pool_mode,paused"},
		{"SHOW CLIENTS", "type,user,database,state,addr,port,connect_time,request_time,wait,wait_us,tls"},
		{"SHOW SERVERS", "shard,user,sv_active,sv_idle,sv_total,pool_size,cl_waiting,acquire_count,avg_wait_us,superuser"},
		{"SHOW SHARDS", "shard,state,keyspaces,dsn,password_source,error,superuser_roles"},
		{"SHOW STATS", "total_xact_count,total_query_count,total_received,total_sent,total_query_time,total_wait_time,avg_query_time," +
			"single_shard_count,scatter_count,broadcast_count,gateway_count,refused_count"},
		{"SHOW TOPOLOGY", "keyspace,sharded,pool_mode,logical_shards,placement,map_version,revision"},
		{"SHOW CONFIG", "key,value"},
		{"SHOW VERSION", "version"},
		{"SHOW HELP", "command,description"},
	} {
		t.Run(strings.ToLower(strings.ReplaceAll(tc.cmd, " ", "_")), func(t *testing.T) {
			// Commands are case-insensitive and take a trailing semicolon.
			cols, rows := consolePsql(t, addr, strings.ToLower(tc.cmd)+" ;")
			if got := strings.Join(cols, ","); got != tc.cols {
				t.Fatalf("columns %s, want %s", got, tc.cols)
			}
			switch tc.cmd {
			case "SHOW POOLS":
				if len(rows) != 1 {
					t.Fatalf("rows %v, want the pool of app and user app", rows)
				}
				r := rows[0]
				if r["database"] != "app" || r["user"] != "app" || r["cl_active"] != "1" || r["cl_waiting"] != "0" ||
					r["sv_active"] != "0" || r["pool_mode"] != "transaction" || r["paused"] != "f" || r["maxwait"] != "0" {
					t.Errorf("pool row %v", r)
				}
				consoleAtLeast(t, "sv_idle", r["sv_idle"], 1)
			case "SHOW CLIENTS":
				var self, other map[string]string
				for _, r := range rows {
					switch r["user"] {
					case "admin":
						self = r
					case "app":
						other = r
					}
				}
				if len(rows) != 2 || self == nil || other == nil {
					t.Fatalf("clients %v, want psql's and app's", rows)
				}
				if self["database"] != ConsoleDatabase || self["state"] != "active" || self["type"] != "C" || self["addr"] != "127.0.0.1" ||
					self["request_time"] == "" || !strings.HasSuffix(self["connect_time"], " UTC") {
					t.Errorf("psql's own row %v", self)
				}
				if other["database"] != "app" || other["state"] != "idle" || other["request_time"] == "" || other["wait"] != "0" {
					t.Errorf("the app session's row %v", other)
				}
				consoleAtLeast(t, "port", other["port"], 1)
			case "SHOW SERVERS":
				shards := map[string]bool{}
				for _, r := range rows {
					shards[r["shard"]] = true
					if r["user"] != "postgres" || r["pool_size"] != "20" || r["sv_active"] != "0" || r["superuser"] != "t" {
						t.Errorf("server row %v", r)
					}
					consoleAtLeast(t, "acquire_count", r["acquire_count"], 1)
				}
				if !shards["s0"] || !shards["s1"] {
					t.Errorf("servers %v, want pools of s0 and s1", rows)
				}
			case "SHOW SHARDS":
				if len(rows) != 2 {
					t.Fatalf("shards %v", rows)
				}
				for i, r := range rows {
					if r["shard"] != fmt.Sprint("s", i) || r["state"] != "up" || r["keyspaces"] != "app" || r["error"] != "" ||
						!strings.Contains(r["dsn"], "127.0.0.1") || r["superuser_roles"] != "postgres" {
						t.Errorf("shard row %v", r)
					}
				}
			case "SHOW STATS":
				r := rows[0]
				for _, col := range []string{"total_xact_count", "total_query_count", "total_received", "total_sent",
					"total_query_time", "avg_query_time", "single_shard_count", "gateway_count"} {
					consoleAtLeast(t, col, r[col], 1)
				}
				if r["refused_count"] != "0" {
					t.Errorf("stats %v", r)
				}
			case "SHOW TOPOLOGY":
				if len(rows) != 1 || rows[0]["keyspace"] != "app" || rows[0]["sharded"] != "t" || rows[0]["logical_shards"] != "16" ||
					rows[0]["placement"] != "0-7 s0, 8-15 s1" || rows[0]["revision"] != fmt.Sprint(g.snap.Revision) {
					t.Errorf("topology %v", rows)
				}
			case "SHOW CONFIG":
				if len(rows) != 2 || rows[0]["key"] != "pool_max_conns" || rows[0]["value"] != "20" || rows[1]["key"] != "log_level" {
					t.Errorf("config %v", rows)
				}
			case "SHOW VERSION":
				if len(rows) != 1 || !strings.HasPrefix(rows[0]["version"], "shardgate ") {
					t.Errorf("version %v", rows)
				}
			case "SHOW HELP":
				var cmds []string
				for _, r := range rows {
					cmds = append(cmds, r["command"])
				}
				for _, want := range []string{"SHOW POOLS", "SHOW CLIENTS", "RELOAD", "PAUSE [keyspace]", "RESUME [keyspace]"} {
					if !slices.Contains(cmds, want) {
						t.Errorf("help lacks %s: %v", want, cmds)
					}
				}
			}
		})
	}

	// A stopped shard shows as down, and the console keeps working.
	if err := g.shards[1].Halt(); err != nil {
		t.Fatal(err)
	}
	_, rows := consolePsql(t, addr, "SHOW SHARDS")
	if len(rows) != 2 || rows[0]["state"] != "up" || rows[1]["shard"] != "s1" || rows[1]["state"] != "down" || rows[1]["error"] == "" {
		t.Errorf("shards with s1 stopped: %v", rows)
	}
}

// TestConsoleAccessAndErrors: only admins get in (under trust and with
// SCRAM), errors name their SQLSTATE and leave the session usable, and
// RELOAD calls the hook.
func TestConsoleAccessAndErrors(t *testing.T) {
	g := startConsoleGateway(t)
	var reloads atomic.Int32
	var failReload atomic.Bool
	addr := g.serve(t, Config{Auth: AuthTrust, Reload: func() error {
		reloads.Add(1)
		if failReload.Load() {
			return errors.New("pool_max_conns: not a number")
		}
		return nil
	}}, nil)
	scramAddr := g.serve(t, Config{Auth: AuthSCRAM}, nil)

	// Under trust the admin flag is needed all the same; a user that is
	// not in etcd has none.
	for _, user := range []string{"app", "ghost"} {
		_, err := pgconn.Connect(t.Context(), consoleDSN(addr, ConsoleDatabase, user, ""))
		if code(err) != "42501" || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("console as %s under trust: %v, want 42501", user, err)
		}
	}
	for _, tc := range []struct{ user, pw, code string }{
		{"app", consoleAppPW, "42501"},
		{"admin", "wrong", "28P01"},
		{"admin", consoleAdminPW, ""},
	} {
		c, err := pgconn.Connect(t.Context(), consoleDSN(scramAddr, ConsoleDatabase, tc.user, tc.pw))
		if code(err) != tc.code || tc.code == "" && err != nil {
			t.Errorf("console as %s with SCRAM: %v, want %q", tc.user, err, tc.code)
		}
		if c != nil {
			c.Close(context.Background())
		}
	}

	admin := consoleConnect(t, addr, ConsoleDatabase, "admin", "")
	if v := admin.ParameterStatus("server_version"); !strings.HasPrefix(v, "shardgate ") || admin.PID() == 0 {
		t.Errorf("greeting: server_version %q, pid %d", v, admin.PID())
	}
	for _, tc := range []struct{ cmd, code, contains string }{
		{"SHOW NONSENSE", "42601", "SHOW NONSENSE is not an admin console command"},
		{"frobnicate", "42601", `"frobnicate" is not an admin console command`},
		{"SHOW", "42601", "SHOW takes one item"},
		{"show pools please", "42601", "SHOW takes one item"},
		{"RELOAD now", "42601", "RELOAD takes no arguments"},
		{"PAUSE app extra", "42601", "PAUSE takes at most one keyspace"},
		{`PAUSE ""`, "42601", "zero-length delimited identifier"},
		{"select 1", "0A000", "not SQL"},
		{"SHOW DATABASES", "0A000", "SHOW DATABASES is not supported"},
		{"kill app", "0A000", "KILL is not supported"},
		{"PAUSE nosuch", "3D000", `database "nosuch" does not exist`},
		{"RESUME", "55000", "nothing is paused"},
		{"RESUME app", "55000", `keyspace "app" is not paused`},
		{"show version; bogus; show help", "42601", "bogus"},
	} {
		_, err := admin.Exec(t.Context(), tc.cmd).ReadAll()
		if code(err) != tc.code || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("%q: %v, want %s containing %q", tc.cmd, err, tc.code, tc.contains)
		}
		if rows := consoleShowRows(t, admin, "show version"); len(rows) != 1 {
			t.Fatalf("session unusable after %q", tc.cmd)
		}
	}
	// Several commands in one string, comments, and an empty string.
	if rs := exec(t, admin, "-- the pools\nSHOW POOLS;\n show Version -- and the version\n;"); len(rs) != 2 || rs[1].CommandTag.String() != "SHOW" {
		t.Errorf("two commands gave %d results", len(rs))
	}
	exec(t, admin, " ; ")
	if rs := exec(t, admin, `PAUSE "app"; RESUME APP; SHOW POOLS`); len(rs) != 3 || len(rs[2].Rows) != 0 {
		t.Errorf("PAUSE, RESUME and SHOW POOLS without client sessions: %+v", rs)
	}

	// The extended protocol is refused clearly, and the session goes on.
	rr := admin.ExecParams(t.Context(), "SHOW POOLS", nil, nil, nil, nil).Read()
	if code(rr.Err) != "0A000" || !strings.Contains(rr.Err.Error(), "simple query protocol") {
		t.Errorf("extended protocol: %v", rr.Err)
	}
	if _, err := admin.Prepare(t.Context(), "p", "SHOW VERSION", nil); code(err) != "0A000" {
		t.Errorf("Prepare: %v", err)
	}
	consoleShowRows(t, admin, "SHOW VERSION")

	// RELOAD calls the hook; a failing reload is an error; without a hook,
	// RELOAD is not configured and SHOW CONFIG is empty.
	if rs := exec(t, admin, "reload"); rs[0].CommandTag.String() != "RELOAD" || reloads.Load() != 1 {
		t.Errorf("RELOAD: tag %q, %d reloads", rs[0].CommandTag, reloads.Load())
	}
	failReload.Store(true)
	if _, err := admin.Exec(t.Context(), "RELOAD").ReadAll(); code(err) != "F0000" || !strings.Contains(err.Error(), "pool_max_conns: not a number") {
		t.Errorf("failing RELOAD: %v", err)
	}
	other := consoleConnect(t, scramAddr, ConsoleDatabase, "admin", consoleAdminPW)
	if _, err := other.Exec(t.Context(), "RELOAD").ReadAll(); code(err) != "0A000" || !strings.Contains(err.Error(), "reload is not configured") {
		t.Errorf("RELOAD without a hook: %v", err)
	}
	// pgconn's Result has columns only when there are rows: read them
	// from the RowDescription.
	mrr := other.Exec(t.Context(), "SHOW CONFIG")
	var cols []string
	rows := 0
	for mrr.NextResult() {
		for _, f := range mrr.ResultReader().FieldDescriptions() {
			cols = append(cols, f.Name)
		}
		for mrr.ResultReader().NextRow() {
			rows++
		}
	}
	if err := mrr.Close(); err != nil || strings.Join(cols, ",") != "key,value" || rows != 0 {
		t.Errorf("SHOW CONFIG without settings: %v, columns %v, %d rows", err, cols, rows)
	}
}

// TestConsolePauseResume: PAUSE waits for an open transaction to end, holds
// other sessions' statements (shown in cl_waiting) without failing them
// until RESUME, lets a cancel request end a held statement, and gives up
// on a transaction that does not end, pausing nothing.
func TestConsolePauseResume(t *testing.T) {
	g := startConsoleGateway(t)
	addr := g.serve(t, Config{Auth: AuthTrust}, nil)
	ctx := t.Context()
	admin := consoleConnect(t, addr, ConsoleDatabase, "admin", "")
	watcher := consoleConnect(t, addr, ConsoleDatabase, "admin", "")
	tx := consoleConnect(t, addr, "app", "app", "")
	held := consoleConnect(t, addr, "app", "app", "")
	exec(t, tx, "create table users (id bigint primary key, name text)")
	exec(t, tx, "begin")
	exec(t, tx, "insert into users (id, name) values (1, 'a')")

	pauseDone := make(chan error, 1)
	go func() {
		_, err := admin.Exec(ctx, "PAUSE app").ReadAll()
		pauseDone <- err
	}()
	consoleEventually(t, "app is paused", func() bool { return consolePoolRow(t, watcher, "app", "app")["paused"] == "t" })
	select {
	case err := <-pauseDone:
		t.Fatalf("PAUSE returned (%v) while a transaction was open", err)
	default:
	}
	// The transaction goes on: its statements are not held.
	exec(t, tx, "insert into users (id, name) values (2, 'b')")

	type result struct {
		rows [][][]byte
		err  error
	}
	heldDone := make(chan result, 1)
	go func() {
		rs, err := held.Exec(ctx, "select 42").ReadAll()
		var rows [][][]byte
		if err == nil {
			rows = rs[0].Rows
		}
		heldDone <- result{rows, err}
	}()
	consoleEventually(t, "the statement is held", func() bool { return consolePoolRow(t, watcher, "app", "app")["cl_waiting"] == "1" })
	if r := consolePoolRow(t, watcher, "app", "app"); r["cl_active"] != "1" {
		t.Errorf("pool while one session is held: %v", r)
	}
	waiting := 0
	for _, c := range consoleShowRows(t, watcher, "SHOW CLIENTS") {
		if c["state"] == "waiting" {
			waiting++
		}
	}
	if waiting != 1 {
		t.Errorf("SHOW CLIENTS shows %d waiting clients, want 1", waiting)
	}
	select {
	case r := <-heldDone:
		t.Fatalf("a statement ran while its keyspace was paused: %v", r.err)
	case err := <-pauseDone:
		t.Fatalf("PAUSE returned (%v) while a transaction was open", err)
	default:
	}

	// The transaction ends: PAUSE is in effect, and the statement stays held.
	exec(t, tx, "commit")
	if err := <-pauseDone; err != nil {
		t.Fatalf("PAUSE: %v", err)
	}
	select {
	case r := <-heldDone:
		t.Fatalf("a statement ran while its keyspace was paused: %v", r.err)
	default:
	}

	// A cancel request ends a held statement; its session goes on.
	canceled := consoleConnect(t, addr, "app", "app", "")
	cancelDone := make(chan error, 1)
	go func() {
		_, err := canceled.Exec(ctx, "select 3").ReadAll()
		cancelDone <- err
	}()
	consoleEventually(t, "two statements are held", func() bool { return consolePoolRow(t, watcher, "app", "app")["cl_waiting"] == "2" })
	if err := canceled.CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-cancelDone; code(err) != "57014" {
		t.Errorf("a canceled held statement: %v, want 57014", err)
	}
	consoleEventually(t, "one statement is held again", func() bool { return consolePoolRow(t, watcher, "app", "app")["cl_waiting"] == "1" })

	if rs := exec(t, admin, "RESUME app"); rs[0].CommandTag.String() != "RESUME" {
		t.Errorf("RESUME tag %q", rs[0].CommandTag)
	}
	if r := <-heldDone; r.err != nil || len(r.rows) != 1 || string(r.rows[0][0]) != "42" {
		t.Fatalf("the held statement after RESUME: %v %q", r.err, r.rows)
	}
	exec(t, canceled, "select 1")
	if r := consolePoolRow(t, watcher, "app", "app"); r["paused"] != "f" || r["cl_waiting"] != "0" || r["cl_active"] != "3" {
		t.Errorf("pool after RESUME: %v", r)
	}

	// PAUSE of everything, and the errors of pausing twice.
	exec(t, admin, "PAUSE")
	for _, tc := range []struct{ cmd, contains string }{
		{"PAUSE", "everything is paused already"},
		{"PAUSE app", "everything is paused already"},
		{"RESUME app", "everything is paused, not one keyspace"},
	} {
		if _, err := admin.Exec(ctx, tc.cmd).ReadAll(); code(err) != "55000" || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("%s: %v", tc.cmd, err)
		}
	}
	exec(t, admin, "RESUME")
	exec(t, held, "select 1")

	// A transaction that stays open: PAUSE gives up after its bound and
	// pauses nothing.
	short := g.serve(t, Config{Auth: AuthTrust}, func(srv *Server) { srv.gate.timeout = 200 * time.Millisecond })
	open := consoleConnect(t, short, "app", "app", "")
	exec(t, open, "begin")
	shortAdmin := consoleConnect(t, short, ConsoleDatabase, "admin", "")
	_, err := shortAdmin.Exec(ctx, "PAUSE app").ReadAll()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" || !strings.Contains(pe.Message, "PAUSE gave up") || !strings.Contains(pe.Hint, "app@127.0.0.1") {
		t.Fatalf("PAUSE with a transaction that stays open: %v", err)
	}
	other := consoleConnect(t, short, "app", "app", "")
	exec(t, other, "select 1") // not held
	if r := consolePoolRow(t, shortAdmin, "app", "app"); r["paused"] != "f" {
		t.Errorf("pool after PAUSE gave up: %v", r)
	}
	exec(t, open, "rollback")
}

func TestConsoleCommandParsing(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want string
	}{
		{"SHOW POOLS", "SHOW POOLS"},
		{"  show   pools ;  ", "show pools"},
		{"show version; RESUME app;;", "show version|RESUME app"},
		{"-- nothing\n ; ", ""},
		{"pause \"app\" -- why\n", `pause "app"`},
	} {
		var got []string
		for _, words := range consoleCommands(tc.sql) {
			got = append(got, strings.Join(words, " "))
		}
		if strings.Join(got, "|") != tc.want {
			t.Errorf("consoleCommands(%q) = %q, want %q", tc.sql, got, tc.want)
		}
	}
	for word, want := range map[string]string{"App": "app", `"App"`: "App", `"a""b"`: `a"b`} {
		if got := consoleIdent(word); got != want {
			t.Errorf("consoleIdent(%s) = %q, want %q", word, got, want)
		}
	}
	for _, tc := range []struct {
		placement []string
		want      string
	}{
		{[]string{"s0"}, "0 s0"},
		{[]string{"s0", "s0", "s1", "s0"}, "0-1 s0, 2 s1, 3 s0"},
		{nil, ""},
	} {
		if got := placementRuns(tc.placement); got != tc.want {
			t.Errorf("placementRuns(%v) = %q, want %q", tc.placement, got, tc.want)
		}
	}
}
