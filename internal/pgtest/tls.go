package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/testcert"
)

// tlsDir is the directory inside a TLS cluster's data directory that holds
// its certificates and its pg_hba.conf.
const tlsDir = "pgtest-tls"

// tlsHBA admits TCP connections only over TLS and with a SCRAM password; the
// harness itself uses the unix socket, where the superuser needs none.
const tlsHBA = `# Written by pgtest for a TLS cluster: TCP only over TLS with SCRAM.
local   all          all                  trust
local   replication  all                  trust
hostssl all          all   127.0.0.1/32   scram-sha-256
hostssl replication  all   127.0.0.1/32   scram-sha-256
`

// writeTLS makes a throwaway CA and a server certificate it signs for
// 127.0.0.1, ::1 and localhost, and writes ca.crt, server.crt, server.key
// (mode 0600) and pg_hba.conf into dir, all owned by the server's user.
func (r *runner) writeTLS(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	ca, err := testcert.NewCA(dir, "ca")
	if err != nil {
		return fmt.Errorf("pgtest: making TLS certificates: %w", err)
	}
	if _, err := ca.Issue(dir, "server", "localhost", "127.0.0.1", "::1"); err != nil {
		return fmt.Errorf("pgtest: making TLS certificates: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pg_hba.conf"), []byte(tlsHBA), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	// postgres refuses a key that its group or others can read, and one
	// that is not its own.
	for _, name := range []string{"", "ca.crt", "server.crt", "server.key", "pg_hba.conf"} {
		if err := r.own(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	return nil
}

// tlsSettings are the server settings of a TLS cluster.
func (c *Cluster) tlsSettings() map[string]string {
	dir := filepath.Join(c.Dir, tlsDir)
	return map[string]string{
		"ssl":                 "on",
		"ssl_cert_file":       filepath.Join(dir, "server.crt"),
		"ssl_key_file":        filepath.Join(dir, "server.key"),
		"hba_file":            filepath.Join(dir, "pg_hba.conf"),
		"password_encryption": "scram-sha-256",
	}
}

// TLS reports whether the cluster was started with Options.TLS.
func (c *Cluster) TLS() bool { return c.tls }

// CAFile returns the path of the PEM file holding the CA certificate that
// signed the server's certificate (for sslrootcert), or "" unless the
// cluster was started with Options.TLS. The file is readable by the test
// process and replaced when the cluster is started again.
func (c *Cluster) CAFile() string {
	if !c.tls {
		return ""
	}
	return filepath.Join(c.Dir, tlsDir, "ca.crt")
}

// TLSDSN returns a keyword/value connection string for database db as user
// over TCP, verifying the server's certificate against CAFile
// (sslmode=verify-full). It holds no password: give one the way the code
// under test expects it. It is meant for clusters started with Options.TLS.
func (c *Cluster) TLSDSN(db, user string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=verify-full sslrootcert=%s",
		c.Host, c.Port, quoteValue(user), quoteValue(db), quoteValue(c.CAFile()))
}

// quoteValue quotes a keyword/value connection string value when needed.
func quoteValue(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n\r\f\v'\\") {
		return s
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// CreateRole creates a role that may log in with password, stored as a
// SCRAM-SHA-256 verifier. It connects as the superuser (over the unix socket
// for a TLS cluster). Neither the statement nor an error it returns quotes
// the password.
func (c *Cluster) CreateRole(ctx context.Context, name, password string) error {
	conn, err := pgconn.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: create role %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SET password_encryption = 'scram-sha-256'").ReadAll(); err != nil {
		return fmt.Errorf("pgtest: create role %s: %w", name, err)
	}
	// format() quotes both on the server, whatever they contain.
	res := conn.ExecParams(ctx, "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
		[][]byte{[]byte(name), []byte(password)}, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("pgtest: create role %s: %w", name, res.Err)
	}
	if _, err := conn.Exec(ctx, string(res.Rows[0][0])).ReadAll(); err != nil {
		return fmt.Errorf("pgtest: create role %s: %w", name, err)
	}
	return nil
}
