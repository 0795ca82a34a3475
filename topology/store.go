package topology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardgate/shardgate/vschema"
)

// Store reads and changes the topology of one cluster in etcd. Every change is
// one etcd transaction guarded by the revision it was computed from, so two
// operators racing cannot overwrite each other. Safe for concurrent use.
//
// Layout under /shardgate/<cluster>/:
//
//	shards/<name>                 Shard (JSON)
//	keyspaces/<ks>/shardmap       ShardMap (JSON)
//	keyspaces/<ks>/vschema        vschema.Keyspace (JSON)
//	keyspaces/<ks>/learned        reference tables learned from CREATE TABLE (JSON list)
//	keyspaces/<ks>/fence          Fence (JSON), while a reshard cutover holds writes
//	keyspaces/<ks>/copies         shard -> logical shards it keeps copies of after they moved
//	keyspaces/<ks>/reads          ReadTraffic (JSON): reads a reshard sends to its targets
//	shadow/<workflow>/<gateway>   ShadowReport (JSON): what a gateway's shadow reads found
//	gateways/<id>                 GatewayInfo (JSON), bound to the gateway's lease
//	applied/<id>                  GatewayApplied (JSON), bound to the gateway's lease
//	gatewaynums/<n>               the gateway ID holding number n (snowflake ids), bound to its lease
//	sequences/<ks>/<name>         a global sequence's next block
//	twopc/<gid>                   TwoPC (JSON), until the transaction is resolved
//	users/<name>                  User (JSON): SCRAM verifier, grants, backend role
//	workflows/<name>              Workflow (JSON): a reshard workflow and its progress
//	workflow-locks/<name>/        the lock of the controller that drives it
//
// Only shards/ and keyspaces/ make up the topology (Load, Watcher, and the
// revision guard of topology changes); Snapshots carry the users too. The
// rest changes often — a 2PC record on every multi-shard commit — and must
// never cost a snapshot rebuild or make a topology change fail with
// ErrConflict.
type Store struct {
	cli    *clientv3.Client
	prefix string

	// parsed keeps the vschema each keyspace had in the last snapshot
	// built, so that a snapshot whose vschema did not change shares the
	// same *vschema.Keyspace: plans made for it stay valid.
	mu     sync.Mutex
	parsed map[string]parsedVSchema

	// twopc groups the two-phase commit records of concurrent transactions
	// into one etcd transaction.
	twopc txnGroup
}

// parsedVSchema is a keyspace's vschema and the texts it was made from.
type parsedVSchema struct {
	raw, learned string
	v            *vschema.Keyspace
}

// NewStore returns a Store for cluster on cli.
func NewStore(cli *clientv3.Client, cluster string) *Store {
	return &Store{cli: cli, prefix: "/shardgate/" + cluster + "/", twopc: txnGroup{cli: cli}}
}

// ErrNotFound is returned (wrapped) for a shard or keyspace that does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned (wrapped) when the topology changed between reading
// and writing, or when a thing to create exists already.
var ErrConflict = errors.New("conflict")

// kindError is a message that matches one of the sentinel errors above with
// errors.Is, without the sentinel's word appended to its text.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: kind}
}

// The subtrees of the prefix that make up the topology.
const (
	shardsDir    = "shards/"
	keyspacesDir = "keyspaces/"
)

func (s *Store) shardKey(name string) string { return s.prefix + shardsDir + name }
func (s *Store) mapKey(ks string) string     { return s.prefix + "keyspaces/" + ks + "/shardmap" }
func (s *Store) vschemaKey(ks string) string { return s.prefix + "keyspaces/" + ks + "/vschema" }

// AddShard registers a new physical shard.
func (s *Store) AddShard(ctx context.Context, sh Shard) error {
	if err := vschema.ValidName("shard", sh.Name); err != nil {
		return err
	}
	if strings.TrimSpace(sh.DSN) == "" {
		return fmt.Errorf("shard %s: empty DSN", sh.Name)
	}
	if err := sh.CheckPassword(); err != nil {
		return err
	}
	if sh.Weight < 0 || sh.Weight > MaxShardWeight {
		return fmt.Errorf("shard %s: weight %d must be between 1 and %d", sh.Name, sh.Weight, MaxShardWeight)
	}
	b, _ := json.Marshal(sh)
	key := s.shardKey(sh.Name)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("add shard %s: %w", sh.Name, err)
	}
	if !resp.Succeeded {
		return errorf(ErrConflict, "shard %s already exists", sh.Name)
	}
	return nil
}

