package planner

import (
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/vschema"
)

// A sequence of a sharded keyspace is global: its values come from the
// gateway (engine.Sequencer), which leases them in blocks from etcd, so
// no two shards hand out the same one. Each shard's own sequence of that
// name is left unused. A call of nextval(), currval(), lastval() or
// setval() that Postgres evaluates once — in a VALUES row, in a SELECT
// without FROM — is replaced by a parameter after the client's, whose
// value the gateway gives (engine.Bind); a column whose default draws
// from a sequence (serial, identity, DEFAULT nextval('s')) gets such a
// call when an INSERT leaves it out or gives it DEFAULT.

// sequenceKinds are the sequence functions by name.
var sequenceKinds = map[string]engine.SubqueryKind{
	"nextval": engine.SequenceNext, "currval": engine.SequenceCurrent,
	"lastval": engine.SequenceLast, "setval": engine.SequenceSet,
}

// drawSequences replaces the sequence function calls below parts, each of
// which Postgres evaluates once, with parameters after the client's and
// returns what gives them. The calls must name their sequence with a
// literal; setval's other arguments must be literals or parameters.
func (p *planning) drawSequences(stmt *pg_query.Node, parts []*pg_query.Node) ([]engine.Subquery, *Error) {
	first := 1
	walk(stmt, func(m proto.Message) bool {
		if pr, isParam := m.(*pg_query.ParamRef); isParam {
			first = max(first, int(pr.Number)+1)
		}
		return true
	})
	var (
		subs []engine.Subquery
		err  *Error
	)
	replace := map[*pg_query.Node]*pg_query.Node{}
	for _, part := range parts {
		walk(part, func(m proto.Message) bool {
			n, isNode := m.(*pg_query.Node)
			if err != nil || !isNode || n.GetFuncCall() == nil {
				return err == nil
			}
			kind, isSeq := sequenceKinds[strings.ToLower(funcName(n.GetFuncCall()))]
			if !isSeq {
				return true
			}
			var s engine.Subquery
			if s, err = sequenceSubquery(kind, n.GetFuncCall()); err != nil {
				return false
			}
			s.Param = first + len(subs)
			subs = append(subs, s)
			replace[n] = int8Param(s.Param)
			return false
		})
	}
	if err != nil {
		return nil, err
	}
	rewrite(stmt, func(n *pg_query.Node) *pg_query.Node { return replace[n] })
	return subs, nil
}

// sequenceSubquery reads the arguments of a call of a sequence function.
func sequenceSubquery(kind engine.SubqueryKind, call *pg_query.FuncCall) (engine.Subquery, *Error) {
	name := funcName(call)
	s := engine.Subquery{Kind: kind, SQL: name + "()"}
	args := call.Args
	want := map[engine.SubqueryKind][2]int{
		engine.SequenceNext: {1, 1}, engine.SequenceCurrent: {1, 1},
		engine.SequenceLast: {0, 0}, engine.SequenceSet: {2, 3},
	}[kind]
	if len(args) < want[0] || len(args) > want[1] || call.AggStar || call.AggDistinct || call.Over != nil {
		// Postgres's own error (no such function) comes from a shard.
		return s, unsupported("%s() with these arguments is not supported on a sharded keyspace", name)
	}
	if kind == engine.SequenceLast {
		return s, nil
	}
	seq, ok := sequenceArg(args[0])
	if !ok {
		return s, unsupported("%s() on a sharded keyspace must name its sequence with a literal: the gateway hands out its values", name)
	}
	s.Sequence = seq
	if kind != engine.SequenceSet {
		return s, nil
	}
	if s.SetTo, ok = constArg(args[1]); !ok {
		return s, unsupported("setval() on a sharded keyspace takes a literal or a parameter as its value")
	}
	if len(args) == 3 {
		called, ok := constArg(args[2])
		if !ok {
			return s, unsupported("setval() on a sharded keyspace takes a literal or a parameter as its third argument")
		}
		s.SetCalled = &called
	}
	return s, nil
}

