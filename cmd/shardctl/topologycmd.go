package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/shardgate/shardgate/migrate"
	"github.com/shardgate/shardgate/topology"
)

// topologyCommand is "shardctl topology": where each keyspace's logical
// shards live.
func (a *app) topologyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "topology",
		Short: "Show and change the placement of logical shards on physical shards",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	c.AddCommand(a.topologyShowCommand(), a.topologyMoveCommand())
	return c
}

func (a *app) topologyShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show [KEYSPACE]",
		Short: "Show the shard map of a keyspace (or of all)",
		Long: `Show the shard map of KEYSPACE, or of every keyspace: its version and
logical shard count, the etcd revision it was read at, and one row per run of
consecutive logical shards on the same physical shard with the range of
keyspace ids (signed 64-bit hashes, both ends included) those rows hold.`,
		Args: optionalArg,
		RunE: func(c *cobra.Command, args []string) error {
			snap, err := a.load(c.Context())
			if err != nil {
				return err
			}
			names := keyspaceNames(snap)
			if len(args) == 1 {
				if snap.Keyspace(args[0]) == nil {
					return fmt.Errorf("keyspace %s does not exist", args[0])
				}
				names = args
			}
			if len(names) == 0 {
				fmt.Fprintf(a.stdout, "cluster %s has no keyspaces\n", a.cluster)
				return nil
			}
			for i, name := range names {
				if i > 0 {
					fmt.Fprintln(a.stdout)
				}
				if err := printShardMap(a.stdout, snap, name); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// printShardMap writes the shard map of keyspace name as a header line and a
// table of runs.
func printShardMap(w io.Writer, snap *topology.Snapshot, name string) error {
	m := snap.Keyspace(name).Map
	fmt.Fprintf(w, "keyspace %s: shard map version %d, %d logical shards, etcd revision %d\n",
		name, m.Version, m.LogicalCount, snap.Revision)
	tw := table(w)
	fmt.Fprintln(tw, "LOGICAL\tHASH RANGE\tSHARD")
	for first := 0; first < m.LogicalCount; {
		last := first
		for last+1 < m.LogicalCount && m.Placement[last+1] == m.Placement[first] {
			last++
		}
		lo, _ := m.Range(first)
		_, hi := m.Range(last)
		fmt.Fprintf(tw, "%s\t[%d, %d]\t%s\n", logicalRange(first, last), lo, hi, m.Placement[first])
		first = last + 1
	}
	return tw.Flush()
}

// logicalRange formats logical shards first..last the way --logical takes them.
func logicalRange(first, last int) string {
	if first == last {
		return strconv.Itoa(first)
	}
	return fmt.Sprintf("%d-%d", first, last)
}

func (a *app) topologyMoveCommand() *cobra.Command {
	var logical, to string
	c := &cobra.Command{
		Use:   "move KEYSPACE --logical N|N-M --to SHARD",
		Short: "Route logical shards to another physical shard (routing only: no rows move)",
		Long: `Place logical shards N..M (inclusive) of KEYSPACE on physical shard SHARD
and print the new shard map version. Gateways route by the new placement as
soon as they see it.

This changes routing only. It does NOT move any rows: rows of the moved logical
shards stay where they are, and queries stop finding them until they are
copied. Use it on empty keyspaces, or to repair a placement; moving data
online is the job of the reshard workflow.`,
		Example: `  shardctl topology move app --logical 0-63 --to s2
  shardctl topology move app --logical 7 --to s1`,
		Args: exactArgs("KEYSPACE"),
		RunE: func(c *cobra.Command, args []string) error {
			if logical == "" {
				return usageErrorf("missing --logical")
			}
			if to == "" {
				return usageErrorf("missing --to")
			}
			first, last, err := parseLogicalRange(logical)
			if err != nil {
				return &usageError{err}
			}
			var version int64
			err = a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				var err error
				version, err = s.MoveLogicalShards(ctx, args[0], first, last, to)
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "keyspace %s: logical shards %s now routed to %s; shard map version %d (no rows were moved)\n",
				args[0], logicalRange(first, last), to, version)
			return nil
		},
	}
	c.Flags().StringVar(&logical, "logical", "", "logical shard N or inclusive range N-M to move (required)")
	c.Flags().StringVar(&to, "to", "", "physical shard to route them to (required)")
	return c
}

// parseLogicalRange parses "N" or "N-M" (decimal, N <= M). Whether the shards
// exist in the keyspace is the Store's to check.
func parseLogicalRange(s string) (first, last int, err error) {
	if first, last, err = migrate.ParseLogicalRange(s); err != nil {
		return 0, 0, fmt.Errorf("--logical %w", err)
	}
	return first, last, nil
}
