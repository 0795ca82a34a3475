package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/planner/engine"
)

// SQLSTATE codes the gateway itself answers with (Postgres's own codes).
const (
	codeConnectionFailure  = "08006"
	codeSystemError        = "58000"
	codeProtocolViolation  = "08P01"
	codeTooManyConnections = "53300"
	codeQueryCanceled      = "57014"
	codeAdminShutdown      = "57P01"
	codeInvalidCatalogName = "3D000"
	codeFeatureNotSupp     = "0A000"
	codeInternal           = "XX000"
	codeResolutionUnknown  = "08007" // transaction_resolution_unknown
)

// OutcomeUnknownError reports a commit whose shard connection broke before
// the shard answered: the transaction may or may not have committed. The
// client's session ends with it, as a Postgres session would.
type OutcomeUnknownError struct {
	// What was being committed: "COMMIT", or the statement of an
	// implicit transaction.
	What string
	Err  *ShardConnectionLostError
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("connection to shard %s was lost during %s; the transaction's outcome is unknown (it may have committed)", e.Err.Shard, e.What)
}

func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// outcomeUnknown turns err into an OutcomeUnknownError if it is the loss of
// a shard connection while what was committing.
func outcomeUnknown(err error, what string) error {
	var lost *ShardConnectionLostError
	if errors.As(err, &lost) {
		return &OutcomeUnknownError{What: what, Err: lost}
	}
	return err
}

// errorResponse turns any error into the ErrorResponse a client gets. A
// shard's error passes through with all its fields; the gateway's own errors
// carry their SQLSTATE; anything unexpected becomes XX000 with the details
// only in the log. offset is where the failing statement starts in the
// client's query string, in bytes of sql, so error positions point into what
// the client sent.
func errorResponse(err error, sql string, offset int, log *zap.Logger) *pgproto3.ErrorResponse {
	e := errorResponseOf(err, sql, offset, log)
	if partly := (*engine.PartlyApplied)(nil); errors.As(err, &partly) {
		e.Detail = strings.TrimSpace(e.Detail + "\n" + partly.Report())
	}
	return e
}

func errorResponseOf(err error, sql string, offset int, log *zap.Logger) *pgproto3.ErrorResponse {
	var (
		pgErr   *pgconn.PgError
		plErr   *planner.Error
		unreach *ShardUnreachableError
		lost    *ShardConnectionLostError
		unknown *OutcomeUnknownError
	)
	shift := func(pos int32) int32 {
		if pos <= 0 || offset <= 0 || offset > len(sql) {
			return pos
		}
		return pos + int32(utf8.RuneCountInString(sql[:offset]))
	}
	switch {
	case errors.As(err, &unreach):
		// Checked first: a shard refusing the gateway's own login is the
		// shard being unreachable, not the client's login failing.
		return &pgproto3.ErrorResponse{Severity: "ERROR", Code: codeConnectionFailure, Message: unreach.Error()}
	case errors.As(err, &unknown):
		// As Postgres does when it cannot tell: the client's connection
		// ends, so no driver takes the outcome for a failure.
		return &pgproto3.ErrorResponse{Severity: "FATAL", Code: codeConnectionFailure, Message: unknown.Error(),
			Hint: "Check whether the transaction's changes are there before retrying it."}
	case errors.As(err, &lost):
		return &pgproto3.ErrorResponse{Severity: "ERROR", Code: codeConnectionFailure, Message: lost.Error()}
	case errors.As(err, &pgErr):
		severity := pgErr.Severity
		if severity == "FATAL" || severity == "PANIC" {
			// A shard ending its own connection does not end the
			// client's session with the gateway.
			severity = "ERROR"
		}
		return &pgproto3.ErrorResponse{
			Severity: severity, SeverityUnlocalized: severity, Code: pgErr.Code,
			Message: pgErr.Message, Detail: pgErr.Detail, Hint: pgErr.Hint, Position: shift(pgErr.Position),
			InternalPosition: pgErr.InternalPosition, InternalQuery: pgErr.InternalQuery, Where: pgErr.Where,
			SchemaName: pgErr.SchemaName, TableName: pgErr.TableName, ColumnName: pgErr.ColumnName,
			DataTypeName: pgErr.DataTypeName, ConstraintName: pgErr.ConstraintName,
			File: pgErr.File, Line: pgErr.Line, Routine: pgErr.Routine,
		}
	case errors.As(err, &plErr):
		severity := "ERROR"
		if plErr.Code == codeResolutionUnknown {
			// A transaction whose outcome is unknown ends the session, as
			// for a commit whose connection broke.
			severity = "FATAL"
		}
		return &pgproto3.ErrorResponse{Severity: severity, Code: plErr.Code, Message: plErr.Message, Hint: plErr.Hint, Position: shift(int32(plErr.Position))}
	case errors.Is(err, ErrPoolExhausted):
		return &pgproto3.ErrorResponse{Severity: "ERROR", Code: codeTooManyConnections, Message: err.Error()}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &pgproto3.ErrorResponse{Severity: "ERROR", Code: codeQueryCanceled, Message: "canceling statement due to user request"}
	}
	log.Error("internal error", zap.Error(err))
	return &pgproto3.ErrorResponse{Severity: "ERROR", Code: codeInternal, Message: "internal error in shardgate; see its log"}
}
