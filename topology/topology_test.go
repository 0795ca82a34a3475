package topology

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shardgate/shardgate/vschema"
)

// designLogicalShard is the formula DESIGN.md gives for a keyspace id's
// logical shard; ShardMap must agree with it exactly.
func designLogicalShard(h int64, logicalCount int) int {
	log2 := bits.TrailingZeros(uint(logicalCount))
	// A shift by 64 gives 0 in Go, which is right for one logical shard.
	return int(uint64(h-math.MinInt64) >> (64 - log2))
}

// sampleHashes returns the edge values of int64, real keyspace ids and
// pseudo-random ones, the same on every run.
func sampleHashes() []int64 {
	hs := []int64{math.MinInt64, math.MinInt64 + 1, -1 << 62, -2, -1, 0, 1, 2, 1 << 62, math.MaxInt64 - 1, math.MaxInt64}
	for v := int64(-100); v <= 100; v++ {
		hs = append(hs, vschema.HashInt64(v))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		hs = append(hs, int64(r.Uint64()))
	}
	return hs
}

var logicalCounts = []int{1, 2, 4, 256, 65536}

func TestShardMapRangeTilesKeyspace(t *testing.T) {
	for _, l := range logicalCounts {
		t.Run(fmt.Sprint(l), func(t *testing.T) {
			m := &ShardMap{LogicalCount: l}
			var wantWidth uint64
			if l > 1 {
				wantWidth = uint64(1) << (64 - bits.TrailingZeros(uint(l)))
			}
			prevHi := int64(0)
			for i := range l {
				lo, hi := m.Range(i)
				if i == 0 && lo != math.MinInt64 {
					t.Fatalf("Range(0) lo = %d, want MinInt64", lo)
				}
				if i > 0 && lo != prevHi+1 {
					t.Fatalf("Range(%d) lo = %d, want Range(%d) hi + 1 = %d", i, lo, i-1, prevHi+1)
				}
				if lo > hi {
					t.Fatalf("Range(%d) = [%d, %d]: lo > hi", i, lo, hi)
				}
				if wantWidth != 0 {
					if w := uint64(hi) - uint64(lo) + 1; w != wantWidth {
						t.Fatalf("Range(%d) = [%d, %d] holds %d ids, want %d", i, lo, hi, w, wantWidth)
					}
				}
				if got := m.LogicalShard(lo); got != i {
					t.Fatalf("LogicalShard(lo of %d = %d) = %d", i, lo, got)
				}
				if got := m.LogicalShard(hi); got != i {
					t.Fatalf("LogicalShard(hi of %d = %d) = %d", i, hi, got)
				}
				if got := designLogicalShard(lo, l); got != i {
					t.Fatalf("design formula puts lo of %d (%d) in %d", i, lo, got)
				}
				if got := designLogicalShard(hi, l); got != i {
					t.Fatalf("design formula puts hi of %d (%d) in %d", i, hi, got)
				}
				prevHi = hi
			}
			if prevHi != math.MaxInt64 {
				t.Fatalf("Range(%d) hi = %d, want MaxInt64", l-1, prevHi)
			}
		})
	}
}

func TestShardMapLogicalShard(t *testing.T) {
	hs := sampleHashes()
	sorted := slices.Clone(hs)
	slices.Sort(sorted)
	for _, l := range logicalCounts {
		t.Run(fmt.Sprint(l), func(t *testing.T) {
			m := &ShardMap{LogicalCount: l}
			for _, h := range hs {
				i := m.LogicalShard(h)
				if i < 0 || i >= l {
					t.Fatalf("LogicalShard(%d) = %d, out of 0-%d", h, i, l-1)
				}
				if want := designLogicalShard(h, l); i != want {
					t.Fatalf("LogicalShard(%d) = %d, design formula says %d", h, i, want)
				}
				if lo, hi := m.Range(i); h < lo || h > hi {
					t.Fatalf("LogicalShard(%d) = %d, whose Range is [%d, %d]", h, i, lo, hi)
				}
			}
			// Lower hashes never land in a higher logical shard, so each
			// logical shard is one SQL range.
			for j := 1; j < len(sorted); j++ {
				if a, b := m.LogicalShard(sorted[j-1]), m.LogicalShard(sorted[j]); a > b {
					t.Fatalf("LogicalShard(%d) = %d > LogicalShard(%d) = %d", sorted[j-1], a, sorted[j], b)
				}
			}
		})
	}
}

