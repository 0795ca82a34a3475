package proxy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// catalogQuery reads what the planner needs of a keyspace's relations (see
// vschema.Catalog): every column of every table and view outside the
// system schemas, in order, with the sequence its values come from, each
// view's query, and the sequences (their columns are not read).
const catalogQuery = `SELECT n.nspname, c.relname, c.relkind, a.attname,
  pg_catalog.format_type(a.atttypid, a.atttypmod), a.attidentity, a.attgenerated <> '',
  CASE WHEN a.attidentity <> '' OR d.adbin IS NOT NULL
    THEN pg_catalog.pg_get_serial_sequence(pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), a.attname) END,
  pg_catalog.pg_get_expr(d.adbin, d.adrelid),
  CASE WHEN c.relkind = 'v' AND a.attnum = 1 THEN pg_catalog.pg_get_viewdef(c.oid) END
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
ORDER BY n.nspname, c.relname, a.attnum`

// catalogTTL is how long a keyspace's catalog is used before it is read
// again in the background: the longest a schema change made behind the
// gateways' back (straight on the shards) goes unseen. Changes through a
// gateway are seen at once.
const catalogTTL = 10 * time.Second

// catalogs keeps the catalog of each sharded keyspace, read from one of
// its shards, and the keyspaces the planner got with it attached.
type catalogs struct {
	entries sync.Map // keyspace name -> *catalogEntry
	// reading is the keyspaces being read again in the background;
	// locks, one per keyspace, let one session read at a time while the
	// others wait for what it read.
	reading sync.Map
	locks   sync.Map // keyspace name -> *sync.Mutex
}

// catalogEntry is a keyspace's catalog as read at one schema state.
// Immutable once stored.
type catalogEntry struct {
	change     string // topology.Keyspace.SchemaChange when read
	generation uint64 // describeCache.generation when read
	read       time.Time
	digest     [sha256.Size]byte // of the rows read
	cat        *vschema.Catalog
	// attached caches vs.WithCatalog(cat) for the last vs asked for.
	attached atomic.Pointer[attachment]
}

// attachment is a keyspace and the same with a catalog attached.
type attachment struct{ base, with *vschema.Keyspace }

// with returns vs with the entry's catalog attached, the same pointer for
// the same vs, so that plans cached for it are found again.
func (e *catalogEntry) with(vs *vschema.Keyspace) *vschema.Keyspace {
	if a := e.attached.Load(); a != nil && a.base == vs {
		return a.with
	}
	a := &attachment{base: vs, with: vs.WithCatalog(e.cat)}
	e.attached.Store(a)
	return a.with
}

// withCatalog returns vs, of sharded keyspace ks, with its catalog
// attached: read now if the schema changed through a gateway since it was
// last read, or never was; read again in the background when it is older
// than catalogTTL. If the shards cannot be read, vs comes without one.
func (s *session) withCatalog(ctx context.Context, ks *topology.Keyspace, vs *vschema.Keyspace) *vschema.Keyspace {
	if !vs.Sharded {
		return vs
	}
	if t := s.txn; t != nil && s.changedSchema && !t.failed {
		// The transaction changed the schema: what it made is in the
		// catalog its own connections see, and in no other.
		if cat, ok := s.txnCatalog(ctx, t); ok {
			// The same keyspace for the same vs, so that the
			// transaction's next statements find their plans again.
			if s.txnCat.base != vs || s.txnCat.with.Catalog != cat {
				s.txnCat.base, s.txnCat.with = vs, vs.WithCatalog(cat)
			}
			return s.txnCat.with
		}
	}
	cs := &s.srv.catalogs
	gen := s.srv.describes.generation.Load()
	current := func() *catalogEntry {
		e, ok := cs.entries.Load(ks.Name)
		if !ok {
			return nil
		}
		return e.(*catalogEntry)
	}
	fresh := func(e *catalogEntry) bool { return e != nil && e.change == ks.SchemaChange && e.generation == gen }
	cur := current()
	if fresh(cur) {
		if time.Since(cur.read) > catalogTTL {
			s.srv.refreshCatalog(ks, cur)
		}
		return cur.with(vs)
	}
	l, _ := cs.locks.LoadOrStore(ks.Name, &sync.Mutex{})
	mu := l.(*sync.Mutex)
	mu.Lock()
	defer mu.Unlock()
	if cur = current(); fresh(cur) {
		return cur.with(vs) // another session read it meanwhile
	}
	e, err := s.srv.readCatalog(ctx, ks, gen, cur)
	if err != nil {
		s.log.Warn("reading the keyspace's catalog; planning without it", zap.String("keyspace", ks.Name), zap.Error(err))
		if cur != nil {
			return cur.with(vs)
		}
		return vs
	}
	return e.with(vs)
}

