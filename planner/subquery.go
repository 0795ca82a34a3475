package planner

import (
	"fmt"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/vschema"
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
			// Cast to the subquery's type with its modifier once known.
			subs[i].Kind = engine.SubqueryValue
			replace[sl] = valueParam(first + i)
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
	r, ok := outer.(*engine.Route)
	if ok && r.Refusal != nil && !r.Target.Single() {
		return nil, r.Refusal
	}
	if _, scatters := r.Multi.(*engine.Scatter); ok && scatters && len(subs) == 1 && len(relations) == 1 && relations[0].rowWise && rowWise(s) {
		subs[0].Rounds = true
	}
	return &engine.Bind{Subqueries: subs, Input: outer}, nil
}

// rowWise reports whether a SELECT's rows each come from one row of its
// FROM: no aggregate, grouping, DISTINCT, window, ORDER BY or LIMIT, so
// that it may run over the rows of a relation a round at a time.
func rowWise(s *pg_query.SelectStmt) bool {
	if !isPlainSelect(s) || len(s.GroupClause) > 0 || s.HavingClause != nil || len(s.DistinctClause) > 0 || len(s.WindowClause) > 0 ||
		len(s.SortClause) > 0 || s.LimitCount != nil || s.LimitOffset != nil {
		return false
	}
	ok := true
	for _, t := range s.TargetList {
		walk(t, func(m proto.Message) bool {
			switch n := m.(type) {
			case *pg_query.SelectStmt:
				return false
			case *pg_query.FuncCall:
				if n.Over != nil || isAggregate(n) {
					ok = false
				}
			}
			return ok
		})
	}
	return ok
}

// locks reports whether a statement locks rows (FOR UPDATE, FOR SHARE).
func locks(stmt proto.Message) bool {
	found := false
	walk(stmt, func(m proto.Message) bool {
		if _, ok := m.(*pg_query.LockingClause); ok {
			found = true
		}
		return !found
	})
	return found
}

// Gather plans sql, one SELECT, by gathering the rows of its sharded
// tables to one shard (see gatherSelect): for a statement whose plan over
// shards was refused when it ran.
func Gather(vs *vschema.Keyspace, sql string) (engine.Primitive, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil || len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetSelectStmt() == nil {
		return nil, &Error{Code: CodeInternal, Message: "gather: not one SELECT"}
	}
	if locks(tree.Stmts[0].Stmt) {
		// The copies of rows cannot be locked.
		return nil, unsupported("this statement cannot be gathered")
	}
	p := &planning{vs: vs, sql: sql, version: tree.Version}
	g, perr := p.gatherSelect()
	if perr != nil {
		return nil, perr
	}
	return g, nil
}

// gatherSelect plans a SELECT that the shards cannot compute apart (a
// window over all rows, a subquery correlated on another column, an
// outer join that pads a reference table, a recursive WITH query over
// sharded tables): every sharded table it reads runs first as a plan of
// its own, with the WHERE terms that read only that table when it stands
// alone in its FROM, and one shard runs the statement over their rows,
// bound as relations. Postgres computes every part of it then, exactly;
// the gateway holds the rows up to the memory limit, past which the
// statement fails with 53200.
func (p *planning) gatherSelect() (engine.Primitive, *Error) {
	tree, err := pg_query.Parse(p.sql)
	if err != nil {
		return nil, &Error{Code: CodeSyntaxError, Message: err.Error()}
	}
	s := tree.Stmts[0].Stmt.GetSelectStmt()
	withNames := map[string]bool{}
	walk(s, func(m proto.Message) bool {
		if c, ok := m.(*pg_query.CommonTableExpr); ok {
			withNames[c.Ctename] = true
		}
		return true
	})
	var relations []pulledRelation
	var ferr *Error
	var fromItem func(item *pg_query.Node, where *pg_query.Node, alone bool)
	fromItem = func(item *pg_query.Node, where *pg_query.Node, alone bool) {
		switch n := item.Node.(type) {
		case *pg_query.Node_JoinExpr:
			inner := n.JoinExpr.Jointype == pg_query.JoinType_JOIN_INNER
			fromItem(n.JoinExpr.Larg, where, alone && inner)
			fromItem(n.JoinExpr.Rarg, where, alone && inner)
		case *pg_query.Node_RangeVar:
			rv := n.RangeVar
			if rv.Schemaname == "" && withNames[rv.Relname] {
				return
			}
			t, catalog, err := p.resolve(rv)
			if err != nil {
				ferr = asError(err)
				return
			}
			if catalog || t.Kind != vschema.Sharded {
				return
			}
			r := pulledRelation{join: rv}
			name := rv.Relname
			if rv.Alias != nil {
				name = rv.Alias.Aliasname
			}
			if alone {
				for _, c := range conjuncts(where) {
					if onlyReads(c, name) {
						r.pushed = append(r.pushed, c)
					}
				}
			}
			relations = append(relations, r)
		}
	}
	walk(s, func(m proto.Message) bool {
		if lvl, ok := m.(*pg_query.SelectStmt); ok && isPlainSelect(lvl) {
			for _, item := range lvl.FromClause {
				fromItem(item, lvl.WhereClause, true)
			}
		}
		return ferr == nil
	})
	if ferr != nil {
		return nil, ferr
	}
	if len(relations) == 0 {
		return nil, unsupported("nothing to gather")
	}
	summed := summedColumns(s)
	for i := range relations {
		relations[i].summed = summed
	}
	return p.pullSubqueries(s, &analysis{relations: relations})
}

