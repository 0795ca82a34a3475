package planner

import (
	"strconv"
	"strings"
	"sync/atomic"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardgate/shardgate/internal/lru"
	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/vschema"
)

// Cache remembers plans by their statement text with its literals taken
// out, so that a statement seen before is not parsed again: a text planned
// before gets the same plan, and a one-statement text that differs from it
// only in literals gets the plan with its own values where the plan reads
// them (the keys that route it). Plans are immutable, so sessions share
// them. Entries are per vschema: a changed vschema plans afresh. Safe for
// concurrent use.
type Cache struct {
	entries      *lru.Cache[cacheKey, *cacheEntry]
	hits, misses atomic.Uint64
}

// maxCachedText is the longest statement text the cache keeps: longer ones
// are rare (generated bulk statements) and would crowd the memory out.
const maxCachedText = 8 << 10

// NewCache returns a cache of at most max entries, least recently used
// out first.
func NewCache(max int) *Cache {
	return &Cache{entries: lru.New[cacheKey, *cacheEntry](max)}
}

type cacheKey struct {
	vs   *vschema.Keyspace
	norm string
}

type cacheEntry struct {
	sql   string    // the text planned
	lits  []literal // its literals
	stmts []*Statement
	// tmpl, or else shape, carries the plan over to texts with other
	// literals; with neither, only this very text may have it.
	tmpl  *template
	shape *shaped
}

// template says how the plan of a one-statement text depends on its
// literals: only through the keys of its target, each read from one
// literal.
type template struct {
	start, end int   // the statement's span (Statement.SQL) in the text
	keys       []int // for each key of the plan's target, its literal
}

// Stats returns how many lookups found a plan and how many did not.
func (c *Cache) Stats() (hits, misses uint64, entries int) {
	return c.hits.Load(), c.misses.Load(), c.entries.Len()
}

// Lookup returns the plan of sql for vs if the cache can give it without
// parsing.
func (c *Cache) Lookup(vs *vschema.Keyspace, sql string) ([]*Statement, bool) {
	stmts, ok := c.lookup(vs, sql)
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return stmts, ok
}

func (c *Cache) lookup(vs *vschema.Keyspace, sql string) ([]*Statement, bool) {
	if len(sql) > maxCachedText {
		return nil, false
	}
	norm, lits, ok := normalize(sql)
	if !ok {
		return nil, false
	}
	e, ok := c.entries.Get(cacheKey{vs, norm})
	if !ok {
		return nil, false
	}
	if e.sql == sql {
		return e.stmts, true
	}
	switch {
	case e.tmpl != nil:
		return e.tmpl.apply(e, sql, lits)
	case e.shape != nil:
		return e.shape.apply(sql, lits)
	}
	return nil, false
}

// Plan plans sql as the package's Plan does and remembers the plan.
func (c *Cache) Plan(vs *vschema.Keyspace, sql string) ([]*Statement, error) {
	stmts, err := Plan(vs, sql)
	if err != nil || len(sql) > maxCachedText {
		return stmts, err
	}
	norm, lits, ok := normalize(sql)
	if !ok {
		return stmts, nil
	}
	e := &cacheEntry{sql: sql, lits: lits, stmts: stmts, tmpl: templateOf(sql, lits, stmts)}
	if e.tmpl == nil {
		e.shape = shapedOf(func(text string) ([]*Statement, error) { return Plan(vs, text) }, sql, lits, stmts)
	}
	c.entries.Add(cacheKey{vs, norm}, e)
	return stmts, nil
}

