package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// GatewayInfo is what a running gateway publishes about itself under
// /shardgate/<cluster>/gateways/<id>.
type GatewayInfo struct {
	// ID names this gateway process. It must be unique per process start
	// (for example host name plus a random suffix): 2PC records name their
	// coordinator by it, and a record is resolved by others only once no
	// gateway of that ID is live.
	ID string `json:"id"`
	// Addr is where clients or other gateways reach it (host:port).
	Addr    string    `json:"addr"`
	Started time.Time `json:"started"`
}

// maxIDLen is the longest gateway ID.
const maxIDLen = 128

// revokeTimeout bounds how long Registration.Close waits for etcd.
const revokeTimeout = 2 * time.Second

func (s *Store) gatewayKey(id string) string { return s.prefix + "gateways/" + id }

// Registration is a gateway's live entry in etcd, kept by RegisterGateway.
// Safe for concurrent use.
type Registration struct {
	store *Store
	key   string
	value string
	ttl   int64 // seconds

	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	mu    sync.Mutex
	lease clientv3.LeaseID // the lease the key was last put under; 0 if none
	// confirmed is when etcd last answered that the lease lives; rejoined
	// is the etcd revision at which the key was put again under a new
	// lease after the old one was lost (0: never).
	confirmed time.Time
	rejoined  int64
	// number is the gateway number held under lease (see Number), -1
	// for none.
	number int

	closeOnce sync.Once
	closeErr  error
}

// RegisterGateway puts info under a new lease of ttl (rounded up to whole
// seconds; etcd may raise a very short one to its minimum) and keeps the lease
// alive in the background until Close is called or ctx ends — ctx bounds the
// registration's whole life, not just this call. If etcd is unreachable for
// longer than ttl, the lease expires and the key disappears; once etcd is
// reachable again the key is put back under a new lease. If ctx ends, the
// key stays until its lease expires; Close removes it at once.
//
// It returns ErrConflict (wrapped) if a gateway of the same ID is registered
// already. Started is set to now if zero.
func (s *Store) RegisterGateway(ctx context.Context, info GatewayInfo, ttl time.Duration) (*Registration, error) {
	if err := validSegment("gateway id", info.ID, maxIDLen); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("gateway %s: lease TTL %v must be positive", info.ID, ttl)
	}
	if info.Started.IsZero() {
		info.Started = time.Now()
	}
	b, _ := json.Marshal(info)
	r := &Registration{
		store: s,
		key:   s.gatewayKey(info.ID),
		value: string(b),
		ttl:   int64((ttl + time.Second - 1) / time.Second),
		done:  make(chan struct{}),
	}
	lease, _, err := r.register(ctx)
	if err != nil {
		return nil, fmt.Errorf("register gateway %s: %w", info.ID, err)
	}
	r.lease, r.confirmed = lease, time.Now()
	r.number = r.claimNumber(ctx, lease)
	runCtx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	go r.run(runCtx, lease)
	return r, nil
}

// register grants a lease and creates the key under it, unless the key
// exists. On failure it leaves no lease behind (best effort).
func (r *Registration) register(ctx context.Context) (clientv3.LeaseID, int64, error) {
	cli := r.store.cli
	g, err := cli.Grant(ctx, r.ttl)
	if err != nil {
		return 0, 0, err
	}
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(r.key), "=", 0)).
		Then(clientv3.OpPut(r.key, r.value, clientv3.WithLease(g.ID))).Commit()
	if err == nil && !resp.Succeeded {
		err = errorf(ErrConflict, "a gateway of this ID is registered already (%s)", r.key)
	}
	if err != nil {
		_ = r.revoke(g.ID)
		return 0, 0, err
	}
	return g.ID, resp.Header.Revision, nil
}

// Standing says whether this gateway may have dropped out of the
// registered gateways that a reshard cutover waits for: lapsed while
// etcd has not confirmed its lease for so long that it may have expired
// (a cutover may then go on without this gateway), and, once it is
// registered again under a new lease, the etcd revision at which it was
// (a topology older than that may miss a cutover made meanwhile).
func (r *Registration) Standing() (lapsed bool, rejoined int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Keepalives go out every third of the TTL: one answered renewed the
	// lease for a whole TTL from a moment shortly before the answer.
	safe := time.Duration(r.ttl) * time.Second * 2 / 3
	return time.Since(r.confirmed) > safe, r.rejoined
}

// MaxGateways is how many gateway numbers there are (see Number).
const MaxGateways = 1024

func (s *Store) gatewayNumberKey(n int) string {
	return s.prefix + "gatewaynums/" + strconv.Itoa(n)
}

// Number is the gateway's number, unique among the registered gateways
// while ok: snowflake ids carry it. It is not ok while the gateway may
// have dropped out of the registered gateways (Standing), when another
// may take the number, nor when all were taken. A gateway registered
// again under a new lease holds a number claimed anew, maybe another.
func (r *Registration) Number() (n int, ok bool) {
	lapsed, _ := r.Standing()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.number, r.number >= 0 && !lapsed
}

