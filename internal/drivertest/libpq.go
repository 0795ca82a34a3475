package drivertest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lib/pq"
)

// RunLibPQ runs the scenario with lib/pq through database/sql, printing
// "ok <step>" lines to w, and returns the first failure. Session state (SET,
// prepared statements, transactions) needs one connection, so the steps run
// on one *sql.Conn; the cancel step uses a second one.
//
// Protocol features it exercises: a named prepared statement (Conn.Prepare:
// Parse "1" + Describe once, then Bind/Execute with text parameters); queries
// with arguments through the unnamed statement (Parse/Describe/Sync, then
// Bind/Execute/Sync: two round trips); the simple protocol for statements
// without arguments; BEGIN/COMMIT/ROLLBACK from database/sql's Tx; plain
// SAVEPOINT statements; a CancelRequest when the context is cancelled; and
// COPY FROM STDIN in text format through a prepared "copy ... from stdin"
// inside a transaction.
//
// Two lib/pq limits shape the scenario: after cancelling a statement lib/pq
// closes that connection on purpose (database/sql then discards it), so
// "usable afterwards" means the pool hands out a working connection; and lib/pq
// does not support COPY TO STDOUT, so the copy step checks the table with
// keyed and scatter SELECTs instead.
func RunLibPQ(ctx context.Context, w io.Writer, dsn string) error {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return fmt.Errorf("lib/pq: %w", err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("lib/pq: connect: %w", err)
	}
	defer conn.Close()

	s := &stepper{w: w}
	s.step("schema", func() error {
		for _, q := range schemaStatements {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	s.step("insert-prepared", func() error {
		stmt, err := conn.PrepareContext(ctx, insertAccount)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for id := 1; id <= 100; id++ {
			if _, err := stmt.ExecContext(ctx, id, fmt.Sprintf("owner %d", id), "1000.00"); err != nil {
				return fmt.Errorf("account %d: %w", id, err)
			}
		}
		return stmt.Close()
	})
	s.step("select-by-key", func() error {
		var owner, balance string
		if err := conn.QueryRowContext(ctx, selectAccount, 42).Scan(&owner, &balance); err != nil {
			return err
		}
		if owner != "owner 42" || balance != "1000.00" {
			return fmt.Errorf("account 42 is (%q, %s), want (\"owner 42\", 1000.00)", owner, balance)
		}
		return nil
	})
	selectIDs := func(q string, args ...any) ([]int64, error) {
		rows, err := conn.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		return ids, rows.Err()
	}
	s.step("select-scatter", func() error {
		ids, err := selectIDs("select id from accounts")
		if err != nil {
			return err
		}
		return checkIDs(ids, 100)
	})
	balance := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}, id int) (string, error) {
		var b string
		err := q.QueryRowContext(ctx, selectBalance, id).Scan(&b)
		return b, err
	}
	s.step("rollback", func() error {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "update accounts set balance = 0 where id = $1", 1); err != nil {
			return err
		}
		if b, err := balance(tx, 1); err != nil || b != "0.00" {
			return fmt.Errorf("in the transaction account 1 has %s (%v), want 0.00", b, err)
		}
		if err := tx.Rollback(); err != nil {
			return err
		}
		if b, err := balance(conn, 1); err != nil || b != "1000.00" {
			return fmt.Errorf("after ROLLBACK account 1 has %s (%v), want 1000.00", b, err)
		}
		return nil
	})
	s.step("multi-shard-commit", func() error {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for to := 2; to <= 11; to++ {
			if _, err := tx.ExecContext(ctx, debitAccount, 1, "10.00"); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, creditAccount, to, "10.00"); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, insertLedger, to, 1, "10.00", "transfer from 1"); err != nil {
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		rows, err := conn.QueryContext(ctx, transferAccounts)
		if err != nil {
			return err
		}
		defer rows.Close()
		balances := map[int64]string{}
		for rows.Next() {
			var id int64
			var b string
			if err := rows.Scan(&id, &b); err != nil {
				return err
			}
			balances[id] = b
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := checkTransfers(balances); err != nil {
			return err
		}
		for to := 2; to <= 11; to++ {
			var lid int64
			var amount string
			if err := conn.QueryRowContext(ctx, selectLedger, to).Scan(&lid, &amount); err != nil {
				return fmt.Errorf("ledger of account %d: %w", to, err)
			}
			if lid != 1 || amount != "10.00" {
				return fmt.Errorf("ledger of account %d: (%d, %s), want (1, 10.00)", to, lid, amount)
			}
		}
		return nil
	})
	s.step("savepoint", func() error {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, insertLedger, 50, 1, "5.00", "savepoint"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "savepoint s1"); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, insertLedger, 50, 1, "5.00", "savepoint")
		if pqErr := (*pq.Error)(nil); !errors.As(err, &pqErr) || pqErr.Code != "23505" {
			return fmt.Errorf("duplicate insert: got %v, want SQLSTATE 23505", err)
		}
		if _, err := tx.ExecContext(ctx, "rollback to savepoint s1"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, insertLedger, 50, 2, "5.00", "savepoint"); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		ids, err := selectIDs("select id from ledger where account_id = $1", 50)
		if err != nil {
			return err
		}
		return checkIDs(ids, 2)
	})
	s.step("set-show", func() error {
		show := func(name string) (string, error) {
			var v string
			err := conn.QueryRowContext(ctx, "show "+name).Scan(&v)
			return v, err
		}
		if _, err := conn.ExecContext(ctx, "set application_name = '"+appName+"'"); err != nil {
			return err
		}
		if v, err := show("application_name"); err != nil || v != appName {
			return fmt.Errorf("application_name is %q (%v), want %q", v, err, appName)
		}
		if _, err := conn.ExecContext(ctx, "set statement_timeout = '7s'"); err != nil {
			return err
		}
		if v, err := show("statement_timeout"); err != nil || v != "7s" {
			return fmt.Errorf("statement_timeout is %q (%v), want 7s", v, err)
		}
		_, err := conn.ExecContext(ctx, "reset statement_timeout")
		return err
	})
	s.step("cancel", func() error {
		victim, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer victim.Close()
		qctx, cancel := context.WithCancel(ctx)
		defer cancel()
		timer := time.AfterFunc(cancelAfter, cancel)
		defer timer.Stop()
		start := time.Now()
		_, err = victim.ExecContext(qctx, "select pg_sleep(20)")
		took := time.Since(start)
		if pqErr := (*pq.Error)(nil); !errors.As(err, &pqErr) || pqErr.Code != "57014" {
			return fmt.Errorf("pg_sleep(20): got %v after %v, want SQLSTATE 57014", err, took)
		}
		if took > cancelLimit {
			return fmt.Errorf("cancel took %v", took)
		}
		victim.Close()
		var one int
		if err := db.QueryRowContext(ctx, "select 1").Scan(&one); err != nil || one != 1 {
			return fmt.Errorf("select 1 after cancel: %d, %v", one, err)
		}
		return nil
	})
	s.step("copy", func() error {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		stmt, err := tx.PrepareContext(ctx, "copy events (id, payload) from stdin")
		if err != nil {
			return err
		}
		for id := 1; id <= eventCount; id++ {
			if _, err := stmt.ExecContext(ctx, id, eventPayload(id)); err != nil {
				return fmt.Errorf("copy row %d: %w", id, err)
			}
		}
		res, err := stmt.ExecContext(ctx) // flushes and ends the COPY
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != eventCount {
			return fmt.Errorf("COPY FROM: %d rows (%v), want %d", n, err, eventCount)
		}
		if err := stmt.Close(); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		ids, err := selectIDs("select id from events")
		if err != nil {
			return err
		}
		if err := checkIDs(ids, eventCount); err != nil {
			return err
		}
		for _, id := range []int{5, quotedEventID} {
			var payload string
			if err := conn.QueryRowContext(ctx, "select payload from events where id = $1", id).Scan(&payload); err != nil {
				return err
			}
			if payload != eventPayload(id) {
				return fmt.Errorf("event %d payload %q, want %q", id, payload, eventPayload(id))
			}
		}
		return nil
	})
	return s.done()
}
