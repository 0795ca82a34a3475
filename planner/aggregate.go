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
	"variance": engine.AggVarSamp, "var_samp": engine.AggVarSamp, "var_pop": engine.AggVarPop,
	"stddev": engine.AggStddevSamp, "stddev_samp": engine.AggStddevSamp, "stddev_pop": engine.AggStddevPop,
	"array_agg": engine.AggArrayAgg, "string_agg": engine.AggStringAgg,
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
	case len(s.LockingClause) > 0:
		return nil, unsupported("FOR UPDATE/SHARE with aggregates is not supported")
	case s.LimitOption == pg_query.LimitOption_LIMIT_OPTION_WITH_TIES:
		return nil, unsupported("FETCH FIRST ... WITH TIES with aggregates across shards is not supported yet")
	}
	if invalidSortKey(s) {
		// An ORDER BY Postgres rejects: each shard answers its error.
		return p.scatter(target), nil
	}
	count, offset, err := p.limits(s)
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
	sortAfter := false // ORDER BY an aggregate: the gateway sorts the groups
	if len(s.GroupClause) > 0 {
		for _, item := range s.SortClause {
			n := item.GetSortBy().GetNode()
			if ord := ordinal(n); ord > 0 && ord <= len(s.TargetList) {
				n = s.TargetList[ord-1].GetResTarget().GetVal()
			} else if j := matchOutput(s.TargetList, outputRef(n)); outputRef(n) != "" && j >= 0 {
				n = s.TargetList[j].GetResTarget().GetVal()
			}
			sortAfter = sortAfter || hasAggregate(n)
		}
		if sortAfter {
			shard.SortClause = nil
		} else if keys, hidden, err = p.sortKeys(s, shard); err != nil {
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
		groups, groupText = append(groups, len(s.TargetList)+col), append(groupText, text)
		keys = append(keys, engine.SortKey{Hidden: col, Collation: coll, Text: text, Clause: "GROUP BY"})
		shard.SortClause = append(shard.SortClause, &pg_query.Node{Node: &pg_query.Node_SortBy{SortBy: &pg_query.SortBy{
			Node:        pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(fmt.Sprintf("sg_group%d", i+1))}, 0),
			SortbyDir:   pg_query.SortByDir_SORTBY_DEFAULT,
			SortbyNulls: pg_query.SortByNulls_SORTBY_NULLS_DEFAULT,
		}}})
	}

	// The DISTINCT aggregates' argument: grouped and sorted by after the
	// group keys.
	distinctArg, distinctText, err := p.distinctArgument(s, b)
	if err != nil {
		return nil, err
	}
	var distinct []int
	if distinctArg != nil {
		col := addHidden(fmt.Sprintf("(%s) AS sg_distinct", distinctText))
		coll := addHidden(collationOf(distinctText) + " AS sg_distinct_collation")
		distinct = []int{len(s.TargetList) + col}
		keys = append(keys, engine.SortKey{Hidden: col, Collation: coll, Text: distinctText, Clause: "DISTINCT"})
		shard.GroupClause = append(shard.GroupClause, proto.Clone(distinctArg).(*pg_query.Node))
		shard.SortClause = append(shard.SortClause, &pg_query.Node{Node: &pg_query.Node_SortBy{SortBy: &pg_query.SortBy{
			Node:        pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode("sg_distinct")}, 0),
			SortbyDir:   pg_query.SortByDir_SORTBY_DEFAULT,
			SortbyNulls: pg_query.SortByNulls_SORTBY_NULLS_DEFAULT,
		}}})
	}

	// Expressions over aggregates are evaluated after combining (ev).
	ev := &evaluating{p: p, b: b, s: s, shard: shard, addHidden: addHidden, groups: groups, groupText: groupText, distinct: distinctText}

	// HAVING: conditions without aggregates filter whole groups on each
	// shard; comparisons of an aggregate with a value are checked on the
	// combined values, other conditions evaluated with the expressions.
	var (
		having []engine.Having
		pushed []*pg_query.Node
	)
	for j, c := range conjuncts(s.HavingClause) {
		switch {
		case !hasAggregate(c):
			pushed = append(pushed, c)
		case simpleHaving(c):
			h, err := p.havingCondition(c, j, b, distinctText, addHidden)
			if err != nil {
				return nil, err
			}
			having = append(having, h)
		default:
			if err := ev.condition(c); err != nil {
				return nil, err
			}
		}
	}
	switch len(pushed) {
	case 0:
		shard.HavingClause = nil
	case 1:
		shard.HavingClause = pushed[0]
	default:
		shard.HavingClause = pg_query.MakeBoolExprNode(pg_query.BoolExprType_AND_EXPR, pushed, 0)
	}

	// The output columns: grouping expressions pass through, each
	// aggregate is combined from the shards' partials, expressions over
	// aggregates are evaluated after.
	var columns []engine.AggregateColumn
	for i, t := range s.TargetList {
		rt := t.GetResTarget()
		text, err := p.exprText(rt.GetVal())
		if err != nil {
			return nil, err
		}
		col := engine.AggregateColumn{Func: engine.AggFirst, Text: text, Collation: -1}
		f := rt.GetVal().GetFuncCall()
		switch {
		case f != nil && f.Over == nil && isAggregate(f):
			if err := p.combine(f, b, distinctText, &col); err != nil {
				return nil, err
			}
			if err := p.partials(f, &col, addHidden); err != nil {
				return nil, err
			}
		case hasAggregate(rt.GetVal()):
			if err := ev.column(i, rt); err != nil {
				return nil, err
			}
		}
		columns = append(columns, col)
	}
	// ORDER BY an aggregate: the gateway sorts the combined groups by
	// output columns, or by values the Evaluate computes after them (sort,
	// counted from the first), each key's collation passed on.
	var sortKeys []engine.SortKey
	var passOn []engine.AggregateColumn
	sort := map[int]int{} // key i sorts by ev.sorts[sort[i]]
	if sortAfter {
		for i, item := range s.SortClause {
			sb := item.GetSortBy()
			if sb.SortbyDir == pg_query.SortByDir_SORTBY_USING {
				return nil, unsupported("ORDER BY ... USING across shards is not supported")
			}
			desc := sb.SortbyDir == pg_query.SortByDir_SORTBY_DESC
			k := engine.SortKey{Desc: desc, NullsFirst: desc, Collation: len(passOn)}
			switch sb.SortbyNulls {
			case pg_query.SortByNulls_SORTBY_NULLS_FIRST:
				k.NullsFirst = true
			case pg_query.SortByNulls_SORTBY_NULLS_LAST:
				k.NullsFirst = false
			}
			collation := ""
			if j, ok := p.outputIndex(s, sb.Node); ok {
				k.Ordinal, k.Text = j+1, columns[j].Text
				// An expression over aggregates is not computed by the
				// shards, only its collation named.
				collation = columns[j].Text
				if ev.evaluated(j) {
					collation = "CASE WHEN false THEN (" + columns[j].Text + ") END"
				}
			} else {
				if k.Text, err = p.exprText(sb.Node); err != nil {
					return nil, err
				}
				if sort[i], err = ev.sortValue(sb.Node); err != nil {
					return nil, err
				}
				collation = "CASE WHEN false THEN (" + k.Text + ") END"
			}
			from := addHidden(collationOf(collation) + " AS sg_sort_collation")
			passOn = append(passOn, engine.AggregateColumn{Func: engine.AggFirst, From: from, Collation: -1, Text: "collation of " + k.Text})
			sortKeys = append(sortKeys, k)
		}
	}
	if len(extra) > 0 {
		sel, err := p.parseSelect("SELECT " + strings.Join(extra, ", "))
		if err != nil {
			return nil, err
		}
		hidden = append(hidden, sel.TargetList...)
	}
	shard.TargetList = append(shard.TargetList, hidden...)
	if len(s.GroupClause) == 0 && distinct == nil {
		// One row per shard; the ORDER BY of one row orders nothing.
		shard.SortClause = nil
	}
	sql, err := p.selectText(shard)
	if err != nil {
		return nil, err
	}
	q := engine.Query{SQL: sql, Hidden: len(hidden), Describe: true, Internal: ev.active()}
	var input engine.Primitive = &engine.Scatter{Target: target, Query: q}
	if len(groups) > 0 || distinct != nil {
		probes := sortKeyProbes(keys)
		if !ev.active() {
			probes = append(probes, extremeProbes(columns, having)...)
		}
		lean, err := p.leanText(shard, probes, len(hidden), "NULL::text")
		if err != nil {
			return nil, err
		}
		input = &engine.MergeSort{Target: target, Query: q, Keys: keys, KeepHidden: true, Lean: lean, Probes: probes, Types: &engine.KeyTypes{}}
	}
	var prim engine.Primitive = &engine.Aggregate{Input: input, Columns: columns, Extra: append(ev.extra, passOn...), Having: having,
		Groups: groups, GroupText: groupText, Distinct: distinct, DistinctText: distinctText, Hidden: len(hidden)}
	sortHidden := len(passOn)
	if ev.active() {
		// The Evaluate returns the output columns, the ORDER BY values
		// that are none of them, then the keys' collations.
		prim = ev.finish(prim, columns, passOn)
		for i := range sortKeys {
			if v, ok := sort[i]; ok {
				sortKeys[i].Ordinal = len(columns) + v + 1
			}
			sortKeys[i].Collation += len(ev.sorts)
		}
		sortHidden += len(ev.sorts)
	}
	if sortAfter {
		prim = &engine.Sort{Input: prim, Keys: sortKeys, Hidden: sortHidden}
	}
	if count.Set || offset.Set {
		prim = &engine.Limit{Input: prim, Count: count, Offset: offset}
	}
	return prim, nil
}

