package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// vschemaCommand is "shardctl vschema": the keyspaces' tables and sharding
// columns.
func (a *app) vschemaCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "vschema",
		Short: "Apply and show vschemas (tables and their sharding columns)",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	c.AddCommand(a.vschemaApplyCommand(), a.vschemaShowCommand())
	return c
}

func (a *app) vschemaApplyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "apply FILE",
		Short: "Validate a vschema file and store it for each keyspace it names",
		Long: `Validate a vschema file (YAML or JSON; - reads stdin) and store the vschema
of each keyspace it names. The whole file is checked first, and every keyspace
it names must exist, so a file with a mistake stores nothing. A keyspace whose
stored vschema is already the same is left alone.`,
		Example: `  shardctl vschema apply vschema.yaml
  shardctl vschema show app | sed s/int4/int8/ | shardctl vschema apply -`,
		Args: exactArgs("FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			data, err := a.readInput(args[0])
			if err != nil {
				return err
			}
			f, err := vschema.Parse(data)
			if err != nil {
				return err
			}
			return a.applyVSchema(c.Context(), f)
		},
	}
}

// readInput reads a named file, or stdin for "-".
func (a *app) readInput(name string) ([]byte, error) {
	if name == "-" {
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		return b, nil
	}
	return os.ReadFile(name)
}

// applyVSchema stores every changed keyspace of f in one etcd transaction:
// all or nothing.
func (a *app) applyVSchema(ctx context.Context, f *vschema.File) error {
	snap, err := a.load(ctx)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(f.Keyspaces))
	for name := range f.Keyspaces {
		names = append(names, name)
	}
	slices.Sort(names)
	var changed []*vschema.Keyspace
	for _, name := range names {
		ks := f.Keyspaces[name]
		if cur := snap.Keyspace(name); cur != nil && cur.VSchema() != nil && bytes.Equal(cur.VSchema().JSON(), ks.JSON()) {
			fmt.Fprintf(a.stdout, "vschema of keyspace %s unchanged\n", name)
			continue
		}
		changed = append(changed, ks)
	}
	if len(changed) == 0 {
		return nil
	}
	err = a.call(ctx, func(ctx context.Context, s *topology.Store) error {
		return s.ApplyVSchemas(ctx, changed...)
	})
	if err != nil {
		return err
	}
	for _, ks := range changed {
		fmt.Fprintf(a.stdout, "applied vschema of keyspace %s (%s)\n", ks.Name, plural(len(ks.Tables), "table"))
	}
	return nil
}

func (a *app) vschemaShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show [KEYSPACE]",
		Short: "Print the stored vschema of a keyspace (or of all) in the form 'apply' reads",
		Long: `Print the stored vschema of KEYSPACE, or of every keyspace that has one, as
YAML in the format 'shardctl vschema apply' reads, with defaults filled in.`,
		Args: optionalArg,
		RunE: func(c *cobra.Command, args []string) error {
			snap, err := a.load(c.Context())
			if err != nil {
				return err
			}
			f := vschema.File{Keyspaces: map[string]*vschema.Keyspace{}}
			if len(args) == 1 {
				ks := snap.Keyspace(args[0])
				if ks == nil {
					return fmt.Errorf("keyspace %s does not exist", args[0])
				}
				if ks.VSchema() == nil {
					return fmt.Errorf("keyspace %s has no vschema yet; apply one with 'shardctl vschema apply'", args[0])
				}
				f.Keyspaces[args[0]] = ks.VSchema()
			} else {
				for name, ks := range snap.Keyspaces {
					if v := ks.VSchema(); v != nil {
						f.Keyspaces[name] = v
					}
				}
				if len(f.Keyspaces) == 0 {
					return fmt.Errorf("no keyspace of cluster %s has a vschema yet", a.cluster)
				}
			}
			out, err := yaml.Marshal(&f)
			if err != nil {
				return fmt.Errorf("encoding the vschema: %w", err)
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
}

// plural formats a count of things: "1 table", "4 tables".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
