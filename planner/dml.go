package planner

import (
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/vschema"
)

func (p *planning) planSelect(s *pg_query.SelectStmt) (engine.Primitive, error) {
	if s.IntoClause != nil {
		return nil, unsupported("SELECT INTO is not supported on a sharded keyspace; use CREATE TABLE and INSERT")
	}
	a, err := p.analyzeSelect(s)
	if err != nil {
		return nil, err
	}
	root := a.root
	if err := checkFunctions(s, false); err != nil {
		return nil, err
	}
	target := p.target(a)
	if target == nil {
		// Only reference tables, catalogs or no table at all: every shard
		// has the same answer.
		return p.anyShard(), nil
	}
	if a.joinsAtGateway() {
		// The table joined at the gateway is not among the levels' tables:
		// its rows may be anywhere.
		target = &engine.Target{Kind: engine.TargetAll}
	}
	r := p.route(*target)
	switch {
	case target.Single():
	case a.blocker != nil:
		r.Refusal = a.blocker
	case len(a.pulled) > 0 || len(a.relations) > 0:
		r.Multi, r.Refusal = p.pullSubqueries(s, a)
	case root == nil:
		r.Multi, r.Refusal = p.setOpSelect(s, *target)
	case onlyCounts(s):
		r.Multi = &engine.CountSum{Input: p.scatter(*target)}
	default:
		switch r.Refusal = scatterShape(s, root); {
		case r.Refusal != nil:
		case len(s.DistinctClause) > 0 && !distinctOnKey(s, root):
			r.Multi, r.Refusal = p.distinctSelect(s, *target, root)
		case needsAggregate(s, root):
			r.Multi, r.Refusal = p.aggregateSelect(s, *target, root)
		default:
			r.Multi, r.Refusal = p.multiShardSelect(s, *target)
		}
	}
	gathers := !locks(s)
	switch {
	case r.Refusal != nil && gathers:
		// What the shards cannot compute apart, one of them computes with
		// the rows of every sharded table it reads.
		if g, err := p.gatherSelect(); err == nil {
			r.Multi, r.Refusal = g, nil
		}
	case r.Multi != nil && !target.Single() && gathers:
		// Also when the engine refuses it once it sees the columns' types.
		r.Gathers = true
	}
	return r, nil
}

// distinctOnKey reports whether a SELECT DISTINCT returns a sharding
// column as it is, so that equal rows are on one shard: each shard's
// distinct rows are the answer's.
func distinctOnKey(s *pg_query.SelectStmt, b *block) bool {
	out, _ := keyOutput(s, b)
	return out != "" && len(s.DistinctClause) == 1 && s.DistinctClause[0].GetNode() == nil && !needsAggregate(s, b)
}

// scatter runs the statement as it is on every shard target resolves to.
func (p *planning) scatter(target engine.Target) *engine.Scatter {
	return &engine.Scatter{Target: target, Query: engine.Query{SQL: p.sql}}
}

// onlyCounts reports whether s is SELECT count(*) or count(x), and nothing
// else, without grouping: the one cross-shard aggregate that adds up.
func onlyCounts(s *pg_query.SelectStmt) bool {
	if len(s.TargetList) == 0 || len(s.GroupClause) > 0 || s.HavingClause != nil || len(s.DistinctClause) > 0 ||
		len(s.SortClause) > 0 || s.LimitCount != nil || s.LimitOffset != nil || len(s.WindowClause) > 0 || len(s.LockingClause) > 0 {
		return false
	}
	for _, t := range s.TargetList {
		f := t.GetResTarget().GetVal().GetFuncCall()
		if f == nil || strings.ToLower(funcName(f)) != "count" || f.AggDistinct || f.AggFilter != nil || f.Over != nil ||
			len(f.AggOrder) > 0 || f.AggWithinGroup || len(f.Funcname) > 2 {
			return false
		}
	}
	return true
}

// scatterShape refuses a SELECT whose rows, gathered from several shards,
// the engine cannot yet combine into one Postgres's answer.
func scatterShape(s *pg_query.SelectStmt, b *block) *Error {
	for _, g := range s.GroupClause {
		if g.GetGroupingSet() != nil {
			return spanError(b, "GROUPING SETS, ROLLUP or CUBE")
		}
	}
	return windowsOffKey(s, b)
}

