package planner

import (
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/vschema"
)

// planDDL sends schema changes of vschema tables to every shard of the
// keyspace, after refusing definitions that sharding would make wrong.
func (p *planning) planDDL(stmt *pg_query.Node) (engine.Primitive, error) {
	var err error
	switch n := stmt.Node.(type) {
	case *pg_query.Node_CreateStmt:
		err = p.checkCreate(n.CreateStmt)
	case *pg_query.Node_AlterTableStmt:
		err = p.checkAlter(n.AlterTableStmt)
	case *pg_query.Node_IndexStmt:
		err = p.checkIndex(n.IndexStmt)
	case *pg_query.Node_DropStmt:
		err = p.checkDrop(n.DropStmt)
	case *pg_query.Node_TruncateStmt:
		for _, r := range n.TruncateStmt.Relations {
			if _, err = p.vschemaTable(r.GetRangeVar()); err != nil {
				break
			}
		}
	case *pg_query.Node_VacuumStmt:
		// VACUUM and ANALYZE change no data; run them everywhere.
	}
	if err != nil {
		return nil, err
	}
	// Every shard with the tables: a reshard's targets too.
	return &engine.Broadcast{Target: engine.Target{Kind: engine.TargetSchema}, SQL: p.sql}, nil
}

// reshardSafe reports whether stmt is a schema change that may run while a
// reshard workflow streams the keyspace's changes: it runs on the sources
// and the targets alike, and the change streams carry rows of either
// shape. Changes of what the streams depend on (tables, names, primary
// keys, constraints that may be one) are not.
func reshardSafe(stmt *pg_query.Node) bool {
	switch n := stmt.Node.(type) {
	case *pg_query.Node_IndexStmt:
		return !n.IndexStmt.Primary
	case *pg_query.Node_DropStmt:
		return n.DropStmt.RemoveType == pg_query.ObjectType_OBJECT_INDEX
	case *pg_query.Node_VacuumStmt, *pg_query.Node_TruncateStmt:
		return true
	case *pg_query.Node_AlterTableStmt:
		for _, c := range n.AlterTableStmt.Cmds {
			cmd := c.GetAlterTableCmd()
			if cmd == nil {
				return false
			}
			switch cmd.Subtype {
			case pg_query.AlterTableType_AT_AddColumn, pg_query.AlterTableType_AT_DropColumn,
				pg_query.AlterTableType_AT_ColumnDefault, pg_query.AlterTableType_AT_SetNotNull,
				pg_query.AlterTableType_AT_DropNotNull, pg_query.AlterTableType_AT_AlterColumnType,
				pg_query.AlterTableType_AT_SetStatistics, pg_query.AlterTableType_AT_SetStorage:
			case pg_query.AlterTableType_AT_AddConstraint:
				if con := cmd.Def.GetConstraint(); con == nil || con.Contype == pg_query.ConstrType_CONSTR_PRIMARY {
					return false
				}
			default:
				return false
			}
		}
		return true
	}
	return false
}

// vschemaTable resolves a DDL target, which must be a vschema table.
func (p *planning) vschemaTable(rv *pg_query.RangeVar) (*vschema.Table, error) {
	t, catalog, err := p.resolve(rv)
	if err != nil {
		return nil, err
	}
	if catalog {
		return nil, unsupported("changing system catalogs through shardgate is not supported")
	}
	return t, nil
}

func (p *planning) checkCreate(c *pg_query.CreateStmt) error {
	t, err := p.vschemaTable(c.Relation)
	if err != nil {
		return err
	}
	if len(c.InhRelations) > 0 || c.Partbound != nil || c.OfTypename != nil {
		return unsupported("CREATE TABLE with INHERITS, PARTITION OF or OF is not supported on a sharded keyspace yet")
	}
	hasKey := false
	for _, e := range c.TableElts {
		switch n := e.Node.(type) {
		case *pg_query.Node_ColumnDef:
			if n.ColumnDef.Colname == t.Column {
				hasKey = true
				if err := checkKeyType(t, n.ColumnDef.TypeName); err != nil {
					return err
				}
			}
			if err := checkColumn(t, n.ColumnDef); err != nil {
				return err
			}
		case *pg_query.Node_Constraint:
			if err := checkConstraint(t, n.Constraint, ""); err != nil {
				return err
			}
		case *pg_query.Node_TableLikeClause:
			return unsupported("CREATE TABLE ... (LIKE ...) is not supported on a sharded keyspace; list the columns")
		}
	}
	if t.Kind == vschema.Sharded && !hasKey {
		return unsupported("table %s is sharded by column %s in the vschema, but CREATE TABLE does not define it", t.Name, t.Column)
	}
	return nil
}

// checkKeyType checks that the sharding column is declared with the type the
// vschema hashes it as.
func checkKeyType(t *vschema.Table, tn *pg_query.TypeName) error {
	names := tn.GetNames()
	if len(names) == 0 {
		return nil
	}
	name := names[len(names)-1].GetString_().GetSval()
	if isSerial(name) {
		return nil // refused by checkColumn with a better message
	}
	if castFamily[name] != t.Type || len(tn.ArrayBounds) > 0 {
		return unsupported("sharding column %s.%s is declared as %s, but the vschema says its type is %s", t.Name, t.Column, name, t.Type)
	}
	return nil
}

func isSerial(typeName string) bool {
	switch typeName {
	case "serial", "serial2", "serial4", "serial8", "smallserial", "bigserial":
		return true
	}
	return false
}