// claimNumber claims the lowest free gateway number under lease, -1 if
// none could be.
func (r *Registration) claimNumber(ctx context.Context, lease clientv3.LeaseID) int {
	cli := r.store.cli
	for range 3 { // another gateway may take the one picked
		resp, err := cli.Get(ctx, r.store.prefix+"gatewaynums/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return -1
		}
		taken := map[int]bool{}
		for _, kv := range resp.Kvs {
			if n, err := strconv.Atoi(strings.TrimPrefix(string(kv.Key), r.store.prefix+"gatewaynums/")); err == nil {
				taken[n] = true
			}
		}
		n := 0
		for taken[n] {
			n++
		}
		if n >= MaxGateways {
			return -1
		}
		key := r.store.gatewayNumberKey(n)
		txn, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, r.id(), clientv3.WithLease(lease))).Commit()
		if err != nil {
			return -1
		}
		if txn.Succeeded {
			return n
		}
	}
	return -1
}

// confirm notes that etcd answered that the lease lives.
func (r *Registration) confirm() {
	r.mu.Lock()
	r.confirmed = time.Now()
	r.mu.Unlock()
}

// run keeps lease alive until ctx ends, registering anew whenever the key
// is no longer held by the current lease.
func (r *Registration) run(ctx context.Context, lease clientv3.LeaseID) {
	defer close(r.done)
	cli := r.store.cli
	// Each attempt to reach etcd gets a bounded time, so a dead connection
	// does not hold the loop past the moment etcd is back.
	attempt := min(max(time.Duration(r.ttl)*time.Second, time.Second), 5*time.Second)
	for {
		// The channel closes when ctx ends, when etcd says the lease is
		// gone, or when no keepalive was answered for a whole TTL.
		ka, err := cli.KeepAlive(ctx, lease)
		if err == nil {
			for range ka {
				r.confirm()
			}
		}
		// A keepalive that could not even start is not retried at once.
		wait := err != nil
		backoff := 100 * time.Millisecond
		for {
			if wait {
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 2*time.Second)
			}
			wait = true
			if ctx.Err() != nil || cli.Ctx().Err() != nil {
				return // Close, or the caller's ctx or client ended
			}
			if next, err := r.recover(ctx, lease, attempt); err == nil {
				lease = next
				break
			}
		}
	}
}

// recover returns the lease to keep alive from now on: lease itself if the
// key is still held by it (a key under a lease proves the lease alive), or a
// new one under which it put the key again.
func (r *Registration) recover(ctx context.Context, lease clientv3.LeaseID, timeout time.Duration) (clientv3.LeaseID, error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := r.store.cli.Txn(actx).
		If(clientv3.Compare(clientv3.LeaseValue(r.key), "=", lease)).Commit()
	if err != nil {
		return 0, err
	}
	if resp.Succeeded {
		r.confirm()
		return lease, nil
	}
	next, rev, err := r.register(actx)
	if err != nil {
		return 0, err
	}
	number := r.claimNumber(actx, next)
	r.mu.Lock()
	r.lease, r.confirmed, r.rejoined, r.number = next, time.Now(), rev, number
	r.mu.Unlock()
	// The old lease holds no key any more; if it is still alive, don't wait
	// for it to expire.
	_ = r.revoke(lease)
	return next, nil
}

// revoke revokes lease, waiting at most revokeTimeout in all. It reports
// an error only if the key may still be held by lease.
func (r *Registration) revoke(lease clientv3.LeaseID) error {
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	_, err := r.store.cli.Revoke(ctx, lease)
	if err == nil {
		return nil
	}
	// A lease that expired already cannot be revoked; what matters is
	// whether it still holds the key.
	resp, cerr := r.store.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(r.key), "=", lease)).Commit()
	if cerr == nil && !resp.Succeeded {
		return nil
	}
	return err
}

// id is the gateway's ID.
func (r *Registration) id() string { return strings.TrimPrefix(r.key, r.store.prefix+"gateways/") }

// Close stops keeping the registration alive and revokes its lease, which
// removes the key at once. It waits at most a few seconds for etcd; if etcd
// does not answer, the key disappears when the lease expires. Calling it
// again returns the first result.
func (r *Registration) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		<-r.done
		r.mu.Lock()
		lease := r.lease
		r.mu.Unlock()
		if err := r.revoke(lease); err != nil {
			r.closeErr = fmt.Errorf("deregister %s: %w", r.key, err)
		}
	})
	return r.closeErr
}

// LiveGateways returns the registered gateways by ID: those whose lease
// is alive.
func (s *Store) LiveGateways(ctx context.Context) (map[string]GatewayInfo, error) {
	dir := s.prefix + "gateways/"
	resp, err := s.cli.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list gateways: %w", err)
	}
	out := make(map[string]GatewayInfo, len(resp.Kvs))
	for _, e := range resp.Kvs {
		var g GatewayInfo
		if err := json.Unmarshal(e.Value, &g); err != nil {
			return nil, fmt.Errorf("gateway key %s: %w", e.Key, err)
		}
		g.ID = strings.TrimPrefix(string(e.Key), dir)
		out[g.ID] = g
	}
	return out, nil
}
