package migrate

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// Controller drives one reshard workflow from its etcd record: it holds the
// workflow's lock (one controller at a time, wherever it runs), does what
// the recorded phase calls for and records each step before it goes on, so
// that a controller that dies, even between two statements, is followed by
// one that resumes from the record: a source whose copy was not recorded
// as done is copied again (the copy of a range replaces what the target
// holds of it), a stream restarts from what its slot confirmed (changes
// are applied by primary key, so applying one again changes nothing).
type Controller struct {
	Store *topology.Store
	Name  string
	// ID names this controller in the record, for operators.
	ID  string
	Log *zap.Logger
	// LockTTL is how long the lock outlives a controller that died: the
	// wait before another takes over.
	LockTTL time.Duration
	// CopyWorkers is how many tables each source copies at once;
	// DefaultCopyWorkers when 0.
	CopyWorkers int
	// OnPhase, when set, is told each phase the workflow is in as the
	// controller takes it up.
	OnPhase func(topology.WorkflowPhase)
	// At, when set, is called at the points tests kill the process at
	// (see the Hook constants).
	At func(Hook)
}

// Hook names a point of a workflow where tests kill the controller.
type Hook string

// Hooks.
const (
	// HookAfterSeed: a source's copy is recorded as done.
	HookAfterSeed Hook = "after-seed"
	// HookAfterFence: a cutover batch's fence is up: the gateways hold its
	// writes.
	HookAfterFence Hook = "after-fence"
	// HookBeforeFlip: a batch's writes are held and its flip recorded,
	// the placement not flipped yet.
	HookBeforeFlip Hook = "before-flip"
	// HookAfterFlip: a batch's placement flipped, the batch not recorded
	// as done yet.
	HookAfterFlip Hook = "after-flip"
)

// at calls the At hook, if any.
func (c *Controller) at(h Hook) {
	if c.At != nil {
		c.At(h)
	}
}

// DefaultCopyWorkers is how many tables a source copies at once unless
// told otherwise: enough to keep a source's and a target's disks and
// cores busy while each COPY waits on the other side.
const DefaultCopyWorkers = 4

// recordEvery is how often progress (bytes copied, stream positions and
// lag) is written to the record, and how often the controller looks for
// an operator's request.
const recordEvery = time.Second

// retryAfter is the wait before a step that failed is tried again.
const retryAfter = 2 * time.Second

// errRequested stops a step when an operator's request came.
var errRequested = errors.New("an operator's request came")

// Run waits until it holds the workflow's lock and then drives the
// workflow until it ended (Run returns nil), ctx ends or the lock is lost.
// A step that fails is recorded and tried again.
func (c *Controller) Run(ctx context.Context) error {
	lock, err := c.Store.LockWorkflow(ctx, c.Name, c.LockTTL)
	if err != nil {
		return err
	}
	return c.drive(ctx, lock)
}

// RunIfFree is Run when no other controller drives the workflow, else it
// returns topology.ErrConflict (wrapped) at once.
func (c *Controller) RunIfFree(ctx context.Context) error {
	lock, err := c.Store.TryLockWorkflow(ctx, c.Name, c.LockTTL)
	if err != nil {
		return err
	}
	return c.drive(ctx, lock)
}

