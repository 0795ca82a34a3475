package proxy

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/topology"
)

// streamWatchEvery is how often a watched source is asked how far its
// reshard stream got.
const streamWatchEvery = 50 * time.Millisecond

// maxTargetStaleness is how far behind its source a target may be for
// reads to be sent there: a few times what the stream takes when it keeps
// up (the source's WAL writer, the stream's status, this watch).
const maxTargetStaleness = 2 * time.Second

// streamWatch follows, for each source shard whose reads a reshard steers
// (see topology.ReadTraffic), how far the stream that keeps its targets
// up to date got: it asks the source its WAL positions and its slot's
// confirmed position at once, again and again. A target holds every
// commit made on the source before the latest asking whose position the
// slot confirmed since.
//
// Each asking has two positions. Everything inserted before it bounds
// every commit a reader could see then, but WAL that no commit flushed
// (a read's page pruning) may wait unflushed, and so undecoded, for long
// on a source that commits nothing: by it a quiet source's targets would
// never look fresh. Everything flushed bounds every commit made with
// synchronous_commit on. Freshness, which bounds how far behind a read at
// a target may be, goes by the flushed one; a session's own writes and
// shadow reads, which must see exactly what the source saw, by the
// inserted one.
type streamWatch struct {
	pools *Pools
	log   *zap.Logger

	mu      sync.Mutex
	sources map[streamKey]*sourceWatch
}

type streamKey struct{ shard, slot string }

// sourceWatch is one source's stream as the watch saw it.
type sourceWatch struct {
	stop context.CancelFunc

	mu sync.Mutex
	// asked are the recent askings the targets do not hold yet by their
	// inserted position, oldest first.
	asked []asking
	// held and flushed are the times of the latest askings the targets
	// hold by their inserted and flushed positions.
	held, flushed time.Time
	// moved is closed and replaced whenever held moves.
	moved chan struct{}
}

// asking is one question to the source: when, and its WAL positions then.
type asking struct {
	at              time.Time
	inserted, flush pglogrepl.LSN
}

func newStreamWatch(pools *Pools, log *zap.Logger) *streamWatch {
	return &streamWatch{pools: pools, log: log, sources: map[streamKey]*sourceWatch{}}
}

// apply watches the sources whose reads snap steers, and stops watching
// the others.
func (w *streamWatch) apply(ctx context.Context, snap *topology.Snapshot) {
	want := map[streamKey]*topology.Shard{}
	for _, ks := range snap.Keyspaces {
		// Watched while the traffic routes any, even at 0%: a share
		// raised again finds the targets' freshness known.
		t := ks.Reads
		if t == nil || len(ks.Routed()) == 0 {
			continue
		}
		for l := range ks.Routed() {
			source := ks.Map.Placement[l]
			if sh := snap.Shards[source]; sh != nil && t.Slots[source] != "" {
				want[streamKey{source, t.Slots[source]}] = sh
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, sw := range w.sources {
		if want[k] == nil {
			sw.stop()
			delete(w.sources, k)
		}
	}
	for k, sh := range want {
		if w.sources[k] != nil {
			continue
		}
		sctx, stop := context.WithCancel(ctx)
		sw := &sourceWatch{stop: stop, moved: make(chan struct{})}
		w.sources[k] = sw
		go w.run(sctx, sh, k.slot, sw)
	}
}

// source returns the watch of shard's stream through slot, nil if none.
func (w *streamWatch) source(shard, slot string) *sourceWatch {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sources[streamKey{shard, slot}]
}

// run asks the source every streamWatchEvery until ctx ends.
func (w *streamWatch) run(ctx context.Context, sh *topology.Shard, slot string, sw *sourceWatch) {
	q := "SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text, (SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = " + quoteLiteral(slot) + ")"
	tick := time.NewTicker(streamWatchEvery)
	defer tick.Stop()
	failing := false
	for {
		err := w.ask(ctx, sh, q, sw)
		if err != nil && !failing && ctx.Err() == nil {
			w.log.Warn("reading a reshard stream's position; its targets get no reads meanwhile", zap.String("shard", sh.Name), zap.String("slot", slot), zap.Error(err))
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// ask asks the source once and notes the answer.
func (w *streamWatch) ask(ctx context.Context, sh *topology.Shard, q string, sw *sourceWatch) error {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b, err := w.pools.acquireRecovery(actx, sh, "")
	if err != nil {
		return err
	}
	defer b.release()
	at := time.Now() // before the position is read: every commit before it is at or below it
	var row [][]byte
	err = b.exec(actx, q, func(batch *engine.Batch) error {
		if len(batch.Rows) > 0 {
			row = batch.Rows[0]
		}
		return nil
	}, discardTag)
	if err != nil {
		return err
	}
	if len(row) != 3 || row[0] == nil || row[1] == nil {
		return nil
	}
	inserted, err := pglogrepl.ParseLSN(string(row[0]))
	if err != nil {
		return err
	}
	flush, err := pglogrepl.ParseLSN(string(row[1]))
	if err != nil {
		return err
	}
	var confirmed pglogrepl.LSN
	if row[2] != nil {
		if confirmed, err = pglogrepl.ParseLSN(string(row[2])); err != nil {
			return err
		}
	}
	sw.note(asking{at, inserted, flush}, confirmed)
	return nil
}

// note records an asking and the slot's confirmed position it saw.
func (sw *sourceWatch) note(a asking, confirmed pglogrepl.LSN) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.asked = append(sw.asked, a)
	held, flushed := sw.held, sw.flushed
	done := 0
	for i, x := range sw.asked {
		if x.flush <= confirmed && x.at.After(flushed) {
			flushed = x.at
		}
		if x.inserted <= confirmed {
			held, done = x.at, i+1
		}
	}
	sw.asked = append(sw.asked[:0], sw.asked[done:]...)
	if len(sw.asked) > 1000 { // the stream is stuck: keep the latest
		sw.asked = append(sw.asked[:0], sw.asked[len(sw.asked)-1000:]...)
	}
	if held.After(flushed) { // what was inserted before was flushed too
		flushed = held
	}
	sw.flushed = flushed
	if held.After(sw.held) {
		sw.held = held
		close(sw.moved)
		sw.moved = make(chan struct{})
	}
}

// holds reports whether the targets hold every commit made on the source
// before t.
func (sw *sourceWatch) holds(t time.Time) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return !sw.held.Before(t)
}

// fresh reports whether the targets are at most maxTargetStaleness
// behind, by what the source flushed.
func (sw *sourceWatch) fresh() bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return !sw.flushed.Before(time.Now().Add(-maxTargetStaleness))
}

// waitHolds waits until the targets hold every commit made on the source
// before t, and reports whether they did before ctx ended.
func (sw *sourceWatch) waitHolds(ctx context.Context, t time.Time) bool {
	for {
		sw.mu.Lock()
		held, moved := sw.held, sw.moved
		sw.mu.Unlock()
		if !held.Before(t) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-moved:
		}
	}
}
