package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The targets, in the order each round runs them.
const (
	direct    = "direct"
	pgbouncer = "pgbouncer"
	shardgate = "shardgate"
)

var targets = []string{direct, pgbouncer, shardgate}

// scenario is one pgbench workload at one client count.
type scenario struct {
	Name    string `json:"name"`
	Script  string `json:"script"` // select-only, tpcb or a name of scripts
	Mode    string `json:"mode"`   // -M
	Clients int    `json:"clients"`
	// Keyspace is the gateway's keyspace the scenario runs in.
	Keyspace string `json:"keyspace"`
}

func scenarios() []scenario {
	var s []scenario
	for _, mode := range []string{"simple", "prepared", "extended"} {
		for _, c := range []int{1, 16, 64} {
			s = append(s, scenario{Name: "select -M " + mode, Script: "select-only", Mode: mode, Clients: c, Keyspace: "bench"})
		}
	}
	return append(s,
		scenario{Name: "tpcb -M prepared, 1 shard", Script: "tpcb", Mode: "prepared", Clients: 16, Keyspace: "tpcb"},
		// Accounts, tellers and branches live on different shards: most
		// transactions write on both and commit in two phases.
		scenario{Name: "tpcb -M prepared, 2 shards", Script: "tpcb", Mode: "prepared", Clients: 16, Keyspace: "bench"},
		scenario{Name: "scatter order by limit", Script: "top", Mode: "simple", Clients: 16, Keyspace: "bench"},
		scenario{Name: "scatter aggregate", Script: "aggregate", Mode: "simple", Clients: 16, Keyspace: "bench"},
		// Ids per second one gateway hands out from a global sequence,
		// against one Postgres's own sequence; then inserts that take
		// their key from it.
		scenario{Name: "nextval", Script: "nextval", Mode: "simple", Clients: 16, Keyspace: "bench"},
		scenario{Name: "insert bigserial", Script: "insert", Mode: "simple", Clients: 16, Keyspace: "bench"},
	)
}

// scripts are the custom pgbench scripts: reads over every shard, each
// bounded to 1000 accounts by the primary key so that direct Postgres and
// the shards do the same work per row.
var scripts = map[string]string{
	"nextval": "SELECT nextval('bench_ids_id_seq');\n",
	"insert":  "INSERT INTO bench_ids (note) VALUES ('x');\n",
	"top": `\set a random(1, 100000 * :scale - 1000)
SELECT aid, abalance FROM pgbench_accounts WHERE aid BETWEEN :a AND :a + 999 ORDER BY abalance DESC, aid LIMIT 100;
`,
	"aggregate": `\set a random(1, 100000 * :scale - 1000)
SELECT bid, count(*), sum(abalance), max(abalance) FROM pgbench_accounts WHERE aid BETWEEN :a AND :a + 999 GROUP BY bid ORDER BY bid;
`,
}

// supported tells whether target can run the scenario: pgbouncer in
// transaction pooling cannot run protocol-level prepared statements.
func supported(target string, s scenario) bool {
	return !(target == pgbouncer && s.Mode == "prepared")
}

// result is one pgbench run.
type result struct {
	Round     int     `json:"round"`
	Scenario  string  `json:"scenario"`
	Clients   int     `json:"clients"`
	Target    string  `json:"target"`
	TPS       float64 `json:"tps"`
	LatencyMs float64 `json:"latency_avg_ms"`
	Txns      int64   `json:"transactions"`
	Failed    int64   `json:"failed_transactions"`
	// CPUUsPerTxn is the proxy process's CPU time (user+system) per
	// transaction, in microseconds; absent for direct runs.
	CPUUsPerTxn *float64 `json:"proxy_cpu_us_per_txn,omitempty"`
}

// benchmark runs every scenario against every target, round after round,
// the targets interleaved within each scenario.
func benchmark(ctx context.Context, o options, e *env) ([]result, error) {
	var runs []result
	var sc []scenario
	for _, s := range scenarios() {
		if o.only.MatchString(s.Name) {
			sc = append(sc, s)
		}
	}
	total := 0
	for _, s := range sc {
		for _, t := range targets {
			if supported(t, s) {
				total++
			}
		}
	}
	logf("%d runs of %s each (%d rounds of %d)", total*o.rounds, o.duration, o.rounds, total)
	n := 0
	for round := 1; round <= o.rounds; round++ {
		for _, s := range sc {
			for _, t := range targets {
				if !supported(t, s) {
					continue
				}
				n++
				r, err := e.benchRun(ctx, o, s, t)
				if err != nil {
					return nil, fmt.Errorf("round %d, %s, %d clients, %s: %w", round, s.Name, s.Clients, t, err)
				}
				r.Round = round
				runs = append(runs, r)
				cpu := ""
				if r.CPUUsPerTxn != nil {
					cpu = fmt.Sprintf(", proxy %.1f µs CPU/txn", *r.CPUUsPerTxn)
				}
				logf("[%d/%d] round %d %-26s c=%-2d %-9s %9.0f tps, %.3f ms%s", n, total*o.rounds, round, s.Name, s.Clients, t, r.TPS, r.LatencyMs, cpu)
			}
		}
	}
	return runs, nil
}

