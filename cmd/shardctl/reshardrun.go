package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/shardgate/shardgate/migrate"
	"github.com/shardgate/shardgate/topology"
)

// estimate sums what a plan moves: the sharded tables' moving share from
// each source, the reference tables once per target.
func estimate(w topology.Workflow, shares []migrate.TableShare) topology.Size {
	var e topology.Size
	targets := map[string]bool{}
	for _, mv := range w.Moves {
		targets[mv.To] = true
	}
	counted := map[string]bool{}
	for _, s := range shares {
		n := int64(1)
		if s.Reference {
			if counted[s.Table] {
				continue
			}
			counted[s.Table], n = true, int64(len(targets))
		}
		e.Rows += max(s.Rows, 0) * n
		e.Bytes += s.Bytes * n
	}
	return e
}

// workflow opens etcd and reads workflow name.
func (a *app) workflow(ctx context.Context, name string) (*topology.Store, *topology.Workflow, error) {
	store, err := a.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	var w *topology.Workflow
	err = a.call(ctx, func(ctx context.Context, s *topology.Store) error {
		w, err = s.Workflow(ctx, name)
		return err
	})
	return store, w, err
}

// lockTTL is how long a controller that died holds its workflow's lock.
const lockTTL = 10 * time.Second

// controller is a migrate.Controller for workflow name that logs to
// stderr and says on stdout which phase it takes up.
func (a *app) controller(store *topology.Store, name string, ttl time.Duration, workers int) *migrate.Controller {
	host, _ := os.Hostname()
	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(a.stderr), zap.InfoLevel))
	c := &migrate.Controller{Store: store, Name: name, ID: fmt.Sprintf("shardctl@%s:%d", host, os.Getpid()), Log: log, LockTTL: ttl, CopyWorkers: workers,
		OnPhase: func(p topology.WorkflowPhase) { fmt.Fprintf(a.stdout, "workflow %s: %s\n", name, p) }}
	// The crash tests' hook: die by SIGKILL at the point named (see
	// migrate.Hook).
	if point := os.Getenv("SHARDGATE_TEST_CRASH"); point != "" {
		c.At = func(h migrate.Hook) {
			if string(h) == point {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
	return c
}

func (a *app) reshardStartCommand() *cobra.Command {
	ttl := lockTTL
	workers := migrate.DefaultCopyWorkers
	var throttle throttleFlags
	c := &cobra.Command{
		Use:   "start NAME [--max-replica-lag D] [--max-active N] [--max-latency D]",
		Short: "Drive a reshard workflow: copy, then stream the sources' changes to the targets",
		Long: `Drive workflow NAME in this process until it ends: make its tables on the
targets, copy each source's moving logical shards under a replication
slot's snapshot, then apply the sources' changes to the targets as they
commit. Progress is recorded in etcd as it goes ('shardctl reshard show').

One process drives a workflow at a time: a second 'start' waits and takes
over when the first stops or dies (after up to --lock-ttl). Interrupted
or killed, a workflow resumes from what it recorded when started again.

--max-replica-lag, --max-active and --max-latency set the workflow's throttle before it
is driven, as 'shardctl reshard throttle' does; a limit not given stays
as recorded.`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			limits, err := throttle.change(c)
			if err != nil {
				return err
			}
			store, w, err := a.workflow(c.Context(), args[0])
			if err != nil {
				return err
			}
			if w.Controller != "" {
				fmt.Fprintf(a.stdout, "workflow %s is driven by %s; waiting to take over\n", w.Name, w.Controller)
			}
			if ttl < time.Second {
				return usageErrorf("--lock-ttl must be at least 1s, not %s", ttl)
			}
			if workers < 1 {
				return usageErrorf("--copy-workers must be at least 1, not %d", workers)
			}
			if limits != nil {
				if w, err = a.setThrottle(c.Context(), w.Name, limits); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, throttleSummary(w))
			}
			err = a.controller(store, w.Name, ttl, workers).Run(c.Context())
			switch {
			case err == nil:
				fmt.Fprintf(a.stdout, "workflow %s ended\n", w.Name)
				return nil
			case c.Context().Err() != nil:
				fmt.Fprintf(a.stdout, "stopped; 'shardctl reshard start %s' resumes workflow %s\n", w.Name, w.Name)
				return nil
			}
			return err
		},
	}
	c.Flags().DurationVar(&ttl, "lock-ttl", lockTTL, "how long the workflow's lock outlives this process if it dies: the wait before another 'start' takes over")
	c.Flags().IntVar(&workers, "copy-workers", workers, "how many tables (and hash ranges) each source copies at once, each over connections of its own")
	throttle.add(c)
	return c
}

func (a *app) reshardCancelCommand() *cobra.Command {
	return a.endCommand("cancel", topology.RequestCancel, "Cancel a reshard workflow before its first write cutover",
		`Undo workflow NAME as if it had never run: its change streams stop, its
replication slots and publications are dropped from the sources, the
tables it made on the targets are dropped and the rows it copied into
tables that were there before are deleted; then its record goes. The
process driving the workflow does this, or this command when none does.`,
		func(w *topology.Workflow) error {
			if !migrate.Cancellable(w) {
				return fmt.Errorf("workflow %s is in phase %s and writes of some of its logical shards go to their targets already: cancel applies only before the first write cutover", w.Name, w.Phase)
			}
			return nil
		}, "cancelled workflow %s: nothing of it is left on the shards\n")
}