func TestShardMapShardFor(t *testing.T) {
	m := &ShardMap{LogicalCount: 8, Placement: []string{"a", "a", "b", "b", "c", "a", "c", "c"}}
	for _, h := range sampleHashes() {
		if got, want := m.ShardFor(h), m.Placement[m.LogicalShard(h)]; got != want {
			t.Fatalf("ShardFor(%d) = %s, want %s", h, got, want)
		}
	}
	if got := m.ShardFor(math.MinInt64); got != "a" {
		t.Errorf("ShardFor(MinInt64) = %s, want a", got)
	}
	if got := m.ShardFor(math.MaxInt64); got != "c" {
		t.Errorf("ShardFor(MaxInt64) = %s, want c", got)
	}
	if got, want := m.Shards(), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("Shards() = %q, want %q (order of first placement)", got, want)
	}
	one := &ShardMap{LogicalCount: 1, Placement: []string{"solo"}}
	for _, h := range []int64{math.MinInt64, 0, math.MaxInt64} {
		if got := one.ShardFor(h); got != "solo" {
			t.Errorf("one logical shard: ShardFor(%d) = %s", h, got)
		}
	}
}

func TestEvenPlacement(t *testing.T) {
	tests := []struct {
		logical int
		shards  int
	}{
		{1, 1}, {2, 1}, {2, 2}, {4, 3}, {8, 8}, {256, 1}, {256, 3}, {256, 7},
		{256, 255}, {256, 256}, {65536, 3}, {65536, 1000},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d_over_%d", tt.logical, tt.shards), func(t *testing.T) {
			shards := make([]string, tt.shards)
			for i := range shards {
				shards[i] = fmt.Sprintf("s%d", i)
			}
			p := EvenPlacement(tt.logical, shards)
			if len(p) != tt.logical {
				t.Fatalf("len = %d, want %d", len(p), tt.logical)
			}
			// Contiguous blocks in the order the shards were given: the
			// placement, run-length encoded, is exactly shards.
			var blocks []string
			sizes := map[string]int{}
			for i, s := range p {
				if i == 0 || p[i-1] != s {
					blocks = append(blocks, s)
				}
				sizes[s]++
			}
			if !slices.Equal(blocks, shards) {
				t.Fatalf("blocks in order = %q, want %q", blocks, shards)
			}
			lo, hi := tt.logical, 0
			for _, n := range sizes {
				lo, hi = min(lo, n), max(hi, n)
			}
			if hi-lo > 1 {
				t.Fatalf("block sizes range from %d to %d, want a difference of at most 1", lo, hi)
			}
			m := &ShardMap{LogicalCount: tt.logical, Placement: p}
			if !slices.Equal(m.Shards(), shards) {
				t.Fatalf("Shards() = %q, want %q", m.Shards(), shards)
			}
		})
	}
}

