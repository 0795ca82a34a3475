// The shardgate session-state scenario for node-postgres (pg), run by
// internal/drivertest. It uses what a session leaves on its backend
// connection: a temporary table, a cursor WITH HOLD (plain SQL), SQL
// PREPARE/EXECUTE, LISTEN/NOTIFY with the notification arriving while the
// client is idle (pg's 'notification' event), large objects through the
// server-side SQL functions, and an asyncpg-style pool reset. The
// connection comes from the PG* environment variables. Every step prints
// "ok <step>"; the last line is "ok all".
'use strict'

const pg = require('pg')

class StepError extends Error {}

function check(cond, msg) {
  if (!cond) throw new StepError(msg)
}

async function one(client, sql, params) {
  const res = await client.query(sql, params)
  return res.rows[0][Object.keys(res.rows[0])[0]]
}

async function main() {
  const client = new pg.Client()
  const other = new pg.Client()
  await client.connect()
  await other.connect()

  await client.query('CREATE TEMPORARY TABLE scratch (k int PRIMARY KEY, v text)')
  await client.query("INSERT INTO scratch SELECT g, 'v' || g FROM generate_series(1, 50) g")
  for (let i = 0; i < 3; i++) {
    check(Number(await one(client, 'SELECT count(*) FROM scratch')) === 50, 'temporary table lost rows')
  }
  // The parameterized (extended protocol) form sees it too.
  check((await one(client, 'SELECT v FROM scratch WHERE k = $1', [7])) === 'v7', 'temporary table by parameter')
  console.log('ok temp-table')

  await client.query('BEGIN')
  await client.query('DECLARE held CURSOR WITH HOLD FOR SELECT k FROM scratch ORDER BY k')
  await client.query('COMMIT')
  const first = (await client.query('FETCH 20 FROM held')).rows
  const rest = (await client.query('FETCH ALL FROM held')).rows
  await client.query('CLOSE held')
  check(first.concat(rest).map((r) => r.k).join() === Array.from({ length: 50 }, (_, i) => i + 1).join(), 'cursor rows')
  console.log('ok cursor-with-hold')

  await client.query('PREPARE plus_one (int) AS SELECT $1 + 1 AS n')
  check((await one(client, 'EXECUTE plus_one (41)')) === 42, 'EXECUTE')
  await client.query('DEALLOCATE plus_one')
  console.log('ok sql-prepare')

  const payload = Buffer.alloc(100000, 7)
  await client.query('BEGIN')
  const oid = await one(client, 'SELECT lo_from_bytea(0, $1)', [payload])
  await client.query('COMMIT')
  const back = await one(client, 'SELECT lo_get($1)', [oid])
  await client.query('SELECT lo_unlink($1)', [oid])
  check(Buffer.compare(back, payload) === 0, 'large object read back differs')
  console.log('ok large-object')

  const notified = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new StepError('no notification in 10s')), 10000)
    client.on('notification', (n) => {
      clearTimeout(timer)
      resolve(n)
    })
  })
  await client.query('LISTEN events')
  await other.query("NOTIFY events, 'from other'")
  const n = await notified
  check(n.channel === 'events' && n.payload === 'from other', `notification ${JSON.stringify(n)}`)
  await client.query('UNLISTEN *')
  console.log('ok listen-notify')

  check((await one(client, 'SELECT pg_advisory_lock(7) IS NOT NULL')) === true, 'advisory lock')
  await client.query('DROP TABLE scratch')
  await client.query('SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL')
  check(Number(await one(client, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")) === 0,
    'advisory locks left')
  console.log('ok pool-reset')

  await client.end()
  await other.end()
  console.log('ok all')
}

main().catch((err) => {
  console.log(`FAIL ${err.message}`)
  process.exit(1)
})
