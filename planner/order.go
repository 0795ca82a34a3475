package planner

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/planner/engine"
)

// multiShardSelect plans a SELECT whose rows come from several shards
// unchanged: concatenated, or merged by ORDER BY, then cut by LIMIT and
// OFFSET. Shapes it cannot answer exactly give the refusal instead.
func (p *planning) multiShardSelect(s *pg_query.SelectStmt, target engine.Target) (engine.Primitive, *Error) {
	if len(s.SortClause) == 0 && s.LimitCount == nil && s.LimitOffset == nil || invalidSortKey(s) {
		// An ORDER BY Postgres rejects: each shard answers its error.
		return p.scatter(target), nil
	}
	ties := s.LimitOption == pg_query.LimitOption_LIMIT_OPTION_WITH_TIES
	if ties && len(s.SortClause) == 0 {
		// Postgres rejects it: each shard answers its error.
		return p.scatter(target), nil
	}
	if len(s.LockingClause) > 0 && (s.LimitCount != nil || s.LimitOffset != nil) {
		return nil, unsupported("LIMIT or OFFSET with FOR UPDATE/SHARE across shards is not supported: each shard would lock rows the answer leaves out")
	}
	count, offset, err := p.limits(s)
	if err != nil {
		return nil, err
	}
	shardStmt := proto.Clone(s).(*pg_query.SelectStmt)
	keys, hidden, err := p.sortKeys(s, shardStmt)
	if err != nil {
		return nil, err
	}
	if err := p.pushLimit(shardStmt, count, offset); err != nil {
		return nil, err
	}
	shardStmt.TargetList = append(shardStmt.TargetList, hidden...)
	sql, err := p.selectText(shardStmt)
	if err != nil {
		return nil, err
	}
	q := engine.Query{SQL: sql, Hidden: len(hidden)}
	var prim engine.Primitive = &engine.Scatter{Target: target, Query: q}
	if len(keys) > 0 {
		q.Describe = true
		probes := sortKeyProbes(keys)
		lean, err := p.leanText(shardStmt, probes, len(hidden), "NULL::text")
		if err != nil {
			return nil, err
		}
		prim = &engine.MergeSort{Target: target, Query: q, Keys: keys, KeepHidden: ties, Lean: lean, Probes: probes, Types: &engine.KeyTypes{}}
	}
	switch {
	case ties:
		// Rows equal to the last in the ORDER BY keys pass too; each
		// shard returns its own ties, so all of them arrive.
		prim = &engine.Limit{Input: prim, Count: count, Offset: offset, Ties: keys, Hidden: len(hidden)}
	case count.Set || offset.Set:
		prim = &engine.Limit{Input: prim, Count: count, Offset: offset}
	}
	return prim, nil
}

// sortKeyProbes are the sort keys' collation columns, as engine.Probes.
func sortKeyProbes(keys []engine.SortKey) []engine.Probe {
	var probes []engine.Probe
	for _, k := range keys {
		if k.Collation >= 0 {
			probes = append(probes, engine.Probe{Column: k.Collation, Ordinal: k.Ordinal, Hidden: k.Hidden})
		}
	}
	return probes
}

// leanText prints the shards' statement shard, whose last hidden columns
// are hidden, with the probes computed as null, a NULL of their type (see
// engine/lean.go); "" when there are none.
func (p *planning) leanText(shard *pg_query.SelectStmt, probes []engine.Probe, hidden int, null string) (string, *Error) {
	if len(probes) == 0 {
		return "", nil
	}
	lean := proto.Clone(shard).(*pg_query.SelectStmt)
	visible := len(lean.TargetList) - hidden
	for _, pr := range probes {
		null, err := p.parseExpr(null)
		if err != nil {
			return "", err
		}
		lean.TargetList[visible+pr.Column].GetResTarget().Val = null
	}
	return p.selectText(lean)
}

