package planner

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/vschema"
)

// tableRef is one table in a FROM list (or the target of a write).
type tableRef struct {
	name  string // how the query refers to it: its alias, else its name
	table *vschema.Table
	group int // union-find parent among the block's sharded refs
	// derived is set for a derived table or WITH query whose rows are
	// partitioned across shards (see levelInfo): a sharded table whose
	// table names its output column carrying the sharding key, if any.
	derived bool
	// rv is the table's reference in FROM; nullable is set when an outer
	// join pads its columns with NULLs.
	rv       *pg_query.RangeVar
	nullable bool
}

// block is one query level: a SELECT's FROM and WHERE, or the target,
// FROM/USING and WHERE of an UPDATE or DELETE. Sharded tables of one block
// must be co-located and joined on their sharding columns, so that each
// block's rows can be computed inside one shard.
type block struct {
	stmt      proto.Message
	refs      []*tableRef  // sharded and reference tables
	catalog   bool         // reads pg_catalog or information_schema
	keyed     bool         // WHERE fixes the sharding column to a set of values
	keys      []engine.Key // those values
	keyColumn string       // a sharding column, for messages: "users.id"
	// padded names a reference table an outer join keeps rows of that
	// match no row of a sharded table: every shard would return them.
	padded string
	// names are the range names of its FROM (tables, derived tables,
	// functions), which hide those of enclosing levels.
	names map[string]bool
	// quals are its WHERE terms and join conditions.
	quals []*pg_query.Node
	// follows is set for a level whose rows are read only where the rows
	// of an enclosing level with the same sharding key are: a subquery
	// correlated on the sharding column. It needs no shard of its own.
	follows bool
	// blocker says why the level cannot run as one statement per shard,
	// nil when it can.
	blocker *Error
	// boundFrom is the first parameter the engine binds (see
	// pullSubqueries), 0 for none: it does not route.
	boundFrom int
}

// real returns the block's sharded tables, not its derived ones.
func (b *block) real() []*tableRef {
	var out []*tableRef
	for _, r := range b.refs {
		if r.table.Kind == vschema.Sharded && !r.derived {
			out = append(out, r)
		}
	}
	return out
}

func (b *block) sharded() []*tableRef {
	var out []*tableRef
	for _, r := range b.refs {
		if r.table.Kind == vschema.Sharded {
			out = append(out, r)
		}
	}
	return out
}

// analysis is what routing needs to know of a whole statement.
type analysis struct {
	root    *block   // the top query level, nil for a set operation
	blocks  []*block // every query level that reads sharded tables
	catalog bool
	// blocker says why the statement cannot run as one statement per
	// shard (see levels.go), nil when it can.
	blocker *Error
	// pulled are the subqueries that run before the statement when it
	// reaches several shards (see pullSubqueries), and relations the
	// derived tables and WITH queries whose rows span shards.
	pulled    []*pg_query.SubLink
	relations []pulledRelation
}

// pulledRelation is a derived table (sub), a reference to a WITH query
// (ref, of with) or a table joined at the gateway (join, see
// joinAtGateway) that runs before the statement, its rows bound into it.
type pulledRelation struct {
	sub  *pg_query.RangeSubselect
	ref  *pg_query.RangeVar
	with *pg_query.CommonTableExpr
	join *pg_query.RangeVar
	// For join: the column whose value sends each row to the shard of
	// table's sharding column, and the WHERE terms that read join only.
	column string
	table  *vschema.Table
	pushed []*pg_query.Node
	// rowWise is set when no outer join pads the joined table: every row
	// of the statement reads one of its rows (see rowWise).
	rowWise bool
	// summed are the columns the statement adds up (engine.Subquery.Summed).
	summed []string
}

// joinsAtGateway reports whether a table is joined at the gateway.
func (a *analysis) joinsAtGateway() bool {
	for _, r := range a.relations {
		if r.table != nil {
			return true
		}
	}
	return false
}

// block records the first reason the statement cannot run as one
// statement per shard.
func (a *analysis) block(e *Error) {
	if a.blocker == nil {
		a.blocker = e
	}
}

