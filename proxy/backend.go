package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/text/encoding"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/planner/engine"
)

// connState is what the gateway changed on one physical backend connection.
// It outlives each borrowing, so the next session finds the connection as
// the last one left it.
type connState struct {
	// settings maps a parameter name to the statement that set it.
	settings map[string]string
	// unknown is set when the settings are not known (a transaction that
	// changed some ended): the next sync starts with RESET ALL.
	unknown bool
	// prepared are the statements prepared on the connection, by name.
	prepared map[string]bool
	// cancel cancels the connection's statement for backend.watch.
	cancel *shardCancel
	// alive looks into the connection while it is idle in the pool.
	alive *probe
	// rows gathers the rows read (see backend.gather), kept with the
	// connection so that its memory serves every statement.
	rows rowBuffer
}

// probe returns the connection's probe, made on first use.
func (c *connState) probe(pg *pgconn.PgConn) *probe {
	if c.alive == nil {
		c.alive = newProbe(pg.Conn())
	}
	return c.alive
}

// forget marks the connection's settings as unknown.
func (c *connState) forget() {
	c.unknown = true
	c.settings = nil
}

// backend is a backend connection borrowed from a shard's pool.
type backend struct {
	shard string
	conn  *pgxpool.Conn
	pg    *pgconn.PgConn
	state *connState
	// notice receives the shard's notices for the session using b, and
	// notify its notifications (LISTEN).
	notice func(*pgproto3.NoticeResponse)
	notify func(*pgproto3.NotificationResponse)
	// scope is the search_path of the session using b (see statementName).
	scope string
	// lost is told when the connection breaks.
	lost func(shard string)
	// answered is set once the shard began to answer the last request.
	answered bool
	// queued is set while a BEGIN waits to go out with the next request
	// (see queueBegin).
	queued bool
	// gather is set while the rows go to a goroutine that gathers several
	// shards (engine.Query.Gathered): rows already read are handed over
	// together.
	gather bool
	// watched is the context whose end cancels the statement running on
	// the shard (see watch); stopWatch and fired belong to it.
	watched   context.Context
	stopWatch func() bool
	fired     chan struct{}
}

// rowBuffer collects the DataRows a backend has already read, copied out of
// the connection's read buffer, into one batch.
type rowBuffer struct {
	batch engine.Batch
	arena []byte
	vals  [][]byte
}

// Hand-over limits of a rowBuffer: Postgres's own send buffer is 8 KiB.
const (
	gatherRows  = 256
	gatherBytes = 64 << 10
)

// emptyValue is a non-NULL value of no bytes.
var emptyValue = []byte{}

// add copies one row in and reports whether the batch is full.
func (r *rowBuffer) add(values [][]byte) bool {
	size := 0
	for _, v := range values {
		size += len(v)
	}
	if len(r.arena)+size > cap(r.arena) {
		// Rows batched so far keep pointing into the old arena.
		r.arena = make([]byte, 0, max(2*cap(r.arena), size, 4096))
	}
	start := len(r.vals)
	for _, v := range values {
		switch {
		case v == nil: // NULL
			r.vals = append(r.vals, nil)
			continue
		case len(v) == 0: // the empty value, which is not NULL
			r.vals = append(r.vals, emptyValue)
			continue
		}
		at := len(r.arena)
		r.arena = append(r.arena, v...)
		r.vals = append(r.vals, r.arena[at:len(r.arena):len(r.arena)])
	}
	r.batch.Rows = append(r.batch.Rows, r.vals[start:len(r.vals):len(r.vals)])
	return len(r.batch.Rows) >= gatherRows || len(r.arena) >= gatherBytes
}

// flush emits the rows collected, if any, and starts over.
func (r *rowBuffer) flush(emit func(*engine.Batch) error) error {
	if len(r.batch.Rows) == 0 {
		return nil
	}
	err := emit(&r.batch)
	r.batch.Rows, r.vals, r.arena = r.batch.Rows[:0], r.vals[:0], r.arena[:0]
	if cap(r.arena) > 4*gatherBytes {
		r.arena = nil // a huge row's arena is not kept
	}
	return err
}

