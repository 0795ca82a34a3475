package migrate

import (
	"context"
	"errors"
	"fmt"
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

// flow is one change stream of a workflow: forward, from a source to the
// targets of its logical shards not cut over yet, or reverse, from a
// target back to the sources of its batches cut over, so that the sources
// stay complete until the workflow completes and writes can move back.
type flow struct {
	shard   string // where its slot is
	reverse bool
}

func (f flow) String() string {
	if f.reverse {
		return "reverse stream from " + f.shard
	}
	return "stream from " + f.shard
}

// progress is the flow's part of the record, nil before its slot exists.
func (f flow) progress(w *topology.Workflow) *topology.SourceProgress {
	if f.reverse {
		return w.Reverse[f.shard]
	}
	return w.Sources[f.shard]
}

// flipped reports whether batch b's writes moved (or are moving) to its
// target: its changes flow back from there.
func flipped(b topology.Batch) bool { return b.FlipLSN != "" && b.BackLSN == "" }

// targets are where the flow applies now, and conns the shards it may
// apply to over its life.
func (f flow) targets(w *topology.Workflow, logicalCount int) (targets []Target, conns []string) {
	if f.reverse {
		for _, b := range w.Batches {
			if b.To != f.shard {
				continue
			}
			if !slices.Contains(conns, b.From) {
				conns = append(conns, b.From)
			}
			if flipped(b) {
				lo, hi := KeyRange(logicalCount, b.First, b.Last)
				after, _ := pglogrepl.ParseLSN(b.FlipLSN)
				targets = append(targets, Target{Lo: lo, Hi: hi, Shard: b.From, After: after})
			}
		}
		return targets, conns
	}
	away := map[int]bool{}          // logical shards whose writes moved
	back := map[int]pglogrepl.LSN{} // logical shards whose writes moved back, and where
	for _, b := range w.Batches {
		for l := b.First; l <= b.Last; l++ {
			switch {
			case flipped(b):
				away[l] = true
			case b.BackLSN != "":
				back[l], _ = pglogrepl.ParseLSN(b.BackLSN) // not what the reverse stream applied
			}
		}
	}
	for _, r := range runsFrom(w, f.shard) {
		if !slices.Contains(conns, r.To) {
			conns = append(conns, r.To)
		}
		for first := r.First; first <= r.Last; first++ {
			if away[first] {
				continue
			}
			last := first
			for last < r.Last && !away[last+1] && back[last+1] == back[first] {
				last++
			}
			lo, hi := KeyRange(logicalCount, first, last)
			targets = append(targets, Target{Lo: lo, Hi: hi, Shard: r.To, After: back[first]})
			first = last
		}
	}
	return targets, conns
}

// flows is the streams a controller runs while catching up and cutting
// over.
type flows struct {
	ctx     context.Context
	wg      sync.WaitGroup
	mu      sync.Mutex
	running map[flow]*Stream // nil while a flow is between streams
	// kept are connections to shards kept for the cutover's steps.
	kept map[string]*pgconn.PgConn
}

// launch starts flow f unless it runs.
func (d *driver) launch(f flow) {
	fl := d.flows
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if _, ok := fl.running[f]; ok {
		return
	}
	fl.running[f] = nil
	fl.wg.Go(func() { d.follow(fl.ctx, f) })
}

func (d *driver) setStream(f flow, s *Stream) {
	d.flows.mu.Lock()
	defer d.flows.mu.Unlock()
	d.flows.running[f] = s
}

// streamOf returns the stream that runs for flow f now, nil if none.
func (d *driver) streamOf(f flow) *Stream {
	d.flows.mu.Lock()
	defer d.flows.mu.Unlock()
	return d.flows.running[f]
}

// eachStream calls f with every stream running now.
func (d *driver) eachStream(f func(flow, *Stream)) {
	d.flows.mu.Lock()
	defer d.flows.mu.Unlock()
	for fl, s := range d.flows.running {
		if s != nil {
			f(fl, s)
		}
	}
}

// catchUp runs the workflow's streams until an operator's request stops
// them, restarting a stream that fails, and records positions and lag;
// beside them it carries out the write cutover once asked.
func (d *driver) catchUp(ctx context.Context, w *topology.Workflow) error {
	x, err := d.world(ctx, w)
	if err != nil {
		return err
	}
	work, stop := d.watchRequests(ctx)
	defer stop()
	streamCtx, stopStreams := context.WithCancel(work)
	d.flows = &flows{ctx: streamCtx, running: map[flow]*Stream{}, kept: map[string]*pgconn.PgConn{}}
	defer func() {
		for _, c := range d.flows.kept {
			c.Close(context.Background())
		}
	}()
	for _, source := range sources(w) {
		d.launch(flow{shard: source})
	}
	for target, p := range w.Reverse {
		if p.Seeded {
			d.launch(flow{shard: target, reverse: true})
		}
	}
	err = d.cutovers(work, x)
	stopStreams()
	d.flows.wg.Wait()
	if errors.Is(context.Cause(work), errRequested) {
		return errRequested
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// follow runs flow f until ctx ends, starting a new stream from its slot,
// as the record says then, whenever one fails.
func (d *driver) follow(ctx context.Context, f flow) {
	for ctx.Err() == nil {
		var s *Stream
		var p *topology.SourceProgress
		w, err := d.Store.Workflow(ctx, d.Name)
		if err == nil {
			if p = f.progress(w); p == nil {
				err = fmt.Errorf("%s: no slot recorded", f)
			}
		}
		if err == nil {
			s, err = d.stream(ctx, w, f)
		}
		if err == nil {
			peak := p.PeakLagBytes
			d.setStream(f, s)
			err = d.runStream(ctx, s, f, p.Applied, &peak)
			d.setStream(f, nil)
		}
		if ctx.Err() != nil {
			return
		}
		d.Log.Warn("change stream stopped; restarting", zap.String("workflow", d.Name), zap.Stringer("flow", f), zap.Error(err))
		_, _ = d.lock.Update(ctx, func(w *topology.Workflow) error {
			w.Error = fmt.Sprintf("%s: %v", f, err)
			return nil
		})
		select {
		case <-ctx.Done():
		case <-time.After(retryAfter):
		}
	}
}

// stream opens the connections of a new stream of flow f, from where its
// slot confirmed.
func (d *driver) stream(ctx context.Context, w *topology.Workflow, f flow) (*Stream, error) {
	snap, err := d.Store.Load(ctx)
	if err != nil {
		return nil, err
	}
	ks := snap.Keyspace(w.Keyspace)
	if ks == nil || ks.VSchema() == nil {
		return nil, fmt.Errorf("keyspace %s has no vschema", w.Keyspace)
	}
	x := &world{snap: snap, ks: ks, vs: ks.VSchema()}
	cfg, err := ShardConfig(snap.Shards[f.shard])
	if err != nil {
		return nil, err
	}
	p := f.progress(w)
	start, _ := pglogrepl.ParseLSN(p.Flushed)
	s := &Stream{Slot: p.Slot, Publication: p.Publication, Start: start, Keyspace: x.vs, Conns: map[string]*pgconn.PgConn{}, Hold: d.throttle.holding}
	targets, conns := f.targets(w, ks.Map.LogicalCount)
	s.Targets = targets
	for _, shard := range conns {
		if s.Conns[shard], err = x.connect(ctx, shard); err != nil {
			for _, c := range s.Conns {
				if c != nil {
					c.Close(context.Background())
				}
			}
			return nil, err
		}
	}
	// Shards of the keyspace now (before the workflow, or since a batch
	// of it cut over) get reference tables from the gateways.
	for _, shard := range ks.Shards() {
		s.StopReference(shard)
	}
	if s.Source, err = x.connect(ctx, f.shard); err == nil {
		if s.Replication, err = pgconn.ConnectConfig(ctx, ReplicationConfig(cfg)); err != nil {
			s.Source.Close(context.Background())
			err = fmt.Errorf("shard %s, for replication: %w", f.shard, err)
		}
	}
	if err != nil {
		for _, c := range s.Conns {
			c.Close(context.Background())
		}
		return nil, err
	}
	return s, nil
}

// runStream runs s, recording its position and lag as it goes; applied is
// what streams of the flow applied before it, peak the most lag seen.
func (d *driver) runStream(ctx context.Context, s *Stream, f flow, applied int64, peak *int64) error {
	defer func() {
		for _, c := range s.Conns {
			c.Close(context.Background())
		}
		s.Source.Close(context.Background())
	}()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t := time.NewTicker(recordEvery)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
		}
		*peak = max(*peak, s.LagBytes())
		flushed, lag, lagSeconds, total, top := s.Flushed(), s.LagBytes(), s.LagSeconds(), applied+s.Applied(), *peak
		if _, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
			p := f.progress(w)
			if p == nil {
				return nil
			}
			if was, _ := pglogrepl.ParseLSN(p.Flushed); flushed > was {
				p.Flushed = flushed.String()
			}
			p.LagBytes, p.LagSeconds, p.Applied, p.PeakLagBytes = lag, lagSeconds, total, top
			if strings.HasPrefix(w.Error, f.String()+":") {
				w.Error = ""
			}
			return nil
		}); err != nil && ctx.Err() == nil {
			d.Log.Warn("recording the stream's progress", zap.String("workflow", d.Name), zap.Error(err))
		}
	}
}

