package proxy

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/topology"
)

// retryDown is how long work that may run on any shard avoids a shard that
// could not be reached, before it tries that shard again.
const retryDown = 2 * time.Second

// health remembers which shards could not be reached lately, so that work
// any shard can do (logins, catalog reads, SELECT 1) goes to one that works.
// Safe for concurrent use.
type health struct {
	mu   sync.Mutex
	down map[string]shardDown
}

type shardDown struct {
	since time.Time
	err   string
}

func (h *health) up(shard string) {
	h.mu.Lock()
	delete(h.down, shard)
	h.mu.Unlock()
}

func (h *health) markDown(shard string, err error) {
	h.mu.Lock()
	h.down[shard] = shardDown{since: time.Now(), err: err.Error()}
	h.mu.Unlock()
}

// avoid reports whether shard failed less than retryDown ago.
func (h *health) avoid(shard string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.down[shard]
	return ok && time.Since(d.since) < retryDown
}

func (h *health) isDown(shard string) (shardDown, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.down[shard]
	return d, ok
}

// failed records that borrowing a connection to shard failed with err: a
// shard that cannot be reached is avoided for a while; a full pool is not a
// shard's fault.
func (p *Pools) failed(shard string, err error) {
	var unreach *ShardUnreachableError
	if errors.As(err, &unreach) {
		p.health.markDown(shard, err)
		p.metrics.shardErrors.WithLabelValues(shard).Inc()
	}
}

// lost records that an open connection to shard broke.
func (p *Pools) lost(shard string) {
	p.metrics.shardErrors.WithLabelValues(shard).Inc()
}

// connected is called for every new connection of sp: it counts it and
// warns, once per pool, when the role it logs in as is a superuser, which
// lets any client of the gateway read the shard's files.
func (p *Pools) connected(sp *shardPool, c *pgconn.PgConn) {
	p.metrics.connects.WithLabelValues(sp.shard).Inc()
	if c.ParameterStatus("is_superuser") != "on" || sp.superuser.Swap(true) {
		return
	}
	// Once per shard and role, whichever of their pools sees it first.
	if _, warned := p.superuserWarned.LoadOrStore(sp.shard+"\x00"+sp.role, true); !warned {
		p.log.Warn("the gateway logs in to a shard as a superuser role; clients can then read server files and run programs on it. "+
			"Give the shard's DSN (or the user's backend_role) a role that owns the keyspace's database but is not a superuser",
			zap.String("shard", sp.shard), zap.String("role", sp.role))
	}
}

// Order returns shards in the order to try them for work that any of them
// can do: those not avoided for having failed lately first, each group in
// the order given.
func (p *Pools) Order(shards []string) []string {
	out := make([]string, 0, len(shards))
	var avoided []string
	for _, s := range shards {
		if p.health.avoid(s) {
			avoided = append(avoided, s)
		} else {
			out = append(out, s)
		}
	}
	return append(out, avoided...)
}

// ShardStatus is what a health check found out about one shard.
type ShardStatus struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
	// Error says why the shard is down.
	Error string `json:"error,omitempty"`
	// SuperuserRoles are the roles the gateway logs in as that are
	// superusers on the shard.
	SuperuserRoles []string `json:"superuser_roles,omitempty"`
}

// Check connects to every shard of snap at once and runs a query on each,
// and returns what it found, by shard name.
func (p *Pools) Check(ctx context.Context, snap *topology.Snapshot) []ShardStatus {
	out := make([]ShardStatus, 0, len(snap.Shards))
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, sh := range snap.Shards {
		wg.Go(func() {
			st := ShardStatus{Name: sh.Name, Up: true}
			if err := p.ping(ctx, sh); err != nil {
				st.Up, st.Error = false, err.Error()
				if unreach := (*ShardUnreachableError)(nil); errors.As(err, &unreach) {
					st.Error = unreach.Err.Error() // the shard is named beside it
				}
			}
			st.SuperuserRoles = p.superuserRoles(sh.Name)
			mu.Lock()
			out = append(out, st)
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (p *Pools) ping(ctx context.Context, sh *topology.Shard) error {
	b, err := p.acquire(ctx, sh)
	if err != nil {
		return err
	}
	defer b.release()
	if err := b.conn.Ping(ctx); err != nil {
		err = &ShardUnreachableError{Shard: sh.Name, Err: redactConnectError(err)}
		p.failed(sh.Name, err)
		return err
	}
	return nil
}

// superuserRoles lists the roles of shard's pools that are superusers.
func (p *Pools) superuserRoles(shard string) []string {
	var roles []string
	for _, sp := range p.unique() {
		if sp.shard == shard && sp.superuser.Load() {
			roles = append(roles, sp.role)
		}
	}
	sort.Strings(roles)
	return roles
}
