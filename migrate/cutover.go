package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/topology"
)

// CutoverTimeout bounds how long a batch's writes are held before the
// gateways drained the fence and the stream caught up; past it the fence
// is lifted (the clients' statements go on at the old place) and the
// batch is tried again.
var CutoverTimeout = 5 * time.Second

// DefaultBatchSize is the most logical shards a cutover batch holds when
// the request does not say.
const DefaultBatchSize = 16

// ackTimeout bounds the wait for every gateway to apply a batch's new
// placement; a gateway slower than that holds the batch's writes until it
// does, and the controller goes on.
const ackTimeout = 30 * time.Second

// pollEvery is how often the controller looks whether the gateways got
// where a cutover waits for them.
const pollEvery = 5 * time.Millisecond

// errStreamsStale stops the catch-up when a batch failed after the
// streams were told to leave its target's reference tables: streams
// started again follow the placement as it is.
var errStreamsStale = errors.New("a cutover failed after the streams were changed for it")

// PlanBatches splits w's moves into cutover batches: runs of consecutive
// logical shards with the same source and target, at most size each.
func PlanBatches(w *topology.Workflow, size int) []topology.Batch {
	if size <= 0 {
		size = DefaultBatchSize
	}
	var out []topology.Batch
	for _, r := range Runs(w.Moves) {
		for first := r.First; first <= r.Last; first += size {
			out = append(out, topology.Batch{First: first, Last: min(first+size-1, r.Last), From: r.From, To: r.To})
		}
	}
	return out
}

// cutovers carries out the write cutover once an operator asked for it,
// batch by batch, until every batch is cut over or ctx ends.
func (d *driver) cutovers(ctx context.Context, x *world) error {
	for {
		w, err := d.Store.Workflow(ctx, d.Name)
		if err != nil {
			return err
		}
		switch {
		case w.Phase == topology.PhaseCatchingUp && w.Request == topology.RequestCutover:
			if err = d.checkGate(ctx, w); err != nil {
				break
			}
			_, err = d.lock.Update(ctx, func(w *topology.Workflow) error {
				w.Phase, w.Request = topology.PhaseCuttingOver, ""
				w.Batches = PlanBatches(w, w.BatchSize)
				return nil
			})
			if err == nil && d.OnPhase != nil {
				d.OnPhase(topology.PhaseCuttingOver)
			}
		case w.Phase == topology.PhaseCuttingOver:
			err = d.cutNext(ctx, w, x)
		case w.Request == topology.RequestReverse && (w.Phase == topology.PhaseCuttingOver || w.Phase == topology.PhaseCutOver):
			_, err = d.lock.Update(ctx, func(w *topology.Workflow) error {
				w.Phase, w.Request = topology.PhaseReversing, ""
				return nil
			})
			if err == nil && d.OnPhase != nil {
				d.OnPhase(topology.PhaseReversing)
			}
		case w.Request == topology.RequestReverse:
			_, err = d.lock.Update(ctx, func(w *topology.Workflow) error {
				w.Request, w.Error = "", fmt.Sprintf("reverse refused: workflow %s is in phase %s, and no writes moved", w.Name, w.Phase)
				return nil
			})
		case w.Phase == topology.PhaseReversing:
			err = d.reverseNext(ctx, w, x)
		}
		if errors.Is(err, errStreamsStale) {
			return err
		}
		held := errors.Is(err, errGateHolds)
		if held {
			err = nil // recorded and logged by checkGate; tried again below
		}
		if err != nil && ctx.Err() == nil {
			d.Log.Warn("cutover step failed; retrying", zap.String("workflow", d.Name), zap.Error(err))
			_, _ = d.lock.Update(ctx, func(w *topology.Workflow) error {
				w.Error = err.Error()
				return nil
			})
		}
		wait := recordEvery
		if err == nil && !held && (w.Phase == topology.PhaseCuttingOver || w.Phase == topology.PhaseReversing) {
			wait = 0 // the next batch at once
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// cutNext lifts a fence a controller before left up, then cuts over the
// first batch not done, or ends the phase when all are.
func (d *driver) cutNext(ctx context.Context, w *topology.Workflow, x *world) error {
	now, err := d.world(ctx, w) // the placement as it is now, not as x read it
	if err != nil {
		return err
	}
	placed := func(b topology.Batch) bool { return placedOn(now.ks, b, b.To) }
	// A controller that died between recording a batch's flip and making
	// it left the streams' targets as if it had flipped: undo that while
	// the fence still holds the batch's writes, and start the streams
	// again.
	for i, b := range w.Batches {
		if flipped(b) && !placed(b) {
			if _, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
				w.Batches[i].FlipLSN = ""
				return nil
			}); err != nil {
				return err
			}
			return errStreamsStale
		}
	}
	if w.Fence != "" {
		if err := d.liftFence(ctx, w.Keyspace, w.Fence); err != nil {
			return err
		}
	}
	if err := d.ensureReverse(ctx, w, x); err != nil {
		return err
	}
	for i, b := range w.Batches {
		if b.Done {
			continue
		}
		if placed(b) {
			// Cut over by a controller that died before it recorded it.
			_, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
				w.Batches[i].Done, w.Batches[i].At = true, time.Now().UTC()
				return nil
			})
			return err
		}
		if err := d.checkGate(ctx, w); err != nil {
			return err
		}
		return d.cutBatch(ctx, w, x, i)
	}
	_, err = d.lock.Update(ctx, func(w *topology.Workflow) error {
		w.Phase, w.Error = topology.PhaseCutOver, ""
		return nil
	})
	if err == nil && d.OnPhase != nil {
		d.OnPhase(topology.PhaseCutOver)
	}
	return err
}

