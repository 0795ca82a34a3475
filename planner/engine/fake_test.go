package engine

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardgate/shardgate/vschema"
)

// fakeTopo is a keyspace of 8 logical shards placed on physical shards by
// placement. A keyspace id's logical shard is its top 3 bits in signed
// order, so logical shard 0 holds math.MinInt64 (the anchor).
type fakeTopo struct {
	placement [8]string
}

// newTopo returns the default topology of the tests: 8 logical shards over
// s0..s3, with the anchor (logical shard 0) on s2, so that "the first
// shard" (s0) and "the anchor" differ.
func newTopo() *fakeTopo {
	return &fakeTopo{placement: [8]string{"s2", "s0", "s1", "s3", "s2", "s0", "s1", "s3"}}
}

func (t *fakeTopo) ShardFor(h int64) string {
	return t.placement[int((uint64(h)^(1<<63))>>61)]
}

// Shards returns the distinct physical shards in name order, in a fresh
// slice every time.
func (t *fakeTopo) Shards() []string {
	var out []string
	for _, s := range t.placement {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// idOn returns a keyspace id on logical shard l (0..7).
func idOn(l int) int64 {
	return int64((uint64(l) << 61) ^ (1 << 63))
}

// fakeParams are bound parameters: nil is NULL, anything else its text.
type fakeParams []*string

func (p fakeParams) Text(i int) (string, bool) {
	if i < 0 || i >= len(p) || p[i] == nil {
		return "", false
	}
	return *p[i], true
}

// params builds fakeParams; the value "NULL" stands for SQL NULL.
func params(vals ...string) fakeParams {
	p := make(fakeParams, len(vals))
	for i, v := range vals {
		if v != "NULL" {
			p[i] = &v
		}
	}
	return p
}

// testTable is a sharded table t with a bigint sharding column id, read
// the way the gateway reads vschemas out of etcd.
func testTable(t *testing.T) *vschema.Table {
	t.Helper()
	ks, err := vschema.ParseKeyspace("ks", []byte(`{"sharded": true, "tables": {"t": {"column": "id", "type": "bigint"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	tbl := ks.Table("t")
	if tbl == nil || tbl.Type != vschema.Int {
		t.Fatalf("table t: %+v", tbl)
	}
	return tbl
}

// intOn returns the smallest positive integer whose hash lands on shard.
func intOn(t *testing.T, topo Topology, shard string) int64 {
	t.Helper()
	for v := int64(1); v < 100000; v++ {
		if topo.ShardFor(vschema.HashInt64(v)) == shard {
			return v
		}
	}
	t.Fatalf("no integer lands on %s", shard)
	return 0
}

// stop says how a scripted result ends.
type stop int

const (
	stopNone  stop = iota // return the tag
	stopFail              // return script.Err
	stopBlock             // block until ctx ends, then return ctx.Err()
)

// script is what a fake shard answers: a Fields batch (when Fields is not
// nil), then Rows in batches of BatchSize, then Tag — unless Stop says to
// fail or block once StopAfter rows have been emitted.
type script struct {
	Fields    []Field
	Rows      [][][]byte
	BatchSize int // rows per batch; 0 means 1
	Tag       Tag
	Stop      stop
	StopAfter int
	Err       error
	// Start runs first; its error is the query's.
	Start func(ctx context.Context) error
	// Before runs before each batch (n counts batches, Fields included);
	// its error is the query's.
	Before func(ctx context.Context, n int) error
}

// call is one Query the fake received.
type call struct {
	Shard    string
	SQL      string
	Params   []int
	AnyShard bool
}

// fakeExec is a recording Executor that answers with scripted results. It
// copies every batch it emits into fresh memory and scribbles over it once
// emit returns, so a primitive that keeps batch memory beyond emit reads
// garbage (and -race sees the write).
type fakeExec struct {
	topo     Topology
	scripts  map[string]*script
	fallback *script // for shards without a script; nil: fail

	// checkBackpressure makes the fake record a violation when a shard is
	// about to hand over row batch k while fewer than k of its row
	// batches have reached the client (as counted by sawRows).
	checkBackpressure bool

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every state change
	calls      []call
	started    map[string]int
	active     int
	maxActive  int
	inEmit     map[string]bool
	blocked    map[string]bool
	done       map[string]bool
	returned   map[string]error
	handed     map[string]int // row batches handed to emit
	seen       map[string]int // row batches the client saw (sawRows)
	violations []string
}

func newFake(topo Topology, scripts map[string]*script) *fakeExec {
	return &fakeExec{
		topo:     topo,
		scripts:  scripts,
		changed:  make(chan struct{}),
		started:  map[string]int{},
		inEmit:   map[string]bool{},
		blocked:  map[string]bool{},
		done:     map[string]bool{},
		returned: map[string]error{},
		handed:   map[string]int{},
		seen:     map[string]int{},
	}
}

func (f *fakeExec) Topology() Topology { return f.topo }

// notifyLocked wakes every await; f.mu must be held.
func (f *fakeExec) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Setting implements Settings: the server's defaults.
func (f *fakeExec) Setting(string) string { return "" }

// await waits until cond (called with f.mu held) is true, or ctx ends.
func (f *fakeExec) await(ctx context.Context, cond func() bool) error {
	f.mu.Lock()
	for !cond() {
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		f.mu.Lock()
	}
	f.mu.Unlock()
	return nil
}

// sawRows records that the client saw a row batch of shard.
func (f *fakeExec) sawRows(shard string) {
	f.mu.Lock()
	f.seen[shard]++
	f.notifyLocked()
	f.mu.Unlock()
}

// Calls returns a copy of the calls received so far.
func (f *fakeExec) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Returned says whether the (last) query on shard has returned, and what
// error it returned.
func (f *fakeExec) Returned(shard string) (done bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done[shard], f.returned[shard]
}

func (f *fakeExec) Active() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

func (f *fakeExec) MaxActive() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxActive
}

func (f *fakeExec) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

func (f *fakeExec) Query(ctx context.Context, shard string, q Query, emit func(*Batch) error) (tag Tag, err error) {
	f.mu.Lock()
	f.calls = append(f.calls, call{Shard: shard, SQL: q.SQL, Params: slices.Clone(q.Params), AnyShard: q.AnyShard})
	f.started[shard]++
	f.active++
	f.maxActive = max(f.maxActive, f.active)
	s := f.scripts[shard]
	if s == nil {
		s = f.fallback
	}
	f.notifyLocked()
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.done[shard] = true
		f.returned[shard] = err
		f.notifyLocked()
		f.mu.Unlock()
	}()
	if s == nil {
		return "", fmt.Errorf("fake: no script for shard %s", shard)
	}
	if s.Start != nil {
		if err := s.Start(ctx); err != nil {
			return "", err
		}
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	n := 0
	send := func(b *Batch, rowBatch int) error {
		if s.Before != nil {
			if err := s.Before(ctx, n); err != nil {
				return err
			}
		}
		n++
		f.mu.Lock()
		if rowBatch >= 0 {
			if f.checkBackpressure && f.seen[shard] < rowBatch {
				f.violations = append(f.violations, fmt.Sprintf("shard %s hands row batch %d while the client saw %d", shard, rowBatch, f.seen[shard]))
			}
			f.handed[shard]++
		}
		f.inEmit[shard] = true
		f.notifyLocked()
		f.mu.Unlock()
		err := emit(b)
		f.mu.Lock()
		f.inEmit[shard] = false
		f.notifyLocked()
		f.mu.Unlock()
		scribble(b)
		return err
	}
	if s.Fields != nil {
		if err := send(&Batch{Fields: slices.Clone(s.Fields)}, -1); err != nil {
			return "", err
		}
	}
	size := max(s.BatchSize, 1)
	limit := len(s.Rows)
	if s.Stop != stopNone {
		limit = min(limit, s.StopAfter)
	}
	for sent, rb := 0, 0; sent < limit; rb++ {
		end := min(sent+size, limit)
		if err := send(&Batch{Rows: cloneRows(s.Rows[sent:end])}, rb); err != nil {
			return "", err
		}
		sent = end
	}
	switch s.Stop {
	case stopFail:
		return "", s.Err
	case stopBlock:
		f.mu.Lock()
		f.blocked[shard] = true
		f.notifyLocked()
		f.mu.Unlock()
		<-ctx.Done()
		return "", ctx.Err()
	}
	return s.Tag, nil
}

func cloneRows(rows [][][]byte) [][][]byte {
	out := make([][][]byte, len(rows))
	for i, r := range rows {
		out[i] = make([][]byte, len(r))
		for j, v := range r {
			if v != nil {
				out[i][j] = slices.Clone(v)
			}
		}
	}
	return out
}

// scribble overwrites a batch the fake no longer owns the right to keep
// valid.
func scribble(b *Batch) {
	for i := range b.Fields {
		b.Fields[i] = Field{Name: "scribbled"}
	}
	for _, r := range b.Rows {
		for _, v := range r {
			for k := range v {
				v[k] = '#'
			}
		}
	}
}

// waitChan waits for ch to close or ctx to end.
func waitChan(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// row builds a row of text values; "NULL" is SQL NULL.
func row(vals ...string) [][]byte {
	r := make([][]byte, len(vals))
	for i, v := range vals {
		if v != "NULL" {
			r[i] = []byte(v)
		}
	}
	return r
}

// shardRowsOf builds n one-column rows "shard-r0", "shard-r1", ... so the
// client can tell which shard a row came from.
func shardRowsOf(shard string, n int) [][][]byte {
	rows := make([][][]byte, n)
	for i := range rows {
		rows[i] = row(fmt.Sprintf("%s-r%d", shard, i))
	}
	return rows
}

// fields builds text fields with these names.
func fields(names ...string) []Field {
	fs := make([]Field, len(names))
	for i, n := range names {
		fs[i] = Field{Name: n, DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}
	}
	return fs
}

// collector is a client: it records what a primitive emits, copying it.
type collector struct {
	batches  []Batch // copies, in order
	fieldsN  int     // Fields batches seen
	rowsN    int     // rows seen
	badOrder bool    // a row came before any Fields
	// onRows, when set, runs for every row batch; its error is emit's.
	onRows func(b *Batch) error
}

func (c *collector) emit(b *Batch) error {
	cp := Batch{Rows: cloneRows(b.Rows)}
	if b.Fields != nil {
		cp.Fields = slices.Clone(b.Fields)
		c.fieldsN++
	}
	if len(b.Rows) > 0 && c.fieldsN == 0 {
		c.badOrder = true
	}
	c.rowsN += len(b.Rows)
	c.batches = append(c.batches, cp)
	if len(b.Rows) > 0 && c.onRows != nil {
		return c.onRows(b)
	}
	return nil
}

// values returns every row seen, as strings joined by "|" ("NULL" for nil).
func (c *collector) values() []string {
	var out []string
	for _, b := range c.batches {
		for _, r := range b.Rows {
			vs := make([]string, len(r))
			for j, v := range r {
				if v == nil {
					vs[j] = "NULL"
				} else {
					vs[j] = string(v)
				}
			}
			out = append(out, strings.Join(vs, "|"))
		}
	}
	return out
}

// rowShard returns the shard a "shard-rN" row came from.
func rowShard(b *Batch) string {
	s, _, _ := strings.Cut(string(b.Rows[0][0]), "-")
	return s
}

// testCtx is a context whose deadline turns a hang into a failure.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
