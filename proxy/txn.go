package proxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// TwoPCLog durably records two-phase commit decisions, so that a gateway
// that dies between PREPARE TRANSACTION and COMMIT PREPARED leaves a record
// another gateway can finish. topology.Store implements it.
type TwoPCLog interface {
	BeginTwoPC(ctx context.Context, t topology.TwoPC) error
	DecideTwoPC(ctx context.Context, gid string, d topology.TwoPCDecision) error
	// CommitTwoPC decides commit for a record as it was begun, in one
	// round trip when nothing changed it since.
	CommitTwoPC(ctx context.Context, begun topology.TwoPC) error
	EndTwoPC(ctx context.Context, gid string) error
}

// txn is a client transaction: explicit (BEGIN ... COMMIT) or implicit (the
// statements of one Query message, or one statement that writes on several
// shards). It holds one backend connection per shard it touched, each inside
// its own backend transaction.
type txn struct {
	explicit bool
	// begin is the statement that opens the transaction on each backend,
	// as the client wrote it (isolation level and access mode included).
	begin  string
	failed bool

	backends map[string]*backend
	order    []string // shards in the order they joined
	wrote    map[string]bool
	// ks is the keyspace as the transaction's first statement on a shard
	// found it: the rest of the transaction routes by the same topology
	// snapshot, whatever changes meanwhile.
	ks *topology.Keyspace

	// replay is what the transaction did to its backends beyond running
	// statements — SAVEPOINT, RELEASE, SET, SET LOCAL — in order. A shard
	// that joins later gets it after BEGIN, so ROLLBACK TO and SHOW work
	// the same on every shard.
	replay     []string
	savepoints []savepoint
	// settings are the session settings as this transaction changed them;
	// they become the session's at COMMIT and are dropped at ROLLBACK.
	settings map[string]string
	// settingsChanged is set once a SET ran on the backends.
	settingsChanged bool
	// record is the two-phase commit record begun when a second shard was
	// written, nil before and once COMMIT took it.
	record *twopcRecord
	// sequences are what the transaction's statements did to global
	// sequences, for the gateway to follow once it committed.
	sequences []planner.SequenceChange
}

type savepoint struct {
	name      string
	replay    int               // len(replay) once it was made
	sequences int               // len(sequences) once it was made
	settings  map[string]string // settings when it was made
}

func newTxn(explicit bool, begin string, settings map[string]string) *txn {
	return &txn{
		explicit: explicit,
		begin:    begin,
		backends: map[string]*backend{},
		wrote:    map[string]bool{},
		settings: maps.Clone(settings),
	}
}

// status is the transaction status a ReadyForQuery reports.
func (t *txn) status() byte {
	switch {
	case t == nil || !t.explicit:
		return 'I'
	case t.failed:
		return 'E'
	}
	return 'T'
}

// gidCounter makes two-phase commit ids unique within a gateway.
var gidCounter atomic.Uint64

// commit ends the transaction on every backend: a plain COMMIT when at most
// one shard was written, else two-phase commit with the decision recorded in
// the TwoPCLog before any shard commits. It returns the backends released.
func (s *session) commit(ctx context.Context, t *txn) error {
	if err := s.commitShards(ctx, t); err != nil {
		return err
	}
	s.followSequences(t.sequences)
	return nil
}

// commitShards commits t on its shards.
func (s *session) commitShards(ctx context.Context, t *txn) error {
	defer s.releaseTxn(t)
	var writers, readers []*backend
	for _, shard := range t.order {
		if t.wrote[shard] {
			writers = append(writers, t.backends[shard])
		} else {
			readers = append(readers, t.backends[shard])
		}
	}
	if len(writers) <= 1 {
		// The writer first: locks the readers took (SELECT ... FOR
		// UPDATE) hold until the write they protect has committed.
		for _, b := range writers {
			if err := b.run(ctx, "COMMIT"); err != nil {
				return outcomeUnknown(err, "COMMIT")
			}
		}
		var lost *ShardConnectionLostError
		for _, b := range readers {
			// A reader that lost its connection had nothing to commit.
			if err := b.run(ctx, "COMMIT"); err != nil && !errors.As(err, &lost) {
				return err
			}
		}
		return nil
	}
	record := t.record
	t.record = nil
	return s.twoPhaseCommit(ctx, record, writers, readers)
}