// benchRun runs pgbench once for scenario s against target t.
func (e *env) benchRun(ctx context.Context, o options, s scenario, t string) (result, error) {
	var target endpoint
	var p *proc
	switch t {
	case direct:
		target = e.direct
	case pgbouncer:
		target, p = e.pgbouncer, e.bouncer
	case shardgate:
		target, p = e.sharded, e.gateway
		if s.Keyspace == "tpcb" {
			target = e.single
		}
	}
	jobs := min(s.Clients, 2)
	args := []string{"-n", "-M", s.Mode, "-c", strconv.Itoa(s.Clients), "-j", strconv.Itoa(jobs),
		"-T", strconv.Itoa(int(o.duration.Round(time.Second) / time.Second))}
	switch s.Script {
	case "select-only":
		args = append(args, "-S")
	case "tpcb":
	default:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("shardgate-bench-%d-%s.sql", os.Getpid(), s.Script))
		if err := os.WriteFile(path, []byte(scripts[s.Script]), 0o644); err != nil {
			return result{}, err
		}
		defer os.Remove(path)
		args = append(args, "-f", path, "-D", "scale="+strconv.Itoa(o.scale))
	}
	var before int64
	if p != nil {
		if err := p.running(); err != nil {
			return result{}, err
		}
		var err error
		if before, err = cpuTicks(p.cmd.Process.Pid); err != nil {
			return result{}, err
		}
	}
	var profiled chan error
	if o.profiles != "" && t == shardgate {
		profiled = make(chan error, 1)
		go func() { profiled <- profile(ctx, p.admin, o, s) }()
	}
	out, err := e.runPgbench(ctx, o, target, args...)
	if profiled != nil {
		if perr := <-profiled; perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		if p != nil {
			// A proxy that died explains the failure best.
			time.Sleep(100 * time.Millisecond)
			if perr := p.running(); perr != nil {
				return result{}, perr
			}
		}
		return result{}, err
	}
	r := result{Scenario: s.Name, Clients: s.Clients, Target: t}
	if err := parseSummary(out, &r); err != nil {
		return result{}, err
	}
	if p != nil {
		after, err := cpuTicks(p.cmd.Process.Pid)
		if err != nil {
			return result{}, err
		}
		if r.Txns > 0 {
			us := float64(after-before) * 1e6 / float64(e.clkTck) / float64(r.Txns)
			r.CPUUsPerTxn = &us
		}
	}
	return r, nil
}

// runPgbench runs pgbench against target and returns its output; an error
// carries the output's last line.
func (e *env) runPgbench(ctx context.Context, o options, target endpoint, args ...string) (string, error) {
	full := append([]string{"-h", target.host, "-p", target.port, "-U", target.user}, args...)
	full = append(full, target.db)
	if o.verbose {
		logf("%s %s", e.pgbench, strings.Join(full, " "))
	}
	cmd := exec.CommandContext(ctx, e.pgbench, full...)
	cmd.Env = append(os.Environ(), "PGSSLMODE=disable", "PGOPTIONS=", "PGPASSWORD=")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("pgbench %s: %w: %s", strings.Join(args, " "), err, lastErrorLine(string(out)))
	}
	return string(out), nil
}

// lastErrorLine is the first line of pgbench's output that looks like an
// error (the cause, not the closing "Run was aborted"), else the last line.
func lastErrorLine(out string) string {
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, "run was aborted") {
			continue
		}
		if strings.Contains(l, "error") || strings.Contains(l, "fatal") || strings.Contains(l, "abort") {
			return strings.TrimSpace(line)
		}
	}
	return lastLine(out)
}

var (
	reProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	reFailed    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
	reLatency   = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	reTPS       = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \((?:without initial connection time|excluding connections establishing)\)`)
)

// parseSummary reads pgbench's summary (no --progress).
func parseSummary(out string, r *result) error {
	m := reProcessed.FindStringSubmatch(out)
	l := reLatency.FindStringSubmatch(out)
	t := reTPS.FindStringSubmatch(out)
	if m == nil || l == nil || t == nil {
		return fmt.Errorf("cannot parse pgbench's summary: %s", lastLine(out))
	}
	r.Txns, _ = strconv.ParseInt(m[1], 10, 64)
	r.LatencyMs, _ = strconv.ParseFloat(l[1], 64)
	r.TPS, _ = strconv.ParseFloat(t[1], 64)
	if f := reFailed.FindStringSubmatch(out); f != nil {
		r.Failed, _ = strconv.ParseInt(f[1], 10, 64)
	}
	if r.Failed > 0 {
		return fmt.Errorf("%d failed transactions", r.Failed)
	}
	if r.Txns == 0 {
		return errors.New("no transaction processed")
	}
	return nil
}

// cpuTicks is a process's user+system CPU time in clock ticks, from
// /proc/<pid>/stat (fields 14 and 15), threads included.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return utime + stime, nil
}

// profile fetches a CPU profile of the gateway at admin for the length of
// a run (less a second, so it ends first) into o.profiles.
func profile(ctx context.Context, admin string, o options, s scenario) error {
	seconds := max(int(o.duration/time.Second)-1, 1)
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, seconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CPU profile: %s", resp.Status)
	}
	if err := os.MkdirAll(o.profiles, 0o755); err != nil {
		return err
	}
	name := strings.NewReplacer(" ", "-", ",", "").Replace(fmt.Sprintf("%s-c%d-%s.pprof", s.Name, s.Clients, time.Now().Format("150405")))
	f, err := os.Create(filepath.Join(o.profiles, name))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
