package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/shardgate/shardgate/proxy"
)

// liveSettings are the settings a reload applies to the running gateway.
// Every other one is read once at startup, so a change to it is reported as
// needing a restart. The TLS file settings are live only while TLS stays on
// (or off): turning it on or off needs a restart.
var liveSettings = map[string]bool{
	"log_level":                 true,
	"shutdown_timeout":          true,
	"max_client_conns":          true,
	"max_client_conns_per_user": true,
	"startup_timeout":           true,
	"client_write_timeout":      true,
	"max_message_size":          true,
	"max_statement_size":        true,
	"tls_cert":                  true,
	"tls_key":                   true,
	"admin_tls_cert":            true,
	"admin_tls_key":             true,
	"pool_max_conns":            true,
	"pool_min_idle_conns":       true,
	"pool_idle_timeout":         true,
	"pool_acquire_timeout":      true,
	"pool_connect_timeout":      true,
}

// secretSettings are shown and logged redacted.
var secretSettings = map[string]bool{"admin_token": true}

// reloader re-reads the configuration the way startup read it (the file,
// the environment, and the flags of the original command line, which still
// win) and applies what changed to the running gateway without dropping a
// session. Safe for concurrent use: SIGHUP and the admin console's RELOAD
// may come at once, and reloads run one at a time.
type reloader struct {
	load  func() (config, error)
	log   *zap.Logger
	level zap.AtomicLevel // of every logger the gateway made
	srv   *proxy.Server
	pools *proxy.Pools
	sec   *security

	mu  sync.Mutex
	cur config // in effect: settings that need a restart keep their startup values
}

// Reload loads the configuration and applies it. If it does not load, or
// something it names (a log level, a certificate) is unusable, nothing
// changes and the error says why. Changes that need a restart are logged
// one by one and returned as a *restartError after the rest was applied.
func (r *reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	next, err := r.load()
	if err != nil {
		return r.failed(err)
	}
	live, restart := changes(r.cur, next)
	eff := r.cur
	for _, s := range live {
		// A loaded config's values read back as they were written.
		if err := s.value(&eff).set(s.value(&next).get()); err != nil {
			return r.failed(fmt.Errorf("%s: %w", s.name, err))
		}
	}
	// Everything that can fail is prepared before anything changes.
	level, err := zapcore.ParseLevel(eff.LogLevel)
	if err != nil {
		return r.failed(fmt.Errorf("log_level: %w", err))
	}
	var clientTLS, adminTLS *tls.Config
	if r.sec.clientCerts != nil {
		if clientTLS, err = loadCerts(eff.TLSCert, eff.TLSKey); err != nil {
			return r.failed(err)
		}
	}
	if r.sec.adminCerts != nil {
		if adminTLS, err = loadCerts(eff.AdminTLSCert, eff.AdminTLSKey); err != nil {
			return r.failed(fmt.Errorf("admin TLS: %w", err))
		}
	}

	r.level.SetLevel(level)
	r.srv.SetLimits(proxy.Limits{
		MaxClientConns: int(eff.MaxClientConns), MaxClientConnsPerUser: int(eff.MaxConnsPerUser),
		StartupTimeout: eff.StartupTimeout, MaxMessageSize: int(eff.MaxMessageSize), MaxStatementSize: int(eff.MaxStatement),
		ClientWriteTimeout: eff.ClientWrite,
	})
	r.pools.SetConfig(eff.Pool)
	if clientTLS != nil {
		r.sec.clientCerts.swap(clientTLS)
	}
	if adminTLS != nil {
		r.sec.adminCerts.swap(adminTLS)
	}
	r.cur = eff

	names := make([]string, len(restart))
	for i, s := range restart {
		names[i] = s.name
		r.log.Warn(s.name+" changed: needs a restart",
			zap.String("running", display(s, &r.cur)), zap.String("configured", display(s, &next)))
	}
	applied := make([]string, len(live))
	for i, s := range live {
		applied[i] = s.name
	}
	r.log.Info("configuration reloaded", zap.Strings("applied", applied), zap.Strings("need_restart", names),
		zap.Bool("tls_files_reread", clientTLS != nil || adminTLS != nil))
	if len(names) > 0 {
		return &restartError{settings: names}
	}
	return nil
}

// failed reports a reload that changed nothing.
func (r *reloader) failed(err error) error {
	r.log.Error("reload failed; the running configuration stays as it was", zap.Error(err))
	return fmt.Errorf("reload failed, nothing changed: %w", err)
}

// Settings returns the configuration in effect as name and value pairs, in
// the order of settings(), secrets redacted; for the console's SHOW CONFIG.
func (r *reloader) Settings() [][2]string {
	r.mu.Lock()
	cur := r.cur
	r.mu.Unlock()
	all := settings()
	out := make([][2]string, len(all))
	for i, s := range all {
		out[i] = [2]string{s.name, display(s, &cur)}
	}
	return out
}

// current returns the configuration in effect.
func (r *reloader) current() config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// onHangup reloads on every signal from hup until ctx ends. Reload logs
// its own outcome.
func (r *reloader) onHangup(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.log.Info("SIGHUP: reloading the configuration")
			_ = r.Reload()
		}
	}
}

// changes lists the settings whose values differ between cur and next:
// those a reload applies, and those that need a restart.
func changes(cur, next config) (live, restart []setting) {
	for _, s := range settings() {
		if s.value(&cur).get() == s.value(&next).get() {
			continue
		}
		if liveSettings[s.name] && !tlsSwitched(s.name, cur, next) {
			live = append(live, s)
		} else {
			restart = append(restart, s)
		}
	}
	return live, restart
}

// tlsSwitched reports whether setting name turns TLS on or off, which the
// listeners decide at startup.
func tlsSwitched(name string, cur, next config) bool {
	switch name {
	case "tls_cert", "tls_key":
		return (cur.TLSCert == "") != (next.TLSCert == "")
	case "admin_tls_cert", "admin_tls_key":
		return (cur.AdminTLSCert == "") != (next.AdminTLSCert == "")
	}
	return false
}

// display is s's value in c as it may be shown and logged.
func display(s setting, c *config) string {
	v := s.value(c).get()
	if secretSettings[s.name] && v != "" {
		return "(redacted)"
	}
	return v
}

// restartError names changed settings that take effect only when the
// gateway restarts; the reload that returned it applied the others.
type restartError struct{ settings []string }

func (e *restartError) Error() string {
	return "changed settings need a restart: " + strings.Join(e.settings, ", ") + " (other changes were applied)"
}
