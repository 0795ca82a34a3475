package migrate

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardgate/shardgate/vschema"
)

// Target is keyspace ids Lo..Hi, inclusive, and the shard they move to.
type Target struct {
	Lo, Hi int64
	Shard  string
	// After, when set, leaves out the changes of source transactions that
	// committed at or before it.
	After pglogrepl.LSN
}

// Stream applies a source shard's committed changes, read from a logical
// replication slot (pgoutput), to the targets of its moving keyspace ids:
// in the source's commit order, one target transaction per source
// transaction and target, each change applied by primary key so that
// applying a transaction again changes nothing. Rows of keyspace ids that
// do not move are left out; reference tables go to every target whole. The
// slot's flushed position is confirmed only after the targets committed.
type Stream struct {
	// Replication is a connection to the source opened with
	// replication=database (ReplicationConfig). Run closes it as it
	// returns: the slot is free for the next stream only then.
	Replication *pgconn.PgConn
	Slot        string
	Publication string
	// Start is where the stream begins: the slot's consistent point after
	// a copy under its snapshot, or 0 for where the slot stands (what was
	// confirmed last).
	Start pglogrepl.LSN
	// Keyspace gives the tables: the sharded ones by their sharding
	// column, the reference ones whole.
	Keyspace *vschema.Keyspace
	// Targets are where the stream starts applying to (see SetTargets).
	Targets []Target
	// Conns holds a connection per target shard, used by the stream
	// alone. A Run stopped by its context in the middle of a change
	// leaves that target's connection closed.
	Conns map[string]*pgconn.PgConn
	// Source is a plain connection to the source, for the values the
	// stream leaves out of a row (large ones stored apart that an update
	// did not change) when that update moves the row onto a target, which
	// lacks them. Nil: such a move stops the stream.
	Source *pgconn.PgConn
	// Hold, when set, is asked between source transactions whether the
	// stream must back off; it then reads nothing for a while, still
	// confirming its position so the source keeps the connection.
	Hold func() bool

	relations map[uint32]*relation
	open      map[string]bool // targets inside a transaction (its BEGIN sent or queued)
	pending   map[string]*pgconn.Batch
	pendingN  map[string]int // statements in pending
	inTxn     bool           // between a source transaction's Begin and Commit
	flushed   atomic.Uint64  // LSN the targets hold everything up to
	walEnd    atomic.Uint64  // the source's WAL end as last reported
	applied   atomic.Int64   // changes applied
	commitAt  time.Time      // the source commit time of the transaction being applied
	lagNanos  atomic.Int64   // source commit to target commit, of the last transaction applied
	// noReference holds the target shards that get no reference-table
	// changes (see StopReference).
	noReference atomic.Pointer[map[string]bool]
	// waiters counts the callers of WaitFor: while there are any, the
	// stream asks the source for its position often.
	waiters atomic.Int32
	// targets are the targets now: Targets, until SetTargets.
	targets  atomic.Pointer[[]Target]
	finalLSN pglogrepl.LSN // the commit position of the transaction being applied
}

// SetTargets replaces where the stream applies changes from the next
// transaction on. Safe to call while Run runs.
func (s *Stream) SetTargets(targets []Target) { s.targets.Store(&targets) }

// current returns the targets of the transaction being applied: those
// whose After it comes after.
func (s *Stream) current() []Target {
	all := s.Targets
	if p := s.targets.Load(); p != nil {
		all = *p
	}
	for _, t := range all {
		if t.After != 0 && s.finalLSN <= t.After {
			var out []Target
			for _, t := range all {
				if t.After == 0 || s.finalLSN > t.After {
					out = append(out, t)
				}
			}
			return out
		}
	}
	return all
}

// StopReference makes the stream leave reference tables alone on target
// shard: it is a shard of the keyspace now, and the gateways write
// reference tables there themselves. Safe to call while Run runs.
func (s *Stream) StopReference(shard string) {
	for {
		old := s.noReference.Load()
		next := map[string]bool{shard: true}
		if old != nil {
			for k := range *old {
				next[k] = true
			}
		}
		if s.noReference.CompareAndSwap(old, &next) {
			return
		}
	}
}

