// Package proxy is the gateway's front door: it speaks the Postgres wire
// protocol to clients (pgproto3), plans each statement with the planner
// against the current topology snapshot, runs the plan on pooled backend
// connections to the physical shards, and streams results back.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/topology"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("proxy: server closed")

// Config is what a Server needs.
type Config struct {
	// Topology returns the current topology snapshot.
	Topology func() *topology.Snapshot
	Pools    *Pools
	Log      *zap.Logger
	// TwoPC records two-phase commit decisions; without it, transactions
	// that write on several shards fail at COMMIT.
	TwoPC TwoPCLog
	// Schema records schema changes made through this gateway, so that
	// every gateway's describe cache forgets what they made stale; without
	// it, other gateways see them when their descriptions expire.
	Schema SchemaLog
	// Workflows reads the reshard workflows, to name the one a schema
	// change waits for; nil names none.
	Workflows func(context.Context) ([]topology.Workflow, error)
	// Sequences keeps the global sequences of sharded keyspaces; without
	// it, their values are refused.
	Sequences SequenceStore
	// GatewayNumber is this gateway's number among the registered
	// gateways (topology.Registration.Number), which snowflake ids carry;
	// nil: none, and no snowflake ids.
	GatewayNumber func() (n int, ok bool)
	// Standing says whether this gateway is among the gateways a reshard
	// cutover waits for: its etcd lease is surely alive (see
	// topology.Registration.Standing), and its topology has every change
	// made up to when it last registered. A gateway not in standing may
	// have missed a cutover made without it. nil: always in standing.
	Standing func() bool
	// Shadow keeps what this gateway's shadow reads of reshard workflows
	// found; nil keeps it in the gateway alone.
	Shadow ShadowLog
	// GatewayID names this gateway in two-phase commit records.
	GatewayID string
	// Hooks are fault-injection points for crash-recovery tests.
	Hooks Hooks
	// MaxClientConns limits the clients connected at once (0: no limit);
	// one more is refused with 53300, as Postgres refuses past
	// max_connections. MaxClientConnsPerUser does so per user name.
	MaxClientConns        int
	MaxClientConnsPerUser int
	// TLS, if set, is offered to clients that send an SSLRequest; SSLMode
	// says whether they must use it.
	TLS     *tls.Config
	SSLMode SSLMode
	// StartupTimeout drops a connection that has not finished its startup
	// (TLS handshake, startup packet, authentication) in time.
	StartupTimeout time.Duration
	// MaxMessageSize closes the connection of a client whose message
	// claims to be longer, before anything of that size is allocated.
	MaxMessageSize int
	// ClientWriteTimeout ends a session whose client takes nothing of its
	// answer for this long (0: never), so that a client that stops
	// reading cannot hold backend connections.
	ClientWriteTimeout time.Duration
	// MaxStatementSize refuses a query string or Parse longer than this
	// with 54000 (0: no limit): parsing costs memory several times the
	// text's size. COPY data is not statement text.
	MaxStatementSize int
	// Metrics, if set, count refusals and authentication failures.
	Metrics *Metrics
	// Auth is how clients authenticate.
	Auth AuthMode
	// Reload, if set, applies the gateway's changed settings; the admin
	// console's RELOAD calls it.
	Reload func() error
	// Settings, if set, lists the gateway's settings as (name, value)
	// for the admin console's SHOW CONFIG.
	Settings func() [][2]string
}

// AuthMode is a client authentication method.
type AuthMode string

// Authentication methods.
const (
	// AuthSCRAM checks a password against the user's SCRAM-SHA-256
	// verifier in etcd, without the password crossing the wire.
	AuthSCRAM AuthMode = "scram-sha-256"
	// AuthTrust lets anyone in as any user: loopback development only.
	AuthTrust AuthMode = "trust"
)

// Hooks are called at the points of two-phase commit where a crash is
// hardest to recover from; tests use them to kill the gateway there.
type Hooks struct {
	AfterPrepare func() // every participant prepared, no decision recorded
	AfterDecide  func() // commit decided, no participant committed yet
}

func (h Hooks) afterPrepare() {
	if h.AfterPrepare != nil {
		h.AfterPrepare()
	}
}

func (h Hooks) afterDecide() {
	if h.AfterDecide != nil {
		h.AfterDecide()
	}
}

