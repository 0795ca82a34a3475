package planner

import (
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/vschema"
)

// planDDL sends schema changes to every shard of the keyspace, after
// refusing definitions that sharding would make wrong: one transaction
// there, committed on all or none (see the proxy), except for the few
// statements Postgres runs outside a transaction.
func (p *planning) planDDL(stmt *pg_query.Node) (engine.Primitive, error) {
	if err := p.checkDDL(stmt); err != nil {
		return nil, err
	}
	// Every shard with the tables: a reshard's targets too.
	return &engine.Broadcast{Target: engine.Target{Kind: engine.TargetSchema}, SQL: p.sql, Apart: noTransaction(stmt), Undo: undo(stmt)}, nil
}

// undo removes the invalid index a failed CREATE INDEX CONCURRENTLY leaves
// behind, so that it can be run again, IF NOT EXISTS or not. An index
// without a name cannot be found again: Postgres chose it.
func undo(stmt *pg_query.Node) *engine.Undo {
	ix := stmt.GetIndexStmt()
	if ix == nil || !ix.Concurrent || ix.Idxname == "" {
		return nil
	}
	name := quoteIdent(ix.Idxname)
	if s := ix.Relation.GetSchemaname(); s != "" {
		name = quoteIdent(s) + "." + name
	}
	return &engine.Undo{
		Check: "SELECT 1 FROM pg_catalog.pg_index WHERE indexrelid = pg_catalog.to_regclass(" + quoteLiteral(name) + ") AND NOT indisvalid",
		SQL:   "DROP INDEX CONCURRENTLY IF EXISTS " + name,
	}
}

// checkDDL refuses a schema change that sharding would make wrong.
func (p *planning) checkDDL(stmt *pg_query.Node) error {
	switch n := stmt.Node.(type) {
	case *pg_query.Node_CreateStmt:
		return p.checkCreate(n.CreateStmt)
	case *pg_query.Node_AlterTableStmt:
		return p.checkAlter(n.AlterTableStmt)
	case *pg_query.Node_IndexStmt:
		return p.checkIndex(n.IndexStmt)
	case *pg_query.Node_DropStmt:
		return p.checkDrop(n.DropStmt)
	case *pg_query.Node_TruncateStmt:
		for _, r := range n.TruncateStmt.Relations {
			if _, err := p.vschemaTable(r.GetRangeVar()); err != nil {
				return err
			}
		}
	case *pg_query.Node_CreateSchemaStmt:
		return p.checkSchemaElements(n.CreateSchemaStmt)
	case *pg_query.Node_RenameStmt:
		return p.checkRename(n.RenameStmt)
	case *pg_query.Node_AlterObjectSchemaStmt:
		if rv := n.AlterObjectSchemaStmt.Relation; rv != nil && p.listed(rv) != nil && !p.listed(rv).Learned {
			return unsupported("moving table %s to another schema is not supported: the vschema names it by its schema", vschema.TableName(rv.Schemaname, rv.Relname))
		}
	case *pg_query.Node_CreateTableAsStmt:
		if n.CreateTableAsStmt.Objtype != pg_query.ObjectType_OBJECT_MATVIEW {
			return unsupported("CREATE TABLE ... AS is not supported on a sharded keyspace; create the table, then INSERT ... SELECT")
		}
	}
	return nil
}

// schemaChange reports whether stmt is a schema change planDDL runs on every
// shard: tables and the objects around them (schemas, types, functions,
// views, triggers, sequences, extensions, policies, comments, privileges)
// and DO blocks, which migrations use to make them. Objects of the whole
// server (roles, databases, tablespaces) are not: shards may share one.
func schemaChange(stmt *pg_query.Node) bool {
	switch stmt.Node.(type) {
	case *pg_query.Node_CreateStmt, *pg_query.Node_AlterTableStmt, *pg_query.Node_DropStmt,
		*pg_query.Node_IndexStmt, *pg_query.Node_TruncateStmt, *pg_query.Node_VacuumStmt,
		*pg_query.Node_CreateSchemaStmt, *pg_query.Node_RenameStmt, *pg_query.Node_AlterObjectSchemaStmt,
		*pg_query.Node_AlterOwnerStmt, *pg_query.Node_CreateEnumStmt, *pg_query.Node_AlterEnumStmt,
		*pg_query.Node_CompositeTypeStmt, *pg_query.Node_CreateDomainStmt, *pg_query.Node_AlterDomainStmt,
		*pg_query.Node_CreateRangeStmt, *pg_query.Node_AlterTypeStmt, *pg_query.Node_DefineStmt,
		*pg_query.Node_CreateFunctionStmt, *pg_query.Node_AlterFunctionStmt, *pg_query.Node_ViewStmt,
		*pg_query.Node_CreateTableAsStmt, *pg_query.Node_RefreshMatViewStmt, *pg_query.Node_CreateTrigStmt,
		*pg_query.Node_CreateEventTrigStmt, *pg_query.Node_AlterEventTrigStmt, *pg_query.Node_RuleStmt,
		*pg_query.Node_CreateExtensionStmt, *pg_query.Node_AlterExtensionStmt, *pg_query.Node_AlterExtensionContentsStmt,
		*pg_query.Node_CreateSeqStmt, *pg_query.Node_AlterSeqStmt, *pg_query.Node_CreatePolicyStmt,
		*pg_query.Node_AlterPolicyStmt, *pg_query.Node_CommentStmt, *pg_query.Node_SecLabelStmt,
		*pg_query.Node_GrantStmt, *pg_query.Node_AlterDefaultPrivilegesStmt, *pg_query.Node_DoStmt,
		*pg_query.Node_CreateCastStmt, *pg_query.Node_CreateOpClassStmt, *pg_query.Node_CreateOpFamilyStmt,
		*pg_query.Node_AlterOpFamilyStmt, *pg_query.Node_AlterOperatorStmt, *pg_query.Node_CreateConversionStmt,
		*pg_query.Node_CreateTransformStmt, *pg_query.Node_CreateStatsStmt, *pg_query.Node_AlterStatsStmt,
		*pg_query.Node_AlterCollationStmt, *pg_query.Node_AlterTsdictionaryStmt, *pg_query.Node_AlterTsconfigurationStmt,
		*pg_query.Node_ReindexStmt, *pg_query.Node_DropOwnedStmt, *pg_query.Node_ReassignOwnedStmt:
		return true
	}
	return false
}

