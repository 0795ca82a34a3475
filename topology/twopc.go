package topology

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardgate/shardgate/vschema"
)

// TwoPCDecision is the outcome recorded for a two-phase commit.
type TwoPCDecision string

const (
	// TwoPCUndecided is the state of a record from BeginTwoPC until
	// DecideTwoPC: the coordinator is preparing.
	TwoPCUndecided TwoPCDecision = ""
	// TwoPCCommit means the transaction committed: every participant must
	// end up running COMMIT PREPARED.
	TwoPCCommit TwoPCDecision = "commit"
	// TwoPCAbort means the transaction rolled back: every participant must
	// end up running ROLLBACK PREPARED.
	TwoPCAbort TwoPCDecision = "abort"
)

// TwoPC is the etcd record of one two-phase commit across physical shards,
// kept under /shardgate/<cluster>/twopc/<gid>. GID is the Postgres
// prepared-transaction identifier used on every participant; it must never be
// reused (put the coordinator's ID and a counter in it).
//
// The coordinator (the gateway running the transaction, registered with
// RegisterGateway under the ID it writes into Gateway):
//
//  1. BeginTwoPC, with every participant, before sending PREPARE TRANSACTION
//     to any shard. Participants are fixed from here on: a coordinator that
//     needs another shard begins a new record with a new GID. It may begin
//     the record while the transaction still runs, naming every shard that
//     may prepare: a participant that never prepares counts as done.
//  2. PREPARE TRANSACTION gid on each participant.
//  3. If every PREPARE succeeded, DecideTwoPC(commit). That single etcd
//     transaction is the commit point: before it the transaction may still
//     be rolled back, after it it must be committed. If anything failed,
//     DecideTwoPC(abort). Either way, if DecideTwoPC returns ErrConflict the
//     other decision was already taken (by a resolver) and is the one to
//     carry out. ErrNotFound on a first attempt means a resolver decided
//     abort and finished already: the transaction rolled back. Any other
//     error leaves the outcome unknown: retry the same decision (it is
//     idempotent) and never roll back on your own; if no clear answer comes
//     (ErrNotFound after an unclear attempt is not one: a resolver may have
//     carried out that commit), leave the record to a resolver and tell the
//     client the outcome is unknown (SQLSTATE 08007).
//  4. COMMIT PREPARED (or ROLLBACK PREPARED) gid on every participant.
//  5. EndTwoPC, once step 4 succeeded everywhere.
//
// A resolver (any gateway, periodically) reads ListTwoPC and LiveGateways and
// finishes each record whose Gateway is not live, according to Decision:
//
//   - undecided: first DecideTwoPC(abort), so that a coordinator that is only
//     cut off from etcd cannot commit afterwards; on ErrConflict continue as
//     for commit. Then ROLLBACK PREPARED on every participant.
//   - commit: COMMIT PREPARED on every participant.
//   - abort: ROLLBACK PREPARED on every participant.
//
// then EndTwoPC. A participant with no prepared transaction of that GID
// counts as done (it never prepared, or it was finished before). Any failure
// leaves the record for the next round; every step is idempotent, so two
// resolvers working on the same record at once do no harm.
//
// Because the record is written before any PREPARE and removed only after
// every participant finished, a prepared transaction (pg_prepared_xacts) of a
// shardgate GID that has no record can only belong to a transaction that
// never committed — for instance a PREPARE that reached a shard after a
// resolver aborted and ended its record. Rolling it back is safe, provided the
// record list was read after pg_prepared_xacts.
type TwoPC struct {
	GID     string `json:"gid"`
	Gateway string `json:"gateway"`
	// Participants are physical shard names.
	Participants []string      `json:"participants"`
	Decision     TwoPCDecision `json:"decision,omitempty"`
	Created      time.Time     `json:"created"`
	// Role is the backend role that prepared the transactions ("" for
	// each shard's own): only it (or a superuser) may finish them.
	Role string `json:"role,omitempty"`
}

// maxGIDLen is the longest identifier PREPARE TRANSACTION takes (Postgres's
// GIDSIZE is 200 bytes with the terminating zero).
const maxGIDLen = 199

func (s *Store) twopcKey(gid string) string { return s.prefix + "twopc/" + gid }

// BeginTwoPC creates the record of a new two-phase commit, undecided. Created
// is set to now if zero. It returns ErrConflict (wrapped) if a record of that
// GID exists. Concurrent BeginTwoPC, CommitTwoPC and EndTwoPC calls share
// etcd round trips (txnGroup).
func (s *Store) BeginTwoPC(ctx context.Context, t TwoPC) error {
	if err := validSegment("2PC gid", t.GID, maxGIDLen); err != nil {
		return err
	}
	if err := validSegment("gateway id", t.Gateway, maxIDLen); err != nil {
		return fmt.Errorf("2PC %s: %w", t.GID, err)
	}
	if t.Decision != TwoPCUndecided {
		return fmt.Errorf("2PC %s: begins undecided, not %q", t.GID, t.Decision)
	}
	if len(t.Participants) == 0 {
		return fmt.Errorf("2PC %s: no participants", t.GID)
	}
	seen := map[string]bool{}
	for _, p := range t.Participants {
		if err := vschema.ValidName("shard", p); err != nil {
			return fmt.Errorf("2PC %s: %w", t.GID, err)
		}
		if seen[p] {
			return fmt.Errorf("2PC %s: participant %s listed twice", t.GID, p)
		}
		seen[p] = true
	}
	if t.Created.IsZero() {
		t.Created = time.Now()
	}
	b, _ := json.Marshal(t)
	key := s.twopcKey(t.GID)
	created, err := s.twopc.write(ctx, key, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, clientv3.OpPut(key, string(b)))
	if err != nil {
		return fmt.Errorf("begin 2PC %s: %w", t.GID, err)
	}
	if !created {
		return errorf(ErrConflict, "2PC %s already exists", t.GID)
	}
	return nil
}

