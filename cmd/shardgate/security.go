package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/shardgate/shardgate/proxy"
	"github.com/shardgate/shardgate/topology"
)

// security is what the configuration says about secrets and TLS, loaded
// and checked before anything listens.
type security struct {
	certs        *proxy.CertFiles // client TLS, nil without
	clientTLS    *tls.Config
	adminCerts   *proxy.CertFiles
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
		c, err := proxy.NewCertFiles(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, err
		}
		sec.certs, sec.clientTLS = c, c.ServerConfig()
	}
	if cfg.AdminTLSCert != "" {
		c, err := proxy.NewCertFiles(cfg.AdminTLSCert, cfg.AdminTLSKey)
		if err != nil {
			return nil, fmt.Errorf("admin TLS: %w", err)
		}
		sec.adminCerts = c
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

// reloadOnHangup reloads the client certificate on SIGHUP.
func reloadOnHangup(ctx context.Context, certs *proxy.CertFiles, log *zap.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := certs.Reload(); err != nil {
				log.Error("SIGHUP: reloading the TLS certificate failed; serving the old one", zap.Error(err))
			} else {
				log.Info("SIGHUP: TLS certificate reloaded")
			}
		}
	}
}