// txnCatalog reads the catalog through t, on a shard it holds, once per
// schema change it planned (session.schemaChanges).
func (s *session) txnCatalog(ctx context.Context, t *txn) (*vschema.Catalog, bool) {
	if s.txnCat.cat != nil && s.txnCat.at == s.schemaChanges && s.txnCat.txn == t {
		return s.txnCat.cat, true
	}
	for _, shard := range t.order {
		b := t.backends[shard]
		if b == nil {
			continue
		}
		rows, err := catalogRows(ctx, b)
		if err != nil {
			s.log.Warn("reading the catalog in the transaction", zap.Error(err))
			return nil, false
		}
		cat, err := buildCatalog(rows)
		if err != nil {
			return nil, false
		}
		s.txnCat.cat, s.txnCat.at, s.txnCat.txn = cat, s.schemaChanges, t
		return cat, true
	}
	return nil, false
}

// catalogRows runs catalogQuery on b: NULL reads as "\x00".
func catalogRows(ctx context.Context, b *backend) ([][]string, error) {
	var rows [][]string
	err := b.exec(ctx, catalogQuery, func(batch *engine.Batch) error {
		for _, r := range batch.Rows {
			row := make([]string, len(r))
			for i, v := range r {
				row[i] = string(v)
				if v == nil {
					row[i] = "\x00" // NULL, apart from ''
				}
			}
			rows = append(rows, row)
		}
		return nil
	}, discardTag)
	return rows, err
}

// refreshCatalog reads ks's catalog again in the background, once at a
// time per keyspace.
func (srv *Server) refreshCatalog(ks *topology.Keyspace, cur *catalogEntry) {
	if _, busy := srv.catalogs.reading.LoadOrStore(ks.Name, true); busy {
		return
	}
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		defer srv.catalogs.reading.Delete(ks.Name)
		ctx, cancel := context.WithTimeout(srv.background, 10*time.Second)
		defer cancel()
		if _, err := srv.readCatalog(ctx, ks, cur.generation, cur); err != nil {
			srv.log.Warn("reading the keyspace's catalog again", zap.String("keyspace", ks.Name), zap.Error(err))
		}
	}()
}

// readCatalog reads ks's catalog from one of its shards, outside any
// session's transaction, and stores it. A catalog read the same as cur's
// keeps cur's, so plans made with it stay valid.
func (srv *Server) readCatalog(ctx context.Context, ks *topology.Keyspace, gen uint64, cur *catalogEntry) (*catalogEntry, error) {
	var rows [][]string
	err := tryShards(srv.pools.Order(ks.Shards()), func(shard string) error {
		sh := srv.topo().Shards[shard]
		if sh == nil {
			return &ShardUnreachableError{Shard: shard, Err: errShardGone}
		}
		b, err := srv.pools.acquire(ctx, sh)
		if err != nil {
			return err
		}
		defer b.release()
		rows, err = catalogRows(ctx, b)
		return err
	})
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, r := range rows {
		for _, v := range r {
			h.Write([]byte(v))
			h.Write([]byte{0xff})
		}
	}
	e := &catalogEntry{change: ks.SchemaChange, generation: gen, read: time.Now()}
	h.Sum(e.digest[:0])
	if cur != nil && cur.digest == e.digest {
		e.cat = cur.cat
		e.attached.Store(cur.attached.Load())
	} else if e.cat, err = buildCatalog(rows); err != nil {
		return nil, err
	}
	srv.catalogs.entries.Store(ks.Name, e)
	return e, nil
}

// nextvalDefault matches a column default that draws from a sequence by
// name alone: nextval('name'::regclass).
var nextvalDefault = regexp.MustCompile(`^nextval\('([^']+)'::regclass\)$`)

// buildCatalog turns catalogQuery's rows into a Catalog.
func buildCatalog(rows [][]string) (*vschema.Catalog, error) {
	cat := &vschema.Catalog{Relations: map[string]*vschema.Relation{}}
	null := func(v string) bool { return v == "\x00" }
	for _, r := range rows {
		if len(r) != 10 || len(r[2]) != 1 {
			return nil, fmt.Errorf("the shard's catalog answered %d columns, want 10", len(r))
		}
		name := vschema.TableName(r[0], r[1])
		rel := cat.Relations[name]
		if rel == nil {
			rel = &vschema.Relation{Kind: r[2][0]}
			cat.Relations[name] = rel
		}
		if !null(r[9]) {
			rel.View = r[9]
		}
		if null(r[3]) || rel.Kind == 'S' {
			continue // a relation without columns, or a sequence
		}
		col := vschema.Column{Name: r[3], Type: r[4], Generated: r[6] == "t"}
		if r[5] != "" {
			col.Identity = r[5][0]
		}
		if !null(r[8]) {
			col.Default = r[8]
		}
		switch {
		case !null(r[7]):
			col.Sequence, col.OwnsSequence = sequenceName(r[7]), true
		case !null(r[8]):
			if m := nextvalDefault.FindStringSubmatch(r[8]); m != nil {
				col.Sequence = sequenceName(m[1])
			}
		}
		rel.Columns = append(rel.Columns, col)
	}
	return cat, nil
}

// sequenceName spells a sequence as the catalog names relations
// (vschema.TableName): without schema public, without quotes a plain name
// does not need.
func sequenceName(qualified string) string {
	schema, name, ok := strings.Cut(qualified, ".")
	if !ok {
		return unquoteName(qualified)
	}
	return vschema.TableName(unquoteName(schema), unquoteName(name))
}

// unquoteName removes the double quotes of a quoted identifier.
func unquoteName(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}
