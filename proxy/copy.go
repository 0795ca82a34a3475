package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/proxy/copyrows"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// copyChunk is how much COPY data the gateway gathers for one shard before
// sending it on.
const copyChunk = 64 << 10

// copyTo runs COPY ... TO STDOUT on each shard in turn and streams the data
// to the client as one COPY: one CopyOutResponse, every shard's rows (a CSV
// header once), one CopyDone and the total row count.
func (s *session) copyTo(ctx context.Context, ks *topology.Keyspace, st *planner.Statement) error {
	cp := st.Copy
	shards, err := cp.Shards(ks)
	if err != nil {
		return err
	}
	var total int64
	started := false
	for i, shard := range shards {
		sql := cp.ShardSQL
		if len(shards) > 1 {
			if sql, err = s.srv.owned.limit(ks, shard, sql); err != nil {
				return err
			}
		}
		b, release, err := s.copyBackend(ctx, shard)
		if err != nil {
			return err
		}
		n, err := s.copyOutOf(ctx, b, sql, &started, cp.Header && i > 0)
		release()
		if err != nil {
			return err
		}
		total += n
	}
	s.be.Send(&pgproto3.CopyDone{})
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("COPY " + strconv.FormatInt(total, 10))})
	return nil
}

// copyOutOf reads one shard's COPY TO answer, forwarding its data.
func (s *session) copyOutOf(ctx context.Context, b *backend, sql string, started *bool, skipHeader bool) (int64, error) {
	if err := b.sendQuery(sql); err != nil {
		return 0, err
	}
	var (
		n      int64
		failed error
		first  = true
	)
	for {
		msg, err := b.receive(ctx)
		if err != nil {
			return 0, err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyOutResponse:
			if !*started {
				*started = true
				s.be.Send(&pgproto3.CopyOutResponse{OverallFormat: m.OverallFormat, ColumnFormatCodes: slices.Clone(m.ColumnFormatCodes)})
			}
		case *pgproto3.CopyData:
			if first && skipHeader {
				first = false
				continue
			}
			first = false
			s.be.Send(&pgproto3.CopyData{Data: m.Data})
			if s.pending += len(m.Data); s.pending >= flushBytes {
				s.pending = 0
				if err := s.flushClient(); err != nil {
					b.pg.Close(context.Background())
					return 0, err
				}
			}
		case *pgproto3.CommandComplete:
			n = copyCount(m.CommandTag)
		case *pgproto3.ErrorResponse:
			failed = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.NoticeResponse:
			b.forwardNotice(m)
		case *pgproto3.ReadyForQuery:
			return n, failed
		}
	}
}

func copyCount(tag []byte) int64 {
	n, _ := strconv.ParseInt(strings.TrimPrefix(string(tag), "COPY "), 10, 64)
	return n
}

// copyBackend returns the backend of shard that a COPY uses: the
// transaction's, or one borrowed until release.
func (s *session) copyBackend(ctx context.Context, shard string) (*backend, func(), error) {
	if t := s.txn; t != nil {
		b, err := s.join(ctx, t, shard)
		return b, func() {}, err
	}
	b, err := s.backendFor(ctx, shard, nil)
	if err != nil {
		return nil, nil, err
	}
	return b, func() { s.giveBack(b) }, nil
}

// copyTarget is one shard receiving COPY FROM data.
type copyTarget struct {
	b     *backend
	buf   []byte
	rows  int64
	wrote bool
	// ended is set once the shard refused the data mid-COPY: it answered
	// already, up to ReadyForQuery.
	ended bool
}

// copyRefused is a shard's error in the middle of a COPY, which ends it at
// once, as on Postgres: the client hears of it while it still sends.
type copyRefused struct{ err error }

func (e *copyRefused) Error() string { return e.err.Error() }
func (e *copyRefused) Unwrap() error { return e.err }

