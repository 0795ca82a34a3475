package drivertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgtype"
)

// RunPgx runs the scenario with pgx v5 on one connection to dsn (a URL or
// keyword/value string), printing "ok <step>" lines to w, and returns the
// first failure.
//
// Protocol features it exercises: the extended protocol with named
// statements (pgx's statement cache, QueryExecModeCacheStatement: Parse and
// Describe once per SQL text, then Bind/Execute with binary parameters and
// results); an explicitly prepared statement executed by name; a pipelined
// Batch (Bind/Execute x20, one Sync); the simple protocol for Exec without
// arguments (DDL, SET, BEGIN/COMMIT/ROLLBACK, pg_sleep); pgx's nested
// transaction for the savepoint (SAVEPOINT sp_1 / ROLLBACK TO SAVEPOINT
// sp_1); a CancelRequest on a second connection when the context is
// cancelled; and COPY FROM STDIN (CSV) / COPY TO STDOUT through pgconn.
//
// pgx's own default on context cancellation only sets a deadline on the
// socket, which breaks the connection without a CancelRequest; the scenario
// installs pgconn.CancelRequestContextWatcherHandler so that cancelling really
// cancels the statement and the connection stays usable.
func RunPgx(ctx context.Context, w io.Writer, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("pgx: %w", err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: cancelLimit}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("pgx: connect: %w", err)
	}
	defer conn.Close(context.Background())

	s := &stepper{w: w}
	s.step("schema", func() error {
		for _, q := range schemaStatements {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	s.step("insert-prepared", func() error {
		if _, err := conn.Prepare(ctx, "insert_account", insertAccount); err != nil {
			return err
		}
		for id := 1; id <= 100; id++ {
			if _, err := conn.Exec(ctx, "insert_account", id, fmt.Sprintf("owner %d", id), "1000.00"); err != nil {
				return fmt.Errorf("account %d: %w", id, err)
			}
		}
		b := &pgx.Batch{}
		for id := 101; id <= 120; id++ {
			b.Queue(insertAccount, id, fmt.Sprintf("owner %d", id), "1000.00")
		}
		br := conn.SendBatch(ctx, b)
		for id := 101; id <= 120; id++ {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return fmt.Errorf("batch insert of account %d: %w", id, err)
			}
			if tag.RowsAffected() != 1 {
				br.Close()
				return fmt.Errorf("batch insert of account %d: %s", id, tag)
			}
		}
		return br.Close()
	})
	s.step("select-by-key", func() error {
		var owner string
		var n pgtype.Numeric
		if err := conn.QueryRow(ctx, selectAccount, 42).Scan(&owner, &n); err != nil {
			return err
		}
		balance, err := numericText(n)
		if err != nil {
			return err
		}
		if owner != "owner 42" || balance != "1000.00" {
			return fmt.Errorf("account 42 is (%q, %s), want (\"owner 42\", 1000.00)", owner, balance)
		}
		return nil
	})
	s.step("select-scatter", func() error {
		rows, _ := conn.Query(ctx, "select id from accounts")
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		return checkIDs(ids, 120)
	})
	balance := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}, id int) (string, error) {
		var n pgtype.Numeric
		if err := q.QueryRow(ctx, selectBalance, id).Scan(&n); err != nil {
			return "", err
		}
		return numericText(n)
	}
	s.step("rollback", func() error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "update accounts set balance = 0 where id = $1", 1); err != nil {
			return err
		}
		if b, err := balance(tx, 1); err != nil || b != "0.00" {
			return fmt.Errorf("in the transaction account 1 has %s (%v), want 0.00", b, err)
		}
		if err := tx.Rollback(ctx); err != nil {
			return err
		}
		if b, err := balance(conn, 1); err != nil || b != "1000.00" {
			return fmt.Errorf("after ROLLBACK account 1 has %s (%v), want 1000.00", b, err)
		}
		return nil
	})
	s.step("multi-shard-commit", func() error {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for to := 2; to <= 11; to++ {
				if _, err := tx.Exec(ctx, debitAccount, 1, "10.00"); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, creditAccount, to, "10.00"); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, insertLedger, to, 1, "10.00", "transfer from 1"); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		balances := map[int64]string{}
		rows, _ := conn.Query(ctx, transferAccounts)
		var id int64
		var n pgtype.Numeric
		_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error {
			b, err := numericText(n)
			balances[id] = b
			return err
		})
		if err != nil {
			return err
		}
		if err := checkTransfers(balances); err != nil {
			return err
		}
		for to := 2; to <= 11; to++ {
			rows, _ := conn.Query(ctx, selectLedger, to)
			n := 0
			var lid int64
			var amount string
			var num pgtype.Numeric
			_, err := pgx.ForEachRow(rows, []any{&lid, &num}, func() error {
				n++
				var err error
				amount, err = numericText(num)
				return err
			})
			if err != nil {
				return err
			}
			if n != 1 || lid != 1 || amount != "10.00" {
				return fmt.Errorf("ledger of account %d: %d rows, last (%d, %s), want one row (1, 10.00)", to, n, lid, amount)
			}
		}
		return nil
	})
	s.step("savepoint", func() error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, insertLedger, 50, 1, "5.00", "savepoint"); err != nil {
			return err
		}
		sp, err := tx.Begin(ctx) // SAVEPOINT sp_1
		if err != nil {
			return err
		}
		_, err = sp.Exec(ctx, insertLedger, 50, 1, "5.00", "savepoint")
		if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "23505" {
			return fmt.Errorf("duplicate insert: got %v, want SQLSTATE 23505", err)
		}
		if err := sp.Rollback(ctx); err != nil { // ROLLBACK TO SAVEPOINT sp_1
			return err
		}
		if _, err := tx.Exec(ctx, insertLedger, 50, 2, "5.00", "savepoint"); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		rows, _ := conn.Query(ctx, "select id from ledger where account_id = $1", 50)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		return checkIDs(ids, 2)
	})
	s.step("set-show", func() error {
		show := func(name string) (string, error) {
			var v string
			err := conn.QueryRow(ctx, "show "+name).Scan(&v)
			return v, err
		}
		if _, err := conn.Exec(ctx, "set application_name = '"+appName+"'"); err != nil {
			return err
		}
		if v, err := show("application_name"); err != nil || v != appName {
			return fmt.Errorf("application_name is %q (%v), want %q", v, err, appName)
		}
		if _, err := conn.Exec(ctx, "set statement_timeout = '7s'"); err != nil {
			return err
		}
		if v, err := show("statement_timeout"); err != nil || v != "7s" {
			return fmt.Errorf("statement_timeout is %q (%v), want 7s", v, err)
		}
		_, err := conn.Exec(ctx, "reset statement_timeout")
		return err
	})
	s.step("cancel", func() error {
		qctx, cancel := context.WithCancel(ctx)
		defer cancel()
		timer := time.AfterFunc(cancelAfter, cancel)
		defer timer.Stop()
		start := time.Now()
		_, err := conn.Exec(qctx, "select pg_sleep(20)")
		took := time.Since(start)
		if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "57014" {
			return fmt.Errorf("pg_sleep(20): got %v after %v, want SQLSTATE 57014", err, took)
		}
		if took > cancelLimit {
			return fmt.Errorf("cancel took %v", took)
		}
		var one int
		if err := conn.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
			return fmt.Errorf("select 1 after cancel: %d, %v", one, err)
		}
		return nil
	})
	s.step("copy", func() error {
		pc := conn.PgConn()
		tag, err := pc.CopyFrom(ctx, strings.NewReader(eventsCSV()), "copy events (id, payload) from stdin (format csv)")
		if err != nil {
			return err
		}
		if tag.RowsAffected() != eventCount {
			return fmt.Errorf("COPY FROM: %s, want %d rows", tag, eventCount)
		}
		var out bytes.Buffer
		if _, err := pc.CopyTo(ctx, &out, "copy events to stdout"); err != nil {
			return err
		}
		if err := checkCopyOut(out.Bytes()); err != nil {
			return err
		}
		out.Reset()
		if _, err := pc.CopyTo(ctx, &out, "copy (select id, payload from events where id = 5) to stdout"); err != nil {
			return err
		}
		if out.String() != "5\tevent 5\n" {
			return fmt.Errorf("COPY (select ... where id = 5) TO STDOUT: %q, want %q", out.String(), "5\tevent 5\n")
		}
		var payload string
		if err := conn.QueryRow(ctx, "select payload from events where id = $1", quotedEventID).Scan(&payload); err != nil {
			return err
		}
		if payload != quotedEventPayload {
			return fmt.Errorf("event %d payload %q, want %q", quotedEventID, payload, quotedEventPayload)
		}
		return nil
	})
	return s.done()
}

// numericText renders a numeric(12,2) that pgx decoded from the binary format
// as its text form ("1000.00"). Scanning into a string instead would lose the
// scale of zero: binary 0.00 becomes "0".
func numericText(n pgtype.Numeric) (string, error) {
	if !n.Valid || n.NaN || n.InfinityModifier != pgtype.Finite {
		return "", fmt.Errorf("numeric %+v is not a finite number", n)
	}
	v := new(big.Int).Set(n.Int)
	ten := big.NewInt(10)
	for e := n.Exp + 2; e != 0; {
		if e > 0 {
			v.Mul(v, ten)
			e--
			continue
		}
		var r big.Int
		if v.QuoRem(v, ten, &r); r.Sign() != 0 {
			return "", fmt.Errorf("numeric %v e%d has more than two decimals", n.Int, n.Exp)
		}
		e++
	}
	if !v.IsInt64() {
		return "", fmt.Errorf("numeric %v e%d is out of range", n.Int, n.Exp)
	}
	c := v.Int64()
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100), nil
}