// errGateHolds is checkGate's answer while the shadow gate holds the
// write cutover: the reason is in the record, and the cutover is tried
// again after recordEvery.
var errGateHolds = errors.New("the shadow gate holds the cutover")

// gatePrefix starts the record's error while the shadow gate holds the
// cutover. It says "waits", not "refused": a cutover command waiting for
// the phase goes on waiting, since the differences age out of the window.
const gatePrefix = "cutover waits: "

// checkGate returns errGateHolds, with the reason recorded in w.Error,
// when the gateways' shadow reads of w found more differences than w.Gate
// allows, or when their reports cannot be read: a controller that cannot
// tell does not cut. It logs a reason once, not at every try, and clears
// the record's error once the gate lets the cutover go on.
func (d *driver) checkGate(ctx context.Context, w *topology.Workflow) error {
	sum, err := d.Store.Shadow(ctx, w.Name)
	if err != nil && ctx.Err() != nil {
		return err
	}
	if err == nil {
		err = w.Gate.Check(sum, time.Now())
	} else {
		err = fmt.Errorf("the shadow reads' reports cannot be read, and the gate cannot be checked: %w", err)
	}
	if err == nil {
		if held := d.gateHeld; held != "" {
			d.gateHeld = ""
			d.Log.Info("shadow gate open; the cutover goes on", zap.String("workflow", w.Name))
			if _, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
				if w.Error == held {
					w.Error = ""
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}
	msg := gatePrefix + err.Error()
	if msg != d.gateHeld {
		d.gateHeld = msg
		d.Log.Warn("the shadow gate holds the cutover; trying again every second", zap.String("workflow", w.Name), zap.Error(err))
	}
	if w.Error != msg {
		if _, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
			w.Error = msg
			return nil
		}); err != nil {
			return err
		}
	}
	return errGateHolds
}

// placedOn reports whether ks places every logical shard of b on shard.
func placedOn(ks *topology.Keyspace, b topology.Batch, shard string) bool {
	for l := b.First; l <= b.Last; l++ {
		if ks.Map.Placement[l] != shard {
			return false
		}
	}
	return true
}

