package proxy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/shardgate/shardgate/internal/lru"
	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/topology"
)

// ownedCacheSize bounds the statements kept rewritten for shards that hold
// copies: as many as a reshard's window of scatter traffic repeats.
const ownedCacheSize = 1024

// ownedRows rewrites statements for the shards that keep rows of logical
// shards they do not own (see topology.Keyspace.Copies), remembering the
// last ones: the same statements come back for as long as the reshard runs.
type ownedRows struct {
	cache *lru.Cache[string, string]
}

func newOwnedRows() *ownedRows { return &ownedRows{cache: lru.New[string, string](ownedCacheSize)} }

// limit returns sql, shard's part of a statement that runs on several, as
// shard must run it: unchanged unless the shard keeps copies, else passing
// over them, so that every row is answered for by the one shard that owns
// it.
func (o *ownedRows) limit(ks *topology.Keyspace, shard, sql string) (string, error) {
	held := ks.Copies[shard]
	if len(held) == 0 {
		return sql, nil
	}
	skip := copyRanges(ks.Map, held)
	var key strings.Builder
	key.WriteString(ks.Name)
	for _, r := range skip {
		key.WriteString("\x00" + strconv.FormatInt(r.Lo, 10) + ":" + strconv.FormatInt(r.Hi, 10))
	}
	key.WriteString("\x00" + sql)
	if out, ok := o.cache.Get(key.String()); ok {
		return out, nil
	}
	out, err := planner.PassOver(sql, ks.VSchema(), skip)
	if err != nil {
		var pe *planner.Error
		if errors.As(err, &pe) {
			return "", &planner.Error{Code: pe.Code, Message: fmt.Sprintf("keyspace %s: shard %s keeps rows of logical shards %v that a reshard workflow moves: %s", ks.Name, shard, held, pe.Message)}
		}
		return "", &planner.Error{Code: codeFeatureNotSupp, Message: fmt.Sprintf("keyspace %s: shard %s keeps rows of logical shards %v that a reshard workflow moves, and this statement cannot be limited to the rows it owns: %v", ks.Name, shard, held, err)}
	}
	o.cache.Add(key.String(), out)
	return out, nil
}

// copyRanges returns the keyspace ids of logical shards held, sorted, with
// neighbours joined into one range.
func copyRanges(m *topology.ShardMap, held []int) []planner.KeyRange {
	var out []planner.KeyRange
	for _, l := range slices.Sorted(slices.Values(held)) {
		lo, hi := m.Range(l)
		if n := len(out); n > 0 && out[n-1].Hi != math.MaxInt64 && out[n-1].Hi+1 == lo {
			out[n-1].Hi = hi
			continue
		}
		out = append(out, planner.KeyRange{Lo: lo, Hi: hi})
	}
	return out
}

// codeObjectNotInPrerequisiteState answers a schema change that waits for
// a reshard's copy to end.
const codeObjectNotInPrerequisiteState = "55000"

// checkReshardDDL refuses schema changes a reshard workflow of ks cannot
// carry while it runs (it holds copies somewhere): those of tables, names
// and primary keys, which its change streams and its targets depend on,
// and any while it copies, as they would wait for the copy's locks with
// every statement on the table queued behind them. The rest run on the
// targets too (engine.TargetSchema).
func (s *session) checkReshardDDL(ctx context.Context, ks *topology.Keyspace, sts []*planner.Statement) error {
	if len(ks.Copies) == 0 {
		return nil
	}
	for _, st := range sts {
		if !st.ChangesSchema {
			continue
		}
		names, copying := s.srv.reshards(ctx, ks.Name)
		switch {
		case !st.DuringReshard:
			return &planner.Error{Code: codeFeatureNotSupp, Message: fmt.Sprintf("keyspace %s: %s is moving logical shards; this schema change can run once it completes or is cancelled. Meanwhile ALTER TABLE of columns, defaults and constraints other than primary keys, CREATE INDEX, DROP INDEX, VACUUM, ANALYZE and TRUNCATE are allowed", ks.Name, names)}
		case copying:
			return &planner.Error{Code: codeObjectNotInPrerequisiteState, Message: fmt.Sprintf("keyspace %s: %s is copying; schema changes can run once it is catching up ('shardctl reshard show')", ks.Name, names)}
		}
	}
	return nil
}

// reshards names the workflows of keyspace ks for an error message, and
// says whether one is copying.
func (srv *Server) reshards(ctx context.Context, ks string) (names string, copying bool) {
	if srv.workflows == nil {
		return "a reshard workflow", false
	}
	all, err := srv.workflows(ctx)
	if err != nil {
		return "a reshard workflow", false
	}
	var mine []string
	for _, w := range all {
		if w.Keyspace != ks {
			continue
		}
		mine = append(mine, w.Name)
		copying = copying || w.Phase == topology.PhaseCopying
	}
	if len(mine) == 0 {
		return "a reshard workflow", false
	}
	return "reshard workflow " + strings.Join(mine, ", "), copying
}
