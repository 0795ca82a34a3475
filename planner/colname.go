package planner

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// columnName is the name Postgres gives an output column without an alias
// (FigureColname in src/backend/parser/parse_target.c): the gateway names
// a column it computes itself the same way.
func columnName(n *pg_query.Node) string {
	if name, strength := figureName(n); strength > 0 {
		return name
	}
	return "?column?"
}

// figureName returns n's name and how strongly n names its column: 2 for a
// real name, 1 for a fallback (a cast's type, "case"), 0 for none.
func figureName(n *pg_query.Node) (string, int) {
	switch v := n.GetNode().(type) {
	case *pg_query.Node_SubLink:
		switch v.SubLink.SubLinkType {
		case pg_query.SubLinkType_EXISTS_SUBLINK:
			return "exists", 2
		case pg_query.SubLinkType_ARRAY_SUBLINK:
			return "array", 2
		case pg_query.SubLinkType_EXPR_SUBLINK:
			// The subquery's own column name.
			s := v.SubLink.Subselect.GetSelectStmt()
			for s != nil && !isPlainSelect(s) {
				s = s.Larg
			}
			if s != nil && len(s.TargetList) > 0 {
				rt := s.TargetList[0].GetResTarget()
				if rt.GetName() != "" {
					return rt.GetName(), 2
				}
				return columnName(rt.GetVal()), 2
			}
		}
	case *pg_query.Node_ColumnRef:
		if name := lastString(v.ColumnRef.Fields); name != "" {
			return name, 2
		}
	case *pg_query.Node_AIndirection:
		if name := lastString(v.AIndirection.Indirection); name != "" {
			return name, 2
		}
		return figureName(v.AIndirection.Arg)
	case *pg_query.Node_FuncCall:
		return lastString(v.FuncCall.Funcname[len(v.FuncCall.Funcname)-1:]), 2
	case *pg_query.Node_AExpr:
		if v.AExpr.Kind == pg_query.A_Expr_Kind_AEXPR_NULLIF {
			return "nullif", 2
		}
	case *pg_query.Node_TypeCast:
		name, strength := figureName(v.TypeCast.Arg)
		if strength <= 1 && v.TypeCast.TypeName != nil {
			return lastString(v.TypeCast.TypeName.Names[len(v.TypeCast.TypeName.Names)-1:]), 1
		}
		return name, strength
	case *pg_query.Node_CollateClause:
		return figureName(v.CollateClause.Arg)
	case *pg_query.Node_GroupingFunc:
		return "grouping", 2
	case *pg_query.Node_CaseExpr:
		name, strength := figureName(v.CaseExpr.Defresult)
		if strength <= 1 {
			return "case", 1
		}
		return name, strength
	case *pg_query.Node_AArrayExpr:
		return "array", 2
	case *pg_query.Node_RowExpr:
		return "row", 2
	case *pg_query.Node_CoalesceExpr:
		return "coalesce", 2
	case *pg_query.Node_MinMaxExpr:
		if v.MinMaxExpr.Op == pg_query.MinMaxOp_IS_GREATEST {
			return "greatest", 2
		}
		return "least", 2
	case *pg_query.Node_SqlvalueFunction:
		if name, ok := sqlValueNames[v.SqlvalueFunction.Op]; ok {
			return name, 2
		}
	}
	return "", 0
}

// sqlValueNames name the functions SQL spells without parentheses.
var sqlValueNames = map[pg_query.SQLValueFunctionOp]string{
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_DATE:        "current_date",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIME:        "current_time",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIME_N:      "current_time",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP:   "current_timestamp",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP_N: "current_timestamp",
	pg_query.SQLValueFunctionOp_SVFOP_LOCALTIME:           "localtime",
	pg_query.SQLValueFunctionOp_SVFOP_LOCALTIME_N:         "localtime",
	pg_query.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP:      "localtimestamp",
	pg_query.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP_N:    "localtimestamp",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_ROLE:        "current_role",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_USER:        "current_user",
	pg_query.SQLValueFunctionOp_SVFOP_USER:                "user",
	pg_query.SQLValueFunctionOp_SVFOP_SESSION_USER:        "session_user",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_CATALOG:     "current_catalog",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_SCHEMA:      "current_schema",
}

// lastString returns the last String among nodes, "" if there is none.
func lastString(nodes []*pg_query.Node) string {
	name := ""
	for _, n := range nodes {
		if s := n.GetString_(); s != nil {
			name = s.Sval
		}
	}
	return name
}
