package planner

import (
	"slices"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/vschema"
)

// A statement over several shards runs as one statement per shard only
// when every query level in it computes, on each shard, exactly that
// shard's part of the answer. The top level is finished by the gateway
// (merge, aggregates, DISTINCT); a nested level qualifies when
//
//   - it reads no sharded rows: every shard computes it alike;
//   - it is a derived table or WITH query whose rows are partitioned
//     across shards (no LIMIT, no aggregate or DISTINCT that spans
//     shards), joined with the level's other sharded tables on their
//     sharding columns: it reads like a sharded table;
//   - it is a subquery (or LATERAL derived table) correlated on the
//     sharding column with a co-located table of an enclosing level
//     (o.customer_id = c.id): each outer row's subquery reads rows of
//     its own shard only;
//   - it is "key IN (SELECT key FROM co-located ...)" in the WHERE: a
//     semi-join on the sharding column.
//
// Anything else over sharded tables blocks the statement from running on
// several shards (analysis.blocker).

// levelInfo is what a query level gives the level that reads it.
type levelInfo struct {
	// sharded is set when it reads sharded rows, itself or below.
	sharded bool
	// partitioned is set when each shard computes a disjoint part of its
	// rows and together they are all of them.
	partitioned bool
	// keyOut names an output column carrying a sharded table's key as it
	// is, keyAt its position (-1: behind a *); "" when none does.
	keyOut string
	keyAt  int
	// table is a sharded table it reads, for co-location.
	table *vschema.Table
}

// withScope holds the WITH queries a level can name.
type withScope struct {
	queries map[string]*withQuery
	outer   *withScope
}

// withQuery is one WITH query of a statement.
type withQuery struct {
	name string
	cte  *pg_query.CommonTableExpr
	info levelInfo
	// pullable is set when it can run on its own (see pullSubqueries).
	pullable bool
	// done is set once its body is analyzed: a reference before is its
	// own recursive one.
	done bool
}

// analysis returns the statement's analysis, begun on first use.
func (p *planning) analysis() *analysis {
	if p.an == nil {
		p.an = &analysis{}
	}
	return p.an
}

// analyzeSelect analyzes a whole SELECT.
func (p *planning) analyzeSelect(s *pg_query.SelectStmt) (*analysis, error) {
	a := p.analysis()
	// Rows of a relation bound into the statement cannot be locked.
	p.pulling = !locks(s)
	_, root, err := p.level(s)
	p.pulling = false
	if err != nil {
		return nil, err
	}
	a.root = root
	if a.catalog && len(a.blocks) > 0 {
		return nil, unsupported("a statement that reads both system catalogs and sharded tables is not supported")
	}
	return a, nil
}

// level analyzes one query level and the levels below it, returning what
// it gives its reader and, for a plain SELECT, its block.
func (p *planning) level(s *pg_query.SelectStmt) (levelInfo, *block, error) {
	info, b, err := p.levelOf(s)
	if err == nil {
		if p.infos == nil {
			p.infos = map[*pg_query.SelectStmt]levelInfo{}
		}
		p.infos[s] = info
	}
	return info, b, err
}

