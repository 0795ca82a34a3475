package migrate

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/shardgate/shardgate/topology"
)

// Move is one logical shard leaving its physical shard for another.
type Move = topology.Move

// Rebalance proposes the moves that give every physical shard of the
// keyspace, plus the shards in to, its weighted share of the keyspace's
// logical shards while moving as few of them as possible. weight gives a
// shard's weight (at least 1). Shards above their share give up their
// highest-numbered logical shards, which go to the shards below their share
// in order, so that each target receives contiguous hash ranges.
func Rebalance(m *topology.ShardMap, to []string, weight func(shard string) int) ([]Move, error) {
	if len(to) == 0 {
		return nil, errors.New("no target shards given")
	}
	shards := m.Shards()
	for _, s := range to {
		if !slices.Contains(shards, s) {
			shards = append(shards, s)
		}
	}
	held := map[string][]int{}
	for l, s := range m.Placement {
		held[s] = append(held[s], l)
	}
	quota := shares(m.LogicalCount, shards, weight, held)
	var given []int // logical shards that move, in order
	for _, s := range shards {
		if extra := len(held[s]) - quota[s]; extra > 0 {
			given = append(given, held[s][len(held[s])-extra:]...)
		}
	}
	slices.Sort(given)
	var moves []Move
	for _, s := range shards {
		for need := quota[s] - len(held[s]); need > 0; need-- {
			l := given[0]
			given = given[1:]
			moves = append(moves, Move{Logical: l, From: m.Placement[l], To: s})
		}
	}
	slices.SortFunc(moves, func(a, b Move) int { return cmp.Compare(a.Logical, b.Logical) })
	if len(moves) == 0 {
		return nil, fmt.Errorf("the logical shards are already spread by weight over %s; nothing to move", strings.Join(shards, ", "))
	}
	return moves, nil
}

// shares splits n logical shards over shards by weight, the remainders to
// the largest fractions (ties: the shard that already holds more, then by
// name), so the shares add up to n.
func shares(n int, shards []string, weight func(string) int, held map[string][]int) map[string]int {
	total := 0
	for _, s := range shards {
		total += weight(s)
	}
	quota := map[string]int{}
	left := n
	for _, s := range shards {
		quota[s] = n * weight(s) / total
		left -= quota[s]
	}
	order := slices.Clone(shards)
	slices.SortStableFunc(order, func(a, b string) int {
		ra, rb := n*weight(a)%total, n*weight(b)%total
		return cmp.Or(cmp.Compare(rb, ra), cmp.Compare(len(held[b]), len(held[a])), strings.Compare(a, b))
	})
	for _, s := range order[:left] {
		quota[s]++
	}
	return quota
}

// ParseMoves reads explicit moves such as "0-15:s2" or "7:s3" (logical
// shards, inclusive, then the target shard) against the keyspace's map.
// Logical shards already on their target are left out.
func ParseMoves(m *topology.ShardMap, specs []string) ([]Move, error) {
	target := map[int]string{}
	for _, spec := range specs {
		rng, to, ok := strings.Cut(spec, ":")
		if !ok || to == "" {
			return nil, fmt.Errorf("move %q: want FIRST-LAST:SHARD or N:SHARD", spec)
		}
		first, last, err := ParseLogicalRange(rng)
		if err != nil {
			return nil, fmt.Errorf("move %q: %w", spec, err)
		}
		if last >= m.LogicalCount {
			return nil, fmt.Errorf("move %q: logical shards %d-%d out of range: the keyspace has 0-%d", spec, first, last, m.LogicalCount-1)
		}
		for l := first; l <= last; l++ {
			if prev, dup := target[l]; dup && prev != to {
				return nil, fmt.Errorf("move %q: logical shard %d is moved to %s already", spec, l, prev)
			}
			target[l] = to
		}
	}
	var moves []Move
	for l := range m.LogicalCount {
		if to, ok := target[l]; ok && m.Placement[l] != to {
			moves = append(moves, Move{Logical: l, From: m.Placement[l], To: to})
		}
	}
	if len(moves) == 0 {
		return nil, errors.New("every logical shard named is on its target already; nothing to move")
	}
	return moves, nil
}

// ParseLogicalRange reads a logical shard "N" or an inclusive range "N-M",
// in decimal digits.
func ParseLogicalRange(s string) (first, last int, err error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	first, err1 := parseLogical(lo)
	last, err2 := parseLogical(hi)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%q: want a logical shard N or a range N-M, e.g. 0-63", s)
	}
	if first > last {
		return 0, 0, fmt.Errorf("%q: range ends before it starts", s)
	}
	return first, last, nil
}

func parseLogical(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(s)
}

// Runs groups moves into runs of consecutive logical shards with the same
// source and target: what an operator reads, and one hash range each to
// copy.
func Runs(moves []Move) []Run {
	var runs []Run
	for _, mv := range moves {
		if n := len(runs); n > 0 {
			r := &runs[n-1]
			if r.Last+1 == mv.Logical && r.From == mv.From && r.To == mv.To {
				r.Last = mv.Logical
				continue
			}
		}
		runs = append(runs, Run{First: mv.Logical, Last: mv.Logical, From: mv.From, To: mv.To})
	}
	return runs
}

// Run is consecutive logical shards First..Last moving together.
type Run struct {
	First, Last int
	From, To    string
}

func (r Run) String() string {
	if r.First == r.Last {
		return fmt.Sprintf("%d: %s -> %s", r.First, r.From, r.To)
	}
	return fmt.Sprintf("%d-%d: %s -> %s", r.First, r.Last, r.From, r.To)
}
