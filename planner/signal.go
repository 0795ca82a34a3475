package planner

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Signal is a call of pg_cancel_backend or pg_terminate_backend alone in a
// SELECT. The process id a client knows its session by may be the
// gateway's own (when the session owns no backend), and then the gateway,
// not a shard, answers the call.
type Signal struct {
	// Terminate is set for pg_terminate_backend, else pg_cancel_backend.
	Terminate bool
	// PID is the process id written in the statement, or PIDParam the
	// parameter ($n) that gives it, or Self is set for pg_backend_pid().
	PID      int64
	PIDParam int
	Self     bool
}

// signal recognizes SELECT pg_cancel_backend(pid) and SELECT
// pg_terminate_backend(pid [, timeout]) with a literal or a parameter.
func signal(stmt *pg_query.Node) *Signal {
	sel := stmt.GetSelectStmt()
	if sel == nil || len(sel.TargetList) != 1 || len(sel.FromClause) > 0 || sel.WhereClause != nil || !isPlainSelect(sel) {
		return nil
	}
	f := sel.TargetList[0].GetResTarget().GetVal().GetFuncCall()
	if f == nil || len(f.Args) == 0 {
		return nil
	}
	var sig Signal
	switch strings.ToLower(funcName(f)) {
	case "pg_cancel_backend":
		if len(f.Args) != 1 {
			return nil
		}
	case "pg_terminate_backend":
		if len(f.Args) > 2 {
			return nil
		}
		sig.Terminate = true
	default:
		return nil
	}
	arg := f.Args[0]
	if tc := arg.GetTypeCast(); tc != nil {
		arg = tc.Arg
	}
	switch {
	case arg.GetFuncCall() != nil && strings.ToLower(funcName(arg.GetFuncCall())) == "pg_backend_pid" && len(arg.GetFuncCall().Args) == 0:
		sig.Self = true
	case arg.GetParamRef() != nil:
		sig.PIDParam = int(arg.GetParamRef().Number)
	case arg.GetAConst().GetIval() != nil:
		sig.PID = int64(arg.GetAConst().GetIval().Ival)
	default:
		return nil
	}
	return &sig
}
