package main

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shardgate/shardgate/topology"
)

// shardCommand is "shardctl shard": the physical shards (Postgres primaries).
func (a *app) shardCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "shard",
		Short: "Register and list physical shards (PostgreSQL primaries)",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	c.AddCommand(a.shardAddCommand(), a.shardListCommand())
	return c
}

func (a *app) shardAddCommand() *cobra.Command {
	var dsn string
	c := &cobra.Command{
		Use:   "add NAME --dsn DSN",
		Short: "Register a physical shard",
		Long: `Register a physical shard: a PostgreSQL primary whose database holds the
shard's tables. DSN is a libpq URL or key=value string. A password in it is
stored in etcd but never printed; pass --dsn - to read the DSN from stdin and
keep the password out of the shell history and the process list.`,
		Example: `  shardctl shard add s0 --dsn postgres://app@10.0.0.1:5432/app
  echo "$DSN" | shardctl shard add s1 --dsn -`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if dsn == "" {
				return usageErrorf("missing --dsn")
			}
			if dsn == "-" {
				line, err := bufio.NewReader(a.stdin).ReadString('\n')
				if line = strings.TrimSpace(line); line == "" {
					return fmt.Errorf("reading the DSN from stdin: got none (%v)", err)
				}
				dsn = line
			}
			sh := topology.Shard{Name: args[0], DSN: dsn}
			if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				return s.AddShard(ctx, sh)
			}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "added shard %s (%s)\n", sh.Name, sh.RedactedDSN())
			return nil
		},
	}
	c.Flags().StringVar(&dsn, "dsn", "", "connection string of the shard's primary (required; - reads it from stdin)")
	return c
}

func (a *app) shardListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the physical shards; passwords are redacted",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			snap, err := a.load(c.Context())
			if err != nil {
				return err
			}
			w := table(a.stdout)
			fmt.Fprintln(w, "NAME\tDSN")
			for _, name := range slices.Sorted(maps.Keys(snap.Shards)) {
				fmt.Fprintf(w, "%s\t%s\n", name, snap.Shards[name].RedactedDSN())
			}
			return w.Flush()
		},
	}
}
