// Package planner turns SQL text into execution plans: trees of the engine's
// primitives (Route, Scatter, Broadcast, ...) that say how to find their
// shards, resolved when they run. Planning follows an allow-list: a
// statement shape is accepted only when the plan provably gives the answer
// one Postgres would; every other shape is refused with SQLSTATE 0A000
// naming what is missing. A plan depends on the keyspace's vschema only,
// not on where its shards are placed nor on the values of parameters, so it
// is made once per prepared statement.
package planner

import (
	"errors"
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	pgparser "github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/vschema"
)

// Statement is one planned statement of a query string.
type Statement struct {
	// SQL is the statement's own text, without the others of its query string.
	SQL  string
	Root engine.Primitive
	// ReadOnly is set for statements that change no data (SELECT, SHOW).
	ReadOnly bool
	// NoTransaction is set for statements Postgres refuses to run inside a
	// transaction block (VACUUM, CREATE INDEX CONCURRENTLY).
	NoTransaction bool
	// Control is set, and Root nil, for transaction control, which the
	// session runs itself.
	Control *Control
	// Setting is set, and Root nil, for statements that change session
	// settings (SET, RESET, set_config): the session runs them on the
	// backends it uses and replays them on the ones it uses later.
	Setting *Setting
	// Copy is set, and Root nil, for COPY FROM STDIN and TO STDOUT.
	Copy *Copy
	// Opaque is set for statements that run code the planner cannot see
	// into (DO, CALL): they may change session settings behind its back.
	Opaque bool
	// Discards says what of the backend session the statement throws away
	// (DISCARD ALL, DEALLOCATE ALL), which the gateway must forget too.
	Discards Discard
	// Deallocate names the statement of DEALLOCATE name: it may be one the
	// client prepared with the protocol, which shares its namespace.
	Deallocate string
	// Signal is set for SELECT pg_cancel_backend(pid) and
	// pg_terminate_backend(pid), which the gateway may answer itself.
	Signal *Signal
	// Fetch is set for FETCH, whose result columns are the cursor's: known
	// when the statement is bound, not when it is prepared.
	Fetch bool
	// ChangesSchema is set for statements that may change what statements
	// mean (DDL, GRANT, DO, CALL: all but plain reads, writes and session
	// commands), which makes remembered descriptions of statements stale.
	ChangesSchema bool
	// DuringReshard is set for the schema changes a reshard workflow lets
	// through, which reach its targets too (see reshardSafe); other ones
	// wait until it ends.
	DuringReshard bool
	// Sequences are the global sequences the statement restarts or drops
	// (ALTER SEQUENCE ... RESTART, DROP SEQUENCE, DROP TABLE of a table
	// owning one, TRUNCATE ... RESTART IDENTITY): once it committed, the
	// gateway moves or removes their records in etcd.
	Sequences []SequenceChange
	// Learns names the tables the statement creates that the vschema does
	// not list, under unlisted_tables: reference: the gateway records them
	// as reference tables before it runs (topology.Store.
	// LearnReferenceTables), and the statements after it plan with them.
	Learns []string
	// SessionState names the state the statement may leave on its backend
	// connection beyond settings ("temporary tables", "cursors", ...), or
	// is "": the session must keep that connection while the state lasts.
	SessionState string
}

// Discard is what a statement throws away of a backend session.
type Discard int

// What statements discard.
const (
	// DiscardPrepared: every prepared statement (DEALLOCATE ALL).
	DiscardPrepared Discard = iota + 1
	// DiscardAll: prepared statements, settings and the rest (DISCARD ALL).
	DiscardAll
)

// discards classifies DEALLOCATE ALL and DISCARD ALL.
func discards(stmt *pg_query.Node) Discard {
	switch n := stmt.Node.(type) {
	case *pg_query.Node_DeallocateStmt:
		if n.DeallocateStmt.GetIsall() || n.DeallocateStmt.GetName() == "" {
			return DiscardPrepared
		}
	case *pg_query.Node_DiscardStmt:
		if n.DiscardStmt.GetTarget() == pg_query.DiscardMode_DISCARD_ALL {
			return DiscardAll
		}
	}
	return 0
}

