package topology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// ErrLockLost is returned (wrapped) by a WorkflowLock's writes once the
// lock is no longer held: its lease expired, so another controller may
// drive the workflow now.
var ErrLockLost = errors.New("the workflow's lock is lost")

// WorkflowLock is the right to drive one workflow: an etcd mutex under a
// lease, so that one controller at a time changes the workflow's shards
// and record, and a controller that dies leaves the lock to the next once
// its lease expires. Its writes to the record are made only while it is
// held.
type WorkflowLock struct {
	store   *Store
	name    string
	session *concurrency.Session
	mutex   *concurrency.Mutex
}

func (s *Store) workflowLockKey(name string) string { return s.prefix + "workflow-locks/" + name }

// LockWorkflow waits until it holds workflow name's lock, or ctx ends. ttl
// is how long the lock outlives a controller that stopped keeping it
// alive (whole seconds, at least one).
func (s *Store) LockWorkflow(ctx context.Context, name string, ttl time.Duration) (*WorkflowLock, error) {
	return s.lockWorkflow(ctx, name, ttl, false)
}

// TryLockWorkflow is LockWorkflow that does not wait: it returns
// ErrConflict (wrapped) while another holds the lock.
func (s *Store) TryLockWorkflow(ctx context.Context, name string, ttl time.Duration) (*WorkflowLock, error) {
	return s.lockWorkflow(ctx, name, ttl, true)
}

func (s *Store) lockWorkflow(ctx context.Context, name string, ttl time.Duration, try bool) (*WorkflowLock, error) {
	session, err := concurrency.NewSession(s.cli, concurrency.WithTTL(max(int((ttl+time.Second-1)/time.Second), 1)))
	if err != nil {
		return nil, fmt.Errorf("workflow %s: a lease for its lock: %w", name, err)
	}
	mutex := concurrency.NewMutex(session, s.workflowLockKey(name))
	if try {
		err = mutex.TryLock(ctx)
		if errors.Is(err, concurrency.ErrLocked) {
			err = errorf(ErrConflict, "workflow %s is driven by another controller", name)
		}
	} else {
		err = mutex.Lock(ctx)
	}
	if err != nil {
		_ = session.Close()
		return nil, err
	}
	return &WorkflowLock{store: s, name: name, session: session, mutex: mutex}, nil
}

// WorkflowDriven reports whether a controller holds (or waits for)
// workflow name's lock: one whose lease expired holds it no more.
func (s *Store) WorkflowDriven(ctx context.Context, name string) (bool, error) {
	resp, err := s.cli.Get(ctx, s.workflowLockKey(name)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("workflow %s: its lock: %w", name, err)
	}
	return resp.Count > 0, nil
}

// Done is closed once the lock's lease is gone: the lock is lost.
func (l *WorkflowLock) Done() <-chan struct{} { return l.session.Done() }

// Unlock gives the lock up.
func (l *WorkflowLock) Unlock() {
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	_ = l.mutex.Unlock(ctx)
	_ = l.session.Close()
}

// Update changes the workflow's record with change, while the lock is
// held, and returns the record as written. change may be called more than
// once, each time on the record as it is then (an operator's request may
// have come meanwhile); an error from it is returned as it is.
func (l *WorkflowLock) Update(ctx context.Context, change func(*Workflow) error) (*Workflow, error) {
	return l.store.updateWorkflow(ctx, l.name, change, l.mutex.IsOwner())
}

// Delete removes the workflow's record while the lock is held.
func (l *WorkflowLock) Delete(ctx context.Context) error {
	tx, err := l.store.cli.Txn(ctx).If(l.mutex.IsOwner()).Then(clientv3.OpDelete(l.store.workflowKey(l.name))).Commit()
	if err != nil {
		return fmt.Errorf("delete workflow %s: %w", l.name, err)
	}
	if !tx.Succeeded {
		return fmt.Errorf("delete workflow %s: %w", l.name, ErrLockLost)
	}
	return nil
}

// UpdateWorkflow changes workflow name's record with change, as
// WorkflowLock.Update does, without holding its lock: for an operator's
// request, which the controller picks up.
func (s *Store) UpdateWorkflow(ctx context.Context, name string, change func(*Workflow) error) (*Workflow, error) {
	return s.updateWorkflow(ctx, name, change)
}

func (s *Store) updateWorkflow(ctx context.Context, name string, change func(*Workflow) error, guards ...clientv3.Cmp) (*Workflow, error) {
	key := s.workflowKey(name)
	for {
		w, err := s.Workflow(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := change(w); err != nil {
			return nil, err
		}
		w.Updated = time.Now().UTC()
		b, _ := json.Marshal(w)
		tx, err := s.cli.Txn(ctx).
			If(append(guards, clientv3.Compare(clientv3.ModRevision(key), "=", w.Revision))...).
			Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return nil, fmt.Errorf("update workflow %s: %w", name, err)
		}
		if tx.Succeeded {
			w.Revision = tx.Header.Revision
			return w, nil
		}
		if len(guards) > 0 {
			// Either the record changed or the lock is lost; only the
			// second is final.
			resp, err := s.cli.Txn(ctx).If(guards...).Commit()
			if err != nil {
				return nil, fmt.Errorf("update workflow %s: %w", name, err)
			}
			if !resp.Succeeded {
				return nil, fmt.Errorf("update workflow %s: %w", name, ErrLockLost)
			}
		}
	}
}
