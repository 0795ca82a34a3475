package topology

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

// ReadSecretFile returns the first line of a file that holds one secret (a
// password or token), without its line ending. An empty first line is an
// error; no error quotes the file's content.
func ReadSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", fmt.Errorf("%s: first line is empty", path)
	}
	return line, nil
}

// TLSFileError says which file of a TLS configuration failed.
type TLSFileError struct {
	CA  bool // the CA file; else the client certificate or key
	Err error
}

func (e *TLSFileError) Error() string { return e.Err.Error() }
func (e *TLSFileError) Unwrap() error { return e.Err }

// ClientTLS builds a TLS 1.2+ client configuration for etcd: caFile (PEM)
// verifies the server, certFile and keyFile are the client certificate.
// Each may be empty; with neither a CA nor a certificate it returns nil.
// Errors are *TLSFileError.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, &TLSFileError{CA: true, Err: err}
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, &TLSFileError{CA: true, Err: fmt.Errorf("%s holds no PEM certificate", caFile)}
		}
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, &TLSFileError{Err: err}
		}
		t.Certificates = []tls.Certificate{pair}
	}
	return t, nil
}
