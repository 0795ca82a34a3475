-- GROUP BY and HAVING, by the sharding column (each group lives on one
-- shard) and by other columns (groups span shards). Grouping columns are
-- ones whose equal values print alike; floats, unconstrained numerics and
-- intervals are grouped by their text.
select customer_id, count(*) from orders group by customer_id;
select customer_id, count(*), sum(amount), min(amount), max(amount) from orders group by customer_id;
select customer_id, avg(amount) from orders group by customer_id;
select customer_id, count(*) from orders group by customer_id having count(*) > 3;
select customer_id, count(*) from orders group by customer_id having sum(amount) > 500;
select customer_id, count(*) from orders group by customer_id order by customer_id; -- ordered
select customer_id, count(*) from orders group by customer_id order by count(*) desc, customer_id; -- ordered
select customer_id, count(*) from orders group by 1 order by 1 desc; -- ordered
select customer_id, count(*) from orders group by customer_id order by 2 desc, 1 limit 5; -- ordered
select customer_id, count(*) from orders where customer_id = 7 group by customer_id;
select customer_id, count(*) from orders where customer_id in (1, 2, 3, 4) group by customer_id;
select customer_id, string_agg(status, ',' order by id) from orders group by customer_id;
select customer_id, array_agg(id order by id) from orders where customer_id in (1, 2, 3, 4) group by customer_id;
select key, count(*) from events group by key;
select key, count(*), sum(val) from events group by key order by key; -- ordered
select key, count(*) from events group by key having count(*) >= 10 order by key; -- ordered
select key, min(seq), max(seq) from events group by key;
select id, count(*) from devices group by id;
select id, sum(score) from customers group by id;
select id, count(*) from customers group by id having id > 290;
select region, count(*) from customers group by region;
select region, count(*) from customers group by region order by region nulls first; -- ordered
select region, count(*), avg(age) from customers group by region having count(*) > 10;
select region, sum(balance), min(name), max(born) from customers group by region;
select active, count(*) from customers group by active;
select age, count(*) from customers group by age order by age; -- ordered
select status, count(*), sum(amount) from orders group by status;
select status, count(*) from orders group by status order by status; -- ordered
select lower(status), count(*) from orders group by lower(status);
select kind, count(*) from events group by kind;
select ok, count(*) from events group by ok;
select model, count(*) from devices group by model;
select fw, count(*), min(seen), max(seen) from devices group by fw;
select code, count(*) from customers group by code;
select name, count(*) from customers group by name having count(*) > 1;
select born, count(*) from customers group by born having count(*) > 1;
select date_trunc('month', placed), count(*) from orders group by 1;
select extract(year from born) as y, count(*) from customers group by y;
select ratio::text, count(*) from customers group by 1;
select trial::text as t, count(*) from customers group by t;
select weight::text as w, count(*) from customers group by w having count(*) > 1;
select region, active, count(*) from customers group by region, active;
select region, count(*) from customers group by rollup(region);
select region, active, count(*) from customers group by grouping sets ((region), (active), ());
select c.region, count(o.id) from customers c join orders o on o.customer_id = c.id group by c.region;
select c.id, count(o.id) from customers c left join orders o on o.customer_id = c.id group by c.id;
select prefs->>'tier' as tier, count(*) from customers group by 1;
select count(*) from customers group by region having region = 'us';
select region, count(distinct age) from customers group by region;
select code, count(*) from regions group by code;
select rank, count(*) from regions group by rank;
select owner_id, count(*) from devices group by owner_id having count(*) > 1;
-- Groups whose members compare equal but print differently (1.5 and
-- 1.50, -0 and 0, '1 day' and '24 hours'): one group each, whatever
-- member Postgres shows, so the key stays out of the select list.
select count(*) from customers group by ratio having ratio = 1.5;
select count(*), min(id) from customers group by ratio;
select count(*) from customers group by weight having weight = 0;
select count(*), max(id) from customers group by rating;
select count(*) from customers group by trial having trial = '1 day';
select count(*), min(id) from customers group by trial;
select count(*) from customers group by code having code = 'ab';
select count(*), min(seq) from events group by val;
select count(*), min(seq) from events group by dur;
select count(*), min(fw) from devices group by temp;
select region, min((case when id % 2 = 0 then 'x' else E'x\t' end)::char(3)) from customers group by region;
select region, max(case when id % 2 = 0 then interval '1 mon' else interval '31 days' end) from customers group by region;
select region, max(name collate "und-x-icu") from customers where name in ('a', 'A', 'ä', 'Ä', 'zoe', 'Zoë') group by region;
-- Expressions over aggregates and group keys per group, computed after the
-- groups are combined: keys passed on (with their typmods) or read inside
-- expressions (char(n) padding, text that needs quoting, NULL keys),
-- HAVING, ORDER BY and LIMIT around them, variances per group and
-- DISTINCT aggregates per group.
select region, count(*) + 1 from customers group by region;
select region || ':' || count(*) from customers group by region;
select upper(region), count(*), lower(region) || count(*) from customers group by region;
select count(*) + length(region) from customers group by region;
select region, region || count(*) from customers group by 1;
select upper(region) as r, max(age) - min(age) as spread from customers where age between 0 and 120 group by region;
select region, sum(score) / count(*), sum(score) % 7 from customers group by region having count(*) > 20;
select region, count(*), count(*) * 2 as dbl from customers group by region order by count(*) desc, region; -- ordered
select region, count(*) * 2 as dbl from customers group by region order by count(*) desc, region limit 3; -- ordered
select region, round(avg(balance), 2) as b from customers group by region order by b, region; -- ordered
select region, count(*) + 1 as n from customers group by region order by region limit 3 offset 2; -- ordered
select kind, max(seq) - min(seq) + 1 from events group by kind;
select name || ':' || count(*), name from customers where name not like 'cust %' group by name;
select code, code || '|', count(*), length(code) + count(*) from customers group by code;
select amount, count(*) + 1 from orders group by amount having count(*) > 3;
select region, count(*) from customers group by region having count(*) + 1 > 30;
select region, active, count(*) * 10 + case when active then 1 else 0 end from customers group by region, active;
select region, count(*) + 1 from customers group by region order by region limit 2 + 1; -- ordered
select avatar, count(*) + 1 from customers group by avatar;
select prefs, count(*) + 1 from customers group by prefs;
select lower(kind) as k, max(seq) - min(seq) from events group by lower(kind);
select age, var_samp(score), var_pop(score), stddev(score) from customers group by age;
select region, variance(balance) filter (where active), stddev_pop(age) filter (where age < 100) from customers group by region;
select region, count(distinct age), sum(distinct age) from customers group by region;
select status, count(distinct customer_id) from orders group by status;
select status, count(distinct qty) filter (where amount > 100) from orders group by status;
select region, count(distinct age) filter (where active), count(*) from customers group by region;
