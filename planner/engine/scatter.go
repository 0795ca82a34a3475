package engine

import (
	"context"
	"errors"
	"fmt"
)

// Scatter runs a statement on every shard its Target resolves to, all at
// once, and streams their rows as one result: the answer of a statement
// whose rows are partitioned across shards, in no particular order. Row
// counts in the tags add up. An error from any shard fails the whole
// statement and cancels the others.
type Scatter struct {
	Target Target
	Query  Query
	// Lean is Query.SQL with Probes computed as NULL, which the shards
	// run once Types allows (see lean.go); "" for never.
	Lean   string
	Probes []Probe
	Types  *KeyTypes
}

var _ Primitive = (*Scatter)(nil)

// Stream implements Primitive.
func (s *Scatter) Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	shards := s.Target.Resolve(x.Topology(), args)
	q := s.Query
	q.Spread = len(shards) > 1
	lean := s.Types.lean(x, s.Lean)
	if lean {
		q.SQL = s.Lean
	}
	parts := make([]shardQuery, len(shards))
	for i, sh := range shards {
		parts[i] = shardQuery{shard: sh, query: q}
	}
	if s.Types != nil {
		next, learned := emit, false
		emit = func(b *Batch) error {
			if b.Fields != nil && !learned {
				learned = true
				if err := s.Types.learn(x, lean, s.Probes, b.Fields, len(b.Fields)-s.Query.Hidden); err != nil {
					return err
				}
			}
			return next(b)
		}
	}
	return streamParallel(ctx, x, parts, emit)
}

// Inputs implements Primitive.
func (s *Scatter) Inputs() []Primitive { return nil }

// Describe implements Primitive.
func (s *Scatter) Describe() string {
	return fmt.Sprintf("Scatter %s sql=%q", s.Target, s.Query.SQL)
}

// shardQuery is one statement for one shard of a parallel run.
type shardQuery struct {
	shard string
	query Query
}

// handoff carries one shard's batch to the goroutine that emits, which
// answers on ack once it has emitted the batch (or given up): the shard's
// goroutine waits for that before it reads on, so each shard holds at most
// one batch and a slow client slows the shards down instead of filling
// memory.
type handoff struct {
	batch *Batch
	ack   chan error
}

// errStopped answers the batches of shards still running after the
// statement failed.
var errStopped = errors.New("the statement stopped on another shard")

// streamParallel runs parts at once and emits their results as one, on the
// calling goroutine: the first shard's Fields, then every shard's rows as
// they arrive. The tags add up. The first error fails the statement: the
// other parts are cancelled and their errors ignored. It returns only when
// every part has ended.
func streamParallel(ctx context.Context, x Executor, parts []shardQuery, emit func(*Batch) error) (Tag, error) {
	var (
		fields    []Field
		described bool
	)
	merge := func(b *Batch) error {
		if b.Fields == nil {
			return emit(b)
		}
		if !described {
			fields, described = append([]Field(nil), b.Fields...), true
			return emit(b)
		}
		if len(b.Fields) != len(fields) {
			return internal("shards disagree on the result's columns (%d vs %d); is the schema the same on every shard?", len(fields), len(b.Fields))
		}
		return nil
	}
	if len(parts) == 1 {
		return x.Query(ctx, parts[0].shard, parts[0].query, merge)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		tag Tag
		err error
	}
	batches := make(chan handoff)
	results := make(chan result, len(parts))
	for _, p := range parts {
		go func() {
			ack := make(chan error, 1)
			q := p.query
			q.Gathered = true
			tag, err := x.Query(ctx, p.shard, q, func(b *Batch) error {
				batches <- handoff{batch: b, ack: ack}
				return <-ack
			})
			results <- result{tag, err}
		}()
	}
	var (
		tag     Tag
		failure error
	)
	fail := func(err error) {
		if failure == nil {
			failure = err
			cancel()
		}
	}
	for running := len(parts); running > 0; {
		select {
		case h := <-batches:
			if failure != nil {
				h.ack <- errStopped
				continue
			}
			err := merge(h.batch)
			if err != nil {
				fail(err)
			}
			h.ack <- err
		case r := <-results:
			running--
			if r.err != nil {
				fail(r.err)
				continue
			}
			if failure == nil {
				var err error
				if tag, err = tag.plus(r.tag); err != nil {
					fail(err)
				}
			}
		}
	}
	if failure != nil {
		return "", failure
	}
	return tag, nil
}