// checkColumn refuses column definitions that each shard would compute on
// its own: serial and identity columns hand out the same ids on every shard,
// and a volatile default on a reference table would differ between copies.
func checkColumn(t *vschema.Table, cd *pg_query.ColumnDef) error {
	if names := cd.TypeName.GetNames(); len(names) > 0 && isSerial(names[len(names)-1].GetString_().GetSval()) {
		return unsupported("serial column %s.%s is not supported on a sharded keyspace: each shard would hand out the same ids; use uuid keys or ids generated by the application", t.Name, cd.Colname)
	}
	for _, c := range cd.Constraints {
		con := c.GetConstraint()
		if con == nil {
			continue
		}
		if err := checkConstraint(t, con, cd.Colname); err != nil {
			return err
		}
	}
	return nil
}

// checkConstraint refuses constraints that one shard cannot enforce alone.
// column is set for a column constraint.
func checkConstraint(t *vschema.Table, con *pg_query.Constraint, column string) error {
	switch con.Contype {
	case pg_query.ConstrType_CONSTR_IDENTITY:
		return unsupported("identity column %s.%s is not supported on a sharded keyspace: each shard would hand out the same ids", t.Name, column)
	case pg_query.ConstrType_CONSTR_DEFAULT:
		if t.Kind == vschema.Reference {
			if err := checkFunctions(con.RawExpr, true); err != nil {
				return fmt.Errorf("default of %s.%s: %w", t.Name, column, err)
			}
		}
	case pg_query.ConstrType_CONSTR_PRIMARY, pg_query.ConstrType_CONSTR_UNIQUE, pg_query.ConstrType_CONSTR_EXCLUSION:
		if t.Kind != vschema.Sharded {
			return nil
		}
		keys := []string{column}
		if column == "" {
			keys = nil
			for _, k := range con.Keys {
				keys = append(keys, k.GetString_().GetSval())
			}
		}
		if con.Contype == pg_query.ConstrType_CONSTR_EXCLUSION || !contains(keys, t.Column) {
			return uniquenessError(t)
		}
	}
	return nil
}

func uniquenessError(t *vschema.Table) *Error {
	return unsupported("a unique constraint or index on sharded table %s must include its sharding column %s: each shard can only check its own rows", t.Name, t.Column)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *planning) checkAlter(a *pg_query.AlterTableStmt) error {
	if a.Objtype != pg_query.ObjectType_OBJECT_TABLE {
		return unsupported("ALTER %s is not supported on a sharded keyspace yet", objectName(a.Objtype))
	}
	t, err := p.vschemaTable(a.Relation)
	if err != nil {
		return err
	}
	for _, c := range a.Cmds {
		cmd := c.GetAlterTableCmd()
		if cmd == nil {
			continue
		}
		switch cmd.Subtype {
		case pg_query.AlterTableType_AT_DropColumn, pg_query.AlterTableType_AT_AlterColumnType:
			if t.Kind == vschema.Sharded && cmd.Name == t.Column {
				return unsupported("changing or dropping sharding column %s.%s is not supported", t.Name, t.Column)
			}
		case pg_query.AlterTableType_AT_AddIdentity:
			return unsupported("identity column %s.%s is not supported on a sharded keyspace: each shard would hand out the same ids", t.Name, cmd.Name)
		case pg_query.AlterTableType_AT_AddColumn:
			if cd := cmd.Def.GetColumnDef(); cd != nil {
				if err := checkColumn(t, cd); err != nil {
					return err
				}
			}
		case pg_query.AlterTableType_AT_AddConstraint:
			if con := cmd.Def.GetConstraint(); con != nil {
				if err := checkConstraint(t, con, ""); err != nil {
					return err
				}
			}
		case pg_query.AlterTableType_AT_ColumnDefault:
			if t.Kind == vschema.Reference && cmd.Def != nil {
				if err := checkFunctions(cmd.Def, true); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (p *planning) checkIndex(ix *pg_query.IndexStmt) error {
	t, err := p.vschemaTable(ix.Relation)
	if err != nil {
		return err
	}
	if !ix.Unique || t.Kind != vschema.Sharded {
		return nil
	}
	for _, e := range ix.IndexParams {
		if e.GetIndexElem().GetName() == t.Column {
			return nil
		}
	}
	return uniquenessError(t)
}

func (p *planning) checkDrop(d *pg_query.DropStmt) error {
	switch d.RemoveType {
	case pg_query.ObjectType_OBJECT_INDEX:
		return nil
	case pg_query.ObjectType_OBJECT_TABLE:
		for _, o := range d.Objects {
			var names []string
			for _, n := range o.GetList().GetItems() {
				names = append(names, n.GetString_().GetSval())
			}
			rv := &pg_query.RangeVar{Relname: names[len(names)-1]}
			if len(names) > 1 {
				rv.Schemaname = names[len(names)-2]
			}
			if _, err := p.vschemaTable(rv); err != nil {
				if d.MissingOk && p.vs.Table(rv.Relname) == nil {
					continue // DROP TABLE IF EXISTS of a table that was never there
				}
				return err
			}
		}
		return nil
	}
	return unsupported("DROP %s is not supported on a sharded keyspace yet", objectName(d.RemoveType))
}

// objectName spells an object type as SQL does: OBJECT_MATVIEW -> MATVIEW.
func objectName(t pg_query.ObjectType) string {
	return strings.ReplaceAll(strings.TrimPrefix(t.String(), "OBJECT_"), "_", " ")
}
