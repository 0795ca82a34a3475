-- ORDER BY across shards: the gateway must merge the shards' sorted
-- streams exactly as Postgres sorts. Entries marked -- ordered end in a
-- unique column. Traps: NaN sorts above Infinity, -0 ties with 0, NULLS
-- FIRST/LAST defaults per direction, text in the database's collation and
-- others, bytea, uuid, interval, jsonb and bool ordering, keys that are not
-- in the select list, ordinals and aliases.
select id, name from customers order by id; -- ordered
select id, name from customers order by id desc; -- ordered
select id, name from customers order by name, id; -- ordered
select id, name from customers order by name desc, id; -- ordered
select id, name from customers order by name nulls first, id; -- ordered
select id, name from customers order by name desc nulls last, id desc; -- ordered
select id, name from customers order by name collate "C", id; -- ordered
select id, name from customers order by name collate "und-x-icu", id; -- ordered
select id, name from customers order by name collate "de-x-icu" desc, id; -- ordered
select id, name from customers order by lower(name), id; -- ordered
select id, name from customers order by length(name) desc nulls last, id; -- ordered
select id, age from customers order by age, id; -- ordered
select id, age from customers order by age desc, id desc; -- ordered
select id, score from customers order by score nulls first, id; -- ordered
select id, balance from customers order by balance, id; -- ordered
select id, ratio from customers order by ratio, id; -- ordered
select id, ratio from customers order by ratio desc, id; -- ordered
select id, rating from customers order by rating, id; -- ordered
select id, weight from customers order by weight desc nulls last, id; -- ordered
select id, active from customers order by active, id; -- ordered
select id, avatar from customers order by avatar, id; -- ordered
select id, token from customers order by token, id; -- ordered
select id, born from customers order by born, id; -- ordered
select id, seen from customers order by seen desc, id; -- ordered
select id, joined from customers order by joined, id; -- ordered
select id, trial from customers order by trial, id; -- ordered
select id, prefs from customers order by prefs, id; -- ordered
select id, code from customers order by code, id; -- ordered
select id, nick from customers order by nick, id; -- ordered
select id, name from customers order by 2, 1; -- ordered
select id as k, name as n from customers order by n, k; -- ordered
select id, name from customers order by region, age desc, id; -- ordered
select name from customers order by id; -- ordered
select * from customers order by id; -- ordered
select * from customers order by name, id; -- ordered
select id, age::int8 + score as total from customers order by total, id; -- ordered
select id, name from customers order by name; 
select id, region from customers order by region desc;
select customer_id, id, amount from orders order by amount desc, id; -- ordered
select customer_id, id, status from orders order by status, customer_id, id; -- ordered
select customer_id, id, placed from orders order by placed nulls first, id; -- ordered
select customer_id, id, discount from orders order by discount, id; -- ordered
select id, note from orders order by note, id; -- ordered
select id, qty from orders order by qty desc nulls last, id; -- ordered
select key, seq from events order by key, seq; -- ordered
select key, seq from events order by key desc, seq; -- ordered
select key, seq, val from events order by val, seq; -- ordered
select key, seq, dur from events order by dur desc, seq; -- ordered
select key, seq, payload from events order by payload, seq; -- ordered
select key, seq, at from events order by at, seq; -- ordered
select key, seq, ok from events order by ok nulls first, seq desc; -- ordered
select id, model from devices order by model, id; -- ordered
select id, serial from devices order by serial, id; -- ordered
select id, temp from devices order by temp, id; -- ordered
select id, mac from devices order by mac desc, id; -- ordered
select id from devices order by id; -- ordered
select id, seen from devices order by seen, id; -- ordered
select code, name, rank from regions order by rank nulls first, code; -- ordered
select * from orders where customer_id = 7 order by amount, id; -- ordered
select c.id, o.id as oid, o.amount from customers c join orders o on o.customer_id = c.id order by o.amount, o.id; -- ordered
select c.id, c.name, r.name from customers c join regions r on r.code = c.region order by r.name, c.id; -- ordered
-- Sort keys whose text form sorts differently from their values: the merge
-- must compare values, not printed text.
select id, (case when id % 2 = 0 then 'x' else E'x\t' end)::char(3) as c from customers order by c, id; -- ordered
select id, (case when id % 2 = 0 then interval '1 mon' else interval '31 days' end) as iv from customers order by iv, id; -- ordered
select id, (case when id % 3 = 0 then interval '25 hours' else interval '1 day 30 minutes' end) as iv from customers order by iv desc, id; -- ordered
select id, score::money as m from customers order by m, id; -- ordered
select id, ('10.0.0.' || (age % 250))::inet as ip from customers where age >= 0 order by ip, id; -- ordered
select id, seen::time as t from customers order by t, id; -- ordered
select id, joined::timetz as t from customers order by t nulls first, id; -- ordered
select id, array[age, score] as a from customers order by a, id; -- ordered
select id, (age, score) as r from customers order by r desc, id; -- ordered
select id, int4range(least(age, score), greatest(age, score)) as rg from customers order by rg, id; -- ordered
select id, convert_to(name, 'UTF8') as b from customers order by b, id; -- ordered
select id, name::name as n from customers order by n, id; -- ordered
select id, rating * 3 as r3 from customers order by r3, id; -- ordered
select id, balance::float4 as f from customers order by f, id; -- ordered
select id, born::timestamptz as bt from customers order by bt desc, id; -- ordered
select id, length(name) as l from customers order by l nulls first, id; -- ordered
select id from customers order by score % 7, id; -- ordered
select id from customers order by md5(coalesce(name, '')), id; -- ordered
-- Output names against input columns: a bare name is an output column,
-- anything more is an input column.
select id, upper(name) as name from customers order by name, id; -- ordered
select id, nick as name from customers order by name, id; -- ordered
select name as id, id as name from customers order by id, name; -- ordered
select id, -score::int8 as score from customers order by score, id; -- ordered
select id, -score::int8 as score from customers order by score + 0, id; -- ordered
select id, -score::int8 as score from customers order by customers.score, id; -- ordered
select id, lower(name) from customers order by 2, 1; -- ordered
select id, name from customers order by name collate "C" desc, id desc; -- ordered
select id, nick from customers order by nick::text collate "POSIX", id; -- ordered
select id, name from customers order by name collate "ucs_basic", id; -- ordered
-- Constants that are not positions sort nothing.
select id, name from customers order by 2 + 0, id; -- ordered
select id, name from customers order by (2), id; -- ordered
select id, name from customers order by 1::int, id; -- ordered
-- jsonb sort keys merged across shards: objects above arrays above
-- booleans above numbers above strings above null, empty top-level arrays
-- below null, objects by size first and keys by length first, numbers by
-- value (1.5 = 1.50, ties broken by the unique column).
select id, prefs from customers order by prefs desc, id; -- ordered
select key, seq, payload from events order by payload desc nulls last, seq; -- ordered
select id, prefs -> 'tier' as t from customers order by t, id; -- ordered
select id, to_jsonb(ratio) as j from customers order by j, id; -- ordered
select seq, to_jsonb(val) as j from events order by j, seq; -- ordered
select id, jsonb_build_object(coalesce(nick, 'n'), age, coalesce(name, 'm'), score) as j from customers order by j desc, id; -- ordered
select id, jsonb_build_array(prefs, age) as j from customers order by j, id; -- ordered
select seq, payload -> 0 as j from events order by j nulls first, seq; -- ordered
