package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shardgate/shardgate/internal/testcert"
	"github.com/shardgate/shardgate/proxy"
)

func TestReloadChanges(t *testing.T) {
	base := defaultConfig()
	base.TLSCert, base.TLSKey = "a.crt", "a.key"
	cases := []struct {
		name          string
		edit          func(c *config)
		live, restart string
	}{
		{"nothing", func(*config) {}, "", ""},
		{"limits, pool and log level", func(c *config) {
			c.MaxClientConns, c.Pool.MaxConns, c.Pool.AcquireTimeout, c.LogLevel = 1, 2, time.Second, "debug"
		}, "log_level,max_client_conns,pool_max_conns,pool_acquire_timeout", ""},
		{"listen, etcd, admin token", func(c *config) {
			c.Listen, c.Etcd, c.AdminToken = "127.0.0.1:1", []string{"etcd:2379"}, "t"
		}, "", "listen,etcd,admin_token"},
		{"other certificate files", func(c *config) { c.TLSCert, c.TLSKey = "b.crt", "b.key" }, "tls_cert,tls_key", ""},
		{"TLS turned off", func(c *config) { c.TLSCert, c.TLSKey = "", "" }, "", "tls_cert,tls_key"},
		{"admin TLS turned on", func(c *config) { c.AdminTLSCert, c.AdminTLSKey = "x.crt", "x.key" }, "", "admin_tls_cert,admin_tls_key"},
	}
	names := func(ss []setting) string {
		var out []string
		for _, s := range ss {
			out = append(out, s.name)
		}
		return strings.Join(out, ",")
	}
	for _, c := range cases {
		next := base
		c.edit(&next)
		live, restart := changes(base, next)
		if names(live) != c.live || names(restart) != c.restart {
			t.Errorf("%s: live %q, restart %q; want %q, %q", c.name, names(live), names(restart), c.live, c.restart)
		}
	}

	// The lists name real settings.
	known := map[string]bool{}
	for _, s := range settings() {
		known[s.name] = true
	}
	for name := range liveSettings {
		if !known[name] {
			t.Errorf("liveSettings names %q, which is no setting", name)
		}
	}
	for name := range secretSettings {
		if !known[name] {
			t.Errorf("secretSettings names %q, which is no setting", name)
		}
	}
}

