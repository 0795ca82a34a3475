package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shardgate/shardgate/topology"
)

// keyspaceCommand is "shardctl keyspace": keyspaces and their shard maps.
func (a *app) keyspaceCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "keyspace",
		Short: "Create and list keyspaces",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	c.AddCommand(a.keyspaceCreateCommand(), a.keyspaceListCommand())
	return c
}

func (a *app) keyspaceCreateCommand() *cobra.Command {
	var (
		logical int
		shards  string
	)
	c := &cobra.Command{
		Use:   "create KEYSPACE --shards S0,S1,... [--logical-shards N]",
		Short: "Create a keyspace with its logical shards spread evenly over physical shards",
		Long: `Create a keyspace. Its logical shards (a power of two, fixed for the life
of the keyspace) are placed in equal contiguous blocks on the listed physical
shards, in the order given. An unsharded keyspace is one logical shard on one
physical shard: --logical-shards 1 --shards s0.`,
		Example: `  shardctl keyspace create app --shards s0,s1
  shardctl keyspace create meta --logical-shards 1 --shards s0`,
		Args: exactArgs("KEYSPACE"),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			list := splitList(shards)
			if len(list) == 0 {
				return usageErrorf("missing --shards")
			}
			if err := topology.ValidLogicalCount(logical); err != nil {
				return usageErrorf("--logical-shards: %v", err)
			}
			if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				return s.CreateKeyspace(ctx, name, logical, list)
			}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "created keyspace %s: %d logical shards on %s (shard map version 1)\n",
				name, logical, strings.Join(list, ", "))
			return nil
		},
	}
	c.Flags().IntVar(&logical, "logical-shards", 256, "number of logical shards, a power of two")
	c.Flags().StringVar(&shards, "shards", "", "comma-separated physical shards to place the logical shards on (required)")
	return c
}

func (a *app) keyspaceListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List keyspaces with their logical shard count, physical shards and shard map version",
		Long: `List keyspaces. SHARDED comes from the keyspace's vschema and is "-" until
one is applied; TABLES counts the vschema's tables.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			snap, err := a.load(c.Context())
			if err != nil {
				return err
			}
			w := table(a.stdout)
			fmt.Fprintln(w, "NAME\tSHARDED\tLOGICAL\tSHARDS\tVERSION\tTABLES")
			for _, name := range keyspaceNames(snap) {
				ks := snap.Keyspaces[name]
				sharded, tables := "-", "-"
				if v := ks.VSchema(); v != nil {
					sharded = "no"
					if v.Sharded {
						sharded = "yes"
					}
					tables = fmt.Sprint(len(v.Tables))
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d\t%s\n", name, sharded, ks.Map.LogicalCount,
					strings.Join(ks.Shards(), ","), ks.Map.Version, tables)
			}
			return w.Flush()
		},
	}
}

// keyspaceNames returns the snapshot's keyspace names in order.
func keyspaceNames(snap *topology.Snapshot) []string {
	return slices.Sorted(maps.Keys(snap.Keyspaces))
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