// twopcRecord is a transaction's two-phase commit record, begun in etcd in
// the background as soon as the transaction wrote on a second shard, so
// that its COMMIT waits for one etcd write (the decision), not two.
type twopcRecord struct {
	rec  topology.TwoPC
	done chan struct{}
	err  error // BeginTwoPC's, once done is closed
}

// beginRecord starts t's record, once, if t may need two-phase commit. Its
// participants are every shard of the transaction's keyspace: a shard that
// never prepares counts as done for a resolver, and a later write on a
// third shard needs no new record.
func (s *session) beginRecord(t *txn) {
	if t.record != nil || s.srv.twopc == nil || len(t.wrote) < 2 {
		return
	}
	var shards []string
	if t.ks != nil {
		shards = slices.Clone(t.ks.Shards())
	}
	for shard := range t.wrote {
		if !slices.Contains(shards, shard) {
			shards = append(shards, shard)
		}
	}
	slices.Sort(shards)
	r := s.newRecord(shards)
	s.srv.wg.Add(1) // while the session, counted too, still runs
	go func() {
		defer s.srv.wg.Done()
		defer close(r.done)
		ctx, cancel := context.WithTimeout(s.srv.background, 10*time.Second)
		defer cancel()
		r.err = s.srv.twopc.BeginTwoPC(ctx, r.rec)
	}()
	t.record = r
}

// newRecord names a record of participants and marks it in flight: while
// this coordinator works on it, its own resolver leaves it alone; once it
// gives up, the resolver finishes it.
func (s *session) newRecord(participants []string) *twopcRecord {
	gid := fmt.Sprintf("%s%s_%d", gidPrefix, s.srv.gatewayID, gidCounter.Add(1))
	s.srv.inflight.Store(gid, true)
	return &twopcRecord{
		rec:  topology.TwoPC{GID: gid, Gateway: s.srv.gatewayID, Participants: participants, Created: time.Now().UTC(), Role: s.backendRole},
		done: make(chan struct{}),
	}
}

// dropRecord deletes a record no commit used, once its begin is over. No
// shard prepared under its GID.
func (s *session) dropRecord(r *twopcRecord) {
	s.srv.wg.Add(1)
	go func() {
		defer s.srv.wg.Done()
		<-r.done
		ctx, cancel := context.WithTimeout(s.srv.background, 10*time.Second)
		defer cancel()
		if err := s.srv.twopc.EndTwoPC(ctx, r.rec.GID); err != nil {
			s.log.Warn("two-phase commit: could not delete an unused record; the resolver will", zap.String("gid", r.rec.GID), zap.Error(err))
		}
		s.srv.inflight.Delete(r.rec.GID)
	}()
}

// covers reports whether every writer is a participant of r.
func (r *twopcRecord) covers(writers []*backend) bool {
	for _, b := range writers {
		if !slices.Contains(r.rec.Participants, b.shard) {
			return false
		}
	}
	return true
}

