-- The shardgate driver scenario for psql, run by internal/drivertest as
--   psql -X -q -v ON_ERROR_STOP=1 -f scenario.sql
-- in a scratch working directory (the COPY files go there), with the
-- connection from PGHOST, PGPORT, PGDATABASE, PGUSER and PGSSLMODE.
--
-- Protocol features it exercises: psql sends everything as simple Query
-- messages, one statement each. It has no client-side parameters before
-- psql 16's \bind, and PREPARE/EXECUTE is not for a gateway, so the
-- "insert-prepared" step is 100 plain INSERTs that \gexec generates from a
-- SELECT over generate_series (no table). \copy is COPY FROM STDIN / COPY TO STDOUT. Checks that
-- need several rows (sorting, sums) run on the client in sh and awk, as the
-- scenario forbids cross-shard ORDER BY and aggregates.
--
-- There is no cancel step: psql sends a CancelRequest only on Ctrl-C, which a
-- script run cannot do.
--
-- A failed check echoes FAIL and then runs :fail, a statement that errors, so
-- that ON_ERROR_STOP ends psql with exit status 3.

\set ON_ERROR_STOP on
\pset pager off
\pset tuples_only on
\pset format unaligned
\set fail 'SELECT ''the step above failed''::int;'

-- schema
DROP TABLE IF EXISTS ledger;
DROP TABLE IF EXISTS accounts;
DROP TABLE IF EXISTS events;
CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL);
CREATE TABLE ledger (account_id bigint NOT NULL, id bigint NOT NULL, amount numeric(12,2) NOT NULL, note text, PRIMARY KEY (account_id, id));
CREATE TABLE events (id bigint PRIMARY KEY, payload text);
\echo ok schema

-- insert-prepared: 100 single-row INSERTs, each its own Query message.
SELECT format('INSERT INTO accounts (id, owner, balance) VALUES (%s, %L, 1000.00)', i, 'owner ' || i)
FROM generate_series(1, 100) AS i \gexec
\echo ok insert-prepared

-- select-by-key
SELECT owner, balance FROM accounts WHERE id = 42 \gset k_
\if `test :'k_owner' = 'owner 42' && test :'k_balance' = 1000.00 && echo true || echo false`
\echo ok select-by-key
\else
\echo FAIL select-by-key: account 42 is :'k_owner' :'k_balance'
:fail
\endif

-- select-scatter: the ids are checked after sorting them on the client.
\o ids.out
SELECT id FROM accounts;
\o
\if `sort -n ids.out | awk '$1 != NR { bad = 1 } END { if (bad || NR != 100) print "false"; else print "true" }'`
\echo ok select-scatter
\else
\echo FAIL select-scatter: the ids are not 1..100
:fail
\endif

-- rollback
BEGIN;
UPDATE accounts SET balance = 0 WHERE id = 1;
SELECT balance FROM accounts WHERE id = 1 \gset in_tx_
ROLLBACK;
SELECT balance FROM accounts WHERE id = 1 \gset after_
\if `test :'in_tx_balance' = 0.00 && test :'after_balance' = 1000.00 && echo true || echo false`
\echo ok rollback
\else
\echo FAIL rollback: account 1 has :'in_tx_balance' in the transaction and :'after_balance' after ROLLBACK
:fail
\endif

-- multi-shard-commit: move 10.00 from account 1 to each of 2..11.
BEGIN;
SELECT 'UPDATE accounts SET balance = balance - 10.00 WHERE id = 1',
       format('UPDATE accounts SET balance = balance + 10.00 WHERE id = %s', k),
       format('INSERT INTO ledger (account_id, id, amount, note) VALUES (%s, 1, 10.00, %L)', k, 'transfer from 1')
FROM generate_series(2, 11) AS k \gexec
COMMIT;
\o balances.out
SELECT id, balance FROM accounts WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
\o
\o ledger.out
SELECT account_id, id, amount FROM ledger WHERE account_id IN (2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
\o
\if `awk -F'|' '{ s += $2 * 100 } $1 == 1 { one = $2 } END { if (NR == 11 && s == 1100000 && one == "900.00") print "true"; else print "false" }' balances.out`
\else
\echo FAIL multi-shard-commit: the balances of accounts 1..11 do not sum to 11000.00 with 900.00 on account 1
:fail
\endif
\if `sort -n ledger.out | awk -F'|' '$1 != NR + 1 || $2 != 1 || $3 != "10.00" { bad = 1 } END { if (bad || NR != 10) print "false"; else print "true" }'`
\echo ok multi-shard-commit
\else
\echo FAIL multi-shard-commit: accounts 2..11 do not have one ledger row each
:fail
\endif

-- savepoint: the duplicate insert must fail with 23505, so ON_ERROR_STOP is
-- off around it.
BEGIN;
INSERT INTO ledger (account_id, id, amount, note) VALUES (50, 1, 5.00, 'savepoint');
SAVEPOINT s1;
\set ON_ERROR_STOP off
INSERT INTO ledger (account_id, id, amount, note) VALUES (50, 1, 5.00, 'savepoint');
\set ON_ERROR_STOP on
\set dup_sqlstate :SQLSTATE
ROLLBACK TO SAVEPOINT s1;
INSERT INTO ledger (account_id, id, amount, note) VALUES (50, 2, 5.00, 'savepoint');
COMMIT;
\o savepoint.out
SELECT id FROM ledger WHERE account_id = 50;
\o
\if `test :'dup_sqlstate' = 23505 && test "$(sort -n savepoint.out | tr '\n' ' ')" = '1 2 ' && echo true || echo false`
\echo ok savepoint
\else
\echo FAIL savepoint: the duplicate insert gave SQLSTATE :'dup_sqlstate'; rows of account 50:
\! cat savepoint.out
:fail
\endif

-- set-show
SET application_name = 'shardgate-drivertest';
SHOW application_name \gset show_
SET statement_timeout = '7s';
SHOW statement_timeout \gset show_
RESET statement_timeout;
\if `test :'show_application_name' = shardgate-drivertest && test :'show_statement_timeout' = 7s && echo true || echo false`
\echo ok set-show
\else
\echo FAIL set-show: application_name is :'show_application_name', statement_timeout is :'show_statement_timeout'
:fail
\endif

-- copy: the CSV input has a payload with a comma and double quotes.
\! awk 'BEGIN { for (i = 1; i <= 1000; i++) if (i == 7) print "7,\"event 7, \"\"quoted\"\"\""; else print i ",event " i }' > events.csv
\copy events (id, payload) FROM 'events.csv' WITH (FORMAT csv)
\copy events TO 'events.out'
\copy (SELECT id, payload FROM events WHERE id = 5) TO 'five.out'
SELECT payload FROM events WHERE id = 7 \gset quoted_
\if `test "$(wc -l < events.out)" -eq 1000 && grep -qxF "$(printf '7\tevent 7, "quoted"')" events.out && test "$(cat five.out)" = "$(printf '5\tevent 5')" && test :'quoted_payload' = 'event 7, "quoted"' && echo true || echo false`
\echo ok copy
\else
\echo FAIL copy: events.out has `wc -l < events.out` lines, five.out is `cat five.out`, event 7 is :'quoted_payload'
:fail
\endif

\echo ok all
