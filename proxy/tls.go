package proxy

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
)

// CertFiles serves a TLS certificate from a certificate and a key file and
// reloads them when either changes on disk (checked at each handshake, so a
// replaced certificate is served to the next connection) or when Reload is
// called (on SIGHUP). Open sessions keep the certificate they started with.
// Safe for concurrent use.
type CertFiles struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	version string // modification times and sizes of the loaded files
}

// NewCertFiles loads the pair once, failing if it does not load.
func NewCertFiles(certFile, keyFile string) (*CertFiles, error) {
	c := &CertFiles{certFile: certFile, keyFile: keyFile}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again. On failure the previous certificate stays.
func (c *CertFiles) Reload() error {
	version, err := c.fileVersion()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cert, c.version = &cert, version
	return nil
}

func (c *CertFiles) fileVersion() (string, error) {
	var v string
	for _, f := range []string{c.certFile, c.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("TLS: %w", err)
		}
		v += fmt.Sprintf("%d/%d;", st.ModTime().UnixNano(), st.Size())
	}
	return v, nil
}

// certificate returns the current certificate, reloading it first if the
// files changed.
func (c *CertFiles) certificate() (*tls.Certificate, error) {
	if v, err := c.fileVersion(); err == nil {
		c.mu.Lock()
		changed := v != c.version
		c.mu.Unlock()
		if changed {
			_ = c.Reload() // a half-written pair fails to load; keep the old one
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert, nil
}

// ServerConfig returns a TLS 1.2+ server configuration using the files.
func (c *CertFiles) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.certificate()
		},
	}
}

// SSLMode says whether clients must, may or cannot use TLS.
type SSLMode string

// SSL modes.
const (
	SSLDisable SSLMode = "disable" // SSLRequest answered 'N'
	SSLAllow   SSLMode = "allow"   // TLS when the client asks, plaintext otherwise
	SSLRequire SSLMode = "require" // plaintext sessions are refused (28000)
)