func (s *session) twoPhaseCommit(ctx context.Context, record *twopcRecord, writers, readers []*backend) error {
	log := s.srv.twopc
	if log == nil {
		return &planner.Error{Code: codeFeatureNotSupp, Message: "this gateway has no two-phase commit log; writes on several shards cannot commit atomically"}
	}
	if record != nil {
		<-record.done
		if record.err != nil || !record.covers(writers) {
			// Begun in vain: a record begun now gets the same chance
			// as before the transaction's writes.
			s.dropRecord(record)
			record = nil
		}
	}
	if record == nil {
		shards := make([]string, len(writers))
		for i, b := range writers {
			shards[i] = b.shard
		}
		record = s.newRecord(shards)
		record.err = log.BeginTwoPC(ctx, record.rec)
		close(record.done)
	}
	rec, gid := record.rec, record.rec.GID
	defer s.srv.inflight.Delete(gid)
	if record.err != nil {
		s.rollbackAll(writers, readers)
		s.srv.metrics.twoPhaseCommit(twopcAborted)
		return fmt.Errorf("two-phase commit: recording the transaction: %w", record.err)
	}
	// Every participant prepares at once.
	prepareErrs := onEach(writers, func(b *backend) error {
		return b.run(ctx, "PREPARE TRANSACTION "+quoteLiteral(preparedGID(gid, b.shard)))
	})
	s.srv.hooks.afterPrepare()
	if prepareErr := errors.Join(prepareErrs...); prepareErr != nil {
		bg := context.Background()
		for i, b := range writers {
			if prepareErrs[i] == nil {
				_ = b.run(bg, "ROLLBACK PREPARED "+quoteLiteral(preparedGID(gid, b.shard)))
			} else {
				_ = b.run(bg, "ROLLBACK")
			}
		}
		s.rollbackAll(readers)
		if err := log.DecideTwoPC(bg, gid, topology.TwoPCAbort); err == nil {
			_ = log.EndTwoPC(bg, gid)
		}
		s.srv.metrics.twoPhaseCommit(twopcAborted)
		for _, err := range prepareErrs {
			if err != nil {
				return err // the first shard's, as when they ran in turn
			}
		}
	}
	// The commit point: from here on, every participant commits, now or
	// when a resolver finishes the record.
	if err := s.decideCommit(rec); err != nil {
		if errors.Is(err, errAborted) {
			for _, b := range writers {
				_ = b.run(context.Background(), "ROLLBACK PREPARED "+quoteLiteral(preparedGID(gid, b.shard)))
			}
			_ = log.EndTwoPC(context.Background(), gid)
			s.srv.metrics.twoPhaseCommit(twopcAborted)
			return &planner.Error{Code: "40001", Message: "the transaction was rolled back: its commit could not be recorded in time"}
		}
		s.log.Error("two-phase commit: the commit decision is unknown; a resolver will finish it", zap.String("gid", gid), zap.Error(err))
		s.srv.metrics.twoPhaseCommit(twopcUnknown)
		return &planner.Error{Code: codeResolutionUnknown, Message: "the outcome of the transaction is unknown: the commit decision could not be recorded; it will be resolved"}
	}
	s.srv.hooks.afterDecide()
	done := true
	for i, err := range onEach(writers, func(b *backend) error {
		return b.run(context.Background(), "COMMIT PREPARED "+quoteLiteral(preparedGID(gid, b.shard)))
	}) {
		if err != nil {
			s.log.Warn("two-phase commit: COMMIT PREPARED failed; a resolver will finish it", zap.String("gid", gid), zap.String("shard", writers[i].shard), zap.Error(err))
			done = false
		}
	}
	s.srv.metrics.twoPhaseCommit(twopcCommitted)
	// Read-only parts end last, so their locks outlive the writes.
	for _, b := range readers {
		_ = b.run(context.Background(), "COMMIT")
	}
	if done {
		// The finished record goes while the client hears of its commit:
		// if this fails, a resolver finds the record decided and deletes
		// it.
		s.srv.wg.Add(1) // while the session, counted too, still runs
		go func() {
			defer s.srv.wg.Done()
			ctx, cancel := context.WithTimeout(s.srv.background, 10*time.Second)
			defer cancel()
			if err := log.EndTwoPC(ctx, gid); err != nil {
				s.log.Warn("two-phase commit: could not delete the finished record", zap.String("gid", gid), zap.Error(err))
			}
		}()
	}
	return nil
}

// onEach runs f on every backend at once and returns their errors, in
// order.
func onEach(backends []*backend, f func(*backend) error) []error {
	errs := make([]error, len(backends))
	var wg sync.WaitGroup
	for i, b := range backends[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i+1] = f(b)
		}()
	}
	errs[0] = f(backends[0])
	wg.Wait()
	return errs
}

var errAborted = errors.New("aborted by a resolver")

// decideCommit records the commit decision, retrying an unclear answer. It
// returns errAborted when a resolver decided abort first.
func (s *session) decideCommit(rec topology.TwoPC) error {
	var err error
	for attempt := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if attempt == 0 {
			err = s.srv.twopc.CommitTwoPC(ctx, rec)
		} else {
			err = s.srv.twopc.DecideTwoPC(ctx, rec.GID, topology.TwoPCCommit)
		}
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, topology.ErrConflict), errors.Is(err, topology.ErrNotFound) && attempt == 0:
			return errAborted
		}
	}
	return err
}