func (p *planning) levelOf(s *pg_query.SelectStmt) (levelInfo, *block, error) {
	a := p.analysis()
	if s.WithClause != nil {
		if err := p.with(s.WithClause); err != nil {
			return levelInfo{}, nil, err
		}
		defer func() { p.scope = p.scope.outer }()
	}
	if !isPlainSelect(s) {
		l, _, err := p.level(s.Larg)
		if err != nil {
			return levelInfo{}, nil, err
		}
		r, _, err := p.level(s.Rarg)
		if err != nil {
			return levelInfo{}, nil, err
		}
		info := levelInfo{sharded: l.sharded || r.sharded, keyAt: -1, table: l.table}
		// UNION ALL of partitioned rows is partitioned; an arm that is
		// not would come from every shard.
		info.partitioned = s.Op == pg_query.SetOperation_SETOP_UNION && s.All && l.partitioned && r.partitioned
		if info.table == nil {
			info.table = r.table
		}
		return info, nil, nil
	}
	b, err := p.newBlock(s, nil, s.FromClause, s.WhereClause)
	if err != nil {
		return levelInfo{}, nil, err
	}
	a.catalog = a.catalog || b.catalog
	if len(b.real()) > 0 {
		a.blocks = append(a.blocks, b)
	}
	p.outer = append(p.outer, b)
	sharded, err := p.sublinks(s, b)
	p.outer = p.outer[:len(p.outer)-1]
	if err != nil {
		return levelInfo{}, nil, err
	}
	if b.blocker != nil {
		a.block(b.blocker)
	}
	info := levelInfo{sharded: sharded || len(b.sharded()) > 0, keyAt: -1}
	if len(b.sharded()) > 0 {
		info.table = b.sharded()[0].table
		info.partitioned = b.blocker == nil && partitioned(s, b)
		info.keyOut, info.keyAt = keyOutput(s, b)
	}
	return info, b, nil
}

// partitioned reports whether a plain SELECT over sharded tables computes
// on each shard exactly the rows of that shard's part.
func partitioned(s *pg_query.SelectStmt, b *block) bool {
	if s.LimitCount != nil || s.LimitOffset != nil || needsAggregate(s, b) || windowsOffKey(s, b) != nil {
		return false
	}
	if len(s.DistinctClause) == 0 {
		return true
	}
	// Equal rows then have equal keys, so they are on one shard.
	out, _ := keyOutput(s, b)
	return out != "" && len(s.DistinctClause) == 1 && s.DistinctClause[0].GetNode() == nil
}

// keyOutput finds an output column of s that is a sharding column as it
// is: its name and position (-1 behind a *).
func keyOutput(s *pg_query.SelectStmt, b *block) (string, int) {
	for i, t := range s.TargetList {
		rt := t.GetResTarget()
		v := rt.GetVal()
		if isStar(v) {
			fields := v.GetColumnRef().Fields
			for _, r := range b.sharded() {
				if r.table.Column != "" && (len(fields) == 1 || lastString(fields[:len(fields)-1]) == r.name) {
					return r.table.Column, -1
				}
			}
			return "", -1
		}
		if b.shardingColumn(v) == nil {
			continue
		}
		if rt.Name != "" {
			return rt.Name, i
		}
		return lastString(v.GetColumnRef().Fields), i
	}
	return "", -1
}

// with puts a WITH clause's queries in scope, analyzing each. A recursive
// one over sharded tables is not partitioned: its recursion may need rows
// of other shards.
func (p *planning) with(w *pg_query.WithClause) error {
	p.scope = &withScope{queries: map[string]*withQuery{}, outer: p.scope}
	for _, c := range w.Ctes {
		cte := c.GetCommonTableExpr()
		if cte == nil {
			continue
		}
		body := cte.Ctequery.GetSelectStmt()
		if body == nil {
			return unsupported("data-modifying statements in WITH are not supported on a sharded keyspace yet")
		}
		q := &withQuery{name: cte.Ctename, cte: cte, pullable: !w.Recursive && p.uncorrelated(body)}
		if w.Recursive {
			p.scope.queries[cte.Ctename] = q
		}
		info, _, err := p.level(body)
		if err != nil {
			return err
		}
		if w.Recursive && info.sharded {
			info.partitioned = false
		}
		if len(cte.Aliascolnames) > 0 {
			info.keyOut = renamedKey(info, cte.Aliascolnames)
		}
		q.info, q.done = info, true
		p.scope.queries[cte.Ctename] = q
	}
	return nil
}

// renamedKey is the name a column list gives the key output.
func renamedKey(info levelInfo, names []*pg_query.Node) string {
	if info.keyAt >= 0 && info.keyAt < len(names) {
		return names[info.keyAt].GetString_().GetSval()
	}
	if info.keyAt < 0 {
		return "" // behind a *: its position is unknown
	}
	return info.keyOut
}

