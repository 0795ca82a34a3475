// Command shardgate is the sharding gateway: Postgres clients connect to it
// as to one database, and it routes each statement to the physical shards
// that hold its rows, by the shard map in etcd.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/shardgate/shardgate/proxy"
	"github.com/shardgate/shardgate/topology"
)

func main() {
	args := os.Args[1:]
	cfg, err := loadConfig(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "shardgate: %v\n", err)
		os.Exit(2)
	}
	log, level, err := newLogger(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "shardgate: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// A reload reads the configuration as startup did: the command line's
	// flags still win over the file and the environment.
	load := func() (config, error) { return loadConfig(args, os.Getenv) }
	if err := run(ctx, cfg, log, level, load); err != nil {
		log.Error("shardgate stopped", zap.Error(err))
		_ = log.Sync()
		fmt.Fprintf(os.Stderr, "shardgate: %v\n", err)
		os.Exit(1)
	}
	_ = log.Sync()
}

// newLogger builds the gateway's logger and returns its level, which a
// reload changes for every logger derived from it.
func newLogger(cfg config) (*zap.Logger, zap.AtomicLevel, error) {
	level, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, zap.AtomicLevel{}, fmt.Errorf("log_level: %w", err)
	}
	zc := zap.NewProductionConfig()
	if cfg.LogFormat == "console" {
		zc = zap.NewDevelopmentConfig()
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.Sampling = nil
	zc.DisableStacktrace = true
	log, err := zc.Build()
	return log, zc.Level, err
}

// etcdLogger is the embedded etcd's logger: errors only, without the ones
// etcd logs on every normal close.
func etcdLogger(log *zap.Logger) *zap.Logger {
	return log.Named("etcd").WithOptions(zap.IncreaseLevel(zap.ErrorLevel), zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return &closeNoiseFilter{Core: c}
	}))
}

// closeNoiseFilter drops etcd's "serving failed" errors caused by its own
// listeners closing at shutdown.
type closeNoiseFilter struct{ zapcore.Core }

func (f *closeNoiseFilter) With(fields []zapcore.Field) zapcore.Core {
	return &closeNoiseFilter{Core: f.Core.With(fields)}
}

func (f *closeNoiseFilter) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if strings.HasPrefix(e.Message, "setting up serving from embedded etcd failed") ||
		strings.HasPrefix(e.Message, "failed to update storage version") {
		return ce
	}
	return f.Core.Check(e, ce)
}

