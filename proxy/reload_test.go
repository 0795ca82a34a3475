package proxy

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/shardgate/shardgate/topology"
)

func TestReloadServerLimits(t *testing.T) {
	srv := NewServer(Config{Log: zap.NewNop(), MaxClientConns: 1, StartupTimeout: time.Second, MaxMessageSize: 10})
	if msg := srv.admit(&session{}, "alice"); msg != "" {
		t.Fatalf("first client refused: %s", msg)
	}
	if msg := srv.admit(&session{}, "bob"); !strings.Contains(msg, "too many clients") {
		t.Fatalf("second client past max_client_conns 1: %q", msg)
	}
	srv.SetLimits(Limits{MaxClientConns: 3, MaxClientConnsPerUser: 1, StartupTimeout: 3 * time.Second, MaxMessageSize: 100})
	if msg := srv.admit(&session{}, "alice"); !strings.Contains(msg, `too many connections for role "alice"`) {
		t.Fatalf("second alice past max_client_conns_per_user 1: %q", msg)
	}
	if msg := srv.admit(&session{}, "bob"); msg != "" {
		t.Fatalf("bob refused under the raised limit: %s", msg)
	}
	if got := srv.startupTimeout(); got != 3*time.Second {
		t.Errorf("startup timeout %s", got)
	}
	if got := srv.maxMessageSize(); got != 100 {
		t.Errorf("max message size %d", got)
	}
}

func TestReloadPoolConfig(t *testing.T) {
	p := NewPools(DefaultPoolConfig, zap.NewNop())
	defer p.Close()
	// Making a pool does not connect, so the shard need not exist.
	sh := &topology.Shard{Name: "s0", DSN: "host=127.0.0.1 port=1 dbname=app user=app"}
	first, err := p.get(sh, "", false)
	if err != nil {
		t.Fatal(err)
	}

	// A new acquire timeout needs no new pool.
	cfg := DefaultPoolConfig
	cfg.AcquireTimeout = time.Second
	p.SetConfig(cfg)
	if sp, _ := p.get(sh, "", false); sp != first {
		t.Fatal("the pool was replaced for a new acquire timeout")
	}
	if got := p.acquireTimeout(); got != time.Second {
		t.Fatalf("acquire timeout %s", got)
	}

	// A new size does: the next borrowing gets a pool of that size.
	cfg.MaxConns = 3
	cfg.IdleTimeout = time.Minute
	p.SetConfig(cfg)
	second, err := p.get(sh, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if second == first {
		t.Fatal("the pool was kept though its size changed")
	}
	if pc := second.pool.Config(); pc.MaxConns != 3 || pc.MaxConnIdleTime != time.Minute {
		t.Fatalf("new pool: max %d, idle timeout %s", pc.MaxConns, pc.MaxConnIdleTime)
	}
}