// planWrite plans an UPDATE (set is its SET list) or a DELETE, stmt.
func (p *planning) planWrite(stmt *pg_query.Node, target *pg_query.RangeVar, from []*pg_query.Node, where *pg_query.Node, with *pg_query.WithClause, set []*pg_query.Node) (engine.Primitive, error) {
	if with != nil {
		return nil, unsupported("WITH queries are not supported on a sharded keyspace yet")
	}
	t, catalog, err := p.resolve(target)
	if err != nil {
		return nil, err
	}
	if catalog {
		return nil, unsupported("writing system catalogs through shardgate is not supported")
	}
	for _, s := range set {
		if t.Kind == vschema.Sharded && s.GetResTarget().GetName() == t.Column {
			return nil, unsupported("UPDATE of sharding column %s.%s is not supported: it would move the row to another shard; delete and re-insert it", t.Name, t.Column)
		}
	}
	root, err := p.newBlock(target, target, from, where)
	if err != nil {
		return nil, err
	}
	a := p.analysis()
	a.root = root
	if len(root.real()) > 0 {
		a.blocks = append(a.blocks, root)
	}
	a.catalog = a.catalog || root.catalog
	if root.blocker != nil {
		a.block(root.blocker)
	}
	// The subqueries of its FROM, WHERE and SET.
	if _, err := p.analyze(stmtParts(from, where, set), root, where); err != nil {
		return nil, err
	}
	if a.catalog {
		return nil, unsupported("a write that reads system catalogs is not supported on a sharded keyspace")
	}
	if t.Kind == vschema.Reference {
		if len(a.blocks) > 0 || a.blocker != nil {
			return nil, unsupported("a write to reference table %s that reads sharded tables is not supported: every copy must get the same rows", t.Name)
		}
		if err := checkFunctions(stmtParts(from, where, set), true); err != nil {
			return p.broadcastOnce(stmt, nil, []*pg_query.Node{stmt}, err)
		}
		return p.broadcast(), nil
	}
	parts := stmtParts(from, where, set)
	if err := checkFunctions(parts, false); err != nil {
		return nil, err
	}
	r := p.route(*p.target(a))
	if r.Target.Single() {
		return r, nil
	}
	if r.Refusal = a.blocker; r.Refusal == nil {
		if r.Refusal = checkFunctions(parts, true); r.Refusal == nil {
			r.Multi = p.scatter(r.Target)
		} else if multi, err := p.bindOnce(stmt, nil, []*pg_query.Node{stmt}, r.Refusal, func(sql string) engine.Primitive {
			return &engine.Scatter{Target: r.Target, Query: engine.Query{SQL: sql}}
		}); err == nil {
			r.Multi, r.Refusal = multi, nil
		}
	}
	return r, nil
}

// broadcastOnce plans a write to a reference table's copies whose
// now(), random() and the like the gateway computes once (see bindOnce).
func (p *planning) broadcastOnce(stmt *pg_query.Node, values, rest []*pg_query.Node, refusal *Error) (engine.Primitive, error) {
	prim, err := p.bindOnce(stmt, values, rest, refusal, func(sql string) engine.Primitive {
		return &engine.Broadcast{Target: engine.Target{Kind: engine.TargetAll}, SQL: sql}
	})
	if err != nil {
		return nil, err
	}
	return prim, nil
}

// bindOnce plans a write across shards whose now(), random() and the
// like the gateway computes once (see volatile.go): values are its VALUES
// rows, rest the parts where it answers per row; run makes the write of
// the rewritten text. refusal is what stands when that cannot be.
func (p *planning) bindOnce(stmt *pg_query.Node, values, rest []*pg_query.Node, refusal *Error, run func(sql string) engine.Primitive) (engine.Primitive, *Error) {
	subs, ok := p.bindVolatile(stmt, values, rest)
	if !ok || len(subs) == 0 {
		return nil, refusal
	}
	if err := checkFunctions(stmt, true); err != nil {
		return nil, err
	}
	sql, err := p.deparse(stmt)
	if err != nil {
		return nil, err
	}
	return &engine.Bind{Subqueries: subs, Input: run(sql)}, nil
}

// broadcast runs the statement on every shard, one after another.
func (p *planning) broadcast() *engine.Broadcast {
	return &engine.Broadcast{Target: engine.Target{Kind: engine.TargetAll}, SQL: p.sql}
}

// stmtParts wraps pieces of a statement into one message to walk.
func stmtParts(from []*pg_query.Node, where *pg_query.Node, set []*pg_query.Node) proto.Message {
	items := append(append(append([]*pg_query.Node{}, from...), where), set...)
	return &pg_query.List{Items: items}
}