// withQuery returns the WITH query an unqualified table name refers to.
func (p *planning) withQuery(rv *pg_query.RangeVar) *withQuery {
	if rv.Schemaname != "" {
		return nil
	}
	for sc := p.scope; sc != nil; sc = sc.outer {
		if q, ok := sc.queries[rv.Relname]; ok {
			return q
		}
	}
	return nil
}

// withReference adds a reference to a WITH query to b.
func (p *planning) withReference(b *block, rv *pg_query.RangeVar, q *withQuery) error {
	name := rv.Relname
	if rv.Alias != nil {
		name = rv.Alias.Aliasname
	}
	b.names[name] = true
	info := q.info
	if !q.done || !info.sharded {
		// Its own recursive reference is judged with the query.
		return nil
	}
	if rv.Alias != nil && len(rv.Alias.Colnames) > 0 {
		info.keyOut = renamedKey(info, rv.Alias.Colnames)
	}
	if !info.partitioned && p.pulling && q.pullable {
		a := p.analysis()
		a.relations = append(a.relations, pulledRelation{ref: rv, with: q.cte})
		return nil
	}
	return p.relation(b, name, info, "WITH query "+q.name)
}

// derivedTable adds a derived table (a subquery in FROM) to b.
func (p *planning) derivedTable(b *block, rs *pg_query.RangeSubselect) error {
	sub := rs.Subquery.GetSelectStmt()
	name := rs.Alias.GetAliasname()
	if name != "" {
		b.names[name] = true
	}
	if rs.Lateral {
		// It sees the FROM items before it.
		p.outer = append(p.outer, b)
		defer func() { p.outer = p.outer[:len(p.outer)-1] }()
	}
	info, sb, err := p.level(sub)
	if err != nil || !info.sharded {
		return err
	}
	if rs.Lateral && sb != nil && p.correlatedOnKey(sb) {
		sb.follows = true
		return nil
	}
	if rs.Alias != nil && len(rs.Alias.Colnames) > 0 {
		info.keyOut = renamedKey(info, rs.Alias.Colnames)
	}
	if !info.partitioned && p.pulling && !rs.Lateral && p.uncorrelated(sub) {
		a := p.analysis()
		a.relations = append(a.relations, pulledRelation{sub: rs})
		return nil
	}
	return p.relation(b, name, info, "a derived table")
}

// relation adds a level that reads sharded rows to b's FROM: as a sharded
// table when its rows are partitioned, else it blocks the statement.
func (p *planning) relation(b *block, name string, info levelInfo, what string) error {
	if !info.partitioned {
		e := unsupported("%s over sharded tables whose rows are not partitioned by shard (LIMIT, aggregates, DISTINCT, window functions or recursion across shards) is not supported in a statement over several shards yet", what)
		p.analysis().block(e)
		return nil
	}
	t := *info.table
	t.Name, t.Column = name, info.keyOut
	b.refs = append(b.refs, &tableRef{name: name, table: &t, derived: true})
	return nil
}

// sublinks analyzes the subqueries in level s's expressions (not those of
// its FROM, which newBlock saw), reporting whether any reads sharded rows.
func (p *planning) sublinks(s *pg_query.SelectStmt, b *block) (bool, error) {
	inWhere := map[*pg_query.SubLink]bool{}
	for _, c := range conjuncts(s.WhereClause) {
		if sl := c.GetSubLink(); sl != nil {
			inWhere[sl] = true
		}
	}
	sharded := false
	var err error
	walk(s, func(m proto.Message) bool {
		if err != nil {
			return false
		}
		switch n := m.(type) {
		case *pg_query.SelectStmt:
			return n == s
		case *pg_query.RangeSubselect, *pg_query.WithClause:
			return false
		case *pg_query.SubLink:
			var reads bool
			reads, err = p.sublinkReads(n, b, inWhere[n])
			sharded = sharded || reads
			return false
		}
		return true
	})
	return sharded, err
}