func (c *copyTarget) send(ctx context.Context) error {
	if len(c.buf) == 0 {
		return nil
	}
	fe := c.b.pg.Frontend()
	fe.Send(&pgproto3.CopyData{Data: c.buf})
	err := c.b.flush()
	c.buf = c.buf[:0]
	if n, first, _ := peek(c.b.pg.Conn()); err == nil && n == 1 && first == 'E' {
		// The shard refused the data before its end: it answers up to
		// ReadyForQuery, out of copy-in already.
		_, err = finishCopyIn(ctx, c.b)
		c.ended = true
		if err == nil {
			err = fmt.Errorf("shard %s ended the COPY before its data did", c.b.shard)
		}
		err = &copyRefused{err: err}
	}
	return err
}

// copyFrom runs COPY ... FROM STDIN: rows of a sharded table go to the
// shard of their sharding column, streamed as they arrive; a reference
// table gets every row on every shard. Several shards are written in one
// transaction, committed with two-phase commit, so the COPY is all or
// nothing, as on Postgres.
func (s *session) copyFrom(ctx context.Context, ks *topology.Keyspace, st *planner.Statement) error {
	cp := st.Copy
	shards, err := cp.Shards(ks)
	if err != nil {
		return err
	}
	split := cp.Table != nil && cp.Table.Kind == vschema.Sharded
	if enc, _ := lookupEncoding(s.reported["client_encoding"]); split && enc != nil {
		// The rows are split by reading their sharding column, which the
		// splitter does in UTF-8 only.
		return &planner.Error{Code: codeFeatureNotSupp, Message: fmt.Sprintf("COPY FROM into a sharded table is supported only with client_encoding UTF8, not %s", s.reported["client_encoding"])}
	}
	t := s.txn
	own := false
	if t == nil && len(shards) > 1 {
		t = newTxn(false, "BEGIN", s.settings)
		s.txn, own = t, true
		defer func() { s.txn = nil }()
	}
	// finish ends the transaction this COPY opened; one that was open
	// before (explicit, or a query string's implicit one) goes on.
	finish := func(err error) error {
		if !own {
			return err
		}
		if err != nil {
			_ = s.rollback(context.Background(), t)
			return err
		}
		if err := s.commit(ctx, t); err != nil {
			return err
		}
		s.settings = t.settings
		return nil
	}

	var splitter *copyrows.Splitter
	if split {
		var err error
		if splitter, err = s.copySplitter(ctx, cp, shards[0]); err != nil {
			return finish(err)
		}
	}
	sql := st.SQL
	if split {
		sql = cp.ShardSQL // the gateway strips the header line
	}
	targets := map[string]*copyTarget{}
	var releases []func()
	defer func() {
		for _, r := range releases {
			r()
		}
	}()
	var response *pgproto3.CopyInResponse
	for _, shard := range shards {
		b, release, err := s.copyBackend(ctx, shard)
		if err != nil {
			s.abortCopy(ctx, targets, "")
			return finish(err)
		}
		releases = append(releases, release)
		r, err := startCopyIn(ctx, b, sql)
		if err != nil {
			s.abortCopy(ctx, targets, "")
			return finish(err)
		}
		if response == nil {
			response = r
		}
		targets[shard] = &copyTarget{b: b}
	}
	s.be.Send(response)
	if err := s.flushClient(); err != nil {
		s.abortCopy(ctx, targets, "client connection lost")
		return finish(err)
	}

	route := func(row, key []byte, null bool) error {
		if null {
			return &planner.Error{Code: "23502", Message: fmt.Sprintf("null value in sharding column %q of table %q", cp.Table.Column, cp.Table.Name)}
		}
		id, ok := cp.Table.KeyspaceID(string(key))
		if !ok {
			return &planner.Error{Code: "22P02", Message: fmt.Sprintf("invalid input syntax for sharding column %s.%s: %q", cp.Table.Name, cp.Table.Column, key)}
		}
		tg := targets[ks.ShardFor(id)]
		if !tg.wrote && t != nil {
			if err := s.noteWrite(t, tg.b.shard, ks.VSchema().MultiShardWrites); err != nil {
				return err
			}
		}
		tg.wrote = true
		tg.buf = append(tg.buf, row...)
		if len(tg.buf) >= copyChunk {
			return tg.send(ctx)
		}
		return nil
	}
	broadcast := func(data []byte) error {
		for _, tg := range targets {
			if !tg.wrote && t != nil {
				if err := s.noteWrite(t, tg.b.shard, ks.VSchema().MultiShardWrites); err != nil {
					return err
				}
			}
			tg.wrote = true
			tg.buf = append(tg.buf, data...)
			if len(tg.buf) >= copyChunk {
				if err := tg.send(ctx); err != nil {
					return err
				}
			}
		}
		return nil
	}

	var failed error
	for {
		msg, err := s.be.Receive()
		if err != nil {
			s.abortCopy(ctx, targets, "client connection lost")
			return finish(&planner.Error{Code: codeProtocolViolation, Message: "the client's COPY data ended without CopyDone or CopyFail"})
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if split {
				failed = splitter.Write(m.Data, route)
			} else {
				failed = broadcast(m.Data)
			}
			if failed != nil {
				// As on Postgres, the error goes out now, while the client
				// still sends; the rest of its COPY messages are dropped
				// (see serve).
				s.abortCopy(ctx, targets, "")
				var refused *copyRefused
				if errors.As(failed, &refused) {
					failed = refused.err
				}
				return finish(copyError(failed))
			}
		case *pgproto3.CopyDone:
			if failed == nil && split {
				failed = splitter.Close(route)
			}
			if failed != nil {
				s.abortCopy(ctx, targets, "")
				return finish(copyError(failed))
			}
			n, err := s.endCopyIn(ctx, targets, shards, split)
			if err != nil {
				return finish(err)
			}
			if err := finish(nil); err != nil {
				return err
			}
			s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("COPY " + strconv.FormatInt(n, 10))})
			return nil
		case *pgproto3.CopyFail:
			s.abortCopy(ctx, targets, m.Message)
			if failed == nil {
				failed = &planner.Error{Code: codeQueryCanceled, Message: "COPY from stdin failed: " + m.Message}
			}
			return finish(copyError(failed))
		case *pgproto3.Flush, *pgproto3.Sync:
			// Ignored during COPY, as by Postgres.
		default:
			s.abortCopy(ctx, targets, "protocol violation")
			return finish(&planner.Error{Code: codeProtocolViolation, Message: fmt.Sprintf("unexpected message type 0x%02X during COPY from stdin", msgType(msg))})
		}
	}
}