// listed returns the vschema table rv names, nil if none.
func (p *planning) listed(rv *pg_query.RangeVar) *vschema.Table {
	return p.vs.Table(vschema.TableName(rv.Schemaname, rv.Relname))
}

// checkSchemaElements checks the objects CREATE SCHEMA makes with it, which
// are made in the new schema.
func (p *planning) checkSchemaElements(cs *pg_query.CreateSchemaStmt) error {
	for _, e := range cs.SchemaElts {
		for _, rv := range []*pg_query.RangeVar{e.GetCreateStmt().GetRelation(), e.GetIndexStmt().GetRelation(), e.GetViewStmt().GetView(), e.GetCreateSeqStmt().GetSequence(), e.GetCreateTrigStmt().GetRelation()} {
			if rv != nil && rv.Schemaname == "" {
				rv.Schemaname = cs.Schemaname
			}
		}
		if err := p.checkDDL(e); err != nil {
			return err
		}
	}
	return nil
}

// checkRename refuses renaming what the vschema names: a table, its
// sharding column, the schema of a table.
func (p *planning) checkRename(r *pg_query.RenameStmt) error {
	switch r.RenameType {
	case pg_query.ObjectType_OBJECT_TABLE:
		if t := p.listed(r.Relation); t != nil && !t.Learned {
			return unsupported("renaming table %s is not supported: the vschema names it; add the new name to the vschema, copy the rows, then drop the old table", t.Name)
		}
	case pg_query.ObjectType_OBJECT_COLUMN:
		if t := p.listed(r.Relation); t != nil && t.Kind == vschema.Sharded && r.Subname == t.Column {
			return unsupported("renaming sharding column %s.%s is not supported: the vschema names it", t.Name, t.Column)
		}
	case pg_query.ObjectType_OBJECT_SCHEMA:
		for _, name := range p.vs.TableNames() {
			if strings.HasPrefix(name, r.Subname+".") {
				return unsupported("renaming schema %s is not supported: the vschema names table %s in it", r.Subname, name)
			}
		}
	}
	return nil
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
		name = "int8" // an integer drawn from a sequence
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
// its own: a volatile default on a reference table would differ between
// copies. A serial or identity column draws from a global sequence, whose
// values the gateway hands out (see sequences.go).
func checkColumn(t *vschema.Table, cd *pg_query.ColumnDef) error {
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
	case pg_query.ConstrType_CONSTR_DEFAULT:
		if err := checkDefault(t, column, con.RawExpr); err != nil {
			return err
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

// checkDefault refuses a column default that uses a sequence but
// nextval('s') alone, which the gateway replaces with its global
// sequence's value. A reference table's volatile default (now(),
// gen_random_uuid()) is the gateway's to compute once for every copy (see
// insertDefaults).
func checkDefault(t *vschema.Table, column string, expr *pg_query.Node) error {
	if fc := expr.GetFuncCall(); fc != nil && strings.EqualFold(funcName(fc), "nextval") && len(fc.Args) == 1 {
		if _, ok := sequenceArg(fc.Args[0]); ok {
			return nil
		}
	}
	if err := checkFunctions(expr, false); err != nil {
		return fmt.Errorf("default of %s.%s: %w", t.Name, column, err)
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
			if cmd.Def != nil {
				if err := checkDefault(t, cmd.Name, cmd.Def); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (p *planning) checkIndex(ix *pg_query.IndexStmt) error {
	t, catalog, err := p.resolve(ix.Relation)
	switch {
	case catalog:
		return unsupported("changing system catalogs through shardgate is not supported")
	case err != nil:
		// Not a table of the vschema: a materialized view's index.
		return nil
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
	case pg_query.ObjectType_OBJECT_PUBLICATION:
		return unsupported("DROP PUBLICATION is not supported on a sharded keyspace: publications there are the reshard workflows'")
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
				if d.MissingOk && p.vs.Table(vschema.TableName(rv.Schemaname, rv.Relname)) == nil {
					continue // DROP TABLE IF EXISTS of a table that was never there
				}
				return err
			}
		}
	}
	return nil
}

// objectName spells an object type as SQL does: OBJECT_MATVIEW -> MATVIEW.
func objectName(t pg_query.ObjectType) string {
	return strings.ReplaceAll(strings.TrimPrefix(t.String(), "OBJECT_"), "_", " ")
}
