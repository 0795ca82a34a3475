package planner

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/planner/engine"
)

// A write that runs on several shards (a reference table's copies, an
// INSERT whose rows span shards, an UPDATE or DELETE over every shard)
// would store a different value on each shard for now(), random() and
// the like, each shard computing its own. The gateway computes each such
// value once instead, on one shard, and binds it into the statement as a
// parameter after the client's (engine.Bind), so every copy holds the
// same one. Postgres computes a value of a VALUES row once too; one of
// an UPDATE's SET or WHERE once per row, which binding keeps only for
// values that are the same all through a statement (now(),
// CURRENT_TIMESTAMP, ...): the others stay refused there.

// statementStable are the functions whose value is the same for every row
// of a statement: bound once, they are Postgres's.
var statementStable = setOf("now", "transaction_timestamp", "statement_timestamp")

// volatileCall is one call the gateway computes once.
type volatileCall struct {
	node *pg_query.Node // the call, replaced in the statement
	text string         // it, printed
}

// volatileCalls finds the calls below part whose value could differ
// between shards: in a VALUES row (values) any that reads no column;
// elsewhere only statementStable ones and SQL value functions
// (CURRENT_TIMESTAMP, CURRENT_DATE, ...). ok is false when one cannot be
// computed once (it reads a column, or varies by row where rows vary).
func (p *planning) volatileCalls(part *pg_query.Node, values bool) (calls []volatileCall, ok bool) {
	ok = true
	walk(part, func(m proto.Message) bool {
		n, isNode := m.(*pg_query.Node)
		if !ok || !isNode {
			return ok
		}
		switch c := n.Node.(type) {
		case *pg_query.Node_SqlvalueFunction:
		case *pg_query.Node_FuncCall:
			fn := strings.ToLower(funcName(c.FuncCall))
			if deterministic[fn] || anchorFuncs[fn] || sequenceFuncs[fn] {
				return true
			}
			if !values && !statementStable[fn] || readsColumns(n) {
				ok = false
				return false
			}
		default:
			return true
		}
		text, err := p.exprText(n)
		if err != nil {
			ok = false
			return false
		}
		calls = append(calls, volatileCall{node: n, text: text})
		return false
	})
	return calls, ok
}

// readsColumns reports whether an expression reads a column, a
// parameter or a subquery.
func readsColumns(n *pg_query.Node) bool {
	found := false
	walk(n, func(m proto.Message) bool {
		switch m.(type) {
		case *pg_query.ColumnRef, *pg_query.SubLink, *pg_query.ParamRef:
			found = true
		}
		return !found
	})
	return found
}

// bindVolatile replaces in stmt the calls of a write across shards that
// the gateway computes once — those of the VALUES rows values, and of the
// other parts rest — with parameters after the client's, returning the
// subqueries that compute them; ok is false when one cannot be computed
// once, and the caller refuses the statement as before.
func (p *planning) bindVolatile(stmt *pg_query.Node, values, rest []*pg_query.Node) (subs []engine.Subquery, ok bool) {
	var calls []volatileCall
	for i, parts := range [][]*pg_query.Node{values, rest} {
		for _, part := range parts {
			found, ok := p.volatileCalls(part, i == 0)
			if !ok {
				return nil, false
			}
			calls = append(calls, found...)
		}
	}
	if len(calls) == 0 {
		return nil, true
	}
	first := 1
	walk(stmt, func(m proto.Message) bool {
		if pr, isParam := m.(*pg_query.ParamRef); isParam {
			first = max(first, int(pr.Number)+1)
		}
		return true
	})
	replace := map[*pg_query.Node]*pg_query.Node{}
	for i, c := range calls {
		sql := "SELECT " + c.text
		replace[c.node] = valueParam(first + i)
		subs = append(subs, engine.Subquery{
			Plan:  &engine.Route{Target: engine.Target{Kind: engine.TargetAny}, Query: engine.Query{SQL: sql}},
			Kind:  engine.SubqueryValue,
			Param: first + i,
			SQL:   sql,
		})
	}
	rewrite(stmt, func(n *pg_query.Node) *pg_query.Node { return replace[n] })
	return subs, true
}

// nodes wraps messages of a statement as parse-tree nodes to look
// through, skipping nil ones.
func nodes(parts ...*pg_query.Node) []*pg_query.Node {
	var out []*pg_query.Node
	for _, n := range parts {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}