// limits reads a SELECT's LIMIT and OFFSET (see limitValue).
func (p *planning) limits(s *pg_query.SelectStmt) (count, offset engine.LimitValue, err *Error) {
	if count, err = p.limitValue(s.LimitCount, "LIMIT"); err != nil {
		return count, offset, err
	}
	offset, err = p.limitValue(s.LimitOffset, "OFFSET")
	return count, offset, err
}

// selectText prints a SELECT the planner rewrote for the shards.
func (p *planning) selectText(s *pg_query.SelectStmt) (string, *Error) {
	sql, err := pg_query.Deparse(&pg_query.ParseResult{Version: p.version, Stmts: []*pg_query.RawStmt{{Stmt: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: s}}}}})
	if err != nil {
		return "", &Error{Code: CodeInternal, Message: fmt.Sprintf("print the shards' statement: %v", err)}
	}
	return sql, nil
}

// limitValue reads a LIMIT or OFFSET: an integer literal, a parameter,
// NULL/ALL, or an expression without tables, which a shard computes once
// when the statement runs.
func (p *planning) limitValue(n *pg_query.Node, what string) (engine.LimitValue, *Error) {
	if n == nil {
		return engine.LimitValue{}, nil
	}
	expr := n
	if tc := n.GetTypeCast(); tc != nil {
		n = tc.Arg
	}
	if pr := n.GetParamRef(); pr != nil && pr.Number > 0 && expr == n {
		return engine.LimitValue{Set: true, Param: int(pr.Number)}, nil
	}
	if c := n.GetAConst(); c != nil && c.Val != nil && expr == n {
		if c.Isnull {
			return engine.LimitValue{}, nil
		}
		var text string
		switch v := c.Val.(type) {
		case *pg_query.A_Const_Ival:
			text = strconv.Itoa(int(v.Ival.Ival))
		case *pg_query.A_Const_Fval:
			text = v.Fval.Fval
		}
		if v, err := strconv.ParseInt(text, 10, 64); err == nil {
			return engine.LimitValue{Set: true, Value: v}, nil
		}
	}
	if c := expr.GetAConst(); c != nil && c.Isnull {
		return engine.LimitValue{}, nil
	}
	tables := false
	walk(expr, func(m proto.Message) bool {
		_, isTable := m.(*pg_query.RangeVar)
		tables = tables || isTable
		return !tables
	})
	if tables {
		return engine.LimitValue{}, unsupported("%s with a subquery over tables across shards is not supported", what)
	}
	text, err := p.exprText(expr)
	if err != nil {
		return engine.LimitValue{}, err
	}
	return engine.LimitValue{Set: true, Expr: text}, nil
}

// pushLimit asks each shard for the first count+offset rows, all the rows
// the answer can take from it, and leaves the OFFSET to the gateway.
func (p *planning) pushLimit(s *pg_query.SelectStmt, count, offset engine.LimitValue) *Error {
	s.LimitOffset = nil
	if s.LimitOption != pg_query.LimitOption_LIMIT_OPTION_WITH_TIES {
		s.LimitOption = pg_query.LimitOption_LIMIT_OPTION_COUNT
	}
	if !count.Set || count.Expr != "" || offset.Expr != "" {
		// An expression is computed once, by the gateway's Limit: the
		// shards return every row.
		s.LimitCount = nil
		if s.LimitOption == pg_query.LimitOption_LIMIT_OPTION_WITH_TIES {
			s.LimitOption = pg_query.LimitOption_LIMIT_OPTION_DEFAULT
		}
		return nil
	}
	var text string
	switch {
	case count.Param == 0 && offset.Param == 0:
		n := count.Value
		if offset.Value > 0 && n <= math.MaxInt64-offset.Value {
			n += offset.Value
		} else if offset.Value > 0 {
			n = math.MaxInt64
		}
		// A negative count fails at the gateway before any shard runs.
		text = strconv.FormatInt(max(n, 0), 10)
	default:
		// NULL (no limit) stays NULL; the sum cannot overflow bigint.
		text = fmt.Sprintf("LEAST((%s)::numeric + COALESCE((%s)::numeric, 0), %d)", count.SQL(), offset.SQL(), int64(math.MaxInt64))
	}
	n, err := p.parseExpr(text)
	if err != nil {
		return err
	}
	s.LimitCount = n
	return nil
}

