package proxy

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// The gateway's cost per statement on its hot paths, through a real
// gateway over real Postgres shards, one client at a time (go test ./proxy
// -run '^$' -bench . -benchmem; add -cpuprofile to see where it goes).
// Compare with direct Postgres and pgbouncer with `make bench`.

// benchGateway is a gateway with n rows in users.
func benchGateway(b *testing.B, n int) *testGateway {
	g := startGateway(b, DefaultPoolConfig)
	c := g.connect(b, "app", "")
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("(%d, 'user %d')", i+1, i+1)
	}
	exec(b, c, "insert into users (id, name) values "+strings.Join(values, ", "))
	return g
}

func BenchmarkPointSelect(b *testing.B) {
	g := benchGateway(b, 1000)
	ctx := context.Background()
	b.Run("simple", func(b *testing.B) {
		c := g.connect(b, "app", "")
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, err := c.Exec(ctx, "select name from users where id = "+strconv.Itoa(i%1000+1)).ReadAll(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("extended", func(b *testing.B) {
		c := g.connect(b, "app", "")
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			r := c.ExecParams(ctx, "select name from users where id = $1", [][]byte{[]byte(strconv.Itoa(i%1000 + 1))}, nil, nil, nil).Read()
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	})
	b.Run("prepared", func(b *testing.B) {
		c := g.connect(b, "app", "")
		if _, err := c.Prepare(ctx, "point", "select name from users where id = $1", nil); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			r := c.ExecPrepared(ctx, "point", [][]byte{[]byte(strconv.Itoa(i%1000 + 1))}, nil, nil).Read()
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	})
}

// BenchmarkRowForwarding: rows of one shard to the client (keyspace solo,
// unsharded), reported per row.
func BenchmarkRowForwarding(b *testing.B) {
	const n = 20000
	g := startGateway(b, DefaultPoolConfig)
	c := g.connect(b, "solo", "")
	exec(b, c, fmt.Sprintf("create table rows_out (id bigint, name text); insert into rows_out select i, 'row ' || i from generate_series(1, %d) i", n))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.Exec(ctx, "select id, name from rows_out").ReadAll()
		if err != nil || len(res[0].Rows) != n {
			b.Fatalf("%d rows, %v", len(res[0].Rows), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
}

// BenchmarkStartup: a client's connection and authentication.
func BenchmarkStartup(b *testing.B) {
	g := startGateway(b, DefaultPoolConfig)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, err := pgconn.Connect(ctx, g.dsn("app", ""))
		if err != nil {
			b.Fatal(err)
		}
		c.Close(ctx)
	}
}
