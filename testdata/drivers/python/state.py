"""The shardgate session-state scenario for psycopg2, run by internal/drivertest.

It uses what a session leaves on its backend connection: a temporary table,
a server-side cursor WITH HOLD (psycopg2's named cursor with withhold=True),
LISTEN/NOTIFY with the notification read while the client is idle
(select() on the connection, then poll()), SQL PREPARE/EXECUTE, a large
object through libpq's lo_* fastpath calls (psycopg2's lobject), and an
asyncpg-style pool reset. The connection comes from the PG* environment
variables. Every step prints "ok <step>"; the last line is "ok all".
"""

import select
import sys

import psycopg2

DATA = bytes(range(256)) * 400  # several lo_write calls


class StepError(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise StepError(msg)


def one(cur, sql, args=None):
    cur.execute(sql, args)
    return cur.fetchone()[0]


def main():
    conn = psycopg2.connect("")
    other = psycopg2.connect("")
    other.autocommit = True
    cur = conn.cursor()

    step = "temp-table"
    cur.execute("CREATE TEMPORARY TABLE scratch (k int PRIMARY KEY, v text)")
    cur.execute("INSERT INTO scratch SELECT g, 'v' || g FROM generate_series(1, 50) g")
    conn.commit()
    for _ in range(3):
        check(one(cur, "SELECT count(*) FROM scratch") == 50, "temporary table lost rows")
        conn.commit()
    print("ok " + step, flush=True)

    step = "cursor-with-hold"
    named = conn.cursor(name="held", withhold=True)
    named.itersize = 10
    named.execute("SELECT k FROM scratch ORDER BY k")
    first = named.fetchmany(5)
    conn.commit()  # a WITH HOLD cursor outlives its transaction
    rest = named.fetchall()
    named.close()
    conn.commit()
    check([r[0] for r in first + rest] == list(range(1, 51)), "cursor rows")
    print("ok " + step, flush=True)

    step = "sql-prepare"
    cur.execute("PREPARE plus_one (int) AS SELECT $1 + 1")
    check(one(cur, "EXECUTE plus_one (41)") == 42, "EXECUTE")
    cur.execute("DEALLOCATE plus_one")
    conn.commit()
    print("ok " + step, flush=True)

    step = "large-object"
    lob = conn.lobject(0, "wb")
    oid = lob.oid
    lob.write(DATA)
    lob.close()
    conn.commit()
    lob = conn.lobject(oid, "rb")
    back = lob.read()
    lob.close()
    conn.lobject(oid).unlink()
    conn.commit()
    check(back == DATA, "large object read back %d bytes, wrote %d" % (len(back), len(DATA)))
    print("ok " + step, flush=True)

    step = "listen-notify"
    conn.autocommit = True
    cur.execute("LISTEN events")
    other.cursor().execute("NOTIFY events, 'from other'")
    got = []
    for _ in range(50):
        if select.select([conn], [], [], 0.2) != ([], [], []):
            conn.poll()
            got.extend(n.payload for n in conn.notifies)
            del conn.notifies[:]
        if got:
            break
    check(got == ["from other"], "notifications %r" % got)
    cur.execute("UNLISTEN *")
    print("ok " + step, flush=True)

    step = "pool-reset"
    check(one(cur, "SELECT pg_advisory_lock(7) IS NOT NULL") is True, "advisory lock")
    cur.execute("DROP TABLE scratch")
    cur.execute("SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL")
    check(one(cur, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()") == 0,
          "advisory locks left")
    print("ok " + step, flush=True)

    conn.close()
    other.close()
    print("ok all", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the last "ok" line says which step was next
        print("FAIL %s: %s" % (type(e).__name__, e), flush=True)
        sys.exit(1)
