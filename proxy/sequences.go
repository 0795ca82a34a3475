package proxy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// SequenceStore keeps the global sequences of sharded keyspaces (see
// topology.Store.LeaseSequence).
type SequenceStore interface {
	LeaseSequence(ctx context.Context, ks, name string, count, increment, max int64, start topology.SequenceStart) (first, leased int64, err error)
	SetSequence(ctx context.Context, ks, name string, next int64) error
	DropSequence(ctx context.Context, ks, name string) error
}

// sequenceAllocator hands out the values of global sequences from the
// blocks this gateway leased, in increasing order within the gateway.
type sequenceAllocator struct {
	store SequenceStore
	mu    sync.Mutex
	seqs  map[[2]string]*sequenceBlock // by keyspace and sequence
}

// sequenceBlock is what is left of a sequence's leased block.
type sequenceBlock struct {
	mu   sync.Mutex
	next int64 // the next value to hand out
	left int64 // how many are left, increment apart
	inc  int64
	// snowflake is set once the sequence was found to hold snowflake
	// ids (under sequence_ids: snowflake).
	snowflake bool
}

// sequenceDef is a sequence's definition, as a shard's catalog has it.
type sequenceDef struct {
	start, inc, min, max int64
	cycle                bool
	// next is the value the shard's own sequence would hand out next.
	next int64
}

func (a *sequenceAllocator) block(ks, name string) *sequenceBlock {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seqs == nil {
		a.seqs = map[[2]string]*sequenceBlock{}
	}
	b := a.seqs[[2]string{ks, name}]
	if b == nil {
		b = &sequenceBlock{}
		a.seqs[[2]string{ks, name}] = b
	}
	return b
}

// forget drops what is left of this gateway's block of a sequence, after
// setval or a restart moved it.
func (a *sequenceAllocator) forget(ks, name string) {
	b := a.block(ks, name)
	b.mu.Lock()
	b.left = 0
	b.mu.Unlock()
}

// codeUndefinedTable and the other codes of sequence errors, as Postgres
// answers them.
const (
	codeUndefinedTable       = "42P01"
	codeObjectNotInState     = "55000"
	codeNumericOutOfRange    = "22003"
	codeSequenceGeneratorMax = "2200H"
)

// NextVal implements engine.Sequencer: the sequence's next value, from this
// gateway's block, leasing the next block when it ran out.
func (x *sessionExecutor) NextVal(ctx context.Context, seq string) (int64, error) {
	s := x.s
	a := s.srv.sequences
	if a.store == nil {
		return 0, &planner.Error{Code: codeFeatureNotSupp, Message: "this gateway keeps no topology store to hand out global sequence values from"}
	}
	if x.ks.VSchema().SequenceIDs == vschema.SnowflakeIDs {
		return x.snowflakeVal(ctx, seq)
	}
	b := a.block(x.ks.Name, seq)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left == 0 {
		def, err := s.sequenceDef(ctx, x.ks, seq, false)
		if err != nil {
			return 0, err
		}
		if def.inc <= 0 || def.cycle {
			return 0, &planner.Error{Code: codeFeatureNotSupp, Message: fmt.Sprintf("sequence %q: only ascending sequences without CYCLE are supported on a sharded keyspace", seq)}
		}
		block := x.ks.VSchema().SequenceBlock
		first, n, err := a.store.LeaseSequence(ctx, x.ks.Name, seq, block, def.inc, def.max, func(ctx context.Context) (int64, error) {
			all, err := s.sequenceDef(ctx, x.ks, seq, true)
			return all.next, err
		})
		var exhausted *topology.SequenceExhaustedError
		switch {
		case errors.As(err, &exhausted):
			return 0, &planner.Error{Code: codeSequenceGeneratorMax, Message: exhausted.Error()}
		case errors.As(err, new(*planner.Error)), errors.As(err, new(*pgconn.PgError)), errors.As(err, new(*ShardUnreachableError)):
			return 0, err // from the shards, reading the sequence's definition
		case err != nil:
			return 0, &planner.Error{Code: codeSystemError, Message: fmt.Sprintf("leasing values of sequence %q: %v", seq, err)}
		}
		b.next, b.left, b.inc = first, n, def.inc
	}
	v := b.next
	b.next += b.inc
	b.left--
	s.noteSequenceValue(seq, v)
	return v, nil
}

