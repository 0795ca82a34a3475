package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/shardgate/shardgate/topology"
)

// userCommand is "shardctl user": the gateway's logins. etcd keeps a SCRAM
// verifier for each, never a password.
func (a *app) userCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "user",
		Short: "Manage the users that log in to the gateways, and the keyspaces they may use",
		Long: `Manage the users that clients log in to the gateways as. etcd keeps a
SCRAM-SHA-256 verifier for each user, in the form Postgres keeps in
pg_authid, never the password. A user may connect to the keyspaces it was
granted (the database name of the connection). An admin user may also
connect to the database "shardgate", the gateways' admin console (SHOW
POOLS, SHOW CLIENTS, PAUSE, ...).

Passwords are never taken from a flag: shardctl asks for them twice on a
terminal, reads the first line of stdin when stdin is no terminal, or reads
the first line of --password-file.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	c.AddCommand(a.userAddCommand(), a.userPasswdCommand(), a.userListCommand(), a.userRemoveCommand(),
		a.userGrantCommand(), a.userRevokeCommand(), a.userImportCommand())
	return c
}

func (a *app) userAddCommand() *cobra.Command {
	var (
		keyspaces    []string
		backendRole  string
		passwordFile string
		admin        bool
	)
	c := &cobra.Command{
		Use:   "add NAME [--keyspace KS ...] [--backend-role ROLE] [--admin] [--password-file FILE]",
		Short: "Add a user; asks for its password",
		Long: `Add a user that clients log in as with SCRAM-SHA-256. NAME is case-sensitive,