func TestShardMapValidate(t *testing.T) {
	shards := map[string]*Shard{"a": {Name: "a"}, "b": {Name: "b"}}
	tests := []struct {
		name string
		m    ShardMap
		ok   bool
	}{
		{"one", ShardMap{LogicalCount: 1, Placement: []string{"a"}}, true},
		{"four", ShardMap{LogicalCount: 4, Placement: []string{"a", "a", "b", "b"}}, true},
		{"zero", ShardMap{LogicalCount: 0}, false},
		{"negative", ShardMap{LogicalCount: -4, Placement: []string{}}, false},
		{"three", ShardMap{LogicalCount: 3, Placement: []string{"a", "a", "b"}}, false},
		{"too_many", ShardMap{LogicalCount: 1 << 17, Placement: make([]string, 1<<17)}, false},
		{"short_placement", ShardMap{LogicalCount: 4, Placement: []string{"a", "b"}}, false},
		{"unknown_shard", ShardMap{LogicalCount: 2, Placement: []string{"a", "z"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.validate(shards)
			if (err == nil) != tt.ok {
				t.Fatalf("validate() = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}

func TestRedactDSN(t *testing.T) {
	tests := []struct {
		name, dsn, want string
	}{
		{"url_password", "postgres://app:s3cret@db.internal:5432/app?sslmode=disable",
			"postgres://app:xxxxx@db.internal:5432/app?sslmode=disable"},
		{"url_escaped_password", "postgresql://app:p%40ss%2Fw@db/app",
			"postgresql://app:xxxxx@db/app"},
		{"url_query_password", "postgres://app@db/app?password=s3cret&sslmode=require",
			"postgres://app@db/app?password=xxxxx&sslmode=require"},
		{"url_both", "postgres://app:s3cret@db/app?password=other",
			"postgres://app:xxxxx@db/app?password=xxxxx"},
		{"url_without_password", "postgres://app@db:5432/app?sslmode=disable",
			"postgres://app@db:5432/app?sslmode=disable"},
		{"url_without_user", "postgres://db/app", "postgres://db/app"},
		{"keyword_password", "host=db port=5432 user=app password=s3cret dbname=app",
			"host=db port=5432 user=app password=xxxxx dbname=app"},
		{"keyword_password_first", "password=s3cret host=db", "password=xxxxx host=db"},
		{"keyword_without_password", "host=db user=app dbname=app sslmode=disable",
			"host=db user=app dbname=app sslmode=disable"},
		{"keyword_passfile_kept", "host=db passfile=/etc/pgpass", "host=db passfile=/etc/pgpass"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RedactDSN(tt.dsn)
			if got != tt.want {
				t.Fatalf("RedactDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
			}
			if got := (Shard{Name: "s", DSN: tt.dsn}).RedactedDSN(); got != tt.want {
				t.Fatalf("RedactedDSN() = %q, want %q", got, tt.want)
			}
			for _, secret := range []string{"s3cret", "p%40ss", "other"} {
				if strings.Contains(got, secret) {
					t.Fatalf("RedactDSN(%q) = %q still holds %q", tt.dsn, got, secret)
				}
			}
		})
	}
}

// TestRedactDSNKeywordSyntax covers key=value forms libpq (and pgx) accept
// beyond the plain "password=word": a quoted value with spaces, and spaces
// around the equal sign. Nothing of the password may survive redaction.
func TestRedactDSNKeywordSyntax(t *testing.T) {
	tests := []struct {
		name, dsn, secret string
	}{
		{"quoted_with_space", "host=db user=app password='correct horse battery' dbname=app", "horse battery"},
		{"spaces_around_equals", "host=db user=app password = s3cret dbname=app", "s3cret"},
		{"space_after_equals", "host=db password= s3cret", "s3cret"},
		{"escaped_quote", `host=db password='it\'s a secret'`, "a secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactDSN(tt.dsn); strings.Contains(got, tt.secret) {
				t.Errorf("RedactDSN(%q) = %q leaks %q", tt.dsn, got, tt.secret)
			}
		})
	}
}

// TestRedactDSNUnparsableURL: a URL that net/url rejects (here an invalid
// escape in the password) falls through to the key=value path and comes back
// whole, password included.
func TestRedactDSNUnparsableURL(t *testing.T) {
	for _, dsn := range []string{
		"postgres://app:pa%zzword@db/app",
		"postgres://app:pa:ss@db:notaport/app",
	} {
		if got := RedactDSN(dsn); strings.Contains(got, "pa%zzword") || strings.Contains(got, "pa:ss") {
			t.Errorf("RedactDSN(%q) = %q leaks the password", dsn, got)
		}
	}
}

func TestSnapshotKeyspaceNil(t *testing.T) {
	var s *Snapshot
	if s.Keyspace("app") != nil {
		t.Fatal("nil Snapshot: Keyspace() != nil")
	}
	s = &Snapshot{Keyspaces: map[string]*Keyspace{}}
	if s.Keyspace("app") != nil {
		t.Fatal("empty Snapshot: Keyspace() != nil")
	}
}
