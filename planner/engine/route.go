package engine

import (
	"context"
	"errors"
	"fmt"
)

// Route runs a statement on the one shard its Target resolves to and
// forwards the result untouched: the common, cheap case. When the target
// resolves to several shards, Multi runs instead — the plan of the same
// statement across shards — or, when the statement cannot be answered
// exactly across shards, the Route fails with Refusal. So one plan serves
// every execution: whether a key's shard is one or several is decided by
// the topology and the parameters of the moment.
type Route struct {
	Target Target
	Query  Query
	// Multi runs when Target resolves to more than one shard.
	Multi Primitive
	// Refusal is the error of a multi-shard execution when Multi is nil.
	Refusal *Error
	// Gathers is set when, should Multi refuse the statement (0A000, not
	// Final) before the client saw a row, the plan that gathers the rows
	// of its sharded tables to one shard may run instead (see Gatherer).
	Gathers bool
}

// Gatherer is an Executor that can plan a statement by gathering the rows
// of its sharded tables to one shard.
type Gatherer interface {
	Gather(sql string) (Primitive, error)
}

var _ Primitive = (*Route)(nil)

// Stream implements Primitive.
func (r *Route) Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	shards := r.Target.Resolve(x.Topology(), args)
	if len(shards) == 1 {
		q := r.Query
		q.AnyShard = r.Target.Kind == TargetAny
		return x.Query(ctx, shards[0], q, emit)
	}
	if g, ok := x.(Gatherer); ok && r.Multi != nil && r.Gathers {
		return r.multiOrGather(ctx, x, g, args, emit)
	}
	if r.Multi != nil {
		return r.Multi.Stream(ctx, x, args, emit)
	}
	if r.Refusal != nil {
		return "", r.Refusal
	}
	return "", internal("statement %q reaches %d shards and has no plan for that", r.Query.SQL, len(shards))
}

// multiOrGather runs Multi, and Gather when Multi refuses the statement
// before the client saw anything: the columns wait for the first row.
func (r *Route) multiOrGather(ctx context.Context, x Executor, gather Gatherer, args Params, emit func(*Batch) error) (Tag, error) {
	var columns *Batch
	sent := false
	tag, err := r.Multi.Stream(ctx, x, args, func(b *Batch) error {
		if b.Fields != nil && !sent {
			columns = &Batch{Fields: append([]Field(nil), b.Fields...)}
			return nil
		}
		if !sent && columns != nil {
			if err := emit(columns); err != nil {
				return err
			}
		}
		sent = true
		return emit(b)
	})
	var e *Error
	if err != nil && !sent && errors.As(err, &e) && e.Code == CodeFeatureNotSupported && !e.Final {
		if g, gerr := gather.Gather(r.Query.SQL); gerr == nil {
			return g.Stream(ctx, x, args, emit)
		}
		return "", err
	}
	if err == nil && !sent && columns != nil {
		err = emit(columns)
	}
	return tag, err
}

// Inputs implements Primitive.
func (r *Route) Inputs() []Primitive {
	if r.Multi == nil {
		return nil
	}
	return []Primitive{r.Multi}
}

// Describe implements Primitive.
func (r *Route) Describe() string {
	s := fmt.Sprintf("Route %s sql=%q", r.Target, r.Query.SQL)
	if r.Refusal != nil {
		s += fmt.Sprintf(" multi-shard: refused (%s)", r.Refusal.Message)
	}
	return s
}

// Broadcast runs the same write on every shard Target resolves to (the
// copies of reference tables, DDL), one after another, and answers with
// the first shard's result; the other copies must give the same one.
type Broadcast struct {
	Target Target
	SQL    string
	// Apart is set for a statement that runs outside a transaction (CREATE
	// INDEX CONCURRENTLY): where it failed, its error says which shards
	// it took effect on (PartlyApplied).
	Apart bool
	// Undo, if set, removes what Apart's statement leaves behind on the
	// shard where it failed: so it can be run again.
	Undo *Undo
}

// Undo removes the remains of a statement that failed outside a
// transaction: SQL runs if Check returns a row.
type Undo struct {
	Check, SQL string
}

var _ Primitive = (*Broadcast)(nil)

// Stream implements Primitive.
func (b *Broadcast) Stream(ctx context.Context, x Executor, _ Params, emit func(*Batch) error) (Tag, error) {
	shards := b.Target.Resolve(x.Topology(), nil)
	var first Tag
	for i, s := range shards {
		out := emit
		if i > 0 {
			out = func(*Batch) error { return nil }
		}
		t, err := x.Query(ctx, s, Query{SQL: b.SQL, Quiet: i > 0}, out)
		if err != nil && b.Apart {
			return "", &PartlyApplied{Applied: shards[:i], Failed: s, NotRun: shards[i+1:], Err: err, Undone: b.undo(ctx, x, s)}
		}
		if err != nil {
			return "", fmt.Errorf("on shard %s: %w", s, err)
		}
		if i == 0 {
			first = t
		} else if t != first {
			return "", internal("copies diverged: shard %s answered %q, shard %s answered %q", shards[0], first, s, t)
		}
	}
	return first, nil
}

// undo runs b.Undo on shard after b's statement failed there, and says
// whether it removed something.
func (b *Broadcast) undo(ctx context.Context, x Executor, shard string) bool {
	if b.Undo == nil {
		return false
	}
	rows := 0
	if _, err := x.Query(ctx, shard, Query{SQL: b.Undo.Check, Quiet: true, Internal: true}, func(batch *Batch) error {
		rows += len(batch.Rows)
		return nil
	}); err != nil || rows == 0 {
		return false
	}
	_, err := x.Query(ctx, shard, Query{SQL: b.Undo.SQL, Quiet: true, Internal: true}, func(*Batch) error { return nil })
	return err == nil
}

// Inputs implements Primitive.
func (b *Broadcast) Inputs() []Primitive { return nil }

// Describe implements Primitive.
func (b *Broadcast) Describe() string {
	if b.Apart {
		return fmt.Sprintf("Broadcast %s apart sql=%q", b.Target, b.SQL)
	}
	return fmt.Sprintf("Broadcast %s sql=%q", b.Target, b.SQL)
}
