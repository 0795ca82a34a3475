package proxy

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/topology"
)

// ShadowLog keeps what a gateway's shadow reads found, for the operator
// and the cutover's diff gate. topology.Store implements it.
type ShadowLog interface {
	PublishShadow(ctx context.Context, workflow string, r topology.ShadowReport) error
}

// shadowRead is a read a session answers from a moving logical shard's
// source that also runs on its target, off the client's path, to compare
// the two answers as row multisets.
type shadowRead struct {
	workflow             string
	logical              int
	source, target, slot string
	key                  string

	// What ran on the source, set by the executor.
	sql      string
	bind     *binding // nil for the simple protocol
	role     string
	settings map[string]string
	digest   rowDigest
}

// rowDigest is an order-free digest of a multiset of rows.
type rowDigest struct {
	sum  uint64
	rows int64
}

var digestSeed = maphash.MakeSeed()

// add adds rows to the digest.
func (d *rowDigest) add(rows [][][]byte) {
	var h maphash.Hash
	h.SetSeed(digestSeed)
	var n [4]byte
	for _, row := range rows {
		h.Reset()
		for _, v := range row {
			size := uint32(len(v))
			if v == nil {
				size = ^uint32(0)
			}
			binary.LittleEndian.PutUint32(n[:], size)
			h.Write(n[:])
			h.Write(v)
		}
		d.sum += h.Sum64()
		d.rows++
	}
}

// shadowWait is how long a shadow read waits for the target's stream to
// get to what the source read, before it counts as skipped.
const shadowWait = 10 * time.Second

// maxShadowsWaiting bounds the shadow reads in flight, most of them
// waiting for a target's stream; a read that finds them all busy is
// skipped rather than queued. maxShadowsQuerying bounds those running a
// statement, so that shadow reads take few of the shards' connections.
const (
	maxShadowsWaiting  = 256
	maxShadowsQuerying = 4
)

// shadowOutcome is what one shadow read found.
type shadowOutcome int

const (
	shadowMatch shadowOutcome = iota
	shadowDifferent
	shadowSkipped
)

// shadows runs a gateway's shadow reads and keeps their tallies per
// workflow, which it publishes.
type shadows struct {
	topo     func() *topology.Snapshot
	pools    *Pools
	watch    *streamWatch
	log      *zap.Logger
	gateway  string
	running  chan struct{}
	querying chan struct{}

	mu      sync.Mutex
	reports map[string]*topology.ShadowReport // by workflow
	dirty   map[string]bool
}

func newShadows(topo func() *topology.Snapshot, pools *Pools, watch *streamWatch, gateway string, log *zap.Logger) *shadows {
	return &shadows{topo: topo, pools: pools, watch: watch, log: log, gateway: gateway,
		running: make(chan struct{}, maxShadowsWaiting), querying: make(chan struct{}, maxShadowsQuerying), reports: map[string]*topology.ShadowReport{}, dirty: map[string]bool{}}
}

// start compares r in the background, the source having answered it
// whole at readEnd.
func (sh *shadows) start(ctx context.Context, r *shadowRead, readEnd time.Time) {
	select {
	case sh.running <- struct{}{}:
	default:
		sh.count(r, shadowSkipped, 0)
		return
	}
	go func() {
		defer func() { <-sh.running }()
		outcome, targetRows := sh.compare(ctx, r, readEnd)
		sh.count(r, outcome, targetRows)
	}()
}

// compare runs r on the target once its stream holds what the source read
// and compares the rows. Rows that differ are read again on both sides,
// the source first: only rows that stayed the same on the source and
// still differ on the target, which holds the source's changes, count as
// a difference.
func (sh *shadows) compare(ctx context.Context, r *shadowRead, readEnd time.Time) (shadowOutcome, int64) {
	sw := sh.watch.source(r.source, r.slot)
	if sw == nil {
		return shadowSkipped, 0
	}
	target, ok := sh.targetAfter(ctx, sw, r, readEnd)
	if !ok {
		return shadowSkipped, 0
	}
	if target == r.digest {
		return shadowMatch, target.rows
	}
	again, err := sh.run(ctx, r.source, r)
	if err != nil || again != r.digest {
		return shadowSkipped, 0 // the rows changed meanwhile
	}
	if target, ok = sh.targetAfter(ctx, sw, r, time.Now()); !ok {
		return shadowSkipped, 0
	}
	if target == r.digest {
		return shadowMatch, target.rows
	}
	if again, err = sh.run(ctx, r.source, r); err != nil || again != r.digest {
		return shadowSkipped, 0
	}
	return shadowDifferent, target.rows
}

// targetAfter runs r on the target once it holds what the source
// committed before t.
func (sh *shadows) targetAfter(ctx context.Context, sw *sourceWatch, r *shadowRead, t time.Time) (rowDigest, bool) {
	wctx, cancel := context.WithTimeout(ctx, shadowWait)
	defer cancel()
	if !sw.waitHolds(wctx, t) {
		return rowDigest{}, false
	}
	d, err := sh.run(ctx, r.target, r)
	if err != nil {
		sh.log.Debug("a shadow read failed", zap.String("shard", r.target), zap.Error(err))
		return rowDigest{}, false
	}
	return d, true
}

