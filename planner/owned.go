package planner

import (
	"fmt"
	"math"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/vschema"
)

// KeyRange is the keyspace ids Lo through Hi, both included.
type KeyRange struct{ Lo, Hi int64 }

// PassOver rewrites sql, the statement one shard runs as its part of a
// multi-shard statement, so that the shard passes over the rows of vs's
// sharded tables whose keyspace ids fall in skip: the rows it keeps of
// logical shards that another shard answers for while a reshard moves them.
//
// Every query level (and the target of an UPDATE or DELETE) gets, in its
// WHERE, a condition on the keyspace id of each sharded table it reads;
// COPY of a sharded table becomes COPY of a query. The condition lets a
// NULL keyspace id through, so the rows an outer join pads with NULLs
// stay (rows whose sharding value is NULL, which go with the lowest
// keyspace id, are told apart by their other columns). That equals filtering each table before the join because the
// planner sends a join of sharded tables to the shards only when the rows
// it pairs share a keyspace id: a row kept joins only rows kept, and a row
// passed over only rows passed over. A sharded table the rewrite cannot
// reach (TRUNCATE, a CTE of the same name) fails it with a refusal.
func PassOver(sql string, vs *vschema.Keyspace, skip []KeyRange) (string, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return "", err
	}
	if len(tree.Stmts) != 1 {
		return "", fmt.Errorf("pass over rows: expected one statement, got %d", len(tree.Stmts))
	}
	r := passOver{vs: vs, skip: skip, ctes: map[string]bool{}, claimed: map[*pg_query.RangeVar]bool{}}
	walk(tree.Stmts[0].Stmt, func(m proto.Message) bool {
		if c, ok := m.(*pg_query.CommonTableExpr); ok {
			r.ctes[c.Ctename] = true
		}
		return true
	})
	walk(tree.Stmts[0].Stmt, r.visit)
	if r.err != nil {
		return "", r.err
	}
	return pg_query.Deparse(tree)
}

type passOver struct {
	vs   *vschema.Keyspace
	skip []KeyRange
	// ctes names the statement's WITH queries, which a table reference of
	// the same name may mean instead of the table.
	ctes map[string]bool
	// claimed holds the sharded table references a condition covers, or
	// that only take new rows (INSERT).
	claimed map[*pg_query.RangeVar]bool
	err     error
}

func (r *passOver) visit(m proto.Message) bool {
	if r.err != nil {
		return false
	}
	switch n := m.(type) {
	case *pg_query.SelectStmt:
		if isPlainSelect(n) {
			n.WhereClause = r.restrict(n.WhereClause, fromTables(n.FromClause, nil))
		}
	case *pg_query.UpdateStmt:
		n.WhereClause = r.restrict(n.WhereClause, fromTables(n.FromClause, []*pg_query.RangeVar{n.Relation}))
	case *pg_query.DeleteStmt:
		n.WhereClause = r.restrict(n.WhereClause, fromTables(n.UsingClause, []*pg_query.RangeVar{n.Relation}))
	case *pg_query.InsertStmt:
		r.claimed[n.Relation] = true
	case *pg_query.CopyStmt:
		if n.Relation == nil {
			break
		}
		if n.IsFrom || r.table(n.Relation) == nil {
			r.claimed[n.Relation] = true
			break
		}
		// COPY t (a, b) TO is COPY (SELECT a, b FROM t) TO, which a
		// condition can restrict.
		target := []*pg_query.Node{starTarget()}
		if len(n.Attlist) > 0 {
			target = target[:0]
			for _, a := range n.Attlist {
				target = append(target, pg_query.MakeResTargetNodeWithVal(pg_query.MakeColumnRefNode([]*pg_query.Node{a}, -1), -1))
			}
		}
		n.Query = &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{
			TargetList: target,
			FromClause: []*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: n.Relation}}},
			Op:         pg_query.SetOperation_SETOP_NONE,
		}}}
		n.Relation, n.Attlist = nil, nil
	case *pg_query.RangeVar:
		if r.table(n) != nil && !r.claimed[n] {
			r.err = unsupported("this statement cannot be limited to the rows each shard owns (it names sharded table %s outside the FROM of a query, UPDATE or DELETE), which a shard that keeps a reshard's copies needs; run it once the workflow completes or is cancelled", n.Relname)
		}
	}
	return true
}

