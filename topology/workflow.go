package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardgate/shardgate/vschema"
)

// Move is one logical shard of a workflow leaving physical shard From for
// To.
type Move struct {
	Logical int    `json:"logical"`
	From    string `json:"from"`
	To      string `json:"to"`
}

// WorkflowPhase is where a reshard workflow is.
type WorkflowPhase string

// Workflow phases.
const (
	// PhasePlanned: the moves are recorded and reserved against other
	// workflows; nothing was made on any shard yet.
	PhasePlanned WorkflowPhase = "planned"
)

// Workflow is the etcd record of one reshard workflow, kept under
// /shardgate/<cluster>/workflows/<name>.
type Workflow struct {
	Name     string        `json:"name"`
	Keyspace string        `json:"keyspace"`
	Moves    []Move        `json:"moves"`
	Phase    WorkflowPhase `json:"phase"`
	// MapVersion is the keyspace's shard map version the moves were
	// planned against.
	MapVersion int64     `json:"map_version"`
	Created    time.Time `json:"created"`
	// Revision is the record's etcd modification revision, for updates
	// that must not overwrite a change made meanwhile.
	Revision int64 `json:"-"`
}

const workflowsDir = "workflows/"

func (s *Store) workflowKey(name string) string { return s.prefix + workflowsDir + name }

// CreateWorkflow records a new workflow in PhasePlanned. It refuses, with
// ErrConflict, a name in use and moves of a logical shard that another
// workflow of the keyspace moves; with ErrNotFound an unknown keyspace or
// target shard; and moves that do not start where the keyspace's current
// map places them.
func (s *Store) CreateWorkflow(ctx context.Context, w Workflow) error {
	if err := vschema.ValidName("workflow", w.Name); err != nil {
		return err
	}
	if len(w.Moves) == 0 {
		return fmt.Errorf("workflow %s: no logical shards to move", w.Name)
	}
	snap, err := s.Load(ctx)
	if err != nil {
		return err
	}
	ks := snap.Keyspace(w.Keyspace)
	if ks == nil {
		return errorf(ErrNotFound, "keyspace %s does not exist", w.Keyspace)
	}
	seen := map[int]bool{}
	for _, mv := range w.Moves {
		switch {
		case mv.Logical < 0 || mv.Logical >= ks.Map.LogicalCount:
			return fmt.Errorf("workflow %s: logical shard %d out of range: keyspace %s has 0-%d", w.Name, mv.Logical, w.Keyspace, ks.Map.LogicalCount-1)
		case seen[mv.Logical]:
			return fmt.Errorf("workflow %s: logical shard %d is moved twice", w.Name, mv.Logical)
		case snap.Shards[mv.To] == nil:
			return errorf(ErrNotFound, "workflow %s: shard %s is not registered (shardctl shard add)", w.Name, mv.To)
		case ks.Map.Placement[mv.Logical] != mv.From:
			return errorf(ErrConflict, "workflow %s: logical shard %d is on %s, not %s: the shard map changed since the plan was made", w.Name, mv.Logical, ks.Map.Placement[mv.Logical], mv.From)
		case mv.To == mv.From:
			return fmt.Errorf("workflow %s: logical shard %d is on %s already", w.Name, mv.Logical, mv.To)
		}
		seen[mv.Logical] = true
	}
	// Read the other workflows; the write below fails if any changed since.
	others, rev, err := s.readWorkflows(ctx)
	if err != nil {
		return err
	}
	if err := conflict(others, w); err != nil {
		return err
	}
	w.Phase = PhasePlanned
	w.MapVersion = ks.Map.Version
	if w.Created.IsZero() {
		w.Created = time.Now().UTC()
	}
	slices.SortFunc(w.Moves, func(a, b Move) int { return a.Logical - b.Logical })
	b, _ := json.Marshal(w)
	key := s.workflowKey(w.Name)
	tx, err := s.cli.Txn(ctx).
		If(append(s.unchangedSince(snap.Revision),
			clientv3.Compare(clientv3.ModRevision(s.prefix+workflowsDir).WithPrefix(), "<", rev+1),
			clientv3.Compare(clientv3.CreateRevision(key), "=", 0))...).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("create workflow %s: %w", w.Name, err)
	}
	if !tx.Succeeded {
		return errorf(ErrConflict, "create workflow %s: the topology or another workflow changed meanwhile, try again", w.Name)
	}
	return nil
}

// CheckWorkflowFree returns the error CreateWorkflow would for w's name or
// logical shards, as other workflows stand now.
func (s *Store) CheckWorkflowFree(ctx context.Context, w Workflow) error {
	others, _, err := s.readWorkflows(ctx)
	if err != nil {
		return err
	}
	return conflict(others, w)
}

// conflict refuses w's name if others hold it, and w's logical shards if
// another workflow of the keyspace moves one of them.
func conflict(others []Workflow, w Workflow) error {
	moving := map[int]bool{}
	for _, mv := range w.Moves {
		moving[mv.Logical] = true
	}
	for _, other := range others {
		if other.Name == w.Name {
			return errorf(ErrConflict, "workflow %s already exists", w.Name)
		}
		if other.Keyspace != w.Keyspace {
			continue
		}
		for _, mv := range other.Moves {
			if moving[mv.Logical] {
				return errorf(ErrConflict, "logical shard %d of keyspace %s is being moved by workflow %s already", mv.Logical, w.Keyspace, other.Name)
			}
		}
	}
	return nil
}

// Workflow returns the workflow named name, or ErrNotFound (wrapped).
func (s *Store) Workflow(ctx context.Context, name string) (*Workflow, error) {
	resp, err := s.cli.Get(ctx, s.workflowKey(name))
	if err != nil {
		return nil, fmt.Errorf("read workflow %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, errorf(ErrNotFound, "workflow %s does not exist", name)
	}
	var w Workflow
	if err := json.Unmarshal(resp.Kvs[0].Value, &w); err != nil {
		return nil, fmt.Errorf("workflow record %s: %w", name, err)
	}
	w.Revision = resp.Kvs[0].ModRevision
	return &w, nil
}

// Workflows returns every workflow of the cluster by name.
func (s *Store) Workflows(ctx context.Context) ([]Workflow, error) {
	all, _, err := s.readWorkflows(ctx)
	return all, err
}

// readWorkflows returns every workflow by name and the etcd revision read.
func (s *Store) readWorkflows(ctx context.Context) ([]Workflow, int64, error) {
	resp, err := s.cli.Get(ctx, s.prefix+workflowsDir, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list workflows: %w", err)
	}
	out := make([]Workflow, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var w Workflow
		if err := json.Unmarshal(kv.Value, &w); err != nil {
			return nil, 0, fmt.Errorf("workflow record %s: %w", kv.Key, err)
		}
		w.Revision = kv.ModRevision
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Workflow) int { return strings.Compare(a.Name, b.Name) })
	return out, resp.Header.Revision, nil
}

// DeleteWorkflow removes w's record if it has not changed since w was read
// (ErrConflict otherwise, ErrNotFound if it is gone).
func (s *Store) DeleteWorkflow(ctx context.Context, w *Workflow) error {
	key := s.workflowKey(w.Name)
	tx, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", w.Revision)).
		Then(clientv3.OpDelete(key)).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return fmt.Errorf("delete workflow %s: %w", w.Name, err)
	}
	if !tx.Succeeded {
		if len(tx.Responses[0].GetResponseRange().Kvs) == 0 {
			return errorf(ErrNotFound, "workflow %s does not exist", w.Name)
		}
		return errorf(ErrConflict, "workflow %s changed meanwhile, try again", w.Name)
	}
	return nil
}