// TestReloadApply runs reloads against a server and pools in this process:
// what is live applies, what needs a restart is reported and kept, and a
// configuration that fails changes nothing.
func TestReloadApply(t *testing.T) {
	dir := t.TempDir()
	ca, err := testcert.NewCA(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	certA, err := ca.Issue(dir, "a", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	certB, err := ca.Issue(dir, "b", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	cfg.TLSCert, cfg.TLSKey, cfg.AdminToken = certA.CertFile, certA.KeyFile, "old-secret"
	sec, err := loadSecurity(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	served := sec.clientCerts.serverConfig()
	servedSerial := func() string {
		t.Helper()
		c, err := served.GetCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.SerialNumber.String()
	}
	pools := proxy.NewPools(cfg.Pool, zap.NewNop())
	defer pools.Close()
	core, logs := observer.New(zapcore.InfoLevel)
	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	next, loadErr := cfg, error(nil)
	rl := &reloader{
		load: func() (config, error) { return next, loadErr },
		log:  zap.New(core), level: level, srv: proxy.NewServer(proxy.Config{Log: zap.NewNop()}), pools: pools, sec: sec, cur: cfg,
	}
	setting := func(name string) string {
		for _, kv := range rl.Settings() {
			if kv[0] == name {
				return kv[1]
			}
		}
		t.Fatalf("SHOW CONFIG lacks %s", name)
		return ""
	}

	// Live settings apply; listen and admin_token are reported and keep
	// their running values, the token never shown.
	next.LogLevel, next.MaxClientConns, next.Pool.MaxConns = "debug", 1, 3
	next.TLSCert, next.TLSKey = certB.CertFile, certB.KeyFile
	next.Listen, next.AdminToken = "127.0.0.1:1", "new-secret"
	err = rl.Reload()
	var re *restartError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "listen, admin_token") {
		t.Fatalf("reload: %v", err)
	}
	if level.Level() != zapcore.DebugLevel || servedSerial() != certB.Cert.SerialNumber.String() {
		t.Fatalf("live settings not applied: level %s", level.Level())
	}
	if cur := rl.current(); cur.MaxClientConns != 1 || cur.Pool.MaxConns != 3 || cur.Listen != cfg.Listen || cur.AdminToken != "old-secret" {
		t.Fatalf("in effect: %+v", cur)
	}
	if setting("listen") != cfg.Listen || setting("max_client_conns") != "1" || setting("admin_token") != "(redacted)" {
		t.Fatalf("SHOW CONFIG: %v", rl.Settings())
	}
	if logs.FilterMessage("listen changed: needs a restart").Len() != 1 || logs.FilterMessage("admin_token changed: needs a restart").Len() != 1 {
		t.Fatalf("restart warnings: %v", logs.All())
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.ContextMap()), "secret") {
			t.Fatalf("a log line shows the admin token: %v", e)
		}
	}

	// A configuration that does not load, or names an unusable level or
	// certificate, changes nothing.
	loadErr = errors.New("config file gw.yaml: yaml: line 1: did not find expected node content")
	if err := rl.Reload(); err == nil || !strings.Contains(err.Error(), "gw.yaml") {
		t.Fatalf("broken file: %v", err)
	}
	loadErr = nil
	next.MaxClientConns, next.LogLevel = 5, "loud"
	if err := rl.Reload(); err == nil || !strings.Contains(err.Error(), "log_level") {
		t.Fatalf("unknown log level: %v", err)
	}
	next.LogLevel, next.TLSCert = "info", filepath.Join(dir, "missing.crt")
	if err := rl.Reload(); err == nil || !strings.Contains(err.Error(), "missing.crt") {
		t.Fatalf("missing certificate: %v", err)
	}
	if rl.current().MaxClientConns != 1 || level.Level() != zapcore.DebugLevel || servedSerial() != certB.Cert.SerialNumber.String() {
		t.Fatal("a failed reload changed settings")
	}
	if logs.FilterMessage("reload failed; the running configuration stays as it was").Len() != 3 {
		t.Fatalf("failed reloads not logged: %v", logs.All())
	}
}

// TestReloadAdminTLS serves HTTPS as the admin endpoint does and checks
// that a reload naming other certificate files swaps them in.
func TestReloadAdminTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := testcert.NewCA(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	certA, err := ca.Issue(dir, "a", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	certB, err := ca.Issue(dir, "b", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	cfg.AdminTLSCert, cfg.AdminTLSKey = certA.CertFile, certA.KeyFile
	sec, err := loadSecurity(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), TLSConfig: sec.adminCerts.serverConfig(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	defer func() {
		srv.Close()
		<-done
	}()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	servedSerial := func() string {
		t.Helper()
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
		defer client.CloseIdleConnections()
		resp, err := client.Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	if got := servedSerial(); got != certA.Cert.SerialNumber.String() {
		t.Fatalf("served %s, want a's", got)
	}
	next := cfg
	next.AdminTLSCert, next.AdminTLSKey = certB.CertFile, certB.KeyFile
	pools := proxy.NewPools(cfg.Pool, zap.NewNop())
	defer pools.Close()
	rl := &reloader{load: func() (config, error) { return next, nil }, log: zap.NewNop(), level: zap.NewAtomicLevel(),
		srv: proxy.NewServer(proxy.Config{Log: zap.NewNop()}), pools: pools, sec: sec, cur: cfg}
	if err := rl.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(); got != certB.Cert.SerialNumber.String() {
		t.Fatalf("served %s after the reload, want b's", got)
	}
}

// TestReloadGateway changes the configuration file of a running gateway and
// sends SIGHUP: an open session, even one inside a transaction, goes on
// while new limits, log level, pool size and certificate apply; a
// restart-only change is reported; a broken file changes nothing.
func TestReloadGateway(t *testing.T) {
	e := newEnv(t)
	e.gw.stop()
	dir := t.TempDir()
	ca, err := testcert.NewCA(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	certA, err := ca.Issue(dir, "a", "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	certB, err := ca.Issue(dir, "b", "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "shardgate.yaml")
	write := func(lines ...string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tlsA := []string{"tls_cert: " + certA.CertFile, "tls_key: " + certA.KeyFile}
	tlsB := []string{"tls_cert: " + certB.CertFile, "tls_key: " + certB.KeyFile}
	write(append([]string{"log_level: info", "max_client_conns: 10"}, tlsA...)...)
	g := startGateway(t, e.etcd.Endpoints(), "--config", file)
	if out, errOut, code := psql(t, g.dsn("app"), "-v", "ON_ERROR_STOP=1", "-f", repoPath("testdata/sql/app_schema.sql")); code != 0 {
		t.Fatalf("schema: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(g.log.String(), `"level":"debug"`) {
		t.Fatal("debug lines at log_level info")
	}
	if got := g.servedSerial(t); got != certA.Cert.SerialNumber.String() {
		t.Fatalf("served certificate %s, want a's", got)
	}

	// A session with a transaction open on a backend connection of the
	// pool that the reload retires.
	open := g.connect("app")
	mustQuery(t, open, "begin")
	mustQuery(t, open, "insert into users (id, name) values (1, 'one')")

	// The acquire timeout leaves the new pool's first connection time to
	// be dialled on a loaded machine; the next reload shortens it.
	write(append([]string{
		"log_level: debug", "max_client_conns: 1", "pool_max_conns: 1", "pool_acquire_timeout: 10s",
		"gateway_ttl: 20s",
		"listen: 127.0.0.1:1", // the command line's --listen still wins
	}, tlsB...)...)
	out := g.reload(t)
	if !strings.Contains(out, `"msg":"gateway_ttl changed: needs a restart"`) || strings.Contains(out, "listen changed") {
		t.Fatalf("restart-only changes not reported as such:\n%s", out)
	}
	mustQuery(t, open, "commit")
	if got := mustQuery(t, open, "select name from users where id = 1"); got[0][0] != "one" {
		t.Fatalf("open session after the reload: %v", got)
	}
	// max_client_conns 1: the open session is the one.
	if _, err := pgconnConnect(g.dsn("app")); pgCode(err) != "53300" {
		t.Fatalf("a second client at max_client_conns 1: %v", err)
	}
	// log_level debug: a client that leaves during its startup is logged.
	eventually(t, 10*time.Second, "debug lines", func() bool {
		if c, err := net.Dial("tcp", g.addr); err == nil {
			c.Close()
		}
		return strings.Contains(g.log.String(), `"msg":"startup failed"`)
	})

	// Raising the client limit lets a second client in; the pool of one
	// connection per shard (kept: only the acquire timeout changed) makes
	// it wait for the first one's transaction and give up after 300ms.
	write(append([]string{"log_level: debug", "max_client_conns: 10", "pool_max_conns: 1", "pool_acquire_timeout: 300ms"}, tlsB...)...)
	g.reload(t)
	other := g.connect("app")
	mustQuery(t, open, "begin")
	mustQuery(t, open, "select name from users where id = 1")
	if _, err := query(other, "select name from users where id = 1"); pgCode(err) != "53300" || !strings.Contains(err.Error(), "1 connections busy for 300ms") {
		t.Fatalf("a second borrower of a pool of 1: %v", err)
	}
	mustQuery(t, open, "commit")
	if got := mustQuery(t, other, "select name from users where id = 1"); got[0][0] != "one" {
		t.Fatalf("after the first transaction ended: %v", got)
	}
	if got := g.servedSerial(t); got != certB.Cert.SerialNumber.String() {
		t.Fatalf("served certificate %s, want b's", got)
	}

	// A file that does not parse is reported and changes nothing: were
	// its max_client_conns 1 applied, no third client would get in.
	write("max_client_conns: 1", "pool_max_conns: [")
	if out := g.reload(t); !strings.Contains(out, `"msg":"reload failed; the running configuration stays as it was"`) || !strings.Contains(out, file) {
		t.Fatalf("broken file:\n%s", out)
	}
	g.connect("app")
	mustQuery(t, open, "select 1")
	select {
	case err := <-g.exited:
		t.Fatalf("shardgate exited: %v", err)
	default:
	}
}

// reload sends SIGHUP and returns the log written until the reload ended.
func (g *gateway) reload(t *testing.T) string {
	t.Helper()
	before := len(g.log.String())
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var out string
	eventually(t, 30*time.Second, "the reload's outcome in the log", func() bool {
		out = g.log.String()[before:]
		return strings.Contains(out, `"msg":"configuration reloaded"`) || strings.Contains(out, `"msg":"reload failed`)
	})
	return out
}

// servedSerial returns the serial number of the certificate the gateway
// presents to a client that asks for TLS.
func (g *gateway) servedSerial(t *testing.T) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(strings.Replace(g.dsn("app"), "sslmode=disable", "sslmode=require", 1))
	if err != nil {
		t.Fatal(err)
	}
	var serial string
	cfg.TLSConfig.VerifyConnection = func(cs tls.ConnectionState) error {
		serial = cs.PeerCertificates[0].SerialNumber.String()
		return nil
	}
	c, err := pgconn.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close(context.Background())
	return serial
}
