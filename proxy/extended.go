package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// prepared is a client's prepared statement (Parse).
type prepared struct {
	sql  string
	stmt *planner.Statement // planned; nil for an empty query
	// vs is the vschema stmt was planned for: a statement bound after the
	// vschema changed is planned again.
	vs *vschema.Keyspace
	// oids are the parameter types, as the client gave them and a backend
	// completed them; fields the result columns (nil: no rows).
	oids   []uint32
	fields []pgproto3.FieldDescription
	// described is the key of the description in the describe cache,
	// dropped if a shard finds the result changed; nil when not cached.
	described *describeKey
}

// portal is a client's portal (Bind): a statement with parameter values,
// which route it when it runs.
type portal struct {
	stmt *prepared
	bind *binding
	plan *planner.Statement // nil for an empty query
	// name is the portal's name on backends, unique in the session, so a
	// client re-binding a closed name never meets the old backend portal.
	name string
	// fields are a FETCH portal's result columns, the cursor's (see
	// describePortalOn); its statement has none.
	fields []pgproto3.FieldDescription
	// While a row-limited Execute left the portal suspended, backend holds
	// it (inside the session's transaction).
	backend *backend
	done    bool
	// held are the rows of a multi-shard result that a row-limited
	// Execute left for the next ones, and their verb ("SELECT").
	held     [][][]byte
	heldVerb string
	heldTxn  *txn  // the transaction the rows were read in
	heldErr  error // the result's end after the held rows, if it failed
	// paused is the result a row-limited Execute in a transaction
	// paused in.
	paused *pausedRun
}

// maxHeldBytes bounds the rows a portal over several shards keeps between
// row-limited Executes.
const maxHeldBytes = 64 << 20

// extended takes one extended-protocol message as it arrives, as Postgres
// does. Parse, Bind, Describe and Close are answered at once. An Execute is
// held until the next message comes: when that is its Sync, the statement
// runs alone, in its shard's own implicit transaction, in one round trip;
// when more comes first, it runs then, in the implicit transaction that
// spans the Executes up to the Sync (runHeld).
func (s *session) extended(ctx context.Context, msg pgproto3.FrontendMessage) {
	if s.ignoreTillSync {
		return
	}
	if e, ok := msg.(*pgproto3.Execute); ok {
		s.held = &pgproto3.Execute{Portal: e.Portal, MaxRows: e.MaxRows}
		s.stmtMu.Lock()
		s.executeQueued = true
		s.stmtMu.Unlock()
		return
	}
	if b, ok := msg.(*pgproto3.Bind); ok {
		// The portal keeps the values past this message's buffer.
		msg = cloneBind(b)
	}
	s.runBatch(ctx, []pgproto3.FrontendMessage{msg}, false)
}

// runHeld runs the held Execute, if any: at its Sync (final) or because
// another message followed it.
func (s *session) runHeld(ctx context.Context, final bool) {
	var batch []pgproto3.FrontendMessage
	if s.held != nil {
		batch = []pgproto3.FrontendMessage{s.held}
		s.held = nil
	}
	s.runBatch(ctx, batch, final)
}

// boundSetting is a set_config statement with its value parameter written
// in as a literal: settings are kept, replayed and reported as statement
// text.
func boundSetting(st *planner.Statement, bind *binding) (*planner.Statement, error) {
	i := st.Setting.ValueParam - 1
	value := "NULL"
	if v, ok := bind.Text(i); ok {
		value = quoteLiteral(v)
	} else if i < len(bind.values) && bind.values[i] != nil {
		return nil, &planner.Error{Code: codeFeatureNotSupp, Message: "set_config's value must be sent in text format"}
	}
	c := *st
	c.SQL = fmt.Sprintf("SELECT pg_catalog.set_config(%s, %s, %t)", quoteLiteral(st.Setting.Name), value, st.Setting.Local)
	return &c, nil
}

// cloneBind copies a Bind with its parameter values in one allocation.
func cloneBind(m *pgproto3.Bind) *pgproto3.Bind {
	n := 0
	for _, v := range m.Parameters {
		n += len(v)
	}
	buf := make([]byte, 0, n)
	vals := make([][]byte, len(m.Parameters))
	for i, v := range m.Parameters {
		if v != nil {
			buf = append(buf, v...)
			vals[i] = buf[len(buf)-len(v) : len(buf) : len(buf)]
		}
	}
	return &pgproto3.Bind{DestinationPortal: m.DestinationPortal, PreparedStatement: m.PreparedStatement,
		ParameterFormatCodes: m.ParameterFormatCodes, Parameters: vals, ResultFormatCodes: m.ResultFormatCodes}
}