// ResumeReference undoes StopReference: shard is no shard of the keyspace
// any more. Safe to call while Run runs.
func (s *Stream) ResumeReference(shard string) {
	for {
		old := s.noReference.Load()
		if old == nil || !(*old)[shard] {
			return
		}
		next := map[string]bool{}
		for k := range *old {
			if k != shard {
				next[k] = true
			}
		}
		if s.noReference.CompareAndSwap(old, &next) {
			return
		}
	}
}

// referenceTargets are the targets that get reference-table changes.
func (s *Stream) referenceTargets() []Target {
	skip := s.noReference.Load()
	if skip == nil {
		return s.current()
	}
	var out []Target
	for _, t := range s.current() {
		if !(*skip)[t.Shard] {
			out = append(out, t)
		}
	}
	return out
}

// WaitFor waits until the targets hold everything the source committed
// up to lsn, or ctx ends. Run must be running.
func (s *Stream) WaitFor(ctx context.Context, lsn pglogrepl.LSN) error {
	s.waiters.Add(1)
	defer s.waiters.Add(-1)
	for s.Flushed() < lsn {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the stream holds %s, the source was at %s: %w", s.Flushed(), lsn, ctx.Err())
		case <-time.After(2 * time.Millisecond): // polling the stream's position
		}
	}
	return nil
}

// relation is one published table as the stream applies it.
type relation struct {
	name     string // quoted
	table    *vschema.Table
	columns  []string // as pgoutput sends them, unquoted
	shardCol int      // index in columns of the sharding column, -1 for reference tables
	key      []int    // indexes in columns of the primary key
}

// Flushed is the source position up to which every change is committed on
// the targets.
func (s *Stream) Flushed() pglogrepl.LSN { return pglogrepl.LSN(s.flushed.Load()) }

// LagBytes is how far the targets are behind the source's WAL as the
// source last reported it.
func (s *Stream) LagBytes() int64 {
	end, done := s.walEnd.Load(), s.flushed.Load()
	if end <= done {
		return 0
	}
	return int64(end - done)
}

// LagSeconds is how long the last transaction applied took from its
// commit on the source to its commit on the targets, 0 once the stream
// holds everything the source reported.
func (s *Stream) LagSeconds() float64 {
	if s.LagBytes() == 0 {
		return 0
	}
	return time.Duration(s.lagNanos.Load()).Seconds()
}

// Applied counts the row changes applied to the targets.
func (s *Stream) Applied() int64 { return s.applied.Load() }

// standbyEvery is how often the stream confirms its position to the source
// and asks for the source's: the slot's confirmed position is how the
// gateways learn what the targets hold (they steer reads there by it), so
// it must not lag much even when the source commits nothing of the
// stream's tables.
const standbyEvery = 100 * time.Millisecond

// askEvery is how often the stream asks the source for its position while
// someone waits for it to reach one (WaitFor): when the source is idle,
// only its answer moves the stream's position.
const askEvery = 20 * time.Millisecond

// Run streams until ctx ends or something fails. A transaction a target
// did not commit is rolled back there; running a new Stream from the slot
// goes on from the last confirmed position.
func (s *Stream) Run(ctx context.Context) error {
	s.relations = map[uint32]*relation{}
	s.open = map[string]bool{}
	s.pending, s.pendingN = map[string]*pgconn.Batch{}, map[string]int{}
	s.flushed.Store(uint64(s.Start))
	defer s.Replication.Close(context.Background())
	if err := s.start(ctx); err != nil {
		return err
	}
	defer s.rollbackOpen()
	nextStatus := time.Now().Add(standbyEvery)
	for {
		if time.Now().After(nextStatus) {
			if err := s.status(ctx, true); err != nil {
				return err
			}
			nextStatus = time.Now().Add(standbyEvery)
		}
		if !s.inTxn && s.Hold != nil && s.Hold() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(standbyEvery): // backing off
			}
			continue
		}
		until := nextStatus
		asking := s.waiters.Load() > 0
		if asking {
			until = time.Now().Add(askEvery)
		}
		rctx, cancel := context.WithDeadline(ctx, until)
		msg, err := s.Replication.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				if asking {
					// The source answers with its position at once.
					if err := s.status(ctx, true); err != nil {
						return err
					}
				}
				continue
			}
			return fmt.Errorf("reading the change stream: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.handleCopyData(ctx, msg.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("the change stream failed: %s (SQLSTATE %s)", msg.Message, msg.Code)
		}
	}
}