// ControlKind is a kind of transaction-control statement.
type ControlKind int

// Transaction-control statements.
const (
	Begin ControlKind = iota + 1
	Commit
	Rollback
	Savepoint
	Release
	RollbackTo
	// The client's own two-phase commit: PREPARE TRANSACTION, COMMIT
	// PREPARED, ROLLBACK PREPARED.
	PrepareTransaction
	CommitPrepared
	RollbackPrepared
)

func (k ControlKind) String() string {
	switch k {
	case Begin:
		return "BEGIN"
	case Commit:
		return "COMMIT"
	case Rollback:
		return "ROLLBACK"
	case Savepoint:
		return "SAVEPOINT"
	case Release:
		return "RELEASE"
	case RollbackTo:
		return "ROLLBACK TO"
	case PrepareTransaction:
		return "PREPARE TRANSACTION"
	case CommitPrepared:
		return "COMMIT PREPARED"
	case RollbackPrepared:
		return "ROLLBACK PREPARED"
	}
	return fmt.Sprintf("ControlKind(%d)", int(k))
}

// Control describes a transaction-control statement.
type Control struct {
	Kind ControlKind
	// Savepoint names the savepoint of Savepoint, Release and RollbackTo.
	Savepoint string
	// GID is the transaction identifier of the client's two-phase commit.
	GID string
	// Chain is set for COMMIT AND CHAIN and ROLLBACK AND CHAIN: a new
	// transaction like the ended one begins at once.
	Chain bool
}

// Setting describes a statement that changes a session setting.
type Setting struct {
	// Name is the lower-case parameter name; empty for RESET ALL.
	Name string
	// Reset is set for RESET name, SET name TO DEFAULT and RESET ALL.
	Reset bool
	// Local is set for SET LOCAL and SET TRANSACTION: they last until the
	// end of the current transaction only.
	Local bool
	// ValueParam is the parameter ($n) that gives set_config its value, 0
	// for none: the statement can run only once it is bound.
	ValueParam int
}