// analyze finds the query levels below stmt, a part of a statement whose
// own level (if any) the caller analyzed: SELECTs in an INSERT's VALUES,
// subqueries of a write's SET and WHERE (where, whose terms may be
// semi-joins on the sharding column). Each one that reads sharded rows
// and does not follow parent's rows (a subquery correlated on the sharding
// column) blocks the statement from running on several shards.
func (p *planning) analyze(stmt proto.Message, parent *block, where *pg_query.Node) (*analysis, error) {
	a := p.analysis()
	if parent != nil {
		p.outer = append(p.outer, parent)
		defer func() { p.outer = p.outer[:len(p.outer)-1] }()
	}
	inWhere := map[*pg_query.SubLink]bool{}
	for _, c := range conjuncts(where) {
		if sl := c.GetSubLink(); sl != nil {
			inWhere[sl] = true
		}
	}
	var err error
	walk(stmt, func(m proto.Message) bool {
		if err != nil {
			return false
		}
		switch n := m.(type) {
		case *pg_query.RangeSubselect:
			return parent == nil // a write's FROM: its block has it
		case *pg_query.SubLink:
			if parent != nil {
				_, err = p.sublinkReads(n, parent, inWhere[n])
				return false
			}
		case *pg_query.SelectStmt:
			var info levelInfo
			if info, _, err = p.level(n); err == nil && info.sharded {
				a.block(unsupported("a subquery over sharded tables is supported here only when the statement is fixed to one shard"))
			}
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if a.catalog && len(a.blocks) > 0 {
		return nil, unsupported("a statement that reads both system catalogs and sharded tables is not supported")
	}
	return a, nil
}

// target says where the statement's sharded rows live: the shards of the
// keys every query level is fixed to, or every shard when one is not; nil
// when it reads no sharded table.
func (p *planning) target(a *analysis) *engine.Target {
	if len(a.blocks) == 0 {
		return nil
	}
	t := &engine.Target{Kind: engine.TargetKeys}
	for _, b := range a.blocks {
		switch {
		case b.follows:
		case !b.keyed:
			return &engine.Target{Kind: engine.TargetAll}
		default:
			t.Keys = append(t.Keys, b.keys...)
		}
	}
	if len(t.Keys) == 0 {
		return &engine.Target{Kind: engine.TargetAll}
	}
	return t
}

// newBlock resolves one query level's tables, checks that its sharded tables
// are co-located and joined on their sharding columns, and finds the
// sharding-column values its WHERE fixes.
func (p *planning) newBlock(stmt proto.Message, target *pg_query.RangeVar, from []*pg_query.Node, where *pg_query.Node) (*block, error) {
	b := &block{stmt: stmt, names: map[string]bool{}, boundFrom: p.boundFrom}
	var joinQuals []*pg_query.Node
	if target != nil {
		if err := p.addTable(b, target); err != nil {
			return nil, err
		}
	}
	for _, item := range from {
		if err := p.addFromItem(b, item, &joinQuals); err != nil {
			return nil, err
		}
	}
	conjuncts := conjuncts(where)
	b.quals = append(joinQuals, conjuncts...)
	sharded := b.sharded()
	if len(sharded) == 0 {
		return b, nil
	}
	for i, r := range sharded {
		r.group = i
	}
	for _, q := range b.quals {
		l, r := b.columnEquality(q)
		if l != nil && r != nil && l.table.CoLocated(r.table) {
			b.union(l, r)
		}
	}
	if p.pulling {
		p.joinAtGateway(b)
		sharded = b.sharded()
	}
	real := b.real()
	for _, r := range sharded[1:] {
		if b.find(r) == b.find(sharded[0]) {
			continue
		}
		if len(real) > 1 && !r.derived && !sharded[0].derived && !p.pulling {
			return nil, unsupported("join of sharded tables %s and %s is not supported: they must be co-located and joined on equal sharding columns (%s.%s = %s.%s)",
				sharded[0].table.Name, r.table.Name, sharded[0].name, sharded[0].table.Column, r.name, r.table.Column)
		}
		if b.blocker == nil {
			b.blocker = unsupported("a join of %s and %s across shards is not supported: they must be co-located and joined on their sharding columns", sharded[0].name, r.name)
		}
	}
	b.keyColumn = sharded[0].name + "." + sharded[0].table.Column
	// Only WHERE conditions restrict the rows: a condition in an outer
	// join's ON clause does not remove rows of the other side.
	if len(real) > 0 {
		for _, c := range conjuncts {
			if ids, ok := b.constraint(c); ok && !b.bound(ids) && (!b.keyed || len(ids) < len(b.keys)) {
				b.keyed, b.keys = true, ids
			}
		}
	}
	if b.padded != "" && (!b.keyed || len(b.keys) != 1) && b.blocker == nil {
		b.blocker = unsupported("an outer join that keeps the rows of reference table %s without a match in sharded table %s is supported only when the statement is fixed to one %s; every shard would return those rows", b.padded, sharded[0].table.Name, b.keyColumn)
	}
	return b, nil
}

// bound reports whether keys read a parameter the engine binds.
func (b *block) bound(keys []engine.Key) bool {
	for _, k := range keys {
		if b.boundFrom > 0 && k.Param >= b.boundFrom {
			return true
		}
	}
	return false
}

// anySharded reports whether refs hold a sharded table.
func anySharded(refs []*tableRef) bool {
	return slices.ContainsFunc(refs, func(r *tableRef) bool { return r.table.Kind == vschema.Sharded })
}

// addFromItem adds the tables of one FROM item.
func (p *planning) addFromItem(b *block, item *pg_query.Node, joinQuals *[]*pg_query.Node) error {
	switch n := item.Node.(type) {
	case *pg_query.Node_RangeVar:
		return p.addTable(b, n.RangeVar)
	case *pg_query.Node_JoinExpr:
		j := n.JoinExpr
		if j.IsNatural {
			e := unsupported("NATURAL JOIN is not supported on a sharded keyspace; name the join columns")
			if !p.pulling {
				return e
			}
			// Its columns are the catalog's to tell: gathered, it is
			// Postgres's own.
			if b.blocker == nil {
				b.blocker = e
			}
		}
		before := len(b.refs)
		if err := p.addFromItem(b, j.Larg, joinQuals); err != nil {
			return err
		}
		middle := len(b.refs)
		if err := p.addFromItem(b, j.Rarg, joinQuals); err != nil {
			return err
		}
		left, right := b.refs[before:middle], b.refs[middle:]
		keepsLeft := j.Jointype == pg_query.JoinType_JOIN_LEFT || j.Jointype == pg_query.JoinType_JOIN_FULL
		keepsRight := j.Jointype == pg_query.JoinType_JOIN_RIGHT || j.Jointype == pg_query.JoinType_JOIN_FULL
		for _, r := range left {
			r.nullable = r.nullable || keepsRight
		}
		for _, r := range right {
			r.nullable = r.nullable || keepsLeft
		}
		switch {
		case keepsLeft && b.padded == "" && !anySharded(left) && anySharded(right) && len(left) > 0:
			b.padded = left[0].table.Name
		case keepsRight && b.padded == "" && !anySharded(right) && anySharded(left) && len(right) > 0:
			b.padded = right[0].table.Name
		}
		*joinQuals = append(*joinQuals, conjuncts(j.Quals)...)
		*joinQuals = append(*joinQuals, usingEqualities(j)...)
		return nil
	case *pg_query.Node_RangeSubselect:
		return p.derivedTable(b, n.RangeSubselect)
	case *pg_query.Node_RangeFunction:
		// A function in FROM reads no table; subqueries in its arguments
		// are found with the level's other subqueries.
		a := n.RangeFunction.GetAlias()
		if a != nil {
			b.names[a.Aliasname] = true
		}
		if boundRows(n.RangeFunction) && a != nil {
			// The rows of a pulled relation, the same on every shard.
			b.refs = append(b.refs, &tableRef{name: a.Aliasname, table: &vschema.Table{Name: a.Aliasname, Kind: vschema.Reference}})
		}
		return nil
	}
	return unsupported("this kind of FROM item is not supported on a sharded keyspace yet")
}

// boundRows reports whether a function in FROM stands for a pulled
// relation's rows (see pullSubqueries).
func boundRows(rf *pg_query.RangeFunction) bool {
	if len(rf.Functions) != 1 {
		return false
	}
	items := rf.Functions[0].GetList().GetItems()
	if len(items) == 0 {
		return false
	}
	return strings.HasPrefix(funcName(items[0].GetFuncCall()), "sg_bound_rows_")
}

// usingEqualities turns JOIN ... USING (c) between two plain tables into the
// equalities left.c = right.c.
func usingEqualities(j *pg_query.JoinExpr) []*pg_query.Node {
	l, r := j.Larg.GetRangeVar(), j.Rarg.GetRangeVar()
	if l == nil || r == nil {
		return nil
	}
	name := func(rv *pg_query.RangeVar) string {
		if rv.Alias != nil {
			return rv.Alias.Aliasname
		}
		return rv.Relname
	}
	var out []*pg_query.Node
	for _, c := range j.UsingClause {
		col := c.GetString_().GetSval()
		out = append(out, pg_query.MakeAExprNode(pg_query.A_Expr_Kind_AEXPR_OP,
			[]*pg_query.Node{pg_query.MakeStrNode("=")},
			pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(name(l)), pg_query.MakeStrNode(col)}, 0),
			pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(name(r)), pg_query.MakeStrNode(col)}, 0), 0))
	}
	return out
}