func (a *app) reshardCompleteCommand() *cobra.Command {
	return a.endCommand("complete", topology.RequestComplete, "Finish a reshard workflow whose writes all moved",
		`End workflow NAME once every batch is cut over: its change streams stop,
its replication slots and publications are dropped from the sources, the
rows of the logical shards that moved are deleted from the sources a few
thousand at a time (no long lock), and its record goes. Until then the
sources keep those rows, and statements that span shards are refused.
The process driving the workflow does this, or this command when none
does.`,
		func(w *topology.Workflow) error {
			if w.Phase != topology.PhaseCutOver {
				return fmt.Errorf("workflow %s is in phase %s: complete needs every batch cut over first ('shardctl reshard cutover %s')", w.Name, w.Phase, w.Name)
			}
			var last time.Time
			for _, b := range w.Batches {
				if b.At.After(last) {
					last = b.At
				}
			}
			if v := w.Verify; v == nil || v.At.Before(last) || v.Differences > 0 || !v.CaughtUp {
				return fmt.Errorf("workflow %s: complete needs a verify that found no difference after the cutover; run 'shardctl reshard verify %s' first", w.Name, w.Name)
			}
			return nil
		}, "completed workflow %s: the moved rows are gone from the sources\n")
}

// endCommand is a command that asks the controller of a workflow to end
// it (request, when allowed says so) and waits until its record is gone;
// when no controller runs, this process does it.
func (a *app) endCommand(verb, request, short, long string, allowed func(*topology.Workflow) error, done string) *cobra.Command {
	var wait time.Duration
	c := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Long:  long,
		Args:  exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			var w *topology.Workflow
			if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				var err error
				w, err = s.UpdateWorkflow(ctx, args[0], func(w *topology.Workflow) error {
					if err := allowed(w); err != nil {
						return err
					}
					w.Request = request
					return nil
				})
				return err
			}); err != nil {
				return err
			}
			store, err := a.open(c.Context())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context(), wait)
			defer cancel()
			// The controller that drives the workflow does it; if it
			// died, its lock expires and this process does it.
			for asked := false; ; {
				err = a.controller(store, w.Name, lockTTL, migrate.DefaultCopyWorkers).RunIfFree(ctx)
				if !errors.Is(err, topology.ErrConflict) {
					break
				}
				if !asked {
					fmt.Fprintf(a.stdout, "asked %s, which drives workflow %s, to %s it\n", w.Controller, w.Name, verb)
					asked = true
				}
				if _, gerr := store.Workflow(ctx, w.Name); errors.Is(gerr, topology.ErrNotFound) {
					err = nil
					break
				}
				select {
				case <-ctx.Done():
					err = ctx.Err()
				case <-time.After(500 * time.Millisecond):
					continue
				}
				break
			}
			if err != nil {
				return fmt.Errorf("workflow %s is not done yet (%v); 'shardctl reshard show %s' tells where it is", w.Name, err, w.Name)
			}
			fmt.Fprintf(a.stdout, done, w.Name)
			return nil
		},
	}
	c.Flags().DurationVar(&wait, "wait", 10*time.Minute, "how long to wait for it to be done")
	return c
}

func (a *app) reshardCutoverCommand() *cobra.Command {
	var (
		batch int
		wait  time.Duration
	)
	c := &cobra.Command{
		Use:   "cutover NAME [--batch N]",
		Short: "Move a workflow's writes to its targets, batch by batch",
		Long: `Ask the process driving workflow NAME (shardctl reshard start) to move the
writes of its logical shards to their targets, at most N logical shards
(default 16) at a time. For each batch, every gateway holds new writes to
it (clients wait, they get no error) until the transactions that began
before are done and the source's change stream caught up; then the
placement flips, every gateway applies it, and the writes go on at the
target. A batch that takes longer than 5 s is given up and tried again,
its writes going on at the source meanwhile. Reads are never held outside
transactions. This waits until every batch is cut over and prints each
batch's pause.

Shadow reads gate it ('shardctl reshard shadow'): while they found more
differences in the gate's window than it allows, the cutover is refused,
and a cutover under way holds its next batch until they age out.`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if batch < 0 {
				return usageErrorf("--batch must be positive")
			}
			var w *topology.Workflow
			if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				sum, err := s.Shadow(ctx, args[0])
				if err != nil {
					return err
				}
				w, err = s.UpdateWorkflow(ctx, args[0], func(w *topology.Workflow) error {
					if w.Phase != topology.PhaseCatchingUp {
						return fmt.Errorf("workflow %s is in phase %s: cutover starts from %s", w.Name, w.Phase, topology.PhaseCatchingUp)
					}
					if err := w.Gate.Check(sum, time.Now()); err != nil {
						return fmt.Errorf("workflow %s: cutover refused: %w", w.Name, err)
					}
					w.Request, w.BatchSize = topology.RequestCutover, batch
					return nil
				})
				return err
			}); err != nil {
				return err
			}
			if w.Controller == "" {
				fmt.Fprintf(a.stdout, "no process drives workflow %s: the cutover begins once 'shardctl reshard start %s' runs\n", w.Name, w.Name)
			}
			return a.waitPhase(c.Context(), w.Name, topology.PhaseCutOver, wait)
		},
	}
	c.Flags().IntVar(&batch, "batch", 0, "most logical shards per batch (default 16)")
	c.Flags().DurationVar(&wait, "wait", 10*time.Minute, "how long to wait for every batch to cut over")
	return c
}

