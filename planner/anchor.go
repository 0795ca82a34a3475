package planner

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// Some backend state means the same across a sharded keyspace only if every
// session keeps it in one place: advisory locks exclude each other only on
// one server, a NOTIFY reaches only the listeners of its server, a large
// object is found only where it was made. Statements that touch nothing
// but such state run on the keyspace's anchor shard, the one that holds
// logical shard 0 (engine.AnchorShard): the same for every session of every
// gateway.

// anchorFuncs keep their state on the anchor shard: advisory locks, large
// objects, notifications.
var anchorFuncs = setOf("pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
	"pg_try_advisory_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all",
	"pg_advisory_xact_lock", "pg_advisory_xact_lock_shared", "pg_try_advisory_xact_lock",
	"pg_try_advisory_xact_lock_shared",
	"lo_creat", "lo_create", "lo_open", "lo_close", "loread", "lowrite", "lo_lseek", "lo_lseek64", "lo_tell",
	"lo_tell64", "lo_truncate", "lo_truncate64", "lo_unlink", "lo_import", "lo_export", "lo_get", "lo_put",
	"lo_from_bytea",
	"pg_notify")

// anchored reports whether stmt touches only state kept on the anchor
// shard: LISTEN, UNLISTEN, NOTIFY, or a SELECT of anchorFuncs that reads no
// table.
func anchored(stmt *pg_query.Node) bool {
	switch n := stmt.Node.(type) {
	case *pg_query.Node_ListenStmt, *pg_query.Node_UnlistenStmt, *pg_query.Node_NotifyStmt:
		return true
	case *pg_query.Node_SelectStmt:
		if n.SelectStmt.IntoClause != nil {
			return false
		}
	default:
		return false
	}
	calls, tables := false, false
	walk(stmt, func(m proto.Message) bool {
		switch n := m.(type) {
		case *pg_query.RangeVar, *pg_query.CommonTableExpr:
			tables = true
		case *pg_query.FuncCall:
			calls = calls || anchorFuncs[strings.ToLower(funcName(n))]
		}
		return !tables
	})
	return calls && !tables
}

// anchorRefusal refuses anchor function name in a statement that also reads
// tables, which live on other shards.
func anchorRefusal(name string) *Error {
	return unsupported("%s() in a statement that reads a table is not supported on a sharded keyspace: advisory locks, large objects and notifications live on the keyspace's anchor shard; call it in a statement of its own", name)
}