// addTable resolves a table reference against the vschema.
func (p *planning) addTable(b *block, rv *pg_query.RangeVar) error {
	if e := p.withQuery(rv); e != nil {
		return p.withReference(b, rv, e)
	}
	t, catalog, err := p.resolve(rv)
	if err != nil {
		return err
	}
	name := rv.Relname
	if rv.Alias != nil {
		name = rv.Alias.Aliasname
	}
	b.names[name] = true
	if catalog {
		b.catalog = true
		return nil
	}
	b.refs = append(b.refs, &tableRef{name: name, table: t, rv: rv})
	return nil
}

// resolve finds a table in the vschema. System catalogs resolve to
// catalog=true. Names are looked up as Postgres's default search_path would:
// unqualified names that the vschema does not have and that start with pg_
// are catalog tables, which Postgres searches first.
func (p *planning) resolve(rv *pg_query.RangeVar) (t *vschema.Table, catalog bool, err error) {
	switch rv.Schemaname {
	case "pg_catalog", "information_schema":
		return nil, true, nil
	}
	name := vschema.TableName(rv.Schemaname, rv.Relname)
	if t := p.vs.Table(name); t != nil {
		return t, false, nil
	}
	if rv.Schemaname == "" && strings.HasPrefix(rv.Relname, "pg_") {
		return nil, true, nil
	}
	return nil, false, p.tableError(name)
}

