package proxy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/topology"
)

// fenceHoldMax bounds how long a statement waits behind a fence. A
// workflow's controller lifts its fence long before (it gives up a
// cutover after a few seconds); this is for a controller that died with
// its fence up, until the next one lifts it.
const fenceHoldMax = time.Minute

// codeLockNotAvailable answers a statement held past fenceHoldMax.
const codeLockNotAvailable = "55P03"

// fences is what this gateway does with the write fences of reshard
// cutovers (topology.Fence). A statement that may write, and every
// statement in a transaction, is an activity of its keyspace from its
// gate until the session is idle outside a transaction again; each
// activity is counted under the keyspace's epoch it began in. A fence
// starts a new epoch: activities that begin under it and reach a fenced
// logical shard wait until it is lifted, and the fence is drained once
// every activity of the epochs before it ended — no write of those can
// reach the fenced logical shards' old place any more. What is drained is
// published for the controller (State). Safe for concurrent use.
type fences struct {
	mu       sync.Mutex
	byKS     map[string]*keyspaceFence
	revision int64 // of the snapshot applied last
	// changed gets a value (without blocking) whenever State changes.
	changed chan struct{}
}

type keyspaceFence struct {
	epoch uint64
	open  map[uint64]int // activities open, per epoch they began in
	cur   *fence         // nil when no fence is up
}

type fence struct {
	id      string
	epoch   uint64
	logical map[int]bool
	lifted  chan struct{}
	drained bool
}

func newFences() *fences {
	return &fences{byKS: map[string]*keyspaceFence{}, changed: make(chan struct{}, 1)}
}

func (f *fences) keyspace(name string) *keyspaceFence {
	k := f.byKS[name]
	if k == nil {
		k = &keyspaceFence{open: map[uint64]int{}}
		f.byKS[name] = k
	}
	return k
}

func (f *fences) signal() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// Apply raises and lifts fences as snap has them.
func (f *fences) Apply(snap *topology.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if snap == nil || snap.Revision < f.revision {
		return // an older one, installed before
	}
	for name, k := range f.byKS {
		if ks := snap.Keyspace(name); (ks == nil || ks.Fence == nil) && k.cur != nil {
			close(k.cur.lifted)
			k.cur = nil
		}
	}
	for name, ks := range snap.Keyspaces {
		if ks.Fence == nil {
			continue
		}
		k := f.keyspace(name)
		if k.cur != nil && k.cur.id == ks.Fence.ID {
			continue
		}
		if k.cur != nil {
			close(k.cur.lifted)
		}
		k.epoch++
		k.cur = &fence{id: ks.Fence.ID, epoch: k.epoch, logical: map[int]bool{}, lifted: make(chan struct{})}
		for _, l := range ks.Fence.Logical {
			k.cur.logical[l] = true
		}
		k.checkDrained()
	}
	f.revision = snap.Revision
	f.signal()
}

// checkDrained marks the fence drained once no activity of an earlier
// epoch is open. f.mu must be held.
func (k *keyspaceFence) checkDrained() {
	if k.cur == nil || k.cur.drained {
		return
	}
	for epoch, n := range k.open {
		if epoch < k.cur.epoch && n > 0 {
			return
		}
	}
	k.cur.drained = true
}

// State is what this gateway applied: the snapshot's revision and the
// fences drained.
func (f *fences) State() topology.GatewayApplied {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := topology.GatewayApplied{Revision: f.revision, Fences: map[string]string{}}
	for name, k := range f.byKS {
		if k.cur != nil && k.cur.drained {
			a.Fences[name] = k.cur.id
		}
	}
	return a
}

// Changed gets a value whenever State may have changed.
func (f *fences) Changed() <-chan struct{} { return f.changed }

// activity is a session's open activity: its keyspace and epoch.
type activity struct {
	ks    string
	epoch uint64
}

// enlist opens an activity of keyspace ks in its current epoch and returns
// the fence it must respect: nil when none is up or when the fence came
// after the activity began.
func (f *fences) enlist(ks string) (activity, *fence) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keyspace(ks)
	k.open[k.epoch]++
	return activity{ks, k.epoch}, k.cur
}

// delist ends an activity.
func (f *fences) delist(a activity) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.byKS[a.ks]
	if k.open[a.epoch]--; k.open[a.epoch] <= 0 {
		delete(k.open, a.epoch)
	}
	if k.cur != nil && !k.cur.drained && a.epoch < k.cur.epoch {
		k.checkDrained()
		if k.cur.drained {
			f.signal()
		}
	}
}

// current returns keyspace ks's fence for an activity of epoch: the one
// up, if it came no earlier than the activity.
func (f *fences) current(ks string, epoch uint64) *fence {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.byKS[ks]
	if k == nil || k.cur == nil || k.cur.epoch > epoch {
		return nil
	}
	return k.cur
}

// fenceProbe is a Topology that notes whether a statement's targets reach
// a fenced logical shard, resolving them as ks does.
type fenceProbe struct {
	ks    *topology.Keyspace
	fence *fence
	hit   bool
}

func (p *fenceProbe) ShardFor(h int64) string {
	if p.fence.logical[p.ks.Map.LogicalShard(h)] {
		p.hit = true
	}
	return p.ks.ShardFor(h)
}

func (p *fenceProbe) Shards() []string {
	p.hit = true // every logical shard
	return p.ks.Shards()
}