// copyError gives a splitter error its SQLSTATE.
func copyError(err error) error {
	if ce, ok := err.(*copyrows.Error); ok {
		return &planner.Error{Code: ce.Code, Message: fmt.Sprintf("%s (COPY line %d)", ce.Message, ce.Line), Hint: ce.Hint}
	}
	return err
}

func msgType(msg pgproto3.FrontendMessage) byte {
	b, err := msg.Encode(nil)
	if err != nil || len(b) == 0 {
		return 0
	}
	return b[0]
}

// copySplitter builds the splitter that finds each row's sharding column.
func (s *session) copySplitter(ctx context.Context, cp *planner.Copy, shard string) (*copyrows.Splitter, error) {
	columns := cp.Columns
	if len(columns) == 0 {
		var err error
		if columns, err = s.tableColumns(ctx, cp, shard); err != nil {
			return nil, err
		}
	}
	key := slices.Index(columns, cp.Table.Column)
	if key < 0 {
		return nil, &planner.Error{Code: codeFeatureNotSupp, Message: fmt.Sprintf("COPY into sharded table %s must include its sharding column %s", cp.Table.Name, cp.Table.Column)}
	}
	opts := copyrows.TextOptions()
	if cp.Format == "csv" {
		opts = copyrows.CSVOptions()
	}
	if cp.Delimiter != "" {
		opts.Delimiter = cp.Delimiter[0]
	}
	if cp.Quote != "" {
		opts.Quote = cp.Quote[0]
	}
	if cp.Escape != "" {
		opts.Escape = cp.Escape[0]
	}
	if cp.Null != nil {
		opts.Null = *cp.Null
	}
	opts.Header = cp.Header
	opts.ForceNull = slices.Contains(cp.ForceNull, cp.Table.Column)
	opts.ForceNotNull = slices.Contains(cp.ForceNotNull, cp.Table.Column)
	return copyrows.NewSplitter(opts, key)
}