// Plan parses sql, which may hold several statements separated by
// semicolons, and plans each one for keyspace vs. An empty or comment-only
// string gives no statements. A parse error is an *Error with code 42601.
// Parameters ($1, ...) that fix a sharding column route the statement when
// it runs, by their bound values.
func Plan(vs *vschema.Keyspace, sql string) ([]*Statement, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		var perr *pgparser.Error
		if errors.As(err, &perr) {
			return nil, &Error{Code: CodeSyntaxError, Message: perr.Message, Position: perr.Cursorpos}
		}
		return nil, &Error{Code: CodeSyntaxError, Message: err.Error()}
	}
	out := make([]*Statement, 0, len(tree.Stmts))
	for _, raw := range tree.Stmts {
		text := statementText(sql, raw)
		learns := learnedTables(vs, raw.Stmt)
		vs = vs.WithReference(learns...)
		st := &Statement{Learns: learns, Sequences: sequenceChanges(vs, raw.Stmt), SQL: text, ReadOnly: readOnly(raw.Stmt), NoTransaction: noTransaction(raw.Stmt),
			Opaque: raw.Stmt.GetDoStmt() != nil || raw.Stmt.GetCallStmt() != nil, Discards: discards(raw.Stmt),
			SessionState: sessionState(raw.Stmt), Fetch: raw.Stmt.GetFetchStmt() != nil, ChangesSchema: changesSchema(raw.Stmt), DuringReshard: reshardSafe(raw.Stmt),
			Deallocate: raw.Stmt.GetDeallocateStmt().GetName(), Signal: signal(raw.Stmt)}
		if st.Control, err = control(raw.Stmt); err != nil {
			return nil, err
		}
		st.Setting = setting(raw.Stmt)
		if st.Control == nil && st.Setting == nil {
			p := &planning{vs: vs, sql: text, version: tree.Version}
			if cs := raw.Stmt.GetCopyStmt(); cs != nil {
				st.Copy, err = p.planCopy(cs)
			} else {
				st.Root, err = p.plan(raw.Stmt)
			}
			if err != nil {
				return nil, err
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// learnedTables names the tables stmt creates that vs does not list, when
// vs makes such tables reference tables: by CREATE TABLE, or by renaming
// or moving a table learned so.
func learnedTables(vs *vschema.Keyspace, stmt *pg_query.Node) []string {
	if vs == nil || !vs.Sharded || vs.UnlistedTables != vschema.ReferenceUnlisted {
		return nil
	}
	var out []string
	learn := func(rv *pg_query.RangeVar, schema string) {
		if rv == nil || temporary(rv) {
			return
		}
		if rv.Schemaname != "" {
			schema = rv.Schemaname
		}
		name := vschema.TableName(schema, rv.Relname)
		if vs.Table(name) == nil && vschema.ValidTableName(name) == nil {
			out = append(out, name)
		}
	}
	learn(stmt.GetCreateStmt().GetRelation(), "")
	// A learned table renamed or moved is learned by its new name too.
	if r := stmt.GetRenameStmt(); r != nil && r.RenameType == pg_query.ObjectType_OBJECT_TABLE && r.Relation != nil {
		if t := vs.Table(vschema.TableName(r.Relation.Schemaname, r.Relation.Relname)); t != nil && t.Learned {
			learn(&pg_query.RangeVar{Schemaname: r.Relation.Schemaname, Relname: r.Newname}, "")
		}
	}
	if m := stmt.GetAlterObjectSchemaStmt(); m != nil && m.ObjectType == pg_query.ObjectType_OBJECT_TABLE && m.Relation != nil {
		if t := vs.Table(vschema.TableName(m.Relation.Schemaname, m.Relation.Relname)); t != nil && t.Learned {
			learn(&pg_query.RangeVar{Schemaname: m.Newschema, Relname: m.Relation.Relname}, "")
		}
	}
	if cs := stmt.GetCreateSchemaStmt(); cs != nil {
		for _, e := range cs.SchemaElts {
			learn(e.GetCreateStmt().GetRelation(), cs.Schemaname)
		}
	}
	return out
}

// statementText cuts one statement out of a multi-statement string.
func statementText(sql string, raw *pg_query.RawStmt) string {
	start := int(raw.StmtLocation)
	end := len(sql)
	if raw.StmtLen > 0 {
		end = start + int(raw.StmtLen)
	}
	return strings.TrimSpace(sql[start:end])
}

// planning holds what planning one statement needs.
type planning struct {
	vs      *vschema.Keyspace
	sql     string
	version int32 // of the parse tree, needed to deparse

	// While the statement is analyzed (see levels.go):
	an    *analysis
	outer []*block   // the enclosing query levels, innermost last
	scope *withScope // the WITH queries in scope
	infos map[*pg_query.SelectStmt]levelInfo
	// pulling is set while a SELECT is analyzed: its uncorrelated
	// subqueries can run before it (analysis.pulled).
	pulling bool
	// boundFrom is the first parameter the engine binds, 0 for none.
	boundFrom int
	// draws are the sequence values the statement's parameters after the
	// client's take (see sequences.go), before any other it binds.
	draws []engine.Subquery
}

func (p *planning) plan(stmt *pg_query.Node) (engine.Primitive, error) {
	if !p.vs.Sharded {
		// One backend connection holds everything of the session: what it
		// leaves there (temporary tables, cursors, prepared statements,
		// advisory locks) stays its own, the connection held for it
		// (session pooling) or pinned to it while the state lasts
		// (transaction pooling), and discarded when it ends.
		if p.vs.Pooling != vschema.PoolSession && sessionState(stmt) == "set_config()" {
			// A setting changed where the gateway cannot see it would
			// stay on a connection other sessions get next.
			return nil, unsupported("set_config() inside a larger statement is not supported with transaction pooling; use SET, or SELECT set_config(...) alone")
		}
		return p.route(engine.Target{Kind: engine.TargetAll}), nil
	}
	if anchored(stmt) {
		return p.route(engine.Target{Kind: engine.TargetAnchor}), nil
	}
	if stmt.GetDeallocateStmt() != nil {
		// Of the client's protocol statements, which the gateway keeps
		// (see Statement.Deallocate), or else of none: SQL PREPARE is
		// refused here.
		return p.anyShard(), nil
	}
	if what := sessionState(stmt); what != "" {
		if name := strings.TrimSuffix(what, "()"); anchorFuncs[strings.ToLower(name)] {
			return nil, anchorRefusal(name)
		}
		return nil, unsupported("%s: not supported on a sharded keyspace by shardgate yet", what)
	}
	switch n := stmt.Node.(type) {
	case *pg_query.Node_SelectStmt:
		if expanded, err := p.expandViews(stmt); err != nil {
			return nil, err
		} else if expanded {
			if p.sql, err = p.deparse(stmt); err != nil {
				return nil, err
			}
		}
		if err := p.selectSequences(stmt, n.SelectStmt); err != nil {
			return nil, err
		}
		prim, err := p.planSelect(n.SelectStmt)
		if err != nil || len(p.draws) == 0 {
			return prim, err
		}
		return withDraws(p.draws, prim), nil
	case *pg_query.Node_InsertStmt:
		return p.planInsert(stmt, n.InsertStmt)
	case *pg_query.Node_UpdateStmt:
		u := n.UpdateStmt
		if err := p.checkSequenceDefaults(u); err != nil {
			return nil, err
		}
		return p.planWrite(stmt, u.Relation, u.FromClause, u.WhereClause, u.WithClause, u.TargetList)
	case *pg_query.Node_DeleteStmt:
		d := n.DeleteStmt
		return p.planWrite(stmt, d.Relation, d.UsingClause, d.WhereClause, d.WithClause, nil)
	case *pg_query.Node_VariableShowStmt:
		return p.anyShard(), nil
	case *pg_query.Node_ExplainStmt:
		return p.planExplain(n.ExplainStmt)
	}
	if schemaChange(stmt) {
		return p.planDDL(stmt)
	}
	return nil, unsupported("%s is not supported on a sharded keyspace yet", statementKind(p.sql))
}

// anyShard routes a statement whose answer is the same on every shard.
func (p *planning) anyShard() *engine.Route {
	return p.route(engine.Target{Kind: engine.TargetAny})
}

// route sends the statement as it is to where target resolves.
func (p *planning) route(target engine.Target) *engine.Route {
	return &engine.Route{Target: target, Query: engine.Query{SQL: p.sql}}
}

// noTransaction reports whether Postgres refuses stmt in a transaction block.
func noTransaction(stmt *pg_query.Node) bool {
	switch n := stmt.Node.(type) {
	case *pg_query.Node_VacuumStmt:
		return true
	case *pg_query.Node_IndexStmt:
		return n.IndexStmt.Concurrent
	case *pg_query.Node_DropStmt:
		return n.DropStmt.Concurrent
	case *pg_query.Node_ReindexStmt:
		if k := n.ReindexStmt.Kind; k == pg_query.ReindexObjectType_REINDEX_OBJECT_DATABASE || k == pg_query.ReindexObjectType_REINDEX_OBJECT_SYSTEM {
			return true
		}
		for _, o := range n.ReindexStmt.Params {
			if o.GetDefElem().GetDefname() == "concurrently" {
				return true
			}
		}
	}
	return false
}

// changesSchema reports whether stmt may change the catalog (see
// Statement.ChangesSchema).
func changesSchema(stmt *pg_query.Node) bool {
	switch n := stmt.Node.(type) {
	case *pg_query.Node_SelectStmt:
		return n.SelectStmt.IntoClause != nil
	case *pg_query.Node_ExplainStmt:
		return changesSchema(n.ExplainStmt.Query)
	case *pg_query.Node_InsertStmt, *pg_query.Node_UpdateStmt, *pg_query.Node_DeleteStmt, *pg_query.Node_MergeStmt,
		*pg_query.Node_VariableShowStmt, *pg_query.Node_VariableSetStmt, *pg_query.Node_TransactionStmt,
		*pg_query.Node_CopyStmt, *pg_query.Node_FetchStmt, *pg_query.Node_ClosePortalStmt, *pg_query.Node_DeclareCursorStmt,
		*pg_query.Node_PrepareStmt, *pg_query.Node_ExecuteStmt, *pg_query.Node_DeallocateStmt,
		*pg_query.Node_ListenStmt, *pg_query.Node_UnlistenStmt, *pg_query.Node_NotifyStmt,
		*pg_query.Node_LockStmt, *pg_query.Node_VacuumStmt, *pg_query.Node_CheckPointStmt:
		return false
	}
	return true
}

// readOnly reports whether a statement changes no data.
func readOnly(stmt *pg_query.Node) bool {
	switch n := stmt.Node.(type) {
	case *pg_query.Node_SelectStmt:
		return n.SelectStmt.IntoClause == nil
	case *pg_query.Node_VariableShowStmt:
		return true
	case *pg_query.Node_CopyStmt:
		return !n.CopyStmt.IsFrom
	}
	return false
}

// planExplain plans EXPLAIN of a statement as the gateway's plan with each
// shard's own plan beneath it (see engine.Explain). Other formats than text
// (JSON, YAML, XML) are the shard's own and pass through when the
// statement runs on one shard.
func (p *planning) planExplain(e *pg_query.ExplainStmt) (engine.Primitive, error) {
	innerSQL, err := pg_query.Deparse(&pg_query.ParseResult{Version: p.version, Stmts: []*pg_query.RawStmt{{Stmt: e.Query}}})
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: fmt.Sprintf("print the explained statement: %v", err)}
	}
	inner, err := (&planning{vs: p.vs, sql: innerSQL, version: p.version}).plan(e.Query)
	if err != nil {
		return nil, err
	}
	for _, o := range e.Options {
		if d := o.GetDefElem(); d.GetDefname() == "format" && !strings.EqualFold(defString(d), "text") {
			refusal := unsupported("EXPLAIN (FORMAT %s) of a statement that runs on more than one shard is not supported; use the text format, which shows the gateway's plan", defString(d))
			switch r := inner.(type) {
			case *engine.Route:
				return &engine.Route{Target: r.Target, Query: engine.Query{SQL: p.sql}, Refusal: refusal}, nil
			case *engine.InsertSplit:
				return &engine.Route{Target: engine.Target{Kind: engine.TargetKeys, Keys: r.Keys()}, Query: engine.Query{SQL: p.sql}, Refusal: refusal}, nil
			}
			return nil, refusal
		}
	}
	frame := proto.Clone(e).(*pg_query.ExplainStmt)
	frame.Query = &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{
		TargetList:  []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Val: pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(valuesMarker)}, 0)}}}},
		Op:          pg_query.SetOperation_SETOP_NONE,
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT}}}
	text, err := pg_query.Deparse(&pg_query.ParseResult{Version: p.version, Stmts: []*pg_query.RawStmt{{Stmt: &pg_query.Node{Node: &pg_query.Node_ExplainStmt{ExplainStmt: frame}}}}})
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: fmt.Sprintf("print EXPLAIN's options: %v", err)}
	}
	prefix, _, ok := strings.Cut(text, "SELECT "+valuesMarker)
	if !ok {
		return nil, &Error{Code: CodeInternal, Message: fmt.Sprintf("print EXPLAIN's options: got %q", text)}
	}
	return &engine.Explain{Plan: inner, Prefix: prefix}, nil
}