// simpleHaving reports whether a HAVING condition compares an aggregate
// with a value without aggregates, which the gateway checks itself (see
// havingCondition).
func simpleHaving(c *pg_query.Node) bool {
	ae := c.GetAExpr()
	if ae == nil || ae.Kind != pg_query.A_Expr_Kind_AEXPR_OP || len(ae.Name) != 1 {
		return false
	}
	if _, ok := comparisonOps[ae.Name[0].GetString_().GetSval()]; !ok {
		return false
	}
	plain := func(n *pg_query.Node) bool {
		f := n.GetFuncCall()
		return f != nil && f.Over == nil && isAggregate(f)
	}
	return plain(ae.Lexpr) && !hasAggregate(ae.Rexpr) || plain(ae.Rexpr) && !hasAggregate(ae.Lexpr)
}

// comparisonOps are the HAVING comparisons the gateway checks, and each
// one's mirror (a < b is b > a).
var comparisonOps = map[string]string{"=": "=", "<>": "<>", "!=": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

// havingCondition plans HAVING aggregate op expression (j-th condition):
// the aggregate's partials and the expression, computed by the shards in
// the aggregate's type, become hidden columns.
func (p *planning) havingCondition(c *pg_query.Node, j int, b *block, distinct string, addHidden func(string) int) (engine.Having, *Error) {
	text, err := p.exprText(c)
	if err != nil {
		return engine.Having{}, err
	}
	// simpleHaving has checked its shape.
	ae := c.GetAExpr()
	op := ae.Name[0].GetString_().GetSval()
	agg, other := ae.Lexpr, ae.Rexpr
	if f := agg.GetFuncCall(); f == nil || f.Over != nil || !isAggregate(f) {
		agg, other, op = other, agg, comparisonOps[op]
	}
	f := agg.GetFuncCall()
	aggText, err := p.exprText(agg)
	if err != nil {
		return engine.Having{}, err
	}
	otherText, err := p.exprText(other)
	if err != nil {
		return engine.Having{}, err
	}
	if op == "!=" {
		op = "<>"
	}
	h := engine.Having{Value: engine.AggregateColumn{Text: aggText, Collation: -1}, Op: op, Text: text}
	if err := p.combine(f, b, distinct, &h.Value); err != nil {
		return engine.Having{}, err
	}
	h.Partial = addHidden(fmt.Sprintf("%s AS sg_having%d", aggText, j+1))
	if err := p.partials(f, &h.Value, addHidden); err != nil {
		return engine.Having{}, err
	}
	h.Const = addHidden(fmt.Sprintf("CASE WHEN false THEN %s ELSE (%s) END AS sg_having_value%d", aggText, otherText, j+1))
	return h, nil
}

// extremeProbes are the collation columns of the min and max among the
// output columns and the HAVING conditions, as engine.Probes.
func extremeProbes(columns []engine.AggregateColumn, having []engine.Having) []engine.Probe {
	var probes []engine.Probe
	extreme := func(c engine.AggregateColumn) bool {
		return (c.Func == engine.AggMin || c.Func == engine.AggMax) && c.Collation >= 0
	}
	for i, c := range columns {
		if extreme(c) {
			probes = append(probes, engine.Probe{Column: c.Collation, Ordinal: i + 1})
		}
	}
	for _, h := range having {
		if extreme(h.Value) {
			probes = append(probes, engine.Probe{Column: h.Value.Collation, Hidden: h.Partial})
		}
	}
	return probes
}

// partials adds, as hidden columns, what combining an aggregate reads
// beyond its per-shard value: min and max's collation, avg's sum and
// count, the variances' count, numeric sum and sum of squares.
func (p *planning) partials(f *pg_query.FuncCall, col *engine.AggregateColumn, addHidden func(string) int) *Error {
	var err *Error
	switch col.Func {
	case engine.AggMin, engine.AggMax:
		// The aggregate's result has its argument's collation.
		col.Collation = addHidden(collationOf(col.Text) + " AS sg_agg_collation")
	case engine.AggAvg:
		if col.Sum, err = p.partial(f, "sum", "", "sg_sum", addHidden); err == nil {
			col.Count, err = p.partial(f, "count", "", "sg_count", addHidden)
		}
	case engine.AggArrayAgg, engine.AggStringAgg:
		err = p.orderedPartials(f, col, addHidden)
	case engine.AggVarSamp, engine.AggVarPop, engine.AggStddevSamp, engine.AggStddevPop:
		if col.Count, err = p.partial(f, "count", "", "sg_count", addHidden); err == nil {
			if col.Sum, err = p.partial(f, "sum", "(%[1]s)::numeric", "sg_sum", addHidden); err == nil {
				col.Squares, err = p.partial(f, "sum", "(%[1]s)::numeric * (%[1]s)::numeric", "sg_squares", addHidden)
			}
		}
	}
	return err
}

// orderedPartials adds an ordered aggregate's hidden partials: each ORDER
// BY key's values, as an array in the aggregate's order, with its
// collation; string_agg's elements as an array.
func (p *planning) orderedPartials(f *pg_query.FuncCall, col *engine.AggregateColumn, addHidden func(string) int) *Error {
	arrayOf := func(arg *pg_query.Node, alias string) (string, int, *Error) {
		call := proto.Clone(f).(*pg_query.FuncCall)
		call.Funcname = []*pg_query.Node{pg_query.MakeStrNode("array_agg")}
		call.Args = []*pg_query.Node{arg}
		text, err := p.exprText(&pg_query.Node{Node: &pg_query.Node_FuncCall{FuncCall: call}})
		if err != nil {
			return "", 0, err
		}
		return text, addHidden(text + " AS " + alias), nil
	}
	for _, item := range f.AggOrder {
		sb := item.GetSortBy()
		if sb == nil || sb.SortbyDir == pg_query.SortByDir_SORTBY_USING {
			return unsupported("%s with ORDER BY ... USING across shards is not supported", col.Text)
		}
		text, err := p.exprText(sb.Node)
		if err != nil {
			return err
		}
		k := engine.SortKey{Text: text, Desc: sb.SortbyDir == pg_query.SortByDir_SORTBY_DESC}
		k.NullsFirst = k.Desc
		switch sb.SortbyNulls {
		case pg_query.SortByNulls_SORTBY_NULLS_FIRST:
			k.NullsFirst = true
		case pg_query.SortByNulls_SORTBY_NULLS_LAST:
			k.NullsFirst = false
		}
		var keys string
		if keys, k.Hidden, err = arrayOf(sb.Node, "sg_order_key"); err != nil {
			return err
		}
		// An element has the key's collation; the key itself is no
		// grouped value.
		k.Collation = addHidden(collationOf("("+keys+")[1]") + " AS sg_order_collation")
		col.Order = append(col.Order, k)
	}
	if col.Func == engine.AggStringAgg {
		var err *Error
		_, col.Elements, err = arrayOf(f.Args[0], "sg_elements")
		return err
	}
	return nil
}

// partial adds aggregate f turned into name() as hidden column alias,
// with its FILTER; arg, when set, is its argument as a format of f's.
func (p *planning) partial(f *pg_query.FuncCall, name, arg, alias string, addHidden func(string) int) (int, *Error) {
	call := proto.Clone(f).(*pg_query.FuncCall)
	call.Funcname = []*pg_query.Node{pg_query.MakeStrNode(name)}
	if arg != "" {
		text, err := p.exprText(f.Args[0])
		if err != nil {
			return 0, err
		}
		if call.Args[0], err = p.parseExpr(fmt.Sprintf(arg, text)); err != nil {
			return 0, err
		}
	}
	text, err := p.exprText(&pg_query.Node{Node: &pg_query.Node_FuncCall{FuncCall: call}})
	if err != nil {
		return 0, err
	}
	return addHidden(text + " AS " + alias), nil
}

// combine says how an aggregate's per-shard partials combine into col, or
// why they cannot. distinct is the argument of the statement's DISTINCT
// aggregates that the shards group by (see distinctArgument), "" for none.
func (p *planning) combine(f *pg_query.FuncCall, b *block, distinct string, col *engine.AggregateColumn) *Error {
	name := strings.ToLower(funcName(f))
	fn, ok := combinable[name]
	switch {
	case !ok || f.AggWithinGroup || len(f.Funcname) > 2:
		return unsupported("aggregate function %s() across shards is not supported yet", name)
	case len(f.Args) > 1 && fn != engine.AggStringAgg:
		return unsupported("%s() with several arguments across shards is not supported", name)
	case f.AggDistinct && fn >= engine.AggVarSamp:
		return unsupported("%s(DISTINCT ...) across shards is not supported", name)
	case fn == engine.AggStringAgg:
		// The delimiter goes between elements from different shards too.
		if len(f.Args) != 2 {
			return unsupported("string_agg() across shards takes a value and a delimiter")
		}
		c := f.Args[1].GetAConst()
		switch {
		case c != nil && c.Isnull:
		case c != nil && c.GetSval() != nil:
			d := c.GetSval().Sval
			col.Delimiter = &d
		default:
			return unsupported("string_agg() across shards is supported only with a constant delimiter")
		}
	}
	col.Func = fn
	if f.AggDistinct && dedups(fn) && (len(f.Args) != 1 || b.shardingColumn(f.Args[0]) == nil) {
		// The shards group by the argument too: each computes the
		// aggregate per value, and the gateway combines each value once.
		text, err := p.exprText(f.Args[0])
		if err != nil {
			return err
		}
		if text != distinct {
			return &Error{Code: CodeInternal, Message: fmt.Sprintf("%s(DISTINCT %s) planned without grouping by its argument", name, text)}
		}
		col.Distinct = true
	}
	return nil
}

// dedups reports whether DISTINCT changes what aggregate fn returns.
func dedups(fn engine.AggFunc) bool {
	return fn != engine.AggMin && fn != engine.AggMax && fn != engine.AggBoolAnd && fn != engine.AggBoolOr
}

// distinctArgument finds the argument of the statement's DISTINCT
// aggregates (count(DISTINCT x), sum(DISTINCT x)) when it is not the
// sharding column, whose distinct values live on one shard each. The
// shards group by it too, so that the gateway can combine each value's
// partials once; every DISTINCT aggregate must then share it.
func (p *planning) distinctArgument(s *pg_query.SelectStmt, b *block) (*pg_query.Node, string, *Error) {
	var (
		arg       *pg_query.Node
		text, key string
		err       *Error
	)
	visit := func(f *pg_query.FuncCall) {
		fn, ok := combinable[strings.ToLower(funcName(f))]
		if err != nil || !ok || !f.AggDistinct || !dedups(fn) || len(f.Args) != 1 {
			return
		}
		t, e := p.exprText(f.Args[0])
		switch {
		case e != nil:
			err = e
		case b.shardingColumn(f.Args[0]) != nil:
			key = t
		case arg == nil:
			arg, text = f.Args[0], t
		case t != text:
			err = unsupported("DISTINCT aggregates over %s and %s across shards are not supported: only over one argument", text, t)
		}
	}
	for _, t := range s.TargetList {
		walkAggregates(t, visit)
	}
	walkAggregates(s.HavingClause, visit)
	if err == nil && arg != nil && key != "" {
		err = unsupported("DISTINCT aggregates over %s and %s across shards are not supported: only over one argument", text, key)
	}
	return arg, text, err
}

// outputIndex finds the select-list entry an ORDER BY key of a grouped
// statement names: by position, by output name, or as the same
// expression.
func (p *planning) outputIndex(s *pg_query.SelectStmt, n *pg_query.Node) (int, bool) {
	if ord := ordinal(n); ord > 0 && ord <= len(s.TargetList) {
		return ord - 1, true
	}
	if name := outputRef(n); name != "" {
		if j := matchOutput(s.TargetList, name); j >= 0 {
			return j, true
		}
	}
	text, err := p.exprText(n)
	if err != nil {
		return 0, false
	}
	for j, t := range s.TargetList {
		if tt, err := p.exprText(t.GetResTarget().GetVal()); err == nil && tt == text {
			return j, true
		}
	}
	return 0, false
}

// hasAggregate reports whether n calls an aggregate (outside nested
// queries).
func hasAggregate(n *pg_query.Node) bool {
	found := false
	walkAggregates(n, func(*pg_query.FuncCall) { found = true })
	return found
}

// distinctSelect plans SELECT DISTINCT and DISTINCT ON across shards: each
// shard removes its own duplicates and sorts by the query's ORDER BY, then
// the distinct columns; the gateway merges the streams and keeps the first
// row of each run of equal rows (for DISTINCT ON, of equal ON values),
// which is Postgres's first in the ORDER BY.
func (p *planning) distinctSelect(s *pg_query.SelectStmt, target engine.Target, b *block) (engine.Primitive, *Error) {
	switch {
	case needsAggregate(s, b) || len(s.GroupClause) > 0:
		return nil, unsupported("DISTINCT with aggregates or GROUP BY across shards is not supported yet")
	case hasStar(s):
		return nil, unsupported("SELECT DISTINCT * across shards is not supported; name the columns")
	case len(s.LockingClause) > 0:
		return nil, unsupported("DISTINCT with FOR UPDATE/SHARE is not supported")
	case s.LimitOption == pg_query.LimitOption_LIMIT_OPTION_WITH_TIES:
		return nil, unsupported("FETCH FIRST ... WITH TIES with DISTINCT across shards is not supported yet")
	case invalidSortKey(s):
		// An ORDER BY Postgres rejects: each shard answers its error.
		return p.scatter(target), nil
	}
	count, offset, err := p.limits(s)
	if err != nil {
		return nil, err
	}
	on := s.DistinctClause
	if len(on) == 1 && on[0].GetNode() == nil {
		on = nil // plain DISTINCT: every column
		if len(s.SortClause) == 0 {
			return p.hashDistinct(s, target, count, offset)
		}
	}
	shard := proto.Clone(s).(*pg_query.SelectStmt)
	keys, hidden, err := p.sortKeys(s, shard)
	if err != nil {
		return nil, err
	}
	if err := p.pushLimit(shard, count, offset); err != nil {
		return nil, err
	}
	var extra []string
	addHidden := func(text string) int {
		extra = append(extra, text)
		return len(hidden) + len(extra) - 1
	}
	sortBy := func(n *pg_query.Node) {
		shard.SortClause = append(shard.SortClause, &pg_query.Node{Node: &pg_query.Node_SortBy{SortBy: &pg_query.SortBy{
			Node: n, SortbyDir: pg_query.SortByDir_SORTBY_DEFAULT, SortbyNulls: pg_query.SortByNulls_SORTBY_NULLS_DEFAULT}}})
	}
	var groups []int
	var groupText []string
	if on == nil {
		for i, t := range s.TargetList {
			text, err := p.exprText(t.GetResTarget().GetVal())
			if err != nil {
				return nil, err
			}
			coll := addHidden(collationOf(text) + fmt.Sprintf(" AS sg_distinct_collation%d", i+1))
			keys = append(keys, engine.SortKey{Ordinal: i + 1, Collation: coll, Text: text, Clause: "DISTINCT"})
			groups, groupText = append(groups, i), append(groupText, text)
			sortBy(pg_query.MakeAConstIntNode(int64(i+1), 0))
		}
	} else {
		for i, e := range on {
			if ord := ordinal(e); ord > 0 && ord <= len(s.TargetList) {
				e = s.TargetList[ord-1].GetResTarget().GetVal()
			}
			text, err := p.exprText(e)
			if err != nil {
				return nil, err
			}
			col := addHidden(fmt.Sprintf("(%s) AS sg_distinct%d", text, i+1))
			coll := addHidden(collationOf(text) + fmt.Sprintf(" AS sg_distinct_collation%d", i+1))
			keys = append(keys, engine.SortKey{Hidden: col, Collation: coll, Text: text, Clause: "GROUP BY"})
			groups, groupText = append(groups, len(s.TargetList)+col), append(groupText, text)
			sortBy(pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(fmt.Sprintf("sg_distinct%d", i+1))}, 0))
		}
	}
	if len(extra) > 0 {
		sel, err := p.parseSelect("SELECT " + strings.Join(extra, ", "))
		if err != nil {
			return nil, err
		}
		hidden = append(hidden, sel.TargetList...)
	}
	shard.TargetList = append(shard.TargetList, hidden...)
	sql, err := p.selectText(shard)
	if err != nil {
		return nil, err
	}
	columns := make([]engine.AggregateColumn, len(s.TargetList))
	for i := range columns {
		columns[i] = engine.AggregateColumn{Func: engine.AggFirst, Collation: -1}
		columns[i].Text, _ = p.exprText(s.TargetList[i].GetResTarget().GetVal())
	}
	q := engine.Query{SQL: sql, Hidden: len(hidden), Describe: true}
	probes := sortKeyProbes(keys)
	lean, err := p.leanText(shard, probes, len(hidden), "NULL::text")
	if err != nil {
		return nil, err
	}
	var prim engine.Primitive = &engine.Aggregate{
		Input:   &engine.MergeSort{Target: target, Query: q, Keys: keys, KeepHidden: true, Lean: lean, Probes: probes, Types: &engine.KeyTypes{}},
		Columns: columns, Groups: groups, GroupText: groupText, Hidden: len(hidden)}
	if count.Set || offset.Set {
		prim = &engine.Limit{Input: prim, Count: count, Offset: offset}
	}
	return prim, nil
}