func (a *app) reshardReverseCommand() *cobra.Command {
	var wait time.Duration
	c := &cobra.Command{
		Use:   "reverse NAME",
		Short: "Move the writes a workflow cut over back to their sources",
		Long: `Ask the process driving workflow NAME to move the writes of every batch
cut over back to its source, the last batch first, each behind a fence
as in the cutover. The reverse stream kept each source complete since its
batch cut over, so nothing written at the target is lost. The workflow is
then catching up again: 'shardctl reshard cutover' tries again, 'cancel'
undoes it. This waits until every batch is back.`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			var w *topology.Workflow
			if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				var err error
				w, err = s.UpdateWorkflow(ctx, args[0], func(w *topology.Workflow) error {
					if w.Phase != topology.PhaseCuttingOver && w.Phase != topology.PhaseCutOver {
						return fmt.Errorf("workflow %s is in phase %s: reverse applies once writes moved (phases %s and %s)", w.Name, w.Phase, topology.PhaseCuttingOver, topology.PhaseCutOver)
					}
					w.Request = topology.RequestReverse
					return nil
				})
				return err
			}); err != nil {
				return err
			}
			if w.Controller == "" {
				fmt.Fprintf(a.stdout, "no process drives workflow %s: the reverse begins once 'shardctl reshard start %s' runs\n", w.Name, w.Name)
			}
			return a.waitPhase(c.Context(), w.Name, topology.PhaseCatchingUp, wait)
		},
	}
	c.Flags().DurationVar(&wait, "wait", 10*time.Minute, "how long to wait for every batch to move back")
	return c
}

// waitPhase waits until workflow name is in phase, then prints its
// batches; a request the controller refused ends the wait with its
// reason.
func (a *app) waitPhase(ctx context.Context, name string, phase topology.WorkflowPhase, wait time.Duration) error {
	store, err := a.open(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		w, err := store.Workflow(ctx, name)
		if err != nil {
			return err
		}
		if w.Phase == phase && w.Request == "" {
			printBatches(a.stdout, w)
			return nil
		}
		if w.Request == "" && strings.Contains(w.Error, "refused") {
			return errors.New(w.Error)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("workflow %s is not in phase %s after %s; 'shardctl reshard show %s' tells where it is", name, phase, wait, name)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// printBatches shows a workflow's cutover batches and their pauses.
func printBatches(out io.Writer, w *topology.Workflow) {
	if len(w.Batches) == 0 {
		return
	}
	t := table(out)
	fmt.Fprintln(t, "BATCH\tLOGICAL\tFROM\tTO\tSTATE\tATTEMPTS\tWRITE PAUSE")
	for i, b := range w.Batches {
		state, pause := "waiting", "-"
		switch {
		case b.Done:
			state, pause = "cut over", fmt.Sprintf("%.1f ms", b.PauseMS)
		case b.Reversed:
			state, pause = "moved back", fmt.Sprintf("%.1f ms, back %.1f ms", b.PauseMS, b.ReversePauseMS)
		}
		fmt.Fprintf(t, "%d\t%d-%d\t%s\t%s\t%s\t%d\t%s\n", i, b.First, b.Last, b.From, b.To, state, b.Attempts, pause)
	}
	t.Flush()
}

func (a *app) reshardVerifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify NAME",
		Short: "Compare every moved logical shard on its source and its target",
		Long: `Compare, for every logical shard workflow NAME moves, each sharded table on
its source with its target while the clients keep writing: a row count
and an order-independent checksum per logical shard, then smaller and
smaller key ranges down to the rows that differ. Each such row is read
again where the writes go, and on the other side once the stream passed
that moment; it is reported, with its primary key, only if it still
differs: missing (on the target), extra (only on the target) or
different. A row that keeps changing is read again a few times. The result is recorded; 'reshard complete' needs
a clean verify after the cutover. Exits 1 if rows differ.`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			store, w, err := a.workflow(c.Context(), args[0])
			if err != nil {
				return err
			}
			start := time.Now()
			v, err := migrate.VerifyWorkflow(c.Context(), store, w.Name, nil)
			if err != nil {
				return err
			}
			var rows int64
			t := table(a.stdout)
			fmt.Fprintln(t, "TABLE\tROWS ON THE SOURCES")
			for _, name := range slices.Sorted(maps.Keys(v.Rows)) {
				fmt.Fprintf(t, "%s\t%d\n", name, v.Rows[name])
				rows += v.Rows[name]
			}
			t.Flush()
			const shown = 100
			for i, d := range v.Differences {
				if i == shown {
					fmt.Fprintf(a.stdout, "... and %d more\n", len(v.Differences)-shown)
					break
				}
				fmt.Fprintf(a.stdout, "differs: %s\n", d)
			}
			if _, err := store.UpdateWorkflow(c.Context(), w.Name, func(rec *topology.Workflow) error {
				rec.Verify = &topology.VerifyResult{At: time.Now().UTC(), Phase: w.Phase, Rows: rows, Differences: len(v.Differences), CaughtUp: v.CaughtUp}
				return nil
			}); err != nil {
				return err
			}
			switch {
			case len(v.Differences) > 0 && !v.CaughtUp:
				return fmt.Errorf("workflow %s: %d rows differ, but the streams did not catch up between rounds (is 'shardctl reshard start %s' running?)", w.Name, len(v.Differences), w.Name)
			case len(v.Differences) > 0:
				return fmt.Errorf("workflow %s: %d rows differ between sources and targets", w.Name, len(v.Differences))
			}
			fmt.Fprintf(a.stdout, "workflow %s: %d rows of %d logical shards verified in %s, no difference\n", w.Name, rows, len(w.Moves), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
}

func (a *app) reshardShowCommand() *cobra.Command {
	var watch bool
	c := &cobra.Command{
		Use:   "show NAME [--watch]",
		Short: "Show a reshard workflow: its moves, phase, copy progress, lag and shadow reads",
		Args:  exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			for {
				var (
					w       *topology.Workflow
					traffic *topology.ReadTraffic
					shadow  topology.ShadowSummary
				)
				driven := false
				if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
					var err error
					if w, err = s.Workflow(ctx, args[0]); err != nil {
						return err
					}
					if driven, err = s.WorkflowDriven(ctx, w.Name); err != nil {
						return err
					}
					if traffic, err = s.ReadTrafficOf(ctx, w.Keyspace); err != nil {
						return err
					}
					if traffic != nil && traffic.Workflow != w.Name {
						traffic = nil // another workflow's
					}
					shadow, err = s.Shadow(ctx, w.Name)
					return err
				}); err != nil {
					if watch && errors.Is(err, topology.ErrNotFound) {
						fmt.Fprintf(a.stdout, "workflow %s is gone\n", args[0])
						return nil
					}
					return err
				}
				logical := 0
				if snap, err := a.load(c.Context()); err == nil && snap.Keyspace(w.Keyspace) != nil {
					logical = snap.Keyspace(w.Keyspace).Map.LogicalCount
				}
				if watch && isTerminal(a.stdout) {
					fmt.Fprint(a.stdout, "\033[H\033[2J")
				}
				printWorkflow(a.stdout, w, logical, driven, traffic, shadow, time.Now())
				if !watch {
					return nil
				}
				select {
				case <-c.Context().Done():
					return nil
				case <-time.After(time.Second):
				}
				fmt.Fprintln(a.stdout)
			}
		},
	}
	c.Flags().BoolVar(&watch, "watch", false, "print it again every second until interrupted")
	return c
}