// emitRow emits a DataRow's values: at once, or, when gathering, with the
// rows that follow it already read.
func (b *backend) emitRow(values [][]byte, one *[1][][]byte, batch *engine.Batch, emit func(*engine.Batch) error) error {
	if !b.gather {
		one[0] = values
		batch.Rows = one[:]
		return emit(batch)
	}
	if full := b.state.rows.add(values); full || b.pg.Frontend().ReadBufferLen() == 0 {
		return b.state.rows.flush(emit)
	}
	return nil
}

// run runs sql and discards its results.
func (b *backend) run(ctx context.Context, sql string) error {
	return b.exec(ctx, sql, discardRows, discardTag)
}

func discardRows(*engine.Batch) error { return nil }
func discardTag(engine.Tag) error     { return nil }

// release returns the connection to its pool. A connection left inside a
// transaction or broken is closed by the pool instead of being reused.
func (b *backend) release() {
	b.unwatch()
	b.notice, b.notify = nil, nil
	if b.queued {
		// A BEGIN never sent must not reach the next user.
		b.pg.Close(context.Background())
	}
	b.conn.Release()
}

// queueBegin queues sql, which begins a transaction, to go out with the
// next request on b, saving a round trip: flush reads its answer first. It
// must be a statement whose failure leaves the connection in a failed
// transaction block, never outside one, so that the request sent with it
// cannot run outside the transaction.
func (b *backend) queueBegin(sql string) error {
	text, err := b.encodeSQL(sql)
	if err != nil {
		return err
	}
	b.pg.Frontend().Send(&pgproto3.Query{String: text})
	b.queued = true
	return nil
}

// readQueued reads the answer of a queued BEGIN, up to its ReadyForQuery.
// If it failed, the request sent after it meets an aborted transaction; the
// connection is closed, as its answers are not read.
func (b *backend) readQueued() error {
	b.queued = false
	var failed error
	for {
		msg, err := b.receive(context.Background())
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			if failed == nil {
				failed = pgconn.ErrorResponseToPgError(m)
			}
		case *pgproto3.NoticeResponse:
			b.forwardNotice(m)
		case *pgproto3.ReadyForQuery:
			b.answered = false // the request's own answer is still to come
			if failed != nil {
				b.pg.Close(context.Background())
			}
			return failed
		}
	}
}

// syncSettings makes the connection's settings equal want (parameter name to
// the statement that sets it): statements for what differs, RESET for what
// the connection has and want lacks, all in one round trip. Connections
// usually already match, and then it costs nothing.
func (b *backend) syncSettings(ctx context.Context, want map[string]string) error {
	if !b.state.unknown && maps.Equal(b.state.settings, want) {
		return nil
	}
	for name := range b.state.settings {
		if _, ok := want[name]; !ok && strings.ContainsAny(name, " .") {
			// Not a name RESET takes (SET SESSION CHARACTERISTICS ...):
			// start over from RESET ALL.
			b.state.forget()
			break
		}
	}
	var stmts []string
	if b.state.unknown {
		// RESET ALL leaves the role alone.
		stmts = append(stmts, "RESET ALL", "RESET ROLE")
		b.state.settings = nil
	}
	for _, name := range sortedNames(want) {
		if b.state.settings[name] != want[name] {
			stmts = append(stmts, want[name])
		}
	}
	for _, name := range sortedNames(b.state.settings) {
		if _, ok := want[name]; !ok {
			stmts = append(stmts, "RESET "+engine.QuoteIdent(name))
		}
	}
	if len(stmts) == 0 {
		return nil
	}
	if err := b.run(ctx, strings.Join(stmts, "; ")); err != nil {
		// Half-synced, the connection must not serve anyone again.
		b.pg.Close(context.Background())
		return err
	}
	b.state.settings = maps.Clone(want)
	b.state.unknown = false
	return nil
}

func sortedNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// quoteLiteral quotes a value as an SQL string literal.
func quoteLiteral(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// exec runs sql (one or more statements, simple protocol) and streams each
// result: emit gets the columns and rows, done the command tag at the end of
// each statement. It returns the first error, after reading the answer to
// its end. If emit or done fails (the client went away), the connection is
// closed rather than drained, so a large result costs nothing more.
func (b *backend) exec(ctx context.Context, sql string, emit func(*engine.Batch) error, done func(engine.Tag) error) error {
	if err := b.sendQuery(sql); err != nil {
		return err
	}
	fe := b.pg.Frontend()
	var (
		failed error
		batch  engine.Batch
		row    [1][][]byte
	)
	gone := func(err error) error {
		b.pg.Close(context.Background())
		return err
	}
	defer b.state.rows.flush(discardRows) // rows of a failed read are dropped
	for {
		msg, err := b.receive(ctx)
		if err != nil {
			return err
		}
		if _, isRow := msg.(*pgproto3.DataRow); !isRow && failed == nil {
			if err := b.state.rows.flush(emit); err != nil {
				return gone(err)
			}
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			if failed == nil {
				if err := emit(&engine.Batch{Fields: fieldsOf(m)}); err != nil {
					return gone(err)
				}
			}
		case *pgproto3.DataRow:
			if failed == nil {
				if err := b.emitRow(m.Values, &row, &batch, emit); err != nil {
					return gone(err)
				}
			}
		case *pgproto3.CommandComplete:
			if failed == nil {
				if err := done(engine.Tag(m.CommandTag)); err != nil {
					return gone(err)
				}
			}
		case *pgproto3.ErrorResponse:
			if failed == nil {
				failed = pgconn.ErrorResponseToPgError(m)
			}
		case *pgproto3.NoticeResponse:
			b.forwardNotice(m)
		case *pgproto3.CopyInResponse:
			// COPY reaches shards only the gateway's way (see copy.go).
			fe.Send(&pgproto3.CopyFail{Message: "COPY inside this statement is not supported by shardgate"})
			if err := b.flush(); err != nil {
				return gone(err)
			}
		case *pgproto3.ReadyForQuery:
			return failed
		}
	}
}

// forwardNotice passes a shard's notice to the session using b, if any.
func (b *backend) forwardNotice(m *pgproto3.NoticeResponse) {
	if b.notice != nil {
		b.notice(m)
	}
}

func fieldsOf(m *pgproto3.RowDescription) []engine.Field {
	out := make([]engine.Field, len(m.Fields))
	for i, f := range m.Fields {
		out[i] = engine.Field{
			Name:                 string(f.Name),
			TableOID:             f.TableOID,
			TableAttributeNumber: f.TableAttributeNumber,
			DataTypeOID:          f.DataTypeOID,
			DataTypeSize:         f.DataTypeSize,
			TypeModifier:         f.TypeModifier,
			Format:               f.Format,
		}
	}
	return out
}

// binding is what a client's Bind gave a portal: parameter values with
// their formats and types, and the formats wanted for result columns.
type binding struct {
	values        [][]byte
	formats       []int16 // none: all text; one: for all; else one each
	oids          []uint32
	resultFormats []int16
	// enc is the client_encoding text values are in (nil: UTF-8).
	enc encoding.Encoding
	// hidden is how many columns the statement run adds to the client's
	// (see engine.Query.Hidden).
	hidden int
	// describe asks for the result's columns (see engine.Query.Describe).
	describe bool
	// unchecked marks a statement whose columns are not checked against
	// what the client was told: it never sees them (see
	// engine.Query.Internal), or was told of none (the simple protocol).
	unchecked bool
}

// format returns the format of parameter i.
func (b *binding) format(i int) int16 {
	switch len(b.formats) {
	case 0:
		return 0
	case 1:
		return b.formats[0]
	}
	return b.formats[i]
}

// Text implements planner.Params: parameter i in Postgres's text form,
// decoding the binary forms of the types a sharding column can have.
func (b *binding) Text(i int) (string, bool) {
	if i < 0 || i >= len(b.values) || b.values[i] == nil {
		return "", false
	}
	v := b.values[i]
	if b.format(i) == 0 {
		return b.decode(v)
	}
	var oid uint32
	if i < len(b.oids) {
		oid = b.oids[i]
	}
	switch oid {
	case 20: // int8
		if len(v) == 8 {
			return strconv.FormatInt(int64(binary.BigEndian.Uint64(v)), 10), true
		}
	case 23: // int4
		if len(v) == 4 {
			return strconv.FormatInt(int64(int32(binary.BigEndian.Uint32(v))), 10), true
		}
	case 21: // int2
		if len(v) == 2 {
			return strconv.FormatInt(int64(int16(binary.BigEndian.Uint16(v))), 10), true
		}
	case 25, 1043: // text, varchar
		return b.decode(v)
	case 2950: // uuid
		if len(v) == 16 {
			return fmt.Sprintf("%x-%x-%x-%x-%x", v[0:4], v[4:6], v[6:8], v[8:10], v[10:16]), true
		}
	}
	return "", false
}

// decode reads a text value the client sent in its client_encoding.
func (b *binding) decode(v []byte) (string, bool) {
	if b.enc == nil {
		return string(v), true
	}
	s, err := b.enc.NewDecoder().Bytes(v)
	return string(s), err == nil
}

// detached returns a copy of b that owns its values, for running the
// statement again off the client's path, where no result is checked
// against what the client was told. Nil stays nil.
func (b *binding) detached() *binding {
	if b == nil {
		return nil
	}
	out := *b
	out.values = make([][]byte, len(b.values))
	for i, v := range b.values {
		if v != nil {
			out.values[i] = bytes.Clone(v)
		}
	}
	out.formats, out.oids, out.resultFormats = slices.Clone(b.formats), slices.Clone(b.oids), slices.Clone(b.resultFormats)
	out.unchecked = true
	return &out
}

// subset returns the binding for a statement whose parameters are the
// client's params[...] (see engine.Query.Params).
func (b *binding) subset(params []int) *binding {
	if params == nil || b == nil {
		return b
	}
	out := &binding{resultFormats: b.resultFormats, enc: b.enc}
	for _, i := range params {
		out.values = append(out.values, b.values[i])
		out.formats = append(out.formats, b.format(i))
		if i < len(b.oids) {
			out.oids = append(out.oids, b.oids[i])
		} else {
			out.oids = append(out.oids, 0)
		}
	}
	return out
}

// withValues returns the binding for a statement with parameters of the
// engine's own, in text (see engine.Query.Values), its result in the
// client's formats; b is nil in the simple protocol.
func (b *binding) withValues(values [][]byte) *binding {
	out := &binding{values: values, oids: make([]uint32, len(values))}
	if b == nil {
		out.unchecked = true
	} else {
		out.resultFormats, out.enc = b.resultFormats, b.enc
	}
	return out
}

// withBound returns the binding for a statement whose parameters from
// $from on are the engine's own (see engine.Bind): the client's before
// them, theirs in text after; b is nil in the simple protocol.
func (b *binding) withBound(from int, bound []engine.BoundValue) *binding {
	// In the simple protocol the client learns the columns from the
	// statement, as it would from Query.
	out := &binding{unchecked: true, describe: true}
	if b != nil {
		out.resultFormats, out.enc, out.unchecked, out.describe = b.resultFormats, b.enc, b.unchecked, false
	}
	for i := 0; i < from-1; i++ {
		var (
			v   []byte
			f   int16
			oid uint32
		)
		if b != nil && i < len(b.values) {
			v, f = b.values[i], b.format(i)
			if i < len(b.oids) {
				oid = b.oids[i]
			}
		}
		out.values, out.formats, out.oids = append(out.values, v), append(out.formats, f), append(out.oids, oid)
	}
	for _, v := range bound {
		out.values, out.formats, out.oids = append(out.values, v.Text), append(out.formats, 0), append(out.oids, v.OID)
	}
	return out
}

// forEngine returns the binding for a statement the engine reads: one that
// appends hidden columns to the client's result gets them in text, unless
// the client asked for one format for every column; one whose columns the
// engine reads is described.
func (b *binding) forEngine(q engine.Query) *binding {
	if q.Hidden == 0 && !q.Describe && !q.Internal {
		return b
	}
	out := *b
	out.hidden, out.describe = q.Hidden, b.describe || q.Describe || q.Internal
	switch {
	case q.Internal:
		// The client never sees it: all in text, whatever its columns.
		out.resultFormats, out.unchecked = nil, true
	case len(b.resultFormats) > 1:
		out.resultFormats = append(slices.Clone(b.resultFormats), make([]int16, q.Hidden)...)
	}
	return &out
}

// statementName names sql (with its parameter types) on backend
// connections, the same for every session, so a connection prepares each
// statement once whoever uses it.
//
// scope is the search_path the statement is resolved under: the same text
// names other tables under another search_path, so it is part of the name.
func statementName(sql string, oids []uint32, scope string) string {
	// FNV-1a, written out: hash/fnv and fmt would allocate several times
	// per statement.
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for i := 0; i < len(sql); i++ {
		h = (h ^ uint64(sql[i])) * prime64
	}
	for _, o := range oids {
		for shift := 24; shift >= 0; shift -= 8 {
			h = (h ^ uint64(byte(o>>shift))) * prime64
		}
	}
	h *= prime64 // the 0 byte between the text and the scope
	for i := 0; i < len(scope); i++ {
		h = (h ^ uint64(scope[i])) * prime64
	}
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], h)
	var name [3 + 16]byte
	copy(name[:], "sg_")
	hex.Encode(name[3:], sum[:])
	return string(name[:])
}