// sublinkReads analyzes one subquery of level b (see sublink), reporting
// whether it reads sharded rows.
func (p *planning) sublinkReads(sl *pg_query.SubLink, b *block, inWhere bool) (bool, error) {
	sub := sl.Subselect.GetSelectStmt()
	if sub == nil {
		return false, nil
	}
	if sl.Testexpr != nil {
		if _, err := p.analyze(sl.Testexpr, b, nil); err != nil {
			return false, err
		}
	}
	info, sb, err := p.level(sub)
	if err != nil || !info.sharded {
		return false, err
	}
	switch {
	case sb != nil && p.correlatedOnKey(sb):
		sb.follows = true
	case inWhere && sb != nil && semiJoinOnKey(sl, b, sub, sb, info):
		sb.follows = true
	case p.pulling && p.pullable(sl, sub):
		a := p.analysis()
		a.pulled = append(a.pulled, sl)
	default:
		name := "sharded tables"
		if info.table != nil {
			name = "sharded table " + info.table.Name
		}
		p.analysis().block(unsupported("subqueries over %s across shards are supported only when correlated on the sharding column with a co-located table of the outer query (inner.%s = outer.%s) yet",
			name, columnOf(info.table), columnOf(info.table)))
	}
	return true, nil
}

// pullable reports whether a subquery can run on its own, before the
// statement, its result bound into it (see pullSubqueries): it refers to
// no column or WITH query of an enclosing level, and gives a value, a
// bool or a list of values of one column.
func (p *planning) pullable(sl *pg_query.SubLink, sub *pg_query.SelectStmt) bool {
	switch sl.SubLinkType {
	case pg_query.SubLinkType_EXPR_SUBLINK, pg_query.SubLinkType_EXISTS_SUBLINK, pg_query.SubLinkType_ARRAY_SUBLINK:
	case pg_query.SubLinkType_ANY_SUBLINK, pg_query.SubLinkType_ALL_SUBLINK:
		if sl.Testexpr.GetRowExpr() != nil {
			return false
		}
	default:
		return false
	}
	if sl.SubLinkType != pg_query.SubLinkType_EXISTS_SUBLINK && !oneColumn(sub) {
		return false
	}
	return p.uncorrelated(sub)
}

// oneColumn reports whether a query returns one column (of its first
// arm, for a set operation).
func oneColumn(s *pg_query.SelectStmt) bool {
	for !isPlainSelect(s) {
		s = s.Larg
	}
	return len(s.TargetList) == 1 && !isStar(s.TargetList[0].GetResTarget().GetVal())
}

// uncorrelated reports whether a query names only its own tables: every
// qualified column names one of its FROM items, and no table name is an
// enclosing level's WITH query. (An unqualified column of an enclosing
// level fails when the query runs on its own: see engine.Bind.)
func (p *planning) uncorrelated(sub *pg_query.SelectStmt) bool {
	names := map[string]bool{}
	walk(sub, func(m proto.Message) bool {
		switch n := m.(type) {
		case *pg_query.RangeVar:
			names[n.Relname] = true
			if n.Alias != nil {
				names[n.Alias.Aliasname] = true
			}
		case *pg_query.Alias:
			names[n.Aliasname] = true
		case *pg_query.CommonTableExpr:
			names[n.Ctename] = true
		}
		return true
	})
	ok := true
	walk(sub, func(m proto.Message) bool {
		switch n := m.(type) {
		case *pg_query.ColumnRef:
			if len(n.Fields) >= 2 && !names[n.Fields[len(n.Fields)-2].GetString_().GetSval()] {
				ok = false
			}
		case *pg_query.RangeVar:
			if n.Schemaname == "" && p.withQuery(n) != nil && !definedIn(sub, n.Relname) {
				ok = false
			}
		}
		return ok
	})
	return ok
}

