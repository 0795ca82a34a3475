// Command shardctl is the operator CLI of shardgate: it registers physical
// shards, creates keyspaces, applies and shows vschemas, shows and changes
// the placement of logical shards, and plans reshard workflows. It talks to
// the etcd cluster that holds the topology.
//
// Every failure prints exactly one line, "shardctl: <message>", on stderr and
// exits with status 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/grpclog"

	"github.com/shardgate/shardgate/topology"
)

func main() {
	// gRPC logs connection trouble to the process's stderr on its own; the
	// one error line shardctl prints says all an operator needs.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one shardctl command line (args without the program name) and
// returns the process exit status. It is main without the process: tests call
// it in-process. Cancelling ctx abandons the etcd call in flight.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	defer a.close()
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	msg := err.Error()
	if ue := (*usageError)(nil); errors.As(err, &ue) {
		msg += fmt.Sprintf(" (see '%s --help')", cmd.CommandPath())
	}
	fmt.Fprintf(stderr, "shardctl: %s\n", oneLine(msg))
	return 1
}

// rootCommand wires the command tree. The global flags land in a.
func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "shardctl",
		Short: "Operate a shardgate cluster: shards, keyspaces, vschemas and the shard map",
		Long: `shardctl changes and shows the topology of a shardgate cluster, which lives
in etcd under /shardgate/<cluster>/. Gateways watch it and route by it.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		Args:              cobra.ArbitraryArgs,
		RunE:              groupRunE,
		PersistentPreRunE: func(*cobra.Command, []string) error { return a.checkGlobalFlags() },
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })

	pf := root.PersistentFlags()
	pf.StringVar(&a.etcd, "etcd", envOr("SHARDGATE_ETCD", "127.0.0.1:2379"),
		"comma-separated etcd endpoints (env SHARDGATE_ETCD)")
	pf.StringVar(&a.cluster, "cluster", envOr("SHARDGATE_CLUSTER", "local"),
		"cluster name; the topology lives under /shardgate/<cluster>/ in etcd (env SHARDGATE_CLUSTER)")
	pf.DurationVar(&a.timeout, "timeout", 5*time.Second,
		"time limit for connecting to etcd and for each etcd request")
	pf.StringVar(&a.etcdCA, "etcd-ca", os.Getenv("SHARDGATE_ETCD_CA"),
		"CA file (PEM) to verify etcd's certificate; turns on TLS to etcd (env SHARDGATE_ETCD_CA)")
	pf.StringVar(&a.etcdCert, "etcd-cert", os.Getenv("SHARDGATE_ETCD_CERT"),
		"client certificate file (PEM) for etcd; turns on TLS to etcd (env SHARDGATE_ETCD_CERT)")
	pf.StringVar(&a.etcdKey, "etcd-key", os.Getenv("SHARDGATE_ETCD_KEY"),
		"private key file (PEM) of --etcd-cert (env SHARDGATE_ETCD_KEY)")
	pf.StringVar(&a.etcdUsername, "etcd-username", os.Getenv("SHARDGATE_ETCD_USERNAME"),
		"etcd user name, for etcd authentication (env SHARDGATE_ETCD_USERNAME)")
	pf.StringVar(&a.etcdPasswordFile, "etcd-password-file", os.Getenv("SHARDGATE_ETCD_PASSWORD_FILE"),
		"file whose first line is the password of --etcd-username (env SHARDGATE_ETCD_PASSWORD_FILE)")

	root.AddCommand(a.shardCommand(), a.keyspaceCommand(), a.vschemaCommand(), a.topologyCommand(), a.userCommand(), a.reshardCommand())
	return root
}

func (a *app) checkGlobalFlags() error {
	if a.timeout <= 0 {
		return usageErrorf("--timeout must be positive, not %s", a.timeout)
	}
	if err := topology.ValidCluster(a.cluster); err != nil {
		return usageErrorf("--cluster: %v", err)
	}
	if len(a.endpoints()) == 0 {
		return usageErrorf("--etcd names no endpoints")
	}
	return a.checkEtcdSecurityFlags()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// usageError is a mistake in the command line itself. It is reported with a
// pointer to the command's --help.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// groupRunE runs a command that only groups subcommands: reaching it means
// the subcommand is missing or unknown. (Cobra would print the help and exit 0
// for the first and, below the root, even for the second.)
func groupRunE(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		var names []string
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		return usageErrorf("missing command (one of: %s)", strings.Join(names, ", "))
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's own default
	}
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return &usageError{errors.New(msg)}
}

// exactArgs accepts exactly the named positional arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return usageErrorf("missing %s", strings.Join(names[len(args):], " "))
		}
		if len(args) > len(names) {
			return usageErrorf("unexpected argument %q", args[len(names)])
		}
		return nil
	}
}

// optionalArg accepts at most one positional argument.
func optionalArg(c *cobra.Command, args []string) error {
	if len(args) > 1 {
		return usageErrorf("unexpected argument %q", args[1])
	}
	return nil
}

// oneLine folds a message that spans lines (a gRPC or YAML error may) into
// one, so stderr always carries exactly one line per failure.
func oneLine(msg string) string {
	lines := strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}