func (c *Controller) drive(ctx context.Context, lock *topology.WorkflowLock) error {
	defer lock.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-lock.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	d := &driver{Controller: c, lock: lock, throttle: newThrottle()}
	measured := make(chan struct{})
	go d.watchThrottle(ctx, measured)
	select {
	case <-measured: // the copy starts held if it must
	case <-ctx.Done():
	}
	var told topology.WorkflowPhase
	for {
		w, err := lock.Update(ctx, func(w *topology.Workflow) error {
			w.Controller = c.ID
			return nil
		})
		switch {
		case errors.Is(err, topology.ErrNotFound):
			return nil // cancelled
		case err != nil:
			return c.stopped(ctx, lock, err)
		}
		if w.Phase != told && c.OnPhase != nil {
			c.OnPhase(w.Phase)
		}
		told = w.Phase
		switch {
		case w.Request == topology.RequestCancel && !Cancellable(w):
			_, err = lock.Update(ctx, func(w *topology.Workflow) error {
				w.Request = ""
				w.Error = fmt.Sprintf("cancel refused: %s", notCancellable(w))
				return nil
			})
		case w.Request == topology.RequestCancel:
			err = d.cancel(ctx, w)
			if err == nil {
				return nil
			}
		case w.Request == topology.RequestComplete && w.Phase != topology.PhaseCutOver:
			_, err = lock.Update(ctx, func(w *topology.Workflow) error {
				w.Request = ""
				w.Error = fmt.Sprintf("complete refused: workflow %s is in phase %s, complete needs every batch cut over (%s)", w.Name, w.Phase, topology.PhaseCutOver)
				return nil
			})
		case w.Request == topology.RequestComplete:
			err = d.complete(ctx, w)
			if err == nil {
				return nil
			}
		case w.Phase == topology.PhasePlanned:
			_, err = lock.Update(ctx, func(w *topology.Workflow) error {
				w.Phase = topology.PhaseCopying
				w.CopyStarted = time.Now().UTC()
				return nil
			})
		case w.Phase == topology.PhaseCopying:
			err = d.copy(ctx, w)
		case w.Phase == topology.PhaseCatchingUp, w.Phase == topology.PhaseCuttingOver, w.Phase == topology.PhaseCutOver:
			err = d.catchUp(ctx, w)
		default:
			return fmt.Errorf("workflow %s is in phase %s, which this version of shardgate does not drive", w.Name, w.Phase)
		}
		if errors.Is(err, errRequested) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return c.stopped(ctx, lock, ctx.Err())
			}
			c.Log.Warn("workflow step failed; retrying", zap.String("workflow", c.Name), zap.String("phase", string(w.Phase)), zap.Error(err))
			if _, uerr := lock.Update(ctx, func(w *topology.Workflow) error {
				w.Error = err.Error()
				return nil
			}); uerr != nil {
				return c.stopped(ctx, lock, uerr)
			}
			select {
			case <-ctx.Done():
				return c.stopped(ctx, lock, ctx.Err())
			case <-time.After(retryAfter):
			}
		}
	}
}