// Server accepts client connections and serves each in its own goroutine.
type Server struct {
	topo      func() *topology.Snapshot
	pools     *Pools
	log       *zap.Logger
	twopc     TwoPCLog
	gatewayID string
	hooks     Hooks
	maxConns  int // maxConns, maxPerUsr, startup, maxMsg: under mu (SetLimits)
	maxPerUsr int
	admitted  int            // sessions past their startup packet
	perUser   map[string]int // admitted sessions by user
	tls       *tls.Config
	sslMode   SSLMode
	startup   time.Duration
	maxMsg    int
	maxStmt   int
	metrics   *Metrics
	auth      AuthMode
	reload    func() error
	settings  func() [][2]string
	gate      *pauseGate // PAUSE and RESUME of the admin console
	fences    *fences    // reshard cutovers' write fences
	parse     *parseGate // large statements take turns at parsing
	plans     *planner.Cache
	describes *describeCache
	catalogs  catalogs // each sharded keyspace's catalog
	sequences *sequenceAllocator
	snowflake *snowflake
	owned     *ownedRows // multi-shard statements for shards that keep copies
	schema    SchemaLog
	workflows func(context.Context) ([]topology.Workflow, error)
	standing  func() bool
	// streams follows the reshard streams of sources whose reads are
	// steered; shadows runs the shadow reads; steered counts the reads
	// of moving logical shards by where they ran.
	streams *streamWatch
	shadows *shadows
	steered *prometheus.CounterVec
	// latency counts statement latencies for LatencyP99.
	latency latencyWindow

	mu        sync.Mutex
	listeners map[net.Listener]bool
	sessions  map[*session]clientState
	keys      map[uint64]*session // by BackendKeyData, for cancel requests
	pids      map[uint32]*session // by the gateway's process ids (see signal.go)
	inflight  sync.Map            // two-phase commit ids being coordinated now
	// pinnedSessions counts the sessions pinned to backends under
	// transaction pooling (see pin.go), pins by keyspace under mu.
	pinnedSessions atomic.Int64
	pins           map[string]int
	// writeTimeout is ClientWriteTimeout, read on every write to a client.
	writeTimeout atomic.Int64
	wg           sync.WaitGroup
	closing      atomic.Bool
	// background is the context of work a session leaves running after
	// its answer (deleting finished two-phase commit records); Close ends
	// it.
	background     context.Context
	stopBackground context.CancelFunc
}

// NewServer returns a Server for cfg.
func NewServer(cfg Config) *Server {
	s := &Server{
		topo: cfg.Topology, pools: cfg.Pools, log: cfg.Log, twopc: cfg.TwoPC, schema: cfg.Schema, workflows: cfg.Workflows, standing: cfg.Standing, sequences: &sequenceAllocator{store: cfg.Sequences}, snowflake: &snowflake{number: cfg.GatewayNumber}, gatewayID: cfg.GatewayID, hooks: cfg.Hooks,
		maxConns: cfg.MaxClientConns, maxPerUsr: cfg.MaxClientConnsPerUser, perUser: map[string]int{},
		tls: cfg.TLS, sslMode: cfg.SSLMode, startup: cfg.StartupTimeout, maxMsg: cfg.MaxMessageSize, maxStmt: cfg.MaxStatementSize, metrics: cfg.Metrics, auth: cfg.Auth,
		reload: cfg.Reload, settings: cfg.Settings, gate: newPauseGate(), fences: newFences(), parse: newParseGate(), plans: planner.NewCache(planCacheSize), describes: newDescribeCache(), owned: newOwnedRows(),
		listeners: map[net.Listener]bool{}, sessions: map[*session]clientState{}, keys: map[uint64]*session{}, pids: map[uint32]*session{}, pins: map[string]int{},
	}
	s.writeTimeout.Store(int64(cfg.ClientWriteTimeout))
	s.background, s.stopBackground = context.WithCancel(context.Background())
	s.streams = newStreamWatch(s.pools, s.log)
	s.shadows = newShadows(s.topo, s.pools, s.streams, s.gatewayID, s.log)
	s.steered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardgate_reshard_reads_total",
		Help: "Reads outside transactions of a reshard workflow's moving logical shards, while it steers them, by where they ran: source or target.",
	}, []string{"workflow", "served_by"})
	if cfg.Shadow != nil {
		go s.shadows.publish(s.background, cfg.Shadow)
	}
	return s
}

// Serve accepts connections on l until Shutdown or Close. It always returns
// a non-nil error; after Shutdown or Close it is ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.startSession(conn)
	}
}