func (p *planning) planInsert(stmt *pg_query.Node, ins *pg_query.InsertStmt) (engine.Primitive, error) {
	prim, err := p.planInsertValues(stmt, ins)
	if err != nil || len(p.draws) == 0 {
		return prim, err
	}
	return withDraws(p.draws, prim), nil
}

// withDraws runs prim with the values of draws bound first: their
// parameters come before any prim binds itself.
func withDraws(draws []engine.Subquery, prim engine.Primitive) engine.Primitive {
	if b, ok := prim.(*engine.Bind); ok {
		return &engine.Bind{Subqueries: append(slices.Clone(draws), b.Subqueries...), Input: b.Input}
	}
	return &engine.Bind{Subqueries: draws, Input: prim}
}

// planInsertValues plans an INSERT ... VALUES.
func (p *planning) planInsertValues(stmt *pg_query.Node, ins *pg_query.InsertStmt) (engine.Primitive, error) {
	if ins.WithClause != nil {
		return nil, unsupported("WITH queries are not supported on a sharded keyspace yet")
	}
	t, catalog, err := p.resolve(ins.Relation)
	if err != nil {
		return nil, err
	}
	if catalog {
		return nil, unsupported("writing system catalogs through shardgate is not supported")
	}
	sel := ins.SelectStmt.GetSelectStmt()
	if sel != nil && len(sel.ValuesLists) == 0 {
		return p.planInsertSelect(ins, t)
	}
	if sub, err := p.analyze(ins, nil, nil); err != nil {
		return nil, err
	} else if len(sub.blocks) > 0 || sub.catalog || sub.blocker != nil {
		return nil, unsupported("an INSERT whose values read tables is not supported on a sharded keyspace yet")
	}
	if err := p.insertSequences(stmt, ins); err != nil {
		return nil, err
	}
	sel = ins.SelectStmt.GetSelectStmt() // DEFAULT VALUES may have become a row
	if t.Kind == vschema.Reference {
		if err := checkFunctions(ins, true); err != nil {
			return p.broadcastOnce(stmt, sel.GetValuesLists(), insertRest(ins), err)
		}
		return p.broadcast(), nil
	}
	if oc := ins.OnConflictClause; oc != nil {
		for _, s := range oc.TargetList {
			if s.GetResTarget().GetName() == t.Column {
				return nil, unsupported("ON CONFLICT DO UPDATE of sharding column %s.%s is not supported", t.Name, t.Column)
			}
		}
	}
	if sel == nil {
		return nil, keyError("INSERT into sharded table %s needs a value for its sharding column %s", t.Name, t.Column)
	}
	col := -1
	for i, c := range ins.Cols {
		if c.GetResTarget().GetName() == t.Column {
			col = i
		}
	}
	if col < 0 {
		if len(ins.Cols) == 0 {
			return nil, &Error{Code: CodeFeatureNotSupported, Message: fmt.Sprintf("INSERT into sharded table %s must name its columns, including the sharding column %s", t.Name, t.Column),
				Hint: "The gateway names them from the shards' catalog for a table it knows there; a table created in the same transaction is not known yet."}
		}
		return nil, keyError("INSERT into sharded table %s needs a value for its sharding column %s", t.Name, t.Column)
	}
	if err := checkFunctions(ins, false); err != nil {
		return nil, err
	}
	split := &engine.InsertSplit{Query: engine.Query{SQL: p.sql}, Table: t, Returning: len(ins.ReturningList) > 0}
	for _, row := range sel.ValuesLists {
		vals := row.GetList().GetItems()
		if col >= len(vals) {
			return nil, keyError("INSERT into %s has fewer values than columns", t.Name)
		}
		k, ok := shardKey(t, vals[col])
		if !ok {
			return nil, keyError("the sharding column %s.%s must be given as a literal %s value or a parameter, not %s", t.Name, t.Column, t.Type, describeValue(vals[col]))
		}
		split.Rows = append(split.Rows, engine.InsertRow{Key: k})
	}
	split.Refusal = checkFunctions(ins, true)
	if len(split.Rows) == 1 {
		// One row goes to one shard: no split to prepare.
		return split, nil
	}
	var bound []engine.Subquery
	if split.Refusal != nil {
		// Rows that span shards get the gateway's values.
		if subs, ok := p.bindVolatile(stmt, sel.ValuesLists, insertRest(ins)); ok && len(subs) > 0 && checkFunctions(ins, true) == nil {
			sql, err := p.deparse(stmt)
			if err != nil {
				return nil, err
			}
			split.Query.SQL, split.Refusal, bound = sql, nil, subs
		}
	}
	if split.Prefix, split.Suffix, err = p.valuesFrame(ins); err != nil {
		return nil, err
	}
	for i, row := range sel.ValuesLists {
		if split.Rows[i].SQL, err = p.valuesRow(row); err != nil {
			return nil, err
		}
	}
	if bound != nil {
		return &engine.Bind{Subqueries: bound, Input: split}, nil
	}
	return split, nil
}

