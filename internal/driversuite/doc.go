// Package driversuite runs the drivers' own test suites through shardgate.
//
// TestDriverSuites (suite_test.go) takes the test suites that ship with pgx
// (github.com/jackc/pgx/v5) and lib/pq (github.com/lib/pq), at the versions
// this module's go.mod requires, from the Go module proxy, and runs each of
// them with `go test -json` three times against one PostgreSQL server and
// database: directly, through a shardgate whose unsharded keyspace uses
// session pooling, and through one whose keyspace uses transaction pooling.
// The keyspaces are named like the database (each gateway serves its own
// cluster in one etcd), and the gateways check passwords with SCRAM, as in
// production. The test then compares the pass lists: a test (or subtest)
// that passes directly but not through a gateway — it fails, is skipped, or
// never ran — fails TestDriverSuites, unless Exceptions admits it with the
// reason no gateway could pass it. It logs the pass, fail and skip counts of
// every run, its slowest tests, and each difference with the first lines of
// its output. With -artifacts, the events of every run are kept:
//
//	go test ./internal/driversuite/ -run TestDriverSuites -v -artifacts -outputdir /tmp/ds
//
// Tests that fail directly are not compared (for example lib/pq's TLS and
// password tests, which need a server set up for them). A package whose test
// binary crashed (lib/pq's listener tests panic when a connection takes over
// 100 ms) runs once more, so that one slow moment does not drop every test
// after it.
//
// This package's non-test files hold what needs no database: fetching a
// module's source (Fetch), running `go test -json` over it and reading the
// events (GoTest, ParseEvents), comparing two runs (Compare), and the
// exceptions.
package driversuite
