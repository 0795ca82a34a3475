// Package engine holds the primitives that execution plans are made of
// (Route, Scatter, Broadcast, CountSum, InsertSplit), the Executor they run
// against, and how a plan's targets are resolved against the topology. It
// builds without cgo and knows nothing of the wire protocol: the planner
// builds plans out of these primitives, the proxy runs them.
//
// Plans are immutable and safe to share between sessions and statements:
// everything that varies between executions (the topology snapshot, the
// bound parameters) comes in when a plan runs.
package engine

import (
	"context"
	"strings"
)

// Query is one statement for one shard.
type Query struct {
	SQL string
	// Params maps the statement's parameters to the client's: $i of SQL is
	// the client's parameter Params[i-1] (0-based). Nil means the client's
	// parameters as they are.
	Params []int
	// AnyShard is set when every shard of the keyspace gives the same
	// answer: the executor may run it on another shard than the one named,
	// one that is up, or one its transaction already holds.
	AnyShard bool
	// Hidden is how many columns SQL appends to the client's statement
	// for the engine's own use (sort keys, collations): the executor asks
	// for them in text unless the client asked for every column in one
	// format, and checks only the client's columns against what it told
	// the client.
	Hidden int
	// Describe asks the executor to emit the result's columns (Fields)
	// first in every protocol: the primitive reads the values.
	Describe bool
	// Values, when not nil, are the statement's parameters, in text,
	// instead of the client's (Params is then not used).
	Values [][]byte
	// Bound, when not nil, are parameters the engine binds after the
	// client's (see Bind): $BoundFrom is the first.
	Bound     []BoundValue
	BoundFrom int
	// Gathered is set when the rows go to another goroutine, which merges
	// or gathers several shards: the executor hands over rows it has
	// already read in batches of several, as each hand-over costs
	// goroutine switches.
	Gathered bool
	// Internal marks a statement whose result the client never sees
	// (the partials an Evaluate finishes): every column comes in text
	// and is described, none is checked against the client's columns,
	// and no row limit applies.
	Internal bool
	// Quiet is set for a statement whose notices the client gets from
	// another shard already (the copies of a Broadcast): the executor
	// drops this one's.
	Quiet bool
	// Spread is set when the statement runs on several shards, each
	// answering for the rows it owns: a shard that also keeps rows of
	// logical shards it does not own (a reshard's copies) must pass over
	// them.
	Spread bool
}

// Executor runs SQL on physical shards. It is everything a primitive may ask
// of the gateway, so primitives can be tested without a network.
type Executor interface {
	// Topology is the snapshot the statement runs against: every target
	// of one statement resolves against the same one.
	Topology() Topology
	// Settings tells how the session's values print, which comparing
	// them depends on.
	Settings
	// Query runs one statement on shard, with the client's bound
	// parameters if it has any, and emits its result: a Batch with Fields
	// first when the statement returns rows and the executor describes
	// them (always when q.Describe is set), then rows. It returns the statement's command tag. Cancelling
	// ctx cancels the statement on the shard. An error from emit stops the
	// query and is returned. Query may be called from several goroutines
	// at once, each for another shard; emit is called on the goroutine
	// that called Query.
	Query(ctx context.Context, shard string, q Query, emit func(*Batch) error) (Tag, error)
}

// Primitive is one node of an execution plan. Plans are immutable and safe
// to share between sessions.
type Primitive interface {
	// Stream runs the subtree with the client's bound parameters (nil for
	// none), emitting its result in order on the calling goroutine, and
	// returns the combined command tag. It returns when the result is
	// complete, emit fails or ctx ends.
	Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error)
	// Inputs returns the children of this node.
	Inputs() []Primitive
	// Describe prints this node (not its children) on one line.
	Describe() string
}

// Format prints a plan as an indented tree, one primitive per line.
func Format(p Primitive) string {
	var sb strings.Builder
	var walk func(p Primitive, depth int)
	walk = func(p Primitive, depth int) {
		sb.WriteString(strings.Repeat("  ", depth))
		sb.WriteString(p.Describe())
		sb.WriteByte('\n')
		for _, in := range p.Inputs() {
			walk(in, depth+1)
		}
	}
	walk(p, 0)
	return sb.String()
}

// Shards lists the physical shards a plan runs on with these parameters,
// each once, resolved against topo.
func Shards(p Primitive, topo Topology, args Params) []string {
	if r, ok := p.(*Route); ok {
		// The usual case, without the walk's allocations.
		if shards := r.Target.Resolve(topo, args); len(shards) <= 1 || r.Multi == nil {
			return shards
		}
	}
	var out []string
	seen := map[string]bool{}
	add := func(shards []string) {
		for _, s := range shards {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	var visit func(p Primitive)
	visit = func(p Primitive) {
		switch n := p.(type) {
		case *Route:
			shards := n.Target.Resolve(topo, args)
			if len(shards) > 1 && n.Multi != nil {
				visit(n.Multi)
				return
			}
			add(shards)
			return
		case *Scatter:
			add(n.Target.Resolve(topo, args))
		case *MergeSort:
			add(n.Target.Resolve(topo, args))
		case *Broadcast:
			add(n.Target.Resolve(topo, args))
		case *InsertSplit:
			groups, _, err := n.split(topo, args)
			if err != nil {
				add(topo.Shards())
			}
			for _, g := range groups {
				add([]string{g.shard})
			}
		}
		for _, in := range p.Inputs() {
			visit(in)
		}
	}
	visit(p)
	return out
}

// OneQuery reports whether a plan, with these parameters, runs exactly one
// statement on one shard, and which: a Route that resolves to one shard, or
// an InsertSplit whose rows all land on one. q.AnyShard is set when any
// shard would do.
func OneQuery(p Primitive, topo Topology, args Params) (shard string, q Query, ok bool) {
	switch n := p.(type) {
	case *Route:
		shards := n.Target.Resolve(topo, args)
		if len(shards) != 1 {
			return "", Query{}, false
		}
		q = n.Query
		q.AnyShard = n.Target.Kind == TargetAny
		return shards[0], q, true
	case *InsertSplit:
		groups, _, err := n.split(topo, args)
		if err != nil || len(groups) != 1 {
			return "", Query{}, false
		}
		return groups[0].shard, n.Query, true
	}
	return "", Query{}, false
}
