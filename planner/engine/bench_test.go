package engine

import (
	"context"
	"fmt"
	"strconv"
	"testing"
)

// The engine's cost per row: merging, combining and distinct over rows that
// shards hand over without copies (go test ./planner/engine -bench .
// -benchmem).

// benchExec answers every shard with the same prepared batches, as a
// backend's reader would hand them over.
type benchExec struct {
	topo    Topology
	fields  []Field
	batches map[string][]*Batch
}

func (x *benchExec) Topology() Topology    { return x.topo }
func (x *benchExec) Setting(string) string { return "" }
func (x *benchExec) Query(_ context.Context, shard string, _ Query, emit func(*Batch) error) (Tag, error) {
	if err := emit(&Batch{Fields: x.fields}); err != nil {
		return "", err
	}
	n := 0
	for _, b := range x.batches[shard] {
		if err := emit(b); err != nil {
			return "", err
		}
		n += len(b.Rows)
	}
	return Tag("SELECT " + strconv.Itoa(n)), nil
}

// sortedShards gives each of the topology's shards rows rows, one per
// batch as the backend reader hands them over: an int8 key interleaved
// across shards, a text value, and the key's group (key/10).
func sortedShards(topo Topology, rows int) map[string][]*Batch {
	out := map[string][]*Batch{}
	shards := topo.Shards()
	for i, s := range shards {
		for r := 0; r < rows; r++ {
			k := int64(r*len(shards) + i)
			row := [][]byte{[]byte(strconv.FormatInt(k, 10)), []byte(fmt.Sprintf("name %08d", k)), []byte(strconv.FormatInt(k/10, 10))}
			out[s] = append(out[s], &Batch{Rows: [][][]byte{row}})
		}
	}
	return out
}

func benchmarkRows(b *testing.B, p Primitive, rowsPerShard int) {
	topo := newTopo()
	x := &benchExec{topo: topo, batches: sortedShards(topo, rowsPerShard),
		fields: []Field{typedField("k", oidInt8, 0), typedField("name", oidText, 0), typedField("g", oidInt8, 0)}}
	total := rowsPerShard * len(topo.Shards())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Stream(context.Background(), x, nil, func(*Batch) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*total), "ns/row")
}

func BenchmarkMergeSort(b *testing.B) {
	benchmarkRows(b, &MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT k, name, g FROM t ORDER BY k", Describe: true},
		Keys: []SortKey{{Ordinal: 1, Collation: -1, Text: "k"}}}, 25_000)
}

func BenchmarkScatter(b *testing.B) {
	benchmarkRows(b, &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT k, name, g FROM t"}}, 25_000)
}

func BenchmarkAggregateGroups(b *testing.B) {
	merge := &MergeSort{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT k, name, g ...", Describe: true},
		Keys: []SortKey{{Ordinal: 3, Collation: -1, Text: "g"}}, KeepHidden: true}
	benchmarkRows(b, &Aggregate{Input: merge, Columns: []AggregateColumn{
		{Func: AggSum, Text: "sum(k)", Collation: -1}, {Func: AggFirst, Text: "name", Collation: -1}, {Func: AggFirst, Text: "g", Collation: -1}},
		Groups: []int{2}, GroupText: []string{"g"}}, 25_000)
}

func BenchmarkHashDistinct(b *testing.B) {
	benchmarkRows(b, &HashDistinct{Input: &Scatter{Target: Target{Kind: TargetAll}, Query: Query{SQL: "SELECT DISTINCT k, name, g FROM t"}},
		Columns: []string{"k", "name", "g"}}, 25_000)
}
