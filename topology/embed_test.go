package topology

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
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