// hashDistinct plans SELECT DISTINCT without ORDER BY across shards: each
// shard removes its own duplicates, the gateway passes on the first of
// equal rows as they come, remembering what it passed (within a memory
// limit). A hidden column tells whether the columns' collations are
// deterministic, as telling text apart by its bytes needs.
func (p *planning) hashDistinct(s *pg_query.SelectStmt, target engine.Target, count, offset engine.LimitValue) (engine.Primitive, *Error) {
	shard := proto.Clone(s).(*pg_query.SelectStmt)
	if err := p.pushLimit(shard, count, offset); err != nil {
		return nil, err
	}
	texts, collations := make([]string, len(s.TargetList)), make([]string, len(s.TargetList))
	for i, t := range s.TargetList {
		text, err := p.exprText(t.GetResTarget().GetVal())
		if err != nil {
			return nil, err
		}
		texts[i] = text
		collations[i] = fmt.Sprintf("pg_catalog.pg_collation_for((%s)::text)::pg_catalog.regcollation", text)
	}
	hidden, err := p.parseSelect(fmt.Sprintf("SELECT (SELECT pg_catalog.bool_and(sg_c.collisdeterministic) FROM pg_catalog.pg_collation sg_c WHERE sg_c.oid IN (%s)) AS sg_deterministic",
		strings.Join(collations, ", ")))
	if err != nil {
		return nil, err
	}
	shard.TargetList = append(shard.TargetList, hidden.TargetList...)
	sql, err := p.selectText(shard)
	if err != nil {
		return nil, err
	}
	// Whether the collations are deterministic matters only for text.
	probes := []engine.Probe{{Column: 0, Visible: true}}
	lean, err := p.leanText(shard, probes, 1, "NULL::boolean")
	if err != nil {
		return nil, err
	}
	var prim engine.Primitive = &engine.HashDistinct{
		Input: &engine.Scatter{Target: target, Query: engine.Query{SQL: sql, Hidden: 1, Describe: true},
			Lean: lean, Probes: probes, Types: &engine.KeyTypes{}},
		Columns: texts, Hidden: 1, Deterministic: true}
	if count.Set || offset.Set {
		prim = &engine.Limit{Input: prim, Count: count, Offset: offset}
	}
	return prim, nil
}
