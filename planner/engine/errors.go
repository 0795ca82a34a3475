package engine

import "fmt"

// SQLSTATE codes the planner and the engine answer with. They are
// Postgres's own codes.
const (
	CodeSyntaxError         = "42601"
	CodeFeatureNotSupported = "0A000"
	CodeUndefinedTable      = "42P01"
	CodeInternal            = "XX000"
)

// Error is a statement refused or failed by the gateway itself, with the
// SQLSTATE a client gets. It is born where the gateway decides and turned
// into an ErrorResponse once, at the wire.
type Error struct {
	Code     string
	Message  string
	Detail   string
	Hint     string
	Position int // 1-based character position in the statement, 0 if none
	// Final marks a refusal no other plan avoids: one Postgres's answer
	// depends on an order no plan over shards reproduces (a float sum).
	Final bool
}

func (e *Error) Error() string { return e.Message }

// Unsupported is a statement shape the gateway refuses: 0A000.
func Unsupported(format string, args ...any) *Error {
	return &Error{Code: CodeFeatureNotSupported, Message: fmt.Sprintf(format, args...)}
}

// internal is a broken promise between the gateway and its shards.
func internal(format string, args ...any) *Error {
	return &Error{Code: CodeInternal, Message: fmt.Sprintf(format, args...)}
}