// CreateKeyspace creates a keyspace whose logicalCount logical shards are
// spread evenly over shards. An unsharded keyspace has one logical shard and
// exactly one physical shard.
func (s *Store) CreateKeyspace(ctx context.Context, name string, logicalCount int, shards []string) error {
	if err := vschema.ValidName("keyspace", name); err != nil {
		return err
	}
	if len(shards) == 0 {
		return fmt.Errorf("keyspace %s: no shards given", name)
	}
	if err := ValidLogicalCount(logicalCount); err != nil {
		return fmt.Errorf("keyspace %s: %w", name, err)
	}
	if len(shards) > logicalCount {
		return fmt.Errorf("keyspace %s: %d shards but only %d logical shards; every shard needs at least one", name, len(shards), logicalCount)
	}
	snap, err := s.Load(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, sh := range shards {
		if seen[sh] {
			return fmt.Errorf("keyspace %s: shard %s listed twice", name, sh)
		}
		if _, ok := snap.Shards[sh]; !ok {
			return errorf(ErrNotFound, "keyspace %s: shard %s is not registered (shardctl shard add)", name, sh)
		}
		seen[sh] = true
	}
	m := &ShardMap{Version: 1, LogicalCount: logicalCount, Placement: EvenPlacement(logicalCount, shards)}
	if err := m.validate(snap.Shards); err != nil {
		return fmt.Errorf("keyspace %s: %w", name, err)
	}
	b, _ := json.Marshal(m)
	key := s.mapKey(name)
	resp, err := s.cli.Txn(ctx).
		If(append(s.unchangedSince(snap.Revision), clientv3.Compare(clientv3.CreateRevision(key), "=", 0))...).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("create keyspace %s: %w", name, err)
	}
	if !resp.Succeeded {
		if snap.Keyspace(name) != nil {
			return errorf(ErrConflict, "keyspace %s already exists", name)
		}
		return errorf(ErrConflict, "create keyspace %s: topology changed meanwhile, try again", name)
	}
	return nil
}

// ApplyVSchemas stores the vschemas of existing keyspaces in one
// transaction, after validating each and checking that it fits its keyspace
// (an unsharded vschema needs a one-shard keyspace). Either all are stored or
// none.
func (s *Store) ApplyVSchemas(ctx context.Context, keyspaces ...*vschema.Keyspace) error {
	snap, err := s.Load(ctx)
	if err != nil {
		return err
	}
	ops := make([]clientv3.Op, 0, len(keyspaces))
	for _, in := range keyspaces {
		// Validate what will be stored, exactly as gateways will read it.
		ks, err := vschema.ParseKeyspace(in.Name, in.JSON())
		if err != nil {
			return err
		}
		cur := snap.Keyspace(ks.Name)
		if cur == nil {
			return errorf(ErrNotFound, "keyspace %s does not exist; create it first with 'shardctl keyspace create'", ks.Name)
		}
		if !ks.Sharded && len(cur.Shards()) != 1 {
			return fmt.Errorf("keyspace %s is unsharded in the vschema but placed on %d shards; create it on one shard", ks.Name, len(cur.Shards()))
		}
		for _, t := range ks.Tables {
			if t.Kind == vschema.Sharded && cur.Map.LogicalCount == 1 {
				return fmt.Errorf("keyspace %s has 1 logical shard; sharded table %s needs a keyspace created with --logical-shards > 1", ks.Name, t.Name)
			}
		}
		ops = append(ops, clientv3.OpPut(s.vschemaKey(ks.Name), string(ks.JSON())))
	}
	resp, err := s.cli.Txn(ctx).If(s.unchangedSince(snap.Revision)...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("apply vschema: %w", err)
	}
	if !resp.Succeeded {
		return errorf(ErrConflict, "apply vschema: the topology changed meanwhile, try again")
	}
	return nil
}