// definedIn reports whether a WITH clause inside s defines name.
func definedIn(s *pg_query.SelectStmt, name string) bool {
	found := false
	walk(s, func(m proto.Message) bool {
		if c, ok := m.(*pg_query.CommonTableExpr); ok && c.Ctename == name {
			found = true
		}
		return !found
	})
	return found
}

// columnOf names a table's sharding column for messages.
func columnOf(t *vschema.Table) string {
	if t == nil || t.Column == "" {
		return "key"
	}
	return t.Column
}

// correlatedOnKey reports whether level sb's sharded rows are all tied to
// one row of an enclosing level by the sharding column: a condition
// inner.key = outer.key between co-located tables, the outer one named
// with its qualifier.
func (p *planning) correlatedOnKey(sb *block) bool {
	if sb.blocker != nil || len(sb.sharded()) == 0 {
		return false
	}
	for _, q := range sb.quals {
		l, r := equalityOperands(q)
		if l == nil {
			continue
		}
		for _, pair := range [2][2]*pg_query.Node{{l, r}, {r, l}} {
			inner := sb.shardingColumn(pair[0])
			if inner == nil || sb.find(inner) != sb.find(sb.sharded()[0]) {
				continue
			}
			if outer := p.outerKey(sb, pair[1]); outer != nil && inner.table.CoLocated(outer.table) {
				return true
			}
		}
	}
	return false
}

// outerKey returns the sharded table of an enclosing level whose sharding
// column n names with a qualifier that level sb does not hide.
func (p *planning) outerKey(sb *block, n *pg_query.Node) *tableRef {
	cr := n.GetColumnRef()
	if cr == nil || len(cr.Fields) != 2 {
		return nil
	}
	qual, col := cr.Fields[0].GetString_().GetSval(), cr.Fields[1].GetString_().GetSval()
	if qual == "" || col == "" || sb.names[qual] {
		return nil
	}
	for i := len(p.outer) - 1; i >= 0; i-- {
		o := p.outer[i]
		if !o.names[qual] {
			continue
		}
		for _, r := range o.sharded() {
			if r.name == qual && r.table.Column == col {
				return r
			}
		}
		return nil
	}
	return nil
}

// semiJoinOnKey reports whether "key IN (SELECT key FROM ...)" joins level
// b's sharding column with a co-located one whose rows are partitioned.
func semiJoinOnKey(sl *pg_query.SubLink, b *block, sub *pg_query.SelectStmt, sb *block, info levelInfo) bool {
	if sl.SubLinkType != pg_query.SubLinkType_ANY_SUBLINK || len(sl.OperName) > 0 && !isOperator(sl.OperName, "=") {
		return false
	}
	outer := b.shardingColumn(sl.Testexpr)
	if outer == nil || !info.partitioned || len(sub.TargetList) != 1 {
		return false
	}
	inner := sb.shardingColumn(sub.TargetList[0].GetResTarget().GetVal())
	return inner != nil && inner.table.CoLocated(outer.table)
}

// windowsOffKey refuses the window functions of level s that are not
// partitioned by a sharding column of b: their partitions span shards.
func windowsOffKey(s *pg_query.SelectStmt, b *block) *Error {
	named := map[string]*pg_query.WindowDef{}
	for _, w := range s.WindowClause {
		if wd := w.GetWindowDef(); wd != nil {
			named[wd.Name] = wd
		}
	}
	var err *Error
	check := func(w *pg_query.WindowDef) {
		for w != nil && len(w.PartitionClause) == 0 && (w.Name != "" || w.Refname != "") {
			name := w.Refname
			if name == "" {
				name = w.Name
			}
			next := named[name]
			if next == w {
				break
			}
			w = next
		}
		if w != nil {
			for _, e := range w.PartitionClause {
				if b.shardingColumn(e) != nil {
					return
				}
			}
		}
		err = spanError(b, "a window function not partitioned by the sharding column")
	}
	for _, part := range []proto.Message{&pg_query.List{Items: s.TargetList}, &pg_query.List{Items: s.SortClause}} {
		walk(part, func(m proto.Message) bool {
			switch n := m.(type) {
			case *pg_query.SelectStmt:
				return false
			case *pg_query.FuncCall:
				if n.Over != nil && err == nil {
					check(n.Over)
				}
			}
			return err == nil
		})
	}
	return err
}

