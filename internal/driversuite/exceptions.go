package driversuite

// Exceptions lists the tests of the drivers' suites that pass against
// PostgreSQL directly but cannot pass through any gateway, by suite ("pgx",
// "pq") and test name (as in Result.Name; a name covers its subtests), with
// the pooling modes they concern and why. A test that fails through shardgate
// because of something shardgate could do the way PostgreSQL does does not
// belong here: it is a bug to fix.
var Exceptions = map[string]map[string]Exception{
	"pgx": {
		// Under transaction pooling a session has no backend process of its
		// own: the process id in its BackendKeyData is the gateway's key.
		// The gateway answers SELECT pg_terminate_backend(<that id>) itself,
		// but these tests terminate several sessions in one query,
		// pg_terminate_backend(n) FROM unnest($1::int[]) n, which goes to
		// the shard, where no backend has those ids.
		pgxPkg + "/pgxpool.TestPoolAcquireChecksIdleConns": {Modes: tx, Reason: noOwnBackend},
		pgxPkg + "/stdlib.TestCheckIdleConn":               {Modes: tx, Reason: noOwnBackend},
		// The gateway prepares statements on backend connections under
		// names of its own and keeps them there for reuse, by any session
		// of the connection; pg_prepared_statements lists those.
		pgxPkg + "/stdlib.TestConnMultiplePrepareAndDeallocate": {Modes: both,
			Reason: "counts rows of pg_prepared_statements, which lists the statements the gateway keeps prepared on the backend connection for reuse, not the client's; the client's Close does not remove them"},
		// statement_timeout counts, on Postgres, from the first message of
		// an extended-protocol batch to its Sync. The gateway checks a
		// Parse with the shard when it arrives, in one round trip with its
		// Describe and Sync, so the shard never sees the client's pause
		// between Parse and Describe; the gateway does not time it itself.
		pgxPkg + ".TestPrepareHandlesTimeoutBetweenParseAndDescribe":                 {Modes: both, Reason: parseTimeout},
		pgxPkg + ".TestPrepareWithDigestedNameHandlesTimeoutBetweenParseAndDescribe": {Modes: both, Reason: parseTimeout},
		pgxPkg + ".TestSendBatchHandlesTimeoutBetweenParseAndDescribe":               {Modes: both, Reason: parseTimeout},
	},
	"pq": {
		// pg_backend_pid() inside a transaction names the pooled
		// connection, which goes back to the pool at the transaction's
		// end: the test's pg_terminate_backend of it from another session
		// may run on that very connection, and the client's session has no
		// backend of its own whose end Ping could notice.
		pqPkg + ".TestPing": {Modes: tx,
			Reason: "terminates the backend pg_backend_pid() named in an earlier transaction and expects the session to be dead; under transaction pooling that was a pooled connection, not the session's"},
		// The gateway authenticates clients itself (SCRAM, from etcd), as a
		// server with password authentication does; it cannot know how
		// the server's pg_hba.conf would have treated the user.
		pqPkg + ".TestAuth/end_to_end/user=pqgounknown_password=wordpass": {Modes: both,
			Reason: `expects the answer of a server that trusts every user, role "pqgounknown" does not exist; the gateway checks passwords itself and answers as a server with password authentication does, password authentication failed for user "pqgounknown", which the test's pattern accepts only without the quotes`},
	},
}

const (
	pgxPkg       = "github.com/jackc/pgx/v5"
	pqPkg        = "github.com/lib/pq"
	parseTimeout = "expects statement_timeout to end a batch whose client pauses 200 ms between Parse and Describe; the gateway describes a Parse on the shard at once, so the shard's timer never sees the pause, and the gateway does not time batches itself"
	noOwnBackend = "terminates sessions by the process ids the server reported in a query over unnest($1::int[]); under transaction pooling those are the gateway's keys, which no backend has, and only a plain SELECT pg_terminate_backend(pid) can reach the gateway"
)

var (
	tx   = []string{"transaction"}
	both = []string{"session", "transaction"}
)
