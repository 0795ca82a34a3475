package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// SortKey is one key of a cross-shard ORDER BY, as the merge reads it from
// the rows the shards return.
type SortKey struct {
	// Ordinal is the client's output column (1-based) that holds the key,
	// for ORDER BY 2 and ORDER BY an output name; 0 when Hidden holds it.
	Ordinal int
	// Hidden is the column, counted among the hidden columns the shards'
	// query appends, that holds the key's value when Ordinal is 0.
	Hidden int
	// Collation is the hidden column holding the name of the collation
	// the key sorts by, -1 when the planner could not name the key's
	// expression (a position inside *).
	Collation  int
	Desc       bool
	NullsFirst bool
	// Text is the key as the statement wrote it, for messages.
	Text string
	// Clause is where the statement asks for the order, for messages:
	// "ORDER BY" when empty, "GROUP BY" or "DISTINCT" for keys the
	// merge sorts by to bring groups together.
	Clause string
}

// clause is the key with the clause it comes from, for messages.
func (k SortKey) clause() string {
	if k.Clause == "" {
		return "ORDER BY " + k.Text
	}
	return k.Clause + " " + k.Text
}

// MergeSort runs a statement that ORDER BY sorts on every shard Target
// resolves to, all at once, and merges the sorted streams into one, in the
// order one Postgres would give: a k-way merge that holds one batch per
// shard, so memory does not grow with the result. The shards' statement
// appends Query.Hidden columns (keys not in the select list, collations),
// which the client never sees.
type MergeSort struct {
	Target Target
	Query  Query
	Keys   []SortKey
	// KeepHidden passes the hidden columns on, for a primitive above that
	// reads them (Aggregate).
	KeepHidden bool
	// Lean is Query.SQL with the Probes computed as NULL, which the
	// shards run once Types allows (see lean.go); "" for never.
	Lean   string
	Probes []Probe
	Types  *KeyTypes
}

var _ Primitive = (*MergeSort)(nil)

// Inputs implements Primitive.
func (m *MergeSort) Inputs() []Primitive { return nil }

// Describe implements Primitive.
func (m *MergeSort) Describe() string {
	keys := make([]string, len(m.Keys))
	for i, k := range m.Keys {
		keys[i] = k.Text
		if k.Desc {
			keys[i] += " DESC"
		}
		if k.NullsFirst != k.Desc {
			keys[i] += map[bool]string{true: " NULLS FIRST", false: " NULLS LAST"}[k.NullsFirst]
		}
	}
	return fmt.Sprintf("MergeSort %s by(%s) sql=%q", m.Target, strings.Join(keys, ", "), m.Query.SQL)
}

// firstError keeps the first error of several goroutines.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// source is one shard's sorted stream, read a batch at a time.
type source struct {
	shard   string
	batches chan handoff // closed when the shard's statement ended
	tag     Tag          // valid once batches is closed
	err     error
	cur     *handoff // the batch being merged, not yet acknowledged
	row     int
	ended   bool
	checked bool // its collations were checked
}

// head is the source's current row.
func (s *source) head() [][]byte { return s.cur.batch.Rows[s.row] }

// Stream implements Primitive.
func (m *MergeSort) Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	shards := m.Target.Resolve(x.Topology(), args)
	lean := m.Types.lean(x, m.Lean)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var failed firstError
	sources := make([]*source, len(shards))
	for i, sh := range shards {
		src := &source{shard: sh, batches: make(chan handoff)}
		sources[i] = src
		go func() {
			ack := make(chan error, 1)
			q := m.Query
			q.Gathered = true
			q.Spread = len(shards) > 1
			if lean {
				q.SQL = m.Lean
			}
			src.tag, src.err = x.Query(ctx, src.shard, q, func(b *Batch) error {
				src.batches <- handoff{batch: b, ack: ack}
				return <-ack
			})
			if src.err != nil {
				// The merge may be waiting on another shard: end them
				// all, this shard's error first.
				failed.set(src.err)
				cancel()
			}
			close(src.batches)
		}()
	}
	mg := &merger{m: m, x: x, emit: emit, lean: lean}
	tag, err := mg.run(sources)
	if err != nil {
		if first := failed.get(); first != nil && first != errStopped {
			err = first
		}
		cancel()
		// Let every shard's statement end before returning: nothing of
		// this statement may touch its connections afterwards.
		for _, src := range sources {
			if src.cur != nil {
				src.cur.ack <- errStopped
			}
			for h := range src.batches {
				h.ack <- errStopped
			}
		}
		return "", err
	}
	return tag, nil
}

// merger is the state of one MergeSort execution.
type merger struct {
	m       *MergeSort
	x       Executor
	emit    func(*Batch) error
	fields  []Field // the shards' columns, hidden ones included
	visible int
	cmps    []compareFunc
	keyCols []int // each key's column in a shard's row
	out     Batch
	rows    int64
	lean    bool // the shards run m.Lean
}

// run merges the sources and returns the tag; on error the caller stops
// the sources.
func (mg *merger) run(sources []*source) (Tag, error) {
	for _, src := range sources {
		if err := mg.advance(src); err != nil {
			return "", err
		}
	}
	for {
		var min *source
		for _, src := range sources {
			if src.ended {
				continue
			}
			if min == nil {
				min = src
				continue
			}
			c, err := mg.compare(src.head(), min.head())
			if err != nil {
				return "", err
			}
			if c < 0 {
				min = src
			}
		}
		if min == nil {
			break
		}
		mg.out.Rows = append(mg.out.Rows, min.head()[:mg.width()])
		mg.rows++
		min.row++
		if err := mg.advance(min); err != nil {
			return "", err
		}
	}
	if err := mg.flush(); err != nil {
		return "", err
	}
	var tag Tag
	for _, src := range sources {
		var err error
		if tag, err = tag.plus(src.tag); err != nil {
			return "", err
		}
	}
	return tag, nil
}