func (b *block) find(r *tableRef) int {
	sharded := b.sharded()
	for sharded[r.group] != r {
		r = sharded[r.group]
	}
	return r.group
}

func (b *block) union(x, y *tableRef) {
	sharded := b.sharded()
	sharded[b.find(x)].group = b.find(y)
}

// conjuncts splits an expression into its top-level AND terms.
func conjuncts(e *pg_query.Node) []*pg_query.Node {
	if e == nil {
		return nil
	}
	if be := e.GetBoolExpr(); be != nil && be.Boolop == pg_query.BoolExprType_AND_EXPR {
		var out []*pg_query.Node
		for _, a := range be.Args {
			out = append(out, conjuncts(a)...)
		}
		return out
	}
	return []*pg_query.Node{e}
}

// equalityOperands returns the two sides of "l = r", or nils.
func equalityOperands(e *pg_query.Node) (l, r *pg_query.Node) {
	ae := e.GetAExpr()
	if ae == nil || ae.Kind != pg_query.A_Expr_Kind_AEXPR_OP || !isOperator(ae.Name, "=") {
		return nil, nil
	}
	return ae.Lexpr, ae.Rexpr
}

func isOperator(name []*pg_query.Node, op string) bool {
	if len(name) == 2 && name[0].GetString_().GetSval() != "pg_catalog" {
		return false
	}
	return len(name) > 0 && len(name) <= 2 && name[len(name)-1].GetString_().GetSval() == op
}

// columnEquality returns the sharded tables of "a.col = b.col" when both
// sides are sharding columns.
func (b *block) columnEquality(e *pg_query.Node) (l, r *tableRef) {
	le, re := equalityOperands(e)
	if le == nil {
		return nil, nil
	}
	return b.shardingColumn(le), b.shardingColumn(re)
}

// shardingColumn returns the sharded table whose sharding column n names, or
// nil. An unqualified name is the sharding column of a table of this level
// if one has it: Postgres resolves names at the innermost level first.
func (b *block) shardingColumn(n *pg_query.Node) *tableRef {
	cr := n.GetColumnRef()
	if cr == nil {
		return nil
	}
	var parts []string
	for _, f := range cr.Fields {
		s := f.GetString_()
		if s == nil {
			return nil
		}
		parts = append(parts, s.Sval)
	}
	col, qual := parts[len(parts)-1], ""
	switch len(parts) {
	case 1:
	case 2:
		qual = parts[0]
	case 3:
		if parts[0] != "public" {
			return nil
		}
		qual = parts[1]
	default:
		return nil
	}
	for _, r := range b.sharded() {
		if r.table.Column == col && (qual == "" || qual == r.name) {
			return r
		}
	}
	return nil
}