// maxPrepared bounds the statements kept prepared on one backend
// connection; past it they are all deallocated and prepared again on use.
const maxPrepared = 1000

// makeRoom deallocates every statement of a connection that keeps too many.
func (b *backend) makeRoom(ctx context.Context) error {
	if len(b.state.prepared) < maxPrepared {
		return nil
	}
	b.state.prepared = nil
	return b.run(ctx, "DEALLOCATE ALL")
}

// prepare queues a Parse of sql as name unless the connection has it.
func (b *backend) prepare(name, sql string, oids []uint32) error {
	if b.state.prepared[name] {
		return nil
	}
	text, err := b.encodeSQL(sql)
	if err != nil {
		return err
	}
	b.pg.Frontend().Send(&pgproto3.Parse{Name: name, Query: text, ParameterOIDs: oids})
	return nil
}

// describe prepares sql on b and returns its parameter types and result
// columns (nil when it returns no rows).
//
// The client's Parse is a fresh start: a statement the connection kept from
// before is prepared again, so a table changed since is described as it is
// now.
func (b *backend) describe(ctx context.Context, sql string, oids []uint32) ([]uint32, []pgproto3.FieldDescription, error) {
	if err := b.makeRoom(ctx); err != nil {
		return nil, nil, err
	}
	name := statementName(sql, oids, b.scope)
	fe := b.pg.Frontend()
	if b.state.prepared[name] {
		fe.Send(&pgproto3.Close{ObjectType: 'S', Name: name})
		delete(b.state.prepared, name)
	}
	if err := b.prepare(name, sql, oids); err != nil {
		return nil, nil, err
	}
	fe.Send(&pgproto3.Describe{ObjectType: 'S', Name: name})
	fe.Send(&pgproto3.Sync{})
	if err := b.flush(); err != nil {
		return nil, nil, err
	}
	var (
		params []uint32
		fields []pgproto3.FieldDescription
		failed error
	)
	for {
		msg, err := b.receive(ctx)
		if err != nil {
			return nil, nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.ParseComplete:
			b.prepared(name)
		case *pgproto3.ParameterDescription:
			params = append([]uint32(nil), m.ParameterOIDs...)
		case *pgproto3.RowDescription:
			fields = ownFields(m.Fields)
		case *pgproto3.ErrorResponse:
			failed = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			if full := statementName(sql, params, b.scope); failed == nil && full != name && b.state.prepared[full] {
				// Statements run under the parameter types the shard
				// completed (see execBound): the one kept under them may
				// hold a plan from before a table changed, which the
				// client's Parse asks to replace. It is closed with the
				// next message to this shard, whose readers pass over
				// the CloseComplete.
				b.pg.Frontend().Send(&pgproto3.Close{ObjectType: 'S', Name: full})
				delete(b.state.prepared, full)
			}
			return params, fields, failed
		}
	}
}