// MoveLogicalShards places logical shards first..last (inclusive) of keyspace
// ks on physical shard to and returns the new shard map version. It changes
// routing only; moving the rows is the reshard workflow's job.
func (s *Store) MoveLogicalShards(ctx context.Context, ks string, first, last int, to string) (int64, error) {
	snap, err := s.Load(ctx)
	if err != nil {
		return 0, err
	}
	k := snap.Keyspace(ks)
	if k == nil {
		return 0, errorf(ErrNotFound, "keyspace %s does not exist", ks)
	}
	if _, ok := snap.Shards[to]; !ok {
		return 0, errorf(ErrNotFound, "shard %s is not registered", to)
	}
	if first < 0 || last < first || last >= k.Map.LogicalCount {
		return 0, fmt.Errorf("logical shards %d-%d out of range: keyspace %s has 0-%d", first, last, ks, k.Map.LogicalCount-1)
	}
	m := *k.Map
	m.Placement = append([]string(nil), k.Map.Placement...)
	changed := false
	for i := first; i <= last; i++ {
		changed = changed || m.Placement[i] != to
		m.Placement[i] = to
	}
	if !changed {
		return m.Version, nil
	}
	m.Version++
	b, _ := json.Marshal(&m)
	key := s.mapKey(ks)
	resp, err := s.cli.Txn(ctx).If(s.unchangedSince(snap.Revision)...).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return 0, fmt.Errorf("move logical shards of %s: %w", ks, err)
	}
	if !resp.Succeeded {
		return 0, errorf(ErrConflict, "move logical shards of %s: topology changed meanwhile, try again", ks)
	}
	return m.Version, nil
}

// unchangedSince holds when no topology key (shards/, keyspaces/) was
// written after rev. Gateway registrations, 2PC records and workflows under
// the same prefix do not count: they change all the time and are no input of
// any topology change. (Like any ModRevision compare it cannot see a key
// deleted after rev; the Store never deletes topology keys.)
func (s *Store) unchangedSince(rev int64) []clientv3.Cmp {
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(s.prefix+shardsDir).WithPrefix(), "<", rev+1),
		clientv3.Compare(clientv3.ModRevision(s.prefix+keyspacesDir).WithPrefix(), "<", rev+1),
	}
}

// isTopologyKey tells whether key (full, with the prefix) is one that build
// reads. Everything else under the prefix is none of a Snapshot's business.
func (s *Store) isTopologyKey(key string) bool {
	rel, ok := strings.CutPrefix(key, s.prefix)
	if !ok {
		return false
	}
	parts := strings.Split(rel, "/")
	switch {
	case len(parts) == 2 && parts[0]+"/" == shardsDir:
		return true
	case len(parts) == 3 && parts[0]+"/" == keyspacesDir:
		return parts[2] == "shardmap" || parts[2] == "vschema" || parts[2] == "learned" || parts[2] == "schema" || parts[2] == "fence" || parts[2] == "copies" || parts[2] == "reads"
	}
	return false
}

// admit tells whether key (full, with the prefix) with value belongs in the
// key-value map build reads: a topology key, or a user record that parses.
// A user record that does not parse is left out — that user cannot log in —
// rather than fail the whole snapshot: one bad login must not freeze routing
// for everyone. err says why it was left out.
func (s *Store) admit(key string, value []byte) (ok bool, err error) {
	if s.isTopologyKey(key) {
		return true, nil
	}
	if name, isUser := s.userName(key); isUser {
		if _, err := parseUser(name, value); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, nil
}

// readTopology reads the topology keys and the users, and only those, at
// one revision. skipped explains each user record left out (see admit).
func (s *Store) readTopology(ctx context.Context) (rev int64, kv map[string][]byte, skipped []error, err error) {
	// One read-only txn: all ranges at the same revision, and none of the
	// (possibly many) gateway and 2PC keys on the wire.
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.prefix+shardsDir, clientv3.WithPrefix()),
		clientv3.OpGet(s.prefix+keyspacesDir, clientv3.WithPrefix()),
		clientv3.OpGet(s.prefix+usersDir, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read topology from etcd: %w", err)
	}
	kv = map[string][]byte{}
	for _, r := range resp.Responses {
		for _, e := range r.GetResponseRange().Kvs {
			ok, err := s.admit(string(e.Key), e.Value)
			if ok {
				kv[string(e.Key)] = e.Value
			} else if err != nil {
				skipped = append(skipped, err)
			}
		}
	}
	return resp.Header.Revision, kv, skipped, nil
}

