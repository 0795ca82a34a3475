package engine

import (
	"fmt"
	"math"
	"strings"

	"github.com/shardgate/shardgate/vschema"
)

// Topology is the shard map a statement runs against: one snapshot of one
// keyspace's placement, the same for the whole statement (and for a
// transaction's life).
type Topology interface {
	// ShardFor returns the physical shard that holds keyspace id h.
	ShardFor(h int64) string
	// Shards returns every physical shard of the keyspace, in a stable order.
	Shards() []string
}

// Params gives the values of the client's bound parameters.
type Params interface {
	// Text returns parameter i (0-based) as Postgres's text form; ok is
	// false when it is NULL or cannot be read.
	Text(i int) (text string, ok bool)
}

// shardLists is a Topology that gives the shard of a keyspace id as a list
// of one without allocating it.
type shardLists interface {
	ShardListFor(h int64) []string
}

// shardList returns the shard of keyspace id h as a list of one, which the
// caller must not change.
func shardList(topo Topology, h int64) []string {
	if l, ok := topo.(shardLists); ok {
		return l.ShardListFor(h)
	}
	return []string{topo.ShardFor(h)}
}

// AnchorShard returns the physical shard of logical shard 0, where state
// that must live in one place for the whole keyspace is kept (advisory
// locks, large objects, notifications).
func AnchorShard(t Topology) string { return t.ShardFor(math.MinInt64) }

// TargetKind says how a Target finds its shards.
type TargetKind int

// How targets are found.
const (
	// TargetKeys: the shards that hold the keyspace ids of Keys.
	TargetKeys TargetKind = iota + 1
	// TargetAll: every shard of the keyspace.
	TargetAll
	// TargetAny: one shard; every shard gives the same answer (reference
	// tables, catalogs, no table at all), so the executor may pick one
	// that is up or that its transaction already holds.
	TargetAny
	// TargetAnchor: the anchor shard (see AnchorShard).
	TargetAnchor
	// TargetSchema: every shard that holds the keyspace's tables: its
	// shards and those a reshard copies rows into or keeps them on
	// (schema changes).
	TargetSchema
)

// schemaShards is a Topology that knows shards holding the keyspace's
// tables besides its own (see TargetSchema).
type schemaShards interface {
	SchemaShards() []string
}

// Target says where a statement runs. It names keyspace ids, not physical
// shards: it is resolved against the topology when the statement runs, so a
// plan stays valid when logical shards move.
type Target struct {
	Kind TargetKind
	// Keys are the values a TargetKeys statement fixes its sharding
	// column to; the rows it reaches live on their shards.
	Keys []Key
}

// Key is one value of a sharding column: a literal, whose keyspace id the
// planner computed, or a parameter, hashed when the statement runs.
type Key struct {
	// ID is the keyspace id of a literal (Param == 0).
	ID int64
	// Literal is the literal's text, for plans as printed.
	Literal string
	// Param is the client's parameter ($Param, 1-based) that gives the
	// value, 0 for a literal.
	Param int
	// Table is the sharded table whose sharding function gives the id:
	// it hashes a parameter's value when the statement runs.
	Table *vschema.Table
	// At is where a literal's token starts in the query string (a byte
	// offset), so that a plan cache can give a statement that differs only
	// in literals this plan with the key's new value.
	At int
}

// id returns the key's keyspace id for the bound parameters. null is set
// when the parameter is NULL; ok is false when its text is not a value the
// sharding function reads.
func (k Key) id(args Params) (id int64, null, ok bool) {
	if k.Param == 0 {
		return k.ID, false, true
	}
	if args == nil {
		return 0, false, false
	}
	text, ok := args.Text(k.Param - 1)
	if !ok {
		return 0, true, false
	}
	id, ok = k.Table.KeyspaceID(text)
	return id, false, ok
}

func (k Key) String() string {
	if k.Param > 0 {
		return fmt.Sprintf("$%d", k.Param)
	}
	return k.Literal
}

// Resolve returns the physical shards the target reaches, each once, in the
// topology's shard order. A key whose parameter is NULL matches no row and
// adds no shard. A parameter the sharding function cannot read (a numeric
// 7.0 compared with a bigint column still matches 7) widens the target to
// every shard. Keys that match nothing leave one shard, the anchor: the
// statement runs there and finds no rows, as on Postgres.
func (t Target) Resolve(topo Topology, args Params) []string {
	switch t.Kind {
	case TargetAny:
		return topo.Shards()[:1]
	case TargetAnchor:
		return []string{AnchorShard(topo)}
	case TargetSchema:
		if st, ok := topo.(schemaShards); ok {
			return st.SchemaShards()
		}
		return topo.Shards()
	case TargetKeys:
	default:
		return topo.Shards()
	}
	if len(t.Keys) == 1 {
		id, null, ok := t.Keys[0].id(args)
		switch {
		case ok:
			return shardList(topo, id)
		case null:
			return []string{AnchorShard(topo)}
		}
		return topo.Shards()
	}
	set := make(map[string]bool, len(t.Keys))
	for _, k := range t.Keys {
		id, null, ok := k.id(args)
		switch {
		case ok:
			set[topo.ShardFor(id)] = true
		case !null:
			return topo.Shards()
		}
	}
	if len(set) == 0 {
		return []string{AnchorShard(topo)}
	}
	out := make([]string, 0, len(set))
	for _, s := range topo.Shards() {
		if set[s] {
			out = append(out, s)
		}
	}
	return out
}

// Single reports whether the target always resolves to exactly one shard,
// whatever the topology and the parameters: one shard of any kind, or keys
// that are all the same literal.
func (t Target) Single() bool {
	switch t.Kind {
	case TargetAny, TargetAnchor:
		return true
	case TargetKeys:
		for _, k := range t.Keys {
			if k.Param != 0 || k.ID != t.Keys[0].ID {
				return false
			}
		}
		return len(t.Keys) > 0
	}
	return false
}

func (t Target) String() string {
	switch t.Kind {
	case TargetKeys:
		keys := make([]string, len(t.Keys))
		for i, k := range t.Keys {
			keys[i] = k.String()
		}
		return "keys(" + strings.Join(keys, ", ") + ")"
	case TargetAll:
		return "all"
	case TargetAny:
		return "any"
	case TargetAnchor:
		return "anchor"
	case TargetSchema:
		return "schema"
	}
	return fmt.Sprintf("TargetKind(%d)", int(t.Kind))
}
