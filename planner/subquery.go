package planner

import (
	"strconv"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/planner/engine"
)

// pullSubqueries plans a SELECT over several shards whose uncorrelated
// subqueries over sharded tables would see one shard's rows if each shard
// ran them: each runs first as a plan of its own, and the statement reads
// its result as a parameter after the client's (engine.Bind). The
// statement, so rewritten, is planned afresh. s changes.
func (p *planning) pullSubqueries(s *pg_query.SelectStmt, a *analysis) (engine.Primitive, *Error) {
	pulled := a.pulled
	first := maxParam(s) + 1
	subs := make([]engine.Subquery, len(pulled))
	replace := map[*pg_query.SubLink]*pg_query.Node{}
	for i, sl := range pulled {
		sub := sl.Subselect.GetSelectStmt()
		sql, err := p.selectText(sub)
		if err != nil {
			return nil, err
		}
		plan, err := (&planning{vs: p.vs, sql: sql, version: p.version}).planSubquery(sub)
		if err != nil {
			return nil, err
		}
		param := &pg_query.Node{Node: &pg_query.Node_ParamRef{ParamRef: &pg_query.ParamRef{Number: int32(first + i)}}}
		subs[i] = engine.Subquery{Plan: plan, Param: first + i, SQL: sql}
		switch sl.SubLinkType {
		case pg_query.SubLinkType_EXPR_SUBLINK:
			subs[i].Kind = engine.SubqueryValue
			replace[sl] = param
		case pg_query.SubLinkType_EXISTS_SUBLINK:
			subs[i].Kind = engine.SubqueryExists
			replace[sl] = param
		case pg_query.SubLinkType_ARRAY_SUBLINK:
			subs[i].Kind = engine.SubqueryArray
			replace[sl] = param
		case pg_query.SubLinkType_ANY_SUBLINK, pg_query.SubLinkType_ALL_SUBLINK:
			// x IN (SELECT ...) and x op ANY/ALL (SELECT ...) are, NULLs
			// included, x op ANY/ALL (array of its values).
			subs[i].Kind = engine.SubqueryArray
			kind, op := pg_query.A_Expr_Kind_AEXPR_OP_ANY, sl.OperName
			if sl.SubLinkType == pg_query.SubLinkType_ALL_SUBLINK {
				kind = pg_query.A_Expr_Kind_AEXPR_OP_ALL
			}
			if len(op) == 0 {
				op = []*pg_query.Node{pg_query.MakeStrNode("=")}
			}
			replace[sl] = pg_query.MakeAExprNode(kind, op, sl.Testexpr, param, -1)
		}
	}
	relations, err := p.pullRelations(a.relations, first+len(subs))
	if err != nil {
		return nil, err
	}
	for _, r := range relations {
		if r.first {
			subs = append(subs, r.plan)
		}
	}
	// A subquery in a select list names its column, which its parameter
	// would not.
	walk(s, func(m proto.Message) bool {
		if rt, ok := m.(*pg_query.ResTarget); ok && rt.Name == "" && replace[rt.GetVal().GetSubLink()] != nil {
			rt.Name = columnName(rt.Val)
		}
		return true
	})
	rewrite(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: s}}, func(n *pg_query.Node) *pg_query.Node {
		switch {
		case n.GetSubLink() != nil:
			return replace[n.GetSubLink()]
		case n.GetRangeSubselect() != nil, n.GetRangeVar() != nil:
			for _, r := range relations {
				if r.stands(n) {
					return r.placeholder(n)
				}
			}
		}
		return nil
	})
	dropPulledWith(s, relations)
	sql, err := p.selectText(s)
	if err != nil {
		return nil, err
	}
	outer, perr := (&planning{vs: p.vs, sql: sql, version: p.version, boundFrom: first}).planSelect(s)
	if perr != nil {
		return nil, asError(perr)
	}
	if r, ok := outer.(*engine.Route); ok && r.Refusal != nil && !r.Target.Single() {
		return nil, r.Refusal
	}
	return &engine.Bind{Subqueries: subs, Input: outer}, nil
}

// boundRelation is a pulled relation as planned: its subquery, and what
// stands for it in the statement.
type boundRelation struct {
	pulledRelation
	plan engine.Subquery
	// first is set on the first reference to its subquery.
	first bool
}

