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
