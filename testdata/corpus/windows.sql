-- Window functions: a partition by the sharding column lives on one shard;
-- other partitions (by region, or the whole table) span shards and must be
-- computed over the combined rows. Every window ORDER BY that feeds
-- row_number, lag, lead, first_value, ntile or a ROWS frame ends in a
-- unique column; rank, dense_rank and the default RANGE frame treat ties
-- alike, so they may order by columns with ties. No sums of float columns.
-- Traps: outer ORDER BY/LIMIT over window results, filters on window
-- results in derived tables, named windows, frames, windows over one shard.
-- Partitioned by the sharding column.
select customer_id, id, row_number() over (partition by customer_id order by id) from orders;
select customer_id, id, amount, rank() over (partition by customer_id order by amount desc nulls last) from orders;
select customer_id, id, status, dense_rank() over (partition by customer_id order by status) from orders;
select customer_id, id, amount, sum(amount) over (partition by customer_id) from orders;
select customer_id, id, amount, sum(amount) over (partition by customer_id order by id) as running from orders;
select customer_id, id, count(*) over (partition by customer_id), avg(amount) over (partition by customer_id) from orders;
select customer_id, id, lag(amount) over (partition by customer_id order by id), lead(amount) over (partition by customer_id order by id) from orders;
select customer_id, id, first_value(id) over (partition by customer_id order by amount desc nulls last, id) from orders;
select customer_id, id, last_value(id) over (partition by customer_id order by id rows between unbounded preceding and unbounded following) from orders;
select customer_id, id, placed, count(*) over (partition by customer_id order by placed range between interval '30 days' preceding and current row) from orders;
select customer_id, id, count(*) over (partition by customer_id order by id groups between 1 preceding and 1 following) from orders;
select key, seq, row_number() over (partition by key order by seq) from events;
select key, seq, val, sum(val) over (partition by key order by seq) from events;
select key, seq, count(*) over (partition by key), max(seq) over (partition by key) from events;
select key, seq, lag(seq, 2) over (partition by key order by seq), lead(kind) over (partition by key order by seq) from events;
select key, seq, first_value(kind) over (partition by key order by seq), nth_value(seq, 2) over (partition by key order by seq rows between unbounded preceding and unbounded following) from events;
select key, seq, lag(val) over (partition by key order by seq), val from events where key in ('a', 'A', 'ä');
select id, score, rank() over (partition by id order by score) from customers;
select id, row_number() over (partition by id), count(*) over (partition by id) from customers;
select distinct customer_id, count(*) over (partition by customer_id) from orders;
-- With an outer ORDER BY and LIMIT, or filtered in a derived table.
select customer_id, id, row_number() over (partition by customer_id order by id) as rn from orders order by customer_id, id limit 20; -- ordered
select customer_id, id, amount, sum(amount) over (partition by customer_id order by id) as running from orders order by running desc nulls last, id limit 10; -- ordered
select * from (select customer_id, id, amount, row_number() over (partition by customer_id order by amount desc nulls last, id) as rn from orders) t where t.rn <= 2;
select * from (select customer_id, id, amount, row_number() over (partition by customer_id order by amount desc nulls last, id) as rn from orders) t where t.rn = 1 order by t.customer_id; -- ordered
select customer_id, id, amount from (select customer_id, id, amount, dense_rank() over (partition by customer_id order by amount desc nulls last) as dr from orders) t where dr = 1 order by customer_id, id; -- ordered
select key, seq, n from (select key, seq, count(*) over (partition by key) as n, row_number() over (partition by key order by seq) as rn from events) t where t.rn = 1;
-- Named windows and frames.
select customer_id, id, qty, rank() over w, dense_rank() over w from orders window w as (partition by customer_id order by qty nulls first);
select key, seq, sum(seq) over w, count(*) over w from events window w as (partition by key order by seq rows between 1 preceding and current row);
select customer_id, id, sum(amount) over (partition by customer_id order by id rows between 1 preceding and current row) from orders;
select customer_id, id, avg(amount) over (partition by customer_id order by id rows between 2 preceding and 2 following) from orders;
select customer_id, id, min(amount) over w, max(amount) over w from orders window w as (partition by customer_id order by id rows between current row and 3 following);
select id, region, row_number() over w, sum(score) over (w rows between unbounded preceding and current row) from customers window w as (partition by region order by id);
select id, sum(score) over (order by id rows between unbounded preceding and unbounded following exclude current row) from customers where id between 1 and 50;
-- Not partitioned by the key: partitions span shards.
select id, region, score, rank() over (partition by region order by score desc nulls last) from customers;
select id, region, count(*) over (partition by region), sum(score) over (partition by region) from customers;
select id, region, row_number() over (partition by region order by id) from customers;
select id, region, score, avg(score) over (partition by region), max(score) over (partition by region order by score nulls first) from customers;
select id, region, count(*) filter (where active) over (partition by region) from customers;
select id, count(*) over () from customers;
select id, score, rank() over (order by score, id) from customers;
select id, score, dense_rank() over (order by score nulls first) from customers;
select id, score, sum(score) over (order by id) from customers;
select id, age, percent_rank() over (order by age), cume_dist() over (order by age) from customers;
select id, ntile(4) over (order by id) from customers;
select id, balance, sum(balance) over (order by balance, id rows between unbounded preceding and current row) from customers;
select key, seq, row_number() over (order by key, seq) from events;
select id, owner_id, row_number() over (partition by owner_id order by id) from devices;
select id, model, fw, rank() over (partition by model order by fw nulls last) from devices;
select id, fw, count(*) over (partition by fw), min(seen) over (partition by fw) from devices;
select id, score, rank() over (order by score desc nulls last) as rk from customers order by rk, id limit 10; -- ordered
select id, name, lead(name) over (order by id) from customers order by id limit 10 offset 100; -- ordered
-- Over grouped rows.
select region, count(*), rank() over (order by count(*) desc) from customers group by region;
select customer_id, sum(amount), rank() over (order by sum(amount) desc nulls last) from orders group by customer_id;
select customer_id, count(*), sum(count(*)) over () from orders group by customer_id;
select status, count(*) as n, round(100.0 * count(*) / sum(count(*)) over (), 2) as pct from orders group by status order by n desc, status nulls first; -- ordered
-- Fixed to one shard.
select id, name, row_number() over (order by id), count(*) over () from customers where id = 42;
select customer_id, id, amount, sum(amount) over (order by id) from orders where customer_id = 42;
select customer_id, id, rank() over (order by amount desc nulls last), lag(id) over (order by id) from orders where customer_id = 7;
select customer_id, id, amount, round(amount / sum(amount) over (), 4) as share from orders where customer_id = 7 order by id limit 15; -- ordered
select customer_id, id, status, count(*) over (partition by status) from orders where customer_id = 7;
-- Gathered rows keep empty strings apart from NULLs.
select nick, count(*) over () as n from customers where nick = '' or nick is null order by nick nulls first, n;
select coalesce(nick, '<null>') as k, row_number() over (order by id) as r from customers where nick = '' or nick is null order by r; -- ordered