// sequenceArg reads a sequence's name from 'name' or 'name'::regclass,
// as regclass reads it: unquoted parts folded to lower case, public left
// out (vschema.TableName).
func sequenceArg(n *pg_query.Node) (string, bool) {
	if tc := n.GetTypeCast(); tc != nil {
		names := tc.TypeName.GetNames()
		if len(names) == 0 || names[len(names)-1].GetString_().GetSval() != "regclass" {
			return "", false
		}
		n = tc.Arg
	}
	sv := n.GetAConst().GetSval()
	if sv == nil {
		return "", false
	}
	parts, ok := splitName(sv.Sval)
	switch {
	case !ok:
		return "", false
	case len(parts) == 1:
		return parts[0], true
	case len(parts) == 2:
		return vschema.TableName(parts[0], parts[1]), true
	}
	return "", false
}

// splitName splits a possibly qualified, possibly quoted name into its
// parts as Postgres reads it.
func splitName(s string) ([]string, bool) {
	var parts []string
	for {
		s = strings.TrimSpace(s)
		var part string
		if strings.HasPrefix(s, `"`) {
			end := 1
			var b strings.Builder
			for {
				i := strings.IndexByte(s[end:], '"')
				if i < 0 {
					return nil, false
				}
				b.WriteString(s[end : end+i])
				end += i + 1
				if end < len(s) && s[end] == '"' {
					b.WriteByte('"')
					end++
					continue
				}
				break
			}
			part, s = b.String(), s[end:]
		} else {
			i := strings.IndexByte(s, '.')
			if i < 0 {
				i = len(s)
			}
			part, s = strings.ToLower(strings.TrimSpace(s[:i])), s[i:]
		}
		if part == "" {
			return nil, false
		}
		parts = append(parts, part)
		s = strings.TrimSpace(s)
		if s == "" {
			return parts, true
		}
		if s[0] != '.' {
			return nil, false
		}
		s = s[1:]
	}
}

// constArg reads an argument given as a literal or a parameter.
func constArg(n *pg_query.Node) (engine.Arg, bool) {
	if tc := n.GetTypeCast(); tc != nil {
		n = tc.Arg
	}
	if pr := n.GetParamRef(); pr != nil && pr.Number > 0 {
		return engine.Arg{Param: int(pr.Number)}, true
	}
	c := n.GetAConst()
	switch {
	case c == nil || c.Isnull:
		return engine.Arg{}, false
	case c.GetIval() != nil:
		return engine.Arg{Literal: strconv.Itoa(int(c.GetIval().Ival))}, true
	case c.GetFval() != nil:
		return engine.Arg{Literal: c.GetFval().Fval}, true
	case c.GetBoolval() != nil:
		if c.GetBoolval().Boolval {
			return engine.Arg{Literal: "true"}, true
		}
		return engine.Arg{Literal: "false"}, true
	case c.GetSval() != nil:
		return engine.Arg{Literal: c.GetSval().Sval}, true
	}
	return engine.Arg{}, false
}

// int8Param is $n::int8, a sequence's value.
func int8Param(n int) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{
		Arg:      &pg_query.Node{Node: &pg_query.Node_ParamRef{ParamRef: &pg_query.ParamRef{Number: int32(n)}}},
		TypeName: &pg_query.TypeName{Names: []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("int8")}, Typemod: -1}}}}
}

