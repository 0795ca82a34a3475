-- DISTINCT and DISTINCT ON across shards: duplicates live on different
-- shards. Columns whose equal values print differently (floats, numerics,
-- intervals) appear as text only. DISTINCT ON orders by a unique column
-- after the distinct key, so the row kept is fixed.
select distinct region from customers;
select distinct region from customers order by region; -- ordered
select distinct active from customers;
select distinct age from customers order by age desc nulls last; -- ordered
select distinct status from orders;
select distinct status from orders order by status nulls first; -- ordered
select distinct customer_id from orders;
select distinct customer_id from orders order by customer_id; -- ordered
select distinct key from events;
select distinct key from events order by key; -- ordered
select distinct kind from events;
select distinct name from customers;
select distinct nick from customers;
select distinct code from customers;
select distinct lower(name) from customers;
select distinct upper(note) from orders;
select distinct region, active from customers;
select distinct model from devices;
select distinct fw from devices order by fw; -- ordered
select distinct born from customers where born < '1951-01-01';
select distinct avatar from customers;
select distinct prefs from customers;
select distinct token from customers where id < 10;
select distinct ratio::text from customers;
select distinct trial::text from customers;
select distinct weight::text from customers;
select distinct rating::text from customers order by 1; -- ordered
select distinct on (customer_id) customer_id, id, amount from orders order by customer_id, id; -- ordered
select distinct on (customer_id) customer_id, id from orders order by customer_id, amount desc nulls last, id; -- ordered
select distinct on (region) region, id from customers order by region, id; -- ordered
select distinct on (key) key, seq from events order by key, seq desc; -- ordered
select distinct on (id) id, name from customers order by id; -- ordered
select count(distinct status) from orders;
select count(distinct key) from events;
select count(distinct customer_id) from orders;
select count(distinct lower(key)) from events;
select distinct customer_id, status from orders where customer_id in (1, 2, 3, 4, 7);
select distinct status from orders where customer_id = 7;
select distinct kind from events where key = 'a';
select distinct c.region from customers c join orders o on o.customer_id = c.id;
select distinct rank from regions;
select distinct 1 from customers;
select distinct region from customers limit 100;
select distinct key, kind from events where key in ('a', 'A', 'ä');
select distinct date_trunc('day', at) from events where at < '2021-02-01';
-- DISTINCT without ORDER BY, deduplicated at the gateway by value: many
-- columns, NULLs, char(n) padding, numerics and intervals (equal classes
-- that print differently are left out or normalized, so the row printed is
-- fixed), jsonb, bytea, text twins, and LIMITs that keep every row.
select distinct region, active, code, nick, age from customers;
select distinct amount, status from orders;
select distinct val from events where val not in (0.1, 1.5);
select distinct ratio from customers where ratio not in (0, 1.5);
select distinct (case when id % 2 = 0 then 'x' else 'x  ' end)::char(3) as c from customers;
select distinct serial from devices;
select distinct justify_interval(trial) from customers;
select distinct trial, region from customers where trial not in ('1 day', '1 mon');
select distinct payload from events;
select distinct payload -> 'a' from events;
select distinct code::char(2) from customers;
select distinct status from orders limit 7;
select distinct name from customers where name in ('a', 'A', 'ä', 'Ä', 'a ', ' a', 'ß', 'SS');
select distinct weight from customers where weight <> 0;
select distinct array[age, score] from customers where age < 10;
