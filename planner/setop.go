package planner

import (
	"strconv"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/planner/engine"
)

// A set operation (UNION, INTERSECT, EXCEPT) over several shards runs in
// one of three ways, the cheapest that gives Postgres's answer:
//
//   - UNION ALL of arms whose rows are partitioned: the statement as it is
//     on every shard, the rows concatenated (merged for ORDER BY);
//   - UNION of arms whose rows are partitioned or the same on every
//     shard: each shard removes its own duplicates, the gateway those
//     between shards;
//   - anything else: each arm runs on its own and the gateway combines
//     them (engine.SetOp). So that every arm's columns come in the types
//     Postgres resolves for the whole operation, an arm runs as the whole
//     operation turned into UNION ALL with every other arm made empty
//     (LIMIT 0); an arm whose rows span shards (aggregates, LIMIT) runs
//     as its own plan and must have those types already.

// setArm is one arm of a set operation: a SELECT, or a parenthesized set
// operation with its own ORDER BY, LIMIT or WITH.
type setArm struct {
	stmt *pg_query.SelectStmt
	info levelInfo
}

// setOpSelect plans a set operation whose arms reach several shards.
func (p *planning) setOpSelect(s *pg_query.SelectStmt, target engine.Target) (engine.Primitive, *Error) {
	arms := p.setArms(s.Rarg, p.setArms(s.Larg, nil))
	allUnionAll, allUnion := true, true
	walkSetOps(s, func(n *pg_query.SelectStmt) {
		allUnionAll = allUnionAll && n.Op == pg_query.SetOperation_SETOP_UNION && n.All
		allUnion = allUnion && n.Op == pg_query.SetOperation_SETOP_UNION
	})
	partitioned, sameEverywhere := true, true
	for _, a := range arms {
		partitioned = partitioned && a.info.partitioned
		sameEverywhere = sameEverywhere && (a.info.partitioned || !a.info.sharded)
	}
	if len(s.LockingClause) > 0 {
		// Postgres rejects it: each shard answers its error.
		return p.scatter(target), nil
	}
	switch {
	case allUnionAll && partitioned:
		return p.unionSelect(s, target, false)
	case allUnion && !s.All && sameEverywhere:
		return p.unionSelect(s, target, true)
	}
	if len(s.SortClause) > 0 || s.LimitCount != nil || s.LimitOffset != nil {
		return nil, unsupported("ORDER BY, LIMIT or OFFSET on %s across shards is not supported yet", setOpName(s))
	}
	return p.combineArms(s, target, arms)
}

// setOpName names a set operation for messages.
func setOpName(s *pg_query.SelectStmt) string {
	name := "UNION"
	switch s.Op {
	case pg_query.SetOperation_SETOP_INTERSECT:
		name = "INTERSECT"
	case pg_query.SetOperation_SETOP_EXCEPT:
		name = "EXCEPT"
	}
	if s.All {
		name += " ALL"
	}
	return name
}

// setArms lists the arms of set operation s, left to right.
func (p *planning) setArms(s *pg_query.SelectStmt, out []setArm) []setArm {
	if isArm(s) {
		return append(out, setArm{stmt: s, info: p.infos[s]})
	}
	out = p.setArms(s.Larg, out)
	return p.setArms(s.Rarg, out)
}

// isArm reports whether a node of a set operation's tree is an arm rather
// than an operation combined with its neighbours.
func isArm(s *pg_query.SelectStmt) bool {
	return isPlainSelect(s) || len(s.SortClause) > 0 || s.LimitCount != nil || s.LimitOffset != nil || s.WithClause != nil || len(s.LockingClause) > 0
}

// walkSetOps calls visit for each operation of s's tree, s first (not
// its arms).
func walkSetOps(s *pg_query.SelectStmt, visit func(*pg_query.SelectStmt)) {
	visit(s)
	for _, n := range []*pg_query.SelectStmt{s.Larg, s.Rarg} {
		if !isArm(n) {
			walkSetOps(n, visit)
		}
	}
}