func (s *Server) startSession(conn net.Conn) {
	conn = &clientConn{Conn: conn, m: s.metrics, writeTimeout: &s.writeTimeout}
	ctx, cancel := context.WithCancel(context.Background())
	sess := &session{
		srv:    s,
		conn:   conn,
		log:    s.log.With(zap.String("client", conn.RemoteAddr().String())),
		cancel: cancel,
		// For SHOW CLIENTS: set before other goroutines can see the session.
		clientInfo: clientInfo{connected: time.Now(), addr: conn.RemoteAddr()},
	}
	sess.setConn(conn)
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		conn.Close()
		cancel()
		return
	}
	s.sessions[sess] = clientLogin
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			sess.close()
			conn.Close()
			s.mu.Lock()
			delete(s.sessions, sess)
			delete(s.keys, sess.key)
			if s.pids[keyPID(sess.key)] == sess {
				delete(s.pids, keyPID(sess.key))
			}
			if sess.admitted {
				s.admitted--
				if s.perUser[sess.user]--; s.perUser[sess.user] <= 0 {
					delete(s.perUser, sess.user)
				}
			}
			s.mu.Unlock()
		}()
		defer cancel()
		if sess.handshake(ctx) {
			sess.serve(ctx)
		}
	}()
}

// clientState is what a client session is doing, as Postgres's
// pg_stat_activity.state says it.
type clientState string

const (
	clientLogin             clientState = "login" // before ReadyForQuery
	clientIdle              clientState = "idle"
	clientIdleInTransaction clientState = "idle_in_transaction"
	clientActive            clientState = "active"
)

// markIdle records whether a session waits for its client (inTxn: inside a
// transaction). Shutdown closes idle sessions at once and lets busy ones
// finish their statement.
func (s *Server) markIdle(sess *session, idle, inTxn bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idle && s.closing.Load() {
		// Shutdown began while this session was busy: end it now, before
		// it waits for another statement.
		sess.conn.Close()
	}
	switch {
	case !idle:
		s.sessions[sess] = clientActive
	case inTxn:
		s.sessions[sess] = clientIdleInTransaction
	default:
		s.sessions[sess] = clientIdle
	}
}

func (s *Server) draining() bool { return s.closing.Load() }

// ApplyTopology raises and lifts the write fences of reshard cutovers as
// snap has them. Call it with every snapshot installed.
func (s *Server) ApplyTopology(snap *topology.Snapshot) {
	s.fences.Apply(snap)
	s.streams.apply(s.background, snap)
}

// Applied is what this gateway applied of the topology, for the
// controllers of reshard workflows: publish it whenever AppliedChanged
// gets a value.
func (s *Server) Applied() topology.GatewayApplied { return s.fences.State() }

// LatencyP99 returns the 99th percentile of the latencies of the
// statements that ran on shards since the last call, 0 for none.
func (s *Server) LatencyP99() time.Duration { return s.latency.p99() }

// AppliedChanged gets a value whenever Applied may have changed.
func (s *Server) AppliedChanged() <-chan struct{} { return s.fences.Changed() }