// StateListen is the SessionState of LISTEN: the session's connection must
// be watched for notifications while the client is idle.
const StateListen = "LISTEN"

// sessionState names the state a statement creates on its backend
// connection beyond settings ("" for none): temporary tables, cursors, SQL
// prepared statements, advisory locks, ... A session that creates it must
// keep that connection (see Statement.SessionState).
func sessionState(stmt *pg_query.Node) string {
	what := ""
	switch n := stmt.Node.(type) {
	case *pg_query.Node_DiscardStmt:
		what = "DISCARD"
	case *pg_query.Node_ListenStmt:
		what = StateListen
	case *pg_query.Node_UnlistenStmt:
		what = "UNLISTEN"
	case *pg_query.Node_PrepareStmt, *pg_query.Node_ExecuteStmt, *pg_query.Node_DeallocateStmt:
		what = "SQL-level PREPARE/EXECUTE/DEALLOCATE"
	case *pg_query.Node_DeclareCursorStmt, *pg_query.Node_FetchStmt, *pg_query.Node_ClosePortalStmt:
		what = "cursors"
	case *pg_query.Node_LoadStmt:
		what = "LOAD"
	case *pg_query.Node_CreateStmt:
		if temporary(n.CreateStmt.Relation) {
			what = "temporary tables"
		}
	case *pg_query.Node_ViewStmt:
		if temporary(n.ViewStmt.View) {
			what = "temporary objects"
		}
	case *pg_query.Node_CreateSeqStmt:
		if temporary(n.CreateSeqStmt.Sequence) {
			what = "temporary objects"
		}
	case *pg_query.Node_CompositeTypeStmt:
		if temporary(n.CompositeTypeStmt.Typevar) {
			what = "temporary objects"
		}
	case *pg_query.Node_DefineStmt:
		if inTempSchema(n.DefineStmt.Defnames) {
			what = "temporary objects"
		}
	case *pg_query.Node_CreateRangeStmt:
		if inTempSchema(n.CreateRangeStmt.TypeName) {
			what = "temporary objects"
		}
	case *pg_query.Node_CreateEnumStmt:
		if inTempSchema(n.CreateEnumStmt.TypeName) {
			what = "temporary objects"
		}
	case *pg_query.Node_CreateDomainStmt:
		if inTempSchema(n.CreateDomainStmt.Domainname) {
			what = "temporary objects"
		}
	case *pg_query.Node_CreateFunctionStmt:
		if inTempSchema(n.CreateFunctionStmt.Funcname) {
			what = "temporary objects"
		}
	case *pg_query.Node_CreateTableAsStmt:
		if n.CreateTableAsStmt.GetInto().GetRel().GetRelpersistence() == "t" {
			what = "temporary tables"
		}
	case *pg_query.Node_SelectStmt:
		if n.SelectStmt.IntoClause.GetRel().GetRelpersistence() == "t" {
			what = "temporary tables"
		}
	}
	if what == "" {
		walk(stmt, func(m proto.Message) bool {
			if f, ok := m.(*pg_query.FuncCall); ok && sessionFuncs[strings.ToLower(funcName(f))] {
				what = funcName(f) + "()"
			}
			return what == ""
		})
	}
	return what
}