// unionSelect plans a UNION ALL of partitioned arms, or a UNION (dedup)
// of arms that are partitioned or the same on every shard: the statement
// runs on every shard, the gateway merges the rows for ORDER BY, removes
// duplicates between shards (dedup) and applies LIMIT and OFFSET.
func (p *planning) unionSelect(s *pg_query.SelectStmt, target engine.Target, dedup bool) (engine.Primitive, *Error) {
	var columns []string
	if dedup {
		var ok bool
		if columns, ok = outputNames(s); !ok {
			return nil, unsupported("UNION of SELECT * across shards is not supported yet; name the columns")
		}
	}
	distinct := func(in engine.Primitive) engine.Primitive {
		if !dedup {
			return in
		}
		return &engine.HashDistinct{Input: in, Columns: columns}
	}
	if len(s.SortClause) == 0 && s.LimitCount == nil && s.LimitOffset == nil {
		sc := p.scatter(target)
		sc.Query.Describe = dedup
		return distinct(sc), nil
	}
	if s.LimitOption == pg_query.LimitOption_LIMIT_OPTION_WITH_TIES {
		return nil, unsupported("FETCH FIRST ... WITH TIES on %s across shards is not supported yet", setOpName(s))
	}
	// ORDER BY names the operation's output columns, which a query over it
	// has too: each shard sorts that query's rows for the merge.
	body := proto.Clone(s).(*pg_query.SelectStmt)
	body.SortClause, body.LimitCount, body.LimitOffset = nil, nil, nil
	body.LimitOption = pg_query.LimitOption_LIMIT_OPTION_DEFAULT
	outer := &pg_query.SelectStmt{
		TargetList: []*pg_query.Node{starTarget()},
		FromClause: []*pg_query.Node{{Node: &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{
			Subquery: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: body}},
			Alias:    &pg_query.Alias{Aliasname: "sg_u"},
		}}}},
		SortClause:  proto.Clone(&pg_query.List{Items: s.SortClause}).(*pg_query.List).Items,
		LimitCount:  s.LimitCount,
		LimitOffset: s.LimitOffset,
		LimitOption: s.LimitOption,
		Op:          pg_query.SetOperation_SETOP_NONE,
	}
	if names, ok := outputNames(s); ok {
		// By name, so that each key brings its collation.
		for _, item := range outer.SortClause {
			sb := item.GetSortBy()
			if ord := ordinal(sb.Node); ord > 0 && ord <= len(names) && unique(names, names[ord-1]) {
				sb.Node = pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode("sg_u"), pg_query.MakeStrNode(names[ord-1])}, -1)
			}
		}
	}
	prim, err := p.multiShardSelect(outer, target)
	if err != nil || !dedup {
		return prim, err
	}
	if l, ok := prim.(*engine.Limit); ok {
		// Duplicates go before LIMIT counts rows.
		nl := *l
		nl.Input = distinct(l.Input)
		return &nl, nil
	}
	return distinct(prim), nil
}

// unique reports whether name occurs once in names.
func unique(names []string, name string) bool {
	n := 0
	for _, x := range names {
		if x == name {
			n++
		}
	}
	return n == 1
}

// outputNames are the names of a set operation's output columns, its
// leftmost arm's; ok is false when they are not known (a *).
func outputNames(s *pg_query.SelectStmt) ([]string, bool) {
	for !isPlainSelect(s) {
		s = s.Larg
	}
	var names []string
	for _, t := range s.TargetList {
		rt := t.GetResTarget()
		if isStar(rt.GetVal()) {
			return nil, false
		}
		name := rt.GetName()
		if name == "" {
			name = columnName(rt.GetVal())
		}
		names = append(names, name)
	}
	return names, len(names) > 0
}