// runBatch answers extended-protocol messages in order. At a Sync (final)
// it also ends the implicit transaction that Postgres gives the messages
// between two Syncs; at a Flush the transaction stays open.
//
// An Execute that is the only one before its Sync, outside a transaction,
// runs alone, so its shard's own implicit transaction makes it all or
// nothing in one round trip. Executes that share a Sync run in a
// transaction of the gateway, committed (with two-phase commit if they
// wrote on several shards) at the Sync.
func (s *session) runBatch(ctx context.Context, batch []pgproto3.FrontendMessage, final bool) {
	s.stmtMu.Lock()
	cancelled := s.cancelQueued
	s.executeQueued, s.cancelQueued = false, false
	s.stmtMu.Unlock()
	if s.ignoreTillSync {
		if final {
			s.ignoreTillSync = false
		}
		return
	}
	if s.console {
		s.consoleBatch(batch, final)
		return
	}
	if err := s.waitResumed(ctx); err != nil {
		s.sendError(err, "", 0)
		s.ignoreTillSync = !final
		return
	}
	ks := s.routingKeyspace()
	if ks == nil || ks.VSchema() == nil {
		s.sendError(&planner.Error{Code: codeInvalidCatalogName, Message: fmt.Sprintf("database %q does not exist", s.keyspace)}, "", 0)
		s.ignoreTillSync = !final
		return
	}
	ctx, done := s.statementContext(ctx)
	defer done()
	for _, msg := range batch {
		_, execute := msg.(*pgproto3.Execute)
		if execute && s.txn == nil && (!final || !s.singleExecute(batch)) {
			// More than one statement before the Sync (or more may come
			// after this Flush): they share one transaction, as on
			// Postgres.
			s.txn = newTxn(false, "BEGIN", s.settings)
		}
		var err error
		switch {
		case execute && cancelled:
			// A cancel request came after this Execute, which Postgres
			// would have been running by then: it fails as cancelled.
			err = context.Canceled
		case execute:
			if ks, err = s.fenceExecute(ctx, ks, msg.(*pgproto3.Execute)); err == nil {
				err = s.handle(ctx, ks, msg)
			}
		default:
			err = s.handle(ctx, ks, msg)
		}
		if err != nil {
			// Postgres skips the rest until Sync after an error.
			s.fail(ctx, err, "", 0)
			if !final {
				s.ignoreTillSync = true
			}
			if s.txn == nil {
				clear(s.portals)
			}
			return
		}
	}
	if final && s.txn != nil && !s.txn.explicit {
		t := s.txn
		s.txn = nil
		if err := s.commit(ctx, t); err != nil {
			s.sendError(err, "", 0)
			clear(s.portals)
			return
		}
		s.settings = t.settings
	}
	if final && s.txn == nil {
		// Without a transaction, portals end at Sync, as in Postgres.
		clear(s.portals)
		s.unpinIfClean()
	}
}

// fenceExecute passes an Execute's portal through the fences (see
// passFences) and returns the keyspace to route by.
func (s *session) fenceExecute(ctx context.Context, ks *topology.Keyspace, m *pgproto3.Execute) (*topology.Keyspace, error) {
	pt := s.portals[m.Portal]
	if pt == nil || pt.plan == nil || pt.done || pt.backend != nil || pt.paused != nil || pt.held != nil {
		return ks, nil // nothing new runs
	}
	return s.passFences(ctx, ks, s.txn != nil, pt.bind, pt.plan)
}

// singleExecute reports whether batch has at most one Execute.
func (s *session) singleExecute(batch []pgproto3.FrontendMessage) bool {
	n := 0
	for _, m := range batch {
		if _, ok := m.(*pgproto3.Execute); ok {
			n++
		}
	}
	return n <= 1
}

