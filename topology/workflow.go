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
	// PhaseCopying: the targets' tables are made and each source's moving
	// rows are being copied under its slot's snapshot.
	PhaseCopying WorkflowPhase = "copying"
	// PhaseCatchingUp: every source is copied; its change stream applies
	// what the sources commit to the targets.
	PhaseCatchingUp WorkflowPhase = "catching_up"
	// PhaseCuttingOver: writes move to the targets batch by batch, each
	// behind a fence at every gateway; the streams go on for the rest.
	PhaseCuttingOver WorkflowPhase = "cutting_over"
	// PhaseCutOver: every batch's writes go to its target.
	PhaseCutOver WorkflowPhase = "cut_over"
	// PhaseReversing: the batches cut over move their writes back to
	// their sources, one by one; then the workflow is catching up again.
	PhaseReversing WorkflowPhase = "reversing"
)

// Workflow requests: what an operator asked of the controller driving a
// workflow.
const (
	// RequestCancel: undo the workflow (before any write cutover): stop
	// its streams, drop its slots and publications, take off the targets
	// what it put there, and remove its record.
	RequestCancel = "cancel"
	// RequestCutover: move writes to the targets, batch by batch, once
	// catching up.
	RequestCutover = "cutover"
	// RequestComplete: once every batch is cut over, stop the streams,
	// drop the slots and publications, delete the moved rows from the
	// sources, and remove the record.
	RequestComplete = "complete"
	// RequestReverse: move the writes of every batch cut over back to its
	// source (the reverse stream kept it complete), then catch up again.
	RequestReverse = "reverse"
)

// VerifyResult is what a verify of a workflow found.
type VerifyResult struct {
	At          time.Time     `json:"at"`
	Phase       WorkflowPhase `json:"phase"`
	Rows        int64         `json:"rows"`
	Differences int           `json:"differences"`
	// CaughtUp is false when the streams did not catch up between its
	// rounds: its differences may be lag.
	CaughtUp bool `json:"caught_up"`
}

// Batch is logical shards First..Last whose writes move to To at once.
type Batch struct {
	First int    `json:"first"`
	Last  int    `json:"last"`
	From  string `json:"from"`
	To    string `json:"to"`
	Done  bool   `json:"done"`
	// Attempts counts the fences raised for it; a fence is given up when
	// the gateways or the stream did not get there in time.
	Attempts int `json:"attempts"`
	// PauseMS is how long writes to it were held at the gateways: from
	// the fence until every gateway applied the new placement.
	PauseMS float64   `json:"pause_ms,omitempty"`
	At      time.Time `json:"at,omitempty"`
	// FlipLSN is the target's WAL position when the batch's writes moved
	// there (recorded just before): the reverse stream carries the
	// batch's changes made after it back to the source.
	FlipLSN string `json:"flip_lsn,omitempty"`
	// BackLSN is the source's WAL position when the batch's writes moved
	// back to it (a reverse): the forward stream carries its changes made
	// after it, not those the reverse stream applied there before.
	BackLSN string `json:"back_lsn,omitempty"`
	// Reversed is set once writes moved back; ReversePauseMS is how
	// long they were held for that.
	Reversed       bool    `json:"reversed,omitempty"`
	ReversePauseMS float64 `json:"reverse_pause_ms,omitempty"`
}

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
	// Estimate is what the plan expected to move: rows and bytes of the
	// sharded tables' moving logical shards and of the reference tables
	// once per target, from the sources' statistics.
	Estimate Size `json:"estimate"`
	// CopyStarted is when the copy began, for its rate.
	CopyStarted time.Time `json:"copy_started,omitempty"`
	// Sources holds each source shard's progress by name, once the copy
	// began.
	Sources map[string]*SourceProgress `json:"sources,omitempty"`
	// Reverse holds, per target shard, the progress of the stream that
	// carries the changes of its cut-over batches back to their sources.
	Reverse map[string]*SourceProgress `json:"reverse,omitempty"`
	// Created tables are those the workflow made on each target (which a
	// cancel drops), recorded before they are made.
	CreatedTables map[string][]string `json:"created_tables,omitempty"`
	// Request is what an operator asked the controller to do next ("" for
	// nothing; see RequestCancel).
	Request string `json:"request,omitempty"`
	// BatchSize is the most logical shards a cutover batch holds, as the
	// cutover request gave it.
	BatchSize int `json:"batch_size,omitempty"`
	// Batches are the write cutover's steps, planned when it begins.
	Batches []Batch `json:"batches,omitempty"`
	// Gate is when shadow reads' differences refuse the write cutover
	// (see ShadowGate).
	Gate ShadowGate `json:"shadow_gate"`
	// Throttle is when the copy and the streams back off, and whether
	// they do now (see Throttle).
	Throttle Throttle `json:"throttle"`
	// Verify is the last 'reshard verify' of the workflow, nil before.
	Verify *VerifyResult `json:"verify,omitempty"`
	// Fence is the fence the controller raised and has not seen lifted:
	// a controller that takes over lifts it first.
	Fence string `json:"fence,omitempty"`
	// Controller names the process that drives the workflow now, "" when
	// none does.
	Controller string `json:"controller,omitempty"`
	// Error is the last thing that failed, which the controller retries;
	// "" once it went on.
	Error   string    `json:"error,omitempty"`
	Updated time.Time `json:"updated"`
	// Revision is the record's etcd modification revision, for updates
	// that must not overwrite a change made meanwhile.
	Revision int64 `json:"-"`
}

