package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/topology"
)

// poolPassword is the password of role app on the TLS shard. Its text must
// appear in no error and no log line.
const poolPassword = "Tr0ub4dor&3-pool-secret"

// tlsShard is a shard that accepts only TLS with a SCRAM password, and role
// app with poolPassword.
type tlsShard struct {
	*pgtest.Cluster
	dir string // files of the test: password files, a wrong CA
}

func startTLSShard(t *testing.T) *tlsShard {
	t.Helper()
	c, err := pgtest.StartCluster(t.Context(), pgtest.Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping postgres: %v", err)
		}
	})
	if err := c.CreateRole(t.Context(), "app", poolPassword); err != nil {
		t.Fatal(err)
	}
	return &tlsShard{Cluster: c, dir: t.TempDir()}
}

// file writes content to a new file of mode 0600 and returns its path.
func (s *tlsShard) file(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// observedPools returns Pools whose every log entry is recorded.
func observedPools(t *testing.T) (*Pools, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := DefaultPoolConfig
	cfg.AcquireTimeout = 10 * time.Second
	p := NewPools(cfg, zap.New(core))
	t.Cleanup(p.Close)
	return p, logs
}

// checkTLS borrows a connection to sh, checks that it runs over TLS, and
// pings the shard.
func checkTLS(t *testing.T, p *Pools, sh *topology.Shard) {
	t.Helper()
	b, err := p.acquire(t.Context(), sh)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	var ssl bool
	var user string
	err = b.conn.QueryRow(t.Context(), "select ssl, current_user from pg_stat_ssl where pid = pg_backend_pid()").Scan(&ssl, &user)
	b.release()
	if err != nil {
		t.Fatalf("pg_stat_ssl: %v", err)
	}
	if !ssl || user != "app" {
		t.Errorf("connected as %s with ssl=%v, want app over TLS", user, ssl)
	}
	if st := p.Check(t.Context(), &topology.Snapshot{Shards: map[string]*topology.Shard{sh.Name: sh}}); !st[0].Up {
		t.Errorf("Check: %+v", st)
	}
}

// failTLS expects acquire and Check to fail with a ShardUnreachableError
// saying want, and returns the errors' texts.
func failTLS(t *testing.T, p *Pools, sh *topology.Shard, want string) []string {
	t.Helper()
	var texts []string
	b, err := p.acquire(t.Context(), sh)
	if err == nil {
		b.release()
		t.Fatalf("acquire succeeded, want an error saying %q", want)
	}
	var ue *ShardUnreachableError
	if !errors.As(err, &ue) || ue.Shard != sh.Name {
		t.Errorf("acquire: %T %v, want a ShardUnreachableError for %s", err, err, sh.Name)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("acquire: %v, want it to say %q", err, want)
	}
	t.Logf("acquire: %v", err)
	texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	st := p.Check(t.Context(), &topology.Snapshot{Shards: map[string]*topology.Shard{sh.Name: sh}})
	if st[0].Up {
		t.Fatal("Check found the shard up")
	}
	texts = append(texts, st[0].Error)
	// What a client would be told.
	texts = append(texts, errorResponse(err, "", 0, zap.NewNop()).Message)
	return texts
}

// noSecret fails the test if any text or log entry holds a secret.
func noSecret(t *testing.T, logs *observer.ObservedLogs, texts []string, secrets ...string) {
	t.Helper()
	for _, e := range logs.All() {
		texts = append(texts, e.Message+" "+fmt.Sprint(e.ContextMap()))
	}
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%q leaks the password %q", text, s)
			}
		}
	}
}