// handle answers one extended-protocol message.
func (s *session) handle(ctx context.Context, ks *topology.Keyspace, msg pgproto3.FrontendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.Parse:
		return s.parse(ctx, ks, m)
	case *pgproto3.Bind:
		return s.bind(ctx, ks, m)
	case *pgproto3.Describe:
		return s.describe(ctx, ks, m)
	case *pgproto3.Execute:
		return s.executePortal(ctx, ks, m)
	case *pgproto3.Close:
		if m.ObjectType == 'S' {
			delete(s.statements, m.Name)
		} else {
			delete(s.portals, m.Name)
		}
		s.be.Send(&pgproto3.CloseComplete{})
	}
	return nil
}

func (s *session) parse(ctx context.Context, ks *topology.Keyspace, m *pgproto3.Parse) error {
	if _, exists := s.statements[m.Name]; exists && m.Name != "" {
		return &planner.Error{Code: "42P05", Message: fmt.Sprintf("prepared statement %q already exists", m.Name)}
	}
	if err := s.checkStatementSize(m.Query); err != nil {
		return err
	}
	query, err := s.decodeClient(m.Query)
	if err != nil {
		return err
	}
	vs := s.planVSchema(ctx, ks)
	stmts, err := s.plan(ctx, vs, query)
	if err != nil {
		return s.postgresVerdict(ctx, ks, query, m.ParameterOIDs, err)
	}
	if len(stmts) > 1 {
		return &planner.Error{Code: "42601", Message: "cannot insert multiple commands into a prepared statement"}
	}
	p := &prepared{sql: query, oids: m.ParameterOIDs, vs: vs}
	if len(stmts) == 1 {
		p.stmt = stmts[0]
		if p.stmt.Control == nil {
			// A shard describes it: parameter types and result columns
			// are the same on every shard.
			if p.oids, p.fields, p.described, err = s.describeCached(ctx, ks, query, m.ParameterOIDs, p.stmt); err != nil {
				return err
			}
		}
		if set := p.stmt.Setting; set != nil && len(p.oids) > 0 && (set.ValueParam != 1 || len(p.oids) != 1) {
			return &planner.Error{Code: codeFeatureNotSupp, Message: "parameters in SET and set_config statements are supported only as set_config's value ($1 alone); write the other values into the statement"}
		}
	}
	s.statements[m.Name] = p
	s.be.Send(&pgproto3.ParseComplete{})
	return nil
}

// postgresVerdict answers a statement the planner refused: with the error
// Postgres gives it, if Postgres rejects it too (an unknown column, a type
// mismatch), as a client talking to Postgres would get; else with the
// refusal.
func (s *session) postgresVerdict(ctx context.Context, ks *topology.Keyspace, query string, oids []uint32, refusal error) error {
	var pe *planner.Error
	if !errors.As(refusal, &pe) || pe.Code == planner.CodeSyntaxError {
		return refusal
	}
	if _, _, err := s.describeOn(ctx, ks, query, oids); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return err
		}
	}
	return refusal
}

// describeOn asks a backend of any shard of the keyspace (the
// transaction's, if one is open, so it sees the transaction's own DDL).
func (s *session) describeOn(ctx context.Context, ks *topology.Keyspace, sql string, oids []uint32) (params []uint32, fields []pgproto3.FieldDescription, err error) {
	err = s.onAnyShard(ks, func(shard string) error {
		if t := s.txn; t != nil {
			b, err := s.join(ctx, t, shard)
			if err != nil {
				return err
			}
			params, fields, err = b.describe(ctx, sql, oids)
			return err
		}
		b, err := s.backendFor(ctx, shard, nil)
		if err != nil {
			return err
		}
		defer s.giveBack(b)
		params, fields, err = b.describe(ctx, sql, oids)
		return err
	})
	return params, fields, err
}

