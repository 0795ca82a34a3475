package planner

import (
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/vschema"
)

// planInsertSelect plans INSERT ... SELECT where each shard can do its
// part alone: into a sharded table, when every row the SELECT gives lives
// on the shard of the row it inserts (the SELECT's rows are partitioned by
// a sharding column co-located with the target's, which goes into the
// target's sharding column), on the shards the SELECT reads; into a
// reference table, when the SELECT reads reference tables only and picks
// the same rows on every copy. Anything else would need the rows to cross
// shards, and is refused.
func (p *planning) planInsertSelect(ins *pg_query.InsertStmt, t *vschema.Table) (engine.Primitive, error) {
	sel := ins.SelectStmt.GetSelectStmt()
	cols, err := p.insertColumns(ins, sel)
	if err != nil {
		return nil, err
	}
	// Columns left to their defaults that each shard or copy would
	// compute its own way.
	for _, c := range p.vs.Catalog.Relation(vschema.TableName(ins.Relation.Schemaname, ins.Relation.Relname)).GetColumns() {
		if c.Generated || slices.Contains(cols, c.Name) {
			continue
		}
		if c.Sequence != "" || t.Kind == vschema.Reference && volatileDefault(c.Default) != nil {
			return nil, unsupported("INSERT ... SELECT into %s must give column %s its values: its default would be computed by each shard; the gateway computes it only for INSERT ... VALUES", t.Name, c.Name)
		}
	}
	if oc := ins.OnConflictClause; oc != nil && t.Kind == vschema.Sharded {
		for _, set := range oc.TargetList {
			if set.GetResTarget().GetName() == t.Column {
				return nil, unsupported("ON CONFLICT DO UPDATE of sharding column %s.%s is not supported", t.Name, t.Column)
			}
		}
	}
	if name := unstableCall(ins); name != "" {
		return nil, unsupported("INSERT ... SELECT with %s is not supported on a sharded keyspace: each shard could compute a different value", name)
	}
	a := p.analysis()
	info, root, err := p.level(sel)
	if err != nil {
		return nil, err
	}
	a.root = root
	if a.catalog {
		return nil, unsupported("an INSERT that reads system catalogs is not supported on a sharded keyspace")
	}
	if t.Kind == vschema.Reference {
		switch {
		case info.sharded || a.blocker != nil || len(a.blocks) > 0:
			return nil, unsupported("INSERT ... SELECT into reference table %s that reads sharded tables is not supported: every copy must get the same rows", t.Name)
		case orderDependent(sel):
			return nil, unsupported("INSERT ... SELECT into reference table %s with LIMIT, OFFSET, DISTINCT ON or window functions is not supported: each copy could pick other rows", t.Name)
		}
		return p.broadcast(), nil
	}
	if a.blocker != nil || !info.partitioned || info.keyAt < 0 || info.keyAt >= len(cols) || cols[info.keyAt] != t.Column || info.table == nil || !t.CoLocated(info.table) {
		return nil, unsupported("INSERT ... SELECT into sharded table %s is supported only when each row stays on its shard: the SELECT must give, as %s, the sharding column of a table co-located with %s, and its rows must each come from one shard", t.Name, t.Column, t.Name)
	}
	r := p.route(*p.target(a))
	if !r.Target.Single() {
		r.Multi = p.scatter(r.Target)
	}
	return r, nil
}

// insertColumns names the columns an INSERT ... SELECT fills: its column
// list, or else the table's first columns from the catalog, one per output
// of the SELECT.
func (p *planning) insertColumns(ins *pg_query.InsertStmt, sel *pg_query.SelectStmt) ([]string, error) {
	var cols []string
	for _, c := range ins.Cols {
		cols = append(cols, c.GetResTarget().GetName())
	}
	if len(cols) > 0 {
		return cols, nil
	}
	rel := p.vs.Catalog.Relation(vschema.TableName(ins.Relation.Schemaname, ins.Relation.Relname))
	n := len(sel.TargetList)
	stars := slices.ContainsFunc(sel.TargetList, func(t *pg_query.Node) bool { return isStar(t.GetResTarget().GetVal()) })
	if rel == nil || stars || !isPlainSelect(sel) || n > len(rel.Columns) {
		return nil, unsupported("INSERT ... SELECT on a sharded keyspace must name its columns here")
	}
	for _, c := range rel.Columns[:n] {
		cols = append(cols, c.Name)
	}
	return cols, nil
}

// orderDependent reports whether which rows a SELECT gives may depend on
// the order they are read in.
func orderDependent(sel *pg_query.SelectStmt) bool {
	if sel.LimitCount != nil || sel.LimitOffset != nil || len(sel.DistinctClause) > 0 && sel.DistinctClause[0].GetNode() != nil {
		return true
	}
	found := false
	walk(sel, func(m proto.Message) bool {
		if fc, ok := m.(*pg_query.FuncCall); ok && fc.Over != nil {
			found = true
		}
		return !found
	})
	return found
}

// unstableCall names a call below n whose value a shard could compute
// otherwise than the others (now(), random(), a sequence function, an
// unknown function), "" when there is none: deterministic functions and
// aggregates give every shard the same for the same rows.
func unstableCall(n proto.Message) string {
	name := ""
	walk(n, func(m proto.Message) bool {
		switch c := m.(type) {
		case *pg_query.FuncCall:
			fn := strings.ToLower(funcName(c))
			if !deterministic[fn] && !(c.Over == nil && isAggregate(c)) {
				name = fn + "()"
			}
		case *pg_query.SQLValueFunction:
			name = "CURRENT_TIMESTAMP or a value like it"
		}
		return name == ""
	})
	return name
}
