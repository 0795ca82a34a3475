package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardgate/shardgate/migrate"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// reshardCommand is "shardctl reshard": workflows that move logical shards
// to other physical shards.
func (a *app) reshardCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "reshard",
		Short: "Plan and follow workflows that move logical shards to other physical shards",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	c.AddCommand(a.reshardCreateCommand(), a.reshardListCommand(), a.reshardShowCommand(), a.reshardStartCommand(), a.reshardShadowCommand(), a.reshardSwitchCommand(), a.reshardThrottleCommand(), a.reshardCutoverCommand(), a.reshardReverseCommand(), a.reshardVerifyCommand(), a.reshardCompleteCommand(), a.reshardCancelCommand())
	return c
}

func (a *app) reshardCreateCommand() *cobra.Command {
	var (
		keyspace, to string
		moveSpecs    []string
		apply        bool
	)
	c := &cobra.Command{
		Use:   "create NAME --keyspace KS (--to SHARD,... | --move N-M:SHARD ...) [--apply]",
		Short: "Plan a workflow that moves logical shards, and record it",
		Long: `Plan which logical shards of a keyspace move where, print the plan, and
record it in etcd as workflow NAME once confirmed (or at once with --apply).

--to s2,s3 spreads the keyspace over its current shards and the ones named,
each getting its weighted share (shardctl shard add --weight), moving as
few logical shards as possible. --move N-M:SHARD (repeatable) names the
moves instead.

Before anything is recorded, every source shard is checked: each table of
the keyspace's vschema must exist there and have a primary key (the change
stream is applied by primary key). The plan shows each table's estimated
rows and bytes that move (the shard's own statistics), and refuses logical
shards that another workflow is moving.

A recorded workflow reserves its logical shards until it completes or is
cancelled; 'shardctl reshard start NAME' drives it.`,
		Example: `  shardctl reshard create grow --keyspace app --to s2,s3
  shardctl reshard create drain-s0 --keyspace app --move 0-31:s2 --apply`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := vschema.ValidName("workflow", args[0]); err != nil {
				return &usageError{err}
			}
			switch {
			case keyspace == "":
				return usageErrorf("missing --keyspace")
			case to == "" && len(moveSpecs) == 0:
				return usageErrorf("missing --to or --move")
			case to != "" && len(moveSpecs) > 0:
				return usageErrorf("--to and --move exclude each other")
			}
			snap, err := a.load(c.Context())
			if err != nil {
				return err
			}
			ks := snap.Keyspace(keyspace)
			if ks == nil {
				return fmt.Errorf("keyspace %s does not exist", keyspace)
			}
			var moves []migrate.Move
			if to != "" {
				targets := splitList(to)
				for _, s := range targets {
					if snap.Shards[s] == nil {
						return fmt.Errorf("shard %s is not registered (shardctl shard add)", s)
					}
				}
				moves, err = migrate.Rebalance(ks.Map, targets, func(s string) int { return snap.Shards[s].EffectiveWeight() })
			} else {
				moves, err = migrate.ParseMoves(ks.Map, moveSpecs)
				for _, mv := range moves {
					if err == nil && snap.Shards[mv.To] == nil {
						err = fmt.Errorf("shard %s is not registered (shardctl shard add)", mv.To)
					}
				}
			}
			if err != nil {
				return err
			}
			w := topology.Workflow{Name: args[0], Keyspace: keyspace, Moves: moves}
			// Refused before the shards are asked anything; CreateWorkflow
			// checks again as it writes.
			if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				return s.CheckWorkflowFree(ctx, w)
			}); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context(), a.timeout)
			shares, err := migrate.Preflight(ctx, snap, keyspace, moves)
			cancel()
			if err != nil {
				return err
			}
			printPlan(a.stdout, w, ks.Map.LogicalCount, shares)
			w.Estimate = estimate(w, shares)
			if !apply && !a.confirm("Record this plan?") {
				fmt.Fprintln(a.stdout, "not recorded (run again with --apply to record it without asking)")
				return nil
			}
			if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				return s.CreateWorkflow(ctx, w)
			}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "recorded workflow %s (phase %s); 'shardctl reshard start %s' drives it\n", w.Name, topology.PhasePlanned, w.Name)
			return nil
		},
	}
	c.Flags().StringVar(&keyspace, "keyspace", "", "keyspace whose logical shards move (required)")
	c.Flags().StringVar(&to, "to", "", "comma-separated shards to spread the keyspace onto, with its current ones, by weight")
	c.Flags().StringArrayVar(&moveSpecs, "move", nil, "logical shards N or N-M and their target, N-M:SHARD (repeatable)")
	c.Flags().BoolVar(&apply, "apply", false, "record the plan without asking")
	return c
}

// confirm asks question on stdout and reads a yes from stdin.
func (a *app) confirm(question string) bool {
	fmt.Fprintf(a.stdout, "%s [y/N] ", question)
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}

// printPlan shows which logical shards move where and what each table
// sends.
func printPlan(out io.Writer, w topology.Workflow, logicalCount int, shares []migrate.TableShare) {
	fmt.Fprintf(out, "workflow %s, keyspace %s: %d of %d logical shards move\n", w.Name, w.Keyspace, len(w.Moves), logicalCount)
	for _, r := range migrate.Runs(w.Moves) {
		fmt.Fprintf(out, "  %s\n", r)
	}
	if shares == nil {
		return
	}
	t := table(out)
	fmt.Fprintln(t, "TABLE\tFROM\tROWS (EST.)\tBYTES (EST.)")
	for _, s := range shares {
		rows := "never analyzed"
		if s.Rows >= 0 {
			rows = fmt.Sprint(s.Rows)
		}
		if s.Reference {
			rows += " (reference: copied whole)"
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\n", s.Table, s.Source, rows, bytesText(s.Bytes))
	}
	t.Flush()
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func (a *app) reshardListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the reshard workflows",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			var all []topology.Workflow
			if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				var err error
				all, err = s.Workflows(ctx)
				return err
			}); err != nil {
				return err
			}
			t := table(a.stdout)
			fmt.Fprintln(t, "NAME\tKEYSPACE\tPHASE\tMOVES\tCREATED")
			for _, w := range all {
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\n", w.Name, w.Keyspace, w.Phase, movesText(w.Moves), w.Created.Format(time.RFC3339))
			}
			return t.Flush()
		},
	}
}

func movesText(moves []topology.Move) string {
	var parts []string
	for _, r := range migrate.Runs(moves) {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ", ")
}