// preparedGID names a prepared transaction on one shard. Several shards may
// live on one Postgres server, so each gets its own name.
func preparedGID(gid, shard string) string { return gid + "_" + shard }

func (s *session) rollbackAll(lists ...[]*backend) {
	for _, l := range lists {
		for _, b := range l {
			_ = b.run(context.Background(), "ROLLBACK")
		}
	}
}

// rollback ends the transaction on every backend without keeping anything.
func (s *session) rollback(ctx context.Context, t *txn) error {
	defer s.releaseTxn(t)
	var (
		first error
		lost  *ShardConnectionLostError
	)
	for _, shard := range t.order {
		b := t.backends[shard]
		if b.pg.IsClosed() {
			continue // a lost connection took its transaction with it
		}
		if err := b.run(ctx, "ROLLBACK"); err != nil && first == nil && !errors.As(err, &lost) {
			first = err
		}
	}
	return first
}

// releaseTxn gives the transaction's backends back, unless the session
// holds them (session pooling).
func (s *session) releaseTxn(t *txn) {
	if t.record != nil {
		s.dropRecord(t.record)
		t.record = nil
	}
	for _, shard := range t.order {
		b := t.backends[shard]
		if t.settingsChanged {
			b.state.forget()
		}
		s.giveBack(b)
	}
	t.backends = map[string]*backend{}
	t.order = nil
}

// join brings shard into the transaction: borrow (or reuse) its backend,
// open the backend transaction and replay what the transaction did so far.
// backendOf is t's backend on shard, nil if it holds none (or t is nil).
func (t *txn) backendOf(shard string) *backend {
	if t == nil {
		return nil
	}
	return t.backends[shard]
}

func (s *session) join(ctx context.Context, t *txn, shard string) (*backend, error) {
	if b := t.backends[shard]; b != nil {
		return b, nil
	}
	// The session's settings as they were when the transaction began; what
	// the transaction changed comes with the replay, inside it.
	b, err := s.backendFor(ctx, shard, nil)
	if err != nil {
		return nil, err
	}
	stmts := append([]string{t.begin}, t.replay...)
	if len(t.replay) > 0 {
		// The replay may change search_path (see statementName).
		b.scope += "\x00" + strings.Join(t.replay, ";")
	}
	if plainBegin(t.begin) {
		// It goes out with the transaction's first statement on b: a
		// plain BEGIN cannot fail, and a failing replay leaves the
		// block aborted.
		err = b.queueBegin(strings.Join(stmts, "; "))
	} else {
		err = b.run(ctx, strings.Join(stmts, "; "))
	}
	if err != nil {
		s.giveBack(b)
		return nil, err
	}
	t.backends[shard] = b
	t.order = append(t.order, shard)
	return b, nil
}

// plainBegin reports whether begin starts a transaction with no options,
// which Postgres does not refuse.
func plainBegin(begin string) bool {
	switch strings.ToUpper(strings.Join(strings.Fields(strings.TrimSuffix(strings.TrimSpace(begin), ";")), " ")) {
	case "BEGIN", "BEGIN TRANSACTION", "BEGIN WORK", "START TRANSACTION":
		return true
	}
	return false
}

// noteWrite records that shard is written in t, refusing a second written
// shard when the keyspace asks so.
func (s *session) noteWrite(t *txn, shard string, policy vschema.MultiShardWrites) error {
	if t.wrote[shard] {
		return nil
	}
	if policy == vschema.RefuseMultiShardWrites && len(t.wrote) > 0 {
		return &planner.Error{Code: codeFeatureNotSupp,
			Message: fmt.Sprintf("keyspace %s refuses transactions that write on more than one shard (multi_shard_writes: refuse)", s.keyspace)}
	}
	t.wrote[shard] = true
	s.beginRecord(t)
	return nil
}

var errNoSavepoint = errors.New("no such savepoint")

// findSavepoint returns the index of the newest savepoint named name.
func (t *txn) findSavepoint(name string) (int, error) {
	for i := len(t.savepoints) - 1; i >= 0; i-- {
		if t.savepoints[i].name == name {
			return i, nil
		}
	}
	return -1, errNoSavepoint
}
