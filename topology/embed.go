package topology

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// embeddedName is the member and cluster-token name of an embedded etcd.
const embeddedName = "shardgate"

// embedAttempts bounds the retries when a free loopback port chosen for etcd
// is taken by someone else before etcd binds it.
const embedAttempts = 5

// Embedded is a single-node etcd server running inside this process, for a
// development setup or tests that need a real etcd without a separate binary.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
	closeOnce sync.Once
}

// EmbeddedTLS is the TLS an embedded etcd serves its clients with. The files
// are PEM and are read when the server starts.
type EmbeddedTLS struct {
	// CertFile and KeyFile are the server's certificate and key; both are
	// required. The certificate must name the host clients connect to
	// (127.0.0.1 for a clientAddr left empty).
	CertFile, KeyFile string
	// TrustedCAFile holds the CAs that client certificates must chain to.
	TrustedCAFile string
	// ClientCertAuth refuses clients without a certificate signed by a CA
	// in TrustedCAFile; it needs TrustedCAFile set.
	ClientCertAuth bool
}

// EmbeddedOption changes how StartEmbedded configures the server.
type EmbeddedOption func(*embeddedOptions)

type embeddedOptions struct {
	tls *EmbeddedTLS
}

// WithClientTLS makes the embedded etcd serve clients over TLS only: its
// Endpoints become https:// URLs. Peers stay plain, as a single member has
// none.
func WithClientTLS(t EmbeddedTLS) EmbeddedOption {
	return func(o *embeddedOptions) { o.tls = &t }
}

// StartEmbedded starts etcd with its data in dir, serving clients on
// clientAddr (host:port; "" means a free port on 127.0.0.1) and peers on a
// free loopback port. A dir that already holds etcd data is reopened, so the
// data survives restarts. It returns once the server is ready to serve
// requests; cancelling ctx before that abandons the start and stops the
// server. logger receives etcd's logs (pass zap.NewNop() to discard them).
// The caller must call Close.
func StartEmbedded(ctx context.Context, dir, clientAddr string, logger *zap.Logger, opts ...EmbeddedOption) (*Embedded, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	var o embeddedOptions
	for _, opt := range opts {
		opt(&o)
	}
	if t := o.tls; t != nil {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, errors.New("topology: embedded etcd client TLS needs CertFile and KeyFile")
		}
		if t.ClientCertAuth && t.TrustedCAFile == "" {
			return nil, errors.New("topology: embedded etcd ClientCertAuth needs TrustedCAFile")
		}
	}
	for attempt := 1; ; attempt++ {
		e, err := startEmbedded(ctx, dir, clientAddr, logger, o)
		if err == nil {
			return e, nil
		}
		// Only the ports we chose can have been taken in the meantime; a busy
		// clientAddr given by the caller is not worth retrying.
		retry := errors.Is(err, syscall.EADDRINUSE) && attempt < embedAttempts && ctx.Err() == nil
		if !retry {
			return nil, err
		}
	}
}

func startEmbedded(ctx context.Context, dir, clientAddr string, logger *zap.Logger, o embeddedOptions) (*Embedded, error) {
	if clientAddr == "" {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		clientAddr = net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	}
	peerPort, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if o.tls != nil {
		scheme = "https"
	}
	clientURL := url.URL{Scheme: scheme, Host: clientAddr}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(peerPort))}

	cfg := embed.NewConfig()
	cfg.Name = embeddedName
	cfg.Dir = dir
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	if t := o.tls; t != nil {
		cfg.ClientTLSInfo.CertFile = t.CertFile
		cfg.ClientTLSInfo.KeyFile = t.KeyFile
		cfg.ClientTLSInfo.TrustedCAFile = t.TrustedCAFile
		cfg.ClientTLSInfo.ClientCertAuth = t.ClientCertAuth
	}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.InitialClusterToken = embeddedName
	cfg.ClusterState = embed.ClusterStateFlagNew // ignored once dir holds data
	cfg.ListenMetricsUrls = nil
	// A single voter cannot lose an election, so short ticks carry no risk of
	// spurious leader changes; they make the first election (which gates
	// readiness) take tens of milliseconds instead of up to two seconds.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	// Keep history bounded: watchers that fall more than an hour behind
	// reload instead of replaying.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("topology: starting embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("topology: embedded etcd in %s failed before it was ready: %w", dir, err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("topology: embedded etcd in %s not ready: %w", dir, ctx.Err())
	}
	em := &Embedded{etcd: e}
	// The listeners' addresses rather than clientAddr, which may name port 0.
	for _, l := range e.Clients {
		em.endpoints = append(em.endpoints, scheme+"://"+l.Addr().String())
	}
	return em, nil
}

// Endpoints returns the URLs clients connect to, for example
// []string{"http://127.0.0.1:23790"}, or https:// with WithClientTLS.
func (e *Embedded) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Close stops the server and waits until it has stopped. Calling it again
// does nothing.
func (e *Embedded) Close() {
	e.closeOnce.Do(e.etcd.Close)
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("topology: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