// snowflakeVal is a snowflake id for sequence seq, which must hold one:
// its definition is checked once per gateway.
func (x *sessionExecutor) snowflakeVal(ctx context.Context, seq string) (int64, error) {
	s := x.s
	a := s.srv.sequences
	b := a.block(x.ks.Name, seq)
	b.mu.Lock()
	checked := b.snowflake
	b.mu.Unlock()
	if !checked {
		def, err := s.sequenceDef(ctx, x.ks, seq, false)
		if err != nil {
			return 0, err
		}
		if def.max < 1<<62 {
			return 0, &planner.Error{Code: codeFeatureNotSupp, Message: fmt.Sprintf("sequence %q ends at %d: snowflake ids need a bigint sequence (bigserial, bigint identity) that goes to its end", seq, def.max)}
		}
		b.mu.Lock()
		b.snowflake = true
		b.mu.Unlock()
	}
	v, err := s.srv.snowflake.next(time.Now)
	if err != nil {
		return 0, err
	}
	s.noteSequenceValue(seq, v)
	return v, nil
}

// noteSequenceValue remembers v as the session's currval of seq and its
// lastval.
func (s *session) noteSequenceValue(seq string, v int64) {
	if s.currvals == nil {
		s.currvals = map[string]int64{}
	}
	s.currvals[s.keyspace+"\x00"+seq] = v
	s.lastval, s.hasLastval = v, true
}

// CurrVal implements engine.Sequencer. Of a sequence that does not
// exist, it is Postgres's 42P01.
func (x *sessionExecutor) CurrVal(ctx context.Context, seq string) (int64, error) {
	v, ok := x.s.currvals[x.s.keyspace+"\x00"+seq]
	if !ok {
		if _, err := x.s.sequenceDef(ctx, x.ks, seq, false); err != nil {
			return 0, err
		}
		return 0, &planner.Error{Code: codeObjectNotInState, Message: fmt.Sprintf("currval of sequence %q is not yet defined in this session", seq)}
	}
	return v, nil
}

// LastVal implements engine.Sequencer.
func (x *sessionExecutor) LastVal() (int64, error) {
	if !x.s.hasLastval {
		return 0, &planner.Error{Code: codeObjectNotInState, Message: "lastval is not yet defined in this session"}
	}
	return x.s.lastval, nil
}

// SetVal implements engine.Sequencer: the sequence's next block starts
// after value (called) or at it. Other gateways hand out what is left of
// the blocks they hold first, as Postgres sessions do with cached values.
func (x *sessionExecutor) SetVal(ctx context.Context, seq string, value int64, called bool) error {
	s := x.s
	a := s.srv.sequences
	if a.store == nil {
		return &planner.Error{Code: codeFeatureNotSupp, Message: "this gateway keeps no topology store to hand out global sequence values from"}
	}
	if x.ks.VSchema().SequenceIDs == vschema.SnowflakeIDs {
		return &planner.Error{Code: codeFeatureNotSupp, Message: fmt.Sprintf("setval(%q) is not supported under sequence_ids: snowflake: its ids are made of the time", seq)}
	}
	def, err := s.sequenceDef(ctx, x.ks, seq, false)
	if err != nil {
		return err
	}
	if value < def.min || value > def.max {
		return &planner.Error{Code: codeNumericOutOfRange, Message: fmt.Sprintf("setval: value %d is out of bounds for sequence %q (%d..%d)", value, seq, def.min, def.max)}
	}
	next := value
	if called {
		next = value + def.inc
	}
	b := a.block(x.ks.Name, seq)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := a.store.SetSequence(ctx, x.ks.Name, seq, next); err != nil {
		return err
	}
	b.left = 0
	if called {
		s.noteSequenceValue(seq, value)
	}
	return nil
}

// sequenceDef reads the definition of sequence seq of keyspace ks from one
// of its shards, or from all of them (all): then next is the largest value
// any shard's own sequence would hand out next, where a global sequence
// starts. A sequence no shard has is Postgres's 42P01. A transaction that
// changed the schema reads it through its own connections, which see the
// sequences it made.
func (s *session) sequenceDef(ctx context.Context, ks *topology.Keyspace, seq string, all bool) (sequenceDef, error) {
	t := s.txn
	if t == nil || !s.changedSchema || t.failed {
		t = nil
	}
	return s.srv.readSequenceDef(ctx, ks, seq, all, t)
}