// run runs r's statement on shard as the client's session would and
// returns the digest of its rows.
func (sh *shadows) run(ctx context.Context, shard string, r *shadowRead) (rowDigest, error) {
	var d rowDigest
	snap := sh.topo()
	if snap == nil || snap.Shards[shard] == nil {
		return d, errShardGone
	}
	s := snap.Shards[shard]
	ctx, cancel := context.WithTimeout(ctx, shadowWait)
	defer cancel()
	select {
	case sh.querying <- struct{}{}:
		defer func() { <-sh.querying }()
	case <-ctx.Done():
		return d, ctx.Err()
	}
	b, err := sh.pools.acquireAs(ctx, s, r.role)
	if err != nil {
		return d, err
	}
	defer b.release()
	if err := b.syncSettings(ctx, r.settings); err != nil {
		return d, err
	}
	emit := func(batch *engine.Batch) error {
		d.add(batch.Rows)
		return nil
	}
	if r.bind == nil {
		err = b.exec(ctx, r.sql, emit, discardTag)
	} else {
		_, _, err = b.execBound(ctx, r.sql, r.bind, "", 0, true, nil, emit)
	}
	return d, err
}

// count tallies an outcome of r.
func (sh *shadows) count(r *shadowRead, outcome shadowOutcome, targetRows int64) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	rep := sh.reports[r.workflow]
	if rep == nil {
		rep = &topology.ShadowReport{Gateway: sh.gateway, Logical: map[int]*topology.ShadowTally{}}
		sh.reports[r.workflow] = rep
	}
	t := rep.Logical[r.logical]
	if t == nil {
		t = &topology.ShadowTally{}
		rep.Logical[r.logical] = t
	}
	switch outcome {
	case shadowMatch:
		t.Matches++
	case shadowSkipped:
		t.Skipped++
	case shadowDifferent:
		t.Differences++
		sql := r.sql
		if len(sql) > topology.MaxShadowSQL {
			sql = sql[:topology.MaxShadowSQL]
		}
		rep.Recent = append(rep.Recent, topology.ShadowDifference{At: time.Now().UTC(), Logical: r.logical, Key: r.key, SQL: sql,
			SourceRows: r.digest.rows, TargetRows: targetRows})
		if over := len(rep.Recent) - topology.MaxShadowDifferences; over > 0 {
			rep.Recent = slices.Delete(rep.Recent, 0, over)
		}
		sh.log.Warn("a shadow read found different rows on the target", zap.String("workflow", r.workflow), zap.Int("logical", r.logical),
			zap.String("key", r.key), zap.String("target", r.target), zap.Int64("source_rows", r.digest.rows), zap.Int64("target_rows", targetRows), zap.String("sql", sql))
	}
	sh.dirty[r.workflow] = true
}

// publishEvery is how often changed shadow reports go to etcd.
const publishEvery = time.Second

// publish keeps the reports of the workflows that steer reads now in
// log, until ctx ends; those of workflows that ended are dropped.
func (sh *shadows) publish(ctx context.Context, log ShadowLog) {
	tick := time.NewTicker(publishEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		steering := map[string]bool{}
		snap := sh.topo()
		if snap == nil {
			continue
		}
		for _, ks := range snap.Keyspaces {
			if ks.Reads != nil {
				steering[ks.Reads.Workflow] = true
			}
		}
		sh.mu.Lock()
		out := map[string]topology.ShadowReport{}
		for wf, rep := range sh.reports {
			switch {
			case !steering[wf]:
				delete(sh.reports, wf)
				delete(sh.dirty, wf)
			case sh.dirty[wf]:
				out[wf] = copyReport(rep)
			}
		}
		sh.mu.Unlock()
		for wf, rep := range out {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := log.PublishShadow(pctx, wf, rep)
			cancel()
			if err != nil {
				sh.log.Warn("publishing shadow reads", zap.String("workflow", wf), zap.Error(err))
				continue
			}
			sh.mu.Lock()
			delete(sh.dirty, wf)
			sh.mu.Unlock()
		}
	}
}

// copyReport returns a copy of rep, stamped now.
func copyReport(rep *topology.ShadowReport) topology.ShadowReport {
	out := topology.ShadowReport{Gateway: rep.Gateway, Logical: map[int]*topology.ShadowTally{}, Recent: slices.Clone(rep.Recent), Updated: time.Now().UTC()}
	for l, t := range rep.Logical {
		c := *t
		out.Logical[l] = &c
	}
	return out
}

var shadowReadsDesc = prometheus.NewDesc("shardgate_reshard_shadow_reads_total",
	"Shadow reads of a reshard workflow's moving logical shards this gateway ran, by logical shard and result: match, difference or skipped.",
	[]string{"workflow", "logical", "result"}, nil)

// collect sends the tallies as metrics.
func (sh *shadows) collect(ch chan<- prometheus.Metric) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, wf := range slices.Sorted(maps.Keys(sh.reports)) {
		for l, t := range sh.reports[wf].Logical {
			logical := strconv.Itoa(l)
			ch <- prometheus.MustNewConstMetric(shadowReadsDesc, prometheus.CounterValue, float64(t.Matches), wf, logical, "match")
			ch <- prometheus.MustNewConstMetric(shadowReadsDesc, prometheus.CounterValue, float64(t.Differences), wf, logical, "difference")
			ch <- prometheus.MustNewConstMetric(shadowReadsDesc, prometheus.CounterValue, float64(t.Skipped), wf, logical, "skipped")
		}
	}
}

// digesting returns emit that also adds the rows it passes on to r's
// digest.
func (r *shadowRead) digesting(emit func(*engine.Batch) error) func(*engine.Batch) error {
	return func(b *engine.Batch) error {
		r.digest.add(b.Rows)
		return emit(b)
	}
}
