package engine

import (
	"fmt"
	"strings"
)

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

// PartlyApplied is the error of a statement run on each shard apart, outside
// a transaction (CREATE INDEX CONCURRENTLY), that failed on one of them:
// Applied names the shards where it took effect, Failed the one whose error
// Err is, NotRun those after it.
type PartlyApplied struct {
	Applied []string
	Failed  string
	NotRun  []string
	Err     error
	// Undone says what the statement left on the failed shard was
	// removed (see Broadcast.Undo).
	Undone bool
}

func (e *PartlyApplied) Error() string { return fmt.Sprintf("on shard %s: %v", e.Failed, e.Err) }

func (e *PartlyApplied) Unwrap() error { return e.Err }

// Report says per shard what happened, for the error's detail.
func (e *PartlyApplied) Report() string {
	list := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	out := fmt.Sprintf("It runs on each shard apart, outside a transaction: applied on shards %s; failed on shard %s; not run on shards %s.", list(e.Applied), e.Failed, list(e.NotRun))
	if e.Undone {
		out += fmt.Sprintf(" What it left on shard %s was removed.", e.Failed)
	}
	return out
}
