package planner

import (
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/planner/engine"
)

// combinable are the aggregates whose per-shard partials combine into
// Postgres's exact answer, and how.
var combinable = map[string]engine.AggFunc{
	"count": engine.AggCount, "sum": engine.AggSum, "min": engine.AggMin, "max": engine.AggMax,
	"avg": engine.AggAvg, "bool_and": engine.AggBoolAnd, "every": engine.AggBoolAnd, "bool_or": engine.AggBoolOr,
}

// needsAggregate reports whether a multi-shard SELECT aggregates across
// shards: it has aggregates or GROUP BY, and its groups are not each inside
// one shard (grouped by the sharding column).
func needsAggregate(s *pg_query.SelectStmt, b *block) bool {
	if len(s.GroupClause) > 0 {
		return !groupedByKey(s, b)
	}
	found := false
	for _, t := range s.TargetList {
		walkAggregates(t, func(*pg_query.FuncCall) { found = true })
	}
	walkAggregates(s.HavingClause, func(*pg_query.FuncCall) { found = true })
	return found
}

// groupedByKey reports whether a GROUP BY includes the sharding column, so
// that every group lives on one shard.
func groupedByKey(s *pg_query.SelectStmt, b *block) bool {
	for _, g := range s.GroupClause {
		if b.shardingColumn(g) != nil {
			return true
		}
	}
	return false
}

// walkAggregates calls found for each aggregate call in n, not looking
// into nested queries.
func walkAggregates(n *pg_query.Node, found func(*pg_query.FuncCall)) {
	if n == nil {
		return
	}
	walk(n, func(m proto.Message) bool {
		switch v := m.(type) {
		case *pg_query.SelectStmt:
			return false
		case *pg_query.FuncCall:
			if v.Over == nil && isAggregate(v) {
				found(v)
				return false
			}
		}
		return true
	})
}

