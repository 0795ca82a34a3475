package migrate

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shardgate/shardgate/topology"
)

func shardMap(placement ...string) *topology.ShardMap {
	return &topology.ShardMap{Version: 1, LogicalCount: len(placement), Placement: placement}
}

func even(n int, shards ...string) *topology.ShardMap {
	return shardMap(topology.EvenPlacement(n, shards)...)
}

func one(string) int { return 1 }

func runsText(moves []Move) string {
	var parts []string
	for _, r := range Runs(moves) {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, "; ")
}

func TestRebalance(t *testing.T) {
	for _, tt := range []struct {
		name    string
		m       *topology.ShardMap
		to      []string
		weights map[string]int
		want    string
	}{
		{"two onto four: each new shard takes one contiguous half of an old one",
			even(64, "s0", "s1"), []string{"s2", "s3"}, nil,
			"16-31: s0 -> s2; 48-63: s1 -> s3"},
		{"one onto two",
			even(8, "s0"), []string{"s1"}, nil,
			"4-7: s0 -> s1"},
		{"a heavier new shard takes more",
			even(16, "s0", "s1"), []string{"s2"}, map[string]int{"s2": 2},
			"4-7: s0 -> s2; 12-15: s1 -> s2"},
		{"an existing shard named in --to changes nothing for it",
			even(8, "s0", "s1"), []string{"s1", "s2"}, nil,
			"3: s0 -> s2; 7: s1 -> s2"},
		{"an uneven map is evened out",
			shardMap("s0", "s0", "s0", "s1"), []string{"s1"}, nil,
			"2: s0 -> s1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			weight := func(s string) int { return max(tt.weights[s], 1) }
			moves, err := Rebalance(tt.m, tt.to, weight)
			if err != nil {
				t.Fatal(err)
			}
			if got := runsText(moves); got != tt.want {
				t.Errorf("moves %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := Rebalance(even(8, "s0", "s1"), []string{"s0"}, one); err == nil || !strings.Contains(err.Error(), "nothing to move") {
		t.Errorf("balanced already: %v", err)
	}
	if _, err := Rebalance(even(8, "s0"), nil, one); err == nil {
		t.Error("no targets: no error")
	}
}

// TestRebalanceProperties: for random maps and weights, every shard ends
// with its weighted share (within one), the shares add up, nothing moves
// that did not have to, and no logical shard moves onto its own shard.
func TestRebalanceProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		n := 1 << (1 + rng.IntN(8))
		names := []string{"a", "b", "c", "d", "e", "f"}
		old := names[:1+rng.IntN(3)]
		placement := make([]string, n)
		for l := range placement {
			placement[l] = old[rng.IntN(len(old))]
		}
		m := shardMap(placement...)
		to := names[len(old) : len(old)+1+rng.IntN(3)]
		weights := map[string]int{}
		for _, s := range names {
			weights[s] = 1 + rng.IntN(4)
		}
		weight := func(s string) int { return weights[s] }
		moves, err := Rebalance(m, to, weight)
		if err != nil {
			continue // already balanced
		}
		after := slices.Clone(placement)
		for _, mv := range moves {
			if mv.From == mv.To || after[mv.Logical] != mv.From {
				t.Fatalf("case %d: bad move %+v", i, mv)
			}
			after[mv.Logical] = mv.To
		}
		all := append(slices.Clone(m.Shards()), to...)
		total := 0
		for _, s := range all {
			total += weights[s]
		}
		count := func(p []string, s string) int {
			c := 0
			for _, x := range p {
				if x == s {
					c++
				}
			}
			return c
		}
		minimal := 0
		for _, s := range all {
			share := float64(n*weights[s]) / float64(total)
			got := count(after, s)
			if float64(got) < share-1 || float64(got) > share+1 {
				t.Fatalf("case %d: %s holds %d, its share is %.1f (%v)", i, s, got, share, after)
			}
			minimal += max(0, count(placement, s)-got)
		}
		if len(moves) != minimal {
			t.Fatalf("case %d: %d moves, %d needed", i, len(moves), minimal)
		}
	}
}

func TestParseMoves(t *testing.T) {
	m := even(8, "s0", "s1")
	moves, err := ParseMoves(m, []string{"0-1:s2", "6:s3", "7:s1"})
	if err != nil {
		t.Fatal(err)
	}
	// 7 is on s1 already: left out.
	if got := runsText(moves); got != "0-1: s0 -> s2; 6: s1 -> s3" {
		t.Errorf("moves %s", got)
	}
	for _, tt := range []struct {
		specs []string
		want  string
	}{
		{[]string{"0-3"}, "want FIRST-LAST:SHARD"},
		{[]string{"0-3:"}, "want FIRST-LAST:SHARD"},
		{[]string{"x:s2"}, `"x": want a logical shard N`},
		{[]string{"3-1:s2"}, "range ends before it starts"},
		{[]string{"0-8:s2"}, "out of range: the keyspace has 0-7"},
		{[]string{"0-3:s2", "3:s3"}, "logical shard 3 is moved to s2 already"},
		{[]string{"0-3:s0"}, "nothing to move"},
	} {
		if _, err := ParseMoves(m, tt.specs); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseMoves(%q) = %v, want an error containing %q", tt.specs, err, tt.want)
		}
	}
}

func TestParseLogicalRange(t *testing.T) {
	for in, want := range map[string]string{"7": "7-7", "0-63": "0-63", "010-11": "10-11"} {
		first, last, err := ParseLogicalRange(in)
		if got := fmt.Sprintf("%d-%d", first, last); err != nil || got != want {
			t.Errorf("ParseLogicalRange(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-", "1-", "-1", "+1", "1-2-3", "a"} {
		if _, _, err := ParseLogicalRange(in); err == nil {
			t.Errorf("ParseLogicalRange(%q): no error", in)
		}
	}
}
