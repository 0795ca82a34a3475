"""The shardgate driver scenario for psycopg2, run by internal/drivertest.

The connection comes from PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD and
PGSSLMODE, which libpq (under psycopg2) reads itself.

Protocol features it exercises: psycopg2 speaks only the simple protocol. It
interpolates parameters on the client (so the "prepared" insert is 100 simple
Query messages with literals), and outside autocommit it sends BEGIN before
the first statement of a transaction; commit() and rollback() send COMMIT and
ROLLBACK. Savepoints are plain SQL. cancel() sends a CancelRequest on a new
connection (libpq's PQcancel) from another thread. copy_expert() runs COPY
FROM STDIN (CSV) and COPY TO STDOUT.
"""

import csv
import decimal
import io
import sys
import threading
import time

import psycopg2
import psycopg2.errors

APP_NAME = "shardgate-drivertest"
QUOTED_EVENT_ID = 7
QUOTED_EVENT_PAYLOAD = 'event 7, "quoted"'
EVENT_COUNT = 1000


class StepError(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise StepError(msg)


def check_ids(ids, n):
    ids = sorted(ids)
    check(len(ids) == n, f"got {len(ids)} ids, want {n}")
    for i, v in enumerate(ids):
        check(v == i + 1, f"sorted ids[{i}] = {v}, want {i + 1}")


def event_payload(i):
    return QUOTED_EVENT_PAYLOAD if i == QUOTED_EVENT_ID else f"event {i}"


def fetch_one(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        rows = cur.fetchall()
    check(len(rows) == 1, f"{sql}: {len(rows)} rows, want 1")
    return rows[0]


def fetch_all(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def execute(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.rowcount


def balance(conn, i):
    return fetch_one(conn, "select balance from accounts where id = %s", (i,))[0]


def step_schema(conn):
    for q in (
        "drop table if exists ledger",
        "drop table if exists accounts",
        "drop table if exists events",
        "create table accounts (id bigint primary key, owner text not null, balance numeric(12,2) not null)",
        "create table ledger (account_id bigint not null, id bigint not null, amount numeric(12,2) not null, note text, primary key (account_id, id))",
        "create table events (id bigint primary key, payload text)",
    ):
        execute(conn, q)


def step_insert_prepared(conn):
    with conn.cursor() as cur:
        for i in range(1, 101):
            cur.execute(
                "insert into accounts (id, owner, balance) values (%s, %s, %s)",
                (i, f"owner {i}", decimal.Decimal("1000.00")),
            )
            check(cur.rowcount == 1, f"insert of account {i}: rowcount {cur.rowcount}")


def step_select_by_key(conn):
    owner, bal = fetch_one(conn, "select owner, balance from accounts where id = %s", (42,))
    check(
        owner == "owner 42" and str(bal) == "1000.00",
        f"account 42 is ({owner}, {bal}), want (owner 42, 1000.00)",
    )


def step_select_scatter(conn):
    check_ids([r[0] for r in fetch_all(conn, "select id from accounts")], 100)


def step_rollback(conn):
    conn.autocommit = False
    try:
        execute(conn, "update accounts set balance = 0 where id = %s", (1,))
        b = balance(conn, 1)
        check(str(b) == "0.00", f"in the transaction account 1 has {b}, want 0.00")
    finally:
        conn.rollback()
        conn.autocommit = True
    b = balance(conn, 1)
    check(str(b) == "1000.00", f"after ROLLBACK account 1 has {b}, want 1000.00")


def step_multi_shard_commit(conn):
    ten = decimal.Decimal("10.00")
    conn.autocommit = False
    try:
        for to in range(2, 12):
            execute(conn, "update accounts set balance = balance - %s where id = %s", (ten, 1))
            execute(conn, "update accounts set balance = balance + %s where id = %s", (ten, to))
            execute(
                conn,
                "insert into ledger (account_id, id, amount, note) values (%s, %s, %s, %s)",
                (to, 1, ten, "transfer from 1"),
            )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = True
    rows = fetch_all(conn, "select id, balance from accounts where id in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)")
    check(len(rows) == 11, f"got {len(rows)} accounts, want 11")
    total = sum(b for _, b in rows)
    check(total == decimal.Decimal("11000.00"), f"balances of accounts 1..11 sum to {total}, want 11000.00")
    b1 = dict(rows)[1]
    check(str(b1) == "900.00", f"account 1 has {b1}, want 900.00")
    for to in range(2, 12):
        ledger = fetch_all(conn, "select id, amount from ledger where account_id = %s", (to,))
        check(
            len(ledger) == 1 and ledger[0][0] == 1 and str(ledger[0][1]) == "10.00",
            f"ledger of account {to}: {ledger}, want one row (1, 10.00)",
        )


def step_savepoint(conn):
    insert = "insert into ledger (account_id, id, amount, note) values (%s, %s, %s, %s)"
    five = decimal.Decimal("5.00")
    conn.autocommit = False
    try:
        execute(conn, insert, (50, 1, five, "savepoint"))
        execute(conn, "savepoint s1")
        code = None
        try:
            execute(conn, insert, (50, 1, five, "savepoint"))
        except psycopg2.Error as e:
            code = e.pgcode
        check(code == "23505", f"duplicate insert: SQLSTATE {code}, want 23505")
        execute(conn, "rollback to savepoint s1")
        execute(conn, insert, (50, 2, five, "savepoint"))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = True
    check_ids([r[0] for r in fetch_all(conn, "select id from ledger where account_id = %s", (50,))], 2)


def step_set_show(conn):
    execute(conn, f"set application_name = '{APP_NAME}'")
    (app,) = fetch_one(conn, "show application_name")
    check(app == APP_NAME, f"application_name is {app}, want {APP_NAME}")
    execute(conn, "set statement_timeout = '7s'")
    (st,) = fetch_one(conn, "show statement_timeout")
    check(st == "7s", f"statement_timeout is {st}, want 7s")
    execute(conn, "reset statement_timeout")


def step_cancel(conn):
    timer = threading.Timer(0.3, conn.cancel)
    start = time.monotonic()
    timer.start()
    code = None
    try:
        execute(conn, "select pg_sleep(20)")
    except psycopg2.Error as e:
        code = e.pgcode
    finally:
        timer.join()
    took = time.monotonic() - start
    check(code == "57014", f"pg_sleep(20): SQLSTATE {code} after {took:.1f} s, want 57014")
    check(took < 10, f"cancel took {took:.1f} s")
    (one,) = fetch_one(conn, "select 1")
    check(one == 1, f"select 1 after cancel: {one}")


def step_copy(conn):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for i in range(1, EVENT_COUNT + 1):
        w.writerow([i, event_payload(i)])
    buf.seek(0)
    with conn.cursor() as cur:
        cur.copy_expert("copy events (id, payload) from stdin (format csv)", buf)
        check(cur.rowcount == EVENT_COUNT, f"COPY FROM: {cur.rowcount} rows, want {EVENT_COUNT}")

        out = io.StringIO()
        cur.copy_expert("copy events to stdout", out)
        lines = out.getvalue().splitlines(keepends=True)
        check(len(lines) == EVENT_COUNT, f"COPY events TO STDOUT: {len(lines)} lines, want {EVENT_COUNT}")
        quoted = f"{QUOTED_EVENT_ID}\t{QUOTED_EVENT_PAYLOAD}\n"
        check(quoted in lines, f"COPY events TO STDOUT lacks the line {quoted!r}")

        out = io.StringIO()
        cur.copy_expert("copy (select id, payload from events where id = 5) to stdout", out)
        check(out.getvalue() == "5\tevent 5\n", f"COPY (select ... where id = 5) TO STDOUT: {out.getvalue()!r}")
    (payload,) = fetch_one(conn, "select payload from events where id = %s", (QUOTED_EVENT_ID,))
    check(payload == QUOTED_EVENT_PAYLOAD, f"event {QUOTED_EVENT_ID} payload {payload!r}, want {QUOTED_EVENT_PAYLOAD!r}")


STEPS = [
    ("schema", step_schema),
    ("insert-prepared", step_insert_prepared),
    ("select-by-key", step_select_by_key),
    ("select-scatter", step_select_scatter),
    ("rollback", step_rollback),
    ("multi-shard-commit", step_multi_shard_commit),
    ("savepoint", step_savepoint),
    ("set-show", step_set_show),
    ("cancel", step_cancel),
    ("copy", step_copy),
]


def main():
    try:
        conn = psycopg2.connect("")  # everything from the PG* environment
    except psycopg2.Error as e:
        print(f"FAIL connect: {e}", file=sys.stderr)
        return 1
    # Statements outside the transaction steps run without an implicit BEGIN.
    conn.autocommit = True
    step = None
    try:
        for step, run in STEPS:
            run(conn)
            print(f"ok {step}", flush=True)
        print("ok all", flush=True)
        return 0
    except StepError as e:
        print(f"FAIL {step}: {e}", file=sys.stderr)
    except psycopg2.Error as e:
        print(f"FAIL {step}: {type(e).__name__} (SQLSTATE {e.pgcode}): {e}", file=sys.stderr)
    finally:
        conn.close()
    return 1


if __name__ == "__main__":
    sys.exit(main())
