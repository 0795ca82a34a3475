package planner

import "fmt"

// SQLSTATE codes the planner answers with. They are Postgres's own codes.
const (
	CodeSyntaxError         = "42601"
	CodeFeatureNotSupported = "0A000"
	CodeUndefinedTable      = "42P01"
	CodeInternal            = "XX000"
)

// Error is a statement the planner refuses, with the SQLSTATE a client gets.
type Error struct {
	Code     string
	Message  string
	Hint     string
	Position int // 1-based character position in the statement, 0 if none
}

func (e *Error) Error() string { return e.Message }

func unsupported(format string, args ...any) *Error {
	return &Error{Code: CodeFeatureNotSupported, Message: fmt.Sprintf(format, args...)}
}