func (s *session) bind(ctx context.Context, ks *topology.Keyspace, m *pgproto3.Bind) error {
	p, ok := s.statements[m.PreparedStatement]
	if !ok {
		return &planner.Error{Code: "26000", Message: fmt.Sprintf("prepared statement %q does not exist", m.PreparedStatement)}
	}
	if _, exists := s.portals[m.DestinationPortal]; exists && m.DestinationPortal != "" {
		return &planner.Error{Code: "42P03", Message: fmt.Sprintf("cursor %q already exists", m.DestinationPortal)}
	}
	if n := len(m.ParameterFormatCodes); n > 1 && n != len(m.Parameters) {
		return &planner.Error{Code: codeProtocolViolation, Message: fmt.Sprintf("bind message has %d parameter formats but %d parameters", n, len(m.Parameters))}
	}
	if len(m.Parameters) != len(p.oids) && p.stmt != nil && p.stmt.Control == nil {
		return &planner.Error{Code: codeProtocolViolation, Message: fmt.Sprintf("bind message supplies %d parameters, but prepared statement %q requires %d", len(m.Parameters), m.PreparedStatement, len(p.oids))}
	}
	enc, err := lookupEncoding(s.reported["client_encoding"])
	if err != nil {
		return err
	}
	s.portalSeq++
	pt := &portal{stmt: p, name: "sgp" + strconv.Itoa(s.portalSeq),
		bind: &binding{values: m.Parameters, formats: m.ParameterFormatCodes, oids: p.oids, resultFormats: m.ResultFormatCodes, enc: enc}}
	if p.stmt != nil {
		pt.plan = p.stmt
		if set := p.stmt.Setting; set != nil && set.ValueParam > 0 {
			if pt.plan, err = boundSetting(p.stmt, pt.bind); err != nil {
				return err
			}
		}
		if vs := s.planVSchema(ctx, ks); p.stmt.Control == nil && p.stmt.Setting == nil && vs != p.vs {
			// The vschema changed since Parse: plan for the new one.
			stmts, err := s.plan(ctx, vs, p.sql)
			if err != nil {
				return err
			}
			p.stmt, p.vs, pt.plan = stmts[0], vs, stmts[0]
		}
	}
	s.portals[m.DestinationPortal] = pt
	s.be.Send(&pgproto3.BindComplete{})
	return nil
}

func (s *session) describe(ctx context.Context, ks *topology.Keyspace, m *pgproto3.Describe) error {
	if m.ObjectType == 'S' {
		p, ok := s.statements[m.Name]
		if !ok {
			return &planner.Error{Code: "26000", Message: fmt.Sprintf("prepared statement %q does not exist", m.Name)}
		}
		s.be.Send(&parameterDescription{pgproto3.ParameterDescription{ParameterOIDs: p.oids}})
		s.sendFields(p.fields, nil)
		return nil
	}
	pt, ok := s.portals[m.Name]
	if !ok {
		return &planner.Error{Code: "34000", Message: fmt.Sprintf("portal %q does not exist", m.Name)}
	}
	if pt.plan != nil && pt.plan.Fetch && pt.fields == nil {
		var err error
		if pt.fields, err = s.describePortalOn(ctx, ks, pt); err != nil {
			return err
		}
		s.sendFields(pt.fields, pt.bind.resultFormats)
		return nil
	}
	s.sendFields(pt.stmt.fields, pt.bind.resultFormats)
	return nil
}

// describePortalOn asks the backend where a FETCH runs for its portal's
// columns: the cursor's, which exists only there.
func (s *session) describePortalOn(ctx context.Context, ks *topology.Keyspace, pt *portal) (fields []pgproto3.FieldDescription, err error) {
	shard, q, ok := engine.OneQuery(pt.plan.Root, ks, pt.bind)
	if !ok {
		return nil, nil
	}
	if t := s.txn; t != nil {
		b, err := s.join(ctx, t, shard)
		if err != nil {
			return nil, err
		}
		return b.describePortal(ctx, q.SQL, pt.bind)
	}
	b, err := s.backendFor(ctx, shard, nil)
	if err != nil {
		return nil, err
	}
	defer s.giveBack(b)
	return b.describePortal(ctx, q.SQL, pt.bind)
}

// sendFields sends a RowDescription with the result formats applied, or
// NoData.
func (s *session) sendFields(fields []pgproto3.FieldDescription, formats []int16) {
	if fields == nil {
		s.be.Send(&pgproto3.NoData{})
		return
	}
	out := make([]pgproto3.FieldDescription, len(fields))
	for i, f := range fields {
		switch {
		case len(formats) == 1:
			f.Format = formats[0]
		case i < len(formats):
			f.Format = formats[i]
		default:
			f.Format = 0
		}
		out[i] = f
	}
	s.be.Send(&pgproto3.RowDescription{Fields: out})
}