// pullRelations plans the derived tables and WITH queries whose rows span
// shards, each WITH query once however often the statement reads it; the
// first gets parameter first.
func (p *planning) pullRelations(pulled []pulledRelation, first int) ([]boundRelation, *Error) {
	var out []boundRelation
	planned := map[*pg_query.CommonTableExpr]engine.Subquery{}
	n := 0
	for _, r := range pulled {
		if sq, ok := planned[r.with]; ok && r.with != nil {
			out = append(out, boundRelation{pulledRelation: r, plan: sq})
			continue
		}
		var (
			sub   *pg_query.SelectStmt
			names []*pg_query.Node
		)
		if r.with != nil {
			sub, names = r.with.Ctequery.GetSelectStmt(), r.with.Aliascolnames
		} else {
			sub, names = r.sub.Subquery.GetSelectStmt(), r.sub.GetAlias().GetColnames()
		}
		sql, err := p.selectText(sub)
		if err != nil {
			return nil, err
		}
		plan, err := (&planning{vs: p.vs, sql: sql, version: p.version}).planSubquery(sub)
		if err != nil {
			return nil, err
		}
		sq := engine.Subquery{Plan: plan, Kind: engine.SubqueryRows, Param: first + n, SQL: sql}
		n++
		for _, c := range names {
			sq.Columns = append(sq.Columns, c.GetString_().GetSval())
		}
		planned[r.with] = sq
		out = append(out, boundRelation{pulledRelation: r, plan: sq, first: true})
	}
	return out, nil
}

// stands reports whether FROM item n is the pulled relation.
func (r *boundRelation) stands(n *pg_query.Node) bool {
	if r.with != nil {
		return n.GetRangeVar() == r.ref
	}
	return n.GetRangeSubselect() == r.pulledRelation.sub
}

// placeholder is the FROM item that stands for the relation in the
// statement until engine.Bind puts its rows there.
func (r *boundRelation) placeholder(n *pg_query.Node) *pg_query.Node {
	alias := &pg_query.Alias{}
	if rv := n.GetRangeVar(); rv != nil {
		alias.Aliasname = rv.Relname
		if rv.Alias != nil {
			alias.Aliasname = rv.Alias.Aliasname
		}
	} else if a := n.GetRangeSubselect().GetAlias(); a != nil {
		alias.Aliasname = a.Aliasname
	}
	if alias.Aliasname == "" {
		alias.Aliasname = "sg_derived_" + strconv.Itoa(r.plan.Param)
	}
	alias.Colnames = []*pg_query.Node{pg_query.MakeStrNode(engine.RowsColumns(r.plan.Param))}
	call := &pg_query.Node{Node: &pg_query.Node_FuncCall{FuncCall: &pg_query.FuncCall{
		Funcname:   []*pg_query.Node{pg_query.MakeStrNode(engine.RowsFunction(r.plan.Param))},
		Funcformat: pg_query.CoercionForm_COERCE_EXPLICIT_CALL,
	}}}
	return &pg_query.Node{Node: &pg_query.Node_RangeFunction{RangeFunction: &pg_query.RangeFunction{
		Functions: []*pg_query.Node{pg_query.MakeListNode([]*pg_query.Node{call, nil})},
		Alias:     alias,
	}}}
}

// dropPulledWith removes the pulled WITH queries from s: nothing reads
// them there any more.
func dropPulledWith(s *pg_query.SelectStmt, relations []boundRelation) {
	pulled := map[*pg_query.CommonTableExpr]bool{}
	for _, r := range relations {
		if r.with != nil {
			pulled[r.with] = true
		}
	}
	if len(pulled) == 0 {
		return
	}
	walk(s, func(m proto.Message) bool {
		if w, ok := m.(*pg_query.SelectStmt); ok && w.WithClause != nil {
			var keep []*pg_query.Node
			for _, c := range w.WithClause.Ctes {
				if !pulled[c.GetCommonTableExpr()] {
					keep = append(keep, c)
				}
			}
			w.WithClause.Ctes = keep
			if len(keep) == 0 {
				w.WithClause = nil
			}
		}
		return true
	})
}

// planSubquery plans a subquery that runs on its own.
func (p *planning) planSubquery(sub *pg_query.SelectStmt) (engine.Primitive, *Error) {
	prim, err := p.planSelect(sub)
	if err != nil {
		return nil, asError(err)
	}
	if r, ok := prim.(*engine.Route); ok && r.Refusal != nil && !r.Target.Single() {
		return nil, r.Refusal
	}
	return prim, nil
}

// asError is err as the planner's error type.
func asError(err error) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

// maxParam returns the highest parameter number s reads, 0 for none.
func maxParam(s *pg_query.SelectStmt) int {
	n := 0
	walk(s, func(m proto.Message) bool {
		if pr, ok := m.(*pg_query.ParamRef); ok {
			n = max(n, int(pr.Number))
		}
		return true
	})
	return n
}