// temporary reports whether a relation being created is temporary: TEMP,
// or in the session's own schema pg_temp.
func temporary(rv *pg_query.RangeVar) bool {
	return rv.GetRelpersistence() == "t" || strings.HasPrefix(rv.GetSchemaname(), "pg_temp")
}

// inTempSchema reports whether a qualified name (a list of strings) is in
// the session's own schema pg_temp.
func inTempSchema(name []*pg_query.Node) bool {
	return len(name) > 1 && strings.HasPrefix(name[0].GetString_().GetSval(), "pg_temp")
}

// sessionFuncs change the state of the backend session they run in.
// set_config is allowed only in the form setting recognizes.
var sessionFuncs = setOf("set_config", "pg_advisory_lock", "pg_advisory_lock_shared",
	"pg_try_advisory_lock", "pg_try_advisory_lock_shared", "pg_advisory_unlock",
	"pg_advisory_unlock_shared", "pg_advisory_unlock_all", "dblink_connect", "lo_open")

// statementKind names a statement by its leading keywords, for messages.
func statementKind(sql string) string {
	words := strings.Fields(sql)
	if len(words) > 2 {
		words = words[:2]
	}
	return strings.ToUpper(strings.TrimRight(strings.Join(words, " "), ";"))
}

// tableError reports a table the vschema does not know.
func (p *planning) tableError(name string) *Error {
	return &Error{
		Code:    CodeUndefinedTable,
		Message: fmt.Sprintf("table %q is not in the vschema of keyspace %q", name, p.vs.Name),
		Hint:    "Add it to the vschema (shardctl vschema apply) as a sharded or reference table.",
	}
}