// insertSequences names the columns of an INSERT ... VALUES without a
// column list, gives the columns that draw from a sequence their values
// from the gateway (see sequences.go), and binds every sequence function
// of its VALUES rows (p.draws). The statement is printed anew if it
// changed.
func (p *planning) insertSequences(stmt *pg_query.Node, ins *pg_query.InsertStmt) error {
	if _, err := p.nameColumns(stmt, ins); err != nil {
		return err
	}
	rel := p.vs.Catalog.Relation(vschema.TableName(ins.Relation.Schemaname, ins.Relation.Relname))
	changed := insertDefaults(ins, rel, p.listed(ins.Relation).GetKind() == vschema.Reference)
	draws, perr := p.drawSequences(stmt, ins.SelectStmt.GetSelectStmt().GetValuesLists())
	if perr != nil {
		return perr
	}
	p.draws = append(p.draws, draws...)
	if !changed && len(draws) == 0 {
		return nil
	}
	sql, perr := p.deparse(stmt)
	if perr != nil {
		return perr
	}
	p.sql = sql
	return nil
}

// insertRest are the parts of an INSERT besides its VALUES rows, where
// values are computed per row.
func insertRest(ins *pg_query.InsertStmt) []*pg_query.Node {
	rest := append([]*pg_query.Node(nil), ins.ReturningList...)
	if ins.OnConflictClause != nil {
		rest = append(rest, &pg_query.Node{Node: &pg_query.Node_OnConflictClause{OnConflictClause: ins.OnConflictClause}})
	}
	return rest
}

// valuesMarker stands for the rows of an INSERT while it is printed.
const valuesMarker = "shardgate_values_marker"

// valuesFrame prints an INSERT ... VALUES around its rows: the text before
// and after them.
func (p *planning) valuesFrame(ins *pg_query.InsertStmt) (prefix, suffix string, err error) {
	frame := proto.Clone(ins).(*pg_query.InsertStmt)
	frame.SelectStmt.GetSelectStmt().ValuesLists = []*pg_query.Node{pg_query.MakeListNode([]*pg_query.Node{
		pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(valuesMarker)}, 0)})}
	sql, err := pg_query.Deparse(&pg_query.ParseResult{Version: p.version, Stmts: []*pg_query.RawStmt{{Stmt: &pg_query.Node{Node: &pg_query.Node_InsertStmt{InsertStmt: frame}}}}})
	if err != nil {
		return "", "", fmt.Errorf("print INSERT around its rows: %w", err)
	}
	prefix, suffix, ok := strings.Cut(sql, "("+valuesMarker+")")
	if !ok {
		return "", "", fmt.Errorf("print INSERT around its rows: no marker in %q", sql)
	}
	return prefix, suffix, nil
}

// valuesRow prints one row of VALUES: "(1, $2, DEFAULT)".
func (p *planning) valuesRow(row *pg_query.Node) (string, error) {
	sel := &pg_query.SelectStmt{ValuesLists: []*pg_query.Node{row}, Op: pg_query.SetOperation_SETOP_NONE, LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT}
	sql, err := pg_query.Deparse(&pg_query.ParseResult{Version: p.version, Stmts: []*pg_query.RawStmt{{Stmt: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}}}})
	if err != nil {
		return "", fmt.Errorf("print a row of VALUES: %w", err)
	}
	text, ok := strings.CutPrefix(sql, "VALUES ")
	if !ok {
		return "", fmt.Errorf("print a row of VALUES: got %q", sql)
	}
	return text, nil
}

func keyError(format string, args ...any) *Error {
	return &Error{Code: CodeFeatureNotSupported, Message: fmt.Sprintf(format, args...)}
}

// describeValue names the kind of expression given for a sharding column.
func describeValue(n *pg_query.Node) string {
	switch {
	case n.GetAConst() != nil && n.GetAConst().Isnull:
		return "NULL"
	case n.GetAConst() != nil:
		return "this literal"
	case n.GetSetToDefault() != nil:
		return "DEFAULT (a per-shard default such as serial would repeat the same ids on every shard)"
	case n.GetParamRef() != nil:
		return "a parameter"
	}
	return "an expression"
}