// ownFields copies a RowDescription's fields out of the connection's
// buffer, which the next message reuses.
func ownFields(in []pgproto3.FieldDescription) []pgproto3.FieldDescription {
	out := make([]pgproto3.FieldDescription, len(in))
	for i, f := range in {
		f.Name = append([]byte(nil), f.Name...)
		out[i] = f
	}
	return out
}

// describePortal binds sql on b and returns the result columns of the
// portal (nil when it returns no rows): for FETCH, whose columns are the
// cursor's, which only a bound statement knows.
func (b *backend) describePortal(ctx context.Context, sql string, bind *binding) ([]pgproto3.FieldDescription, error) {
	if err := b.makeRoom(ctx); err != nil {
		return nil, err
	}
	name := statementName(sql, bind.oids, b.scope)
	if err := b.prepare(name, sql, bind.oids); err != nil {
		return nil, err
	}
	fe := b.pg.Frontend()
	fe.Send(&pgproto3.Bind{PreparedStatement: name, ParameterFormatCodes: bind.formats, Parameters: bind.values, ResultFormatCodes: bind.resultFormats})
	fe.Send(&pgproto3.Describe{ObjectType: 'P'})
	fe.Send(&pgproto3.Close{ObjectType: 'P'})
	fe.Send(&pgproto3.Sync{})
	if err := b.flush(); err != nil {
		return nil, err
	}
	var (
		fields []pgproto3.FieldDescription
		failed error
	)
	for {
		msg, err := b.receive(ctx)
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.ParseComplete:
			b.prepared(name)
		case *pgproto3.RowDescription:
			fields = ownFields(m.Fields)
		case *pgproto3.ErrorResponse:
			failed = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			return fields, failed
		}
	}
}