// TestPoolTLSPassword connects to a shard that accepts only hostssl +
// scram-sha-256, verifying its certificate, with the password given every
// way a shard can give it.
func TestPoolTLSPassword(t *testing.T) {
	s := startTLSShard(t)
	dsn := s.TLSDSN("postgres", "app")
	pgpass := fmt.Sprintf("127.0.0.1:%d:postgres:app:%s\n", s.Port, poolPassword)

	t.Run("password_file", func(t *testing.T) {
		p, logs := observedPools(t)
		sh := &topology.Shard{Name: "s0", DSN: dsn, PasswordFile: s.file(t, "pw", poolPassword+"\n")}
		checkTLS(t, p, sh)
		noSecret(t, logs, nil, poolPassword)
		if e := logs.FilterMessage("shard pool created").All(); len(e) != 1 || e[0].ContextMap()["password_source"] != "file:"+sh.PasswordFile {
			t.Errorf("pool creation logged %v", e)
		}
	})
	t.Run("password_file_crlf_and_more_lines", func(t *testing.T) {
		p, _ := observedPools(t)
		checkTLS(t, p, &topology.Shard{Name: "s0", DSN: dsn, PasswordFile: s.file(t, "pw-crlf", poolPassword+"\r\nnot the password\n")})
	})
	t.Run("password_env", func(t *testing.T) {
		t.Setenv("SHARDGATE_TEST_S0_PASSWORD", poolPassword)
		p, logs := observedPools(t)
		checkTLS(t, p, &topology.Shard{Name: "s0", DSN: dsn, PasswordEnv: "SHARDGATE_TEST_S0_PASSWORD"})
		noSecret(t, logs, nil, poolPassword)
	})
	// pgx reads a pgpass file named by the DSN's passfile= or by PGPASSFILE.
	t.Run("passfile_in_dsn", func(t *testing.T) {
		p, _ := observedPools(t)
		checkTLS(t, p, &topology.Shard{Name: "s0", DSN: dsn + " passfile=" + s.file(t, "pgpass", pgpass)})
	})
	t.Run("PGPASSFILE", func(t *testing.T) {
		t.Setenv("PGPASSFILE", s.file(t, "pgpass-env", pgpass))
		p, _ := observedPools(t)
		checkTLS(t, p, &topology.Shard{Name: "s0", DSN: dsn})
	})
	// A password in the DSN still works (shardctl refuses it unless told).
	t.Run("password_in_dsn", func(t *testing.T) {
		p, _ := observedPools(t)
		u := fmt.Sprintf("postgres://app:%s@127.0.0.1:%d/postgres?sslmode=verify-full&sslrootcert=%s",
			strings.ReplaceAll(poolPassword, "&", "%26"), s.Port, s.CAFile())
		checkTLS(t, p, &topology.Shard{Name: "s0", DSN: u})
	})
	// The file beats the environment's PGPASSWORD, as a reference is the
	// shard's own word.
	t.Run("password_file_beats_PGPASSWORD", func(t *testing.T) {
		t.Setenv("PGPASSWORD", "not-"+poolPassword)
		p, _ := observedPools(t)
		checkTLS(t, p, &topology.Shard{Name: "s0", DSN: dsn, PasswordFile: s.file(t, "pw2", poolPassword)})
	})
	// A changed reference makes a new pool, which reads the password anew.
	t.Run("reference_changed", func(t *testing.T) {
		p, logs := observedPools(t)
		wrong := &topology.Shard{Name: "s0", DSN: dsn, PasswordFile: s.file(t, "pw-wrong", "wrong-password\n")}
		texts := failTLS(t, p, wrong, "password authentication failed")
		right := &topology.Shard{Name: "s0", DSN: dsn, PasswordFile: s.file(t, "pw-right", poolPassword)}
		checkTLS(t, p, right)
		noSecret(t, logs, texts, poolPassword, "wrong-password")
	})
}

// TestPoolTLSConfigKept: pgxpool keeps the TLS configuration pgx made of
// the DSN, and verify-full leaves no plain-text fallback.
func TestPoolTLSConfigKept(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, selfSignedCA(t), 0o644); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(poolPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := observedPools(t)
	cfg, err := p.poolConfig(&topology.Shard{Name: "s0", DSN: "host=db.internal port=5432 user=app dbname=app sslmode=verify-full sslrootcert=" + ca, PasswordFile: pw})
	if err != nil {
		t.Fatal(err)
	}
	cc := cfg.ConnConfig
	if cc.TLSConfig == nil || cc.TLSConfig.RootCAs == nil || cc.TLSConfig.ServerName != "db.internal" || cc.TLSConfig.InsecureSkipVerify && cc.TLSConfig.VerifyPeerCertificate == nil {
		t.Errorf("TLS config lost or weakened: %+v", cc.TLSConfig)
	}
	if len(cc.Fallbacks) != 0 {
		t.Errorf("verify-full has %d fallbacks, want none", len(cc.Fallbacks))
	}
	if cc.Password != poolPassword {
		t.Error("the password file's password is not in the config")
	}
}