// isTerminal reports whether out is a terminal.
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// printWorkflow shows a workflow's plan and where it stands.
// driven tells whether a controller holds its lock now: the one the
// record names may have died since. traffic is the keyspace's read
// traffic when the workflow steers it (else nil), shadow what the
// gateways' shadow reads of it found.
func printWorkflow(out io.Writer, w *topology.Workflow, logical int, driven bool, traffic *topology.ReadTraffic, shadow topology.ShadowSummary, now time.Time) {
	printPlan(out, *w, logical, nil)
	t := table(out)
	fmt.Fprintf(t, "phase:\t%s\n", w.Phase)
	fmt.Fprintf(t, "planned against:\tshard map version %d\n", w.MapVersion)
	fmt.Fprintf(t, "created:\t%s\n", w.Created.Format(time.RFC3339))
	controller := w.Controller
	switch {
	case controller == "" || !driven && w.Phase == topology.PhasePlanned:
		controller = fmt.Sprintf("none ('shardctl reshard start %s' drives it)", w.Name)
	case !driven:
		controller = fmt.Sprintf("none: %s stopped or died ('shardctl reshard start %s' resumes it)", controller, w.Name)
	}
	fmt.Fprintf(t, "controller:\t%s\n", controller)
	if w.Request != "" {
		fmt.Fprintf(t, "requested:\t%s\n", w.Request)
	}
	if w.Error != "" {
		fmt.Fprintf(t, "last error:\t%s (retrying)\n", w.Error)
	}
	if w.Phase != topology.PhasePlanned {
		fmt.Fprintf(t, "copy:\t%s\n", copyProgress(w, now))
	}
	if traffic != nil {
		fmt.Fprintf(t, "reads:\t%s at the targets, %s of the rest shadowed\n", percentText(traffic.ReadPercent), percentText(traffic.ShadowPercent))
	}
	if traffic != nil || shadow.Total != (topology.ShadowTally{}) {
		fmt.Fprintf(t, "shadow reads:\t%d matched, %d differed, %d skipped\n", shadow.Total.Matches, shadow.Total.Differences, shadow.Total.Skipped)
	}
	state := "open"
	if w.Gate.Check(shadow, now) != nil {
		state = fmt.Sprintf("closed: %d differences in the window refuse the cutover", shadow.Since(now.Add(-gateWindow(w.Gate))))
	}
	fmt.Fprintf(t, "cutover gate:\t%s (%s)\n", gateText(w.Gate), state)
	throttle := limitsText(w.Throttle)
	if w.Throttle.Reason != "" {
		throttle += "; " + backingOffText(w)
	}
	fmt.Fprintf(t, "throttle:\t%s\n", throttle)
	t.Flush()
	printBatches(out, w)
	printStreams(out, w)
	printShadow(out, shadow)
}

