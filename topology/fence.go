package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Fence holds, at every gateway, the writes to some logical shards of a
// keyspace while a reshard workflow switches where they are placed: kept
// under keyspaces/<ks>/fence, a topology key, so that a gateway raises it
// with the snapshot that carries it and lifts it with the snapshot that
// carries the new placement.
type Fence struct {
	// ID names this fence, new for each attempt.
	ID       string `json:"id"`
	Workflow string `json:"workflow"`
	Logical  []int  `json:"logical"`
}

// Covers reports whether the fence holds logical shard l.
func (f *Fence) Covers(l int) bool { return slices.Contains(f.Logical, l) }

// GatewayApplied is what a gateway publishes of the topology it applied,
// under applied/<gateway id> with the gateway's lease: the snapshot's
// revision, and per keyspace the fence it holds with every transaction
// that began before it ended.
type GatewayApplied struct {
	Revision int64             `json:"revision"`
	Fences   map[string]string `json:"fences,omitempty"`
	// LatencyP99 is the 99th percentile of the gateway's statement
	// latencies since it last published, for reshard throttling.
	LatencyP99 time.Duration `json:"latency_p99,omitempty"`
}

func (s *Store) fenceKey(ks string) string   { return s.prefix + keyspacesDir + ks + "/fence" }
func (s *Store) appliedKey(id string) string { return s.prefix + "applied/" + id }
func (s *Store) copiesKey(ks string) string  { return s.prefix + keyspacesDir + ks + "/copies" }

// AddCopies records that shard is about to hold rows of logical shards of
// keyspace ks that it does not own (a reshard copies them in), and returns
// the revision: from then on, gateways that applied it send shard a
// statement over several shards limited to the rows it owns. Logical
// shards placed on shard are left out; 0 means nothing was recorded.
func (s *Store) AddCopies(ctx context.Context, ks, shard string, logical []int) (int64, error) {
	return s.changeCopies(ctx, ks, "add", func(k *Keyspace, copies map[string][]int) (bool, error) {
		if k.Map == nil {
			return false, errorf(ErrNotFound, "keyspace %s has no shard map", ks)
		}
		for _, l := range logical {
			if l < 0 || l >= len(k.Map.Placement) {
				return false, fmt.Errorf("keyspace %s has no logical shard %d", ks, l)
			}
			if k.Map.Placement[l] != shard && !slices.Contains(copies[shard], l) {
				copies[shard] = append(copies[shard], l)
			}
		}
		slices.Sort(copies[shard])
		// Written even when unchanged: the revision returned is then one
		// that gateways apply, which a caller can wait for.
		return len(copies[shard]) > 0, nil
	})
}

// DropCopies records that shard no longer holds copies of logical shards
// of keyspace ks (the rows are deleted), and returns the revision.
func (s *Store) DropCopies(ctx context.Context, ks, shard string, logical []int) (int64, error) {
	return s.changeCopies(ctx, ks, "drop", func(_ *Keyspace, copies map[string][]int) (bool, error) {
		copies[shard] = slices.DeleteFunc(copies[shard], func(l int) bool { return slices.Contains(logical, l) })
		if len(copies[shard]) == 0 {
			delete(copies, shard)
		}
		return true, nil
	})
}

// changeCopies applies change to a copy of keyspace ks's copies and, if it
// says to write, records the result (no key for none) unless the topology
// changed meanwhile, in which case it starts again. It returns the
// revision written, 0 if nothing was.
func (s *Store) changeCopies(ctx context.Context, ks, verb string, change func(k *Keyspace, copies map[string][]int) (write bool, err error)) (int64, error) {
	for {
		snap, err := s.Load(ctx)
		if err != nil {
			return 0, err
		}
		k := snap.Keyspace(ks)
		if k == nil {
			return 0, errorf(ErrNotFound, "keyspace %s does not exist", ks)
		}
		copies := map[string][]int{}
		for sh, ls := range k.Copies {
			copies[sh] = slices.Clone(ls)
		}
		write, err := change(k, copies)
		if err != nil || !write {
			return 0, err
		}
		op := clientv3.OpDelete(s.copiesKey(ks))
		if len(copies) > 0 {
			c, _ := json.Marshal(copies)
			op = clientv3.OpPut(s.copiesKey(ks), string(c))
		}
		tx, err := s.cli.Txn(ctx).If(s.unchangedSince(snap.Revision)...).Then(op).Commit()
		if err != nil {
			return 0, fmt.Errorf("%s copies of keyspace %s: %w", verb, ks, err)
		}
		if tx.Succeeded {
			return tx.Header.Revision, nil
		}
	}
}

// RaiseFence puts f on keyspace ks and returns the etcd revision that
// carries it. It fails with ErrConflict while another fence is up there.
func (s *Store) RaiseFence(ctx context.Context, ks string, f Fence) (int64, error) {
	key := s.fenceKey(ks)
	b, _ := json.Marshal(f)
	tx, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0), clientv3.Compare(clientv3.CreateRevision(s.mapKey(ks)), ">", 0)).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return 0, fmt.Errorf("raise fence on keyspace %s: %w", ks, err)
	}
	if !tx.Succeeded {
		return 0, errorf(ErrConflict, "keyspace %s has a fence up already, or no shard map", ks)
	}
	return tx.Header.Revision, nil
}