// stopped returns err, first taking this controller's name off the record
// when it still can.
func (c *Controller) stopped(ctx context.Context, lock *topology.WorkflowLock, err error) error {
	if errors.Is(err, topology.ErrLockLost) {
		return err
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_, _ = lock.Update(uctx, func(w *topology.Workflow) error {
		w.Controller = ""
		return nil
	})
	return err
}

// driver is one controller's hold on its workflow.
type driver struct {
	*Controller
	lock  *topology.WorkflowLock
	flows *flows // while catching up and cutting over
	// throttle backs the copy and the streams off (see topology.Throttle).
	throttle *throttle
	// gateHeld is the reason the shadow gate last held the cutover for,
	// logged once; "" while it does not hold it.
	gateHeld string
}

// world is what a step reads of the topology: the keyspace's vschema and
// map, and the shards.
type world struct {
	snap *topology.Snapshot
	ks   *topology.Keyspace
	vs   *vschema.Keyspace
}

func (d *driver) world(ctx context.Context, w *topology.Workflow) (*world, error) {
	snap, err := d.Store.Load(ctx)
	if err != nil {
		return nil, err
	}
	ks := snap.Keyspace(w.Keyspace)
	if ks == nil {
		return nil, fmt.Errorf("keyspace %s does not exist any more", w.Keyspace)
	}
	if ks.VSchema() == nil {
		return nil, fmt.Errorf("keyspace %s has no vschema", w.Keyspace)
	}
	for _, mv := range w.Moves {
		for _, s := range []string{mv.From, mv.To} {
			if snap.Shards[s] == nil {
				return nil, fmt.Errorf("shard %s is not registered any more", s)
			}
		}
	}
	return &world{snap: snap, ks: ks, vs: ks.VSchema()}, nil
}

func (x *world) connect(ctx context.Context, shard string) (*pgconn.PgConn, error) {
	return Connect(ctx, x.snap.Shards[shard])
}

// tables lists the keyspace's tables in order.
func (x *world) tables() []string { return slices.Sorted(maps.Keys(x.vs.Tables)) }

// sources and targets list the workflow's source and target shards.
func sources(w *topology.Workflow) []string {
	return distinct(w.Moves, func(mv topology.Move) string { return mv.From })
}

func targets(w *topology.Workflow) []string {
	return distinct(w.Moves, func(mv topology.Move) string { return mv.To })
}

func distinct(moves []topology.Move, of func(topology.Move) string) []string {
	var out []string
	for _, mv := range moves {
		if s := of(mv); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// runsFrom are the workflow's runs that leave source.
func runsFrom(w *topology.Workflow, source string) []Run {
	var out []Run
	for _, r := range Runs(w.Moves) {
		if r.From == source {
			out = append(out, r)
		}
	}
	return out
}

// slotName names the slot and the publication of workflow on source: a
// lower-case identifier unique per workflow and source.
func slotName(workflow, source string) string {
	if len(workflow) > 40 {
		workflow = workflow[:40]
	}
	return fmt.Sprintf("sg_%s_%08x", workflow, crc32.ChecksumIEEE([]byte(workflow+"/"+source)))
}

// watchRequests cancels the returned context when an operator asks for a
// cancel or a complete (or ctx ends); stop ends the watch.
func (d *driver) watchRequests(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(recordEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if w, err := d.Store.Workflow(ctx, d.Name); err == nil && (w.Request == topology.RequestCancel || w.Request == topology.RequestComplete) {
				cancel(errRequested)
				return
			}
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}

// copy makes the keyspace's tables on the targets and seeds each source
// not seeded yet (the sources at once), then moves the workflow on to
// catching up.
func (d *driver) copy(ctx context.Context, w *topology.Workflow) error {
	x, err := d.world(ctx, w)
	if err != nil {
		return err
	}
	if err := d.markCopies(ctx, w); err != nil {
		return err
	}
	if err := d.makeTables(ctx, w, x); err != nil {
		return err
	}
	work, stop := d.watchRequests(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make([]error, len(sources(w)))
	for i, source := range sources(w) {
		if p := w.Sources[source]; p != nil && p.Seeded {
			continue
		}
		wg.Go(func() { errs[i] = d.seed(work, w, x, source) })
	}
	wg.Wait()
	if cause := context.Cause(work); errors.Is(cause, errRequested) {
		return errRequested
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	_, err = d.lock.Update(ctx, func(w *topology.Workflow) error {
		w.Phase = topology.PhaseCatchingUp
		w.Error = ""
		return nil
	})
	return err
}

// markCopies records on the topology that the targets will hold rows of
// logical shards they do not own, and waits until every gateway applied
// that: a statement over several shards must pass over those rows on a
// target that owns other logical shards from the first row copied.
func (d *driver) markCopies(ctx context.Context, w *topology.Workflow) error {
	incoming := map[string][]int{}
	for _, mv := range w.Moves {
		incoming[mv.To] = append(incoming[mv.To], mv.Logical)
	}
	var rev int64
	for _, target := range targets(w) {
		r, err := d.Store.AddCopies(ctx, w.Keyspace, target, incoming[target])
		if err != nil {
			return err
		}
		rev = max(rev, r)
	}
	return d.waitGateways(ctx, fmt.Sprintf("apply revision %d", rev), func(a topology.GatewayApplied) bool { return a.Revision >= rev })
}

// makeTables makes the keyspace's tables on every target, recording first
// which ones a target lacks (a cancel drops those).
func (d *driver) makeTables(ctx context.Context, w *topology.Workflow, x *world) error {
	src, err := x.connect(ctx, sources(w)[0])
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	for _, target := range targets(w) {
		dst, err := x.connect(ctx, target)
		if err != nil {
			return err
		}
		err = func() error {
			defer dst.Close(context.Background())
			var missing []string
			for _, name := range x.tables() {
				cols, err := columnTypes(ctx, dst, name)
				if err != nil {
					return err
				}
				if len(cols) == 0 {
					missing = append(missing, name)
				}
			}
			if len(missing) > 0 {
				if _, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
					if w.CreatedTables == nil {
						w.CreatedTables = map[string][]string{}
					}
					for _, name := range missing {
						if !slices.Contains(w.CreatedTables[target], name) {
							w.CreatedTables[target] = append(w.CreatedTables[target], name)
						}
					}
					return nil
				}); err != nil {
					return err
				}
			}
			return CreateTables(ctx, src, dst, x.tables())
		}()
		if err != nil {
			return fmt.Errorf("target %s: %w", target, err)
		}
	}
	return nil
}

// seed copies one source's moving rows: whatever a controller before left
// of its slot is dropped, the slot made anew, and every range copied under
// its snapshot, the progress recorded as it goes.
func (d *driver) seed(ctx context.Context, w *topology.Workflow, x *world, source string) error {
	name := slotName(w.Name, source)
	if _, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
		if w.Sources == nil {
			w.Sources = map[string]*topology.SourceProgress{}
		}
		w.Sources[source] = &topology.SourceProgress{Slot: name, Publication: name}
		return nil
	}); err != nil {
		return err
	}
	cfg, err := ShardConfig(x.snap.Shards[source])
	if err != nil {
		return err
	}
	src, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("shard %s: %w", source, err)
	}
	err = DropSlot(ctx, src, name, name)
	src.Close(context.Background())
	if err != nil {
		return err
	}
	runs := runsFrom(w, source)
	conns := map[string]*pgconn.PgConn{}
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	for _, r := range runs {
		if conns[r.To] == nil {
			conn, err := x.connect(ctx, r.To)
			if err != nil {
				return fmt.Errorf("target %s: %w", r.To, err)
			}
			conns[r.To] = conn
		}
	}
	var mu sync.Mutex
	copied := map[string]topology.Size{}
	snapshot := func() map[string]topology.Size {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(copied)
	}
	record := func(ctx context.Context, done bool, consistent pglogrepl.LSN, took time.Duration) error {
		now := snapshot()
		_, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
			p := w.Sources[source]
			if p == nil {
				return fmt.Errorf("source %s vanished from the record", source)
			}
			p.Copied = now
			if done {
				p.Seeded, p.Consistent, p.Flushed, p.CopySeconds = true, consistent.String(), consistent.String(), took.Seconds()
			}
			return nil
		})
		return err
	}
	stopRecording := make(chan struct{})
	var recorder sync.WaitGroup
	recorder.Go(func() {
		t := time.NewTicker(recordEvery)
		defer t.Stop()
		for {
			select {
			case <-stopRecording:
				return
			case <-t.C:
				_ = record(ctx, false, 0, 0) // the next one or the last says it again
			}
		}
	})
	started := time.Now()
	member := map[string]bool{}
	for _, shard := range x.ks.Shards() {
		member[shard] = true
	}
	workers := d.CopyWorkers
	if workers <= 0 {
		workers = DefaultCopyWorkers
	}
	seed := &Seed{Source: cfg, Keyspace: x.vs, LogicalCount: x.ks.Map.LogicalCount, Runs: runs, Targets: conns, Workers: workers, Connect: x.connect, NoReference: member,
		Slot: name, Publication: name, Progress: func(table string, written topology.Size) {
			mu.Lock()
			c := copied[table]
			c.Rows += written.Rows
			c.Bytes += written.Bytes
			copied[table] = c
			mu.Unlock()
		}, Pace: d.throttle.wait}
	seeded, err := seed.Copy(ctx)
	close(stopRecording)
	recorder.Wait()
	if err != nil {
		return fmt.Errorf("copying from %s: %w", source, err)
	}
	d.Log.Info("source copied", zap.String("workflow", w.Name), zap.String("source", source),
		zap.Any("rows", seeded.Rows), zap.Duration("took", time.Since(started)))
	if err := record(ctx, true, seeded.Slot.Consistent, time.Since(started)); err != nil {
		return err
	}
	d.at(HookAfterSeed)
	return nil
}

