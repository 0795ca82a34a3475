package planner

import (
	"fmt"
	"strconv"
	"testing"
)

// The planner's cost per statement: parsing with pg_query and planning
// (a plan cache miss), and a plan cache hit, which skips both
// (go test ./planner -run '^$' -bench . -benchmem).

func benchmarkPlan(b *testing.B, sql string) {
	f := newFake(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Plan(f.vs, sql); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlanPointSelect(b *testing.B) {
	benchmarkPlan(b, "SELECT abalance FROM users WHERE id = 42")
}

func BenchmarkPlanPointUpdate(b *testing.B) {
	benchmarkPlan(b, "UPDATE users SET name = 'x' WHERE id = 42")
}

func BenchmarkPlanMergedAggregate(b *testing.B) {
	benchmarkPlan(b, "SELECT name, count(*), avg(id) FROM users GROUP BY name ORDER BY count(*) DESC LIMIT 10")
}

// benchmarkLookups plans planned, then looks texts up in turn: each must
// get its plan from the cache.
func benchmarkLookups(b *testing.B, planned string, texts []string) {
	f := newFake(b)
	c := NewCache(100)
	if _, err := c.Plan(f.vs, planned); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := c.Lookup(f.vs, texts[i%len(texts)]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

// BenchmarkCacheHitPointSelect: a point select whose key differs from the
// one planned, as pgbench -S sends them.
func BenchmarkCacheHitPointSelect(b *testing.B) {
	texts := make([]string, 1000)
	for i := range texts {
		texts[i] = "SELECT abalance FROM users WHERE id = " + strconv.Itoa(i*7919) + ";"
	}
	benchmarkLookups(b, "SELECT abalance FROM users WHERE id = 42;", texts)
}

// BenchmarkCacheHitSameText: the same text again, as an unnamed extended
// protocol statement is sent.
func BenchmarkCacheHitSameText(b *testing.B) {
	const sql = "SELECT abalance FROM users WHERE id = $1"
	benchmarkLookups(b, sql, []string{sql})
}

// BenchmarkCacheHitMergedSelect: a multi-shard statement whose rewritten
// SQL gets the new literals.
func BenchmarkCacheHitMergedSelect(b *testing.B) {
	const shape = "SELECT id, name FROM users WHERE id BETWEEN %d AND %d ORDER BY name DESC, id LIMIT 100"
	texts := make([]string, 1000)
	for i := range texts {
		texts[i] = fmt.Sprintf(shape, i*7919, i*7919+999)
	}
	benchmarkLookups(b, fmt.Sprintf(shape, 1, 1000), texts)
}