// sendQuery sends sql as a simple-protocol Query, in the connection's
// client_encoding.
func (b *backend) sendQuery(sql string) error {
	text, err := b.encodeSQL(sql)
	if err != nil {
		return err
	}
	b.pg.Frontend().Send(&pgproto3.Query{String: text})
	return b.flush()
}

// flush sends what is queued for the backend: a new request.
func (b *backend) flush() error {
	b.answered = false
	if err := b.pg.Frontend().Flush(); err != nil {
		return b.connectionLost(err)
	}
	if b.queued {
		return b.readQueued()
	}
	return nil
}

// connectionLost closes b after its connection failed with err and says
// so: whatever the statement did on the shard is unknown from here on.
func (b *backend) connectionLost(err error) error {
	b.pg.Close(context.Background())
	b.lost(b.shard)
	return &ShardConnectionLostError{Shard: b.shard, Err: err, Answered: b.answered}
}

// receive reads the next message from the backend, passing notifications
// (LISTEN) to the session on the way.
func (b *backend) receive(ctx context.Context) (pgproto3.BackendMessage, error) {
	for {
		msg, err := b.receiveAny(ctx)
		n, ok := msg.(*pgproto3.NotificationResponse)
		if !ok {
			return msg, err
		}
		if b.notify != nil {
			b.notify(n)
		}
	}
}