// printStreams shows where each of a workflow's sources and reverse
// streams stands.
func printStreams(out io.Writer, w *topology.Workflow) {
	if len(w.Sources) == 0 {
		return
	}
	t := table(out)
	fmt.Fprintln(t, "SOURCE\tSLOT\tCOPIED\tROWS\tBYTES\tFLUSHED LSN\tLAG\tPEAK LAG\tAPPLIED")
	type row struct {
		name string
		p    *topology.SourceProgress
	}
	var streams []row
	for _, name := range slices.Sorted(maps.Keys(w.Sources)) {
		streams = append(streams, row{name, w.Sources[name]})
	}
	for _, name := range slices.Sorted(maps.Keys(w.Reverse)) {
		streams = append(streams, row{name + " (reverse)", w.Reverse[name]})
	}
	for _, r := range streams {
		name, p := r.name, r.p
		var rows, bytes int64
		for _, c := range p.Copied {
			rows += c.Rows
			bytes += c.Bytes
		}
		copied := "copying"
		switch {
		case strings.HasSuffix(name, " (reverse)"):
			copied = "-"
		case p.Seeded:
			copied = fmt.Sprintf("done in %.1fs", p.CopySeconds)
		}
		lag := "-"
		if p.Seeded && w.Phase != topology.PhaseCopying {
			lag = fmt.Sprintf("%s, %.1fs", bytesText(p.LagBytes), p.LagSeconds)
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\n", name, p.Slot, copied, rows, bytesText(bytes), orDash(p.Flushed), lag, bytesText(p.PeakLagBytes), p.Applied)
	}
	t.Flush()
}

// copyProgress is a bar of the bytes copied against the plan's estimate,
// with the rate and, while copying, the time left at that rate.
func copyProgress(w *topology.Workflow, now time.Time) string {
	done := w.CopiedTotal()
	seeded := len(w.Sources) > 0
	for _, p := range w.Sources {
		seeded = seeded && p.Seeded
	}
	frac := 0.0
	if w.Estimate.Bytes > 0 {
		frac = min(float64(done.Bytes)/float64(w.Estimate.Bytes), 1)
	}
	if seeded {
		frac = 1
	}
	const width = 30
	bar := "[" + strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width)) + "]"
	s := fmt.Sprintf("%s %3.0f%%  %d rows, %s of about %s", bar, frac*100, done.Rows, bytesText(done.Bytes), bytesText(w.Estimate.Bytes))
	if seeded {
		// The sources copy at once: the slowest one took the copy's time.
		var took float64
		for _, p := range w.Sources {
			took = max(took, p.CopySeconds)
		}
		if took > 0 {
			s += fmt.Sprintf(" in %.1fs, %.0f rows/s", took, float64(done.Rows)/took)
		}
		return s
	}
	if w.CopyStarted.IsZero() {
		return s
	}
	elapsed := now.Sub(w.CopyStarted).Seconds()
	if elapsed <= 0 || done.Bytes == 0 {
		return s
	}
	rate := float64(done.Bytes) / elapsed
	s += fmt.Sprintf(", %s/s", bytesText(int64(rate)))
	if left := w.Estimate.Bytes - done.Bytes; left > 0 {
		s += fmt.Sprintf(", about %s left", time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second))
	}
	return s
}

// shownDifferences is how many of the latest shadow differences 'reshard
// show' prints.
const shownDifferences = 5

// printShadow shows the logical shards whose shadow reads differed and the
// latest differences.
func printShadow(out io.Writer, sum topology.ShadowSummary) {
	if sum.Total.Differences == 0 && len(sum.Recent) == 0 {
		return
	}
	t := table(out)
	fmt.Fprintln(t, "LOGICAL\tMATCHED\tDIFFERED\tSKIPPED")
	for _, l := range topology.LogicalOrder(sum.Logical) {
		if n := sum.Logical[l]; n.Differences > 0 {
			fmt.Fprintf(t, "%d\t%d\t%d\t%d\n", l, n.Matches, n.Differences, n.Skipped)
		}
	}
	t.Flush()
	if len(sum.Recent) == 0 {
		return
	}
	t = table(out)
	fmt.Fprintln(t, "DIFFERED AT\tLOGICAL\tKEY\tSOURCE ROWS\tTARGET ROWS\tSQL")
	for _, d := range sum.Recent[max(len(sum.Recent)-shownDifferences, 0):] {
		// A statement's own line breaks and tabs would break the table.
		sql := strings.Join(strings.Fields(d.SQL), " ")
		fmt.Fprintf(t, "%s\t%d\t%s\t%d\t%d\t%s\n", d.At.Format(time.RFC3339), d.Logical, d.Key, d.SourceRows, d.TargetRows, sql)
	}
	t.Flush()
}