// tableColumns reads a table's columns, in order, from shard.
func (s *session) tableColumns(ctx context.Context, cp *planner.Copy, shard string) ([]string, error) {
	b, release, err := s.copyBackend(ctx, shard)
	if err != nil {
		return nil, err
	}
	defer release()
	var cols []string
	err = b.exec(ctx, "SELECT attname FROM pg_attribute WHERE attrelid = "+quoteLiteral(cp.Table.Name)+"::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
		func(batch *engine.Batch) error {
			for _, r := range batch.Rows {
				cols = append(cols, string(r[0]))
			}
			return nil
		}, discardTag)
	return cols, err
}

// startCopyIn sends COPY FROM STDIN to b and waits for its CopyInResponse.
func startCopyIn(ctx context.Context, b *backend, sql string) (*pgproto3.CopyInResponse, error) {
	if err := b.sendQuery(sql); err != nil {
		return nil, err
	}
	var failed error
	for {
		msg, err := b.receive(ctx)
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyInResponse:
			return &pgproto3.CopyInResponse{OverallFormat: m.OverallFormat, ColumnFormatCodes: slices.Clone(m.ColumnFormatCodes)}, nil
		case *pgproto3.ErrorResponse:
			failed = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			return nil, failed
		}
	}
}

// endCopyIn sends the last data and CopyDone to every shard and returns the
// rows copied: their sum, or for a copy on every shard one shard's count.
func (s *session) endCopyIn(ctx context.Context, targets map[string]*copyTarget, order []string, split bool) (int64, error) {
	var failed error
	for _, shard := range order {
		tg := targets[shard]
		if err := tg.send(ctx); err != nil && failed == nil {
			failed = err
		}
		if tg.ended {
			continue
		}
		fe := tg.b.pg.Frontend()
		fe.Send(&pgproto3.CopyDone{})
		if err := tg.b.flush(); err != nil && failed == nil {
			failed = err
		}
	}
	var total int64
	for _, shard := range order {
		if targets[shard].ended {
			continue
		}
		n, err := finishCopyIn(ctx, targets[shard].b)
		if err != nil && failed == nil {
			failed = err
		}
		if split || total == 0 {
			total += n
		}
	}
	return total, failed
}

// finishCopyIn reads a shard's answer to the end of its COPY.
func finishCopyIn(ctx context.Context, b *backend) (int64, error) {
	var (
		n      int64
		failed error
	)
	for {
		msg, err := b.receive(ctx)
		if err != nil {
			return 0, err
		}
		switch m := msg.(type) {
		case *pgproto3.CommandComplete:
			n = copyCount(m.CommandTag)
		case *pgproto3.ErrorResponse:
			failed = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			return n, failed
		}
	}
}

// abortCopy fails the COPY on every shard that started it.
func (s *session) abortCopy(ctx context.Context, targets map[string]*copyTarget, reason string) {
	if reason == "" {
		reason = "aborted by shardgate"
	}
	for _, tg := range targets {
		if tg.ended {
			continue
		}
		fe := tg.b.pg.Frontend()
		fe.Send(&pgproto3.CopyFail{Message: reason})
		if tg.b.flush() == nil {
			_, _ = finishCopyIn(ctx, tg.b)
		}
	}
}
