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

	// through is the etcd revision up to which the current snapshot holds
	// every topology change: its own, or later once etcd told the watch
	// that nothing changed since. progress asks the watch for that news.
	through  atomic.Int64
	progress chan struct{}
}

// NewWatcher returns a Watcher for store. Call Run to start it. notify, if
// not nil, is called (from Run's goroutine) after each new snapshot is
// installed.
func NewWatcher(store *Store, log *zap.Logger, notify func(*Snapshot)) *Watcher {
	return &Watcher{store: store, log: log, ready: make(chan struct{}), notify: notify, progress: make(chan struct{}, 1)}
}

// Current reports whether the current snapshot holds every topology
// change made up to etcd revision rev. When it does not know yet, it asks
// etcd (at most one request at a time) to tell the watch how far it is,
// so a caller polling it sees true soon after the watch caught up, even
// while no topology key changes.
func (w *Watcher) Current(rev int64) bool {
	if w.through.Load() >= rev {
		return true
	}
	select {
	case w.progress <- struct{}{}:
	default:
	}
	return false
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
// next revision on. It returns when a watch breaks; loaded tells whether the
// load succeeded.
func (w *Watcher) follow(ctx context.Context) (loaded bool, err error) {
	loadCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	rev, kv, skipped, err := w.store.readTopology(loadCtx)
	cancel()
	if err != nil {
		return false, err
	}
	for _, err := range skipped {
		w.logSkippedUser(err)
	}
	w.install(rev, kv)

	// One watch over the range from keyspaces/ to the end of shards/, which
	// holds both topology subtrees ("keyspaces/" < "shards/"), and one over
	// users/, so etcd never sends the gateway and 2PC keys that change on
	// every multi-shard commit ("gateways/" sorts before the first range,
	// "twopc/" between the two). The few other keys that sort into the
	// ranges are dropped here.
	from := w.store.prefix + keyspacesDir
	to := clientv3.GetPrefixRangeEnd(w.store.prefix + shardsDir)
	// WithRequireLeader ends the watches when the etcd member loses its
	// cluster, so we reconnect (possibly elsewhere) instead of waiting on a
	// member that will never send events. Progress notifications keep the
	// resume revision fresh while nothing in a range changes, so a
	// reconnect after a quiet hour does not hit a compacted revision. Both
	// watches share wctx, hence one gRPC stream.
	wctx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer stop()
	topo := w.store.cli.Watch(wctx, from, clientv3.WithRange(to), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	users := w.store.cli.Watch(wctx, w.store.prefix+usersDir, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	// The two watches are independent streams of events: either may be
	// ahead of the other. A snapshot's Revision is that of the topology
	// watch, so that a gateway acknowledging it has really applied every
	// topology change up to it; users may be more recent than it.
	topoRev := rev
	var asked time.Time
	for {
		var wr clientv3.WatchResponse
		var ok, isTopo bool
		select {
		case wr, ok = <-topo:
			isTopo = true
		case wr, ok = <-users:
		case <-w.progress:
			if time.Since(asked) >= progressEvery {
				asked = time.Now()
				w.requestProgress(wctx)
			}
			continue
		}
		if !ok {
			break
		}
		if err := wr.Err(); err != nil {
			return true, err
		}
		changed := false
		for _, ev := range wr.Events {
			key := string(ev.Kv.Key)
			if isTopo {
				if !w.store.isTopologyKey(key) {
					continue
				}
				changed = true
				if ev.Type == clientv3.EventTypeDelete {
					delete(kv, key)
				} else {
					kv[key] = ev.Kv.Value
				}
				continue
			}
			// A user record that does not parse counts as deleted: that
			// user cannot log in until it is fixed.
			admit := false
			if ev.Type != clientv3.EventTypeDelete {
				var err error
				if admit, err = w.store.admit(key, ev.Kv.Value); err != nil {
					w.logSkippedUser(err)
				}
			}
			_, had := kv[key]
			switch {
			case admit:
				kv[key] = ev.Kv.Value
				changed = true
			case had:
				delete(kv, key)
				changed = true
			}
		}
		if isTopo {
			topoRev = max(topoRev, wr.Header.Revision)
		}
		if changed {
			w.install(topoRev, kv)
		} else if isTopo {
			w.through.Store(max(w.through.Load(), topoRev))
		}
	}
	if ctx.Err() == nil {
		return true, errors.New("etcd closed the watch")
	}
	return true, ctx.Err()
}

// progressEvery spaces the progress requests of waiting callers.
const progressEvery = 50 * time.Millisecond

// requestProgress asks etcd for a progress notification on the watches of
// wctx, in the background: the request waits on the stream whose
// responses this goroutine reads. etcd answers once the watches caught up
// with its current revision; an unanswered request is asked again by the
// next Current.
func (w *Watcher) requestProgress(wctx context.Context) {
	go func() {
		ctx, cancel := context.WithTimeout(wctx, 5*time.Second)
		defer cancel()
		_ = w.store.cli.RequestProgress(ctx)
	}()
}

func (w *Watcher) logSkippedUser(err error) {
	w.log.Warn("leaving out a user record that does not parse; that user cannot log in until it is fixed", zap.Error(err))
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
	w.through.Store(max(w.through.Load(), rev))
	w.once.Do(func() { close(w.ready) })
	w.log.Info("topology installed", zap.Int64("revision", rev), zap.Int("keyspaces", len(snap.Keyspaces)), zap.Int("shards", len(snap.Shards)), zap.Int("users", len(snap.Users)))
	if w.notify != nil {
		w.notify(snap)
	}
}