// receiveAny reads the next message from the backend. Once ctx is cancelled
// (the cancel request is on its way to the shard) it keeps reading, for a
// bounded time, so the answer is drained up to ReadyForQuery and the
// connection stays usable; if that fails the connection is closed.
func (b *backend) receiveAny(ctx context.Context) (pgproto3.BackendMessage, error) {
	if ctx.Err() == nil {
		b.watch(ctx)
		msg, err := b.pg.ReceiveMessage(context.Background())
		if err == nil {
			b.answered = true
			if _, end := msg.(*pgproto3.ReadyForQuery); end {
				b.unwatch()
			}
			return msg, nil
		}
		if ctx.Err() == nil {
			b.unwatch()
			return nil, b.connectionLost(err)
		}
		if b.pg.IsClosed() {
			b.unwatch()
			return nil, err
		}
	}
	b.unwatch() // the cancel request is out; the drain has a deadline of its own
	drain, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg, err := b.pg.ReceiveMessage(drain)
	if err != nil {
		b.pg.Close(context.Background())
	}
	return msg, err
}

// watch makes the end of ctx cancel what the shard runs for b, until
// unwatch: ReadyForQuery, a failure or the release of b. Messages are read
// without a context, as pgconn would watch the context once per message,
// which costs more than the rest of a point select's reading.
func (b *backend) watch(ctx context.Context) {
	if ctx == b.watched || ctx.Done() == nil {
		return
	}
	b.unwatch()
	if b.state.cancel == nil {
		b.state.cancel = &shardCancel{conn: b.pg}
	}
	h, fired := b.state.cancel, make(chan struct{})
	b.watched, b.fired = ctx, fired
	b.stopWatch = context.AfterFunc(ctx, func() {
		defer close(fired)
		h.HandleCancel(ctx)
	})
}

// unwatch ends watch. If the context ended meanwhile, it waits until the
// cancel request reached the shard (or gave up) and lifts its deadline.
func (b *backend) unwatch() {
	if b.stopWatch == nil {
		return
	}
	if !b.stopWatch() {
		<-b.fired
		b.state.cancel.HandleUnwatchAfterCancel()
	}
	b.watched, b.stopWatch, b.fired = nil, nil, nil
}

func (b *backend) prepared(name string) {
	if b.state.prepared == nil {
		b.state.prepared = map[string]bool{}
	}
	b.state.prepared[name] = true
}

// execBound runs sql with a binding through the extended protocol: Parse
// (only if the connection lacks the statement), Bind into portal, Execute
// up to maxRows (0: all), Sync. It emits the rows and returns the command
// tag, or suspended when maxRows cut the result short (the portal then
// lives on inside a transaction).
//
// A statement the connection prepared before a table changed fails with
// "cached plan must not change result type"; outside a transaction (retry
// set) it is prepared again and the statement retried once, as the client,
// which has just bound it, expects it to work.
//
// A statement prepared afresh is first described and checked against want,
// the result the client was told of: if the table changed since, the rows
// would be read under the wrong columns, so it fails as Postgres fails a
// client's own statement then.
func (b *backend) execBound(ctx context.Context, sql string, bind *binding, portal string, maxRows uint32, retry bool, want resultShape, emit func(*engine.Batch) error) (tag engine.Tag, suspended bool, err error) {
	if err := b.makeRoom(ctx); err != nil {
		return "", false, err
	}
	name := statementName(sql, bind.oids, b.scope)
	fe := b.pg.Frontend()
	cached := b.state.prepared[name]
	if !cached {
		_, fields, err := b.describe(ctx, sql, bind.oids)
		if err != nil {
			return "", false, err
		}
		if !bind.unchecked && !want.matches(fields, bind.hidden) {
			return "", false, errResultChanged
		}
	}
	if err := b.prepare(name, sql, bind.oids); err != nil {
		return "", false, err
	}
	fe.Send(&pgproto3.Bind{DestinationPortal: portal, PreparedStatement: name, ParameterFormatCodes: bind.formats, Parameters: bind.values, ResultFormatCodes: bind.resultFormats})
	if bind.describe {
		// The engine reads the values: it needs their types and
		// formats, which the client's Describe did not cover.
		fe.Send(&pgproto3.Describe{ObjectType: 'P', Name: portal})
	}
	fe.Send(&pgproto3.Execute{Portal: portal, MaxRows: maxRows})
	fe.Send(&pgproto3.Sync{})
	if err := b.flush(); err != nil {
		return "", false, err
	}
	rows := 0
	counted := func(batch *engine.Batch) error {
		rows += len(batch.Rows)
		return emit(batch)
	}
	tag, suspended, err = b.readExecute(ctx, name, counted)
	var pgErr *pgconn.PgError
	if retry && cached && rows == 0 && errors.As(err, &pgErr) && (pgErr.Code == "0A000" || pgErr.Code == "26000") {
		fe.Send(&pgproto3.Close{ObjectType: 'S', Name: name})
		fe.Send(&pgproto3.Sync{})
		if err := b.flush(); err != nil {
			return "", false, err
		}
		if _, _, err := b.readExecute(ctx, "", discardRows); err != nil {
			return "", false, err
		}
		delete(b.state.prepared, name)
		return b.execBound(ctx, sql, bind, portal, maxRows, false, want, emit)
	}
	return tag, suspended, err
}