// Cancellable reports whether w can be cancelled: no batch of it cut over
// yet.
func Cancellable(w *topology.Workflow) bool {
	switch w.Phase {
	case topology.PhasePlanned, topology.PhaseCopying, topology.PhaseCatchingUp:
		return true
	case topology.PhaseCuttingOver:
		for _, b := range w.Batches {
			if b.Done {
				return false
			}
		}
		return true
	}
	return false
}

func notCancellable(w *topology.Workflow) string {
	return fmt.Sprintf("workflow %s is in phase %s and writes of some of its logical shards go to their targets already: cancel applies only before the first write cutover", w.Name, w.Phase)
}

// cancel undoes a workflow that no write cutover touched yet: the slots
// and publications go from the sources, the tables the workflow made from
// the targets, the rows it copied from the tables that were there before;
// then its record goes.
func (d *driver) cancel(ctx context.Context, w *topology.Workflow) error {
	if !Cancellable(w) {
		return errors.New(notCancellable(w))
	}
	if w.Phase == topology.PhasePlanned {
		// Nothing was made anywhere, and no reads can have gone to the
		// targets; what a gateway may have reported goes with the record.
		if err := d.Store.ClearReadTraffic(ctx, w.Keyspace, w.Name); err != nil {
			return err
		}
		return d.lock.Delete(ctx)
	}
	if w.Fence != "" {
		if err := d.liftFence(ctx, w.Keyspace, w.Fence); err != nil {
			return err
		}
	}
	if err := d.clearReads(ctx, w); err != nil {
		return err
	}
	x, err := d.world(ctx, w)
	if err != nil {
		return err
	}
	if err := dropSlots(ctx, w, x); err != nil {
		return err
	}
	var moved []int
	for _, mv := range w.Moves {
		moved = append(moved, mv.Logical)
	}
	for _, target := range targets(w) {
		if err := d.clearTarget(ctx, w, x, target); err != nil {
			return fmt.Errorf("target %s: %w", target, err)
		}
		// Writes that moved there and back left it holding copies.
		if _, err := d.Store.DropCopies(ctx, w.Keyspace, target, moved); err != nil {
			return err
		}
	}
	d.Log.Info("workflow cancelled", zap.String("workflow", w.Name))
	return d.lock.Delete(ctx)
}

