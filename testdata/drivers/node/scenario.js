// The shardgate driver scenario for node-postgres (pg), run by
// internal/drivertest with NODE_PATH pointing at the packages installed from
// package-lock.json. The connection comes from PGHOST, PGPORT, PGDATABASE,
// PGUSER, PGPASSWORD and PGSSLMODE, which pg reads itself.
//
// Protocol features it exercises: the simple protocol for queries without
// parameters (DDL, BEGIN/COMMIT/ROLLBACK, SAVEPOINT, SET/SHOW); the extended
// protocol for parameterized queries (unnamed statement: Parse/Bind/Describe
// portal/Execute/Sync in one round trip, text parameters); a named prepared
// statement (query config `name`: Parse "insert-account" once per connection,
// then only Bind/Execute); a CancelRequest on a new connection with the
// client's processID and secretKey (pg.Connection#cancel, which
// Client#cancel uses too); and COPY FROM STDIN (CSV) / COPY TO STDOUT through
// pg-copy-streams.
'use strict'

const pg = require('pg')
const { from: copyFrom, to: copyTo } = require('pg-copy-streams')
const { pipeline } = require('node:stream/promises')
const { Readable, Writable } = require('node:stream')

const APP_NAME = 'shardgate-drivertest'
const QUOTED_EVENT_ID = 7
const QUOTED_EVENT_PAYLOAD = 'event 7, "quoted"'
const EVENT_COUNT = 1000

class StepError extends Error {}

function check(cond, msg) {
  if (!cond) throw new StepError(msg)
}

// cents parses a numeric(12,2) in text form, which pg returns for numeric.
function cents(s) {
  check(/^-?\d+\.\d\d$/.test(s), `numeric ${JSON.stringify(s)} does not have two decimals`)
  return BigInt(s.replace('.', ''))
}

function checkIDs(ids, n) {
  const sorted = ids.map(Number).sort((a, b) => a - b)
  check(sorted.length === n, `got ${sorted.length} ids, want ${n}`)
  sorted.forEach((id, i) => check(id === i + 1, `sorted ids[${i}] = ${id}, want ${i + 1}`))
}

function eventPayload(id) {
  return id === QUOTED_EVENT_ID ? QUOTED_EVENT_PAYLOAD : `event ${id}`
}

function csvField(s) {
  return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s
}

async function sqlState(promise) {
  try {
    await promise
  } catch (err) {
    return err.code
  }
  return null
}

// sendCancel sends a CancelRequest for client's running statement on a new
// connection, as Client#cancel does (without its deprecated activeQuery
// check), and resolves when the server has closed that connection.
function sendCancel(client) {
  return new Promise((resolve, reject) => {
    const con = new pg.Connection()
    con.on('error', reject)
    con.on('end', resolve)
    con.on('connect', () => con.cancel(client.processID, client.secretKey))
    if (client.host && client.host.startsWith('/')) {
      con.connect(`${client.host}/.s.PGSQL.${client.port}`)
    } else {
      con.connect(client.port, client.host)
    }
  })
}

async function copyOut(client, sql) {
  const chunks = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(chunk)
      cb()
    },
  })
  await pipeline(client.query(copyTo(sql)), sink)
  return Buffer.concat(chunks).toString('utf8')
}

