package planner

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// Field describes one result column, as the shard's RowDescription did.
type Field struct {
	Name                 string
	TableOID             uint32
	TableAttributeNumber uint16
	DataTypeOID          uint32
	DataTypeSize         int16
	TypeModifier         int32
	Format               int16
}

// Batch is a piece of a result stream. The first batch of a result that has
// rows carries Fields (and no rows); later batches carry Rows of raw column
// values exactly as the shard sent them (nil is SQL NULL). Everything a Batch
// points to is owned by the sender and valid only until emit returns.
type Batch struct {
	Fields []Field
	Rows   [][][]byte
}

// Query is one statement for one shard.
type Query struct {
	SQL string
	// Params maps the statement's parameters to the client's: $i of SQL is
	// the client's parameter Params[i-1] (0-based). Nil means the client's
	// parameters as they are.
	Params []int
	// AnyShard is set when every shard of the keyspace gives the same
	// answer: the executor may run it on another shard than the one named,
	// one that is up, or one its transaction already holds.
	AnyShard bool
}

// Executor runs SQL on a physical shard. It is everything a primitive may ask
// of the gateway, so primitives can be tested without a network.
type Executor interface {
	// Query runs one statement on shard, with the client's bound parameters
	// if it has any, and emits its result: a Batch with Fields first when the
	// statement returns rows and the executor describes them, then rows. It
	// returns the statement's command tag. Cancelling ctx cancels the
	// statement on the shard. An error from emit stops the query and is
	// returned.
	Query(ctx context.Context, shard string, q Query, emit func(*Batch) error) (Tag, error)
}

// Primitive is one node of an execution plan. Plans are immutable and safe to
// share between sessions.
type Primitive interface {
	// Stream runs the subtree, emitting its result in order, and returns the
	// combined command tag.
	Stream(ctx context.Context, x Executor, emit func(*Batch) error) (Tag, error)
	// Inputs returns the children of this node.
	Inputs() []Primitive
	// Describe prints this node (not its children) on one line.
	Describe() string
}

// Tag is a command tag such as "SELECT 3" or "INSERT 0 1".
type Tag string

// count splits a tag into its verb and row count. hasCount is false for tags
// that carry no count, such as "CREATE TABLE".
func (t Tag) count() (verb string, n int64, hasCount bool) {
	s := string(t)
	i := strings.LastIndexByte(s, ' ')
	if i < 0 {
		return s, 0, false
	}
	n, err := strconv.ParseInt(s[i+1:], 10, 64)
	if err != nil {
		return s, 0, false
	}
	return s[:i], n, true
}

// plus combines the tags of the same statement run on two shards: row counts
// add up; tags without a count must agree.
func (t Tag) plus(o Tag) (Tag, error) {
	if t == "" {
		return o, nil
	}
	v1, n1, c1 := t.count()
	v2, n2, c2 := o.count()
	if v1 != v2 || c1 != c2 {
		return "", &Error{Code: CodeInternal, Message: fmt.Sprintf("shards answered %q and %q to the same statement", t, o)}
	}
	if !c1 {
		return t, nil
	}
	return Tag(v1 + " " + strconv.FormatInt(n1+n2, 10)), nil
}

// Route runs a statement on one physical shard and forwards its result
// untouched.
type Route struct {
	Shard string
	SQL   string
	// Params maps SQL's parameters to the client's (see Query.Params).
	Params []int
	// AnyShard is set when every shard gives the same answer (reference
	// tables, catalogs, no table at all), so Shard is only a choice.
	AnyShard bool
}

var _ Primitive = (*Route)(nil)

// Stream implements Primitive.
func (r *Route) Stream(ctx context.Context, x Executor, emit func(*Batch) error) (Tag, error) {
	return x.Query(ctx, r.Shard, Query{SQL: r.SQL, Params: r.Params, AnyShard: r.AnyShard}, emit)
}

// Inputs implements Primitive.
func (r *Route) Inputs() []Primitive { return nil }

// Describe implements Primitive.
func (r *Route) Describe() string { return fmt.Sprintf("Route shard=%s sql=%q", r.Shard, r.SQL) }

// Concat runs its inputs one after another and streams their rows as one
// result: the answer of a statement whose rows are partitioned across shards.
// Row counts in the tags add up. An error from any input fails the whole
// statement.
type Concat struct {
	Parts []Primitive
}

var _ Primitive = (*Concat)(nil)