// templateOf returns how the plan of sql carries over to other literals, or
// nil when it does not: the text is one statement that runs as written on
// the shard its keys (or none) name, and every key comes from a literal.
func templateOf(sql string, lits []literal, stmts []*Statement) *template {
	if len(stmts) != 1 {
		return nil
	}
	st := stmts[0]
	if st.Root == nil || st.Control != nil || st.Setting != nil || st.Copy != nil || st.Signal != nil {
		return nil
	}
	var keys []engine.Key
	switch r := st.Root.(type) {
	case *engine.Route:
		if !verbatim(r.Query, st.SQL) || r.Multi != nil || r.Refusal != nil || r.Target.Kind == engine.TargetKeys && !r.Target.Single() {
			return nil
		}
		keys = r.Target.Keys
	case *engine.InsertSplit:
		if !verbatim(r.Query, st.SQL) || len(r.Rows) != 1 || r.Rows[0].SQL != "" || r.Prefix != "" || r.Suffix != "" {
			return nil
		}
		keys = []engine.Key{r.Rows[0].Key}
	default:
		return nil
	}
	t := &template{start: strings.Index(sql, st.SQL)}
	t.end = t.start + len(st.SQL)
	for _, k := range keys {
		i := literalAt(lits, k.At)
		if k.Param != 0 || k.Table == nil || i < 0 {
			return nil
		}
		t.keys = append(t.keys, i)
	}
	return t
}

// verbatim reports whether q sends the statement as the client wrote it.
func verbatim(q engine.Query, sql string) bool {
	return q.SQL == sql && q.Params == nil && q.Values == nil && q.Hidden == 0 && !q.Describe && !q.Internal && !q.AnyShard
}

// literalAt returns the index of the literal starting at offset at, or -1.
func literalAt(lits []literal, at int) int {
	for i, l := range lits {
		if l.start == at {
			return i
		}
	}
	return -1
}

// apply returns e's plan for sql, which differs from e.sql only in its
// literals lits; ok is false when a new key value does not route the plan
// to one shard as before (the caller plans it then).
func (t *template) apply(e *cacheEntry, sql string, lits []literal) ([]*Statement, bool) {
	st := *e.stmts[0]
	st.SQL = sql[shift(e.lits, lits, t.start):shift(e.lits, lits, t.end)]
	var old []engine.Key
	switch r := st.Root.(type) {
	case *engine.Route:
		old = r.Target.Keys
	case *engine.InsertSplit:
		old = []engine.Key{r.Rows[0].Key}
	}
	var keys []engine.Key
	if len(old) > 0 {
		keys = make([]engine.Key, len(old))
	}
	for i, k := range old {
		l := lits[t.keys[i]]
		nk, ok := shardKey(k.Table, constant(sql[l.start:l.end], l))
		if !ok {
			return nil, false
		}
		keys[i] = nk
	}
	switch r := st.Root.(type) {
	case *engine.Route:
		nr := *r
		nr.Query.SQL = st.SQL
		nr.Target.Keys = keys
		if nr.Target.Kind == engine.TargetKeys && !nr.Target.Single() {
			return nil, false
		}
		st.Root = &nr
	case *engine.InsertSplit:
		nr := *r
		nr.Query.SQL = st.SQL
		nr.Rows = []engine.InsertRow{{Key: keys[0]}}
		st.Root = &nr
	}
	return []*Statement{&st}, true
}

// shift maps offset x of the text with literals from to the text with
// literals to, which is the same outside them.
func shift(from, to []literal, x int) int {
	d := 0
	for i, l := range from {
		if l.end > x {
			break
		}
		d += (to[i].end - to[i].start) - (l.end - l.start)
	}
	return x + d
}

// constant is the parse tree's constant for literal l of text.
func constant(text string, l literal) *pg_query.Node {
	c := &pg_query.A_Const{Location: int32(l.start)}
	switch l.class {
	case classInt:
		v, _ := strconv.ParseInt(text, 10, 32) // normalize made sure it fits
		c.Val = &pg_query.A_Const_Ival{Ival: &pg_query.Integer{Ival: int32(v)}}
	case classBigInt:
		c.Val = &pg_query.A_Const_Fval{Fval: &pg_query.Float{Fval: text}}
	default:
		c.Val = &pg_query.A_Const_Sval{Sval: &pg_query.String{Sval: strings.ReplaceAll(text[1:len(text)-1], "''", "'")}}
	}
	return &pg_query.Node{Node: &pg_query.Node_AConst{AConst: c}}
}
