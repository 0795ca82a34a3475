package proxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgpassfile"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/topology"
)

// PoolConfig sizes the backend connection pools, one per physical shard.
type PoolConfig struct {
	// MaxConns is the most connections to one shard.
	MaxConns int32
	// MinIdleConns are kept open to each shard to avoid connect latency.
	MinIdleConns int32
	// IdleTimeout closes connections idle longer than this.
	IdleTimeout time.Duration
	// AcquireTimeout bounds the wait for a free connection; past it the
	// statement fails with 53300.
	AcquireTimeout time.Duration
	// ConnectTimeout bounds dialing a shard.
	ConnectTimeout time.Duration
}

// DefaultPoolConfig is what a gateway uses when nothing is configured.
var DefaultPoolConfig = PoolConfig{
	MaxConns:       20,
	MinIdleConns:   0,
	IdleTimeout:    5 * time.Minute,
	AcquireTimeout: 5 * time.Second,
	ConnectTimeout: 5 * time.Second,
}

// Pools holds one connection pool per physical shard, created on first use
// and replaced when a shard's DSN changes in the topology. Safe for
// concurrent use.
type Pools struct {
	cfg PoolConfig // under mu: SetConfig changes it, get reads it
	log *zap.Logger

	mu     sync.Mutex
	pools  map[poolKey]*shardPool
	shards []string // of the last topology Sync saw, sorted

	// states holds each open backend connection's connState.
	states sync.Map // *pgconn.PgConn -> *connState

	health  health
	metrics poolMetrics
	// superuserWarned holds the (shard, role) pairs warned about.
	superuserWarned sync.Map
}

type shardPool struct {
	shard string
	role  string // the role connections log in as
	// recovery marks the small pools that finish two-phase commits.
	recovery bool
	dsn      string
	// passwordFile and passwordEnv are the shard's password references the
	// pool was made with; a change of either makes a new pool.
	passwordFile, passwordEnv string
	pool                      *pgxpool.Pool
	// waiting counts the sessions waiting for a connection now.
	waiting atomic.Int32
	// acquireWait is the shard's series of the acquire-wait histogram
	// (nil for recovery pools, which are not measured).
	acquireWait prometheus.Observer
	// superuser is set once a connection showed that the role is a
	// superuser on the shard.
	superuser atomic.Bool
}

// serves reports whether the pool was made from sh's current settings.
func (sp *shardPool) serves(sh *topology.Shard) bool {
	return sp.dsn == sh.DSN && sp.passwordFile == sh.PasswordFile && sp.passwordEnv == sh.PasswordEnv
}

// NewPools returns an empty set of pools.
func NewPools(cfg PoolConfig, log *zap.Logger) *Pools {
	return &Pools{cfg: cfg, log: log, pools: map[poolKey]*shardPool{}, health: health{down: map[string]shardDown{}}, metrics: newPoolMetrics()}
}

// ErrPoolExhausted is returned (wrapped) when no backend connection became
// free within the acquire timeout.
var ErrPoolExhausted = errors.New("backend connection pool exhausted")

// ShardUnreachableError reports a shard the gateway could not connect to.
type ShardUnreachableError struct {
	Shard string
	Err   error
}

func (e *ShardUnreachableError) Error() string {
	return fmt.Sprintf("shard %s is unreachable: %v", e.Shard, e.Err)
}

func (e *ShardUnreachableError) Unwrap() error { return e.Err }

// ShardConnectionLostError reports a backend connection that broke while
// in use: what the shard did with the last statement is unknown.
type ShardConnectionLostError struct {
	Shard string
	Err   error
	// Answered is set when the shard had begun to answer the last
	// request; a connection that was found dead before that (an idle
	// connection of a shard that went down) most likely ran nothing.
	Answered bool
}

func (e *ShardConnectionLostError) Error() string {
	return fmt.Sprintf("connection to shard %s was lost: %v", e.Shard, e.Err)
}

func (e *ShardConnectionLostError) Unwrap() error { return e.Err }

// poolKey names the pool of shard for backend role ("" is the DSN's own),
// and for recovery or for clients.
type poolKey struct {
	shard, role string
	recovery    bool
}

