package engine

import (
	"context"
	"strconv"
	"strings"
)

// The kinds of values Bind takes from the gateway's global sequences
// (Subquery.Sequence) rather than from a plan: a sequence of a sharded
// keyspace hands out its values for every shard, so no two shards (and no
// two copies of a reference table's row) get the same or a different one.
const (
	// SequenceNext is nextval(): the sequence's next value.
	SequenceNext SubqueryKind = iota + 100
	// SequenceCurrent is currval(): the value nextval() last gave the
	// session.
	SequenceCurrent
	// SequenceLast is lastval(): the value nextval() last gave the
	// session, of any sequence.
	SequenceLast
	// SequenceSet is setval(): the sequence's next value is set by
	// Subquery.SetTo (and SetCalled).
	SequenceSet
)

// Sequencer is an Executor that hands out the values of its keyspace's
// global sequences, and remembers, per session, what it handed out.
type Sequencer interface {
	NextVal(ctx context.Context, sequence string) (int64, error)
	CurrVal(ctx context.Context, sequence string) (int64, error)
	LastVal() (int64, error)
	// SetVal makes value the sequence's last value (called) or its next.
	SetVal(ctx context.Context, sequence string, value int64, called bool) error
}

// Arg is an argument of a sequence function: a literal, or the client's
// parameter $Param.
type Arg struct {
	Literal string
	Param   int
}

func (a Arg) text(args Params) (string, bool) {
	if a.Param == 0 {
		return a.Literal, true
	}
	if args == nil {
		return "", false
	}
	return args.Text(a.Param - 1)
}

func (a Arg) String() string {
	if a.Param != 0 {
		return "$" + strconv.Itoa(a.Param)
	}
	return a.Literal
}

// isSequence reports whether k takes its value from a sequence.
func (k SubqueryKind) isSequence() bool { return k >= SequenceNext && k <= SequenceSet }

// sequenceValue is a sequence function's value, as an int8.
func (s *Subquery) sequenceValue(ctx context.Context, x Executor, args Params) (BoundValue, error) {
	seq, ok := sequencerOf(x)
	if !ok {
		return BoundValue{}, internal("the executor hands out no sequence values")
	}
	var (
		v   int64
		err error
	)
	switch s.Kind {
	case SequenceNext:
		v, err = seq.NextVal(ctx, s.Sequence)
	case SequenceCurrent:
		v, err = seq.CurrVal(ctx, s.Sequence)
	case SequenceLast:
		v, err = seq.LastVal()
	case SequenceSet:
		text, ok := s.SetTo.text(args)
		if !ok {
			return BoundValue{}, nil // setval(s, NULL) is NULL, as in Postgres
		}
		if v, err = strconv.ParseInt(strings.TrimSpace(text), 10, 64); err != nil {
			return BoundValue{}, &Error{Code: "22P02", Message: "invalid input syntax for type bigint: " + strconv.Quote(text)}
		}
		called := true
		if s.SetCalled != nil {
			text, ok := s.SetCalled.text(args)
			if !ok {
				return BoundValue{}, nil
			}
			called = text == "t" || text == "true" || text == "on" || text == "1" || text == "yes"
		}
		err = seq.SetVal(ctx, s.Sequence, v, called)
	}
	if err != nil {
		return BoundValue{}, err
	}
	return BoundValue{Text: []byte(strconv.FormatInt(v, 10)), OID: oidInt8}, nil
}

// sequencerOf finds the Sequencer under the engine's own executor wrappers.
func sequencerOf(x Executor) (Sequencer, bool) {
	for {
		switch w := x.(type) {
		case Sequencer:
			return w, true
		case boundExecutor:
			x = w.Executor
		case internalExecutor:
			x = w.Executor
		default:
			return nil, false
		}
	}
}