// readSequenceDef is sequenceDef through t's connections, or the pools'
// when t is nil.
func (srv *Server) readSequenceDef(ctx context.Context, ks *topology.Keyspace, seq string, all bool, t *txn) (sequenceDef, error) {
	schema, name, qualified := strings.Cut(seq, ".")
	if !qualified {
		schema, name = "public", seq
	}
	sql := "SELECT start_value, increment_by, min_value, max_value, cycle, " +
		"coalesce(last_value + increment_by, start_value) FROM pg_catalog.pg_sequences " +
		"WHERE schemaname = " + quoteLiteral(schema) + " AND sequencename = " + quoteLiteral(name)
	shards := srv.pools.Order(ks.Shards())
	if !all {
		shards = shards[:min(1, len(shards))]
	}
	var (
		out   sequenceDef
		found bool
	)
	firstRow := func(b *backend) (row [][]byte, err error) {
		err = b.exec(ctx, sql, func(batch *engine.Batch) error {
			if len(batch.Rows) > 0 && row == nil {
				for _, v := range batch.Rows[0] {
					row = append(row, append([]byte{}, v...))
				}
			}
			return nil
		}, discardTag)
		return row, err
	}
	inTxn := t != nil
	if inTxn && !all {
		shards = t.order[:min(1, len(t.order))]
	}
	for _, shard := range shards {
		var (
			row [][]byte
			err error
		)
		if b := t.backendOf(shard); inTxn && b != nil {
			row, err = firstRow(b)
		} else {
			sh := srv.topo().Shards[shard]
			if sh == nil {
				return out, &ShardUnreachableError{Shard: shard, Err: errShardGone}
			}
			b, aerr := srv.pools.acquire(ctx, sh)
			if aerr != nil {
				return out, aerr
			}
			row, err = firstRow(b)
			b.release()
		}
		if err != nil {
			return out, err
		}
		if row == nil {
			continue
		}
		var d sequenceDef
		ints := []*int64{&d.start, &d.inc, &d.min, &d.max}
		for i, p := range ints {
			if *p, err = strconv.ParseInt(string(row[i]), 10, 64); err != nil {
				return out, fmt.Errorf("sequence %s: reading its definition: %w", seq, err)
			}
		}
		d.cycle = string(row[4]) == "t"
		if d.next, err = strconv.ParseInt(string(row[5]), 10, 64); err != nil {
			return out, fmt.Errorf("sequence %s: reading its last value: %w", seq, err)
		}
		if !found || d.next > out.next {
			d.next = max(d.next, out.next)
			out = d
		}
		found = true
	}
	if !found {
		return out, &planner.Error{Code: codeUndefinedTable, Message: fmt.Sprintf("relation %q does not exist", seq)}
	}
	return out, nil
}

// noteSequences keeps what st did to global sequences for its transaction's
// commit, or follows it at once when st ran on its own.
func (s *session) noteSequences(st *planner.Statement) {
	if len(st.Sequences) == 0 {
		return
	}
	if t := s.txn; t != nil {
		t.sequences = append(t.sequences, st.Sequences...)
		return
	}
	s.followSequences(st.Sequences)
}

// followSequences moves or removes the etcd records of global sequences a
// committed transaction restarted or dropped (a recreated sequence starts
// afresh), and drops this gateway's blocks of them. A failure is logged:
// the values the sequences hand out stay unique either way.
func (s *session) followSequences(changes []planner.SequenceChange) {
	a := s.srv.sequences
	if len(changes) == 0 || a.store == nil {
		return
	}
	ks := s.srv.topo().Keyspace(s.keyspace)
	if ks == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.srv.background, 10*time.Second)
	defer cancel()
	for _, c := range changes {
		var err error
		switch {
		case c.Drop:
			err = a.store.DropSequence(ctx, ks.Name, c.Sequence)
		case c.Restart != nil:
			err = a.store.SetSequence(ctx, ks.Name, c.Sequence, *c.Restart)
		default:
			var def sequenceDef
			if def, err = s.srv.readSequenceDef(ctx, ks, c.Sequence, false, nil); err == nil {
				err = a.store.SetSequence(ctx, ks.Name, c.Sequence, def.start)
			}
		}
		if err != nil {
			s.log.Warn("following a restart or drop of a global sequence", zap.String("sequence", c.Sequence), zap.Error(err))
		}
		a.forget(ks.Name, c.Sequence)
	}
}
