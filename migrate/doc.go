// Package migrate holds the online resharding workflows: a state machine
// persisted in etcd that moves logical shards between physical shards with a
// CDC backfill, dual writes, shadow reads, gradual cutover and verification
// (see DESIGN.md). So far it plans a workflow — which logical shards move
// where (Rebalance, ParseMoves) — and checks its source shards (Preflight);
// the workflow record lives in topology (topology.Workflow). The copy and
// the steps after it are not built yet.
package migrate
