package topology

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Watcher keeps the current Snapshot of a Store up to date. Readers call
// Snapshot at any time, from any goroutine; each call returns an immutable
// value, so a statement plans against one topology from start to finish.
//
// If etcd becomes unreachable the Watcher keeps the last snapshot it had, and
// catches up when etcd comes back.
type Watcher struct {
	store  *Store
	log    *zap.Logger
	cur    atomic.Pointer[Snapshot]
	ready  chan struct{}
	once   sync.Once
	notify func(*Snapshot)
}

// NewWatcher returns a Watcher for store. Call Run to start it. notify, if
// not nil, is called (from Run's goroutine) after each new snapshot is
// installed.
func NewWatcher(store *Store, log *zap.Logger, notify func(*Snapshot)) *Watcher {
	return &Watcher{store: store, log: log, ready: make(chan struct{}), notify: notify}
}

// Snapshot returns the current topology, or nil before the first load.
func (w *Watcher) Snapshot() *Snapshot { return w.cur.Load() }

// Ready is closed once the first snapshot is installed.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Run loads the topology and follows every change until ctx ends. It retries
// etcd failures with backoff forever, keeping the last good snapshot.
func (w *Watcher) Run(ctx context.Context) {
	const firstBackoff = 100 * time.Millisecond
	backoff := firstBackoff
	for ctx.Err() == nil {
		loaded, err := w.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if loaded {
			// The last attempt reached etcd: start over with short waits.
			backoff = firstBackoff
		}
		w.log.Warn("topology watch interrupted; serving from the last snapshot", zap.Error(err),
			zap.Int64("revision", w.revision()), zap.Duration("retry_in", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (w *Watcher) revision() int64 {
	if s := w.cur.Load(); s != nil {
		return s.Revision
	}
	return 0
}

// follow loads everything at one revision, then applies watch events from the
// next revision on. It returns when the watch breaks; loaded tells whether
// the load succeeded.
func (w *Watcher) follow(ctx context.Context) (loaded bool, err error) {
	loadCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := w.store.cli.Get(loadCtx, w.store.prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return false, err
	}
	kv := make(map[string][]byte, len(resp.Kvs))
	for _, e := range resp.Kvs {
		kv[string(e.Key)] = e.Value
	}
	rev := resp.Header.Revision
	w.install(rev, kv)

	// WithRequireLeader ends the watch when the etcd member loses its
	// cluster, so we reconnect (possibly elsewhere) instead of waiting on a
	// member that will never send events.
	wctx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer stop()
	for wr := range w.store.cli.Watch(wctx, w.store.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := wr.Err(); err != nil {
			return true, err
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				delete(kv, string(ev.Kv.Key))
			} else {
				kv[string(ev.Kv.Key)] = ev.Kv.Value
			}
		}
		if len(wr.Events) > 0 {
			w.install(wr.Header.Revision, kv)
		}
	}
	if ctx.Err() == nil {
		return true, errors.New("etcd closed the watch")
	}
	return true, ctx.Err()
}

// install builds a snapshot and swaps it in. A topology that does not build
// is logged and ignored: the gateway keeps routing by the last good one.
func (w *Watcher) install(rev int64, kv map[string][]byte) {
	snap, err := w.store.build(rev, kv)
	if err != nil {
		w.log.Error("ignoring invalid topology; keeping the last good snapshot", zap.Int64("revision", rev), zap.Error(err))
		return
	}
	w.cur.Store(snap)
	w.once.Do(func() { close(w.ready) })
	w.log.Info("topology installed", zap.Int64("revision", rev), zap.Int("keyspaces", len(snap.Keyspaces)), zap.Int("shards", len(snap.Shards)))
	if w.notify != nil {
		w.notify(snap)
	}
}