// gateWindow is the window g counts differences in.
func gateWindow(g topology.ShadowGate) time.Duration {
	if g.Window <= 0 {
		return topology.DefaultShadowWindow
	}
	return g.Window
}

// gateText says when g refuses the cutover.
func gateText(g topology.ShadowGate) string {
	return fmt.Sprintf("at most %d shadow differences in the last %s", g.MaxDifferences, gateWindow(g))
}

// percentText prints a share of reads: 50%, 12.5%.
func percentText(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) + "%" }

// parsePercent reads flag's value, a share of reads from 0 to 100 with or
// without a "%".
func parsePercent(flag, s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%")), 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 100 {
		return 0, usageErrorf("%s must be a percentage from 0 to 100 (50 or 50%%), not %q", flag, s)
	}
	return v, nil
}

// readPhases are the phases in which a workflow's targets hold a complete
// copy of its moving logical shards that its change streams keep up to
// date: the only ones in which reads may go there.
var readPhases = []topology.WorkflowPhase{topology.PhaseCatchingUp, topology.PhaseCuttingOver, topology.PhaseCutOver, topology.PhaseReversing}

// canSteer returns why w's reads cannot go to its targets now, nil if
// they can.
func canSteer(w *topology.Workflow) error {
	if w.Request == topology.RequestCancel || w.Request == topology.RequestComplete {
		return fmt.Errorf("workflow %s is asked to %s: its reads stay at its sources", w.Name, w.Request)
	}
	if !slices.Contains(readPhases, w.Phase) {
		var phases []string
		for _, p := range readPhases {
			phases = append(phases, string(p))
		}
		return fmt.Errorf("workflow %s is in phase %s: reads may go to its targets only while they hold a complete copy the change streams keep up to date (phases %s)", w.Name, w.Phase, strings.Join(phases, ", "))
	}
	for _, source := range sources(w) {
		if p := w.Sources[source]; p == nil || p.Slot == "" {
			return fmt.Errorf("workflow %s: source %s has no replication slot recorded, so what its targets hold is unknown", w.Name, source)
		}
	}
	return nil
}

// sources lists w's source shards.
func sources(w *topology.Workflow) []string {
	var out []string
	for _, mv := range w.Moves {
		if !slices.Contains(out, mv.From) {
			out = append(out, mv.From)
		}
	}
	slices.Sort(out)
	return out
}

// steerReads sets workflow name's read traffic: its targets and slots from
// the record, then what set changes. change, when not nil, first changes
// the record itself. A workflow asked to end meanwhile has the traffic
// taken off again: its end may have cleared it before this wrote it.
func (a *app) steerReads(ctx context.Context, name string, change func(*topology.Workflow), set func(*topology.ReadTraffic)) (*topology.Workflow, *topology.ReadTraffic, error) {
	var (
		w       *topology.Workflow
		traffic *topology.ReadTraffic
	)
	err := a.call(ctx, func(ctx context.Context, s *topology.Store) error {
		var err error
		if change != nil {
			w, err = s.UpdateWorkflow(ctx, name, func(w *topology.Workflow) error {
				if err := canSteer(w); err != nil {
					return err
				}
				change(w)
				return nil
			})
		} else {
			w, err = s.Workflow(ctx, name)
		}
		if err != nil {
			return err
		}
		if err := canSteer(w); err != nil {
			return err
		}
		if _, err := s.SetReadTraffic(ctx, w.Keyspace, w.Name, func(t *topology.ReadTraffic) error {
			t.Targets, t.Slots = map[int]string{}, map[string]string{}
			for _, mv := range w.Moves {
				t.Targets[mv.Logical] = mv.To
			}
			for _, source := range sources(w) {
				t.Slots[source] = w.Sources[source].Slot
			}
			set(t)
			traffic = t
			return nil
		}); err != nil {
			return err
		}
		now, err := s.Workflow(ctx, name)
		if err == nil {
			err = canSteer(now)
		}
		if err != nil {
			if cerr := s.ClearReadTraffic(ctx, w.Keyspace, w.Name); cerr != nil {
				err = errors.Join(err, cerr)
			}
			return fmt.Errorf("%w (meanwhile; its reads go to the sources again)", err)
		}
		return nil
	})
	return w, traffic, err
}

// trafficText says what traffic makes of workflow w's reads.
func trafficText(w *topology.Workflow, t *topology.ReadTraffic) string {
	reads := "every read of its moving logical shards goes to their sources"
	if t.ReadPercent > 0 {
		reads = percentText(t.ReadPercent) + " of the reads of its moving logical shards go to their targets"
	}
	shadow := "no shadow reads"
	if t.ShadowPercent > 0 {
		shadow = percentText(t.ShadowPercent) + " of the reads the sources answer also run on the targets and are compared (shadow reads)"
	}
	return fmt.Sprintf("workflow %s: %s; %s; writes are unchanged", w.Name, reads, shadow)
}

