package migrate

import (
	"fmt"
	"slices"
	"testing"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// TestVerifyRange: a copied range verifies clean; a row changed, one
// deleted and one added on the target are reported by key, also when the
// range is large enough to be split before rows are compared; rows outside
// the range do not count.
func TestVerifyRange(t *testing.T) {
	pg := pgtest.Start(t, 2)
	src, dst := connect(t, pg[0]), connect(t, pg[1])
	const schema = "create table items (shop int, id bigint, price numeric, primary key (shop, id))"
	run(t, src, schema)
	run(t, dst, schema)
	run(t, src, "insert into items select g % 7, g, g * 1.5 from generate_series(1, 4000) g")
	table := &vschema.Table{Name: "items", Column: "id", Type: vschema.Int}
	ct, err := Columns(t.Context(), src, "items", table)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := KeyRange(8, 2, 5)
	if _, err := CopyRange(t.Context(), src, dst, ct, lo, hi); err != nil {
		t.Fatal(err)
	}
	verify := func() []string {
		t.Helper()
		diffs, err := VerifyRange(t.Context(), src, dst, ct, lo, hi)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range diffs {
			out = append(out, d.String())
		}
		slices.Sort(out)
		return out
	}
	if d := verify(); len(d) != 0 {
		t.Fatalf("a fresh copy differs: %q", d)
	}

	m := topology.ShardMap{LogicalCount: 8}
	var in []int64
	var outside int64
	for id := int64(1); len(in) < 2 || outside == 0; id++ {
		h, _ := table.KeyspaceID(fmt.Sprint(id))
		if l := m.LogicalShard(h); l >= 2 && l <= 5 {
			in = append(in, id)
		} else if outside == 0 {
			outside = id
		}
	}
	var extra int64
	for id := int64(5000); extra == 0; id++ {
		h, _ := table.KeyspaceID(fmt.Sprint(id))
		if l := m.LogicalShard(h); l >= 2 && l <= 5 {
			extra = id
		}
	}
	run(t, dst, fmt.Sprintf(`update items set price = price + 1 where id = %d;
delete from items where id = %d;
insert into items values (1, %d, 0), (1, %d, 0);`, in[0], in[1], extra, outside))
	want := []string{
		fmt.Sprintf("items %d,%d: different", in[0]%7, in[0]),
		fmt.Sprintf("items %d,%d: missing", in[1]%7, in[1]),
		fmt.Sprintf("items 1,%d: extra", extra),
	}
	slices.Sort(want)
	t.Cleanup(func() { leafRows = 1000 })
	for _, leaf := range []int64{1000, 50} {
		leafRows = leaf
		if got := verify(); !slices.Equal(got, want) {
			t.Errorf("with ranges of up to %d rows compared row by row: %q, want %q", leaf, got, want)
		}
	}
}
