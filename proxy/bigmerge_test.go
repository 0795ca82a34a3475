package proxy

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestMillionsOfRowsKeepMemoryBounded: a scatter ORDER BY of 5,000,000
// rows streams through the gateway in memory bounded by the shards' batches,
// not by the result: the heap (of this process, which holds the gateway and
// a client that reads and drops each row) stays under a fixed bound while
// every row arrives, in order. A DISTINCT without ORDER BY of the same rows,
// which the gateway must remember, fails with 53200 at its memory limit,
// and the session goes on.
const rows5M = 5_000_000

func TestMillionsOfRowsKeepMemoryBounded(t *testing.T) {
	const rows = rows5M
	g := startMovableGateway(t)
	// Each shard gets half of the rows directly; a full-table ORDER BY
	// reads every shard whatever the placement says.
	for i := range 2 {
		exec(t, g.direct(t, i), "insert into users (id, name) select g, md5(g::text) from generate_series("+
			strconv.Itoa(i*rows/2+1)+", "+strconv.Itoa((i+1)*rows/2)+") g")
	}
	c := g.connect(t, "app", "")

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go sample(stop, sampled, &peak)

	mrr := c.Exec(context.Background(), "select name, id from users order by name desc")
	n := 0
	var last []byte
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		for rr.NextRow() {
			v := rr.Values()[0]
			if last != nil && bytes.Compare(v, last) > 0 {
				t.Fatalf("row %d: %q after %q, out of order", n, v, last)
			}
			last = append(last[:0], v...)
			n++
		}
	}
	err := mrr.Close()
	close(stop)
	<-sampled
	if err != nil || n != rows {
		t.Fatalf("got %d rows, %v", n, err)
	}
	const bound = 64 << 20
	growth := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("heap in use before %d MiB, peak %d MiB over %d rows", before.HeapInuse>>20, peak.Load()>>20, rows)
	if growth > bound {
		t.Fatalf("the heap grew by %d MiB while %d rows streamed, over the bound of %d MiB", growth>>20, rows, bound>>20)
	}

	distinct := c.Exec(context.Background(), "select distinct name from users")
	n = 0
	for distinct.NextResult() {
		rr := distinct.ResultReader()
		for rr.NextRow() {
			n++
		}
	}
	err = distinct.Close()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53200" {
		t.Fatalf("DISTINCT of %d names: %v after %d rows, want 53200", rows, err, n)
	}
	if n == 0 || n >= rows {
		t.Errorf("DISTINCT passed on %d rows before its limit, want some but not all %d", n, rows)
	}
	t.Logf("DISTINCT: %v after %d rows", err, n)
	if got := one(t, c, "select count(*) from users where id <= 10"); got != "10" {
		t.Errorf("after the 53200 the session answers %q, want 10", got)
	}

	// Row-limited Executes in a transaction (JDBC's fetch size) read the
	// merge as it goes: it pauses between them, in bounded memory.
	exec(t, c, "begin")
	conn := c.Conn()
	fe := pgproto3.NewFrontend(conn, conn)
	fetch := func(msgs ...pgproto3.FrontendMessage) (got int, end string) {
		t.Helper()
		if _, err := conn.Write(encodeMsgs(msgs...)); err != nil {
			t.Fatal(err)
		}
		for {
			msg, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := msg.(type) {
			case *pgproto3.DataRow:
				if last != nil && bytes.Compare(m.Values[0], last) < 0 {
					t.Fatalf("row %d: %q after %q, out of order", n, m.Values[0], last)
				}
				last = append(last[:0], m.Values[0]...)
				got++
				n++
			case *pgproto3.PortalSuspended:
				end = "suspended"
			case *pgproto3.CommandComplete:
				end = string(m.CommandTag)
			case *pgproto3.ErrorResponse:
				t.Fatalf("row-limited Execute: %s %s after %d rows", m.Code, m.Message, n)
			case *pgproto3.ReadyForQuery:
				return got, end
			}
		}
	}
	n, last = 0, nil
	runtime.GC()
	runtime.ReadMemStats(&before)
	peak.Store(0)
	stop, sampled = make(chan struct{}), make(chan struct{})
	go sample(stop, sampled, &peak)
	const fetchSize = 50_000
	got, end := fetch(&pgproto3.Parse{Name: "s", Query: "select name from users order by name"}, &pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s"},
		&pgproto3.Execute{Portal: "p", MaxRows: fetchSize}, &pgproto3.Sync{})
	for end == "suspended" && got == fetchSize {
		got, end = fetch(&pgproto3.Execute{Portal: "p", MaxRows: fetchSize}, &pgproto3.Sync{})
	}
	close(stop)
	<-sampled
	if n != rows5M || end != "SELECT 0" {
		t.Fatalf("row-limited Executes read %d rows, ending %q; want %d", n, end, rows5M)
	}
	growth = int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("row-limited Executes: heap in use before %d MiB, peak %d MiB", before.HeapInuse>>20, peak.Load()>>20)
	if growth > bound {
		t.Fatalf("the heap grew by %d MiB while %d rows were fetched %d at a time, over the bound of %d MiB", growth>>20, n, fetchSize, bound>>20)
	}
	if _, end := fetch(&pgproto3.Query{String: "commit"}); end != "COMMIT" {
		t.Fatalf("commit: %s", end)
	}
}

// sample records the peak heap in use until stop closes.
func sample(stop, sampled chan struct{}, peak *atomic.Uint64) {
	defer close(sampled)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}
}
