-- Aggregates without GROUP BY (or over one shard's rows): the gateway must
-- combine the shards' partial results exactly. Traps: count of empty
-- shards, sums over NaN and +-Infinity, int2/int4 sums that change type,
-- numeric scales, min/max over NaN, infinite dates and collated text.
-- Float columns hold quarters only, so sums are exact in any order.
select count(*) from customers;
select count(*) from orders;
select count(*) from events;
select count(*) from devices;
select count(*) from regions;
select count(name), count(nick), count(avatar), count(prefs) from customers;
select count(*) from customers where id = 7;
select count(*) from orders where customer_id = 7;
select count(*) from orders where customer_id = 100000;
select count(*) from customers where age > 50;
select count(1) from customers;
select count(*), count(*) from customers;
select count(*) + 1 from customers;
select count(*) as n from customers where region = 'us';
select count(distinct region) from customers;
select count(distinct ratio) from customers;
select count(distinct weight) from customers;
select sum(score) from customers;
select sum(age) from customers;
select sum(balance) from customers;
select sum(ratio) from customers;
select sum(ratio) from customers where ratio > -1e20 and ratio < 1e20;
select avg(score) from customers;
select avg(balance) from customers;
select avg(age) from customers;
select avg(ratio) from customers where ratio = 1.5;
select min(age), max(age) from customers;
select min(name), max(name) from customers;
select min(born), max(born) from customers;
select min(joined), max(joined) from customers;
select min(seen), max(seen) from customers where seen < 'infinity';
select min(ratio), max(ratio) from customers;
select max(rating), min(weight) from customers;
select sum(weight) from customers where weight <> 'NaN' and weight < 'Infinity';
select sum(rating) from customers where rating > -1000 and rating < 1000;
select sum(weight) from customers where weight > -1e9 and weight < 1e9;
select sum(amount), avg(amount), min(amount), max(amount) from orders;
select sum(amount) from orders where customer_id = 7;
select bool_and(active), bool_or(active) from customers;
select every(active) from customers where id in (1, 2, 3);
select count(*) filter (where active) from customers;
select string_agg(name, ',' order by id) from customers where id in (1, 2, 3, 4, 5);
select array_agg(id order by id) from customers where region = 'de';
select jsonb_agg(seq order by seq) from events where key = 'ä';
select max(val), min(val), sum(val) from events;
select count(*), sum(qty) from orders where status = 'paid';
select count(*) from events where key = 'a';
select max(id), min(id) from customers;
select count(*) from customers c join orders o on o.customer_id = c.id;
select count(*) from devices where temp = 'NaN';
select stddev(score), variance(score) from customers;
select sum(amount)::text, count(*)::text from orders;
select max(temp), min(temp), sum(fw) from devices;
select min(code), max(nick), min(region) from customers;
-- count(*) shapes the gateway may sum: empty inputs, one output row cut
-- by OFFSET/LIMIT/HAVING, casts and names around it.
select count(*) from customers where false;
select count(*) from customers where id = 301;
select count(*) from orders where customer_id in (1, 2, 301);
select count(name) from customers;
select count(id) from customers;
select count(all nick) from customers;
select count(distinct id) from customers;
select count(*) from customers limit 1;
select count(*) from customers limit 0;
select count(*) from customers offset 1;
select count(*) from customers offset 0;
select count(*) from customers order by 1;
select count(*) from customers having count(*) > 0;
select count(*) from customers having count(*) > 1000;
select count(*) from customers group by ();
select count(*)::int4 from customers;
select count(*) as "Count" from customers;
select count(*), 'x' as tag from customers;
select 1 as one, count(*) from customers;
select count(*) from events where key in ('a', 'A', 'ä', 'Ä', '');
select count(*) from devices where id in ('00000000-0000-0000-0000-000000000000', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11');
-- Partial aggregates the gateway would have to combine: empty shards,
-- result types (sum(int2) is bigint, sum(int8) numeric, sum(float4)
-- real), display scales of avg, and values whose text sorts unlike their
-- values (char(n) below space, intervals, inet, money, time with zone).
select sum(score), avg(score), min(name), max(born), bool_and(active) from customers where false;
select min(id) from customers where id > 9223372036854775806;
select max(name) from customers where name < 'a';
select sum(id), avg(id) from customers;
select sum(qty), avg(qty) from orders;
select avg(rating), sum(rating) from customers where rating > -1000 and rating < 1000;
select avg(weight) from customers where weight > -1e9 and weight < 1e9;
select sum(trial), avg(trial) from customers;
select sum(dur), max(dur), min(dur) from events;
select min((case when id % 2 = 0 then 'x' else E'x\t' end)::char(3)), max((case when id % 2 = 0 then 'x' else E'x\t' end)::char(3)) from customers;
select max(case when id % 2 = 0 then interval '1 mon' else interval '31 days' end) from customers;
select min(case when id % 3 = 0 then interval '25 hours' else interval '1 day 30 minutes' end) from customers;
select min(name collate "und-x-icu"), max(name collate "de-x-icu") from customers;
select max(('10.0.0.' || (age % 250))::inet) from customers where age >= 0;
select min(score::money), max(score::money), sum(score::money) from customers;
select min(seen::time), max(joined::timetz) from customers;
select max(array[age, score]), min(array[age, score]) from customers;
select count(*), sum(score), max(seen), min(code) from customers;
select sum(score) / count(*), avg(score)::int, round(avg(balance), 2) from customers;
select max(amount) - min(amount) from orders;
select sum(val), avg(val) from events where val > -1e9 and val < 1e9;
select min(name collate "und-x-icu"), max(name collate "und-x-icu") from customers where name in ('a', 'A', 'ä', 'Ä', 'ß', 'SS', 'zoe', 'Zoë', 'bob', 'Bob');
select min(name collate "C"), max(name collate "C") from customers where name in ('a', 'A', 'ä', 'Ä', 'ß', 'SS', 'zoe', 'Zoë', 'bob', 'Bob');
-- Expressions over aggregates, computed by a shard from the combined
-- values: result types, display scales, output names and NULLs must be
-- Postgres's own, also over empty and NULL-only inputs, NaN and the
-- infinities, text that needs quoting (quotes, backslashes, newlines),
-- literals and type names the gateway must print back as written.
select count(*) + 1, count(*) - count(name), count(*) * 2 from customers;
select sum(score) / count(*), sum(score) % count(*), sum(score) / count(score) from customers;
select count(*)::int4, count(*)::text, count(*)::numeric(10,2), cast(count(*) as int2) from orders;
select sum(amount)::text, sum(qty)::text, avg(amount)::text, avg(qty)::text from orders;
select round(avg(amount), 2), round(avg(qty), 3), round(avg(id)), round(avg(customer_id), 1) from orders;
select case when count(*) > 5 then 'many' else 'few' end, case when max(age) > 90 then count(*) end, case when count(*) > 0 then sum(age) else 0 end from customers where region = 'fr';
select max(name) || '|' || min(name), length(max(name)), upper(min(nick)), max(name) < min(nick) from customers;
select max(born) - min(born), max(seen) - min(seen) from customers where born > '-infinity' and born < 'infinity' and seen > '-infinity' and seen < 'infinity';
select greatest(max(age), max(score)), least(min(age), min(score)), nullif(count(*), 305), nullif(count(name), 0) from customers;
select sum(val) / count(val), round(avg(val), 4), avg(val)::numeric(12,3) from events where val > -1e9 and val < 1e9;
select sum(ratio) + 1, max(ratio) * 0, min(ratio) * 0, max(ratio) > 1 from customers;
select max(rating) * 2, min(weight) - 1 from customers;
select count(*) + 1, sum(score) / count(*), max(age) - min(age), round(avg(balance), 2) from customers where false;
select coalesce(max(age), -1), coalesce(sum(score), 0), coalesce(max(name), 'none') from customers where false;
select sum(age) + 1, avg(age) * 2, count(age) + 1, max(name) || 'x' from customers where age is null;
select 'it''s ' || count(*), E'back\\slash ' || count(*), $$dollar$$ || count(*), U&'\0041' || count(*) from customers;
select count(*)::double precision, count(*)::character varying(5), count(*)::"numeric", (count(*) - 300)::int4::"char" from customers;
select max(name) like 'z%', count(*) between symmetric 400 and 300, count(*) in (1, 305), max(name) is distinct from min(name) from customers;
select (array[min(age), max(age)])[2], (row(count(*), 1)).f1 from customers;
select count(*) + 1 as "Ä ""quoted"" name", max(age) - 1 as "count", max(name) collate "C" from customers;
-- Variance and standard deviation, exact over integers and numerics: int2
-- and int4 at their limits, int8 extremes, numerics of scale 2 and of
-- scale 30, NaN and infinities, one row, no rows, equal rows, FILTER.
select variance(age), var_samp(age), var_pop(age) from customers;
select stddev(score), stddev_samp(score), stddev_pop(score) from customers;
select variance(id), var_pop(id), stddev(id), stddev_pop(id) from customers;
select var_samp(balance), var_pop(balance), stddev(balance), stddev_pop(balance) from customers;
select variance(ratio), stddev_pop(ratio) from customers where ratio > -1e40 and ratio < 1e40;
select region, var_samp(ratio), var_pop(ratio) from customers where ratio in ('NaN', 'Infinity', '-Infinity') group by region;
select variance(seq), stddev_pop(seq), var_samp(val), stddev(val) from events where val > -1e9 and val < 1e9;
select variance(age) filter (where active), stddev(score) filter (where region = 'us'), var_pop(balance) filter (where age > 50) from customers;
select variance(age), stddev_pop(balance), var_samp(ratio) from customers where false;
select variance(age), stddev(age), var_pop(age) from customers where age = 50;
select round(variance(age), 2), stddev(score)::int8, variance(age) * 0, stddev_pop(age) > 1 from customers;
select variance(age::numeric / 3), stddev(balance * 1.5) from customers;
-- DISTINCT aggregates over a column that is not the sharding column: equal
-- values that print differently (1.5 and 1.50, '1 day' and '24 hours',
-- char(n) padding) count once.
select count(distinct age), sum(distinct age), avg(distinct age) from customers;
select count(distinct trial) from customers;
select count(distinct val) from events;
select count(distinct code) from customers;
select sum(distinct amount), avg(distinct amount) from orders;
select count(distinct age) + 1, sum(distinct age) / count(distinct age) from customers;
select count(distinct amount) filter (where qty > 5) from orders;
select sum(distinct val) from events where val > -1 and val < 1e9;
select avg(distinct ratio) from customers;
select count(distinct payload -> 'a') from events;