// sortKeys reads the ORDER BY of s into the merge's keys, rewriting the
// shards' statement shard to sort by exactly the values the merge reads:
// each key that is not an output column becomes a hidden column the
// shards sort by, and each key gets a hidden column naming its collation.
func (p *planning) sortKeys(s, shard *pg_query.SelectStmt) ([]engine.SortKey, []*pg_query.Node, *Error) {
	star := -1 // the first target that is a *
	for i, t := range s.TargetList {
		if isStar(t.GetResTarget().GetVal()) && star < 0 {
			star = i
		}
	}
	var (
		keys   []engine.SortKey
		hidden []string
	)
	addHidden := func(text string) int {
		hidden = append(hidden, text)
		return len(hidden) - 1
	}
	for i, item := range s.SortClause {
		sb := item.GetSortBy()
		if sb == nil || sb.SortbyDir == pg_query.SortByDir_SORTBY_USING {
			return nil, nil, unsupported("ORDER BY ... USING across shards is not supported")
		}
		desc := sb.SortbyDir == pg_query.SortByDir_SORTBY_DESC
		k := engine.SortKey{Desc: desc, NullsFirst: desc, Collation: -1}
		switch sb.SortbyNulls {
		case pg_query.SortByNulls_SORTBY_NULLS_FIRST:
			k.NullsFirst = true
		case pg_query.SortByNulls_SORTBY_NULLS_LAST:
			k.NullsFirst = false
		}
		expr, err := p.exprText(sb.Node)
		if err != nil {
			return nil, nil, err
		}
		k.Text = expr
		// The expression whose collation the key sorts by, if known.
		var of *pg_query.Node
		switch ord, name := ordinal(sb.Node), outputRef(sb.Node); {
		case ord > 0:
			k.Ordinal = ord
			if (star < 0 || ord <= star) && ord <= len(s.TargetList) {
				of = s.TargetList[ord-1].GetResTarget().GetVal()
			}
		case name != "" && matchOutput(s.TargetList, name) >= 0:
			j := matchOutput(s.TargetList, name)
			if star >= 0 && star < j {
				return nil, nil, unsupported("ORDER BY %s across shards is not supported: it names an output column after *; use its expression", name)
			}
			k.Ordinal, of = j+1, s.TargetList[j].GetResTarget().GetVal()
		default:
			k.Hidden = addHidden(fmt.Sprintf("(%s) AS sg_key%d", expr, i+1))
			of = sb.Node
			shard.SortClause[i].GetSortBy().Node = pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(fmt.Sprintf("sg_key%d", i+1))}, 0)
		}
		if of != nil {
			text, err := p.exprText(of)
			if err != nil {
				return nil, nil, err
			}
			k.Collation = addHidden(collationOf(text) + fmt.Sprintf(" AS sg_collation%d", i+1))
		}
		keys = append(keys, k)
	}
	if len(hidden) == 0 {
		return keys, nil, nil
	}
	sel, err := p.parseSelect("SELECT " + strings.Join(hidden, ", "))
	if err != nil {
		return nil, nil, err
	}
	return keys, sel.TargetList, nil
}

// collationOf is an expression naming the collation expr sorts by: its
// own, or, for the database's default, the database's locale. The cast to
// text keeps a text expression's collation and gives any other type one,
// since pg_collation_for fails on a type without collations.
func collationOf(expr string) string {
	return `COALESCE(NULLIF(pg_catalog.pg_collation_for((` + expr + `)::text), '"default"'), ` +
		`(SELECT COALESCE(pg_catalog.to_jsonb(d) ->> 'datlocale', pg_catalog.to_jsonb(d) ->> 'daticulocale', d.datcollate::text) ` +
		`FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()))`
}