// liftFence takes fence id off keyspace ks (if it is still up) and off the
// record.
func (d *driver) liftFence(ctx context.Context, ks, id string) error {
	if _, err := d.Store.LiftFence(ctx, ks, id); err != nil {
		return err
	}
	_, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
		if w.Fence == id {
			w.Fence = ""
		}
		return nil
	})
	return err
}

// waitGateways waits until what every live gateway published satisfies ok.
func (d *driver) waitGateways(ctx context.Context, what string, ok func(topology.GatewayApplied) bool) error {
	for {
		all, err := d.Store.GatewaysApplied(ctx)
		if err != nil {
			return err
		}
		var behind []string
		for id, a := range all {
			if !ok(a) {
				behind = append(behind, id)
			}
		}
		if len(behind) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateways %v did not %s: %w", behind, what, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

// position returns shard's WAL position after every transaction it
// acknowledged, made durable so that a change stream can send it: a
// transaction committed with synchronous_commit off is acknowledged before
// its WAL is flushed, and this one's synchronous commit flushes it. The
// connection is kept for the next cutover step.
func (d *driver) position(ctx context.Context, x *world, shard string) (pglogrepl.LSN, error) {
	var lsn pglogrepl.LSN
	err := d.onShard(ctx, x, shard, func(conn *pgconn.PgConn) error {
		res, err := conn.Exec(ctx, "BEGIN; SET LOCAL synchronous_commit TO on; SELECT pg_current_wal_insert_lsn(), txid_current(); COMMIT").ReadAll()
		if err != nil {
			return fmt.Errorf("shard %s position: %w", shard, err)
		}
		lsn, err = pglogrepl.ParseLSN(string(res[2].Rows[0][0]))
		return err
	})
	return lsn, err
}

// onShard runs f on a connection to shard kept for the cutover's steps;
// one f failed on is closed.
func (d *driver) onShard(ctx context.Context, x *world, shard string, f func(*pgconn.PgConn) error) error {
	d.flows.mu.Lock()
	conn := d.flows.kept[shard]
	delete(d.flows.kept, shard) // in use
	d.flows.mu.Unlock()
	if conn == nil {
		var err error
		if conn, err = x.connect(ctx, shard); err != nil {
			return err
		}
	}
	if err := f(conn); err != nil {
		conn.Close(context.Background())
		return err
	}
	d.flows.mu.Lock()
	if old := d.flows.kept[shard]; old != nil {
		old.Close(context.Background())
	}
	d.flows.kept[shard] = conn
	d.flows.mu.Unlock()
	return nil
}

// reverseNext moves the writes of the last batch cut over back to its
// source, or ends the reverse when none is left. Like cutNext, it first
// repairs what a controller that died in the middle of one left.
func (d *driver) reverseNext(ctx context.Context, w *topology.Workflow, x *world) error {
	now, err := d.world(ctx, w) // the placement as it is now, not as x read it
	if err != nil {
		return err
	}
	at := func(b topology.Batch, shard string) bool { return placedOn(now.ks, b, shard) }
	for i, b := range w.Batches {
		switch {
		case b.BackLSN != "" && b.FlipLSN != "" && at(b, b.To):
			// Recorded as going back, but its writes are still at the
			// target: the reverse stream must carry them again.
			if _, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
				w.Batches[i].BackLSN = ""
				return nil
			}); err != nil {
				return err
			}
			return errStreamsStale
		case b.BackLSN != "" && b.FlipLSN != "" && at(b, b.From):
			if _, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
				w.Batches[i].Done, w.Batches[i].FlipLSN, w.Batches[i].Reversed = false, "", true
				return nil
			}); err != nil {
				return err
			}
			return nil
		}
	}
	if w.Fence != "" {
		if err := d.liftFence(ctx, w.Keyspace, w.Fence); err != nil {
			return err
		}
	}
	for i := len(w.Batches) - 1; i >= 0; i-- {
		if b := w.Batches[i]; flipped(b) && at(b, b.To) {
			return d.reverseBatch(ctx, w, x, now.ks, i)
		}
	}
	_, err = d.lock.Update(ctx, func(w *topology.Workflow) error {
		w.Phase, w.Error = topology.PhaseCatchingUp, ""
		return nil
	})
	if err == nil && d.OnPhase != nil {
		d.OnPhase(topology.PhaseCatchingUp)
	}
	return err
}

