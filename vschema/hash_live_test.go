package vschema

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shardgate/shardgate/internal/pgtest"
)

// TestHashMatchesLiveServer compares the Go hash with the server's own hash
// functions on 100,000 random values of each sharding column type.
func TestHashMatchesLiveServer(t *testing.T) {
	const n = 100_000
	ctx := context.Background()
	pg := pgtest.Start(t, 1)[0]
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rng := rand.New(rand.NewPCG(1, 2))

	ints := make([]int64, n)
	for i := range ints {
		switch i % 4 {
		case 0:
			ints[i] = int64(rng.Uint64())
		case 1:
			ints[i] = rng.Int64N(1<<31) - 1<<30
		case 2:
			ints[i] = int64(rng.IntN(math.MaxUint16)) - math.MaxInt16
		default:
			ints[i] = int64(i) - n/2
		}
	}
	checkInts := func(sql string, vals []int64) {
		t.Helper()
		rows, err := conn.Query(ctx, sql, vals)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(vals) {
			t.Fatalf("%s: %d rows for %d values", sql, len(got), len(vals))
		}
		for i, v := range vals {
			if h := HashInt64(v); h != got[i] {
				t.Fatalf("%s: value %d: Go %d, Postgres %d", sql, v, h, got[i])
			}
		}
	}
	checkInts("select hashint8extended(v, 0) from unnest($1::int8[]) with ordinality as u(v, i) order by i", ints)
	var int4s, int2s []int64
	for _, v := range ints {
		if v >= math.MinInt32 && v <= math.MaxInt32 {
			int4s = append(int4s, v)
		}
		if v >= math.MinInt16 && v <= math.MaxInt16 {
			int2s = append(int2s, v)
		}
	}
	if len(int4s) < n/2 || len(int2s) < n/4 {
		t.Fatalf("too few small values: %d int4, %d int2", len(int4s), len(int2s))
	}
	checkInts("select hashint4extended(v::int4, 0) from unnest($1::int8[]) with ordinality as u(v, i) order by i", int4s)
	checkInts("select hashint2extended(v::int2, 0) from unnest($1::int8[]) with ordinality as u(v, i) order by i", int2s)

	alphabet := []rune("abcXYZ019 _-,'\"\\\tßéあ😀")
	texts := make([]string, n)
	for i := range texts {
		var sb strings.Builder
		for range rng.IntN(40) {
			sb.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		texts[i] = sb.String()
	}
	rows, err := conn.Query(ctx, "select hashtextextended(v, 0) from unnest($1::text[]) with ordinality as u(v, i) order by i", texts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range texts {
		if h := HashText(s); h != got[i] {
			t.Fatalf("text %q: Go %d, Postgres %d", s, h, got[i])
		}
	}

	uuids := make([]string, n)
	want := make([][16]byte, n)
	for i := range uuids {
		for j := range want[i] {
			want[i][j] = byte(rng.Uint32())
		}
		uuids[i] = formatUUID(want[i])
	}
	rows, err = conn.Query(ctx, "select v::text, uuid_hash_extended(v, 0) from unnest($1::uuid[]) with ordinality as u(v, i) order by i", uuids)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for rows.Next() {
		var s string
		var h int64
		if err := rows.Scan(&s, &h); err != nil {
			t.Fatal(err)
		}
		u, err := ParseUUID(s)
		if err != nil || u != want[i] {
			t.Fatalf("uuid %s: parsed %x, %v; want %x", s, u, err, want[i])
		}
		if g := HashUUID(u); g != h {
			t.Fatalf("uuid %s: Go %d, Postgres %d", s, g, h)
		}
		i++
	}
	if rows.Err() != nil || i != n {
		t.Fatalf("uuid rows: %d, %v", i, rows.Err())
	}
}

func formatUUID(u [16]byte) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b.WriteByte('-')
		}
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
