package planner

import "testing"

// The planner's cost per statement: parsing with pg_query and planning,
// which a plan cache hit would skip (go test ./planner -bench . -benchmem).

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