// control recognizes transaction-control statements.
func control(stmt *pg_query.Node) (*Control, error) {
	ts := stmt.GetTransactionStmt()
	if ts == nil {
		return nil, nil
	}
	switch ts.Kind {
	case pg_query.TransactionStmtKind_TRANS_STMT_BEGIN, pg_query.TransactionStmtKind_TRANS_STMT_START:
		return &Control{Kind: Begin}, nil
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT:
		return &Control{Kind: Commit, Chain: ts.Chain}, nil
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK:
		return &Control{Kind: Rollback, Chain: ts.Chain}, nil
	case pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT:
		return &Control{Kind: Savepoint, Savepoint: ts.SavepointName}, nil
	case pg_query.TransactionStmtKind_TRANS_STMT_RELEASE:
		return &Control{Kind: Release, Savepoint: ts.SavepointName}, nil
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		return &Control{Kind: RollbackTo, Savepoint: ts.SavepointName}, nil
	case pg_query.TransactionStmtKind_TRANS_STMT_PREPARE:
		return &Control{Kind: PrepareTransaction, GID: ts.Gid}, nil
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED:
		return &Control{Kind: CommitPrepared, GID: ts.Gid}, nil
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED:
		return &Control{Kind: RollbackPrepared, GID: ts.Gid}, nil
	}
	return nil, unsupported("%s is not supported by shardgate yet", ts.Kind)
}