// aggregateSelect plans a SELECT whose groups span shards: each shard
// computes partial aggregates per group, sorted by the query's ORDER BY and
// then the group keys, so the gateway merges them and combines each
// group's partials as they arrive one after another; LIMIT and OFFSET
// apply after.
func (p *planning) aggregateSelect(s *pg_query.SelectStmt, target engine.Target, b *block) (engine.Primitive, *Error) {
	switch {
	case s.HavingClause != nil:
		return nil, unsupported("HAVING across shards is not supported yet: the statement's groups span shards")
	case len(s.LockingClause) > 0:
		return nil, unsupported("FOR UPDATE/SHARE with aggregates is not supported")
	case s.LimitOption == pg_query.LimitOption_LIMIT_OPTION_WITH_TIES:
		return nil, unsupported("FETCH FIRST ... WITH TIES across shards is not supported yet")
	}
	if invalidSortKey(s) {
		// An ORDER BY Postgres rejects: each shard answers its error.
		return p.scatter(target), nil
	}
	count, err := limitValue(s.LimitCount, "LIMIT")
	if err != nil {
		return nil, err
	}
	offset, err := limitValue(s.LimitOffset, "OFFSET")
	if err != nil {
		return nil, err
	}
	star := -1
	for i, t := range s.TargetList {
		if isStar(t.GetResTarget().GetVal()) && star < 0 {
			star = i
		}
	}
	if star >= 0 {
		return nil, unsupported("SELECT * with aggregates across shards is not supported; name the columns")
	}
	shard := proto.Clone(s).(*pg_query.SelectStmt)
	shard.LimitCount, shard.LimitOffset = nil, nil
	shard.LimitOption = pg_query.LimitOption_LIMIT_OPTION_DEFAULT

	// ORDER BY first: the groups come merged in the client's order, which
	// must not depend on an aggregate, only on the group keys.
	var keys []engine.SortKey
	var hidden []*pg_query.Node
	if len(s.GroupClause) > 0 {
		for _, item := range s.SortClause {
			n := item.GetSortBy().GetNode()
			if ord := ordinal(n); ord > 0 && ord <= len(s.TargetList) {
				n = s.TargetList[ord-1].GetResTarget().GetVal()
			} else if j := matchOutput(s.TargetList, outputRef(n)); outputRef(n) != "" && j >= 0 {
				n = s.TargetList[j].GetResTarget().GetVal()
			}
			if hasAggregate(n) {
				return nil, unsupported("ORDER BY an aggregate across shards is not supported yet: the statement's groups span shards")
			}
		}
		if keys, hidden, err = p.sortKeys(s, shard); err != nil {
			return nil, err
		}
	}
	var extra []string // hidden columns after the ORDER BY's
	addHidden := func(text string) int {
		extra = append(extra, text)
		return len(hidden) + len(extra) - 1
	}

	// The group keys, and the shards' sort by them.
	var (
		groups    []int
		groupText []string
	)
	for i, g := range s.GroupClause {
		expr := g
		if ord := ordinal(g); ord > 0 {
			if ord > len(s.TargetList) {
				return nil, &Error{Code: "42P10", Message: fmt.Sprintf("GROUP BY position %d is not in select list", ord)}
			}
			expr = s.TargetList[ord-1].GetResTarget().GetVal()
		} else if name := outputRef(g); name != "" {
			if j := matchOutput(s.TargetList, name); j >= 0 && outputRef(s.TargetList[j].GetResTarget().GetVal()) != name {
				return nil, unsupported("GROUP BY %s across shards is not supported: it may name an output column or an input column; write the expression", name)
			}
		}
		text, err := p.exprText(expr)
		if err != nil {
			return nil, err
		}
		col := addHidden(fmt.Sprintf("(%s) AS sg_group%d", text, i+1))
		coll := addHidden(collationOf(text) + fmt.Sprintf(" AS sg_group_collation%d", i+1))
		groups, groupText = append(groups, col), append(groupText, text)
		keys = append(keys, engine.SortKey{Hidden: col, Collation: coll, Text: text})
		shard.SortClause = append(shard.SortClause, &pg_query.Node{Node: &pg_query.Node_SortBy{SortBy: &pg_query.SortBy{
			Node:        pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(fmt.Sprintf("sg_group%d", i+1))}, 0),
			SortbyDir:   pg_query.SortByDir_SORTBY_DEFAULT,
			SortbyNulls: pg_query.SortByNulls_SORTBY_NULLS_DEFAULT,
		}}})
	}

	// The output columns: grouping expressions pass through, each
	// aggregate is combined from the shards' partials.
	var columns []engine.AggregateColumn
	for _, t := range s.TargetList {
		rt := t.GetResTarget()
		text, err := p.exprText(rt.GetVal())
		if err != nil {
			return nil, err
		}
		col := engine.AggregateColumn{Func: engine.AggFirst, Text: text, Collation: -1}
		f := rt.GetVal().GetFuncCall()
		switch {
		case f != nil && f.Over == nil && isAggregate(f):
			if col.Func, err = p.combine(f, b); err != nil {
				return nil, err
			}
			if col.Func == engine.AggMin || col.Func == engine.AggMax {
				// The aggregate's result has its argument's collation.
				col.Collation = addHidden(collationOf(text) + " AS sg_agg_collation")
			}
			if col.Func == engine.AggAvg {
				sum, count := proto.Clone(f).(*pg_query.FuncCall), proto.Clone(f).(*pg_query.FuncCall)
				sum.Funcname, count.Funcname = []*pg_query.Node{pg_query.MakeStrNode("sum")}, []*pg_query.Node{pg_query.MakeStrNode("count")}
				sumText, err := p.exprText(&pg_query.Node{Node: &pg_query.Node_FuncCall{FuncCall: sum}})
				if err != nil {
					return nil, err
				}
				countText, err := p.exprText(&pg_query.Node{Node: &pg_query.Node_FuncCall{FuncCall: count}})
				if err != nil {
					return nil, err
				}
				col.Sum, col.Count = addHidden(sumText+" AS sg_sum"), addHidden(countText+" AS sg_count")
			}
		case hasAggregate(rt.GetVal()):
			return nil, unsupported("%s across shards is not supported yet: an expression over aggregates; select the aggregates themselves", text)
		}
		columns = append(columns, col)
	}
	if len(extra) > 0 {
		sel, err := p.parseSelect("SELECT " + strings.Join(extra, ", "))
		if err != nil {
			return nil, err
		}
		hidden = append(hidden, sel.TargetList...)
	}
	shard.TargetList = append(shard.TargetList, hidden...)
	if len(s.GroupClause) == 0 {
		// One row per shard; the ORDER BY of one row orders nothing.
		shard.SortClause = nil
	}
	sql, derr := pg_query.Deparse(&pg_query.ParseResult{Version: p.version, Stmts: []*pg_query.RawStmt{{Stmt: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: shard}}}}})
	if derr != nil {
		return nil, &Error{Code: CodeInternal, Message: fmt.Sprintf("print the shards' statement: %v", derr)}
	}
	q := engine.Query{SQL: sql, Hidden: len(hidden), Describe: true}
	var input engine.Primitive = &engine.Scatter{Target: target, Query: q}
	if len(groups) > 0 {
		input = &engine.MergeSort{Target: target, Query: q, Keys: keys, KeepHidden: true}
	}
	var prim engine.Primitive = &engine.Aggregate{Input: input, Columns: columns, Groups: groups, GroupText: groupText, Hidden: len(hidden)}
	if count.Set || offset.Set {
		prim = &engine.Limit{Input: prim, Count: count, Offset: offset}
	}
	return prim, nil
}

// combine says how an aggregate's per-shard partials combine, or why they
// cannot.
func (p *planning) combine(f *pg_query.FuncCall, b *block) (engine.AggFunc, *Error) {
	name := strings.ToLower(funcName(f))
	fn, ok := combinable[name]
	switch {
	case !ok || f.AggWithinGroup || len(f.Funcname) > 2:
		return 0, unsupported("aggregate function %s() across shards is not supported yet", name)
	case len(f.Args) > 1:
		return 0, unsupported("%s() with several arguments across shards is not supported", name)
	case f.AggDistinct && fn != engine.AggMin && fn != engine.AggMax && fn != engine.AggBoolAnd && fn != engine.AggBoolOr &&
		(len(f.Args) != 1 || b.shardingColumn(f.Args[0]) == nil):
		// Distinct values of the sharding column live on one shard each,
		// so per-shard distinct counts and sums add up; others do not.
		return 0, unsupported("%s(DISTINCT ...) across shards is supported only over the sharding column (%s)", name, b.keyColumn)
	}
	return fn, nil
}

// hasAggregate reports whether n calls an aggregate (outside nested
// queries).
func hasAggregate(n *pg_query.Node) bool {
	found := false
	walkAggregates(n, func(*pg_query.FuncCall) { found = true })
	return found
}