// Throttle is when a workflow's copy and change streams back off, so that
// a reshard does not take production down: while a source's standbys
// replay further behind than MaxReplicaLag, a source runs more than
// MaxActive statements at once (its client sessions active in
// pg_stat_activity: the load Postgres shows, as host CPU it does not), or
// a gateway's statements took longer than MaxLatency (the 99th percentile
// of its last few seconds). A zero limit is not watched. The streams back
// off only before the write cutover begins: holding them during a cutover
// would hold the clients' writes longer.
type Throttle struct {
	MaxReplicaLag time.Duration `json:"max_replica_lag,omitempty"`
	MaxActive     int           `json:"max_active,omitempty"`
	MaxLatency    time.Duration `json:"max_latency,omitempty"`
	// Reason says why the copy and the streams back off now, "" while
	// they do not; Since is when they began to.
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since,omitempty"`
}

// Throttles reports whether a workflow in phase backs off while over its
// limits: before the write cutover, which holding the streams would make
// the clients wait for.
func (p WorkflowPhase) Throttles() bool {
	return p == PhasePlanned || p == PhaseCopying || p == PhaseCatchingUp
}

// Size is an amount of rows and bytes.
type Size struct {
	Rows  int64 `json:"rows"`
	Bytes int64 `json:"bytes"`
}

// SourceProgress is where one source shard of a workflow stands.
type SourceProgress struct {
	// Slot and Publication are on the source, named before they are made
	// so that a controller that died meanwhile finds and drops them.
	Slot        string `json:"slot"`
	Publication string `json:"publication"`
	// Seeded is set once the copy under the slot's snapshot committed on
	// every target; Consistent is the slot's consistent point, where its
	// stream starts.
	Seeded     bool   `json:"seeded"`
	Consistent string `json:"consistent_lsn,omitempty"`
	// Copied is what the copy wrote per table (bytes as COPY sent them;
	// rows once a table's range is done).
	Copied map[string]Size `json:"copied,omitempty"`
	// CopySeconds is how long the copy of this source took.
	CopySeconds float64 `json:"copy_seconds,omitempty"`
	// Flushed is the source LSN up to which the targets hold every
	// change; LagBytes and LagSeconds how far behind the stream was when
	// last recorded (the seconds from a source commit to the targets'),
	// PeakLagBytes the most it was; Applied counts the row changes the
	// stream applied.
	Flushed      string  `json:"flushed_lsn,omitempty"`
	LagBytes     int64   `json:"lag_bytes"`
	LagSeconds   float64 `json:"lag_seconds"`
	PeakLagBytes int64   `json:"peak_lag_bytes"`
	Applied      int64   `json:"applied"`
}

// CopiedTotal is what the copies of every source wrote so far.
func (w *Workflow) CopiedTotal() Size {
	var t Size
	for _, p := range w.Sources {
		for _, c := range p.Copied {
			t.Rows += c.Rows
			t.Bytes += c.Bytes
		}
	}
	return t
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
