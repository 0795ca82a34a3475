package planner

import (
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/planner/engine"
)

// evaluating plans the output columns of a statement across shards that
// are expressions over aggregates (count(*) + 1, sum(a) / count(*)): the
// aggregates and group keys they read are combined at the gateway as
// hidden columns, then a shard computes the expressions from them (an
// engine.Evaluate).
type evaluating struct {
	p         *planning
	b         *block
	s         *pg_query.SelectStmt // the client's statement
	shard     *pg_query.SelectStmt // the shards' statement, whose column i becomes a placeholder
	addHidden func(string) int
	groups    []int
	groupText []string
	distinct  string // the DISTINCT aggregates' argument (see distinctArgument)

	exprs []string                 // per output column: the expression over sg_v, or ""
	extra []engine.AggregateColumn // the values they read after the output columns
	// collations maps a value they read (an output column or one of
	// extra, counted from the first output column) to the one of extra
	// that names its collation.
	collations map[int]int
	filters    []string // HAVING conditions over sg_v
	sorts      []string // ORDER BY keys over sg_v that are no output column
}

// active reports whether the statement needs an Evaluate.
func (ev *evaluating) active() bool {
	return ev.exprs != nil || ev.filters != nil || ev.sorts != nil
}

// evaluated reports whether output column i is computed by the Evaluate.
func (ev *evaluating) evaluated(i int) bool {
	return ev.exprs != nil && ev.exprs[i] != ""
}

// expr rewrites an expression over aggregates and group keys into one
// over the combined values, sg_v.
func (ev *evaluating) expr(n *pg_query.Node) (string, *Error) {
	var failed *Error
	expr := rewrite(proto.Clone(n).(*pg_query.Node), func(n *pg_query.Node) *pg_query.Node {
		if failed != nil {
			return n
		}
		ref, err := ev.value(n)
		if err != nil {
			failed = err
			return n
		}
		return ref
	})
	if failed != nil {
		return "", failed
	}
	return ev.p.exprText(expr)
}

// condition plans a HAVING condition the gateway cannot check itself.
func (ev *evaluating) condition(c *pg_query.Node) *Error {
	text, err := ev.expr(c)
	if err != nil {
		return err
	}
	ev.filters = append(ev.filters, "("+text+")")
	return nil
}

// sortValue plans an ORDER BY key that is no output column and returns
// its place among the values after the output columns.
func (ev *evaluating) sortValue(n *pg_query.Node) (int, *Error) {
	text, err := ev.expr(n)
	if err != nil {
		return 0, err
	}
	ev.sorts = append(ev.sorts, text)
	return len(ev.sorts) - 1, nil
}

// column plans output column i, an expression over aggregates.
func (ev *evaluating) column(i int, rt *pg_query.ResTarget) *Error {
	if ev.exprs == nil {
		ev.exprs = make([]string, len(ev.s.TargetList))
	}
	name := rt.Name
	if name == "" {
		name = columnName(rt.Val)
	}
	text, err := ev.expr(rt.Val)
	if err != nil {
		return err
	}
	ev.exprs[i] = text + " AS " + engine.QuoteIdent(name)
	// The shards compute nothing in its place.
	placeholder := proto.Clone(ev.shard.TargetList[i]).(*pg_query.Node)
	placeholder.GetResTarget().Val = &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{Isnull: true}}}
	ev.shard.TargetList[i] = placeholder
	return nil
}

// value returns what an expression over aggregates reads in place of n:
// a reference to a combined aggregate or group key, or nil to look
// inside n.
func (ev *evaluating) value(n *pg_query.Node) (*pg_query.Node, *Error) {
	switch v := n.GetNode().(type) {
	case *pg_query.Node_FuncCall:
		if v.FuncCall.Over == nil && isAggregate(v.FuncCall) {
			return ev.aggregate(n, v.FuncCall)
		}
	case *pg_query.Node_ParamRef:
		return nil, unsupported("parameters in expressions over aggregates across shards are not supported yet")
	case *pg_query.Node_SubLink:
		return nil, unsupported("subqueries in expressions over aggregates across shards are not supported yet")
	case *pg_query.Node_String_, *pg_query.Node_AConst, *pg_query.Node_TypeName, *pg_query.Node_AStar:
		return nil, nil
	}
	if len(ev.groupText) == 0 {
		if cr := n.GetColumnRef(); cr != nil {
			return nil, ev.notGrouped(n)
		}
		return nil, nil
	}
	text, err := ev.p.exprText(n)
	if err != nil {
		return nil, nil // not an expression of its own
	}
	for g, gt := range ev.groupText {
		if gt == text {
			return ev.groupKey(g), nil
		}
	}
	if n.GetColumnRef() != nil {
		return nil, ev.notGrouped(n)
	}
	return nil, nil
}