// insertDefaults gives the columns of an INSERT ... VALUES whose default
// each shard would compute its own way the value the gateway computes once,
// where the INSERT leaves them out or gives them DEFAULT: a column that
// draws from a sequence (catalog) gets a call of nextval(), whose value
// the gateway hands out (each shard's own would repeat the others'); on
// a reference table (copies), a column whose default is volatile (now(),
// gen_random_uuid()) gets its default's expression, which the gateway
// then computes once (see volatile.go), so every copy stores the same. An
// identity column GENERATED ALWAYS takes the value with OVERRIDING SYSTEM
// VALUE, unless the INSERT gives it one of its own somewhere (Postgres's
// error then stands). It reports whether it changed the statement.
func insertDefaults(ins *pg_query.InsertStmt, rel *vschema.Relation, copies bool) bool {
	if rel == nil {
		return false
	}
	fills := make([]func() *pg_query.Node, len(rel.Columns))
	some := false
	for i, c := range rel.Columns {
		switch {
		case c.Generated:
		case c.Sequence != "":
			fills[i] = func() *pg_query.Node { return nextvalCall(c.Sequence) }
		case copies && c.Default != "":
			if expr := volatileDefault(c.Default); expr != nil {
				fills[i] = func() *pg_query.Node { return proto.Clone(expr).(*pg_query.Node) }
			}
		}
		some = some || fills[i] != nil
	}
	if !some {
		return false
	}
	sel := ins.SelectStmt.GetSelectStmt()
	if sel == nil {
		// DEFAULT VALUES: one row of the columns that need a value.
		sel = &pg_query.SelectStmt{ValuesLists: []*pg_query.Node{pg_query.MakeListNode(nil)}}
		ins.SelectStmt = &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}
	}
	if len(sel.ValuesLists) == 0 {
		return false
	}
	changed := false
	for i, c := range rel.Columns {
		if fills[i] == nil {
			continue
		}
		filled := false
		at := -1
		for j, t := range ins.Cols {
			if t.GetResTarget().GetName() == c.Name {
				at = j
			}
		}
		ownValue := false
		if at < 0 {
			ins.Cols = append(ins.Cols, pg_query.MakeResTargetNodeWithName(c.Name, 0))
		}
		for _, row := range sel.ValuesLists {
			items := row.GetList().Items
			switch {
			case at < 0:
				row.GetList().Items = append(items, fills[i]())
			case at < len(items) && items[at].GetSetToDefault() != nil:
				items[at] = fills[i]()
			default:
				ownValue = true
				continue
			}
			filled, changed = true, true
		}
		if filled && c.Identity == 'a' && !ownValue && ins.Override == pg_query.OverridingKind_OVERRIDING_NOT_SET {
			ins.Override = pg_query.OverridingKind_OVERRIDING_SYSTEM_VALUE
		}
	}
	return changed
}

// volatileDefault parses a column default whose value each copy of a
// reference table would compute its own way; nil for one that is the same
// everywhere (a constant, a deterministic expression).
func volatileDefault(text string) *pg_query.Node {
	tree, err := pg_query.Parse("SELECT " + text)
	if err != nil || len(tree.Stmts) != 1 {
		return nil
	}
	targets := tree.Stmts[0].Stmt.GetSelectStmt().GetTargetList()
	if len(targets) != 1 {
		return nil
	}
	expr := targets[0].GetResTarget().GetVal()
	if expr == nil || checkFunctions(expr, true) == nil {
		return nil
	}
	return expr
}

// nextvalCall is nextval('seq'), seq named as the catalog names it
// (vschema.TableName), each part quoted as regclass reads it back.
func nextvalCall(seq string) *pg_query.Node {
	schema, name, qualified := strings.Cut(seq, ".")
	text := quoteIdent(schema)
	if qualified {
		text += "." + quoteIdent(name)
	}
	return pg_query.MakeFuncCallNode([]*pg_query.Node{pg_query.MakeStrNode("nextval")},
		[]*pg_query.Node{pg_query.MakeAConstStrNode(text, 0)}, 0)
}

// selectSequences binds the sequence functions of a SELECT without FROM,
// whose select list Postgres evaluates once: SELECT nextval('s'), SELECT
// setval('s', 100). A column that is such a call keeps its name.
func (p *planning) selectSequences(stmt *pg_query.Node, sel *pg_query.SelectStmt) error {
	if len(sel.FromClause) > 0 || sel.Op != pg_query.SetOperation_SETOP_NONE || sel.WithClause != nil || len(sel.ValuesLists) > 0 {
		return nil
	}
	var parts []*pg_query.Node
	for _, t := range sel.TargetList {
		rt := t.GetResTarget()
		if rt == nil {
			continue
		}
		if fc := rt.Val.GetFuncCall(); fc != nil && rt.Name == "" {
			if _, isSeq := sequenceKinds[strings.ToLower(funcName(fc))]; isSeq {
				rt.Name = strings.ToLower(funcName(fc))
			}
		}
		parts = append(parts, rt.Val)
	}
	draws, err := p.drawSequences(stmt, parts)
	if err != nil {
		return err
	}
	if len(draws) == 0 {
		return nil
	}
	p.draws = draws
	sql, err := p.deparse(stmt)
	if err != nil {
		return err
	}
	p.sql = sql
	return nil
}

