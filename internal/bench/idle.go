package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// idleResult is what many idle client connections cost the gateway: its
// resident memory per connection, and a point select's speed while they
// stay open (against the same scenario's median without them).
type idleResult struct {
	Clients        int     `json:"clients"`
	RSSBeforeMiB   float64 `json:"rss_before_mib"`
	RSSWithMiB     float64 `json:"rss_with_mib"`
	KiBPerClient   float64 `json:"kib_per_client"`
	Scenario       string  `json:"scenario"`
	TPS            float64 `json:"tps"`
	LatencyMs      float64 `json:"latency_avg_ms"`
	TPSWithoutIdle float64 `json:"tps_without_idle,omitempty"`
}

// idleScenario is the point select run with the idle clients open.
var idleScenario = scenario{Name: "select -M prepared", Script: "select-only", Mode: "prepared", Clients: 16, Keyspace: "bench"}

// idleClients opens n client connections to the gateway that then do
// nothing, measures the gateway's memory and runs idleScenario, and closes
// them again.
func (e *env) idleClients(ctx context.Context, o options, n int, rows []row) (*idleResult, error) {
	pid := e.gateway.cmd.Process.Pid
	before, err := rssMiB(pid)
	if err != nil {
		return nil, err
	}
	logf("opening %d idle client connections to shardgate", n)
	conns := make([]*pgconn.PgConn, n)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := pgconn.Connect(ctx, e.sharded.dsn())
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
					continue
				}
				conns[i] = c
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	if firstErr != nil {
		return nil, fmt.Errorf("opening idle clients: %w", firstErr)
	}
	time.Sleep(time.Second) // the sessions' startup garbage is collected meanwhile
	with, err := rssMiB(pid)
	if err != nil {
		return nil, err
	}
	r, err := e.benchRun(ctx, o, idleScenario, shardgate)
	if err != nil {
		return nil, err
	}
	res := &idleResult{Clients: n, RSSBeforeMiB: before, RSSWithMiB: with, KiBPerClient: (with - before) * 1024 / float64(n),
		Scenario: fmt.Sprintf("%s c=%d", idleScenario.Name, idleScenario.Clients), TPS: r.TPS, LatencyMs: r.LatencyMs}
	for _, row := range rows {
		if st := row.Targets[shardgate]; row.Scenario == idleScenario.Name && row.Clients == idleScenario.Clients && st != nil {
			res.TPSWithoutIdle = st.TPSMedian
		}
	}
	logf("%d idle clients: gateway RSS %.0f MiB -> %.0f MiB (%.1f KiB each); %s: %.0f tps, %.3f ms",
		n, before, with, res.KiBPerClient, res.Scenario, r.TPS, r.LatencyMs)
	return res, nil
}

// rssMiB is a process's resident memory.
func rssMiB(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// printIdle adds the idle clients' line to the report.
func printIdle(w io.Writer, r *idleResult) {
	if r == nil {
		return
	}
	without := "n/a"
	if r.TPSWithoutIdle > 0 {
		without = fmt.Sprintf("%.0f tps without them (%.2fx)", r.TPSWithoutIdle, r.TPS/r.TPSWithoutIdle)
	}
	fmt.Fprintf(w, "\n%d idle clients: gateway RSS %.0f MiB -> %.0f MiB, %.1f KiB each; %s with them open: %.0f tps, %.3f ms; %s\n",
		r.Clients, r.RSSBeforeMiB, r.RSSWithMiB, r.KiBPerClient, r.Scenario, r.TPS, r.LatencyMs, without)
}
