package topology

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/internal/testcert"
)

func TestEmbeddedSurvivesRestart(t *testing.T) {
	// Runs after the deferred Closes: nothing of etcd or the client may remain.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	dir := t.TempDir()

	e, err := StartEmbedded(t.Context(), dir, "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if eps := e.Endpoints(); len(eps) != 1 {
		t.Fatalf("Endpoints() = %q, want one URL", eps)
	}
	cli := newEmbeddedClient(t, e)
	if _, err := cli.Put(t.Context(), "/shardgate/test/key", "value"); err != nil {
		t.Fatal(err)
	}
	checkKey(t, cli, "/shardgate/test/key", "value")
	cli.Close()
	e.Close()
	e.Close() // a second Close is a no-op

	e2, err := StartEmbedded(t.Context(), dir, "", zap.NewNop())
	if err != nil {
		t.Fatalf("restart on the same dir: %v", err)
	}
	defer e2.Close()
	cli2 := newEmbeddedClient(t, e2)
	defer cli2.Close()
	checkKey(t, cli2, "/shardgate/test/key", "value")
}

func TestEmbeddedClientAddr(t *testing.T) {
	e, err := StartEmbedded(t.Context(), t.TempDir(), "127.0.0.1:0", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	eps := e.Endpoints()
	if len(eps) != 1 || eps[0] == "http://127.0.0.1:0" {
		t.Fatalf("Endpoints() = %q, want the bound port", eps)
	}
	cli := newEmbeddedClient(t, e)
	defer cli.Close()
	if _, err := cli.Put(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
}

func newEmbeddedClient(t *testing.T, e *Embedded) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

func checkKey(t *testing.T, cli *clientv3.Client, key, want string) {
	t.Helper()
	resp, err := cli.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != want {
		t.Fatalf("Get(%q) = %v, want %q", key, resp.Kvs, want)
	}
}

func TestEmbeddedClientCertAuth(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	dir := t.TempDir()
	ca, err := testcert.NewCA(dir, "etcd-ca")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue(dir, "etcd-server", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(dir, "etcd-client")
	if err != nil {
		t.Fatal(err)
	}
	e, err := StartEmbedded(t.Context(), filepath.Join(dir, "data"), "", zap.NewNop(), WithClientTLS(EmbeddedTLS{
		CertFile: server.CertFile, KeyFile: server.KeyFile, TrustedCAFile: ca.CertFile, ClientCertAuth: true,
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if eps := e.Endpoints(); len(eps) != 1 || !strings.HasPrefix(eps[0], "https://127.0.0.1:") {
		t.Fatalf("Endpoints() = %q, want one https URL", eps)
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	pair, err := tls.LoadX509KeyPair(client.CertFile, client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	withCert := newTLSClient(t, e, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}})
	defer withCert.Close()
	if _, err := withCert.Put(t.Context(), "k", "v"); err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	checkKey(t, withCert, "k", "v")

	withoutCert := newTLSClient(t, e, &tls.Config{RootCAs: roots})
	defer withoutCert.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := withoutCert.Get(ctx, "k"); err == nil {
		t.Fatal("client without a certificate: Get succeeded, want it refused")
	}

	plain, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{strings.Replace(e.Endpoints()[0], "https://", "http://", 1)},
		DialTimeout: time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel = context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := plain.Get(ctx, "k"); err == nil {
		t.Fatal("plain-text client: Get succeeded, want it refused")
	}
}

func TestEmbeddedTLSNeedsFiles(t *testing.T) {
	for _, o := range []EmbeddedTLS{
		{KeyFile: "k"},
		{CertFile: "c"},
		{CertFile: "c", KeyFile: "k", ClientCertAuth: true},
	} {
		if e, err := StartEmbedded(t.Context(), t.TempDir(), "", zap.NewNop(), WithClientTLS(o)); err == nil {
			e.Close()
			t.Errorf("StartEmbedded with %+v succeeded, want an error", o)
		}
	}
}

func newTLSClient(t *testing.T, e *Embedded, tc *tls.Config) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints(),
		DialTimeout: 5 * time.Second,
		TLS:         tc,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}