// ensureReverse makes, on every target that has none yet, the slot and
// the publication of its reverse stream, and starts the stream. It runs
// before the first batch cuts over: the slot's changes from then on
// include every write the gateways make there.
func (d *driver) ensureReverse(ctx context.Context, w *topology.Workflow, x *world) error {
	var sharded []string
	for _, name := range x.tables() {
		if x.vs.Tables[name].Kind != vschema.Reference {
			sharded = append(sharded, name)
		}
	}
	for _, target := range targets(w) {
		if p := w.Reverse[target]; p != nil && p.Seeded {
			d.launch(flow{shard: target, reverse: true})
			continue
		}
		name := slotName(w.Name, "reverse:"+target)
		if _, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
			if w.Reverse == nil {
				w.Reverse = map[string]*topology.SourceProgress{}
			}
			w.Reverse[target] = &topology.SourceProgress{Slot: name, Publication: name}
			return nil
		}); err != nil {
			return err
		}
		lsn, err := makeSlot(ctx, x, target, name, sharded)
		if err != nil {
			return fmt.Errorf("reverse slot on %s: %w", target, err)
		}
		if _, err := d.lock.Update(ctx, func(w *topology.Workflow) error {
			p := w.Reverse[target]
			p.Seeded, p.Consistent, p.Flushed = true, lsn.String(), lsn.String()
			return nil
		}); err != nil {
			return err
		}
		d.launch(flow{shard: target, reverse: true})
	}
	return nil
}

// makeSlot makes (again) publication and slot name on shard for tables,
// and returns the slot's consistent point.
func makeSlot(ctx context.Context, x *world, shard, name string, tables []string) (pglogrepl.LSN, error) {
	conn, err := x.connect(ctx, shard)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	if err := DropSlot(ctx, conn, name, name); err != nil {
		return 0, err
	}
	cfg, err := ShardConfig(x.snap.Shards[shard])
	if err != nil {
		return 0, err
	}
	repl, err := pgconn.ConnectConfig(ctx, ReplicationConfig(cfg))
	if err != nil {
		return 0, fmt.Errorf("shard %s, for replication: %w", shard, err)
	}
	defer repl.Close(context.Background())
	slot, err := CreateSlot(ctx, conn, repl, name, name, tables)
	if err != nil {
		return 0, err
	}
	return slot.Consistent, nil
}

// reverseSlots lists the reverse slots of w by target, sorted.
func reverseSlots(w *topology.Workflow) []string { return slices.Sorted(maps.Keys(w.Reverse)) }
