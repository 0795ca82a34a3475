package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

// newClient returns a client of endpoints, closed when the test ends unless
// the test closes it first.
func newClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// keyLease returns the lease key is held by, 0 for none, and whether key
// exists.
func keyLease(t *testing.T, cli *clientv3.Client, key string) (clientv3.LeaseID, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, false
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease), true
}

func liveIDs(t *testing.T, s *Store) map[string]GatewayInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	live, err := s.LiveGateways(ctx)
	if err != nil {
		t.Fatalf("LiveGateways: %v", err)
	}
	return live
}

// stillThere checks, polling, that key stays held by lease for d: longer
// than its TTL, so the lease must have been kept alive.
func stillThere(t *testing.T, cli *clientv3.Client, key string, lease clientv3.LeaseID, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		if got, ok := keyLease(t, cli, key); !ok || got != lease {
			t.Fatalf("%s: present %v, lease %x; want it kept under lease %x", key, ok, got, lease)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatal("test ended")
		}
	}
}

func TestRegisterGateway(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()

	if live := liveIDs(t, s); len(live) != 0 {
		t.Fatalf("LiveGateways before any registration = %v", live)
	}
	started := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	g1 := GatewayInfo{ID: "gw-1.a:x", Addr: "10.0.0.1:6432", Started: started}
	r1, err := s.RegisterGateway(ctx, g1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := s.RegisterGateway(ctx, GatewayInfo{ID: "gw2", Addr: "10.0.0.2:6432"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()

	live := liveIDs(t, s)
	if len(live) != 2 {
		t.Fatalf("LiveGateways = %v, want gw-1.a:x and gw2", live)
	}
	if got := live[g1.ID]; got.ID != g1.ID || got.Addr != g1.Addr || !got.Started.Equal(started) {
		t.Fatalf("LiveGateways[%s] = %+v, want %+v", g1.ID, got, g1)
	}
	if got := live["gw2"]; got.Started.IsZero() || time.Since(got.Started) > time.Minute {
		t.Fatalf("gw2 Started = %v, want about now", got.Started)
	}

	// The key is bound to a lease of the TTL asked for.
	key := s.gatewayKey(g1.ID)
	lease, ok := keyLease(t, te.cli, key)
	if !ok || lease == 0 {
		t.Fatalf("%s: present %v, lease %x", key, ok, lease)
	}
	ttl, err := te.cli.TimeToLive(ctx, lease)
	if err != nil {
		t.Fatal(err)
	}
	if ttl.GrantedTTL != 1 {
		t.Fatalf("granted TTL %d s, want 1", ttl.GrantedTTL)
	}
	// Kept alive for three times its TTL.
	stillThere(t, te.cli, key, lease, 3*time.Second)

	// One live gateway per ID.
	if _, err := s.RegisterGateway(ctx, GatewayInfo{ID: g1.ID}, time.Second); !errors.Is(err, ErrConflict) {
		t.Fatalf("registering a live ID again = %v, want ErrConflict", err)
	}
	for _, bad := range []struct {
		id  string
		ttl time.Duration
	}{
		{"", time.Second},
		{"a/b", time.Second},
		{"a b", time.Second},
		{"..", time.Second},
		{strings.Repeat("a", 129), time.Second},
		{"ok", 0},
		{"ok", -time.Second},
	} {
		if r, err := s.RegisterGateway(ctx, GatewayInfo{ID: bad.id}, bad.ttl); err == nil {
			r.Close()
			t.Errorf("RegisterGateway(%q, %v) succeeded", bad.id, bad.ttl)
		}
	}
	if leases, err := te.cli.Leases(ctx); err != nil || len(leases.Leases) != 2 {
		t.Fatalf("leases after failed registrations: %v, %v; want the two of gw-1.a:x and gw2", leases, err)
	}

	// Close removes the key at once, not when the lease expires.
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := keyLease(t, te.cli, key); ok {
		t.Fatalf("%s still there after Close", key)
	}
	if err := r1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if live := liveIDs(t, s); len(live) != 1 || live["gw2"].ID != "gw2" {
		t.Fatalf("LiveGateways after Close = %v, want gw2", live)
	}
	// The ID is free again.
	r3, err := s.RegisterGateway(ctx, GatewayInfo{ID: g1.ID}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := r3.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRegistrationExpires shows the two ways a gateway stops without
// deregistering — its process dies (here: its etcd client is closed), or the
// context it registered with ends: the key disappears once the lease
// expires, and other gateways see it gone.
func TestRegistrationExpires(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")

	t.Run("client_gone", func(t *testing.T) {
		cli := newClient(t, te.e.Endpoints()...)
		r, err := NewStore(cli, "test").RegisterGateway(t.Context(), GatewayInfo{ID: "crashed"}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := liveIDs(t, s)["crashed"]; !ok {
			t.Fatal("not live after RegisterGateway")
		}
		cli.Close() // nothing keeps the lease alive nor revokes it
		eventually(t, func() bool { _, ok := liveIDs(t, s)["crashed"]; return !ok }, 10*time.Second,
			"registration gone once its lease expired")
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			r.Close() // its client is gone: may fail, but returns
		}()
		select {
		case <-closed:
		case <-time.After(2*revokeTimeout + time.Second):
			t.Fatal("Close hangs when the client is closed")
		}
	})

	t.Run("context_ended", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		r, err := s.RegisterGateway(ctx, GatewayInfo{ID: "ctx"}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		key := s.gatewayKey("ctx")
		lease, _ := keyLease(t, te.cli, key)
		stillThere(t, te.cli, key, lease, 2*time.Second)
		cancel()
		eventually(t, func() bool { _, ok := keyLease(t, te.cli, key); return !ok }, 10*time.Second,
			"registration gone once its context ended and its lease expired")
		if err := r.Close(); err != nil {
			t.Fatalf("Close after the lease expired: %v", err)
		}
	})
}

// cutProxy forwards TCP connections to target until cut, which drops every
// connection and refuses new ones until heal.
type cutProxy struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, target: target, conns: map[net.Conn]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		l.Close()
		p.cutOff()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return p.l.Addr().String() }

func (p *cutProxy) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			c.Close()
			up.Close()
		} else {
			p.conns[c], p.conns[up] = true, true
			p.wg.Go(func() { io.Copy(up, c); up.Close(); c.Close() })
			p.wg.Go(func() { io.Copy(c, up); up.Close(); c.Close() })
		}
		p.mu.Unlock()
	}
}

func (p *cutProxy) cutOff() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// TestRegistrationReturnsAfterPartition cuts a gateway off from a running
// etcd for longer than its TTL: its key disappears for everyone else, and
// comes back under a new lease once the gateway reaches etcd again.
func TestRegistrationReturnsAfterPartition(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	proxy := startCutProxy(t, strings.TrimPrefix(te.e.Endpoints()[0], "http://"))
	gwCli := newClient(t, "http://"+proxy.addr())

	info := GatewayInfo{ID: "gw1", Addr: "10.0.0.1:6432"}
	r, err := NewStore(gwCli, "test").RegisterGateway(t.Context(), info, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	key := s.gatewayKey("gw1")
	first, ok := keyLease(t, te.cli, key)
	if !ok {
		t.Fatal("not registered")
	}

	if lapsed, rejoined := r.Standing(); lapsed || rejoined != 0 {
		t.Fatalf("Standing of a fresh registration = %v, %d", lapsed, rejoined)
	}

	proxy.cutOff()
	cut := time.Now()
	eventually(t, func() bool { lapsed, _ := r.Standing(); return lapsed }, 10*time.Second,
		"the gateway knowing its lease may have lapsed")
	if _, ok := liveIDs(t, s)["gw1"]; !ok {
		t.Fatal("the gateway counted its registration lapsed only after etcd dropped it: a cutover could have gone on without it while it wrote")
	}
	eventually(t, func() bool { _, ok := liveIDs(t, s)["gw1"]; return !ok }, 10*time.Second,
		"registration gone while the gateway cannot reach etcd")
	t.Logf("the key disappeared %v after the cut", time.Since(cut))

	proxy.heal()
	healed := time.Now()
	eventually(t, func() bool { l, ok := keyLease(t, te.cli, key); return ok && l != first }, 30*time.Second,
		"registration back under a new lease after the partition healed")
	eventually(t, func() bool { lapsed, rejoined := r.Standing(); return !lapsed && rejoined > 0 }, 10*time.Second,
		"the gateway back in standing, with the revision it registered again at")
	t.Logf("the key came back %v after the partition healed", time.Since(healed))
	if got := liveIDs(t, s)["gw1"]; got.Addr != info.Addr {
		t.Fatalf("re-registered as %+v", got)
	}
	second, _ := keyLease(t, te.cli, key)
	stillThere(t, te.cli, key, second, 3*time.Second)

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := keyLease(t, te.cli, key); ok {
		t.Fatal("key still there after Close")
	}
}

// TestRegistrationSurvivesEtcdRestart stops etcd for longer than the
// registration's TTL and starts it again on the same address and data: the
// gateway is registered and kept alive afterwards.
func TestRegistrationSurvivesEtcdRestart(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	ctx := t.Context()
	dir := t.TempDir()
	e1, err := StartEmbedded(ctx, dir, "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e1.Close)
	addr := strings.TrimPrefix(e1.Endpoints()[0], "http://")
	var e2 *Embedded
	t.Cleanup(func() {
		if e2 != nil {
			e2.Close()
		}
	})
	cli := newClient(t, e1.Endpoints()...) // closed before the etcds
	s := NewStore(cli, "test")
	r, err := s.RegisterGateway(ctx, GatewayInfo{ID: "gw1", Addr: "a:1"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	key := s.gatewayKey("gw1")
	before, _ := keyLease(t, cli, key)

	stopping := time.Now()
	e1.Close()
	t.Logf("etcd stopped in %v", time.Since(stopping))
	// Longer than the TTL: the registration's keepalive gives up on the
	// lease and retries.
	tctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	_, err = s.LiveGateways(tctx)
	cancel()
	if err == nil {
		t.Fatal("LiveGateways succeeded with etcd stopped")
	}

	e2, err = StartEmbedded(ctx, dir, addr, zap.NewNop())
	if err != nil {
		t.Fatalf("restarting etcd on %s: %v", addr, err)
	}
	restarted := time.Now()
	eventually(t, func() bool { _, ok := keyLease(t, cli, key); return ok }, 30*time.Second,
		"registered after the etcd restart")
	t.Logf("registered %v after the restart", time.Since(restarted))
	// However it got there (the old lease, which the restarted etcd
	// refreshes, or a new one if the old one expired before the keepalive
	// reconnected), from some moment on it stays under one lease for longer
	// than its TTL: it is kept alive.
	eventually(t, func() bool {
		lease, ok := keyLease(t, cli, key)
		for end := time.Now().Add(3 * time.Second); ok && time.Now().Before(end); {
			time.Sleep(50 * time.Millisecond)
			l, present := keyLease(t, cli, key)
			ok = present && l == lease
		}
		return ok
	}, 30*time.Second, "registration kept alive after the etcd restart")
	if after, _ := keyLease(t, cli, key); after == before {
		t.Log("the restarted etcd kept the lease alive")
	} else {
		t.Log("the lease expired after the restart; re-registered under a new one")
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := keyLease(t, cli, key); ok {
		t.Fatal("key still there after Close")
	}
}

// TestGatewayNumbers: registered gateways hold different numbers, the
// lowest free ones; a number is free again once its gateway is gone.
func TestGatewayNumbers(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	var regs []*Registration
	for i := range 3 {
		r, err := s.RegisterGateway(ctx, GatewayInfo{ID: fmt.Sprintf("gw%d", i)}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		regs = append(regs, r)
		if n, ok := r.Number(); !ok || n != i {
			t.Fatalf("gateway %d holds number %d (%v), want %d", i, n, ok, i)
		}
	}
	if err := regs[1].Close(); err != nil {
		t.Fatal(err)
	}
	r, err := s.RegisterGateway(ctx, GatewayInfo{ID: "gw-next"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, ok := r.Number(); !ok || n != 1 {
		t.Fatalf("the next gateway holds number %d (%v), want 1, freed by the one that left", n, ok)
	}
}
