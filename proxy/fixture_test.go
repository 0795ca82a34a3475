package proxy

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// startShards starts two real Postgres shards and a real embedded etcd,
// registers the shards as s0 and s1 in cluster, and creates keyspace app
// (16 logical shards, 0-7 on s0 and 8-15 on s1) with testVSchema. Everything
// stops when the test ends.
func startShards(t testing.TB, cluster string) ([]*pgtest.Cluster, *topology.Store) {
	t.Helper()
	ctx := t.Context()
	shards := pgtest.Start(t, 2)
	etcd, err := topology.StartEmbedded(ctx, t.TempDir(), "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcd.Close)
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	store := topology.NewStore(cli, cluster)
	for i, c := range shards {
		if err := store.AddShard(ctx, topology.Shard{Name: fmt.Sprintf("s%d", i), DSN: c.DSN("postgres")}); err != nil {
			t.Fatal(err)
		}
	}
	f, err := vschema.Parse([]byte(testVSchema))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateKeyspace(ctx, "app", 16, []string{"s0", "s1"}); err != nil {
		t.Fatal(err)
	}
	if err := store.ApplyVSchemas(ctx, f.Keyspaces["app"]); err != nil {
		t.Fatal(err)
	}
	return shards, store
}

// serveLoopback serves srv on a free loopback port until the test ends,
// then closes it and checks that Serve ended as it should. It returns the
// address.
func serveLoopback(t testing.TB, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}