func (ev *evaluating) notGrouped(n *pg_query.Node) *Error {
	text, _ := ev.p.exprText(n)
	return unsupported("column %s in an expression over aggregates across shards is not supported: only GROUP BY expressions and aggregates", text)
}

// aggregate adds an aggregate's partials as hidden columns and returns
// a reference to its combined value.
func (ev *evaluating) aggregate(n *pg_query.Node, f *pg_query.FuncCall) (*pg_query.Node, *Error) {
	text, err := ev.p.exprText(n)
	if err != nil {
		return nil, err
	}
	col := engine.AggregateColumn{Text: text, Collation: -1}
	if err := ev.p.combine(f, ev.b, ev.distinct, &col); err != nil {
		return nil, err
	}
	col.From = ev.addHidden(text + " AS sg_value")
	if err := ev.p.partials(f, &col, ev.addHidden); err != nil {
		return nil, err
	}
	return ev.ref(col), nil
}

// groupKey returns a reference to group key g: the output column that
// passes it on, or a hidden copy.
func (ev *evaluating) groupKey(g int) *pg_query.Node {
	for j, t := range ev.s.TargetList {
		if ev.evaluated(j) || hasAggregate(t.GetResTarget().GetVal()) {
			continue
		}
		if text, err := ev.p.exprText(t.GetResTarget().GetVal()); err == nil && text == ev.groupText[g] {
			ev.collation(j, text)
			return column(j)
		}
	}
	hidden := ev.groups[g] - len(ev.s.TargetList)
	return ev.ref(engine.AggregateColumn{Func: engine.AggFirst, From: hidden, Collation: -1, Text: ev.groupText[g]})
}

// ref adds a value after the output columns and returns a reference to it.
func (ev *evaluating) ref(col engine.AggregateColumn) *pg_query.Node {
	ev.extra = append(ev.extra, col)
	j := len(ev.s.TargetList) + len(ev.extra) - 1
	ev.collation(j, col.Text)
	return column(j)
}

// collation has the shards name the collation of value j, the expression
// text, once: "default" also for a type without one (pg_collation_for
// refuses those, so it reads the value as text, which keeps a text
// value's collation).
func (ev *evaluating) collation(j int, text string) {
	if _, ok := ev.collations[j]; ok {
		return
	}
	if ev.collations == nil {
		ev.collations = map[int]int{}
	}
	from := ev.addHidden(fmt.Sprintf("pg_catalog.pg_collation_for((%s)::text) AS sg_value_collation", text))
	ev.extra = append(ev.extra, engine.AggregateColumn{Func: engine.AggFirst, From: from, Collation: -1, Text: "collation of " + text})
	ev.collations[j] = len(ev.s.TargetList) + len(ev.extra) - 1
}

// column refers to the evaluated values' column j (0-based).
func column(j int) *pg_query.Node {
	return pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode("sg_v"), pg_query.MakeStrNode(fmt.Sprintf("sg_%d", j+1))}, 0)
}

// finish puts the Evaluate over the combined values in: its input is the
// Aggregate's output columns, then ev.extra, then passOn (the collations of
// the ORDER BY keys), which it returns after ev.sorts.
func (ev *evaluating) finish(input engine.Primitive, columns, passOn []engine.AggregateColumn) *engine.Evaluate {
	var texts []string
	for _, cols := range [][]engine.AggregateColumn{columns, ev.extra, passOn} {
		for _, c := range cols {
			texts = append(texts, c.Text)
		}
	}
	exprs := ev.exprs
	if exprs == nil {
		exprs = make([]string, len(columns))
	}
	extra := append([]string(nil), ev.sorts...)
	for p := range passOn {
		extra = append(extra, fmt.Sprintf("sg_v.sg_%d", len(columns)+len(ev.extra)+p+1))
	}
	return &engine.Evaluate{Input: input, Exprs: exprs, Extra: extra, Filter: strings.Join(ev.filters, " AND "), Collations: ev.collations, Texts: texts}
}