// preCatchUpWait bounds the wait for a stream to reach its shard's
// position before a fence goes up.
const preCatchUpWait = 30 * time.Second

// caughtUpWithin is how quickly a stream must reach its shard's position
// before a fence goes up: while it takes longer, the writes that came
// meanwhile would be held as long.
const caughtUpWithin = 50 * time.Millisecond

// preCatchUp waits until flow f's stream holds what its shard committed
// up to now, again and again until it gets there quickly.
func (d *driver) preCatchUp(ctx context.Context, x *world, f flow) error {
	s := d.streamOf(f)
	if s == nil {
		return fmt.Errorf("the %s is not running", f)
	}
	ctx, cancel := context.WithTimeout(ctx, preCatchUpWait)
	defer cancel()
	for {
		start := time.Now()
		lsn, err := d.position(ctx, x, f.shard)
		if err != nil {
			return err
		}
		if err := s.WaitFor(ctx, lsn); err != nil {
			return fmt.Errorf("the %s does not keep up: %w", f, err)
		}
		if time.Since(start) < caughtUpWithin {
			return nil
		}
	}
}

// waitNoPrepared waits until shard holds no prepared transaction.
func (d *driver) waitNoPrepared(ctx context.Context, x *world, shard string) error {
	for {
		var n string
		if err := d.onShard(ctx, x, shard, func(conn *pgconn.PgConn) error {
			rows, err := query(ctx, conn, "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()")
			if err == nil {
				n = string(rows[0][0])
			}
			return err
		}); err != nil {
			return err
		}
		if n == "0" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("shard %s still holds %s prepared transactions: %w", shard, n, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

// clock reads shard's clock, as its transactions' start times are on it.
func (d *driver) clock(ctx context.Context, x *world, shard string) (string, error) {
	var now string
	err := d.onShard(ctx, x, shard, func(conn *pgconn.PgConn) error {
		rows, err := query(ctx, conn, "SELECT clock_timestamp()::text")
		if err == nil {
			now = rows[0][0]
		}
		return err
	})
	return now, err
}

// waitOlderTransactions waits until no client transaction that began
// before before (on shard's clock) runs in shard's database.
func (d *driver) waitOlderTransactions(ctx context.Context, x *world, shard, before string) error {
	const q = `SELECT pid::text, xact_start::text, left(query, 200) FROM pg_stat_activity
WHERE backend_type = 'client backend' AND datname = current_database() AND pid <> pg_backend_pid() AND xact_start < $1::timestamptz
ORDER BY xact_start LIMIT 1`
	var older []string
	holding := func() error {
		return fmt.Errorf("shard %s still runs a transaction that began before the fence (pid %s, since %s: %s): %w", shard, older[0], older[1], older[2], ctx.Err())
	}
	for {
		var found []string
		if err := d.onShard(ctx, x, shard, func(conn *pgconn.PgConn) error {
			rows, err := query(ctx, conn, q, before)
			if err == nil && len(rows) > 0 {
				found = rows[0]
			}
			return err
		}); err != nil {
			if older != nil && ctx.Err() != nil {
				return holding()
			}
			return err
		}
		if found == nil {
			return nil
		}
		older = found
		select {
		case <-ctx.Done():
			return holding()
		case <-time.After(pollEvery):
		}
	}
}

// direction is one way a batch's writes move: to its target (a cutover)
// or back to its source (a reverse).
type direction struct {
	what    string // for messages
	writer  string // where the batch's writes are now
	place   string // where they go
	carrier flow   // the stream that carries the writer's changes to place
	other   flow   // the stream that carries place's changes back from the flip on
	// mark records place's position at the flip (where other starts
	// carrying the batch), "" to undo it; done records the move.
	mark func(b *topology.Batch, at string)
	done func(b *topology.Batch, pause time.Duration)
	// refs sets the streams' reference-table targets for the new
	// placement.
	refs func()
}

// cutBatch moves batch i's writes to its target.
func (d *driver) cutBatch(ctx context.Context, w *topology.Workflow, x *world, i int) error {
	b := w.Batches[i]
	return d.moveBatch(ctx, w, x, i, direction{
		what: "cutover", writer: b.From, place: b.To,
		carrier: flow{shard: b.From}, other: flow{shard: b.To, reverse: true},
		mark: func(b *topology.Batch, at string) { b.FlipLSN = at },
		done: func(b *topology.Batch, pause time.Duration) {
			b.Done, b.PauseMS, b.At = true, float64(pause.Microseconds())/1000, time.Now().UTC()
		},
		// The gateways write the target's reference tables from the flip on.
		refs: func() { d.eachStream(func(_ flow, s *Stream) { s.StopReference(b.To) }) },
	})
}

// reverseBatch moves batch i's writes back to its source.
func (d *driver) reverseBatch(ctx context.Context, w *topology.Workflow, x *world, ks *topology.Keyspace, i int) error {
	b := w.Batches[i]
	return d.moveBatch(ctx, w, x, i, direction{
		what: "move back", writer: b.To, place: b.From,
		carrier: flow{shard: b.To, reverse: true}, other: flow{shard: b.From},
		mark: func(b *topology.Batch, at string) { b.BackLSN = at },
		done: func(b *topology.Batch, pause time.Duration) {
			b.Done, b.FlipLSN, b.Reversed, b.ReversePauseMS = false, "", true, float64(pause.Microseconds())/1000
		},
		refs: func() {
			// A target left with no logical shard gets reference tables
			// from the streams again: the gateways stop writing them there.
			for l, shard := range ks.Map.Placement {
				if shard == b.To && (l < b.First || l > b.Last) {
					return
				}
			}
			d.eachStream(func(_ flow, s *Stream) { s.ResumeReference(b.To) })
		},
	})
}

// moveBatch moves batch i's writes the way dir says. A fence holds them at
// every gateway; once every gateway drained it (no transaction that began
// before it is open), no prepared transaction is left on the writer, and
// the carrier stream holds everything the writer committed, the streams
// are set for the new placement, and the placement flips and the fence
// goes in one etcd write; then every gateway applies it. If the gateways
// or the stream take longer than CutoverTimeout, the fence is lifted and
// the batch stays where it was, for the next try.
func (d *driver) moveBatch(ctx context.Context, w *topology.Workflow, x *world, i int, dir direction) error {
	b := w.Batches[i]
	id := fmt.Sprintf("%s.%d.%d", w.Name, i, b.Attempts+1)
	if _, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
		w.Batches[i].Attempts++
		w.Fence = id
		return nil
	}); err != nil {
		return err
	}
	var logical []int
	placement := map[int]string{}
	for l := b.First; l <= b.Last; l++ {
		logical = append(logical, l)
		placement[l] = dir.place
	}
	// Catch up first without holding anything, so that the stream has
	// little left to carry while the writes are held.
	if err := d.preCatchUp(ctx, x, dir.carrier); err != nil {
		return err
	}
	start := time.Now()
	if _, err := d.Store.RaiseFence(ctx, w.Keyspace, topology.Fence{ID: id, Workflow: w.Name, Logical: logical}); err != nil {
		return err
	}
	d.at(HookAfterFence)
	giveUp := func(err error) error {
		if lerr := d.liftFence(context.WithoutCancel(ctx), w.Keyspace, id); lerr != nil {
			err = errors.Join(err, lerr)
		}
		return fmt.Errorf("%s of logical shards %d-%d given up after %s (writes went on at %s): %w", dir.what, b.First, b.Last, time.Since(start).Round(time.Millisecond), dir.writer, err)
	}
	bctx, cancel := context.WithTimeout(ctx, CutoverTimeout)
	defer cancel()
	raised, err := d.clock(bctx, x, dir.writer)
	if err != nil {
		return giveUp(err)
	}
	if err := d.waitGateways(bctx, "drain fence "+id, func(a topology.GatewayApplied) bool { return a.Fences[w.Keyspace] == id }); err != nil {
		return giveUp(err)
	}
	drained := time.Since(start)
	// A transaction prepared by a gateway that died is committed later by
	// a resolver: at the writer, after the flip, where no stream would
	// carry it. The batch waits for it.
	if err := d.waitNoPrepared(bctx, x, dir.writer); err != nil {
		return giveUp(err)
	}
	// So does a statement that began before the fence and that no live
	// gateway drained: one of a gateway that died, or lost its etcd lease,
	// still running at the writer; it may commit there after the flip.
	if err := d.waitOlderTransactions(bctx, x, dir.writer, raised); err != nil {
		return giveUp(err)
	}
	lsn, err := d.position(bctx, x, dir.writer)
	if err != nil {
		return giveUp(err)
	}
	carrier, other := d.streamOf(dir.carrier), d.streamOf(dir.other)
	if carrier == nil || other == nil {
		return giveUp(fmt.Errorf("the %s and the %s are not both running", dir.carrier, dir.other))
	}
	if err := carrier.WaitFor(bctx, lsn); err != nil {
		return giveUp(err)
	}
	// What the carrier applied at the new place is before this position;
	// what the gateways write there from the flip on is after it, and
	// the other stream carries it back.
	at, err := d.position(bctx, x, dir.place)
	if err != nil {
		return giveUp(err)
	}
	w, err = d.lock.Update(ctx, func(w *topology.Workflow) error {
		dir.mark(&w.Batches[i], at.String())
		return nil
	})
	if err != nil {
		return giveUp(err)
	}
	caughtUp := time.Since(start)
	// Nothing of the batch is written anywhere now: the carrier leaves
	// it, the other stream takes it up.
	for _, pair := range []struct {
		f flow
		s *Stream
	}{{dir.carrier, carrier}, {dir.other, other}} {
		targets, _ := pair.f.targets(w, x.ks.Map.LogicalCount)
		pair.s.SetTargets(targets)
	}
	dir.refs()
	d.at(HookBeforeFlip)
	rev, err := d.Store.PlaceFenced(ctx, w.Keyspace, id, placement)
	if err != nil {
		_, uerr := d.lock.Update(context.WithoutCancel(ctx), func(w *topology.Workflow) error {
			dir.mark(&w.Batches[i], "")
			return nil
		})
		return errors.Join(giveUp(err), uerr, errStreamsStale)
	}
	d.at(HookAfterFlip)
	actx, cancelAck := context.WithTimeout(ctx, ackTimeout)
	defer cancelAck()
	if err := d.waitGateways(actx, fmt.Sprintf("apply revision %d", rev), func(a topology.GatewayApplied) bool { return a.Revision >= rev }); err != nil {
		d.Log.Warn("a gateway is slow to apply a new placement; its writes to the batch wait until it does", zap.String("workflow", w.Name), zap.Error(err))
	}
	pause := time.Since(start)
	d.Log.Info("batch moved", zap.String("workflow", w.Name), zap.String("step", dir.what), zap.Int("first", b.First), zap.Int("last", b.Last),
		zap.String("to", dir.place), zap.Duration("pause", pause), zap.Duration("drained", drained), zap.Duration("caught_up", caughtUp))
	_, err = d.lock.Update(ctx, func(w *topology.Workflow) error {
		dir.done(&w.Batches[i], pause)
		if w.Fence == id {
			w.Fence = ""
		}
		w.Error = ""
		return nil
	})
	return err
}