// start begins replication from the slot, waiting while another
// connection still holds it.
func (s *Stream) start(ctx context.Context) error {
	err := whileSlotBusy(ctx, func() error {
		return pglogrepl.StartReplication(ctx, s.Replication, s.Slot, s.Start, pglogrepl.StartReplicationOptions{
			PluginArgs: []string{"proto_version '1'", "publication_names " + quoteLiteral(s.Publication)},
		})
	})
	if err != nil {
		return fmt.Errorf("starting the change stream of slot %s: %w", s.Slot, err)
	}
	return nil
}

func (s *Stream) handleCopyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return err
		}
		s.walEnd.Store(uint64(ka.ServerWALEnd))
		if !s.inTxn && uint64(ka.ServerWALEnd) > s.flushed.Load() {
			// Between transactions: every one that committed before
			// the source's end came before this and is applied.
			s.flushed.Store(uint64(ka.ServerWALEnd))
		}
		if ka.ReplyRequested {
			return s.confirm(ctx)
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return err
		}
		s.walEnd.Store(uint64(xld.ServerWALEnd))
		m, err := pglogrepl.Parse(xld.WALData)
		if err != nil {
			return fmt.Errorf("decoding the change stream: %w", err)
		}
		return s.apply(ctx, m)
	}
	return nil
}

// confirm tells the source what the targets hold, so it can recycle WAL.
func (s *Stream) confirm(ctx context.Context) error { return s.status(ctx, false) }

// status confirms what the targets hold, asking the source to answer with
// its position when reply is set.
func (s *Stream) status(ctx context.Context, reply bool) error {
	done := pglogrepl.LSN(s.flushed.Load())
	if err := pglogrepl.SendStandbyStatusUpdate(ctx, s.Replication, pglogrepl.StandbyStatusUpdate{WALWritePosition: done, ReplyRequested: reply}); err != nil {
		return fmt.Errorf("confirming the change stream's position: %w", err)
	}
	return nil
}

func (s *Stream) apply(ctx context.Context, m pglogrepl.Message) error {
	switch m := m.(type) {
	case *pglogrepl.BeginMessage:
		s.inTxn = true
		s.commitAt, s.finalLSN = m.CommitTime, m.FinalLSN
	case *pglogrepl.RelationMessage:
		return s.relation(ctx, m)
	case *pglogrepl.InsertMessage:
		r, err := s.rel(m.RelationID)
		if err != nil {
			return err
		}
		return s.write(ctx, r, true, nil, false, m.Tuple)
	case *pglogrepl.UpdateMessage:
		r, err := s.rel(m.RelationID)
		if err != nil {
			return err
		}
		return s.write(ctx, r, false, m.OldTuple, m.OldTupleType == pglogrepl.UpdateMessageTupleTypeOld, m.NewTuple)
	case *pglogrepl.DeleteMessage:
		r, err := s.rel(m.RelationID)
		if err != nil {
			return err
		}
		return s.write(ctx, r, false, m.OldTuple, m.OldTupleType == pglogrepl.DeleteMessageTupleTypeOld, nil)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			r, err := s.rel(id)
			if err != nil {
				return err
			}
			targets := s.current()
			if r.shardCol < 0 {
				targets = s.referenceTargets()
			}
			for _, t := range targets {
				if err := s.exec(ctx, t.Shard, "DELETE FROM "+r.name+r.filter(t), nil); err != nil {
					return err
				}
			}
		}
	case *pglogrepl.CommitMessage:
		for shard := range s.open {
			if err := s.exec(ctx, shard, "COMMIT", nil); err != nil {
				return err
			}
			if err := s.flush(ctx, shard); err != nil {
				return fmt.Errorf("committing on %s: %w", shard, err)
			}
			delete(s.open, shard)
		}
		s.inTxn = false
		s.flushed.Store(uint64(m.TransactionEndLSN))
		s.lagNanos.Store(int64(max(time.Since(s.commitAt), 0)))
	}
	return nil
}