// clearReadsWait bounds the wait for the gateways to stop sending reads
// to a workflow's targets before they are changed; a gateway slower than
// that stops on its own once the targets' streams fall behind.
const clearReadsWait = 30 * time.Second

// clearReads takes w's read traffic (shadow reads and reads switched to
// the targets) and its shadow reports off the topology. While the
// traffic sent reads to the targets, it first turns them off and waits,
// for at most clearReadsWait, until every gateway applied that, so that
// no read goes to a target while its slot is dropped or its rows deleted.
func (d *driver) clearReads(ctx context.Context, w *topology.Workflow) error {
	t, err := d.Store.ReadTrafficOf(ctx, w.Keyspace)
	if err != nil {
		return err
	}
	if t != nil && t.Workflow == w.Name && (t.ReadPercent > 0 || t.ShadowPercent > 0) {
		// A deletion has no revision to wait for; this write has.
		rev, err := d.Store.SetReadTraffic(ctx, w.Keyspace, w.Name, func(t *topology.ReadTraffic) error {
			t.ReadPercent, t.ShadowPercent = 0, 0
			return nil
		})
		switch {
		case errors.Is(err, topology.ErrConflict):
			// Cleared meanwhile, and another workflow steers them now.
		case err != nil:
			return err
		default:
			wctx, cancel := context.WithTimeout(ctx, clearReadsWait)
			err := d.waitGateways(wctx, fmt.Sprintf("apply revision %d", rev), func(a topology.GatewayApplied) bool { return a.Revision >= rev })
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				d.Log.Warn("a gateway is slow to stop sending reads to the targets; going on", zap.String("workflow", w.Name), zap.Error(err))
			}
		}
	}
	return d.Store.ClearReadTraffic(ctx, w.Keyspace, w.Name)
}

