package planner

import "github.com/shardgate/shardgate/planner/engine"

// SQLSTATE codes the planner answers with. They are Postgres's own codes.
const (
	CodeSyntaxError         = engine.CodeSyntaxError
	CodeFeatureNotSupported = engine.CodeFeatureNotSupported
	CodeUndefinedTable      = engine.CodeUndefinedTable
	CodeInternal            = engine.CodeInternal
)

// Error is a statement the planner refuses, with the SQLSTATE a client
// gets: the engine's error, born in either place.
type Error = engine.Error

func unsupported(format string, args ...any) *Error { return engine.Unsupported(format, args...) }