// relation learns a published table's columns. The primary key comes from
// the first target's catalog, which CreateTables made from the source's.
func (s *Stream) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	name := m.RelationName
	if m.Namespace != "public" {
		name = m.Namespace + "." + name
	}
	t := s.Keyspace.Table(name)
	if t == nil {
		return fmt.Errorf("the change stream sends table %s, which the keyspace does not have", name)
	}
	r := &relation{name: quoteName(name), table: t, shardCol: -1}
	for i, c := range m.Columns {
		r.columns = append(r.columns, c.Name)
		if t.Kind != vschema.Reference && c.Name == t.Column {
			r.shardCol = i
		}
	}
	if t.Kind != vschema.Reference && r.shardCol < 0 {
		return fmt.Errorf("the change stream of table %s lacks its sharding column %s", name, t.Column)
	}
	keys, err := primaryKeyColumns(ctx, s.Conns[slices.Sorted(maps.Keys(s.Conns))[0]], name)
	if err != nil {
		return fmt.Errorf("on the target: %w", err)
	}
	for _, k := range keys {
		i := slices.Index(r.columns, k)
		if i < 0 {
			return fmt.Errorf("the change stream of table %s lacks its primary key column %s", name, k)
		}
		r.key = append(r.key, i)
	}
	s.relations[m.RelationID] = r
	return nil
}

func (s *Stream) rel(id uint32) (*relation, error) {
	r := s.relations[id]
	if r == nil {
		return nil, fmt.Errorf("the change stream sent a row of relation %d before describing it", id)
	}
	return r, nil
}

// filter is the WHERE clause (with a leading space) that keeps the rows of
// one target's keyspace ids: every row of a reference table.
func (r *relation) filter(t Target) string { return " WHERE " + inRange(r.table, t.Lo, t.Hi) }

// landing returns the targets a row is on: the one its keyspace id moves
// to (none if it does not move), or every target for a reference table.
// A NULL sharding value is that of the rows the gateways keep with logical
// shard 0 (see inRange), when nullIsValue says the tuple's NULL is one
// rather than a value the source left out (a key-only old row). known is
// false when the tuple lacks the sharding column's value.
func (s *Stream) landing(r *relation, tuple *pglogrepl.TupleData, nullIsValue bool) (targets []Target, known bool, err error) {
	if r.shardCol < 0 {
		return s.referenceTargets(), true, nil
	}
	c := tuple.Columns[r.shardCol]
	var id int64
	switch {
	case c.DataType == pglogrepl.TupleDataTypeNull && nullIsValue:
		id = math.MinInt64
	case c.DataType != pglogrepl.TupleDataTypeText:
		return nil, false, nil
	default:
		var ok bool
		if id, ok = r.table.KeyspaceID(string(c.Data)); !ok {
			return nil, false, fmt.Errorf("table %s: sharding column value %q does not hash", r.name, c.Data)
		}
	}
	for _, t := range s.current() {
		if id >= t.Lo && id <= t.Hi {
			return []Target{t}, true, nil
		}
	}
	return nil, true, nil
}

// write applies one row change: an insert (row only), an update (old is
// the old key or row when the key changed or the table logs whole rows,
// else nil) or a delete (old only); oldFull says old is a whole row, not
// just the key. The old row goes from the targets it may be on, unless the
// new one replaces it there by the same key; the new row is written on the
// target its keyspace id moves to.
func (s *Stream) write(ctx context.Context, r *relation, insert bool, old *pglogrepl.TupleData, oldFull bool, row *pglogrepl.TupleData) error {
	var lands []Target
	if row != nil {
		var known bool
		var err error
		if lands, known, err = s.landing(r, row, true); err != nil {
			return err
		}
		if !known {
			return fmt.Errorf("table %s: a row's sharding column %s came without its value", r.name, r.table.Column)
		}
	}
	// Where the old row may be.
	var from []Target
	switch {
	case insert:
	case old != nil:
		var known bool
		var err error
		if from, known, err = s.landing(r, old, oldFull || slices.Contains(r.key, r.shardCol)); err != nil {
			return err
		}
		if !known {
			from = s.current() // a key-only old row without the sharding column
		}
	case r.shardCol < 0 || slices.Contains(r.key, r.shardCol):
		// The key, and so the keyspace id, did not change.
		from = lands
	default:
		// The sharding column may have changed without the source saying
		// from what.
		from = s.current()
	}
	keyFrom := old
	if keyFrom == nil {
		keyFrom = row
	}
	var oldKey [][]byte
	if len(from) > 0 {
		var err error
		if oldKey, err = r.values(keyFrom, r.key); err != nil {
			return err
		}
	}
	for _, t := range from {
		if old == nil && slices.Contains(lands, t) {
			continue // the new row overwrites it by the same key
		}
		if err := s.exec(ctx, t.Shard, "DELETE FROM "+r.name+r.filter(t)+" AND "+r.keyMatch(1), oldKey); err != nil {
			return err
		}
	}
	for _, t := range lands {
		if err := s.upsert(ctx, t, r, row); err != nil {
			return err
		}
	}
	s.applied.Add(1)
	return nil
}