// DecideTwoPC records decision d (TwoPCCommit or TwoPCAbort) for gid. It
// succeeds if the record was undecided or already holds d (so retrying after
// an ambiguous error is safe), returns ErrConflict (wrapped) if it holds the
// other decision and ErrNotFound (wrapped) if there is no record. The write
// is one etcd transaction that fails if the record changed since it was
// read, so of two racing deciders exactly one decision wins.
func (s *Store) DecideTwoPC(ctx context.Context, gid string, d TwoPCDecision) error {
	if d != TwoPCCommit && d != TwoPCAbort {
		return fmt.Errorf("2PC %s: invalid decision %q", gid, d)
	}
	key := s.twopcKey(gid)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("decide 2PC %s: %w", gid, err)
	}
	// Only DecideTwoPC and EndTwoPC change a record, so this runs at most a
	// few times: each failed round means someone else decided or ended it.
	for {
		if len(resp.Kvs) == 0 {
			return errorf(ErrNotFound, "2PC %s does not exist", gid)
		}
		cur := resp.Kvs[0]
		var t TwoPC
		if err := json.Unmarshal(cur.Value, &t); err != nil {
			return fmt.Errorf("2PC record %s: %w", key, err)
		}
		switch t.Decision {
		case d:
			return nil
		case TwoPCUndecided:
		default:
			return errorf(ErrConflict, "2PC %s was decided %s already", gid, t.Decision)
		}
		t.Decision = d
		b, _ := json.Marshal(t)
		tresp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", cur.ModRevision)).
			Then(clientv3.OpPut(key, string(b))).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return fmt.Errorf("decide 2PC %s: %w", gid, err)
		}
		if tresp.Succeeded {
			return nil
		}
		resp = (*clientv3.GetResponse)(tresp.Responses[0].GetResponseRange())
	}
}

// CommitTwoPC records the commit decision for begun, the record as its
// coordinator began it: in one round trip while the record is unchanged,
// else as DecideTwoPC does (a resolver may have decided first).
func (s *Store) CommitTwoPC(ctx context.Context, begun TwoPC) error {
	undecided, _ := json.Marshal(begun)
	decided := begun
	decided.Decision = TwoPCCommit
	b, _ := json.Marshal(decided)
	key := s.twopcKey(begun.GID)
	decidedNow, err := s.twopc.write(ctx, key, []clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", string(undecided))}, clientv3.OpPut(key, string(b)))
	if err != nil {
		return fmt.Errorf("decide 2PC %s: %w", begun.GID, err)
	}
	if decidedNow {
		return nil
	}
	return s.DecideTwoPC(ctx, begun.GID, TwoPCCommit)
}

// EndTwoPC removes the record of gid. A record that is gone already is no
// error.
func (s *Store) EndTwoPC(ctx context.Context, gid string) error {
	key := s.twopcKey(gid)
	if _, err := s.twopc.write(ctx, key, nil, clientv3.OpDelete(key)); err != nil {
		return fmt.Errorf("end 2PC %s: %w", gid, err)
	}
	return nil
}

// ListTwoPC returns every 2PC record of the cluster, oldest first. A record
// that does not parse fails the whole list, so a resolver never skips one
// silently.
func (s *Store) ListTwoPC(ctx context.Context) ([]TwoPC, error) {
	dir := s.prefix + "twopc/"
	resp, err := s.cli.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list 2PC records: %w", err)
	}
	out := make([]TwoPC, 0, len(resp.Kvs))
	for _, e := range resp.Kvs {
		var t TwoPC
		if err := json.Unmarshal(e.Value, &t); err != nil {
			return nil, fmt.Errorf("2PC record %s: %w", e.Key, err)
		}
		// The key is what EndTwoPC deletes.
		t.GID = strings.TrimPrefix(string(e.Key), dir)
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b TwoPC) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.GID, b.GID))
	})
	return out, nil
}

// validSegment reports an error unless name can be one segment of an etcd
// key and reads well in a log: 1 to max letters, digits, '_', '.', '-' or
// ':', and not "." or "..".
func validSegment(what, name string, max int) error {
	ok := name != "" && len(name) <= max && name != "." && name != ".."
	for _, r := range name {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' || r == ':')
	}
	if !ok {
		return fmt.Errorf("%s %q must be 1-%d letters, digits, '_', '.', '-' or ':'", what, name, max)
	}
	return nil
}
