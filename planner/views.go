package planner

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/vschema"
)

// A view read through the gateway is planned as its definition: each view
// a statement reads in a FROM is replaced by its query (from the shards'
// catalog) as a derived table of the view's name, as Postgres's rewriter
// does, so that it routes and merges like the query it stands for — a
// view over reference tables reads one shard, one over sharded tables runs
// over the shards it needs. The query then runs with the caller's rights
// on the view's tables rather than the view owner's.

// maxViewDepth bounds views defined over views.
const maxViewDepth = 16

// expandViews replaces the views a SELECT reads with their definitions and
// reports whether it replaced any. A name that a WITH query of the
// statement also has is left alone, as scope decides which it means.
func (p *planning) expandViews(stmt *pg_query.Node) (bool, *Error) {
	if p.vs.Catalog == nil {
		return false, nil
	}
	withNames := map[string]bool{}
	walk(stmt, func(m proto.Message) bool {
		if cte, ok := m.(*pg_query.CommonTableExpr); ok {
			withNames[cte.Ctename] = true
		}
		return true
	})
	return p.expandViewsIn(stmt, withNames, 0)
}

func (p *planning) expandViewsIn(n *pg_query.Node, withNames map[string]bool, depth int) (bool, *Error) {
	var (
		expanded bool
		err      *Error
	)
	rewrite(n, func(c *pg_query.Node) *pg_query.Node {
		rv := c.GetRangeVar()
		if err != nil || rv == nil || rv.Schemaname == "" && withNames[rv.Relname] {
			return nil
		}
		name := vschema.TableName(rv.Schemaname, rv.Relname)
		rel := p.vs.Catalog.Relation(name)
		if p.vs.Table(name) != nil || rel == nil || rel.Kind != 'v' || rel.View == "" {
			return nil
		}
		if depth >= maxViewDepth {
			err = unsupported("view %s is defined over more than %d levels of views", name, maxViewDepth)
			return nil
		}
		tree, perr := pg_query.Parse(rel.View)
		if perr != nil || len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetSelectStmt() == nil {
			err = unsupported("view %s: its definition could not be read (%v)", name, perr)
			return nil
		}
		query := tree.Stmts[0].Stmt
		if _, err = p.expandViewsIn(query, withNames, depth+1); err != nil {
			return nil
		}
		alias := rv.Alias
		if alias == nil {
			alias = &pg_query.Alias{Aliasname: rv.Relname}
		}
		expanded = true
		return &pg_query.Node{Node: &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{
			Subquery: query, Alias: alias}}}
	})
	return expanded, err
}