// keyMatch compares the key columns with parameters from $first on.
func (r *relation) keyMatch(first int) string {
	var parts []string
	for i, k := range r.key {
		parts = append(parts, fmt.Sprintf("%s = $%d", pgx.Identifier{r.columns[k]}.Sanitize(), first+i))
	}
	return strings.Join(parts, " AND ")
}

// values returns the text of columns idx of tuple; a column that is not
// there (a key-only tuple's other columns) is an error only if asked for.
func (r *relation) values(tuple *pglogrepl.TupleData, idx []int) ([][]byte, error) {
	out := make([][]byte, len(idx))
	for i, k := range idx {
		c := tuple.Columns[k]
		switch c.DataType {
		case pglogrepl.TupleDataTypeText:
			out[i] = c.Data
		case pglogrepl.TupleDataTypeNull:
		default:
			return nil, fmt.Errorf("table %s: column %s came without its value (kind %c)", r.name, r.columns[k], c.DataType)
		}
	}
	return out, nil
}

// upsert writes row on target t: inserted, or over the row of its key.
// Columns the source left out as unchanged (large values stored apart)
// keep what the target has; a row the target lacks (it just moved into
// t's keyspace ids) gets them from the source (see fillLeftOut).
func (s *Stream) upsert(ctx context.Context, t Target, r *relation, row *pglogrepl.TupleData) error {
	var cols, sets, params []string
	var args [][]byte
	var unchanged bool
	for i, c := range row.Columns {
		q := pgx.Identifier{r.columns[i]}.Sanitize()
		switch c.DataType {
		case pglogrepl.TupleDataTypeToast:
			unchanged = true
			continue
		case pglogrepl.TupleDataTypeText:
			args = append(args, c.Data)
		default:
			args = append(args, nil)
		}
		cols = append(cols, q)
		params = append(params, fmt.Sprintf("$%d", len(args)))
		sets = append(sets, q+" = EXCLUDED."+q)
	}
	if unchanged {
		key, err := r.values(row, r.key)
		if err != nil {
			return err
		}
		var assign []string
		for i, c := range cols {
			assign = append(assign, c+" = "+params[i])
		}
		sql := "UPDATE " + r.name + " SET " + strings.Join(assign, ", ") + " WHERE " + r.keyMatch(len(args)+1)
		tag, err := s.execTag(ctx, t.Shard, sql, append(args, key...))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		full, err := s.fillLeftOut(ctx, r, row, key)
		if err != nil || full == nil {
			return err
		}
		return s.upsert(ctx, t, r, full)
	}
	var keyCols []string
	for _, k := range r.key {
		keyCols = append(keyCols, pgx.Identifier{r.columns[k]}.Sanitize())
	}
	sql := "INSERT INTO " + r.name + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(params, ", ") +
		") ON CONFLICT (" + strings.Join(keyCols, ", ") + ") DO UPDATE SET " + strings.Join(sets, ", ")
	return s.exec(ctx, t.Shard, sql, args)
}