// TestPoolTLSRefused: a wrong CA, plain text, a wrong password and an
// unreachable host fail to connect, and no error or log line holds the
// password, wherever it came from.
func TestPoolTLSRefused(t *testing.T) {
	s := startTLSShard(t)
	wrongCA := s.file(t, "wrong-ca.pem", string(selfSignedCA(t)))
	pwFile := s.file(t, "pw", poolPassword+"\n")
	t.Setenv("SHARDGATE_TEST_S0_PASSWORD", poolPassword)
	closed := closedPort(t)
	port := strconv.Itoa(s.Port)
	urlPassword := strings.ReplaceAll(poolPassword, "&", "%26")

	for _, tc := range []struct {
		name string
		sh   topology.Shard
		want string
	}{
		{"wrong_ca_file", topology.Shard{DSN: strings.Replace(s.TLSDSN("postgres", "app"), s.CAFile(), wrongCA, 1), PasswordFile: pwFile},
			"certificate signed by unknown authority"},
		{"wrong_ca_env", topology.Shard{DSN: strings.Replace(s.TLSDSN("postgres", "app"), s.CAFile(), wrongCA, 1), PasswordEnv: "SHARDGATE_TEST_S0_PASSWORD"},
			"certificate signed by unknown authority"},
		{"wrong_ca_password_in_dsn", topology.Shard{DSN: "postgres://app:" + urlPassword + "@127.0.0.1:" + port + "/postgres?sslmode=verify-full&sslrootcert=" + wrongCA},
			"certificate signed by unknown authority"},
		{"sslmode_disable", topology.Shard{DSN: "host=127.0.0.1 port=" + port + " user=app dbname=postgres sslmode=disable", PasswordFile: pwFile},
			"no pg_hba.conf entry"},
		{"sslmode_disable_password_in_dsn", topology.Shard{DSN: "host=127.0.0.1 port=" + port + " user=app password='" + poolPassword + "' dbname=postgres sslmode=disable"},
			"no pg_hba.conf entry"},
		{"wrong_user", topology.Shard{DSN: s.TLSDSN("postgres", "nobody"), PasswordFile: pwFile},
			"password authentication failed"},
		{"unreachable", topology.Shard{DSN: "host=127.0.0.1 port=" + closed + " user=app dbname=postgres connect_timeout=2", PasswordFile: pwFile},
			"connect"},
		{"unreachable_password_in_dsn", topology.Shard{DSN: "postgres://app:" + urlPassword + "@127.0.0.1:" + closed + "/postgres?connect_timeout=2"},
			"connect"},
		{"unresolvable_password_in_dsn", topology.Shard{DSN: "postgres://app:" + urlPassword + "@no-such-host.invalid/postgres?connect_timeout=2"},
			"no-such-host.invalid"},
		{"missing_file", topology.Shard{DSN: s.TLSDSN("postgres", "app"), PasswordFile: filepath.Join(s.dir, "no-such-file")},
			"reading password_file: open " + filepath.Join(s.dir, "no-such-file") + ": no such file"},
		{"empty_file", topology.Shard{DSN: s.TLSDSN("postgres", "app"), PasswordFile: s.file(t, "empty", "\n"+poolPassword)},
			"password_file " + filepath.Join(s.dir, "empty") + ": the first line (the password) is empty"},
		{"missing_env", topology.Shard{DSN: s.TLSDSN("postgres", "app"), PasswordEnv: "SHARDGATE_TEST_NO_SUCH_VAR"},
			"password_env SHARDGATE_TEST_NO_SUCH_VAR is not set"},
		{"file_and_password_in_dsn", topology.Shard{DSN: s.TLSDSN("postgres", "app") + " password='" + poolPassword + "'", PasswordFile: pwFile},
			"its DSN holds a password and password_file " + pwFile + " names another"},
		{"file_and_env", topology.Shard{DSN: s.TLSDSN("postgres", "app"), PasswordFile: pwFile, PasswordEnv: "SHARDGATE_TEST_S0_PASSWORD"},
			"password_file and password_env are both set"},
		{"missing_sslrootcert", topology.Shard{DSN: strings.Replace(s.TLSDSN("postgres", "app"), s.CAFile(), filepath.Join(s.dir, "no-ca.pem"), 1), PasswordFile: pwFile},
			"invalid DSN: open " + filepath.Join(s.dir, "no-ca.pem") + ": no such file"},
		// An unquoted space ends the password early; pgx's parse error
		// would quote the rest as a keyword it cannot read.
		{"invalid_dsn", topology.Shard{DSN: "host=127.0.0.1 password=x " + poolPassword + " port=" + port},
			"invalid DSN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, logs := observedPools(t)
			sh := tc.sh
			sh.Name = "s0"
			texts := failTLS(t, p, &sh, tc.want)
			noSecret(t, logs, texts, poolPassword, urlPassword)
		})
	}
}

// TestPoolPasswordFileModeWarning: a password file others may read works,
// with a warning that names the file.
func TestPoolPasswordFileModeWarning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, []byte(poolPassword), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	p, logs := observedPools(t)
	if _, err := p.poolConfig(&topology.Shard{Name: "s0", DSN: "host=127.0.0.1 user=app", PasswordFile: path}); err != nil {
		t.Fatal(err)
	}
	w := logs.FilterLevelExact(zapcore.WarnLevel).All()
	if len(w) != 1 || w[0].ContextMap()["file"] != path {
		t.Errorf("warnings: %v, want one naming %s", w, path)
	}
	noSecret(t, logs, nil, poolPassword)
}

// selfSignedCA returns a PEM CA certificate that signed nothing a test
// server uses.
func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "not the shard's CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// closedPort returns a loopback port nothing listens on a moment ago.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	return port
}