// Load reads the whole topology, users included, at one revision. A user
// record that does not parse is left out (see Users for an error naming it).
func (s *Store) Load(ctx context.Context) (*Snapshot, error) {
	rev, kv, _, err := s.readTopology(ctx)
	if err != nil {
		return nil, err
	}
	return s.build(rev, kv)
}

// build turns the raw keys under the prefix into a Snapshot. Any entry that
// does not parse or does not fit the rest fails the whole snapshot, so a
// gateway never routes by a half-understood map.
func (s *Store) build(rev int64, kv map[string][]byte) (*Snapshot, error) {
	snap := &Snapshot{Revision: rev, Shards: map[string]*Shard{}, Keyspaces: map[string]*Keyspace{}, Users: map[string]*User{}}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vschemas := map[string][]byte{}
	learned := map[string][]byte{}
	changes := map[string]string{} // keyspace -> its latest schema change
	fences := map[string]*Fence{}
	copies := map[string]map[string][]int{}
	reads := map[string]*ReadTraffic{}
	for _, key := range keys {
		if name, ok := s.userName(key); ok {
			u, err := parseUser(name, kv[key])
			if err != nil {
				return nil, err
			}
			snap.Users[name] = u
			continue
		}
		if !s.isTopologyKey(key) {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(key, s.prefix), "/")
		switch {
		case len(parts) == 2 && parts[0] == "shards":
			var sh Shard
			if err := json.Unmarshal(kv[key], &sh); err != nil {
				return nil, fmt.Errorf("topology key %s: %w", key, err)
			}
			snap.Shards[parts[1]] = &sh
		case len(parts) == 3 && parts[0] == "keyspaces" && parts[2] == "shardmap":
			var m ShardMap
			if err := json.Unmarshal(kv[key], &m); err != nil {
				return nil, fmt.Errorf("topology key %s: %w", key, err)
			}
			snap.Keyspaces[parts[1]] = &Keyspace{Name: parts[1], Map: &m}
		case len(parts) == 3 && parts[0] == "keyspaces" && parts[2] == "vschema":
			vschemas[parts[1]] = kv[key]
		case len(parts) == 3 && parts[0] == "keyspaces" && parts[2] == "learned":
			learned[parts[1]] = kv[key]
		case len(parts) == 3 && parts[0] == "keyspaces" && parts[2] == "schema":
			changes[parts[1]] = string(kv[key])
		case len(parts) == 3 && parts[0] == "keyspaces" && parts[2] == "fence":
			var f Fence
			if err := json.Unmarshal(kv[key], &f); err != nil {
				return nil, fmt.Errorf("topology key %s: %w", key, err)
			}
			fences[parts[1]] = &f
		case len(parts) == 3 && parts[0] == "keyspaces" && parts[2] == "copies":
			var c map[string][]int
			if err := json.Unmarshal(kv[key], &c); err != nil {
				return nil, fmt.Errorf("topology key %s: %w", key, err)
			}
			copies[parts[1]] = c
		case len(parts) == 3 && parts[0] == "keyspaces" && parts[2] == "reads":
			var t ReadTraffic
			if err := json.Unmarshal(kv[key], &t); err != nil {
				return nil, fmt.Errorf("topology key %s: %w", key, err)
			}
			reads[parts[1]] = &t
		}
	}
	for name, c := range copies {
		if ks := snap.Keyspaces[name]; ks != nil && len(c) > 0 {
			ks.Copies = c
		}
	}
	for name, f := range fences {
		if ks := snap.Keyspaces[name]; ks != nil {
			ks.Fence = f
		}
	}
	for name, change := range changes {
		if ks := snap.Keyspaces[name]; ks != nil {
			ks.SchemaChange = change
		}
	}
	for name, ks := range snap.Keyspaces {
		if err := ks.Map.validate(snap.Shards); err != nil {
			return nil, fmt.Errorf("keyspace %s: %w", name, err)
		}
		ks.setShards()
	}
	for name, raw := range vschemas {
		ks := snap.Keyspaces[name]
		if ks == nil {
			return nil, fmt.Errorf("vschema for keyspace %s, which has no shard map", name)
		}
		v, err := s.parseVSchema(name, raw, learned[name])
		if err != nil {
			return nil, err
		}
		ks.vschema = v
	}
	for name, t := range reads {
		if ks := snap.Keyspaces[name]; ks != nil {
			ks.Reads = t
			ks.setRouted() // after everything a view copies
		}
	}
	return snap, nil
}