like a Postgres role name. --keyspace grants a keyspace (repeat it for more).
--backend-role names the Postgres role the gateway uses on the shards for the
user's sessions; without it, the role of each shard's DSN. --admin lets the
user into the admin console (database "shardgate").`,
		Example: `  shardctl user add app_rw --keyspace app
  shardctl user add ops --admin
  echo "$PASSWORD" | shardctl user add reporting --keyspace app --backend-role app_ro
  shardctl user add batch --keyspace logs --password-file /run/secrets/batch`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			u := topology.User{Name: args[0], Keyspaces: keyspaces, BackendRole: backendRole, Admin: admin}
			if err := topology.ValidUserName("user", u.Name); err != nil {
				return err
			}
			if backendRole != "" {
				if err := topology.ValidUserName("backend role", backendRole); err != nil {
					return usageErrorf("--backend-role: %v", err)
				}
			}
			// Check what can be checked before asking for a password.
			snap, err := a.load(c.Context())
			if err != nil {
				return err
			}
			if snap.User(u.Name) != nil {
				return fmt.Errorf("user %s already exists (change its password with 'shardctl user passwd %s')", u.Name, u.Name)
			}
			for _, ks := range keyspaces {
				if snap.Keyspace(ks) == nil {
					return fmt.Errorf("keyspace %s does not exist", ks)
				}
			}
			if u.Verifier, err = a.newVerifier(c, u.Name, passwordFile); err != nil {
				return err
			}
			if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				return s.AddUser(ctx, u)
			}); err != nil {
				return err
			}
			if len(keyspaces) == 0 {
				fmt.Fprintf(a.stdout, "added user %s; it can use no keyspace yet (shardctl user grant %s --keyspace KS)\n", u.Name, u.Name)
			} else {
				fmt.Fprintf(a.stdout, "added user %s, granted %s\n", u.Name, strings.Join(slices.Compact(slices.Sorted(slices.Values(keyspaces))), ", "))
			}
			if admin {
				fmt.Fprintf(a.stdout, "granted the admin console to %s\n", u.Name)
			}
			return nil
		},
	}
	c.Flags().StringArrayVar(&keyspaces, "keyspace", nil, "grant this keyspace (repeatable)")
	c.Flags().StringVar(&backendRole, "backend-role", "", "Postgres role to use on the shards (default: the role of each shard's DSN)")
	c.Flags().BoolVar(&admin, "admin", false, "let the user into the admin console (database \"shardgate\")")
	c.Flags().StringVar(&passwordFile, "password-file", "", "read the password from the first line of this file")
	return c
}

func (a *app) userPasswdCommand() *cobra.Command {
	var passwordFile string
	c := &cobra.Command{
		Use:   "passwd NAME [--password-file FILE]",
		Short: "Change a user's password; asks for the new one",
		Args:  exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if err := topology.ValidUserName("user", name); err != nil {
				return err
			}
			snap, err := a.load(c.Context())
			if err != nil {
				return err
			}
			if snap.User(name) == nil {
				return fmt.Errorf("user %s does not exist", name)
			}
			v, err := a.newVerifier(c, name, passwordFile)
			if err != nil {
				return err
			}
			if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				return s.SetVerifier(ctx, name, v)
			}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "changed the password of user %s\n", name)
			return nil
		},
	}
	c.Flags().StringVar(&passwordFile, "password-file", "", "read the password from the first line of this file")
	return c
}

func (a *app) userListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the users, their keyspaces, backend roles and admin flags (never a verifier)",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			var users []topology.User
			if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				var err error
				users, err = s.Users(ctx)
				return err
			}); err != nil {
				return err
			}
			w := table(a.stdout)
			fmt.Fprintln(w, "NAME\tKEYSPACES\tBACKEND ROLE\tADMIN")
			for _, u := range users {
				admin := "-"
				if u.Admin {
					admin = "yes"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", u.Name, orDash(strings.Join(u.Keyspaces, ",")), orDash(u.BackendRole), admin)
			}
			return w.Flush()
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) userRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user; gateways refuse its new logins at once",
		Args:  exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
				return s.RemoveUser(ctx, args[0])
			}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed user %s\n", args[0])
			return nil
		},
	}
}

func (a *app) userGrantCommand() *cobra.Command {
	var (
		keyspaces []string
		admin     bool
	)
	c := &cobra.Command{
		Use:   "grant NAME {--keyspace KS [--keyspace KS ...] | --admin}",
		Short: "Let a user use a keyspace, or the admin console",
		Args:  exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if len(keyspaces) == 0 && !admin {
				return usageErrorf("missing --keyspace or --admin")
			}
			if admin {
				if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
					return s.SetAdmin(ctx, args[0], true)
				}); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "granted the admin console to %s\n", args[0])
			}
			for _, ks := range keyspaces {
				if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
					return s.Grant(ctx, args[0], ks)
				}); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "granted %s to %s\n", ks, args[0])
			}
			return nil
		},
	}
	c.Flags().StringArrayVar(&keyspaces, "keyspace", nil, "the keyspace to grant (repeatable)")
	c.Flags().BoolVar(&admin, "admin", false, "grant the admin console (database \"shardgate\")")
	return c
}

func (a *app) userRevokeCommand() *cobra.Command {
	var (
		keyspaces []string
		admin     bool
	)
	c := &cobra.Command{
		Use:   "revoke NAME {--keyspace KS [--keyspace KS ...] | --admin}",
		Short: "Take a keyspace or the admin console away from a user (its open sessions are not ended)",
		Args:  exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if len(keyspaces) == 0 && !admin {
				return usageErrorf("missing --keyspace or --admin")
			}
			if err := topology.ValidUserName("user", name); err != nil {
				return err
			}
			snap, err := a.load(c.Context())
			if err != nil {
				return err
			}
			u := snap.User(name)
			if u == nil {
				return fmt.Errorf("user %s does not exist", name)
			}
			switch {
			case admin && !u.Admin:
				fmt.Fprintf(a.stdout, "%s was not granted the admin console; nothing to revoke\n", name)
			case admin:
				if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
					return s.SetAdmin(ctx, name, false)
				}); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "revoked the admin console from %s\n", name)
			}
			for _, ks := range keyspaces {
				if !u.CanUse(ks) {
					fmt.Fprintf(a.stdout, "%s was not granted %s; nothing to revoke\n", name, ks)
					continue
				}
				if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
					return s.Revoke(ctx, name, ks)
				}); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "revoked %s from %s\n", ks, name)
			}
			return nil
		},
	}
	c.Flags().StringArrayVar(&keyspaces, "keyspace", nil, "the keyspace to revoke (repeatable)")
	c.Flags().BoolVar(&admin, "admin", false, "revoke the admin console")
	return c
}

func (a *app) userImportCommand() *cobra.Command {
	var (
		from  string
		roles []string
	)
	c := &cobra.Command{
		Use:   "import --from DSN [--role NAME ...]",
		Short: "Copy the SCRAM verifiers of a Postgres server's login roles into users",
		Long: `Read the login roles of an existing Postgres server (from pg_authid, so DSN
must name a superuser) and store each role's SCRAM-SHA-256 verifier as the
verifier of the user of the same name: a new user is added without
keyspaces, an existing one keeps its grants and gets the role's password.
The passwords themselves are never seen. A role with an md5 or plain-text
password is skipped with a warning; set its password again with
password_encryption = 'scram-sha-256' to import it. --role limits the import
to the named roles. --from - reads the DSN from stdin, keeping its password
out of the shell history and the process list.`,
		Example: `  shardctl user import --from postgres://postgres@10.0.0.1/postgres
  shardctl user import --from postgres://postgres@10.0.0.1/postgres --role app_rw --role reporting`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			if from == "" {
				return usageErrorf("missing --from")
			}
			if from == "-" {
				line, err := bufio.NewReader(a.stdin).ReadString('\n')
				if line = strings.TrimSpace(line); line == "" {
					return fmt.Errorf("reading the DSN from stdin: got none (%v)", err)
				}
				from = line
			}
			found, err := a.readRoles(c.Context(), from)
			if err != nil {
				return err
			}
			skipped := 0
			warn := func(format string, args ...any) {
				skipped++
				fmt.Fprintf(c.ErrOrStderr(), "shardctl: warning: %s\n", oneLine(fmt.Sprintf(format, args...)))
			}
			want := map[string]bool{}
			var missing []string
			for _, r := range roles {
				want[r] = true
				if !slices.ContainsFunc(found, func(f pgRole) bool { return f.name == r }) {
					missing = append(missing, r)
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("no login role %s in %s", strings.Join(missing, ", "), topology.RedactDSN(from))
			}
			var users []topology.User
			for _, r := range found {
				named := want[r.name]
				if len(want) > 0 && !named {
					continue
				}
				switch {
				case r.password == nil:
					// Roles that log in without a password (trust, peer,
					// certificates) are no candidates unless asked for.
					if named {
						warn("role %q has no password; skipped", r.name)
					}
				case !strings.HasPrefix(*r.password, "SCRAM-SHA-256$"):
					kind := "a plain-text"
					if strings.HasPrefix(*r.password, "md5") {
						kind = "an md5"
					}
					warn("role %q has %s password, not a SCRAM-SHA-256 verifier; skipped (set its password again with password_encryption = 'scram-sha-256')", r.name, kind)
				default:
					if err := topology.ValidUserName("user", r.name); err != nil {
						warn("role %q skipped: %v", r.name, err)
						continue
					}
					if _, err := topology.ParseVerifier(*r.password); err != nil {
						warn("role %q skipped: %v", r.name, err)
						continue
					}
					users = append(users, topology.User{Name: r.name, Verifier: *r.password})
				}
			}
			snap, err := a.load(c.Context())
			if err != nil {
				return err
			}
			for _, u := range users {
				exists := snap.User(u.Name) != nil
				if err := a.call(c.Context(), func(ctx context.Context, s *topology.Store) error {
					if !exists {
						err := s.AddUser(ctx, u)
						if !errors.Is(err, topology.ErrConflict) {
							return err
						}
						exists = true // added meanwhile
					}
					return s.SetVerifier(ctx, u.Name, u.Verifier)
				}); err != nil {
					return err
				}
				if exists {
					fmt.Fprintf(a.stdout, "imported %s: updated the verifier of the existing user\n", u.Name)
				} else {
					fmt.Fprintf(a.stdout, "imported %s: new user without keyspaces (shardctl user grant %s --keyspace KS)\n", u.Name, u.Name)
				}
			}
			fmt.Fprintf(a.stdout, "imported %d roles", len(users))
			if skipped > 0 {
				fmt.Fprintf(a.stdout, ", skipped %d (see the warnings)", skipped)
			}
			fmt.Fprintln(a.stdout)
			return nil
		},
	}
	c.Flags().StringVar(&from, "from", "", "connection string of the Postgres server to import from, as a superuser (required; - reads it from stdin)")
	c.Flags().StringArrayVar(&roles, "role", nil, "import only this role (repeatable)")
	return c
}

