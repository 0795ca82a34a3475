package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// streamScenario reads every row of pgbench_accounts (scale x 100,000) in
// one statement: through the gateway, which gathers both shards, and from
// the two shards directly and at once.
const (
	streamScenario = "scatter streaming"
	streamSQL      = "SELECT * FROM pgbench_accounts"
)

// streamResult compares the rows per second of the two.
type streamResult struct {
	Rows             int64    `json:"rows"`
	DirectRowsPerSec float64  `json:"direct_rows_per_s_median"`
	GatewayRowsPerS  float64  `json:"shardgate_rows_per_s_median"`
	Ratio            float64  `json:"shardgate_vs_direct"`
	CPUNsPerRow      *float64 `json:"proxy_cpu_ns_per_row_median,omitempty"`
}

// streaming runs the scenario o.rounds times each way, interleaved.
func (e *env) streaming(ctx context.Context, o options) (*streamResult, error) {
	var direct, gateway, cpu []float64
	var rows int64
	for round := 1; round <= o.rounds; round++ {
		start := time.Now()
		n, err := readAll(ctx, e.shardDSNs...)
		if err != nil {
			return nil, fmt.Errorf("%s directly: %w", streamScenario, err)
		}
		direct = append(direct, float64(n)/time.Since(start).Seconds())
		pid := e.gateway.cmd.Process.Pid
		before, err := cpuTicks(pid)
		if err != nil {
			return nil, err
		}
		start = time.Now()
		m, err := readAll(ctx, e.sharded.dsn())
		if err != nil {
			return nil, fmt.Errorf("%s through shardgate: %w", streamScenario, err)
		}
		gateway = append(gateway, float64(m)/time.Since(start).Seconds())
		after, err := cpuTicks(pid)
		if err != nil {
			return nil, err
		}
		if m != n {
			return nil, fmt.Errorf("%s: shardgate returned %d rows, the shards hold %d", streamScenario, m, n)
		}
		rows = n
		cpu = append(cpu, float64(after-before)*1e9/float64(e.clkTck)/float64(max(m, 1)))
		logf("round %d %s: %d rows, direct %.0f rows/s, shardgate %.0f rows/s", round, streamScenario, n, direct[len(direct)-1], gateway[len(gateway)-1])
	}
	r := &streamResult{Rows: rows, DirectRowsPerSec: median(direct), GatewayRowsPerS: median(gateway)}
	r.Ratio = r.GatewayRowsPerS / r.DirectRowsPerSec
	c := median(cpu)
	r.CPUNsPerRow = &c
	return r, nil
}

// readAll runs streamSQL on every dsn at once, counting the rows without
// keeping them.
func readAll(ctx context.Context, dsns ...string) (int64, error) {
	counts := make([]int64, len(dsns))
	errs := make([]error, len(dsns))
	var wg sync.WaitGroup
	for i, dsn := range dsns {
		wg.Go(func() {
			conn, err := pgconn.Connect(ctx, dsn)
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close(context.Background())
			rr := conn.ExecParams(ctx, streamSQL, nil, nil, nil, nil)
			for rr.NextRow() {
				counts[i]++
			}
			_, errs[i] = rr.Close()
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	var n int64
	for _, c := range counts {
		n += c
	}
	return n, nil
}

// printStream adds the streaming line to the report.
func printStream(w io.Writer, r *streamResult) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "\n%s of %d rows: shardgate %.0f rows/s, both shards directly at once %.0f rows/s (%.2fx); proxy CPU %.0f ns/row\n",
		streamScenario, r.Rows, r.GatewayRowsPerS, r.DirectRowsPerSec, r.Ratio, *r.CPUNsPerRow)
}