// FenceOf returns keyspace ks's fence, nil if none is up.
func (s *Store) FenceOf(ctx context.Context, ks string) (*Fence, error) {
	resp, err := s.cli.Get(ctx, s.fenceKey(ks))
	if err != nil {
		return nil, fmt.Errorf("read fence of keyspace %s: %w", ks, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var f Fence
	if err := json.Unmarshal(resp.Kvs[0].Value, &f); err != nil {
		return nil, fmt.Errorf("fence of keyspace %s: %w", ks, err)
	}
	return &f, nil
}

// LiftFence takes fence id off keyspace ks without changing anything else;
// a fence that is gone already, or another one, is left alone.
func (s *Store) LiftFence(ctx context.Context, ks, id string) (int64, error) {
	resp, err := s.cli.Get(ctx, s.fenceKey(ks))
	if err != nil {
		return 0, fmt.Errorf("lift fence of keyspace %s: %w", ks, err)
	}
	if len(resp.Kvs) == 0 {
		return resp.Header.Revision, nil
	}
	var f Fence
	if err := json.Unmarshal(resp.Kvs[0].Value, &f); err != nil || f.ID != id {
		return resp.Header.Revision, nil
	}
	key := s.fenceKey(ks)
	tx, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return 0, fmt.Errorf("lift fence of keyspace %s: %w", ks, err)
	}
	if !tx.Succeeded {
		return s.LiftFence(ctx, ks, id)
	}
	return tx.Header.Revision, nil
}

// PlaceFenced moves the logical shards of fence id on keyspace ks to the
// shards placement gives them and lifts the fence, in one etcd
// transaction, and returns its revision. It fails with ErrConflict if the
// fence is not up any more.
func (s *Store) PlaceFenced(ctx context.Context, ks, id string, placement map[int]string) (int64, error) {
	for {
		snap, err := s.Load(ctx)
		if err != nil {
			return 0, err
		}
		k := snap.Keyspace(ks)
		if k == nil {
			return 0, errorf(ErrNotFound, "keyspace %s does not exist", ks)
		}
		if k.Fence == nil || k.Fence.ID != id {
			return 0, errorf(ErrConflict, "fence %s of keyspace %s is not up", id, ks)
		}
		m := *k.Map
		m.Placement = slices.Clone(m.Placement)
		for l, to := range placement {
			if !k.Fence.Covers(l) {
				return 0, fmt.Errorf("logical shard %d is not behind fence %s", l, id)
			}
			if snap.Shards[to] == nil {
				return 0, errorf(ErrNotFound, "shard %s is not registered", to)
			}
			m.Placement[l] = to
		}
		m.Version++
		b, _ := json.Marshal(&m)
		// The old places keep their rows until the workflow completes.
		copies := map[string][]int{}
		for shard, ls := range k.Copies {
			copies[shard] = slices.Clone(ls)
		}
		for l, to := range placement {
			from := k.Map.Placement[l]
			if from == to {
				continue
			}
			if !slices.Contains(copies[from], l) {
				copies[from] = append(copies[from], l)
				slices.Sort(copies[from])
			}
			// The new place owns the rows it kept from before.
			copies[to] = slices.DeleteFunc(copies[to], func(c int) bool { return c == l })
			if len(copies[to]) == 0 {
				delete(copies, to)
			}
		}
		c, _ := json.Marshal(copies)
		tx, err := s.cli.Txn(ctx).If(s.unchangedSince(snap.Revision)...).
			Then(clientv3.OpPut(s.mapKey(ks), string(b)), clientv3.OpDelete(s.fenceKey(ks)), clientv3.OpPut(s.copiesKey(ks), string(c))).Commit()
		if err != nil {
			return 0, fmt.Errorf("place logical shards of keyspace %s: %w", ks, err)
		}
		if tx.Succeeded {
			return tx.Header.Revision, nil
		}
	}
}

// PublishApplied puts a, what this gateway applied, under its lease.
func (r *Registration) PublishApplied(ctx context.Context, a GatewayApplied) error {
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	b, _ := json.Marshal(a)
	_, err := r.store.cli.Put(ctx, r.store.appliedKey(r.id()), string(b), clientv3.WithLease(lease))
	return err
}

// GatewaysApplied returns, by gateway ID, what each live gateway last
// published of the topology it applied; a live gateway that published
// nothing yet is there with a zero GatewayApplied.
func (s *Store) GatewaysApplied(ctx context.Context) (map[string]GatewayApplied, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.prefix+"gateways/", clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(s.prefix+"applied/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read the gateways: %w", err)
	}
	out := map[string]GatewayApplied{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		out[string(kv.Key[len(s.prefix+"gateways/"):])] = GatewayApplied{}
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		id := string(kv.Key[len(s.prefix+"applied/"):])
		if _, live := out[id]; !live {
			continue
		}
		var a GatewayApplied
		if err := json.Unmarshal(kv.Value, &a); err == nil {
			out[id] = a
		}
	}
	return out, nil
}