// pgRole is a login role read from pg_authid.
type pgRole struct {
	name     string
	password *string // nil: no password
}

// readRoles returns the login roles of the Postgres server at dsn, sorted
// by name. Connecting and reading are bounded by --timeout.
func (a *app) readRoles(ctx context.Context, dsn string) ([]pgRole, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		// pgconn names host, user and database, never the password.
		return nil, fmt.Errorf("connecting to Postgres: %w", err)
	}
	defer conn.Close(context.Background())
	res := conn.ExecParams(ctx, "select rolname, rolpassword from pg_authid where rolcanlogin order by rolname", nil, nil, nil, nil).Read()
	if res.Err != nil {
		var pgErr *pgconn.PgError
		if errors.As(res.Err, &pgErr) && pgErr.Code == "42501" {
			return nil, fmt.Errorf("reading pg_authid: %w (connect as a superuser)", res.Err)
		}
		return nil, fmt.Errorf("reading pg_authid: %w", res.Err)
	}
	roles := make([]pgRole, 0, len(res.Rows))
	for _, row := range res.Rows {
		r := pgRole{name: string(row[0])}
		if row[1] != nil {
			pw := string(row[1])
			r.password = &pw
		}
		roles = append(roles, r)
	}
	return roles, nil
}

// newVerifier gets the password for user name and returns its verifier. The
// password comes from --password-file if given, else from a prompt (twice)
// when stdin is a terminal, else from the first line of stdin. It never
// appears in an error.
func (a *app) newVerifier(c *cobra.Command, name, passwordFile string) (string, error) {
	var pw string
	var err error
	switch tty := terminal(a.stdin); {
	case passwordFile != "":
		pw, err = passwordFromFile(passwordFile)
	case tty != nil:
		pw, err = promptPassword(c.Context(), tty, c.ErrOrStderr(), name)
	default:
		pw, err = firstLine(bufio.NewReader(a.stdin))
		if errors.Is(err, errNoPassword) {
			err = errors.New("no password on stdin: give it on the first line, on a terminal, or with --password-file")
		} else if err != nil {
			err = fmt.Errorf("reading the password from stdin: %w", err)
		}
	}
	if err != nil {
		return "", err
	}
	return topology.NewVerifier(pw)
}