// run starts etcd (embedded, or a client of an external one), follows the
// topology, and serves clients and the admin endpoint until ctx ends; then it
// drains. On SIGHUP it reloads the configuration with load.
func run(ctx context.Context, cfg config, log *zap.Logger, level zap.AtomicLevel, load func() (config, error)) error {
	// From the start, so that a SIGHUP during startup does not kill the
	// process; it is handled once the gateway serves.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	sec, err := loadSecurity(cfg, log)
	if err != nil {
		return err
	}
	endpoints := cfg.Etcd
	if len(endpoints) == 0 {
		dir := filepath.Join(cfg.DataDir, "etcd")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		e, err := topology.StartEmbedded(startCtx, dir, cfg.EtcdListen, etcdLogger(log))
		cancel()
		if err != nil {
			return fmt.Errorf("embedded etcd: %w", err)
		}
		defer e.Close()
		endpoints = e.Endpoints()
		log.Info("embedded etcd started", zap.Strings("endpoints", endpoints), zap.String("dir", dir))
	}
	etcdCfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: log.Named("etcd-client").WithOptions(zap.IncreaseLevel(zap.ErrorLevel)),
		TLS: sec.etcdTLS, Username: cfg.EtcdUsername, Password: sec.etcdPassword}
	cli, err := clientv3.New(etcdCfg)
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer cli.Close()

	pools := proxy.NewPools(cfg.Pool, log.Named("pool"))
	defer pools.Close()
	store := topology.NewStore(cli, cfg.Cluster)
	// The server takes each snapshot too, once it exists: it raises and
	// lifts the write fences of reshard cutovers.
	var server atomic.Pointer[proxy.Server]
	watcher := topology.NewWatcher(store, log.Named("topology"), func(snap *topology.Snapshot) {
		pools.Sync(snap)
		if srv := server.Load(); srv != nil {
			srv.ApplyTopology(snap)
		}
	})
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		watcher.Run(watchCtx)
	}()
	defer func() {
		stopWatch()
		<-watchDone
	}()
	select {
	case <-watcher.Ready():
	case <-time.After(cfg.TopologyTimeout):
		return fmt.Errorf("no topology from etcd %v (cluster %q) after %s: is etcd running, and do etcd_ca, etcd_cert and etcd_username match it?", endpoints, cfg.Cluster, cfg.TopologyTimeout)
	case <-ctx.Done():
		return nil
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", cfg.ListenAdmin)
	if err != nil {
		ln.Close()
		return err
	}
	gatewayID := newGatewayID()
	reg, err := store.RegisterGateway(ctx, topology.GatewayInfo{ID: gatewayID, Addr: ln.Addr().String(), Started: time.Now().UTC()}, cfg.GatewayTTL)
	if err != nil {
		ln.Close()
		adminLn.Close()
		return fmt.Errorf("register gateway in etcd: %w", err)
	}
	defer reg.Close()
	log = log.With(zap.String("gateway", gatewayID))
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), pools,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shardgate_topology_revision",
			Help: "The etcd revision of the topology this gateway applied.",
		}, func() float64 { return float64(watcher.Snapshot().Revision) }))
	reg2.MustRegister(proxy.NewWorkflowMetrics(store.Workflows))
	metrics := proxy.NewMetrics(reg2)
	rl := &reloader{load: load, log: log.Named("reload"), level: level, pools: pools, sec: sec, cur: cfg}
	var clientTLS *tls.Config
	if sec.clientCerts != nil {
		clientTLS = sec.clientCerts.serverConfig()
	}
	srv := proxy.NewServer(proxy.Config{
		Topology: watcher.Snapshot, Pools: pools, Log: log.Named("proxy"),
		TwoPC: store, Schema: store, Sequences: store, GatewayNumber: reg.Number, Workflows: store.Workflows, Shadow: store, Standing: func() bool {
			lapsed, rejoined := reg.Standing()
			return !lapsed && watcher.Current(rejoined)
		}, GatewayID: gatewayID, Hooks: crashHooks(os.Getenv("SHARDGATE_TEST_CRASH")),
		MaxClientConns: int(cfg.MaxClientConns), MaxClientConnsPerUser: int(cfg.MaxConnsPerUser),
		Auth: proxy.AuthMode(cfg.Auth), TLS: clientTLS, SSLMode: proxy.SSLMode(cfg.SSL),
		StartupTimeout: cfg.StartupTimeout, MaxMessageSize: int(cfg.MaxMessageSize), MaxStatementSize: int(cfg.MaxStatement), ClientWriteTimeout: cfg.ClientWrite, Metrics: metrics,
		Reload: rl.Reload, Settings: rl.Settings,
	})
	rl.srv = srv // before anything can reload: the SIGHUP loop and Serve start below
	server.Store(srv)
	srv.ApplyTopology(watcher.Snapshot())
	publishCtx, stopPublish := context.WithCancel(context.Background())
	publishDone := make(chan struct{})
	go func() {
		defer close(publishDone)
		publishApplied(publishCtx, srv, reg, log)
	}()
	defer func() {
		stopPublish()
		<-publishDone
	}()
	reg2.MustRegister(srv)
	hupCtx, stopHup := context.WithCancel(context.Background())
	hupDone := make(chan struct{})
	go func() {
		defer close(hupDone)
		rl.onHangup(hupCtx, hup)
	}()
	defer func() {
		stopHup()
		<-hupDone
	}()
	resolver := proxy.NewResolver(store, watcher.Snapshot, pools, gatewayID, srv.InFlight, metrics, log.Named("resolver"))
	resolveCtx, stopResolve := context.WithCancel(context.Background())
	resolveDone := make(chan struct{})
	go func() {
		defer close(resolveDone)
		resolver.Run(resolveCtx, cfg.ResolveInterval)
	}()
	defer func() {
		stopResolve()
		<-resolveDone
	}()
	admin := &http.Server{Handler: proxy.AdminHandler(proxy.AdminOptions{Topology: watcher.Snapshot, Pools: pools, Gather: reg2, Token: sec.adminToken, GatewayID: gatewayID, Workflows: store.Workflows, Shadow: store.Shadow}), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() {
		if sec.adminCerts != nil {
			admin.TLSConfig = sec.adminCerts.serverConfig()
			errc <- admin.ServeTLS(adminLn, "", "")
			return
		}
		errc <- admin.Serve(adminLn)
	}()
	log.Info("shardgate serving", zap.String("listen", ln.Addr().String()), zap.String("admin", adminLn.Addr().String()),
		zap.Strings("etcd", endpoints), zap.String("cluster", cfg.Cluster))

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining sessions", zap.Duration("timeout", rl.current().ShutdownTimeout), zap.Int("sessions", srv.ActiveSessions()))
	case serveErr = <-errc:
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), rl.current().ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("sessions still running at the shutdown timeout were closed", zap.Error(err))
	}
	_ = admin.Shutdown(shutCtx)
	if serveErr != nil && !errors.Is(serveErr, proxy.ErrServerClosed) && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	log.Info("shardgate stopped")
	return nil
}

// publishApplied keeps what srv applied of the topology (its revision, the
// reshard fences it drained) in etcd under the gateway's lease, for the
// workflows' controllers: at once when it changes, and again every few
// seconds in case the lease was renewed under a new ID.
func publishApplied(ctx context.Context, srv *proxy.Server, reg *topology.Registration, log *zap.Logger) {
	const again = 3 * time.Second
	tick := time.NewTicker(again)
	defer tick.Stop()
	var last topology.GatewayApplied
	var at time.Time
	for {
		a := srv.Applied()
		if a.Revision != last.Revision || !maps.Equal(a.Fences, last.Fences) || time.Since(at) >= again {
			a.LatencyP99 = srv.LatencyP99()
			pctx, cancel := context.WithTimeout(ctx, again)
			if err := reg.PublishApplied(pctx, a); err != nil {
				if ctx.Err() == nil {
					log.Warn("publishing the applied topology", zap.Error(err))
				}
			} else {
				last, at = a, time.Now()
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-srv.AppliedChanged():
		case <-tick.C:
		}
	}
}

// newGatewayID names this gateway process in etcd and in two-phase commit ids.
func newGatewayID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// crashHooks returns fault-injection hooks for crash-recovery tests:
// SHARDGATE_TEST_CRASH=after-prepare or after-decide makes the gateway exit
// at once at that point of a two-phase commit. Never set it in production.
func crashHooks(point string) proxy.Hooks {
	crash := func() { os.Exit(86) }
	switch point {
	case "after-prepare":
		return proxy.Hooks{AfterPrepare: crash}
	case "after-decide":
		return proxy.Hooks{AfterDecide: crash}
	}
	return proxy.Hooks{}
}