// fillLeftOut returns row with the values the source left out read from
// the source's row of the same key, or nil if the source has no such row
// any more. That row may be newer than the change being applied, but only
// in what later changes carry: a left-out value is one the change did not
// touch, and a later change that touches it sends it whole.
func (s *Stream) fillLeftOut(ctx context.Context, r *relation, row *pglogrepl.TupleData, key [][]byte) (*pglogrepl.TupleData, error) {
	if s.Source == nil {
		return nil, fmt.Errorf("table %s: an update moved a row whose large values were left out of the change stream onto a target, and the stream has no connection to the source to read them", r.name)
	}
	var missing []int
	var names []string
	for i, c := range row.Columns {
		if c.DataType == pglogrepl.TupleDataTypeToast {
			missing = append(missing, i)
			names = append(names, pgx.Identifier{r.columns[i]}.Sanitize())
		}
	}
	res := s.Source.ExecParams(ctx, "SELECT "+strings.Join(names, ", ")+" FROM "+r.name+" WHERE "+r.keyMatch(1), key, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, fmt.Errorf("table %s: reading values the change stream left out from the source: %w", r.name, res.Err)
	}
	if len(res.Rows) == 0 {
		return nil, nil // deleted or moved on since: a later change says so
	}
	full := &pglogrepl.TupleData{Columns: slices.Clone(row.Columns)}
	for j, i := range missing {
		c := *full.Columns[i]
		if v := res.Rows[0][j]; v == nil {
			c.DataType, c.Data = pglogrepl.TupleDataTypeNull, nil
		} else {
			c.DataType, c.Data = pglogrepl.TupleDataTypeText, v
		}
		full.Columns[i] = &c
	}
	return full, nil
}

// maxPending is the most statements queued for one target before they
// are sent.
const maxPending = 1000

// exec queues sql for shard inside the target transaction of the source
// transaction being applied, opening it first if needed. The queue goes
// to the target in one round trip at the source transaction's commit, or
// once it is long.
func (s *Stream) exec(ctx context.Context, shard, sql string, args [][]byte) error {
	if s.Conns[shard] == nil {
		return fmt.Errorf("no connection to target %s", shard)
	}
	b := s.pending[shard]
	if b == nil {
		b = &pgconn.Batch{}
		s.pending[shard] = b
	}
	if !s.open[shard] {
		b.ExecParams("BEGIN", nil, nil, nil, nil)
		s.open[shard] = true
	}
	// The change's values live in the connection's read buffer until the
	// next message: the queue keeps copies.
	kept := make([][]byte, len(args))
	for i, a := range args {
		if a != nil {
			kept[i] = bytes.Clone(a)
		}
	}
	b.ExecParams(sql, kept, nil, nil, nil)
	if s.pendingN[shard]++; s.pendingN[shard] >= maxPending {
		return s.flush(ctx, shard)
	}
	return nil
}

// flush sends what is queued for shard and reads the results.
func (s *Stream) flush(ctx context.Context, shard string) error {
	b := s.pending[shard]
	if b == nil {
		return nil
	}
	delete(s.pending, shard)
	s.pendingN[shard] = 0
	if _, err := s.Conns[shard].ExecBatch(ctx, b).ReadAll(); err != nil {
		return fmt.Errorf("applying changes on %s: %w", shard, err)
	}
	return nil
}

// execTag runs sql on shard at once, after what is queued, inside the
// target transaction of the source transaction being applied, and returns
// its command tag.
func (s *Stream) execTag(ctx context.Context, shard, sql string, args [][]byte) (pgconn.CommandTag, error) {
	conn := s.Conns[shard]
	if conn == nil {
		return pgconn.CommandTag{}, fmt.Errorf("no connection to target %s", shard)
	}
	if err := s.flush(ctx, shard); err != nil {
		return pgconn.CommandTag{}, err
	}
	if !s.open[shard] {
		if err := conn.Exec(ctx, "BEGIN").Close(); err != nil {
			return pgconn.CommandTag{}, fmt.Errorf("target %s: %w", shard, err)
		}
		s.open[shard] = true
	}
	res := conn.ExecParams(ctx, sql, args, nil, nil, nil).Read()
	if res.Err != nil {
		return pgconn.CommandTag{}, fmt.Errorf("applying a change on %s: %w", shard, res.Err)
	}
	return res.CommandTag, nil
}

// rollbackOpen ends the target transactions of a source transaction the
// stream did not finish.
func (s *Stream) rollbackOpen() {
	clear(s.pending)
	clear(s.pendingN)
	for shard := range s.open {
		_ = s.Conns[shard].Exec(context.Background(), "ROLLBACK").Close()
	}
	clear(s.open)
}