// advance moves src to its next row, reading batches as needed, until it
// has one or its statement ended. A batch is acknowledged (and its memory
// given back to the shard's reader) only after the rows taken from it were
// emitted.
func (mg *merger) advance(src *source) error {
	for src.cur == nil || src.row >= len(src.cur.batch.Rows) {
		if src.cur != nil {
			if err := mg.flush(); err != nil {
				return err
			}
			src.cur.ack <- nil
			src.cur = nil
		}
		h, ok := <-src.batches
		if !ok {
			src.ended = true
			return src.err
		}
		if h.batch.Fields != nil {
			err := mg.describe(h.batch.Fields)
			h.ack <- err
			if err != nil {
				return err
			}
			continue
		}
		src.cur, src.row = &h, 0
	}
	if !src.checked {
		src.checked = true
		return mg.checkCollations(src.head())
	}
	return nil
}

// describe takes a shard's columns: the first shard's set the comparators
// and reach the client without the hidden ones; the others must match.
func (mg *merger) describe(fields []Field) error {
	if mg.fields != nil {
		if len(fields) != len(mg.fields) {
			return internal("shards disagree on the result's columns (%d vs %d); is the schema the same on every shard?", len(mg.fields), len(fields))
		}
		return nil
	}
	mg.fields = append([]Field(nil), fields...)
	mg.visible = len(fields) - mg.m.Query.Hidden
	if mg.visible < 0 {
		return internal("a shard returned %d columns for a statement with %d hidden ones", len(fields), mg.m.Query.Hidden)
	}
	for _, k := range mg.m.Keys {
		col := k.Ordinal - 1
		if k.Ordinal == 0 {
			col = mg.visible + k.Hidden
		}
		if col < 0 || col >= len(fields) {
			return internal("ORDER BY key %s is not among the %d columns a shard returned", k.Text, len(fields))
		}
		f := fields[col]
		cmp, err := comparator(k.clause(), f.DataTypeOID, f.Format, mg.x)
		if err != nil {
			return err
		}
		if collatable(f.DataTypeOID) && k.Collation < 0 {
			return Unsupported("%s across shards is not supported: shardgate cannot tell the collation of a column inside *; name the column", k.clause())
		}
		mg.cmps = append(mg.cmps, cmp)
		mg.keyCols = append(mg.keyCols, col)
	}
	if err := mg.m.Types.learn(mg.x, mg.lean, mg.m.Probes, mg.fields, mg.visible); err != nil {
		return err
	}
	return mg.emit(&Batch{Fields: mg.fields[:mg.width()]})
}

// width is how many columns of the shards' rows the merge passes on.
func (mg *merger) width() int {
	if mg.m.KeepHidden {
		return len(mg.fields)
	}
	return mg.visible
}

// checkCollations refuses text keys whose collation does not order by
// bytes, which is the order the merge compares in.
func (mg *merger) checkCollations(row [][]byte) error {
	for i, k := range mg.m.Keys {
		if !collatable(mg.fields[mg.keyCols[i]].DataTypeOID) {
			continue
		}
		name := string(row[mg.visible+k.Collation])
		if !bytewiseCollation(name) {
			return &Error{Code: CodeFeatureNotSupported,
				Message: fmt.Sprintf("%s across shards is not supported under collation %s: shardgate merges text in byte order, which only the C, POSIX and C.UTF-8 collations share", k.clause(), name),
				Hint:    fmt.Sprintf(`Sort by %s COLLATE "C" if byte order will do, or target one shard.`, k.Text)}
		}
	}
	return nil
}

// bytewiseCollation reports whether a collation, as pg_collation_for or
// the database's locale names it, orders text by its UTF-8 bytes.
func bytewiseCollation(name string) bool {
	name = strings.TrimPrefix(name, "pg_catalog.")
	name = strings.ToLower(strings.Trim(name, `"`))
	switch name {
	case "c", "posix", "ucs_basic", "c.utf8", "c.utf-8", "pg_c_utf8":
		return true
	}
	return false
}

// compare orders two rows by the keys.
func (mg *merger) compare(a, b [][]byte) (int, error) {
	return compareKeys(mg.m.Keys, mg.cmps, func(i int) []byte { return a[mg.keyCols[i]] }, func(i int) []byte { return b[mg.keyCols[i]] })
}

// compareKeys orders two rows by keys, whose values a(i) and b(i) give,
// each compared by cmps[i]: NULLs where the key puts them, DESC reversed.
func compareKeys(keys []SortKey, cmps []compareFunc, a, b func(i int) []byte) (int, error) {
	for i, k := range keys {
		va, vb := a(i), b(i)
		switch {
		case va == nil && vb == nil:
			continue
		case va == nil:
			return nullOrder(k), nil
		case vb == nil:
			return -nullOrder(k), nil
		}
		c, err := cmps[i](va, vb)
		if err != nil {
			return 0, err
		}
		if k.Desc {
			c = -c
		}
		if c != 0 {
			return c, nil
		}
	}
	return 0, nil
}

// nullOrder is where a NULL goes against a value under key k.
func nullOrder(k SortKey) int {
	if k.NullsFirst {
		return -1
	}
	return 1
}

// flush emits the merged rows gathered so far.
func (mg *merger) flush() error {
	if len(mg.out.Rows) == 0 {
		return nil
	}
	err := mg.emit(&mg.out)
	mg.out.Rows = mg.out.Rows[:0]
	return err
}
