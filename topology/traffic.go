package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ReadTraffic steers the reads of a reshard workflow's moving logical
// shards while their writes still go to their sources: a share of them
// is answered by the targets instead (a gradual read cutover), and a share
// of the others also runs on the targets off the client's path, to be
// compared (shadow reads). It is kept under keyspaces/<ks>/reads, a
// topology key, so that every gateway routes by the same one.
type ReadTraffic struct {
	Workflow string `json:"workflow"`
	// Targets gives, per moving logical shard, the shard that holds its
	// copy.
	Targets map[int]string `json:"targets"`
	// Slots gives, per source shard, the replication slot of the stream
	// that keeps the targets up to date: its confirmed position on the
	// source says what the targets hold.
	Slots map[string]string `json:"slots"`
	// ReadPercent is the share of reads (0-100) the targets answer.
	ReadPercent float64 `json:"read_percent,omitempty"`
	// ShadowPercent is the share of the reads the sources answer (0-100)
	// that also run on the targets, to be compared.
	ShadowPercent float64 `json:"shadow_percent,omitempty"`
}

// Routed returns the logical shards whose reads the traffic may send to a
// target now: those not placed on their target yet (a batch whose writes
// cut over reads there anyway), with their targets.
func (k *Keyspace) Routed() map[int]string {
	return k.routed
}

// ReadView returns the keyspace as a read that the targets answer sees
// it: the routed logical shards for which keep returns true placed on
// their targets, their sources keeping copies of them. With nil keep
// every routed logical shard moves, and the view is built once per
// snapshot.
func (k *Keyspace) ReadView(keep func(logical int) bool) *Keyspace {
	if keep == nil {
		return k.readView
	}
	return k.viewOf(keep)
}

// viewOf builds a read view (see ReadView).
func (k *Keyspace) viewOf(keep func(logical int) bool) *Keyspace {
	v := *k
	m := *k.Map
	m.Placement = slices.Clone(m.Placement)
	copies := map[string][]int{}
	for shard, ls := range k.Copies {
		copies[shard] = slices.Clone(ls)
	}
	moved := false
	for _, l := range slices.Sorted(maps.Keys(k.routed)) {
		if keep != nil && !keep(l) {
			continue
		}
		from, to := m.Placement[l], k.routed[l]
		m.Placement[l] = to
		moved = true
		copies[to] = slices.DeleteFunc(copies[to], func(c int) bool { return c == l })
		if len(copies[to]) == 0 {
			delete(copies, to)
		}
		if !slices.Contains(copies[from], l) {
			copies[from] = append(copies[from], l)
			slices.Sort(copies[from])
		}
	}
	if !moved {
		return k
	}
	v.Map, v.Copies = &m, copies
	v.readView, v.routed = nil, nil
	v.setShards()
	return &v
}

// setRouted computes routed and readView from Reads.
func (k *Keyspace) setRouted() {
	if k.Reads == nil {
		return
	}
	for l, to := range k.Reads.Targets {
		if l < 0 || l >= len(k.Map.Placement) || k.Map.Placement[l] == to {
			continue
		}
		if k.routed == nil {
			k.routed = map[int]string{}
		}
		k.routed[l] = to
	}
	k.readView = k.viewOf(nil)
}

func (s *Store) readsKey(ks string) string { return s.prefix + keyspacesDir + ks + "/reads" }

// SetReadTraffic changes keyspace ks's read traffic for workflow: change
// gets the traffic as it stands (a new one, with only Workflow set, when
// there is none) and fills it in. It fails with ErrConflict while another
// workflow steers the keyspace's reads. It returns the etcd revision
// written.
func (s *Store) SetReadTraffic(ctx context.Context, ks, workflow string, change func(*ReadTraffic) error) (int64, error) {
	key := s.readsKey(ks)
	for {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("read traffic of keyspace %s: %w", ks, err)
		}
		t := &ReadTraffic{Workflow: workflow}
		modRev := int64(0)
		if len(resp.Kvs) > 0 {
			if err := json.Unmarshal(resp.Kvs[0].Value, t); err != nil {
				return 0, fmt.Errorf("read traffic of keyspace %s: %w", ks, err)
			}
			modRev = resp.Kvs[0].ModRevision
			if t.Workflow != workflow {
				return 0, errorf(ErrConflict, "workflow %s steers the reads of keyspace %s", t.Workflow, ks)
			}
		}
		if err := change(t); err != nil {
			return 0, err
		}
		b, _ := json.Marshal(t)
		tx, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).
			Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return 0, fmt.Errorf("steer the reads of keyspace %s: %w", ks, err)
		}
		if tx.Succeeded {
			return tx.Header.Revision, nil
		}
	}
}

// ReadTrafficOf returns keyspace ks's read traffic, nil if none.
func (s *Store) ReadTrafficOf(ctx context.Context, ks string) (*ReadTraffic, error) {
	resp, err := s.cli.Get(ctx, s.readsKey(ks))
	if err != nil {
		return nil, fmt.Errorf("read traffic of keyspace %s: %w", ks, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var t ReadTraffic
	if err := json.Unmarshal(resp.Kvs[0].Value, &t); err != nil {
		return nil, fmt.Errorf("read traffic of keyspace %s: %w", ks, err)
	}
	return &t, nil
}

// ClearReadTraffic sends keyspace ks's reads back to where its shard map
// places them, if workflow steers them, and drops what the gateways
// reported of the workflow's shadow reads.
func (s *Store) ClearReadTraffic(ctx context.Context, ks, workflow string) error {
	key := s.readsKey(ks)
	for {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("read traffic of keyspace %s: %w", ks, err)
		}
		ops := []clientv3.Op{clientv3.OpDelete(s.shadowDir(workflow), clientv3.WithPrefix())}
		modRev := int64(0)
		if len(resp.Kvs) > 0 {
			modRev = resp.Kvs[0].ModRevision
			var t ReadTraffic
			if json.Unmarshal(resp.Kvs[0].Value, &t) != nil || t.Workflow == workflow {
				ops = append(ops, clientv3.OpDelete(key))
			}
		}
		tx, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("clear the read traffic of keyspace %s: %w", ks, err)
		}
		if tx.Succeeded {
			return nil
		}
	}
}