// orderedSums are the aggregates whose value over floats depends on the
// order they add their rows in.
var orderedSums = setOf("sum", "avg", "variance", "var_samp", "var_pop", "stddev", "stddev_samp", "stddev_pop",
	"corr", "covar_pop", "covar_samp", "regr_avgx", "regr_avgy", "regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy", "regr_syy")

// summedColumns names the columns a statement's orderedSums read.
func summedColumns(s *pg_query.SelectStmt) []string {
	var out []string
	walk(s, func(m proto.Message) bool {
		f, ok := m.(*pg_query.FuncCall)
		if !ok || !orderedSums[strings.ToLower(funcName(f))] {
			return true
		}
		for _, a := range f.Args {
			walk(a, func(m proto.Message) bool {
				if cr, ok := m.(*pg_query.ColumnRef); ok {
					if name := lastString(cr.Fields); name != "" {
						out = append(out, name)
					}
				}
				return true
			})
		}
		return true
	})
	return out
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
			err   *Error
		)
		switch {
		case r.with != nil:
			sub, names = r.with.Ctequery.GetSelectStmt(), r.with.Aliascolnames
		case r.join != nil:
			if sub, err = p.joinSide(r); err != nil {
				return nil, err
			}
		default:
			sub, names = r.sub.Subquery.GetSelectStmt(), r.sub.GetAlias().GetColnames()
		}
		var (
			plan engine.Primitive
			sql  string
		)
		collations := r.join != nil
		switch {
		case r.join != nil:
			plan, sql, err = p.joinSidePlan(sub)
		default:
			if sql, err = p.selectText(sub); err != nil {
				return nil, err
			}
			if plan, collations = p.probedPlan(sub, sql); plan == nil {
				plan, err = (&planning{vs: p.vs, sql: sql, version: p.version}).planSubquery(sub)
			}
		}
		if err != nil {
			return nil, err
		}
		sq := engine.Subquery{Plan: plan, Kind: engine.SubqueryRows, Param: first + n, SQL: sql, Collations: collations, Summed: r.summed}
		n++
		if r.table != nil {
			sq.Partition = &engine.Partition{Column: r.column, Table: r.table}
		}
		for _, c := range names {
			sq.Columns = append(sq.Columns, c.GetString_().GetSval())
		}
		planned[r.with] = sq
		out = append(out, boundRelation{pulledRelation: r, plan: sq, first: true})
	}
	return out, nil
}

// joinSide is the statement that reads the rows of a table joined at the
// gateway: all its columns, with the WHERE terms that read it only, and
// last the collations its columns declare (see engine.Subquery.Collations).
func (p *planning) joinSide(r pulledRelation) (*pg_query.SelectStmt, *Error) {
	rel := quoteIdent(r.join.Relname)
	if r.join.Schemaname != "" {
		rel = quoteIdent(r.join.Schemaname) + "." + rel
	}
	collations, err := p.parseExpr(`(SELECT pg_catalog.jsonb_object_agg(a.attname, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.collname)) ` +
		`FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_collation c ON c.oid = a.attcollation JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace ` +
		`WHERE a.attrelid = ` + quoteLiteral(rel) + `::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attcollation <> 100)`)
	if err != nil {
		return nil, err
	}
	s := &pg_query.SelectStmt{
		TargetList: []*pg_query.Node{
			starTarget(),
			{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: "sg_collations", Val: collations}}},
		},
		FromClause:  []*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: r.join}}},
		Op:          pg_query.SetOperation_SETOP_NONE,
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
	}
	switch len(r.pushed) {
	case 0:
	case 1:
		s.WhereClause = r.pushed[0]
	default:
		s.WhereClause = pg_query.MakeBoolExprNode(pg_query.BoolExprType_AND_EXPR, r.pushed, -1)
	}
	return s, nil
}