func (s *session) executePortal(ctx context.Context, ks *topology.Keyspace, m *pgproto3.Execute) error {
	pt, ok := s.portals[m.Portal]
	if !ok {
		return &planner.Error{Code: "34000", Message: fmt.Sprintf("portal %q does not exist", m.Portal)}
	}
	st := pt.plan
	switch {
	case st == nil:
		s.be.Send(&pgproto3.EmptyQueryResponse{})
		return nil
	case pt.done:
		// Executing a finished portal again returns nothing more.
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(portalDoneTag(st))})
		return nil
	}
	if t := s.txn; t != nil && t.failed && (st.Control == nil || st.Control.Kind == planner.Begin || st.Control.Kind == planner.Savepoint || st.Control.Kind == planner.Release) {
		return &planner.Error{Code: "25P02", Message: "current transaction is aborted, commands ignored until end of transaction block"}
	}
	defer s.observe(st, statementKind(st, ks, pt.bind), time.Now())
	if s.deallocated(st) {
		pt.done = true
		return nil
	}
	if ok, err := s.signalled(st, pt.bind); ok {
		pt.done = true
		return err
	}
	switch {
	case st.Control != nil:
		pt.done = true
		return s.control(ctx, st)
	case st.Setting != nil:
		pt.done = true
		s.described = true
		defer func() { s.described = false }()
		return s.set(ctx, ks, st)
	}
	if st.Copy != nil {
		return &planner.Error{Code: codeFeatureNotSupp, Message: "COPY through the extended query protocol is not supported by shardgate yet; send it as a simple query"}
	}
	if st.NoTransaction && s.txn != nil {
		return &planner.Error{Code: "25001", Message: fmt.Sprintf("%s cannot run inside a transaction block", firstWords(st.SQL))}
	}
	emit := s.emitter()
	s.described = true
	defer func() { s.described = false }()
	if pt.backend != nil {
		// A suspended portal: fetch the next rows where it lives, if its
		// transaction still holds that backend.
		if t := s.txn; t == nil || t.backends[pt.backend.shard] != pt.backend {
			return &planner.Error{Code: "34000", Message: fmt.Sprintf("portal %q does not exist", m.Portal)}
		}
		tag, suspended, err := pt.backend.continuePortal(ctx, pt.name, m.MaxRows, emit)
		return s.portalResult(pt, tag, suspended, err)
	}
	if pt.paused != nil {
		return s.readPaused(ctx, pt, m.MaxRows)
	}
	if pt.held != nil {
		return s.fetchHeld(pt, m.Portal, m.MaxRows)
	}
	ks, shadow := s.steerRead(ks, st, pt.bind)
	if m.MaxRows > 0 {
		shadow = nil // compared only when the source answers it whole
	}
	shards := engine.Shards(st.Root, ks, pt.bind)
	maxRows := m.MaxRows
	if m.MaxRows > 0 && len(shards) > 1 && s.txn != nil && s.txn.explicit {
		// The merge pauses between the Executes that read it.
		return s.pause(ctx, pt, m.Portal, m.MaxRows, func(runCtx context.Context, emit func(*engine.Batch) error) (engine.Tag, error) {
			x := &sessionExecutor{s: s, ks: ks, st: st, policy: ks.VSchema().MultiShardWrites, bind: pt.bind, shape: pt.stmt.fields, portal: pt.name}
			return st.Root.Stream(runCtx, x, pt.bind, emit)
		})
	}
	if m.MaxRows > 0 && len(shards) > 1 {
		// The shards run to the end; the gateway holds what the row
		// limit leaves for the next Executes.
		emit, maxRows = s.holdRows(pt, m.MaxRows), 0
	}
	x := &sessionExecutor{s: s, ks: ks, st: st, policy: ks.VSchema().MultiShardWrites, bind: pt.bind, shape: pt.stmt.fields, portal: pt.name, maxRows: maxRows, shadow: shadow}
	run := func() (engine.Tag, error) {
		tag, err := st.Root.Stream(ctx, x, pt.bind, emit)
		s.countRefusal(err)
		if err == nil {
			s.noteSequences(st)
		}
		if errors.Is(err, errResultChanged) && pt.stmt.described != nil {
			s.srv.describes.entries.Remove(*pt.stmt.described)
		}
		return tag, err
	}
	result := func(tag engine.Tag, err error) error {
		if err == nil && pt.held != nil {
			return s.holdResult(pt, tag, m.MaxRows)
		}
		return s.portalResult(pt, tag, x.suspended, err)
	}
	if s.txn == nil && !st.ReadOnly && !st.NoTransaction && len(shards) > 1 {
		// One statement that writes on several shards is all or nothing.
		t := newTxn(false, "BEGIN", s.settings)
		s.txn = t
		tag, err := run()
		s.txn = nil
		if err != nil {
			_ = s.rollback(context.Background(), t)
			return err
		}
		if err := s.commit(ctx, t); err != nil {
			return err
		}
		return result(tag, nil)
	}
	if m.MaxRows > 0 && s.txn == nil {
		// The last Execute before a Sync, outside a transaction: the
		// portal ends with the Sync anyway, here as on Postgres.
		tag, err := run()
		err = result(tag, err)
		pt.done = true
		return err
	}
	tag, err := run()
	if err == nil && x.suspended {
		pt.backend = x.last
	}
	return result(tag, err)
}