// clearTarget drops the tables the workflow made on target and deletes
// the moved ranges from the sharded tables that were there before.
func (d *driver) clearTarget(ctx context.Context, w *topology.Workflow, x *world, target string) error {
	dst, err := x.connect(ctx, target)
	if err != nil {
		return err
	}
	defer dst.Close(context.Background())
	created := w.CreatedTables[target]
	var stmts []string
	if len(created) > 0 {
		quoted := make([]string, len(created))
		for i, name := range created {
			quoted[i] = quoteName(name)
		}
		stmts = append(stmts, "DROP TABLE IF EXISTS "+strings.Join(quoted, ", "))
	}
	for _, name := range x.tables() {
		t := x.vs.Tables[name]
		if slices.Contains(created, name) || t.Kind == vschema.Reference {
			continue
		}
		for _, r := range Runs(w.Moves) {
			if r.To == target {
				lo, hi := KeyRange(x.ks.Map.LogicalCount, r.First, r.Last)
				stmts = append(stmts, "DELETE FROM "+quoteName(name)+" WHERE "+inRange(t, lo, hi))
			}
		}
	}
	if len(stmts) == 0 {
		return nil
	}
	_, err = dst.Exec(ctx, "BEGIN;\n"+strings.Join(stmts, ";\n")+";\nCOMMIT").ReadAll()
	return err
}

// dropSlots drops every slot and publication of the workflow: the
// forward ones on the sources, the reverse ones on the targets.
func dropSlots(ctx context.Context, w *topology.Workflow, x *world) error {
	drop := func(shard string, p *topology.SourceProgress) error {
		conn, err := x.connect(ctx, shard)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		if err := DropSlot(ctx, conn, p.Slot, p.Publication); err != nil {
			return fmt.Errorf("shard %s: %w", shard, err)
		}
		return nil
	}
	for _, source := range slices.Sorted(maps.Keys(w.Sources)) {
		if err := drop(source, w.Sources[source]); err != nil {
			return err
		}
	}
	for _, target := range reverseSlots(w) {
		if err := drop(target, w.Reverse[target]); err != nil {
			return err
		}
	}
	return nil
}

// deleteBatch is how many rows complete deletes from a source per
// statement, so that no lock is held long.
const deleteBatch = 5000

// complete ends a workflow whose every batch is cut over: the slots and
// publications go from the sources, then the moved rows, a few thousand
// at a time; the sources stop being recorded as holding copies, and the
// record goes. Each step can be done again after a crash.
func (d *driver) complete(ctx context.Context, w *topology.Workflow) error {
	if err := d.clearReads(ctx, w); err != nil {
		return err
	}
	x, err := d.world(ctx, w)
	if err != nil {
		return err
	}
	if err := dropSlots(ctx, w, x); err != nil {
		return err
	}
	for _, source := range sources(w) {
		src, err := x.connect(ctx, source)
		if err != nil {
			return err
		}
		err = func() error {
			defer src.Close(context.Background())
			var moved []int
			for _, r := range runsFrom(w, source) {
				lo, hi := KeyRange(x.ks.Map.LogicalCount, r.First, r.Last)
				for l := r.First; l <= r.Last; l++ {
					moved = append(moved, l)
				}
				for _, name := range x.tables() {
					t := x.vs.Tables[name]
					if t.Kind == vschema.Reference {
						continue
					}
					n, err := deleteRange(ctx, src, name, inRange(t, lo, hi))
					if err != nil {
						return fmt.Errorf("deleting the moved rows of %s: %w", name, err)
					}
					d.Log.Info("moved rows deleted from the source", zap.String("workflow", w.Name), zap.String("source", source), zap.String("table", name), zap.Int64("rows", n))
				}
			}
			_, err := d.Store.DropCopies(ctx, w.Keyspace, source, moved)
			return err
		}()
		if err != nil {
			return fmt.Errorf("source %s: %w", source, err)
		}
	}
	d.Log.Info("workflow completed", zap.String("workflow", w.Name))
	return d.lock.Delete(ctx)
}

// deleteRange deletes the rows of table that match cond, deleteBatch at a
// time, and returns how many.
func deleteRange(ctx context.Context, conn *pgconn.PgConn, table, cond string) (int64, error) {
	q := fmt.Sprintf("DELETE FROM %[1]s WHERE ctid = ANY (ARRAY(SELECT ctid FROM %[1]s WHERE %[2]s LIMIT %[3]d))", quoteName(table), cond, deleteBatch)
	var total int64
	for {
		tag, err := conn.Exec(ctx, q).ReadAll()
		if err != nil {
			return total, err
		}
		n := tag[0].CommandTag.RowsAffected()
		total += n
		if n == 0 {
			return total, nil
		}
	}
}