// invalidSortKey reports whether an ORDER BY key is a constant that is not
// a position in the select list, which Postgres rejects (42601, 42P10).
func invalidSortKey(s *pg_query.SelectStmt) bool {
	for _, item := range s.SortClause {
		n := item.GetSortBy().GetNode()
		if n.GetAConst() != nil && (ordinal(n) == 0 || !hasStar(s) && ordinal(n) > len(s.TargetList)) {
			return true
		}
	}
	return false
}

// hasStar reports whether a select list has a * entry.
func hasStar(s *pg_query.SelectStmt) bool {
	for _, t := range s.TargetList {
		if isStar(t.GetResTarget().GetVal()) {
			return true
		}
	}
	return false
}

// ordinal returns n for ORDER BY n, else 0.
func ordinal(n *pg_query.Node) int {
	if c := n.GetAConst(); c != nil {
		if v, ok := c.Val.(*pg_query.A_Const_Ival); ok && v.Ival.Ival > 0 {
			return int(v.Ival.Ival)
		}
	}
	return 0
}

// outputRef returns the name of ORDER BY name (one unqualified name),
// which Postgres reads as an output column when one has that name.
func outputRef(n *pg_query.Node) string {
	cr := n.GetColumnRef()
	if cr == nil || len(cr.Fields) != 1 {
		return ""
	}
	return cr.Fields[0].GetString_().GetSval()
}

// matchOutput returns the select-list entry whose output name is name, or
// -1.
func matchOutput(targets []*pg_query.Node, name string) int {
	for i, t := range targets {
		if outputName(t.GetResTarget()) == name {
			return i
		}
	}
	return -1
}

// outputName is a select-list entry's column name as Postgres names it,
// for the shapes ORDER BY names meet: an alias, a column, a function.
func outputName(t *pg_query.ResTarget) string {
	if t.GetName() != "" {
		return t.Name
	}
	v := t.GetVal()
	if tc := v.GetTypeCast(); tc != nil && tc.Arg.GetColumnRef() != nil {
		v = tc.Arg
	}
	switch {
	case v.GetColumnRef() != nil:
		f := v.GetColumnRef().Fields
		return f[len(f)-1].GetString_().GetSval()
	case v.GetFuncCall() != nil:
		return funcName(v.GetFuncCall())
	}
	return ""
}

// isStar reports whether a select-list entry is * or t.*.
func isStar(n *pg_query.Node) bool {
	cr := n.GetColumnRef()
	return cr != nil && len(cr.Fields) > 0 && cr.Fields[len(cr.Fields)-1].GetAStar() != nil
}

// exprText prints an expression as SQL.
func (p *planning) exprText(n *pg_query.Node) (string, *Error) {
	sel := &pg_query.SelectStmt{TargetList: []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Val: n}}}},
		Op: pg_query.SetOperation_SETOP_NONE, LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT}
	sql, err := pg_query.Deparse(&pg_query.ParseResult{Version: p.version, Stmts: []*pg_query.RawStmt{{Stmt: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}}}})
	if err != nil {
		return "", &Error{Code: CodeInternal, Message: fmt.Sprintf("print an expression: %v", err)}
	}
	return strings.TrimPrefix(sql, "SELECT "), nil
}

// parseSelect parses a SELECT the planner wrote.
func (p *planning) parseSelect(sql string) (*pg_query.SelectStmt, *Error) {
	tree, err := pg_query.Parse(sql)
	if err != nil || len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetSelectStmt() == nil {
		return nil, &Error{Code: CodeInternal, Message: fmt.Sprintf("parse %q: %v", sql, err)}
	}
	return tree.Stmts[0].Stmt.GetSelectStmt(), nil
}

// parseExpr parses an expression the planner wrote.
func (p *planning) parseExpr(text string) (*pg_query.Node, *Error) {
	sel, err := p.parseSelect("SELECT " + text)
	if err != nil {
		return nil, err
	}
	return sel.TargetList[0].GetResTarget().GetVal(), nil
}
