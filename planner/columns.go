package planner

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardgate/shardgate/vschema"
)

// nameColumns gives an INSERT ... VALUES without a column list the columns
// Postgres fills, from the catalog: the table's first columns, one per
// value of its rows. It reports whether it named them, and then the
// statement's text is printed anew (p.sql). Without the catalog's word on
// the table (created in the same transaction, say), or with rows longer
// than the table or of different lengths, the statement is left as it is.
func (p *planning) nameColumns(stmt *pg_query.Node, ins *pg_query.InsertStmt) (bool, error) {
	sel := ins.SelectStmt.GetSelectStmt()
	if len(ins.Cols) > 0 || sel == nil || len(sel.ValuesLists) == 0 {
		return false, nil
	}
	rel := p.vs.Catalog.Relation(vschema.TableName(ins.Relation.Schemaname, ins.Relation.Relname))
	n := len(sel.ValuesLists[0].GetList().GetItems())
	if rel == nil || n > len(rel.Columns) {
		return false, nil
	}
	for _, row := range sel.ValuesLists {
		if len(row.GetList().GetItems()) != n {
			return false, nil // Postgres's error says so
		}
	}
	for _, c := range rel.Columns[:n] {
		ins.Cols = append(ins.Cols, pg_query.MakeResTargetNodeWithName(c.Name, 0))
	}
	sql, err := p.deparse(stmt)
	if err != nil {
		return false, err
	}
	p.sql = sql
	return true, nil
}