// fromTables appends the table references of a FROM list, joins included
// but not subqueries (a query level of their own), to out.
func fromTables(items []*pg_query.Node, out []*pg_query.RangeVar) []*pg_query.RangeVar {
	for _, it := range items {
		switch n := it.GetNode().(type) {
		case *pg_query.Node_RangeVar:
			out = append(out, n.RangeVar)
		case *pg_query.Node_JoinExpr:
			out = fromTables([]*pg_query.Node{n.JoinExpr.Larg, n.JoinExpr.Rarg}, out)
		}
	}
	return out
}

// table returns the sharded table rv names, nil for anything else.
func (r *passOver) table(rv *pg_query.RangeVar) *vschema.Table {
	if rv == nil {
		return nil
	}
	t := r.vs.Table(vschema.TableName(rv.Schemaname, rv.Relname))
	if t == nil || t.Kind != vschema.Sharded {
		return nil
	}
	if rv.Schemaname == "" && r.ctes[rv.Relname] {
		// The WITH query or the table, by scope: refuse rather than guess.
		if r.err == nil {
			r.err = unsupported("a WITH query named %s like a sharded table cannot be limited to the rows each shard owns, which a shard that keeps a reshard's copies needs; rename the WITH query", rv.Relname)
		}
		return nil
	}
	return t
}

// restrict adds to where a condition for each sharded table of tables that
// passes over its rows in r.skip.
func (r *passOver) restrict(where *pg_query.Node, tables []*pg_query.RangeVar) *pg_query.Node {
	var conds []string
	for _, rv := range tables {
		t := r.table(rv)
		if t == nil {
			continue
		}
		r.claimed[rv] = true
		name := rv.Relname
		if rv.Alias != nil {
			name = rv.Alias.Aliasname
		}
		col := quoteIdent(name) + "." + quoteIdent(t.Column)
		hash := t.HashSQL(col)
		// Rows without a sharding value go with the lowest keyspace id;
		// a row an outer join padded with NULLs is not one of them.
		nullKey := fmt.Sprintf("%s IS NULL AND NOT (ROW(%s.*) IS NULL)", col, quoteIdent(name))
		var in []string
		for _, kr := range r.skip {
			switch {
			case kr.Lo == math.MinInt64 && kr.Hi == math.MaxInt64:
				in = append(in, hash+" IS NOT NULL", nullKey)
			case kr.Lo == math.MinInt64:
				in = append(in, fmt.Sprintf("%s <= %d", hash, kr.Hi), nullKey)
			case kr.Hi == math.MaxInt64:
				in = append(in, fmt.Sprintf("%s >= %d", hash, kr.Lo))
			default:
				in = append(in, fmt.Sprintf("%s BETWEEN %d AND %d", hash, kr.Lo, kr.Hi))
			}
		}
		conds = append(conds, "("+strings.Join(in, " OR ")+") IS NOT TRUE")
	}
	if len(conds) == 0 || r.err != nil {
		return where
	}
	tree, err := pg_query.Parse("SELECT WHERE " + strings.Join(conds, " AND "))
	if err != nil {
		r.err = err
		return where
	}
	cond := tree.Stmts[0].Stmt.GetSelectStmt().WhereClause
	if where == nil {
		return cond
	}
	return pg_query.MakeBoolExprNode(pg_query.BoolExprType_AND_EXPR, []*pg_query.Node{where, cond}, -1)
}

// quoteIdent quotes an identifier for SQL.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
