package topology

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// txnGroup writes the conditional one-key writes of concurrent callers as
// one etcd transaction, each caller's write a transaction nested in it: one
// raft proposal and one WAL sync for many two-phase commits instead of one
// each. While a group is on its way to etcd, new writes queue; the next group
// takes them all. A lone write goes out at once, as a plain transaction.
type txnGroup struct {
	cli *clientv3.Client

	mu      sync.Mutex
	queue   []*groupedWrite
	running bool

	// beforeWrite, when set (by tests), runs before each group is sent.
	beforeWrite func(n int)
}

// groupedWrite is one caller's write: if every cmp holds, then ops.
type groupedWrite struct {
	key  string // every op is on key; a group holds a key once
	cmps []clientv3.Cmp
	ops  []clientv3.Op

	succeeded bool
	err       error
	done      chan struct{}
}

// maxGroup bounds a group's writes below etcd's default limit of 128
// operations per transaction.
const maxGroup = 64

// groupTimeout bounds one group's round trip. A caller whose own context
// ends first stops waiting, its outcome unknown, as for any etcd write.
const groupTimeout = 10 * time.Second

// write runs the write when its turn comes and reports whether its
// comparisons held.
func (g *txnGroup) write(ctx context.Context, key string, cmps []clientv3.Cmp, ops ...clientv3.Op) (bool, error) {
	w := &groupedWrite{key: key, cmps: cmps, ops: ops, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	if !g.running {
		g.running = true
		go g.drain()
	}
	g.mu.Unlock()
	select {
	case <-w.done:
		return w.succeeded, w.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// drain sends groups until the queue is empty.
func (g *txnGroup) drain() {
	for {
		g.mu.Lock()
		group := g.next()
		if len(group) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		g.send(group)
	}
}

// next takes the next group off the queue: up to maxGroup writes, each key
// once (etcd refuses a transaction that writes a key twice); a write to a
// key already in the group waits for the next one.
func (g *txnGroup) next() []*groupedWrite {
	var group, rest []*groupedWrite
	keys := map[string]bool{}
	for _, w := range g.queue {
		if len(group) == maxGroup || keys[w.key] {
			rest = append(rest, w)
			continue
		}
		keys[w.key] = true
		group = append(group, w)
	}
	g.queue = rest
	return group
}

func (g *txnGroup) send(group []*groupedWrite) {
	if g.beforeWrite != nil {
		g.beforeWrite(len(group))
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	if len(group) == 1 {
		w := group[0]
		resp, err := g.cli.Txn(ctx).If(w.cmps...).Then(w.ops...).Commit()
		if err == nil {
			w.succeeded = resp.Succeeded
		}
		w.err = err
		close(w.done)
		return
	}
	nested := make([]clientv3.Op, len(group))
	for i, w := range group {
		nested[i] = clientv3.OpTxn(w.cmps, w.ops, nil)
	}
	resp, err := g.cli.Txn(ctx).Then(nested...).Commit()
	for i, w := range group {
		if err == nil {
			w.succeeded = resp.Responses[i].GetResponseTxn().GetSucceeded()
		}
		w.err = err
		close(w.done)
	}
}