func (a *app) reshardShadowCommand() *cobra.Command {
	var (
		percent        string
		window         time.Duration
		maxDifferences int
	)
	c := &cobra.Command{
		Use:   "shadow NAME --percent P [--window D] [--max-differences N]",
		Short: "Compare a share of a workflow's reads on its targets with its sources",
		Long: `Run P percent of the reads of workflow NAME's moving logical shards that
their sources answer (outside transactions) on their targets too, off the
client's path, and compare the rows. Only reads of one sharding key are
compared, as multisets of rows, once the target's stream passed the
source position the read saw; a read for which it did not is skipped.
'shardctl reshard show NAME' sums what every gateway found. --percent 0
stops them.

The differences gate the write cutover: 'shardctl reshard cutover' is
refused while shadow reads found more than --max-differences (default 0)
in the last --window (default 10m), and a cutover under way holds its next
batch until they age out of the window. --window and --max-differences
are recorded in the workflow when given; otherwise they stay as they are.

The targets must hold a complete copy the change streams keep up to date:
the workflow must be in phase catching_up, cutting_over, cut_over or
reversing.`,
		Example: `  shardctl reshard shadow grow --percent 10
  shardctl reshard shadow grow --percent 50% --window 30m --max-differences 2`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if !c.Flags().Changed("percent") {
				return usageErrorf("missing --percent")
			}
			p, err := parsePercent("--percent", percent)
			if err != nil {
				return err
			}
			setWindow, setMax := c.Flags().Changed("window"), c.Flags().Changed("max-differences")
			if setWindow && window <= 0 {
				return usageErrorf("--window must be positive, not %s", window)
			}
			if setMax && (maxDifferences < 0 || maxDifferences >= topology.MaxShadowDifferences) {
				return usageErrorf("--max-differences must be from 0 to %d, not %d", topology.MaxShadowDifferences-1, maxDifferences)
			}
			var change func(*topology.Workflow)
			if setWindow || setMax {
				change = func(w *topology.Workflow) {
					if setWindow {
						w.Gate.Window = window
					}
					if setMax {
						w.Gate.MaxDifferences = maxDifferences
					}
				}
			}
			w, t, err := a.steerReads(c.Context(), args[0], change, func(t *topology.ReadTraffic) { t.ShadowPercent = p })
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s; the cutover allows %s\n", trafficText(w, t), gateText(w.Gate))
			return nil
		},
	}
	c.Flags().StringVar(&percent, "percent", "", "share of the reads the sources answer that also run on the targets, 0 to 100 (0 stops them)")
	c.Flags().DurationVar(&window, "window", topology.DefaultShadowWindow, "how far back the cutover gate counts differences")
	c.Flags().IntVar(&maxDifferences, "max-differences", 0, "most differences in the window that the cutover gate lets through")
	return c
}

func (a *app) reshardSwitchCommand() *cobra.Command {
	var reads string
	c := &cobra.Command{
		Use:   "switch NAME --reads P%",
		Short: "Send a share of a workflow's reads to its targets before its writes move",
		Long: `Send P percent of the reads of workflow NAME's moving logical shards whose
writes did not move yet to their targets instead of their sources: a
gradual read cutover. Only reads outside transactions move. A session
that wrote a logical shard keeps reading it at its source until the
target's stream has that write, and a target is read only while its
stream is at most two seconds behind (another session's write may show
there that late). --reads 0 sends every read back to the sources.

Writes are not affected: they move with 'shardctl reshard cutover'.

The targets must hold a complete copy the change streams keep up to date:
the workflow must be in phase catching_up, cutting_over, cut_over or
reversing.`,
		Example: `  shardctl reshard switch grow --reads 10%
  shardctl reshard switch grow --reads 0`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if !c.Flags().Changed("reads") {
				return usageErrorf("missing --reads")
			}
			p, err := parsePercent("--reads", reads)
			if err != nil {
				return err
			}
			w, t, err := a.steerReads(c.Context(), args[0], nil, func(t *topology.ReadTraffic) { t.ReadPercent = p })
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, trafficText(w, t))
			return nil
		},
	}
	c.Flags().StringVar(&reads, "reads", "", "share of the reads that go to the targets, 0 to 100, with or without % (0 sends them all back)")
	return c
}

// throttleFlags are the --max-replica-lag, --max-active and --max-latency flags of
// 'reshard throttle' and 'reshard start'.
type throttleFlags struct {
	replicaLag, latency time.Duration
	active              int
}

func (f *throttleFlags) add(c *cobra.Command) {
	c.Flags().DurationVar(&f.replicaLag, "max-replica-lag", 0, "back off the copy and the streams while a source's physical standbys replay further behind than this (0: not watched; unchanged when not given)")
	c.Flags().IntVar(&f.active, "max-active", 0, "back off the copy and the streams while a source runs more statements at once than this (its active client sessions; 0: not watched; unchanged when not given)")
	c.Flags().DurationVar(&f.latency, "max-latency", 0, "back off the copy and the streams while a gateway's p99 statement latency is over this (0: not watched; unchanged when not given)")
}