// errResultChanged fails a statement whose result columns changed since the
// client was told of them, as Postgres fails a prepared statement then.
var errResultChanged = &planner.Error{Code: codeFeatureNotSupp, Message: "cached plan must not change result type"}

// resultShape is the result columns a client was told a statement returns
// (none: it returns no rows).
type resultShape []pgproto3.FieldDescription

// matches reports whether fields have the types of the columns of r, as
// Postgres judges a cached plan's result: column names may change. The
// statement run may append hidden columns to the client's.
func (r resultShape) matches(fields []pgproto3.FieldDescription, hidden int) bool {
	if len(fields) != len(r)+hidden {
		return false
	}
	for i, f := range fields[:len(r)] {
		if f.DataTypeOID != r[i].DataTypeOID || f.TypeModifier != r[i].TypeModifier {
			return false
		}
	}
	return true
}

// continuePortal fetches up to maxRows more rows of a suspended portal.
func (b *backend) continuePortal(ctx context.Context, portal string, maxRows uint32, emit func(*engine.Batch) error) (engine.Tag, bool, error) {
	fe := b.pg.Frontend()
	fe.Send(&pgproto3.Execute{Portal: portal, MaxRows: maxRows})
	fe.Send(&pgproto3.Sync{})
	if err := b.flush(); err != nil {
		return "", false, err
	}
	return b.readExecute(ctx, "", emit)
}

// readExecute reads an Execute's answer up to ReadyForQuery.
func (b *backend) readExecute(ctx context.Context, parsed string, emit func(*engine.Batch) error) (tag engine.Tag, suspended bool, err error) {
	var row [1][][]byte
	batch := engine.Batch{}
	defer b.state.rows.flush(discardRows) // rows of a failed read are dropped
	for {
		msg, rerr := b.receive(ctx)
		if rerr != nil {
			return "", false, rerr
		}
		if _, isRow := msg.(*pgproto3.DataRow); !isRow && err == nil {
			if eerr := b.state.rows.flush(emit); eerr != nil {
				b.pg.Close(context.Background())
				return "", false, eerr
			}
		}
		switch m := msg.(type) {
		case *pgproto3.ParseComplete:
			if parsed != "" {
				b.prepared(parsed)
			}
		case *pgproto3.DataRow:
			if err == nil {
				if eerr := b.emitRow(m.Values, &row, &batch, emit); eerr != nil {
					b.pg.Close(context.Background())
					return "", false, eerr
				}
			}
		case *pgproto3.RowDescription:
			if err == nil {
				if eerr := emit(&engine.Batch{Fields: fieldsOf(m)}); eerr != nil {
					b.pg.Close(context.Background())
					return "", false, eerr
				}
			}
		case *pgproto3.CommandComplete:
			tag = engine.Tag(m.CommandTag)
		case *pgproto3.EmptyQueryResponse:
			tag = ""
		case *pgproto3.PortalSuspended:
			suspended = true
		case *pgproto3.NoticeResponse:
			b.forwardNotice(m)
		case *pgproto3.ErrorResponse:
			err = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			return tag, suspended, err
		}
	}
}
