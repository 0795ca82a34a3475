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
	var (
		dsn, passwordFile, passwordEnv string
		allowPassword                  bool
		weight                         int
	)
	c := &cobra.Command{
		Use:   "add NAME --dsn DSN [--password-file FILE | --password-env VAR] [--weight N]",
		Short: "Register a physical shard",
		Long: `Register a physical shard: a PostgreSQL primary whose database holds the
shard's tables. DSN is a libpq URL or key=value string; TLS settings in it
(sslmode=verify-full sslrootcert=/path/ca.pem) are used as they are.

The DSN is stored in etcd, so it should hold no password. Give the password
by reference instead, resolved by each gateway on its own host when it opens
the shard's connection pool:
  --password-file FILE  an absolute path; the file's first line is the password
  --password-env VAR    an environment variable of the gateway process
or leave both out and let pgx find it on the gateway's host: PGPASSWORD, or a
pgpass file named by passfile= in the DSN, by PGPASSFILE, or ~/.pgpass.
A DSN that holds a password (password=, sslpassword=, or user:password@ in a
URL) is refused unless --allow-password-in-dsn is given; it is never
printed. Pass --dsn - to read the DSN from stdin and keep it out of the
shell history and the process list.`,
		Example: `  shardctl shard add s0 --dsn 'host=10.0.0.1 user=app dbname=app sslmode=verify-full sslrootcert=/etc/shardgate/ca.pem' \
      --password-file /run/secrets/s0-password
  shardctl shard add s1 --dsn postgres://app@10.0.0.2:5432/app --password-env SHARD_S1_PASSWORD
  echo "$DSN" | shardctl shard add s2 --dsn - --allow-password-in-dsn`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if dsn == "" {
				return usageErrorf("missing --dsn")
			}
			if passwordFile != "" && passwordEnv != "" {
				return usageErrorf("--password-file and --password-env exclude each other")
			}
			if dsn == "-" {
				line, err := bufio.NewReader(a.stdin).ReadString('\n')
				if line = strings.TrimSpace(line); line == "" {
					return fmt.Errorf("reading the DSN from stdin: got none (%v)", err)
				}
				dsn = line
			}
			if weight < 1 || weight > topology.MaxShardWeight {
				return usageErrorf("--weight %d must be between 1 and %d", weight, topology.MaxShardWeight)
			}
			sh := topology.Shard{Name: args[0], DSN: dsn, PasswordFile: passwordFile, PasswordEnv: passwordEnv, Weight: weight}
			if err := sh.CheckPassword(); err != nil {
				return usageErrorf("shard %s: %v", sh.Name, err)
			}
			if topology.DSNHasPassword(dsn) && !allowPassword {
				return fmt.Errorf("shard %s: the DSN holds a password, which would be stored in etcd in clear text for anyone "+
					"who can read etcd: give it by reference with --password-file or --password-env (read by each gateway on its host) "+
					"or in a pgpass file (passfile= in the DSN, or PGPASSFILE), or pass --allow-password-in-dsn to store it anyway", sh.Name)
			}
			if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				return s.AddShard(ctx, sh)
			}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "added shard %s (%s; password: %s)\n", sh.Name, sh.RedactedDSN(), passwordSource(sh))
			return nil
		},
	}
	c.Flags().StringVar(&dsn, "dsn", "", "connection string of the shard's primary (required; - reads it from stdin)")
	c.Flags().StringVar(&passwordFile, "password-file", "", "absolute path, on each gateway's host, of a file whose first line is the password")
	c.Flags().StringVar(&passwordEnv, "password-env", "", "environment variable of each gateway that holds the password")
	c.Flags().BoolVar(&allowPassword, "allow-password-in-dsn", false, "store a DSN that holds a password in etcd")
	c.Flags().IntVar(&weight, "weight", 1, "the shard's share of logical shards against the others' when 'shardctl reshard create --to' spreads a keyspace")
	return c
}

// passwordSource says where a shard's password comes from, never what it is.
func passwordSource(sh topology.Shard) string {
	switch src := sh.PasswordSource(); src {
	case "":
		return "-"
	case "dsn":
		return "in DSN"
	default:
		return src
	}
}

func (a *app) shardListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the physical shards and where their passwords come from; passwords are never shown",
		Long: `List the physical shards. PASSWORD says where a shard's password comes from:
file:PATH or env:VAR (resolved by each gateway), "in DSN" (stored in etcd,
shown redacted), or - (none named: PGPASSWORD or a pgpass file on the
gateway's host, or no password).`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			snap, err := a.load(c.Context())
			if err != nil {
				return err
			}
			w := table(a.stdout)
			fmt.Fprintln(w, "NAME\tDSN\tPASSWORD\tWEIGHT")
			for _, name := range slices.Sorted(maps.Keys(snap.Shards)) {
				sh := snap.Shards[name]
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", name, sh.RedactedDSN(), passwordSource(*sh), sh.EffectiveWeight())
			}
			return w.Flush()
		},
	}
}