// recoveryConns is the size of the pools that finish two-phase commits:
// their own, so that clients holding every connection of a shard cannot
// keep recovery from running.
const recoveryConns = 2

// get returns the pool of shard for role, creating it on first use or when
// the shard's DSN or password reference changed. The password is read then.
//
// A role other than the DSN's own logs in as itself, so that nothing a
// client does on the connection (RESET ROLE) can reach more than the role
// may; its password comes from a pgpass file (or the shard trusts it).
func (p *Pools) get(sh *topology.Shard, role string, recovery bool) (*shardPool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := poolKey{sh.Name, role, recovery}
	if sp, ok := p.pools[key]; ok && sp.serves(sh) {
		return sp, nil
	} else if ok {
		delete(p.pools, key)
		go sp.pool.Close() // the shard changed; let borrowed connections finish
	}
	cfg, err := p.poolConfig(sh)
	if err != nil {
		return nil, &ShardUnreachableError{Shard: sh.Name, Err: err}
	}
	own := poolKey{sh.Name, "", recovery}
	if recovery {
		cfg.MaxConns, cfg.MinIdleConns = recoveryConns, 0
	}
	if role == cfg.ConnConfig.User {
		// The DSN's own role by name (the resolver finishes transactions
		// as the role that prepared them): one pool serves both names.
		if sp, ok := p.pools[own]; ok && sp.serves(sh) {
			p.pools[key] = sp
			return sp, nil
		}
		role = ""
	}
	if role != "" {
		cfg.ConnConfig.User = role
		cfg.ConnConfig.Password = passfilePassword(cfg.ConnConfig, role)
	}
	sp := &shardPool{shard: sh.Name, role: cfg.ConnConfig.User, recovery: recovery, dsn: sh.DSN, passwordFile: sh.PasswordFile, passwordEnv: sh.PasswordEnv}
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		p.connected(sp, c.PgConn())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, &ShardUnreachableError{Shard: sh.Name, Err: redactConnectError(err)}
	}
	p.log.Debug("shard pool created", zap.String("shard", sh.Name), zap.String("dsn", sh.RedactedDSN()),
		zap.String("password_source", sh.PasswordSource()))
	sp.pool = pool
	if !recovery {
		sp.acquireWait = p.metrics.acquireWait.WithLabelValues(sh.Name, sp.role)
	}
	if role == "" && key != own {
		if old, ok := p.pools[own]; ok {
			go old.pool.Close()
		}
		p.pools[own] = sp
	}
	p.pools[key] = sp
	// The shard's series exist from its first pool on, so rate() and
	// alerts see them before the first event.
	p.metrics.shardErrors.WithLabelValues(sh.Name)
	p.metrics.connects.WithLabelValues(sh.Name)
	return sp, nil
}

// passfilePassword looks up role's password in the pgpass file the DSN (or
// PGPASSFILE, or ~/.pgpass) names, as libpq would; "" if there is none.
func passfilePassword(cc *pgx.ConnConfig, role string) string {
	path := os.Getenv("PGPASSFILE")
	if v, ok := cc.RuntimeParams["passfile"]; ok {
		path = v
	}
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		path = filepath.Join(home, ".pgpass")
	}
	pf, err := pgpassfile.ReadPassfile(path)
	if err != nil {
		return ""
	}
	return pf.FindPassword(cc.Host, strconv.Itoa(int(cc.Port)), cc.Database, role)
}