var errNoPassword = errors.New("empty password")

// firstLine reads one line without its line ending. An empty line, or
// nothing at all, is errNoPassword.
func firstLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errNoPassword
	}
	return line, nil
}

func passwordFromFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--password-file: %w", err)
	}
	defer f.Close()
	pw, err := firstLine(bufio.NewReader(f))
	if err != nil {
		return "", fmt.Errorf("--password-file %s: %w", path, err)
	}
	return pw, nil
}

// terminal returns r as a terminal device, or nil if it is none.
func terminal(r io.Reader) *os.File {
	f, ok := r.(*os.File)
	if !ok {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return f
}

// promptPassword asks for the password of user name twice on the terminal
// tty, with prompts on w. Cancelling ctx (Ctrl-C) abandons the prompt.
//
// Echo is switched off with stty(1), because golang.org/x/term is not among
// the module's dependencies; where stty fails the password is visible as it
// is typed, and the prompt says so.
func promptPassword(ctx context.Context, tty *os.File, w io.Writer, name string) (string, error) {
	echoOff := setEcho(tty, false)
	if echoOff {
		defer setEcho(tty, true)
	} else {
		fmt.Fprintln(w, "(cannot switch off the terminal's echo: the password will be visible)")
	}
	type answer struct {
		pw  string
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		// Left blocked on the terminal if ctx ends first; the process is
		// about to exit then.
		pw, err := askTwice(bufio.NewReader(tty), w, name, echoOff)
		ch <- answer{pw, err}
	}()
	select {
	case a := <-ch:
		return a.pw, a.err
	case <-ctx.Done():
		if echoOff {
			fmt.Fprintln(w)
		}
		return "", fmt.Errorf("interrupted: %w", ctx.Err())
	}
}

// askTwice prompts on w for the password of user name and for it again,
// reading each answer from r, and fails unless both are the same and not
// empty. newline says to end each prompt's line after the answer, which the
// terminal did not echo.
func askTwice(r *bufio.Reader, w io.Writer, name string, newline bool) (string, error) {
	ask := func(prompt string) (string, error) {
		fmt.Fprint(w, prompt)
		pw, err := firstLine(r)
		if newline {
			fmt.Fprintln(w)
		}
		return pw, err
	}
	pw, err := ask(fmt.Sprintf("Password for user %s: ", name))
	if err != nil {
		return "", err
	}
	again, err := ask("Enter it again: ")
	if err != nil && !errors.Is(err, errNoPassword) {
		return "", err
	}
	if again != pw {
		return "", errors.New("the passwords do not match")
	}
	return pw, nil
}

// setEcho switches the terminal's echo on or off and reports whether that
// worked.
func setEcho(tty *os.File, on bool) bool {
	arg := "-echo"
	if on {
		arg = "echo"
	}
	cmd := exec.Command("stty", arg)
	cmd.Stdin = tty
	return cmd.Run() == nil
}
