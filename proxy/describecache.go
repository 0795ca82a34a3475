package proxy

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/internal/lru"
	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// describeCache remembers what a shard described of a statement (its
// parameter and result types), so that a client's Parse of a statement
// described before costs no round trip to a shard.
//
// A description holds while the catalog does: the key has the session's
// search_path, role and user, the schema generation, which every
// schema-changing statement through this gateway moves on once it has
// committed or rolled back, and the keyspace's latest schema change that a
// gateway recorded in etcd (see SchemaLog), which reaches the others with
// their next topology snapshot. A change made on a shard directly is seen
// within describeTTL, when the description is asked for again; until then a
// statement whose result types it changed fails, like a prepared statement
// in Postgres ("cached plan must not change result type"), and its
// description is dropped.
type describeCache struct {
	entries      *lru.Cache[describeKey, described]
	generation   atomic.Uint64
	hits, misses atomic.Uint64
}

type describeKey struct {
	vs         *vschema.Keyspace
	sql        string
	oids       string // the client's parameter types, packed
	scope      string // search_path, role and user
	generation uint64
	change     string // the keyspace's latest schema change through any gateway
}

// SchemaLog records a schema change of a keyspace for every gateway to see
// (topology.Store implements it).
type SchemaLog interface {
	MarkSchemaChanged(ctx context.Context, keyspace string) error
	// LearnReferenceTables records tables a CREATE TABLE makes that the
	// vschema does not list, as reference tables of keyspace.
	LearnReferenceTables(ctx context.Context, keyspace string, tables []string) error
}

type described struct {
	params []uint32
	fields []pgproto3.FieldDescription
	at     time.Time
}

// describeCacheSize is how many statement descriptions the gateway keeps.
const describeCacheSize = 10000

// describeTTL is how long a description is used before a shard is asked
// again: the longest a schema change this gateway did not make goes unseen.
const describeTTL = 2 * time.Second

func newDescribeCache() *describeCache {
	return &describeCache{entries: lru.New[describeKey, described](describeCacheSize)}
}

// describeCached returns st's parameter and result types, as a shard of ks
// describes sql with the client's parameter types oids, from the cache
// when the session may use it; key is where the cache holds them, nil when
// it does not.
func (s *session) describeCached(ctx context.Context, ks *topology.Keyspace, sql string, oids []uint32, st *planner.Statement) (params []uint32, fields []pgproto3.FieldDescription, key *describeKey, err error) {
	c := s.srv.describes
	k, ok := s.describeKey(ks, sql, oids, st)
	if !ok {
		params, fields, err = s.describeOn(ctx, ks, sql, oids)
		return params, fields, nil, err
	}
	if d, hit := c.entries.Get(k); hit && time.Since(d.at) < describeTTL {
		c.hits.Add(1)
		return d.params, d.fields, &k, nil
	}
	c.misses.Add(1)
	if params, fields, err = s.describeOn(ctx, ks, sql, oids); err != nil {
		return nil, nil, nil, err
	}
	c.entries.Add(k, described{params, fields, time.Now()})
	return params, fields, &k, nil
}

// describeKey returns the cache key of a description, or ok false when the
// session's view of the catalog may be its own: it changed the schema in
// its open transaction, or holds backends with temporary objects, cursors
// or a whole session (session pooling).
func (s *session) describeKey(ks *topology.Keyspace, sql string, oids []uint32, st *planner.Statement) (describeKey, bool) {
	vs := ks.VSchema()
	if s.changedSchema || s.statePinned || vs.Pooling == vschema.PoolSession ||
		st.ChangesSchema || st.SessionState != "" || st.Fetch || st.Setting != nil || st.Copy != nil {
		return describeKey{}, false
	}
	packed := make([]byte, 0, 4*len(oids))
	for _, oid := range oids {
		packed = binary.BigEndian.AppendUint32(packed, oid)
	}
	scope := s.user + "\x00" + s.backendRole
	for _, name := range []string{"search_path", "role", "session_authorization"} {
		scope += "\x00" + s.startup[name] + "\x00" + s.settings[name]
	}
	return describeKey{vs: vs, sql: sql, oids: string(packed), scope: scope, generation: s.srv.describes.generation.Load(), change: ks.SchemaChange}, true
}

// noteSchemaChanges marks the session as changing the schema if one of
// stmts may: until its transaction ends it describes statements on a shard.
func (s *session) noteSchemaChanges(stmts []*planner.Statement) {
	for _, st := range stmts {
		if st.ChangesSchema {
			s.changedSchema = true
			s.schemaChanges++
		}
	}
}

// settleSchemaChanges moves the schema generation on once the session's
// schema changes are committed or rolled back (at ReadyForQuery outside a
// transaction): descriptions made before, under either catalog, are not
// used again.
func (s *session) settleSchemaChanges() {
	if !s.changedSchema || s.txn != nil {
		return
	}
	s.srv.describes.generation.Add(1)
	s.changedSchema = false
	if s.srv.schema == nil {
		return
	}
	// The other gateways learn of it through etcd, without the client
	// waiting for that; should it fail, their descriptions still expire
	// (describeTTL).
	ks, log := s.keyspace, s.log
	s.srv.wg.Add(1) // while the session, counted too, still runs
	go func() {
		defer s.srv.wg.Done()
		ctx, cancel := context.WithTimeout(s.srv.background, 5*time.Second)
		defer cancel()
		if err := s.srv.schema.MarkSchemaChanged(ctx, ks); err != nil {
			log.Warn("could not record a schema change for the other gateways", zap.String("keyspace", ks), zap.Error(err))
		}
	}()
}