// constraint returns the keys that a WHERE term restricts the block's
// sharding column to: "col = literal", "col IN (literals)", the same with
// parameters, and ORs and ANDs of those.
func (b *block) constraint(e *pg_query.Node) ([]engine.Key, bool) {
	if be := e.GetBoolExpr(); be != nil {
		switch be.Boolop {
		case pg_query.BoolExprType_AND_EXPR:
			var best []engine.Key
			found := false
			for _, a := range be.Args {
				if ids, ok := b.constraint(a); ok && (!found || len(ids) < len(best)) {
					best, found = ids, true
				}
			}
			return best, found
		case pg_query.BoolExprType_OR_EXPR:
			var all []engine.Key
			for _, a := range be.Args {
				ids, ok := b.constraint(a)
				if !ok {
					return nil, false
				}
				all = append(all, ids...)
			}
			return all, true
		}
		return nil, false
	}
	ae := e.GetAExpr()
	if ae == nil || !isOperator(ae.Name, "=") {
		return nil, false
	}
	switch ae.Kind {
	case pg_query.A_Expr_Kind_AEXPR_OP:
		col, lit := ae.Lexpr, ae.Rexpr
		if b.shardingColumn(col) == nil {
			col, lit = lit, col
		}
		r := b.shardingColumn(col)
		if r == nil {
			return nil, false
		}
		k, ok := shardKey(r.table, lit)
		return []engine.Key{k}, ok
	case pg_query.A_Expr_Kind_AEXPR_IN:
		r := b.shardingColumn(ae.Lexpr)
		list := ae.Rexpr.GetList()
		if r == nil || list == nil {
			return nil, false
		}
		keys := make([]engine.Key, 0, len(list.Items))
		for _, item := range list.Items {
			k, ok := shardKey(r.table, item)
			if !ok {
				return nil, false
			}
			keys = append(keys, k)
		}
		return keys, true
	}
	return nil, false
}

// shardKey turns an expression compared with (or stored into) table's
// sharding column into a key. It succeeds only when Postgres would turn the
// expression into exactly that column value: an integer for an integer
// column, a string literal of the right form, a parameter (whose value is
// hashed when the statement runs), or such a literal or parameter cast to a
// type of the column's family.
func shardKey(t *vschema.Table, n *pg_query.Node) (engine.Key, bool) {
	if tc := n.GetTypeCast(); tc != nil {
		names := tc.TypeName.GetNames()
		if len(names) == 0 || len(tc.TypeName.ArrayBounds) > 0 || castFamily[names[len(names)-1].GetString_().GetSval()] != t.Type {
			return engine.Key{}, false
		}
		n = tc.Arg
	}
	if pr := n.GetParamRef(); pr != nil {
		// A parameter of the column's type (Postgres infers it from the
		// comparison) routes like a literal of its text.
		if pr.Number < 1 {
			return engine.Key{}, false
		}
		return engine.Key{Param: int(pr.Number), Table: t}, true
	}
	text, ok := literalText(t.Type, n)
	if !ok {
		return engine.Key{}, false
	}
	id, ok := t.KeyspaceID(text)
	if !ok {
		return engine.Key{}, false
	}
	if n.GetAConst().GetSval() != nil {
		text = quoteLiteral(text)
	}
	return engine.Key{ID: id, Literal: text, Table: t, At: int(n.GetAConst().GetLocation())}, true
}

// quoteLiteral writes s as an SQL string literal, for plans as printed.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var castFamily = map[string]vschema.ColumnType{
	"int2": vschema.Int, "int4": vschema.Int, "int8": vschema.Int,
	"text": vschema.Text, "varchar": vschema.Text,
	"uuid": vschema.UUID,
}

// literalText returns the text of a constant as a column of type typ
// would read it.
func literalText(typ vschema.ColumnType, n *pg_query.Node) (string, bool) {
	c := n.GetAConst()
	if c == nil || c.Isnull {
		return "", false
	}
	switch v := c.Val.(type) {
	case *pg_query.A_Const_Ival:
		if typ == vschema.UUID {
			return "", false
		}
		return strconv.FormatInt(int64(v.Ival.Ival), 10), true
	case *pg_query.A_Const_Fval:
		// Integers too large for int4 arrive as "float" tokens; a real
		// fraction does not parse as an integer and is refused by KeyspaceID.
		if typ != vschema.Int {
			return "", false
		}
		return v.Fval.Fval, true
	case *pg_query.A_Const_Sval:
		return v.Sval.Sval, true
	}
	return "", false
}

// spanError describes why a multi-shard statement was refused.
func spanError(b *block, shape string) *Error {
	e := unsupported("%s across shards is not supported yet: the statement reaches several shards", shape)
	e.Hint = fmt.Sprintf("Add a condition %s = <value> to target one shard.", b.keyColumn)
	return e
}