// reaches reports whether st, with args, may reach a logical shard
// behind fence fc.
func reaches(st *planner.Statement, ks *topology.Keyspace, args engine.Params, fc *fence) bool {
	if st.Root == nil {
		// COPY and the like: no plan to resolve; any that writes may
		// reach every logical shard.
		return !st.ReadOnly
	}
	p := &fenceProbe{ks: ks, fence: fc}
	engine.Shards(st.Root, p, args)
	return p.hit
}

// passFences is the gate of statements sts (with args) before they run:
// it opens the session's activity if it may write or is in a transaction,
// and holds the statements while a fence that came after the activity
// began covers a logical shard they reach. After a hold, a transaction
// routes by the topology that lifted the fence, which differs from the one
// it began with only in the fenced logical shards, which it did not reach
// yet. It returns the keyspace to route by.
func (s *session) passFences(ctx context.Context, ks *topology.Keyspace, inTxn bool, args engine.Params, sts ...*planner.Statement) (*topology.Keyspace, error) {
	if err := s.checkReshardDDL(ctx, ks, sts); err != nil {
		return nil, err
	}
	if err := s.learnTables(ctx, sts); err != nil {
		return nil, err
	}
	write := false
	for _, st := range sts {
		write = write || !st.ReadOnly
	}
	if !write && !inTxn && s.activity == nil {
		return ks, nil // a read on its own goes on whatever happens
	}
	if write {
		waited, err := s.waitStanding(ctx, ks)
		if err != nil {
			return nil, err
		}
		if waited {
			if ks = s.routingKeyspace(); ks == nil {
				return nil, &planner.Error{Code: codeInvalidCatalogName, Message: fmt.Sprintf("database %q does not exist", s.keyspace)}
			}
		}
		s.noteRoutedWrites(ks, args, sts)
	}
	fs := s.srv.fences
	for held := time.Duration(0); ; {
		var fc *fence
		if s.activity == nil {
			a, cur := fs.enlist(s.keyspace)
			s.activity, fc = &a, cur
		} else {
			fc = fs.current(s.keyspace, s.activity.epoch)
		}
		if fc == nil || !fc.touchedBy(ks, args, sts) {
			return ks, nil
		}
		if s.txn == nil {
			// Nothing of it ran yet: it must not keep the fence from
			// draining while it waits.
			fs.delist(*s.activity)
			s.activity = nil
		}
		start := time.Now()
		wait := time.NewTimer(fenceHoldMax - held)
		select {
		case <-fc.lifted:
		case <-ctx.Done():
			wait.Stop()
			return nil, ctx.Err()
		case <-wait.C:
			return nil, &planner.Error{Code: codeLockNotAvailable, Message: fmt.Sprintf("keyspace %s: the logical shards this statement reaches were held for a reshard cutover for over %s", ks.Name, fenceHoldMax)}
		}
		wait.Stop()
		held += time.Since(start)
		s.srv.gate.heldNanos.Add(int64(time.Since(start)))
		if t := s.txn; t != nil && t.ks != nil {
			if now := s.srv.topo().Keyspace(ks.Name); now != nil {
				t.ks = now
			}
		}
		if ks = s.routingKeyspace(); ks == nil {
			return nil, &planner.Error{Code: codeInvalidCatalogName, Message: fmt.Sprintf("database %q does not exist", s.keyspace)}
		}
	}
}

// standingPoll is how often a write held by waitStanding looks again.
const standingPoll = 20 * time.Millisecond

// waitStanding holds a write to keyspace ks, while a reshard moves some of
// its logical shards, for as long as this gateway may have dropped out of
// the gateways a cutover waits for (its etcd lease may have expired), and
// then until its topology is at least as new as its registering again: a
// cutover may have gone on without it meanwhile, and a write by the
// placement from before would land where no stream carries it.
func (s *session) waitStanding(ctx context.Context, ks *topology.Keyspace) (waited bool, err error) {
	if s.srv.standing == nil || len(ks.Copies) == 0 && ks.Fence == nil {
		return false, nil
	}
	deadline := time.Now().Add(fenceHoldMax)
	for ; ; waited = true {
		if s.srv.standing() {
			if !waited {
				return false, nil
			}
			t := s.txn
			if t != nil && len(t.wrote) > 0 {
				// What it wrote before may be where a cutover made
				// meanwhile no longer carries it from: it must not commit.
				if t.explicit {
					t.failed = true
				}
				return true, &planner.Error{Code: "40001", Message: fmt.Sprintf("could not serialize access: this gateway lost touch with etcd while a reshard moves logical shards of keyspace %s", ks.Name),
					Hint: "Run the transaction again."}
			}
			if t != nil && t.ks != nil {
				if now := s.srv.topo().Keyspace(ks.Name); now != nil {
					t.ks = now
				}
			}
			return true, nil
		}
		if time.Now().After(deadline) {
			if t := s.txn; t != nil && t.explicit && len(t.wrote) > 0 {
				t.failed = true
			}
			return true, &planner.Error{Code: codeLockNotAvailable, Message: fmt.Sprintf("keyspace %s: this gateway lost touch with etcd while a reshard moves logical shards; writes wait until it is back, and waited for over %s", ks.Name, fenceHoldMax)}
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-time.After(standingPoll):
		}
	}
}

// touchedBy reports whether any of sts reaches a logical shard behind fc.
func (fc *fence) touchedBy(ks *topology.Keyspace, args engine.Params, sts []*planner.Statement) bool {
	for _, st := range sts {
		if reaches(st, ks, args, fc) {
			return true
		}
	}
	return false
}

// endActivity closes the session's activity once it is idle outside a
// transaction.
func (s *session) endActivity() {
	if s.activity != nil && s.txn == nil && s.paused == nil {
		s.srv.fences.delist(*s.activity)
		s.activity = nil
	}
}
