// Command bench is what `make bench` runs: pgbench against one PostgreSQL
// server directly, through pgbouncer (transaction pooling) in front of that
// server, and through shardgate over two shards (one for the single-shard
// scenarios), in interleaved rounds, and prints TPS, latency and the
// proxies' CPU time per transaction. Everything it starts (servers,
// pgbouncer, the gateway with its embedded etcd, temporary directories) is
// stopped and removed on exit, also on error and Ctrl-C. Results go to
// bench-results/<timestamp>.json as well.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// options are the command line's.
type options struct {
	duration time.Duration
	rounds   int
	scale    int
	quick    bool
	outDir   string
	verbose  bool
	profiles string // folder for the gateway's CPU profiles, one per run
	idle     int    // idle client connections to measure
	only     *regexp.Regexp
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 7*time.Second, "length of each pgbench run (whole seconds)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every scenario against every target once")
	flag.IntVar(&o.scale, "scale", 10, "pgbench scale factor (-i -s)")
	flag.BoolVar(&o.quick, "quick", false, "for trying it: 2s runs, 1 round, scale 1, 1000 idle clients (unless -duration, -rounds, -scale or -idle are given)")
	flag.StringVar(&o.outDir, "out", "bench-results", "directory for the JSON results")
	flag.BoolVar(&o.verbose, "v", false, "print each pgbench command")
	flag.StringVar(&o.profiles, "cpuprofile", "", "write a CPU profile of the gateway during each of its runs into this folder (read with go tool pprof)")
	flag.IntVar(&o.idle, "idle", 10000, "idle client connections to open at the end (0: none)")
	only := flag.String("run", "", "run only the scenarios whose name matches this regular expression")
	flag.Parse()
	var err error
	if o.only, err = regexp.Compile(*only); err != nil {
		fail(fmt.Errorf("-run: %w", err))
	}
	if o.quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			o.duration = 2 * time.Second
		}
		if !set["rounds"] {
			o.rounds = 1
		}
		if !set["scale"] {
			o.scale = 1
		}
		if !set["idle"] {
			o.idle = 1000
		}
	}
	if o.duration < time.Second || o.rounds < 1 || o.scale < 1 {
		fail(errors.New("-duration must be at least 1s, -rounds and -scale at least 1"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = run(ctx, o)
	if err != nil && ctx.Err() != nil {
		err = errors.New("interrupted")
	}
	if err != nil {
		fail(err)
	}
}

// fail prints err on one line and exits non-zero.
func fail(err error) {
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " | ")), " ")
	fmt.Fprintf(os.Stderr, "bench: %s\n", msg)
	os.Exit(1)
}

// cleanups run in reverse order of registration.
type cleanups []func()

func (c *cleanups) add(f func()) { *c = append(*c, f) }

func (c *cleanups) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

// logf prints progress to stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, o options) error {
	start := time.Now()
	var cl cleanups
	defer cl.run()
	env, err := setup(ctx, o, &cl)
	if err != nil {
		return err
	}
	runs, err := benchmark(ctx, o, env)
	if err != nil {
		return err
	}
	rows := summarize(runs)
	var stream *streamResult
	if o.only.MatchString(streamScenario) {
		if stream, err = env.streaming(ctx, o); err != nil {
			return err
		}
	}
	var reshard *reshardResult
	if o.only.MatchString(reshardScenario) {
		// Last but for the idle clients: it adds a keyspace and moves it.
		if reshard, err = env.resharding(ctx, o); err != nil {
			return err
		}
	}
	var idle *idleResult
	if o.idle > 0 {
		if idle, err = env.idleClients(ctx, o, o.idle, rows); err != nil {
			return err
		}
	}
	printTable(os.Stdout, o, rows)
	printStream(os.Stdout, stream)
	printReshard(os.Stdout, reshard)
	printIdle(os.Stdout, idle)
	path, err := writeJSON(o, env, start, runs, rows, stream, reshard, idle)
	if err != nil {
		return err
	}
	fmt.Printf("\nresults: %s (total %s)\n", path, time.Since(start).Round(time.Second))
	return nil
}