// joinAtGateway lets a SELECT join sharded tables that are not co-located
// (devices d JOIN users u ON u.id = d.owner_id): a table x alone in its
// group, joined on one of its columns to another group's sharding column,
// runs first as a plan of its own (with the WHERE terms that read only x,
// when an outer join does not pad it), and each of its rows is sent to the
// shard that holds the rows it joins (engine.Partition): there the join
// runs with x's rows as a relation. x leaves b's tables. Groups are joined
// this way until one is left or none can be.
func (p *planning) joinAtGateway(b *block) {
	for {
		real := b.real()
		groups := map[int]int{}
		for _, r := range real {
			groups[b.find(r)]++
		}
		if len(groups) < 2 {
			return
		}
		x, col, y := b.gatewayJoin(real, groups)
		if x == nil {
			return
		}
		var pushed []*pg_query.Node
		if !x.nullable {
			for _, c := range conjuncts(b.whereOf()) {
				if onlyReads(c, x.name) {
					pushed = append(pushed, c)
				}
			}
		}
		a := p.analysis()
		a.relations = append(a.relations, pulledRelation{join: x.rv, column: col, table: y.table, pushed: pushed, rowWise: !x.nullable})
		b.refs = slices.DeleteFunc(b.refs, func(r *tableRef) bool { return r == x })
		for i, r := range b.sharded() {
			r.group = i
		}
		for _, q := range b.quals {
			l, r := b.columnEquality(q)
			if l != nil && r != nil && l.table.CoLocated(r.table) {
				b.union(l, r)
			}
		}
	}
}

// gatewayJoin finds a table alone in its group joined by a column to the
// sharding column of a table of another group (x.col = y.key).
func (b *block) gatewayJoin(real []*tableRef, groups map[int]int) (x *tableRef, col string, y *tableRef) {
	for _, q := range b.quals {
		l, r := equalityOperands(q)
		if l == nil {
			continue
		}
		for _, pair := range [2][2]*pg_query.Node{{l, r}, {r, l}} {
			key := b.shardingColumn(pair[1])
			cr := pair[0].GetColumnRef()
			if key == nil || key.derived || cr == nil || len(cr.Fields) != 2 {
				continue
			}
			qual, c := cr.Fields[0].GetString_().GetSval(), cr.Fields[1].GetString_().GetSval()
			for _, r := range real {
				if r.name == qual && r != key && r.rv != nil && groups[b.find(r)] == 1 && b.find(r) != b.find(key) && c != "" {
					return r, c, key
				}
			}
		}
	}
	return nil, "", nil
}

// whereOf is the level's WHERE clause.
func (b *block) whereOf() *pg_query.Node {
	if s, ok := b.stmt.(*pg_query.SelectStmt); ok {
		return s.WhereClause
	}
	return nil
}

// onlyReads reports whether a condition reads columns of the table named
// qual only, each qualified, and no subquery.
func onlyReads(c *pg_query.Node, qual string) bool {
	ok, any := true, false
	walk(c, func(m proto.Message) bool {
		switch n := m.(type) {
		case *pg_query.SubLink, *pg_query.SelectStmt:
			ok = false
		case *pg_query.ColumnRef:
			any = true
			if len(n.Fields) != 2 || n.Fields[0].GetString_().GetSval() != qual {
				ok = false
			}
		}
		return ok
	})
	return ok && any
}