// LearnReferenceTables records tables of keyspace ks that the gateway
// learned from the CREATE TABLE that makes them (under unlisted_tables:
// reference): every snapshot's vschema of ks lists them as reference
// tables unless the vschema names them itself. They are kept apart from
// the vschema the operator applies, which does not erase them.
func (s *Store) LearnReferenceTables(ctx context.Context, ks string, names []string) error {
	if err := vschema.ValidName("keyspace", ks); err != nil {
		return err
	}
	for _, n := range names {
		if err := vschema.ValidTableName(n); err != nil {
			return err
		}
	}
	key := s.prefix + keyspacesDir + ks + "/learned"
	for {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("learn tables of keyspace %s: %w", ks, err)
		}
		var have []string
		var rev int64
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			if err := json.Unmarshal(resp.Kvs[0].Value, &have); err != nil {
				return fmt.Errorf("learned tables of keyspace %s: %w", ks, err)
			}
		}
		all := slices.Clone(have)
		for _, n := range names {
			if !slices.Contains(all, n) {
				all = append(all, n)
			}
		}
		if len(all) == len(have) {
			return nil
		}
		slices.Sort(all)
		b, _ := json.Marshal(all)
		txn, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return fmt.Errorf("learn tables of keyspace %s: %w", ks, err)
		}
		if txn.Succeeded {
			return nil
		}
		// Another gateway learned some meanwhile: merge again.
	}
}

// MarkSchemaChanged records that the schema of keyspace's databases changed
// (DDL committed through a gateway), so that every gateway forgets what it
// remembers of statements' descriptions there: each one's next snapshot
// has a new Keyspace.SchemaChange.
func (s *Store) MarkSchemaChanged(ctx context.Context, keyspace string) error {
	if err := vschema.ValidName("keyspace", keyspace); err != nil {
		return err
	}
	key := s.prefix + keyspacesDir + keyspace + "/schema"
	if _, err := s.cli.Put(ctx, key, strconv.FormatInt(time.Now().UnixNano(), 36)); err != nil {
		return fmt.Errorf("record a schema change of keyspace %s: %w", keyspace, err)
	}
	return nil
}

// parseVSchema parses a keyspace's vschema with the reference tables
// learned (a JSON list of names, or nil), or returns the one parsed before
// from the same texts.
func (s *Store) parseVSchema(name string, raw, learned []byte) (*vschema.Keyspace, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.parsed[name]; ok && p.raw == string(raw) && p.learned == string(learned) {
		return p.v, nil
	}
	v, err := vschema.ParseKeyspace(name, raw)
	if err != nil {
		return nil, err
	}
	if learned != nil {
		var names []string
		if err := json.Unmarshal(learned, &names); err != nil {
			return nil, fmt.Errorf("keyspace %s: learned tables: %w", name, err)
		}
		v = v.WithReference(names...)
	}
	if s.parsed == nil {
		s.parsed = map[string]parsedVSchema{}
	}
	s.parsed[name] = parsedVSchema{raw: string(raw), learned: string(learned), v: v}
	return v, nil
}