// change returns what the flags given set in a workflow's throttle, nil
// when none was given.
func (f *throttleFlags) change(c *cobra.Command) (func(*topology.Throttle), error) {
	setLag, setLatency, setActive := c.Flags().Changed("max-replica-lag"), c.Flags().Changed("max-latency"), c.Flags().Changed("max-active")
	switch {
	case setLag && f.replicaLag < 0:
		return nil, usageErrorf("--max-replica-lag must be 0 (not watched) or positive, not %s", f.replicaLag)
	case setLatency && f.latency < 0:
		return nil, usageErrorf("--max-latency must be 0 (not watched) or positive, not %s", f.latency)
	case setActive && f.active < 0:
		return nil, usageErrorf("--max-active must be 0 (not watched) or positive, not %d", f.active)
	case !setLag && !setLatency && !setActive:
		return nil, nil
	}
	return func(t *topology.Throttle) {
		if setLag {
			t.MaxReplicaLag = f.replicaLag
		}
		if setActive {
			t.MaxActive = f.active
		}
		if setLatency {
			t.MaxLatency = f.latency
		}
	}, nil
}

// setThrottle applies change to workflow name's throttle. With no limit
// left nothing is watched, so nothing is backed off for either.
func (a *app) setThrottle(ctx context.Context, name string, change func(*topology.Throttle)) (*topology.Workflow, error) {
	var w *topology.Workflow
	err := a.call(ctx, func(ctx context.Context, s *topology.Store) error {
		var err error
		w, err = s.UpdateWorkflow(ctx, name, func(w *topology.Workflow) error {
			change(&w.Throttle)
			if w.Throttle.MaxReplicaLag == 0 && w.Throttle.MaxLatency == 0 && w.Throttle.MaxActive == 0 {
				w.Throttle.Reason, w.Throttle.Since = "", time.Time{}
			}
			return nil
		})
		return err
	})
	return w, err
}

// throttleLimits lists what t watches, as the ends of "back off while ...".
func throttleLimits(t topology.Throttle) []string {
	var limits []string
	if t.MaxReplicaLag > 0 {
		limits = append(limits, fmt.Sprintf("a source's standbys lag more than %s", t.MaxReplicaLag))
	}
	if t.MaxActive > 0 {
		limits = append(limits, fmt.Sprintf("a source runs more than %d statements at once", t.MaxActive))
	}
	if t.MaxLatency > 0 {
		limits = append(limits, fmt.Sprintf("a gateway's p99 latency is over %s", t.MaxLatency))
	}
	return limits
}

// limitsText is t's limits for 'reshard show'.
func limitsText(t topology.Throttle) string {
	limits := throttleLimits(t)
	if len(limits) == 0 {
		return "none"
	}
	return "backs off while " + strings.Join(limits, " or ")
}

// backingOffText says since when and why w's throttle backs off now
// (Reason is set); once the write cutover began, that a limit is
// exceeded but nothing is held.
func backingOffText(w *topology.Workflow) string {
	t := w.Throttle
	since := ""
	if !t.Since.IsZero() {
		since = " since " + t.Since.Format(time.RFC3339)
	}
	if !w.Phase.Throttles() {
		return fmt.Sprintf("over a limit%s: %s (the streams are not held once the write cutover began)", since, t.Reason)
	}
	return fmt.Sprintf("backing off%s: %s", since, t.Reason)
}

// throttleSummary says in one line what workflow w's throttle does, and
// whether it backs off now.
func throttleSummary(w *topology.Workflow) string {
	s := fmt.Sprintf("workflow %s is not throttled (no limits)", w.Name)
	if limits := throttleLimits(w.Throttle); len(limits) > 0 {
		s = fmt.Sprintf("workflow %s backs off its copy and streams while %s", w.Name, strings.Join(limits, " or "))
	}
	if w.Throttle.Reason != "" {
		s += "; " + backingOffText(w)
	}
	return s
}

func (a *app) reshardThrottleCommand() *cobra.Command {
	var flags throttleFlags
	c := &cobra.Command{
		Use:   "throttle NAME [--max-replica-lag D] [--max-active N] [--max-latency D]",
		Short: "Set when a workflow's copy and change streams back off to spare the sources and clients",
		Long: `Set when workflow NAME's copy and change streams back off: while a
source's physical standbys replay further behind than --max-replica-lag
(as pg_stat_replication on the source reports), while a source runs more
statements at once than --max-active (its client sessions active in
pg_stat_activity: the load Postgres shows, as it shows no host CPU), or
while a gateway's
99th percentile statement latency over its last few seconds is over
--max-latency. The controller checks every second; the copy pauses
between chunks of rows and the streams between source transactions while
a limit is exceeded. The streams are not held once the write cutover
began: that would hold the clients' writes longer.

Each flag is recorded only when given; 0 stops watching that limit. With
no flag, the limits and whether the workflow backs off now are printed.
Any phase; 'shardctl reshard start' takes the same flags.`,
		Example: `  shardctl reshard throttle grow --max-replica-lag 10s --max-latency 50ms
  shardctl reshard throttle grow --max-latency 0
  shardctl reshard throttle grow`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			change, err := flags.change(c)
			if err != nil {
				return err
			}
			var w *topology.Workflow
			if change == nil {
				_, w, err = a.workflow(c.Context(), args[0])
			} else {
				w, err = a.setThrottle(c.Context(), args[0], change)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, throttleSummary(w))
			return nil
		},
	}
	flags.add(c)
	return c
}