// poolConfig turns sh into a pool configuration. The DSN's TLS settings
// (sslmode, sslrootcert, sslcert, ...) and pgx's password rules stay as pgx
// parsed them; a password that PasswordFile or PasswordEnv refers to takes
// precedence over them. No error it returns holds a password.
func (p *Pools) poolConfig(sh *topology.Shard) (*pgxpool.Config, error) {
	password, hasRef, err := sh.ResolvePassword()
	if err != nil {
		return nil, err
	}
	if hasRef && sh.PasswordFile != "" {
		if fi, err := os.Stat(sh.PasswordFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			p.log.Warn("shard password file is accessible to other users; make it mode 0600 or 0400",
				zap.String("shard", sh.Name), zap.String("file", sh.PasswordFile), zap.Stringer("mode", fi.Mode().Perm()))
		}
	}
	cfg, err := pgxpool.ParseConfig(sh.DSN)
	if err != nil {
		return nil, dsnError(err)
	}
	if hasRef {
		cfg.ConnConfig.Password = password
	}
	cfg.MaxConns = p.cfg.MaxConns
	cfg.MinIdleConns = p.cfg.MinIdleConns
	cfg.MaxConnIdleTime = p.cfg.IdleTimeout
	cfg.ConnConfig.ConnectTimeout = p.cfg.ConnectTimeout
	cfg.ConnConfig.RuntimeParams["client_encoding"] = "UTF8"
	// A cancelled statement is cancelled on the shard too, and the
	// connection survives if the shard answers the cancel in time.
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &shardCancel{conn: c}
	}
	cfg.BeforeClose = func(c *pgx.Conn) {
		p.states.Delete(c.PgConn())
		memory.soon() // what the connection held can go back
	}
	// pgxpool pings only connections idle for a second; one whose backend
	// ended since (terminated, or the server restarted) is passed over
	// for another, instead of failing the statement sent on it.
	cfg.PrepareConn = func(_ context.Context, c *pgx.Conn) (bool, error) {
		if st, ok := p.states.Load(c.PgConn()); ok {
			return st.(*connState).probe(c.PgConn()).idleAlive(), nil
		}
		return idleAlive(c.PgConn().Conn()), nil
	}
	return cfg, nil
}

// dsnError says what is wrong with a DSN pgx refused without quoting it: a
// parse error may hold pieces of a password, even in pgx's redacted form. A
// file the DSN names but the gateway cannot read (sslrootcert, sslcert,
// sslkey, servicefile) is named, as only a path is at stake.
func dsnError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("invalid DSN: %w", pe)
	}
	return errors.New("invalid DSN")
}

// acquire borrows a connection to sh as the shard's own role. The caller
// must release it.
func (p *Pools) acquire(ctx context.Context, sh *topology.Shard) (*backend, error) {
	return p.acquireAs(ctx, sh, "")
}

// acquireAs borrows a connection to sh as backend role ("" for the shard's
// own).
func (p *Pools) acquireAs(ctx context.Context, sh *topology.Shard, role string) (*backend, error) {
	return p.borrow(ctx, sh, role, false)
}

// acquireRecovery borrows a connection to sh as role from the pools kept
// for finishing two-phase commits.
func (p *Pools) acquireRecovery(ctx context.Context, sh *topology.Shard, role string) (*backend, error) {
	return p.borrow(ctx, sh, role, true)
}

func (p *Pools) borrow(ctx context.Context, sh *topology.Shard, role string, recovery bool) (*backend, error) {
	sp, err := p.get(sh, role, recovery)
	if err != nil {
		p.failed(sh.Name, err)
		return nil, err
	}
	start := time.Now()
	sp.waiting.Add(1)
	conn, err := sp.acquire(ctx, sh.Name, p.acquireTimeout())
	sp.waiting.Add(-1)
	if err != nil {
		p.failed(sh.Name, err)
		return nil, err
	}
	if sp.acquireWait != nil {
		sp.acquireWait.Observe(time.Since(start).Seconds())
	}
	p.health.up(sh.Name)
	pg := conn.Conn().PgConn()
	st, ok := p.states.Load(pg)
	if !ok {
		st, _ = p.states.LoadOrStore(pg, &connState{})
	}
	return &backend{shard: sh.Name, conn: conn, pg: pg, state: st.(*connState), lost: p.lost}, nil
}

func (sp *shardPool) acquire(ctx context.Context, name string, timeout time.Duration) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := sp.pool.Acquire(actx)
	if err == nil {
		return conn, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) && sp.pool.Stat().TotalConns() >= sp.pool.Config().MaxConns {
		return nil, fmt.Errorf("shard %s: %w (%d connections busy for %s)", name, ErrPoolExhausted, sp.pool.Config().MaxConns, timeout)
	}
	return nil, &ShardUnreachableError{Shard: name, Err: redactConnectError(err)}
}