// probedPlan plans a derived table or WITH query whose rows are bound into
// the statement with a last column naming its columns' collations (see
// engine.Subquery.Collations), so that a column of a table that declares
// its own keeps it; nil when the query has no such plain form (a set
// operation, a *, many columns) or it does not plan so.
func (p *planning) probedPlan(sub *pg_query.SelectStmt, sql string) (engine.Primitive, bool) {
	if !isPlainSelect(sub) || len(sub.TargetList) == 0 || len(sub.TargetList) > 50 {
		return nil, false
	}
	names, ok := outputNames(sub)
	if !ok {
		return nil, false
	}
	var args []string
	for i, t := range sub.TargetList {
		text, err := p.exprText(t.GetResTarget().GetVal())
		if err != nil {
			return nil, false
		}
		args = append(args, quoteLiteral(names[i]), "pg_catalog.pg_collation_for(("+text+")::text)")
	}
	probe, err := p.parseExpr("pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(" + strings.Join(args, ", ") + "))")
	if err != nil {
		return nil, false
	}
	probed := proto.Clone(sub).(*pg_query.SelectStmt)
	probed.TargetList = append(probed.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: "sg_collations", Val: probe}}})
	text, err := p.selectText(probed)
	if err != nil {
		return nil, false
	}
	plan, err := (&planning{vs: p.vs, sql: text, version: p.version}).planSubquery(probed)
	if err != nil {
		return nil, false
	}
	return plan, true
}

// joinSidePlan plans the statement of joinSide: routed as it is without
// its last column, which reads the catalog, the same on every shard;
// that text names it in messages.
func (p *planning) joinSidePlan(s *pg_query.SelectStmt) (engine.Primitive, string, *Error) {
	sql, err := p.selectText(s)
	if err != nil {
		return nil, "", err
	}
	bare := proto.Clone(s).(*pg_query.SelectStmt)
	bare.TargetList = bare.TargetList[:1]
	bareSQL, err := p.selectText(bare)
	if err != nil {
		return nil, "", err
	}
	plan, err := (&planning{vs: p.vs, sql: bareSQL, version: p.version}).planSubquery(bare)
	if err != nil {
		return nil, "", err
	}
	r, ok := plan.(*engine.Route)
	sc, scatters := r.Multi.(*engine.Scatter)
	if !ok || r.Refusal != nil || r.Multi != nil && !scatters {
		return nil, "", &Error{Code: CodeInternal, Message: "the rows of a table joined at the gateway did not plan as a scatter"}
	}
	nr := *r
	nr.Query.SQL = sql
	if scatters {
		nsc := *sc
		nsc.Query.SQL = sql
		nr.Multi = &nsc
	}
	return &nr, bareSQL, nil
}

// stands reports whether FROM item n is the pulled relation.
func (r *boundRelation) stands(n *pg_query.Node) bool {
	switch {
	case r.with != nil:
		return n.GetRangeVar() == r.ref
	case r.join != nil:
		return n.GetRangeVar() == r.join
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
	fn := engine.RowsFunction(r.plan.Param)
	if r.table != nil {
		fn = engine.PartsFunction(r.plan.Param)
	}
	call := &pg_query.Node{Node: &pg_query.Node_FuncCall{FuncCall: &pg_query.FuncCall{
		Funcname:   []*pg_query.Node{pg_query.MakeStrNode(fn)},
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

// valueParam is parameter n cast to the placeholder of its type, which
// engine.Bind replaces with the value's own type and modifier.
func valueParam(n int) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{
		Arg:      &pg_query.Node{Node: &pg_query.Node_ParamRef{ParamRef: &pg_query.ParamRef{Number: int32(n)}}},
		TypeName: &pg_query.TypeName{Names: []*pg_query.Node{pg_query.MakeStrNode(engine.ValueType(n))}, Typemod: -1}}}}
}

// deparse prints a statement the planner rewrote.
func (p *planning) deparse(stmt *pg_query.Node) (string, *Error) {
	sql, err := pg_query.Deparse(&pg_query.ParseResult{Version: p.version, Stmts: []*pg_query.RawStmt{{Stmt: stmt}}})
	if err != nil {
		return "", &Error{Code: CodeInternal, Message: fmt.Sprintf("print the rewritten statement: %v", err)}
	}
	return sql, nil
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