// holdRows returns the emit of a row-limited Execute of a result that
// comes from several shards: the first maxRows rows go to the client, the
// rest are kept in the portal for the next Executes, up to maxHeldBytes.
func (s *session) holdRows(pt *portal, maxRows uint32) func(*engine.Batch) error {
	sent, size := uint32(0), 0
	pt.held, pt.heldTxn = [][][]byte{}, s.txn
	return func(b *engine.Batch) error {
		if b.Fields != nil {
			return s.emit(b)
		}
		n := min(uint32(len(b.Rows)), maxRows-sent)
		if n > 0 {
			sent += n
			if err := s.emit(&engine.Batch{Rows: b.Rows[:n]}); err != nil {
				return err
			}
		}
		for _, row := range b.Rows[n:] {
			kept := make([][]byte, len(row))
			for i, v := range row {
				if v != nil {
					kept[i] = bytes.Clone(v)
					size += len(v)
				}
			}
			if size > maxHeldBytes {
				return &planner.Error{Code: "53200", Message: fmt.Sprintf("out of memory: a result that spans shards, fetched %d rows at a time, holds more than %d MiB in the gateway", maxRows, maxHeldBytes>>20),
					Hint: "Fetch it with a larger row limit, or without one."}
			}
			pt.held = append(pt.held, kept)
		}
		return nil
	}
}

// holdResult ends the first row-limited Execute of a multi-shard result:
// suspended when rows are held for the next Executes, else complete.
func (s *session) holdResult(pt *portal, tag engine.Tag, maxRows uint32) error {
	verb, count, _ := strings.Cut(string(tag), " ")
	pt.heldVerb = verb
	if len(pt.held) == 0 {
		pt.held = nil
		if sent, err := strconv.ParseInt(count, 10, 64); err == nil && sent > int64(maxRows) {
			tag = engine.Tag(verb + " " + strconv.FormatUint(uint64(maxRows), 10))
		}
		return s.portalResult(pt, tag, false, nil)
	}
	return s.portalResult(pt, "", true, nil)
}

// fetchHeld answers an Execute of a portal whose rows the gateway holds:
// the next maxRows (0: all) of them, then PortalSuspended while more are
// left, else CommandComplete counting the rows of this Execute, as
// Postgres counts them.
func (s *session) fetchHeld(pt *portal, name string, maxRows uint32) error {
	if s.txn != pt.heldTxn {
		// Its transaction ended, and the portal with it.
		return &planner.Error{Code: "34000", Message: fmt.Sprintf("portal %q does not exist", name)}
	}
	n := len(pt.held)
	if maxRows > 0 && int(maxRows) < n {
		n = int(maxRows)
	}
	if err := s.emit(&engine.Batch{Rows: pt.held[:n]}); err != nil {
		return err
	}
	pt.held = pt.held[n:]
	if len(pt.held) > 0 {
		return s.portalResult(pt, "", true, nil)
	}
	pt.held = nil
	if pt.heldErr != nil {
		return pt.heldErr
	}
	return s.portalResult(pt, engine.Tag(pt.heldVerb+" "+strconv.Itoa(n)), false, nil)
}

// portalResult ends an Execute: PortalSuspended or CommandComplete.
func (s *session) portalResult(pt *portal, tag engine.Tag, suspended bool, err error) error {
	if err != nil {
		return err
	}
	if suspended {
		s.be.Send(&pgproto3.PortalSuspended{})
		return nil
	}
	pt.done = true
	pt.backend = nil
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	return nil
}

// portalDoneTag is the tag Postgres gives an Execute of a finished portal.
func portalDoneTag(st *planner.Statement) string {
	if st.ReadOnly {
		return "SELECT 0"
	}
	return firstWords(st.SQL)
}