// Shutdown stops accepting connections, closes idle sessions, lets busy
// sessions finish the statement they run (each then ends with a FATAL
// 57P01), and returns when all have ended or ctx is done; then it closes
// what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	memory.stop()
	for l := range s.listeners {
		l.Close()
	}
	for sess, state := range s.sessions {
		if state == clientIdle || state == clientIdleInTransaction {
			sess.conn.Close()
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every session at once.
func (s *Server) Close() {
	s.mu.Lock()
	s.closing.Store(true)
	memory.stop()
	for l := range s.listeners {
		l.Close()
	}
	for sess := range s.sessions {
		sess.cancel()
		sess.conn.Close()
	}
	s.mu.Unlock()
	s.stopBackground()
}

// ActiveSessions returns the number of connected clients.
func (s *Server) ActiveSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// register makes a session findable by its cancel key.
func (s *Server) register(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[sess.key] = sess
	if pid := keyPID(sess.key); pid >= gatewayPIDBase {
		s.pids[pid] = sess
	}
}

// cancel cancels the running statement of the session with the given key,
// if the secret matches. Like Postgres, it says nothing either way.
func (s *Server) cancel(processID uint32, secret []byte) {
	s.mu.Lock()
	sess := s.keys[cancelKey(processID, secret)]
	s.mu.Unlock()
	if sess != nil {
		sess.cancelStatement()
	}
}

// admit counts a session of user that sent its startup packet, unless that
// would pass a client limit; it returns the refusal's message. Connections
// that only asked for TLS or sent a cancel request never count.
func (s *Server) admit(sess *session, user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maxConns > 0 && s.admitted >= s.maxConns {
		return "sorry, too many clients already"
	}
	if s.maxPerUsr > 0 && s.perUser[user] >= s.maxPerUsr {
		return fmt.Sprintf("too many connections for role %q", user)
	}
	s.admitted++
	s.perUser[user]++
	sess.admitted = true
	return ""
}

// count adds one to a metric of the server, if it keeps metrics.
func (s *Server) count(vec func(*Metrics) *prometheus.CounterVec, reason string) {
	if s.metrics != nil {
		vec(s.metrics).WithLabelValues(reason).Inc()
	}
}

// InFlight reports whether this gateway is coordinating the two-phase
// commit gid right now; its resolver finishes only records it is not.
func (s *Server) InFlight(gid string) bool {
	_, ok := s.inflight.Load(gid)
	return ok
}

// planCacheSize is how many statement shapes the plan cache keeps; an
// application has far fewer.
const planCacheSize = 10000

var (
	planCacheDesc = prometheus.NewDesc("shardgate_plan_cache_lookups_total",
		"Statements looked up in the plan cache, by result: hit (planned without parsing) or miss.", []string{"result"}, nil)
	planCacheEntriesDesc = prometheus.NewDesc("shardgate_plan_cache_entries", "Plans the plan cache holds.", nil, nil)
	describeCacheDesc    = prometheus.NewDesc("shardgate_describe_cache_lookups_total",
		"Client Parse messages whose statement description was looked up in the describe cache, by result: hit (no round trip to a shard) or miss.", []string{"result"}, nil)
	clientSessionsDesc = prometheus.NewDesc("shardgate_client_sessions", "Client sessions connected now.", nil, nil)
	pinnedSessionsDesc = prometheus.NewDesc("shardgate_pinned_sessions",
		"Sessions of transaction-pooled keyspaces that hold backend connections for state they left there (temporary tables, cursors, ...).", nil, nil)
	clientStateDesc = prometheus.NewDesc("shardgate_client_connections",
		"Client connections by state: login (authenticating), idle, idle_in_transaction, active (running a statement).",
		[]string{"state"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Server) Describe(ch chan<- *prometheus.Desc) {
	ch <- clientSessionsDesc
	ch <- clientStateDesc
	ch <- pinnedSessionsDesc
	ch <- planCacheDesc
	ch <- planCacheEntriesDesc
	ch <- describeCacheDesc
	ch <- shadowReadsDesc
	s.steered.Describe(ch)
}

// Collect implements prometheus.Collector.
func (s *Server) Collect(ch chan<- prometheus.Metric) {
	counts := map[clientState]int{clientLogin: 0, clientIdle: 0, clientIdleInTransaction: 0, clientActive: 0}
	s.mu.Lock()
	for _, state := range s.sessions {
		counts[state]++
	}
	total := len(s.sessions)
	s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(clientSessionsDesc, prometheus.GaugeValue, float64(total))
	ch <- prometheus.MustNewConstMetric(pinnedSessionsDesc, prometheus.GaugeValue, float64(s.pinnedSessions.Load()))
	hits, misses, entries := s.plans.Stats()
	ch <- prometheus.MustNewConstMetric(planCacheDesc, prometheus.CounterValue, float64(hits), "hit")
	ch <- prometheus.MustNewConstMetric(planCacheDesc, prometheus.CounterValue, float64(misses), "miss")
	ch <- prometheus.MustNewConstMetric(planCacheEntriesDesc, prometheus.GaugeValue, float64(entries))
	ch <- prometheus.MustNewConstMetric(describeCacheDesc, prometheus.CounterValue, float64(s.describes.hits.Load()), "hit")
	ch <- prometheus.MustNewConstMetric(describeCacheDesc, prometheus.CounterValue, float64(s.describes.misses.Load()), "miss")
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(clientStateDesc, prometheus.GaugeValue, float64(n), string(state))
	}
	s.shadows.collect(ch)
	s.steered.Collect(ch)
}

var _ prometheus.Collector = (*Server)(nil)

// clientConn is a client's connection as the gateway uses it: it counts the
// bytes it carries, and a write that the client takes nothing of for the
// server's write timeout fails, which ends the session and frees its
// backends.
type clientConn struct {
	net.Conn
	m            *Metrics
	writeTimeout *atomic.Int64
}

func (c *clientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.m.traffic(n, 0)
	return n, err
}

func (c *clientConn) Write(p []byte) (int, error) {
	if t := time.Duration(c.writeTimeout.Load()); t > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(t))
	}
	n, err := c.Conn.Write(p)
	c.m.traffic(0, n)
	return n, err
}