// combineArms plans a set operation as its arms run one by one, combined
// by the gateway.
func (p *planning) combineArms(s *pg_query.SelectStmt, target engine.Target, arms []setArm) (engine.Primitive, *Error) {
	columns, _ := outputNames(s)
	plans := make([]engine.Primitive, len(arms))
	for i := range arms {
		var err *Error
		if plans[i], err = p.armPlan(s, target, arms, i); err != nil {
			return nil, err
		}
	}
	next := 0
	var build func(n *pg_query.SelectStmt) engine.Primitive
	build = func(n *pg_query.SelectStmt) engine.Primitive {
		if n != s && isArm(n) {
			next++
			return plans[next-1]
		}
		op := &engine.SetOp{Kind: engine.SetUnion, All: n.All, Columns: columns}
		switch n.Op {
		case pg_query.SetOperation_SETOP_INTERSECT:
			op.Kind = engine.SetIntersect
		case pg_query.SetOperation_SETOP_EXCEPT:
			op.Kind = engine.SetExcept
		}
		op.Left = build(n.Larg)
		op.Right = build(n.Rarg)
		return op
	}
	return build(s), nil
}

// armPlan plans arm i of set operation s on its own (see combineArms).
func (p *planning) armPlan(s *pg_query.SelectStmt, target engine.Target, arms []setArm, i int) (engine.Primitive, *Error) {
	a := arms[i]
	if a.info.sharded && !a.info.partitioned {
		// Its rows span shards: its own plan, in its own types.
		stmt := proto.Clone(a.stmt).(*pg_query.SelectStmt)
		if s.WithClause != nil {
			if stmt.WithClause != nil {
				return nil, unsupported("%s across shards with WITH both outside and inside an arm is not supported yet", setOpName(s))
			}
			stmt.WithClause = s.WithClause
		}
		sql, err := p.selectText(stmt)
		if err != nil {
			return nil, err
		}
		sub := &planning{vs: p.vs, sql: sql, version: p.version}
		prim, perr := sub.planSelect(stmt)
		if perr != nil {
			return nil, asError(perr)
		}
		r, ok := prim.(*engine.Route)
		if !ok {
			return nil, &Error{Code: CodeInternal, Message: "an arm of a set operation did not plan as a route"}
		}
		switch {
		case r.Target.Single():
			nr := *r
			nr.Query.Describe = true
			return &nr, nil
		case r.Refusal != nil:
			return nil, r.Refusal
		}
		return r.Multi, nil
	}
	// The whole operation as UNION ALL, with every other arm empty.
	next := 0
	var only func(n *pg_query.SelectStmt) *pg_query.SelectStmt
	only = func(n *pg_query.SelectStmt) *pg_query.SelectStmt {
		if n != s && isArm(n) {
			next++
			if next-1 == i {
				return n
			}
			return &pg_query.SelectStmt{
				TargetList: []*pg_query.Node{starTarget()},
				FromClause: []*pg_query.Node{{Node: &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{
					Subquery: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: n}},
					Alias:    &pg_query.Alias{Aliasname: "sg_empty" + strconv.Itoa(next)},
				}}}},
				LimitCount:  pg_query.MakeAConstIntNode(0, -1),
				LimitOption: pg_query.LimitOption_LIMIT_OPTION_COUNT,
				Op:          pg_query.SetOperation_SETOP_NONE,
			}
		}
		c := proto.Clone(n).(*pg_query.SelectStmt)
		c.Op, c.All = pg_query.SetOperation_SETOP_UNION, true
		c.Larg, c.Rarg = only(n.Larg), only(n.Rarg)
		return c
	}
	stmt := only(s)
	sql, err := p.selectText(stmt)
	if err != nil {
		return nil, err
	}
	q := engine.Query{SQL: sql, Describe: true}
	if !a.info.sharded {
		return &engine.Route{Target: engine.Target{Kind: engine.TargetAny}, Query: q}, nil
	}
	return &engine.Scatter{Target: target, Query: q}, nil
}