// redactConnectError keeps a connect error's reason but not the
// connection string it may quote.
func redactConnectError(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return ce.Unwrap()
	}
	return err
}

// PoolStats describes one backend connection pool now.
type PoolStats struct {
	Shard string `json:"shard"`
	// Role is the role its connections log in as.
	Role string `json:"role"`
	// Open connections are InUse (borrowed by a session) or Idle.
	Open  int `json:"open"`
	InUse int `json:"in_use"`
	Idle  int `json:"idle"`
	Max   int `json:"max"`
	// Waiting sessions wait for a connection now.
	Waiting int `json:"waiting"`
	// Acquires counts the borrowings since the pool was made, and
	// AcquireWait their total wait.
	Acquires    int64         `json:"acquires"`
	AcquireWait time.Duration `json:"acquire_wait_ns"`
	// Superuser is set when the role is a superuser on the shard.
	Superuser bool `json:"superuser"`
}

// Stats returns the state of every pool, ordered by shard and role.
func (p *Pools) Stats() []PoolStats {
	pools := p.unique()
	out := make([]PoolStats, 0, len(pools))
	for _, sp := range pools {
		if sp.recovery {
			continue // the gateway's own, for two-phase commit recovery
		}
		st := sp.pool.Stat()
		out = append(out, PoolStats{
			Shard: sp.shard, Role: sp.role,
			Open: int(st.TotalConns()), InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns()), Max: int(st.MaxConns()),
			Waiting: int(sp.waiting.Load()), Acquires: st.AcquireCount(), AcquireWait: st.AcquireDuration(),
			Superuser: sp.superuser.Load(),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Shard != out[j].Shard {
			return out[i].Shard < out[j].Shard
		}
		return out[i].Role < out[j].Role
	})
	return out
}

// unique returns every pool once (a pool may serve under two keys).
func (p *Pools) unique() []*shardPool {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[*shardPool]bool{}
	pools := make([]*shardPool, 0, len(p.pools))
	for _, sp := range p.pools {
		if !seen[sp] {
			seen[sp] = true
			pools = append(pools, sp)
		}
	}
	return pools
}

// knownShards are the shards of the last topology Sync saw.
func (p *Pools) knownShards() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.shards
}

// Sync closes the pools of shards that left the topology.
func (p *Pools) Sync(snap *topology.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shards = p.shards[:0:0]
	for name := range snap.Shards {
		p.shards = append(p.shards, name)
	}
	sort.Strings(p.shards)
	for key, sp := range p.pools {
		if sh, ok := snap.Shards[sp.shard]; !ok || !sp.serves(sh) {
			delete(p.pools, key)
			go sp.pool.Close()
		}
	}
}

// Close closes every pool, waiting for borrowed connections to come back.
func (p *Pools) Close() {
	p.mu.Lock()
	pools := p.pools
	p.pools = map[poolKey]*shardPool{}
	p.mu.Unlock()
	for _, sp := range pools {
		sp.pool.Close()
	}
}

// shardCancel cancels a backend's statement when its context ends: a cancel
// request to the shard at once, and a deadline 2 s later in case the shard
// does not answer. It is pgconn's CancelRequestContextWatcherHandler
// without the 100 ms that one waits after the request, which every
// cancelled statement would cost its client: once the shard has closed the
// request's connection its backend has the signal, and a backend that
// finished the statement meanwhile ignores it while it waits for the next
// (Postgres drops a cancel that comes while it reads a command).
type shardCancel struct {
	conn *pgconn.PgConn
	sent chan struct{}
	stop context.CancelFunc
}

func (h *shardCancel) HandleCancel(context.Context) {
	deadline := time.Now().Add(2 * time.Second)
	_ = h.conn.Conn().SetDeadline(deadline)
	ctx, stop := context.WithDeadline(context.Background(), deadline)
	h.sent, h.stop = make(chan struct{}), stop
	go func() {
		defer close(h.sent)
		_ = h.conn.CancelRequest(ctx)
	}()
}

func (h *shardCancel) HandleUnwatchAfterCancel() {
	<-h.sent // the request reached the shard, or gave up at the deadline
	h.stop()
	_ = h.conn.Conn().SetDeadline(time.Time{})
}
