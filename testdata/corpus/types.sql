-- Every column type in the text and binary formats, casts and functions
-- over them. Traps: NaN/Infinity/-0 output, numeric scale, char(n)
-- padding, bytea escapes, infinite and BC dates, timestamptz output in a
-- DST zone, interval arithmetic, jsonb normalization, records and arrays.
select id, age, score, balance, ratio, rating, weight from customers;
select id, active, avatar, token, born, seen, joined, trial, prefs from customers;
select id, name, nick, code, region from customers;
select id::int2 from customers where id between -100 and 100;
select id::int4 from customers where id between 1 and 300;
select id::numeric, id::float8, id::text from customers;
select id, balance::float8, balance::int8, balance::text from customers where balance is not null;
select id, ratio::float8 from customers;
select id, rating::float8, weight::float4 from customers;
select id, rating::numeric, weight::numeric from customers;
select id, weight::text, rating::text from customers;
select id, born::timestamp, born::timestamptz from customers;
select id, seen::date, seen::time, joined::date, joined::time from customers;
select id, joined at time zone 'UTC', seen at time zone 'Europe/Berlin' from customers;
select id, extract(epoch from joined), extract(epoch from seen) from customers;
select id, to_char(joined, 'YYYY-MM-DD HH24:MI TZ OF'), to_char(seen, 'Dy DD Mon YYYY') from customers;
select id, date_part('hour', joined), date_trunc('day', joined) from customers;
select id, justify_hours(trial), justify_days(trial), extract(epoch from trial) from customers;
select id, trial * 2, trial / 3, -trial from customers;
select id, avatar::text, length(avatar), encode(avatar, 'hex'), encode(avatar, 'base64') from customers;
select id, token::text, upper(token::text) from customers;
select id, prefs, prefs -> 'a', prefs ->> 'tier', prefs #> '{b,2}', jsonb_typeof(prefs) from customers;
select id, prefs::text, jsonb_pretty(prefs) from customers where prefs is not null;
select id, prefs @> '{"tier": "gold"}', prefs ? 'tags' from customers;
select id, name, length(name), octet_length(name), upper(name), lower(name) from customers;
select id, name || '|' || coalesce(nick, '?') from customers;
select id, code, length(code), code::text, code::varchar, code || 'x' from customers;
select id, nick::char(3), name::varchar(2) from customers;
select id, age + 1, score / 7, score % 7, abs(score) from customers where score between -1000000 and 1000000;
select id, age::float4 / 3, score::numeric / 3 from customers;
select key, seq, length(key), key::bytea, md5(key) from events;
select key, seq, val, val::float8, val * 2, val / 3, round(val, 1) from events where val is not null;
select key, seq, dur, at, at + dur from events;
select key, seq, payload, payload -> 0, payload ? 'a' from events;
select id, mac, fw::numeric / 3, fw::float8 / 3 from devices;
select id, temp, temp::float8, -temp from devices;
select id, temp::numeric from devices where temp is not null;
select id, seen, seen::timestamp, seen::date from devices;
select row(id, name) from customers where id < 10;
select array[id, age] from customers where id between 1 and 10;
select (id, name)::text from customers;
select customer_id, id, qty, amount, status, placed, due, discount, note from orders;
select customer_id, id, amount * qty, amount / nullif(qty, 0), discount * 2 from orders;
select 1::int2, 2::int4, 3::int8, 4.5::numeric(5,2), 'x'::char(3), 'y'::varchar(5), true, null::text, '\x01'::bytea, '2021-03-14'::date;
select 'NaN'::float8, '-0'::float8, 'Infinity'::float4, '-Infinity'::numeric, 'NaN'::numeric, 1.50::numeric, '1e-20'::numeric;
select timestamptz '2021-03-14 02:30:00', timestamp '2021-03-14 02:30:00', timestamptz '2021-11-07 01:30:00';
select interval '1 day' = interval '24 hours', interval '1 mon' = interval '30 days';
select '1.5'::numeric = '1.50'::numeric, '-0'::float8 = '0'::float8, 'NaN'::float8 = 'NaN'::float8;
select current_setting('TimeZone');
select pg_typeof(ratio), pg_typeof(rating), pg_typeof(code), pg_typeof(trial) from customers where id = 1;
select id, ratio, ratio::numeric(10,2) from customers where ratio < 1e9 and ratio > -1e9;
select c.*, o.* from customers c join orders o on o.customer_id = c.id where c.id = 3;
select id, born - '2000-01-01'::date from customers where born > '-infinity' and born < 'infinity';
select id, isfinite(born), isfinite(seen), isfinite(joined) from customers;
select id, json_build_object('id', id, 'name', name, 'ratio', ratio) from customers;
select code, name, tz, rank, rank::float4 / 3 from regions;
-- Types in and out of expressions over aggregates: each combined value goes
-- back to a shard as text of its type (bpchar, infinities, NaN) and the
-- result comes in the client's format and output settings.
select count(*)::int2, count(*)::float8, count(*)::numeric, count(*)::text, count(*)::int4::bool from customers;
select avg(age)::float8, avg(score)::float4, avg(balance)::int8 from customers;
select max(born)::text, min(born)::timestamptz, max(born) + 1 from customers;
select min(code)::varchar, max(code)::text, octet_length(max(code)), min(code) = 'ab' from customers;
select max(val)::text, min(val)::float8, max(val) = 'NaN' from events;
select max(placed) at time zone 'UTC', min(due) + 1 from orders;
select pg_typeof(count(*) + 1), pg_typeof(sum(age)), pg_typeof(sum(id)), pg_typeof(avg(age)), pg_typeof(sum(age) + 1) from customers;
select date_trunc('day', max(joined)), to_char(min(joined), 'YYYY-MM-DD HH24:MI TZ') from customers where joined > '-infinity';
select max(nick)::varchar(3), min(code)::char(1), count(*)::text::char(2) from customers;
