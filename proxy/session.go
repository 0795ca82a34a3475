package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/topology"
)

// flushBytes is how much row data a session buffers before writing it to
// the client, so a large result streams in bounded memory.
const flushBytes = 64 << 10

// session is one client connection.
type session struct {
	srv      *Server
	conn     net.Conn
	be       *pgproto3.Backend
	log      *zap.Logger
	keyspace string
	user     string
	appName  string
	pending  int // bytes sent to be since the last flush
	// cancel ends the session's context, cancelling its running statement.
	cancel context.CancelFunc
}

// startup runs the startup phase: SSL and GSS encryption requests are
// declined, a CancelRequest is dropped (cancel comes later), and a
// StartupMessage names the keyspace. It returns false if the session ends.
func (s *session) startup(ctx context.Context) bool {
	for {
		msg, err := s.be.ReceiveStartupMessage()
		if err != nil {
			s.log.Debug("startup failed", zap.Error(err))
			return false
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			if _, err := s.conn.Write([]byte{'N'}); err != nil {
				return false
			}
		case *pgproto3.CancelRequest:
			return false
		case *pgproto3.StartupMessage:
			return s.accept(ctx, m)
		default:
			return false
		}
	}
}

// accept checks the startup parameters and greets the client as Postgres
// does: AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery.
func (s *session) accept(ctx context.Context, m *pgproto3.StartupMessage) bool {
	s.user = m.Parameters["user"]
	s.keyspace = m.Parameters["database"]
	if s.keyspace == "" {
		s.keyspace = s.user
	}
	s.appName = m.Parameters["application_name"]
	s.log = s.log.With(zap.String("keyspace", s.keyspace), zap.String("user", s.user))
	if s.user == "" {
		return s.fatal(codeProtocolViolation, "no PostgreSQL user name specified in startup packet")
	}
	if err := checkStartupParameters(m.Parameters); err != nil {
		return s.fatal(codeFeatureNotSupp, err.Error())
	}
	snap := s.srv.topo()
	ks := snap.Keyspace(s.keyspace)
	if ks == nil {
		return s.fatal(codeInvalidCatalogName, fmt.Sprintf("database %q does not exist", s.keyspace))
	}
	if ks.VSchema() == nil {
		return s.fatal(codeInvalidCatalogName, fmt.Sprintf("keyspace %q has no vschema yet; apply one with 'shardctl vschema apply'", s.keyspace))
	}
	params, err := s.srv.pools.serverParams(ctx, snap.Shards[ks.Shards()[0]])
	if err != nil {
		return s.fatalErr(err)
	}
	s.be.Send(&pgproto3.AuthenticationOk{})
	for _, p := range params {
		s.be.Send(&pgproto3.ParameterStatus{Name: p.name, Value: p.value})
	}
	s.be.Send(&pgproto3.ParameterStatus{Name: "application_name", Value: s.appName})
	s.be.Send(&pgproto3.ParameterStatus{Name: "session_authorization", Value: s.user})
	var key [8]byte
	_, _ = rand.Read(key[:])
	s.be.Send(&pgproto3.BackendKeyData{ProcessID: binary.BigEndian.Uint32(key[:4]) >> 1, SecretKey: key[4:]})
	s.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	return s.be.Flush() == nil
}

// checkStartupParameters refuses startup parameters that would change how
// results look: backend connections are shared, so per-session settings are
// not applied yet. Values equal to the backends' (UTF8, ISO dates, shortest
// exact floats) are fine.
func checkStartupParameters(params map[string]string) error {
	for name, value := range params {
		switch strings.ToLower(name) {
		case "user", "database", "application_name", "fallback_application_name", "replication":
			if strings.ToLower(name) == "replication" && value != "false" && value != "off" && value != "0" {
				return errors.New("replication connections are not supported by shardgate")
			}
		case "client_encoding":
			switch strings.ToUpper(strings.ReplaceAll(value, "-", "")) {
			case "UTF8", "UNICODE", "SQL_ASCII":
			default:
				return fmt.Errorf("client_encoding %s is not supported by shardgate yet; use UTF8", value)
			}
		case "datestyle":
			if !strings.HasPrefix(strings.ToUpper(strings.ReplaceAll(value, " ", "")), "ISO") {
				return fmt.Errorf("DateStyle %s is not supported by shardgate yet; use ISO", value)
			}
		case "extra_float_digits":
			if n, err := strconv.Atoi(value); err != nil || n < 1 {
				return fmt.Errorf("extra_float_digits %s is not supported by shardgate yet; use 1 or more", value)
			}
		default:
			return fmt.Errorf("startup parameter %s is not supported by shardgate yet", name)
		}
	}
	return nil
}

// fatal sends a FATAL error and ends the session.
func (s *session) fatal(code, msg string) bool {
	s.log.Info("refused connection", zap.String("code", code), zap.String("reason", msg))
	s.be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg})
	_ = s.be.Flush()
	return false
}

func (s *session) fatalErr(err error) bool {
	e := errorResponse(err, "", 0, s.log)
	return s.fatal(e.Code, e.Message)
}

