package engine

import (
	"context"
	"fmt"
	"strings"
)

// Explain answers EXPLAIN of a statement on a sharded keyspace: the
// gateway's plan — its primitives, where each target resolves, the
// statement each shard runs — followed by each shard's own plan of its
// statement, which the shard gives for Prefix (EXPLAIN with the client's
// options) put before it. With ANALYZE the shards run their statements and
// report their rows and times.
type Explain struct {
	Plan   Primitive
	Prefix string
}

var _ Primitive = (*Explain)(nil)

// Inputs implements Primitive.
func (e *Explain) Inputs() []Primitive { return []Primitive{e.Plan} }

// Describe implements Primitive.
func (e *Explain) Describe() string { return fmt.Sprintf("Explain %q", strings.TrimSpace(e.Prefix)) }

// Stream implements Primitive.
func (e *Explain) Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	topo := x.Topology()
	var lines []string
	var walk func(p Primitive, depth int)
	walk = func(p Primitive, depth int) {
		line := strings.Repeat("  ", depth) + p.Describe()
		if r, ok := p.(*Route); ok {
			shards := r.Target.Resolve(topo, args)
			line += " -> " + strings.Join(shards, ", ")
			lines = append(lines, line)
			if len(shards) > 1 && r.Multi != nil {
				walk(r.Multi, depth+1)
			}
			return
		}
		switch n := p.(type) {
		case *Scatter:
			line += " -> " + strings.Join(n.Target.Resolve(topo, args), ", ")
		case *MergeSort:
			line += " -> " + strings.Join(n.Target.Resolve(topo, args), ", ")
		case *Broadcast:
			line += " -> " + strings.Join(n.Target.Resolve(topo, nil), ", ")
		}
		lines = append(lines, line)
		for _, in := range p.Inputs() {
			walk(in, depth+1)
		}
	}
	lines = append(lines, "Gateway plan:")
	walk(e.Plan, 1)
	if err := emit(&Batch{Fields: []Field{{Name: "QUERY PLAN", DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}}); err != nil {
		return "", err
	}
	// A Bind's subqueries run, so that its statement's shards can plan
	// with their values.
	queries, err := shardQueries(e.Plan, topo, args, func(b *Bind) (int, []BoundValue, error) { return b.values(ctx, x, args) })
	if err != nil {
		return "", err
	}
	for _, q := range queries {
		sq := q.query.boundOn(q.shard)
		lines = append(lines, fmt.Sprintf("Shard %s: %s", q.shard, sq.SQL))
		shardPlan := Query{SQL: e.Prefix + sq.SQL, Params: sq.Params, Spread: sq.Spread, Bound: sq.Bound, BoundFrom: sq.BoundFrom}
		_, err := x.Query(ctx, q.shard, shardPlan, func(b *Batch) error {
			for _, row := range b.Rows {
				if len(row) > 0 && row[0] != nil {
					lines = append(lines, "  "+string(row[0]))
				}
			}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("on shard %s: %w", q.shard, err)
		}
	}
	rows := make([][][]byte, len(lines))
	for i, l := range lines {
		rows[i] = [][]byte{[]byte(l)}
	}
	if err := emit(&Batch{Rows: rows}); err != nil {
		return "", err
	}
	return "EXPLAIN", nil
}

// shardQueries lists the statements a plan sends to shards with these
// parameters, resolved against topo, in plan order; bind gives a Bind's
// values.
func shardQueries(p Primitive, topo Topology, args Params, bind func(*Bind) (int, []BoundValue, error)) ([]shardQuery, error) {
	var out []shardQuery
	var bound []BoundValue
	from := 0
	each := func(shards []string, q Query) {
		if bound != nil && q.Values == nil && q.Params == nil {
			q.Bound, q.BoundFrom = bound, from
		}
		for _, s := range shards {
			out = append(out, shardQuery{shard: s, query: q})
		}
	}
	var visit func(p Primitive) error
	visit = func(p Primitive) error {
		switch n := p.(type) {
		case *Route:
			shards := n.Target.Resolve(topo, args)
			if len(shards) == 1 {
				each(shards, n.Query)
				return nil
			}
			if n.Multi == nil {
				if n.Refusal != nil {
					return n.Refusal
				}
				return internal("statement %q reaches %d shards and has no plan for that", n.Query.SQL, len(shards))
			}
			return visit(n.Multi)
		case *Scatter:
			each(spread(n.Target.Resolve(topo, args), n.Query))
		case *MergeSort:
			each(spread(n.Target.Resolve(topo, args), n.Query))
		case *Broadcast:
			each(n.Target.Resolve(topo, nil), Query{SQL: n.SQL})
		case *InsertSplit:
			groups, _, err := n.split(topo, args)
			if err != nil {
				return err
			}
			if len(groups) == 1 {
				each([]string{groups[0].shard}, n.Query)
				return nil
			}
			for _, g := range groups {
				each([]string{g.shard}, Query{SQL: n.Prefix + strings.Join(g.rows, ", ") + n.Suffix})
			}
		case *Bind:
			for _, sq := range n.Subqueries {
				if err := visit(sq.Plan); err != nil {
					return err
				}
			}
			f, values, err := bind(n)
			if err != nil {
				return err
			}
			outer, outerFrom := bound, from
			bound, from = values, f
			err = visit(n.Input)
			bound, from = outer, outerFrom
			return err
		}
		for _, in := range p.Inputs() {
			if err := visit(in); err != nil {
				return err
			}
		}
		return nil
	}
	return out, visit(p)
}

// spread marks q as one shard's part of a statement when shards are
// several, as Scatter and MergeSort do.
func spread(shards []string, q Query) ([]string, Query) {
	q.Spread = len(shards) > 1
	return shards, q
}
