package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardgate/shardgate/vschema"
)

// A global sequence hands out the values of one sequence of a sharded
// keyspace for every gateway of the cluster: its record in etcd
// (sequences/<ks>/<name>) holds the next value no gateway leased yet, and a
// gateway leases a block of values at a time by moving it on. A value is
// in one block only, so none is handed out twice, even by a gateway that
// died holding a block: its unused values are simply never used.

// sequenceRecord is a global sequence's record.
type sequenceRecord struct {
	// Next is the first value of the next block.
	Next int64 `json:"next"`
	// Done is set once the block that ends at the type's end was leased.
	Done bool `json:"done,omitempty"`
}

func (s *Store) sequenceKey(ks, name string) string {
	return s.prefix + "sequences/" + ks + "/" + name
}

// SequenceStart says where a global sequence starts, the first time one is
// leased from: its first value (the largest any shard's own sequence would
// hand out next), or an error that fails the lease (the sequence does not
// exist).
type SequenceStart func(ctx context.Context) (int64, error)

// LeaseSequence leases the next block of count values of sequence name of
// keyspace ks, increment apart, and returns its first value; the block is
// first, first+increment, ... first+(count-1)*increment. The first lease
// of a sequence starts it where start says. Past max, it leases what is
// left, and fails when nothing is.
func (s *Store) LeaseSequence(ctx context.Context, ks, name string, count, increment, max int64, start SequenceStart) (first, leased int64, err error) {
	if err := vschema.ValidName("keyspace", ks); err != nil {
		return 0, 0, err
	}
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return 0, 0, fmt.Errorf("sequence name %q", name)
	}
	if count <= 0 || increment <= 0 {
		return 0, 0, fmt.Errorf("sequence %s: a block of %d values %d apart", name, count, increment)
	}
	key := s.sequenceKey(ks, name)
	for {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return 0, 0, fmt.Errorf("lease values of sequence %s: %w", name, err)
		}
		var rec sequenceRecord
		var cmp clientv3.Cmp
		if len(resp.Kvs) == 0 {
			if rec.Next, err = start(ctx); err != nil {
				return 0, 0, err
			}
			cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		} else {
			if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
				return 0, 0, fmt.Errorf("sequence record %s: %w", key, err)
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
		}
		if rec.Done || rec.Next > max {
			return 0, 0, &SequenceExhaustedError{Name: name, Max: max}
		}
		// How many values are left, counted in uint64: max-Next may not
		// fit an int64.
		left := (uint64(max)-uint64(rec.Next))/uint64(increment) + 1
		n := count
		if uint64(n) >= left {
			n = int64(left)
		}
		after := sequenceRecord{Next: max, Done: true} // the block ends at the type's end
		if last := rec.Next + (n-1)*increment; last <= math.MaxInt64-increment {
			after = sequenceRecord{Next: last + increment}
		}
		b, _ := json.Marshal(after)
		txn, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return 0, 0, fmt.Errorf("lease values of sequence %s: %w", name, err)
		}
		if txn.Succeeded {
			return rec.Next, n, nil
		}
		// Another gateway leased a block meanwhile: lease the next one.
	}
}

// SetSequence makes next the value the next block of sequence name of
// keyspace ks starts at (setval, ALTER SEQUENCE ... RESTART). Blocks
// gateways leased before are still theirs to hand out.
func (s *Store) SetSequence(ctx context.Context, ks, name string, next int64) error {
	if err := vschema.ValidName("keyspace", ks); err != nil {
		return err
	}
	b, _ := json.Marshal(sequenceRecord{Next: next})
	if _, err := s.cli.Put(ctx, s.sequenceKey(ks, name), string(b)); err != nil {
		return fmt.Errorf("set sequence %s: %w", name, err)
	}
	return nil
}

// DropSequence removes the record of sequence name of keyspace ks: a
// sequence made again by that name starts afresh.
func (s *Store) DropSequence(ctx context.Context, ks, name string) error {
	if err := vschema.ValidName("keyspace", ks); err != nil {
		return err
	}
	if _, err := s.cli.Delete(ctx, s.sequenceKey(ks, name)); err != nil {
		return fmt.Errorf("drop sequence %s: %w", name, err)
	}
	return nil
}

// SequenceExhaustedError is a sequence that reached its maximum value.
type SequenceExhaustedError struct {
	Name string
	Max  int64
}

func (e *SequenceExhaustedError) Error() string {
	return fmt.Sprintf("nextval: reached maximum value of sequence %q (%d)", e.Name, e.Max)
}
