package migrate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/topology"
)

// throttleEvery is how often the throttle measures the sources and the
// gateways against the workflow's limits.
const throttleEvery = time.Second

// throttle backs off a workflow's copy and change streams while a source's
// standbys or the gateways' clients suffer (see topology.Throttle).
type throttle struct {
	// applies is set in the phases where backing off holds nothing the
	// clients wait for: before the write cutover.
	applies atomic.Bool

	mu     sync.Mutex
	reason string
	eased  chan struct{} // closed when reason turns ""
}

func newThrottle() *throttle { return &throttle{eased: make(chan struct{})} }

// holding reports whether the copy and the streams must back off now.
func (t *throttle) holding() bool {
	if !t.applies.Load() {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reason != ""
}

// wait returns once the copy may go on, or ctx ended.
func (t *throttle) wait(ctx context.Context) error {
	for t.holding() {
		t.mu.Lock()
		eased := t.eased
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-eased:
		case <-time.After(throttleEvery): // the phase may have moved on
		}
	}
	return nil
}

// set records why the throttle holds ("" for not), and reports whether
// that changed.
func (t *throttle) set(reason string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if reason == t.reason {
		return false
	}
	if reason == "" {
		close(t.eased)
		t.eased = make(chan struct{})
	}
	t.reason = reason
	return true
}

// watchThrottle measures the workflow's limits every throttleEvery until
// ctx ends, and records in the workflow when its copy and streams begin
// or stop backing off. It closes measured after the first time.
func (d *driver) watchThrottle(ctx context.Context, measured chan<- struct{}) {
	conns := map[string]*pgconn.PgConn{}
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	d.measureThrottle(ctx, conns)
	close(measured)
	tick := time.NewTicker(throttleEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d.measureThrottle(ctx, conns)
	}
}

// measureThrottle measures the workflow's limits once and records it when
// its copy and streams begin or stop backing off.
func (d *driver) measureThrottle(ctx context.Context, conns map[string]*pgconn.PgConn) {
	w, err := d.Store.Workflow(ctx, d.Name)
	if err != nil {
		return
	}
	d.throttle.applies.Store(w.Phase.Throttles())
	reason := d.overLimits(ctx, w, conns)
	if !d.throttle.set(reason) && w.Throttle.Reason == reason {
		return
	}
	if reason != "" {
		d.Log.Warn("the copy and the streams back off", zap.String("workflow", d.Name), zap.String("reason", reason))
	} else {
		d.Log.Info("the copy and the streams go on", zap.String("workflow", d.Name))
	}
	_, _ = d.lock.Update(ctx, func(w *topology.Workflow) error {
		if w.Throttle.Reason == "" || reason == "" {
			w.Throttle.Since = time.Now().UTC()
		}
		w.Throttle.Reason = reason
		return nil
	})
}

// overLimits says which of w's limits is exceeded now, "" for none. A
// source it cannot ask counts as within them: the copy and the streams
// fail on their own there.
func (d *driver) overLimits(ctx context.Context, w *topology.Workflow, conns map[string]*pgconn.PgConn) string {
	lim := w.Throttle
	if lim.MaxLatency > 0 {
		applied, err := d.Store.GatewaysApplied(ctx)
		if err == nil {
			for _, id := range slices.Sorted(maps.Keys(applied)) {
				if p99 := applied[id].LatencyP99; p99 > lim.MaxLatency {
					return fmt.Sprintf("gateway %s's p99 statement latency is %s (limit %s)", id, p99, lim.MaxLatency)
				}
			}
		}
	}
	if lim.MaxReplicaLag <= 0 && lim.MaxActive <= 0 {
		return ""
	}
	for _, source := range sources(w) {
		lag, active, err := d.sourceLoad(ctx, source, conns)
		if err != nil {
			d.Log.Debug("reading a source's load", zap.String("source", source), zap.Error(err))
			continue
		}
		if lim.MaxReplicaLag > 0 && lag > lim.MaxReplicaLag {
			return fmt.Sprintf("source %s's standbys replay %s behind (limit %s)", source, lag.Round(time.Millisecond), lim.MaxReplicaLag)
		}
		if lim.MaxActive > 0 && active > lim.MaxActive {
			return fmt.Sprintf("source %s runs %d statements at once (limit %d)", source, active, lim.MaxActive)
		}
	}
	return ""
}

// sourceLoad is how far behind the source's physical standbys replay, the
// slowest (the workflow's own logical streams left out), and how many of
// its client sessions run a statement now (this one left out).
func (d *driver) sourceLoad(ctx context.Context, source string, conns map[string]*pgconn.PgConn) (time.Duration, int, error) {
	conn := conns[source]
	if conn == nil || conn.IsClosed() {
		snap, err := d.Store.Load(ctx)
		if err != nil {
			return 0, 0, err
		}
		if conn, err = Connect(ctx, snap.Shards[source]); err != nil {
			return 0, 0, err
		}
		conns[source] = conn
	}
	const q = `SELECT (SELECT coalesce(max(extract(epoch FROM replay_lag)), 0)::float8 FROM pg_stat_replication
  WHERE pid NOT IN (SELECT active_pid FROM pg_replication_slots WHERE slot_type = 'logical' AND active_pid IS NOT NULL)),
 (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid())`
	qctx, cancel := context.WithTimeout(ctx, throttleEvery)
	defer cancel()
	rr := conn.ExecParams(qctx, q, nil, nil, nil, nil).Read()
	if rr.Err != nil {
		conn.Close(context.Background())
		return 0, 0, rr.Err
	}
	secs, err := strconv.ParseFloat(string(rr.Rows[0][0]), 64)
	if err != nil {
		return 0, 0, err
	}
	active, err := strconv.Atoi(string(rr.Rows[0][1]))
	if err != nil {
		return 0, 0, err
	}
	return time.Duration(secs * float64(time.Second)), active, nil
}