// Stream implements Primitive.
func (c *Concat) Stream(ctx context.Context, x Executor, emit func(*Batch) error) (Tag, error) {
	var (
		tag    Tag
		fields []Field
	)
	for i, p := range c.Parts {
		t, err := p.Stream(ctx, x, func(b *Batch) error {
			if b.Fields == nil {
				return emit(b)
			}
			if i == 0 {
				fields = append([]Field(nil), b.Fields...)
				return emit(b)
			}
			if len(b.Fields) != len(fields) {
				return &Error{Code: CodeInternal, Message: fmt.Sprintf("shards disagree on the result's columns (%d vs %d); is the schema the same on every shard?", len(fields), len(b.Fields))}
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		if tag, err = tag.plus(t); err != nil {
			return "", err
		}
	}
	return tag, nil
}

// Inputs implements Primitive.
func (c *Concat) Inputs() []Primitive { return c.Parts }

// Describe implements Primitive.
func (c *Concat) Describe() string { return "Concat" }

// Broadcast runs the same write on every shard holding a copy of the data
// (reference tables, DDL) and answers with the first shard's result; the other
// copies must give the same one.
type Broadcast struct {
	Shards []string
	SQL    string
}

var _ Primitive = (*Broadcast)(nil)

// Stream implements Primitive.
func (b *Broadcast) Stream(ctx context.Context, x Executor, emit func(*Batch) error) (Tag, error) {
	var first Tag
	for i, s := range b.Shards {
		out := emit
		if i > 0 {
			out = func(*Batch) error { return nil }
		}
		t, err := x.Query(ctx, s, Query{SQL: b.SQL}, out)
		if err != nil {
			return "", fmt.Errorf("on shard %s: %w", s, err)
		}
		if i == 0 {
			first = t
		} else if t != first {
			return "", &Error{Code: CodeInternal, Message: fmt.Sprintf("copies diverged: shard %s answered %q, shard %s answered %q", b.Shards[0], first, s, t)}
		}
	}
	return first, nil
}

// Inputs implements Primitive.
func (b *Broadcast) Inputs() []Primitive { return nil }

// Describe implements Primitive.
func (b *Broadcast) Describe() string {
	return fmt.Sprintf("Broadcast shards=%s sql=%q", strings.Join(b.Shards, ","), b.SQL)
}

// Format prints a plan as an indented tree, one primitive per line.
func Format(p Primitive) string {
	var sb strings.Builder
	var walk func(p Primitive, depth int)
	walk = func(p Primitive, depth int) {
		sb.WriteString(strings.Repeat("  ", depth))
		sb.WriteString(p.Describe())
		sb.WriteByte('\n')
		for _, in := range p.Inputs() {
			walk(in, depth+1)
		}
	}
	walk(p, 0)
	return sb.String()
}

// Shards lists the shards a plan runs on, in order, each once.
func Shards(p Primitive) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	var visit func(p Primitive)
	visit = func(p Primitive) {
		switch n := p.(type) {
		case *Route:
			add(n.Shard)
		case *Broadcast:
			for _, s := range n.Shards {
				add(s)
			}
		}
		for _, in := range p.Inputs() {
			visit(in)
		}
	}
	visit(p)
	return out
}

// CountSum runs a statement that returns one row of counts on each shard
// (SELECT count(*), count(x) ... without GROUP BY) and answers with one row:
// the sum of each column. Counts of disjoint rows add up exactly.
type CountSum struct {
	Parts []Primitive
}

var _ Primitive = (*CountSum)(nil)

// Stream implements Primitive.
func (c *CountSum) Stream(ctx context.Context, x Executor, emit func(*Batch) error) (Tag, error) {
	var (
		fields []Field
		sums   []int64
		binOut []bool // the shards answered in binary
	)
	for i, p := range c.Parts {
		_, err := p.Stream(ctx, x, func(b *Batch) error {
			if b.Fields != nil {
				if i == 0 {
					fields = append([]Field(nil), b.Fields...)
				}
				return nil
			}
			for _, row := range b.Rows {
				if sums == nil {
					sums, binOut = make([]int64, len(row)), make([]bool, len(row))
				}
				if len(row) != len(sums) {
					return &Error{Code: CodeInternal, Message: "shards disagree on the columns of a count"}
				}
				for j, v := range row {
					n, bin, err := decodeCount(v)
					if err != nil {
						return err
					}
					sums[j] += n
					binOut[j] = bin
				}
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	if fields != nil {
		if err := emit(&Batch{Fields: fields}); err != nil {
			return "", err
		}
	}
	row := make([][]byte, len(sums))
	for j, n := range sums {
		if binOut[j] {
			row[j] = binary.BigEndian.AppendUint64(nil, uint64(n))
		} else {
			row[j] = strconv.AppendInt(nil, n, 10)
		}
	}
	if err := emit(&Batch{Rows: [][][]byte{row}}); err != nil {
		return "", err
	}
	return "SELECT 1", nil
}

// decodeCount reads a count (bigint) in text or binary form. Eight bytes
// that are all digits are text: as binary they would be a count above 3e18.
func decodeCount(v []byte) (n int64, binaryForm bool, err error) {
	if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return n, false, nil
	}
	if len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v)), true, nil
	}
	return 0, false, &Error{Code: CodeInternal, Message: fmt.Sprintf("a shard answered a count with %q", v)}
}

// Inputs implements Primitive.
func (c *CountSum) Inputs() []Primitive { return c.Parts }

// Describe implements Primitive.
func (c *CountSum) Describe() string { return "CountSum" }
