package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// stats summarizes one target's runs of one scenario.
type stats struct {
	Runs         int      `json:"runs"`
	TPSMedian    float64  `json:"tps_median"`
	TPSMin       float64  `json:"tps_min"`
	TPSMax       float64  `json:"tps_max"`
	LatencyMs    float64  `json:"latency_avg_ms_median"`
	CPUUsPerTxn  *float64 `json:"proxy_cpu_us_per_txn_median,omitempty"`
	NotSupported bool     `json:"not_supported,omitempty"`
}

// row is one line of the table: a scenario at a client count.
type row struct {
	Scenario string            `json:"scenario"`
	Clients  int               `json:"clients"`
	Targets  map[string]*stats `json:"targets"`
	// Ratios of the TPS medians; absent when a side is missing.
	ShardgateVsDirect    *float64 `json:"tps_ratio_shardgate_direct,omitempty"`
	ShardgateVsPgbouncer *float64 `json:"tps_ratio_shardgate_pgbouncer,omitempty"`
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func summarize(runs []result) []row {
	var rows []row
	for _, s := range scenarios() {
		if !slices.ContainsFunc(runs, func(x result) bool { return x.Scenario == s.Name && x.Clients == s.Clients }) {
			continue // not run (-run)
		}
		r := row{Scenario: s.Name, Clients: s.Clients, Targets: map[string]*stats{}}
		for _, t := range targets {
			if !supported(t, s) {
				r.Targets[t] = &stats{NotSupported: true}
				continue
			}
			var tps, lat, cpu []float64
			for _, x := range runs {
				if x.Scenario == s.Name && x.Clients == s.Clients && x.Target == t {
					tps = append(tps, x.TPS)
					lat = append(lat, x.LatencyMs)
					if x.CPUUsPerTxn != nil {
						cpu = append(cpu, *x.CPUUsPerTxn)
					}
				}
			}
			if len(tps) == 0 {
				continue
			}
			st := &stats{Runs: len(tps), TPSMedian: median(tps), TPSMin: slices.Min(tps), TPSMax: slices.Max(tps), LatencyMs: median(lat)}
			if len(cpu) > 0 {
				c := median(cpu)
				st.CPUUsPerTxn = &c
			}
			r.Targets[t] = st
		}
		ratio := func(a, b string) *float64 {
			x, y := r.Targets[a], r.Targets[b]
			if x == nil || y == nil || x.NotSupported || y.NotSupported || y.TPSMedian == 0 {
				return nil
			}
			v := x.TPSMedian / y.TPSMedian
			return &v
		}
		r.ShardgateVsDirect = ratio(shardgate, direct)
		r.ShardgateVsPgbouncer = ratio(shardgate, pgbouncer)
		rows = append(rows, r)
	}
	return rows
}

func fmtTPS(s *stats) string {
	switch {
	case s == nil:
		return "-"
	case s.NotSupported:
		return "n/a"
	case s.Runs == 1:
		return fmt.Sprintf("%.0f", s.TPSMedian)
	}
	return fmt.Sprintf("%.0f (%.0f–%.0f)", s.TPSMedian, s.TPSMin, s.TPSMax)
}

func fmtLat(s *stats) string {
	if s == nil || s.NotSupported {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", s.LatencyMs)
}

func fmtRatio(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", *v)
}

func fmtCPU(s *stats) string {
	if s == nil || s.CPUUsPerTxn == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", *s.CPUUsPerTxn)
}

func printTable(w io.Writer, o options, rows []row) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\npgbench, scale %d, %s per run, %d round(s); TPS median (min–max); latency avg ms (median); proxy CPU µs/txn (median)\n\n", o.scale, o.duration, o.rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tclients\tdirect TPS\tpgbouncer TPS\tshardgate TPS\tsg/direct\tsg/pgb\tlat direct\tlat pgb\tlat sg\tCPU pgb\tCPU sg\t")
	for _, r := range rows {
		d, p, s := r.Targets[direct], r.Targets[pgbouncer], r.Targets[shardgate]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Scenario, r.Clients,
			fmtTPS(d), fmtTPS(p), fmtTPS(s), fmtRatio(r.ShardgateVsDirect), fmtRatio(r.ShardgateVsPgbouncer),
			fmtLat(d), fmtLat(p), fmtLat(s), fmtCPU(p), fmtCPU(s))
	}
	tw.Flush()
}

// writeJSON writes the runs and the table to <out>/<timestamp>.json.
func writeJSON(o options, e *env, start time.Time, runs []result, rows []row, stream *streamResult, reshard *reshardResult, idle *idleResult) (string, error) {
	dir := o.outDir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(e.root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	doc := map[string]any{
		"started":    start.UTC().Format(time.RFC3339),
		"duration_s": time.Since(start).Seconds(),
		"config": map[string]any{
			"run_seconds":  o.duration.Seconds(),
			"rounds":       o.rounds,
			"scale":        o.scale,
			"quick":        o.quick,
			"cpus":         runtime.NumCPU(),
			"clk_tck":      e.clkTck,
			"pool_size":    poolSize,
			"pg_settings":  serverSettings,
			"versions":     e.versions,
			"sharded":      "keyspace bench: 2 shards (testdata/vschema/pgbench.yaml); tpcb scenario: keyspace tpcb on 1 shard",
			"pgbouncer":    "pool_mode=transaction; protocol-level prepared statements not supported (n/a)",
			"pgbench_args": "-n -c C -j min(C,2) -T run_seconds -M mode [-S]",
		},
		"runs":    runs,
		"summary": rows,
	}
	if stream != nil {
		doc["streaming"] = stream
	}
	if reshard != nil {
		doc["reshard"] = reshard
	}
	if idle != nil {
		doc["idle_clients"] = idle
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", err
	}
	name := strings.ReplaceAll(start.UTC().Format("20060102T150405Z"), ":", "")
	path := filepath.Join(dir, name+".json")
	return path, os.WriteFile(path, append(b, '\n'), 0o644)
}