// setting recognizes statements that change session settings: SET, RESET,
// and SELECT set_config('name', value, is_local) alone in a statement.
func setting(stmt *pg_query.Node) *Setting {
	if vs := stmt.GetVariableSetStmt(); vs != nil {
		switch vs.Kind {
		case pg_query.VariableSetKind_VAR_RESET_ALL:
			return &Setting{Reset: true}
		case pg_query.VariableSetKind_VAR_RESET, pg_query.VariableSetKind_VAR_SET_DEFAULT:
			return &Setting{Name: strings.ToLower(vs.Name), Reset: true, Local: vs.IsLocal}
		case pg_query.VariableSetKind_VAR_SET_MULTI:
			// SET TRANSACTION ... and SET SESSION CHARACTERISTICS AS
			// TRANSACTION ...; the former lasts for the transaction.
			return &Setting{Name: strings.ToLower(vs.Name), Local: strings.EqualFold(vs.Name, "transaction")}
		}
		return &Setting{Name: strings.ToLower(vs.Name), Local: vs.IsLocal}
	}
	sel := stmt.GetSelectStmt()
	if sel == nil || len(sel.TargetList) != 1 || len(sel.FromClause) > 0 || sel.WhereClause != nil || !isPlainSelect(sel) {
		return nil
	}
	f := sel.TargetList[0].GetResTarget().GetVal().GetFuncCall()
	if f == nil || strings.ToLower(funcName(f)) != "set_config" || len(f.Args) != 3 {
		return nil
	}
	name := f.Args[0].GetAConst().GetSval()
	local := f.Args[2].GetAConst().GetBoolval()
	if name == nil || local == nil && f.Args[2].GetAConst() == nil {
		return nil
	}
	set := &Setting{Name: strings.ToLower(name.Sval), Local: local != nil && local.Boolval}
	if p := f.Args[1].GetParamRef(); p != nil {
		set.ValueParam = int(p.Number)
	}
	return set
}

// SingleStatement reports whether sql holds one statement (ignoring empty
// ones), without parsing it: for asking a shard about it as a whole.
func SingleStatement(sql string) bool {
	parts, err := pg_query.SplitWithScanner(sql, true)
	n := 0
	for _, p := range parts {
		if strings.Trim(p, "; \t\r\n") != "" {
			n++
		}
	}
	return err == nil && n == 1
}
