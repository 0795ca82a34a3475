// Package migrate will hold the online resharding workflows: a state machine
// persisted in etcd that moves logical shards between physical shards with a
// CDC backfill, dual writes, shadow reads, gradual cutover and verification
// (see DESIGN.md). It has no code yet; `shardctl topology move` changes
// routing without moving rows until it does.
package migrate
