package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/shardgate/shardgate/proxy"
	"github.com/shardgate/shardgate/topology"
)

// security is what the configuration says about secrets and TLS, loaded
// and checked before anything listens.
type security struct {
	clientCerts  *liveCerts // nil without client TLS
	adminCerts   *liveCerts // nil without HTTPS on the admin endpoint
	adminToken   string
	etcdTLS      *tls.Config
	etcdPassword string
}

func loadSecurity(cfg config, log *zap.Logger) (*security, error) {
	sec := &security{adminToken: cfg.AdminToken}
	var err error
	if cfg.AdminTokenFile != "" {
		t, err := topology.ReadSecretFile(cfg.AdminTokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin_token_file: %w", err)
		}
		sec.adminToken = t
	}
	if sec.adminToken == "" && !isLoopback(cfg.ListenAdmin) {
		return nil, fmt.Errorf("listen_admin %s is not a loopback address: set admin_token (or admin_token_file) so that the admin endpoint is not open to anyone who can reach it", cfg.ListenAdmin)
	}
	if cfg.Auth == "trust" {
		if !isLoopback(cfg.Listen) {
			return nil, fmt.Errorf("auth: trust lets anyone in without a password; it is allowed only with a loopback listen address, not %s", cfg.Listen)
		}
		log.Warn("auth: trust — clients connect without a password; for local development only")
	}
	if cfg.TLSCert != "" {
		if sec.clientCerts, err = newLiveCerts(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, err
		}
	}
	if cfg.AdminTLSCert != "" {
		if sec.adminCerts, err = newLiveCerts(cfg.AdminTLSCert, cfg.AdminTLSKey); err != nil {
			return nil, fmt.Errorf("admin TLS: %w", err)
		}
	}
	sec.etcdTLS, err = topology.ClientTLS(cfg.EtcdCA, cfg.EtcdCert, cfg.EtcdKey)
	var fe *topology.TLSFileError
	if errors.As(err, &fe) && fe.CA {
		return nil, fmt.Errorf("etcd_ca: %w", err)
	} else if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	if cfg.EtcdPasswordFile != "" {
		p, err := topology.ReadSecretFile(cfg.EtcdPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("etcd_password_file: %w", err)
		}
		sec.etcdPassword = p
	}
	return sec, nil
}

// isLoopback reports whether a listen address accepts only local clients.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// liveCerts serves a certificate and key from files that a reload may
// name anew. Between reloads the proxy.CertFiles in use picks up files
// replaced on disk; a reload loads the named files afresh, so that a pair
// that fails to load leaves the served one in place, and swaps them in for
// the next handshakes. Open sessions keep the certificate they began with.
type liveCerts struct {
	cur atomic.Pointer[tls.Config] // of the files loaded last
}

func newLiveCerts(certFile, keyFile string) (*liveCerts, error) {
	c, err := loadCerts(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	l := &liveCerts{}
	l.cur.Store(c)
	return l, nil
}

// loadCerts loads a certificate pair, failing if it does not load.
func loadCerts(certFile, keyFile string) (*tls.Config, error) {
	files, err := proxy.NewCertFiles(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return files.ServerConfig(), nil
}

// serverConfig returns a TLS configuration, with the protocol settings
// proxy.CertFiles chooses, that serves the current certificate at each
// handshake.
func (l *liveCerts) serverConfig() *tls.Config {
	c := l.cur.Load().Clone()
	c.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return l.cur.Load().GetCertificate(hello)
	}
	return c
}

// swap serves c from the next handshake on.
func (l *liveCerts) swap(c *tls.Config) { l.cur.Store(c) }