// checkSequenceDefaults refuses SET col = DEFAULT of a column whose default
// draws from a sequence (each shard would draw from its own, per row), or
// of a reference table's column whose default is volatile (each copy
// would compute its own).
func (p *planning) checkSequenceDefaults(u *pg_query.UpdateStmt) *Error {
	rel := p.vs.Catalog.Relation(vschema.TableName(u.Relation.Schemaname, u.Relation.Relname))
	copies := p.listed(u.Relation).GetKind() == vschema.Reference
	for _, t := range u.TargetList {
		rt := t.GetResTarget()
		if rt == nil || rt.Val.GetSetToDefault() == nil {
			continue
		}
		for _, c := range rel.GetColumns() {
			switch {
			case c.Name != rt.Name:
			case c.Sequence != "":
				return unsupported("SET %s = DEFAULT is not supported on a sharded keyspace: its default draws from sequence %s, whose values the gateway hands out only to INSERT ... VALUES", c.Name, c.Sequence)
			case copies && volatileDefault(c.Default) != nil:
				return unsupported("SET %s = DEFAULT is not supported on reference table %s: its default (%s) would differ between the copies", c.Name, vschema.TableName(u.Relation.Schemaname, u.Relation.Relname), c.Default)
			}
		}
	}
	return nil
}

// SequenceChange is what a statement does to a global sequence.
type SequenceChange struct {
	Sequence string // as the catalog names it
	// Drop removes it; otherwise it restarts, at Restart (or, nil, at its
	// START).
	Drop    bool
	Restart *int64
}

// sequenceChanges lists what stmt does to the global sequences of a
// sharded keyspace.
func sequenceChanges(vs *vschema.Keyspace, stmt *pg_query.Node) []SequenceChange {
	if vs == nil || !vs.Sharded {
		return nil
	}
	var out []SequenceChange
	// owned lists the sequences the columns of table rv own.
	owned := func(rv *pg_query.RangeVar, change SequenceChange) {
		for _, c := range vs.Catalog.Relation(vschema.TableName(rv.Schemaname, rv.Relname)).GetColumns() {
			if c.OwnsSequence {
				change.Sequence = c.Sequence
				out = append(out, change)
			}
		}
	}
	switch n := stmt.Node.(type) {
	case *pg_query.Node_AlterSeqStmt:
		for _, o := range n.AlterSeqStmt.Options {
			d := o.GetDefElem()
			if d == nil || d.Defname != "restart" {
				continue
			}
			change := SequenceChange{Sequence: vschema.TableName(n.AlterSeqStmt.Sequence.Schemaname, n.AlterSeqStmt.Sequence.Relname)}
			// RESTART WITH n: an Integer, or a Float when past int4.
			text := d.Arg.GetFloat().GetFval()
			if i := d.Arg.GetInteger(); i != nil {
				text = strconv.Itoa(int(i.Ival))
			}
			if v, err := strconv.ParseInt(text, 10, 64); err == nil {
				change.Restart = &v
			}
			out = append(out, change)
		}
	case *pg_query.Node_DropStmt:
		for _, o := range n.DropStmt.Objects {
			var names []string
			for _, item := range o.GetList().GetItems() {
				names = append(names, item.GetString_().GetSval())
			}
			if str := o.GetString_(); str != nil {
				names = []string{str.Sval} // a schema
			}
			if len(names) == 0 || len(names) > 2 {
				continue
			}
			rv := &pg_query.RangeVar{Relname: names[len(names)-1]}
			if len(names) == 2 {
				rv.Schemaname = names[0]
			}
			switch n.DropStmt.RemoveType {
			case pg_query.ObjectType_OBJECT_SCHEMA:
				// CASCADE drops its sequences; without, it fails if any.
				if n.DropStmt.Behavior == pg_query.DropBehavior_DROP_CASCADE && len(names) == 1 {
					for _, name := range vs.Catalog.SequencesIn(names[0]) {
						out = append(out, SequenceChange{Sequence: name, Drop: true})
					}
				}
			case pg_query.ObjectType_OBJECT_SEQUENCE:
				out = append(out, SequenceChange{Sequence: vschema.TableName(rv.Schemaname, rv.Relname), Drop: true})
			case pg_query.ObjectType_OBJECT_TABLE:
				owned(rv, SequenceChange{Drop: true})
			}
		}
	case *pg_query.Node_TruncateStmt:
		if n.TruncateStmt.RestartSeqs {
			for _, r := range n.TruncateStmt.Relations {
				if rv := r.GetRangeVar(); rv != nil {
					owned(rv, SequenceChange{})
				}
			}
		}
	}
	return out
}