// serve reads and answers client messages until the client leaves or the
// server shuts down.
func (s *session) serve(ctx context.Context) {
	discardUntilSync := false
	for {
		s.srv.markIdle(s, true)
		msg, err := s.be.Receive()
		s.srv.markIdle(s, false)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !s.srv.draining() {
				s.log.Debug("client read failed", zap.Error(err))
			}
			return
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			s.simpleQuery(ctx, m.String)
		case *pgproto3.Terminate:
			return
		case *pgproto3.Sync:
			discardUntilSync = false
			s.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Parse, *pgproto3.Bind, *pgproto3.Describe, *pgproto3.Execute, *pgproto3.Close, *pgproto3.Flush:
			// Answer the first message of an extended-protocol batch with
			// an error and skip the rest until Sync, as Postgres does
			// after an error.
			if !discardUntilSync {
				discardUntilSync = true
				s.be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: codeFeatureNotSupp,
					Message: "the extended query protocol is not supported by shardgate yet; use the simple query protocol"})
			}
		case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail:
			// Stray COPY data after a refused COPY: Postgres ignores it too.
		default:
			s.be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: codeProtocolViolation,
				Message: fmt.Sprintf("unexpected message %T", msg)})
			_ = s.be.Flush()
			return
		}
		if err := s.be.Flush(); err != nil {
			return
		}
		s.pending = 0
		if s.srv.draining() {
			s.be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: codeAdminShutdown,
				Message: "terminating connection due to administrator command"})
			_ = s.be.Flush()
			return
		}
	}
}

// simpleQuery answers a Query message: plan every statement, run them in
// order, stop at the first error, end with ReadyForQuery.
func (s *session) simpleQuery(ctx context.Context, sql string) {
	defer s.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	snap := s.srv.topo()
	ks := snap.Keyspace(s.keyspace)
	if ks == nil || ks.VSchema() == nil {
		s.sendError(fmt.Errorf("keyspace %s no longer exists: %w", s.keyspace,
			&planner.Error{Code: codeInvalidCatalogName, Message: fmt.Sprintf("database %q does not exist", s.keyspace)}), sql, 0)
		return
	}
	stmts, err := planner.Plan(ks, sql)
	if err != nil {
		s.sendError(err, sql, 0)
		return
	}
	if len(stmts) == 0 {
		s.be.Send(&pgproto3.EmptyQueryResponse{})
		return
	}
	x := &shardExecutor{pools: s.srv.pools, snap: snap}
	if shard, ok := oneShard(stmts); ok && len(stmts) > 1 {
		// Every statement runs on the same shard: send the string as the
		// client wrote it, so the shard gives it Postgres's implicit
		// transaction, all or nothing.
		s.runOnShard(ctx, x, shard, sql)
		return
	}
	if len(stmts) > 1 {
		for _, st := range stmts {
			if !st.ReadOnly {
				s.sendError(&planner.Error{Code: codeFeatureNotSupp,
					Message: "a query string whose statements write on more than one shard is not supported yet: it could not be all or nothing",
					Hint:    "Send the statements one at a time."}, sql, 0)
				return
			}
		}
	}
	offset := 0
	for _, st := range stmts {
		offset = strings.Index(sql[offset:], st.SQL) + offset
		tag, err := st.Root.Stream(ctx, x, s.emit)
		if err != nil {
			s.sendError(err, sql, offset)
			return
		}
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	}
}

// oneShard reports whether every statement is a single Route to one shard
// (or to any shard).
func oneShard(stmts []*planner.Statement) (string, bool) {
	shard, anyShard := "", ""
	for _, st := range stmts {
		r, ok := st.Root.(*planner.Route)
		switch {
		case !ok || (!r.AnyShard && shard != "" && r.Shard != shard):
			return "", false
		case r.AnyShard:
			anyShard = r.Shard
		default:
			shard = r.Shard
		}
	}
	if shard == "" {
		shard = anyShard
	}
	return shard, true
}

// runOnShard forwards a whole query string to one shard and relays every
// result.
func (s *session) runOnShard(ctx context.Context, x *shardExecutor, shard, sql string) {
	sh, ok := x.snap.Shards[shard]
	if !ok {
		s.sendError(fmt.Errorf("shard %s is not in the topology", shard), sql, 0)
		return
	}
	conn, err := x.pools.acquire(ctx, sh)
	if err != nil {
		s.sendError(err, sql, 0)
		return
	}
	defer conn.Release()
	err = forward(ctx, conn.Conn().PgConn(), sql, s.emit, func(tag planner.Tag) error {
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
		return nil
	})
	if err != nil {
		s.sendError(err, sql, 0)
	}
}

// emit writes a result batch to the client, flushing when enough is
// buffered.
func (s *session) emit(b *planner.Batch) error {
	if b.Fields != nil {
		fields := make([]pgproto3.FieldDescription, len(b.Fields))
		for i, f := range b.Fields {
			fields[i] = pgproto3.FieldDescription{
				Name: []byte(f.Name), TableOID: f.TableOID, TableAttributeNumber: f.TableAttributeNumber,
				DataTypeOID: f.DataTypeOID, DataTypeSize: f.DataTypeSize, TypeModifier: f.TypeModifier, Format: f.Format,
			}
		}
		s.be.Send(&pgproto3.RowDescription{Fields: fields})
	}
	for _, row := range b.Rows {
		s.be.Send(&pgproto3.DataRow{Values: row})
		for _, v := range row {
			s.pending += len(v) + 4
		}
	}
	if s.pending >= flushBytes {
		s.pending = 0
		return s.be.Flush()
	}
	return nil
}

func (s *session) sendError(err error, sql string, offset int) {
	e := errorResponse(err, sql, offset, s.log)
	if e.SeverityUnlocalized == "" {
		e.SeverityUnlocalized = e.Severity
	}
	s.be.Send(e)
}

// topologyKeyspace is a compile-time check that topology keyspaces are what
// the planner plans against.
var _ planner.Topology = (*topology.Keyspace)(nil)