const steps = {
  async schema(c) {
    for (const q of [
      'drop table if exists ledger',
      'drop table if exists accounts',
      'drop table if exists events',
      'create table accounts (id bigint primary key, owner text not null, balance numeric(12,2) not null)',
      'create table ledger (account_id bigint not null, id bigint not null, amount numeric(12,2) not null, note text, primary key (account_id, id))',
      'create table events (id bigint primary key, payload text)',
    ]) {
      await c.query(q)
    }
  },

  async 'insert-prepared'(c) {
    for (let id = 1; id <= 100; id++) {
      const r = await c.query({
        name: 'insert-account',
        text: 'insert into accounts (id, owner, balance) values ($1, $2, $3)',
        values: [id, `owner ${id}`, '1000.00'],
      })
      check(r.rowCount === 1, `insert of account ${id}: rowCount ${r.rowCount}`)
    }
  },

  async 'select-by-key'(c) {
    const r = await c.query('select owner, balance from accounts where id = $1', [42])
    check(r.rows.length === 1, `account 42: ${r.rows.length} rows`)
    const { owner, balance } = r.rows[0]
    check(owner === 'owner 42' && balance === '1000.00', `account 42 is (${owner}, ${balance}), want (owner 42, 1000.00)`)
  },

  async 'select-scatter'(c) {
    const r = await c.query('select id from accounts')
    checkIDs(
      r.rows.map((row) => row.id),
      100,
    )
  },

  async rollback(c) {
    const balance = async () => (await c.query('select balance from accounts where id = $1', [1])).rows[0].balance
    await c.query('begin')
    try {
      await c.query('update accounts set balance = 0 where id = $1', [1])
      const b = await balance()
      check(b === '0.00', `in the transaction account 1 has ${b}, want 0.00`)
    } finally {
      await c.query('rollback')
    }
    const b = await balance()
    check(b === '1000.00', `after ROLLBACK account 1 has ${b}, want 1000.00`)
  },

  async 'multi-shard-commit'(c) {
    await c.query('begin')
    try {
      for (let to = 2; to <= 11; to++) {
        await c.query('update accounts set balance = balance - $2 where id = $1', [1, '10.00'])
        await c.query('update accounts set balance = balance + $2 where id = $1', [to, '10.00'])
        await c.query('insert into ledger (account_id, id, amount, note) values ($1, $2, $3, $4)', [
          to,
          1,
          '10.00',
          'transfer from 1',
        ])
      }
      await c.query('commit')
    } catch (err) {
      await c.query('rollback')
      throw err
    }
    const r = await c.query('select id, balance from accounts where id in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)')
    check(r.rows.length === 11, `got ${r.rows.length} accounts, want 11`)
    const sum = r.rows.reduce((s, row) => s + cents(row.balance), 0n)
    check(sum === 1100000n, `balances of accounts 1..11 sum to ${sum} cents, want 1100000`)
    const one = r.rows.find((row) => row.id === '1')
    check(one && one.balance === '900.00', `account 1 has ${one && one.balance}, want 900.00`)
    for (let to = 2; to <= 11; to++) {
      const l = await c.query('select id, amount from ledger where account_id = $1', [to])
      check(
        l.rows.length === 1 && l.rows[0].id === '1' && l.rows[0].amount === '10.00',
        `ledger of account ${to}: ${JSON.stringify(l.rows)}, want one row (1, 10.00)`,
      )
    }
  },

  async savepoint(c) {
    const insert = 'insert into ledger (account_id, id, amount, note) values ($1, $2, $3, $4)'
    await c.query('begin')
    try {
      await c.query(insert, [50, 1, '5.00', 'savepoint'])
      await c.query('savepoint s1')
      const code = await sqlState(c.query(insert, [50, 1, '5.00', 'savepoint']))
      check(code === '23505', `duplicate insert: SQLSTATE ${code}, want 23505`)
      await c.query('rollback to savepoint s1')
      await c.query(insert, [50, 2, '5.00', 'savepoint'])
      await c.query('commit')
    } catch (err) {
      await c.query('rollback')
      throw err
    }
    const r = await c.query('select id from ledger where account_id = $1', [50])
    checkIDs(
      r.rows.map((row) => row.id),
      2,
    )
  },

  async 'set-show'(c) {
    await c.query(`set application_name = '${APP_NAME}'`)
    const app = (await c.query('show application_name')).rows[0].application_name
    check(app === APP_NAME, `application_name is ${app}, want ${APP_NAME}`)
    await c.query("set statement_timeout = '7s'")
    const st = (await c.query('show statement_timeout')).rows[0].statement_timeout
    check(st === '7s', `statement_timeout is ${st}, want 7s`)
    await c.query('reset statement_timeout')
  },

  async cancel(c) {
    const start = Date.now()
    const sleep = sqlState(c.query('select pg_sleep(20)'))
    await new Promise((resolve) => setTimeout(resolve, 300))
    await sendCancel(c)
    const code = await sleep
    const took = Date.now() - start
    check(code === '57014', `pg_sleep(20): SQLSTATE ${code} after ${took} ms, want 57014`)
    check(took < 10000, `cancel took ${took} ms`)
    const one = (await c.query('select 1 as one')).rows[0].one
    check(one === 1, `select 1 after cancel: ${one}`)
  },

  async copy(c) {
    const lines = []
    for (let id = 1; id <= EVENT_COUNT; id++) {
      lines.push(`${id},${csvField(eventPayload(id))}\n`)
    }
    const sink = c.query(copyFrom('copy events (id, payload) from stdin (format csv)'))
    await pipeline(Readable.from(lines), sink)
    check(sink.rowCount === EVENT_COUNT, `COPY FROM: ${sink.rowCount} rows, want ${EVENT_COUNT}`)

    const all = await copyOut(c, 'copy events to stdout')
    const n = all.split('\n').length - 1
    check(n === EVENT_COUNT, `COPY events TO STDOUT: ${n} lines, want ${EVENT_COUNT}`)
    const quoted = `${QUOTED_EVENT_ID}\t${QUOTED_EVENT_PAYLOAD}\n`
    check(all.includes(quoted), `COPY events TO STDOUT lacks the line ${JSON.stringify(quoted)}`)

    const five = await copyOut(c, 'copy (select id, payload from events where id = 5) to stdout')
    check(five === '5\tevent 5\n', `COPY (select ... where id = 5) TO STDOUT: ${JSON.stringify(five)}`)

    const r = await c.query('select payload from events where id = $1', [QUOTED_EVENT_ID])
    check(
      r.rows.length === 1 && r.rows[0].payload === QUOTED_EVENT_PAYLOAD,
      `event ${QUOTED_EVENT_ID} payload ${JSON.stringify(r.rows)}, want ${JSON.stringify(QUOTED_EVENT_PAYLOAD)}`,
    )
  },
}

async function main() {
  const client = new pg.Client()
  await client.connect()
  let step = 'connect'
  try {
    for (const [name, run] of Object.entries(steps)) {
      step = name
      await run(client)
      console.log(`ok ${name}`)
    }
    console.log('ok all')
  } catch (err) {
    const code = err.code ? ` (SQLSTATE ${err.code})` : ''
    console.error(`FAIL ${step}: ${err instanceof StepError ? err.message : err.stack}${code}`)
    process.exitCode = 1
  } finally {
    await client.end()
  }
}

main().catch((err) => {
  console.error(`FAIL connect: ${err.stack}`)
  process.exitCode = 1
})
