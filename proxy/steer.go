package proxy

import (
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/topology"
)

var errShardGone = errors.New("the shard is not in the topology any more")

// steerState is what a session remembers of its writes to logical shards
// whose reads a reshard steers (see topology.ReadTraffic): it keeps
// reading each where it wrote until the target holds the write.
type steerState struct {
	workflow string
	// wrote holds, per logical shard, a time after the session's last
	// write there committed.
	wrote map[int]time.Time
	// pending are logical shards written by statements that may not have
	// committed yet; the next read outside a transaction dates them.
	pending map[int]bool
}

// routedProbe is a Topology that notes which of a keyspace's routed
// logical shards a statement reaches, and on how many shards it runs.
type routedProbe struct {
	ks      *topology.Keyspace
	touched []int
	all     bool
}

func (p *routedProbe) ShardFor(h int64) string {
	l := p.ks.Map.LogicalShard(h)
	if _, ok := p.ks.Routed()[l]; ok {
		p.touched = append(p.touched, l)
	}
	return p.ks.ShardFor(h)
}

func (p *routedProbe) Shards() []string {
	p.all = true
	return p.ks.Shards()
}

// probeRouted returns the probe of st with args against ks.
func probeRouted(ks *topology.Keyspace, st *planner.Statement, args engine.Params) *routedProbe {
	p := &routedProbe{ks: ks}
	if st.Root == nil {
		p.all = true
		return p
	}
	engine.Shards(st.Root, p, args)
	return p
}

// noteRoutedWrites remembers the routed logical shards statements sts
// that may write reach, so that the session's reads of them stay where it
// wrote.
func (s *session) noteRoutedWrites(ks *topology.Keyspace, args engine.Params, sts []*planner.Statement) {
	routed := ks.Routed()
	if len(routed) == 0 {
		return
	}
	st := s.steerFor(ks)
	for _, stmt := range sts {
		if stmt.ReadOnly {
			continue
		}
		p := probeRouted(ks, stmt, args)
		if p.all {
			for l := range routed {
				st.pending[l] = true
			}
			continue
		}
		for _, l := range p.touched {
			st.pending[l] = true
		}
	}
}

// steerFor returns the session's steer state for ks's read traffic, new
// when a different workflow steers it.
func (s *session) steerFor(ks *topology.Keyspace) *steerState {
	if s.steer == nil || s.steer.workflow != ks.Reads.Workflow {
		s.steer = &steerState{workflow: ks.Reads.Workflow, wrote: map[int]time.Time{}, pending: map[int]bool{}}
	}
	return s.steer
}

// steerRead decides where a read outside a transaction runs while a
// reshard steers the reads of ks's moving logical shards: on the keyspace
// as it is, or on a view that places some of them on their targets (a
// share of reads, see topology.ReadTraffic), and whether it also runs
// there as a shadow read. A logical shard is read at its target only
// while the target's stream is fresh and holds what this session wrote
// there.
func (s *session) steerRead(ks *topology.Keyspace, st *planner.Statement, args engine.Params) (*topology.Keyspace, *shadowRead) {
	routed := ks.Routed()
	if len(routed) == 0 || s.txn != nil || st.Root == nil || !st.ReadOnly || st.Copy != nil {
		return ks, nil
	}
	t := ks.Reads
	if t.ReadPercent <= 0 && t.ShadowPercent <= 0 {
		return ks, nil
	}
	p := probeRouted(ks, st, args)
	if !p.all && len(p.touched) == 0 {
		return ks, nil
	}
	state := s.steerFor(ks)
	now := time.Now()
	for l := range state.pending {
		state.wrote[l] = now
	}
	clear(state.pending)
	if t.ReadPercent > 0 && rand.Float64()*100 < t.ReadPercent {
		every, some := true, false
		keep := func(l int) bool {
			source := ks.Map.Placement[l]
			sw := s.srv.streams.source(source, t.Slots[source])
			ok := sw != nil && sw.fresh()
			if wrote, did := state.wrote[l]; ok && did {
				if ok = sw.holds(wrote); ok {
					delete(state.wrote, l)
				}
			}
			every = every && ok
			return ok
		}
		touched := p.touched
		if p.all {
			touched = slices.Collect(maps.Keys(routed))
		}
		for _, l := range touched {
			some = keep(l) || some
		}
		if some {
			view := ks.ReadView(nil)
			if !every {
				view = ks.ReadView(keep)
			}
			s.srv.steered.WithLabelValues(t.Workflow, "target").Inc()
			return view, nil
		}
	}
	s.srv.steered.WithLabelValues(t.Workflow, "source").Inc()
	if t.ShadowPercent <= 0 || rand.Float64()*100 >= t.ShadowPercent {
		return ks, nil
	}
	return ks, s.shadowOf(ks, st, args, p)
}

// shadowOf returns the shadow read of st, or nil when it is not one read
// by key on one moving logical shard.
func (s *session) shadowOf(ks *topology.Keyspace, st *planner.Statement, args engine.Params, p *routedProbe) *shadowRead {
	r, ok := st.Root.(*engine.Route)
	if !ok || p.all || r.Target.Kind != engine.TargetKeys || len(p.touched) != len(r.Target.Keys) {
		return nil
	}
	l := p.touched[0]
	for _, other := range p.touched[1:] {
		if other != l {
			return nil
		}
	}
	source := ks.Map.Placement[l]
	t := ks.Reads
	return &shadowRead{workflow: t.Workflow, logical: l, source: source, target: ks.Routed()[l], slot: t.Slots[source],
		key: keyText(r.Target.Keys[0], args), role: s.backendRole}
}

// keyText is a sharding key's value as the statement gave it.
func keyText(k engine.Key, args engine.Params) string {
	if k.Param == 0 {
		return k.Literal
	}
	if args != nil {
		if text, ok := args.Text(k.Param - 1); ok {
			return text
		}
	}
	return k.String()
}
