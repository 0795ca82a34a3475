-- WITH queries: a CTE belongs to the whole statement, so unless every part
-- is fixed to one shard its rows come from all of them. Traps: CTEs read
-- twice (a self-join of a CTE pairs rows from different shards), aggregates
-- and ORDER BY/LIMIT inside a CTE (global, not per shard), MATERIALIZED and
-- NOT MATERIALIZED, CTEs over the reference table only, CTEs joined to a
-- co-located table on the sharding column, recursive CTEs with and without
-- tables, CTEs inside subqueries.
-- Fixed to one shard in every part.
with c as (select id, name from customers where id = 42) select * from c;
with c as (select id, name, region from customers where id = 42), o as (select customer_id, id, amount from orders where customer_id = 42) select c.name, o.id, o.amount from c join o on o.customer_id = c.id order by o.id; -- ordered
with t as (select count(*) as n, sum(amount) as s, max(placed) as last from orders where customer_id = 7) select n, s, last from t;
with c as (select id, region from customers where id = 42) select c.id, r.name, r.tz from c left join regions r on r.code = c.region;
with a as (select id from customers where id = 42), b as (select customer_id, id, status from orders where customer_id = 42) select b.* from b where b.customer_id in (select id from a);
with o as (select customer_id, id from orders where customer_id = 7 order by id limit 5) select c.name, o.id from o join customers c on c.id = o.customer_id and c.id = 7 order by o.id; -- ordered
-- Over the reference table only.
with r as (select code, name from regions where rank is not null) select * from r order by code; -- ordered
with r as (select code from regions) select count(*) from r;
with r as (select rank, count(*) as n from regions group by rank) select * from r;
with r as (select code, name, tz from regions), t as (select distinct tz from r where tz is not null) select count(*) from t;
-- Over sharded tables, read once.
with c as (select id, region from customers where active) select region, count(*) from c group by region;
with c as (select * from customers) select count(*) from c;
with c as (select id, name from customers where region = 'jp') select c.id, o.id, o.status from c join orders o on o.customer_id = c.id;
with c as (select id from customers where region = 'jp') select c.id, count(o.id) from c left join orders o on o.customer_id = c.id group by c.id;
with x as (select key, seq, val from events where key = 'a') select count(*), max(seq), sum(val) from x;
with dev as (select id, owner_id, model from devices where fw = 104) select dev.id, dev.model, c.region from dev left join customers c on c.id = dev.owner_id;
with paid as (select customer_id, amount from orders where status = 'paid') select customer_id, sum(amount) from paid group by customer_id having count(*) > 2;
-- Read twice.
with big as (select id, score from customers where score > 900) select a.id, b.id from big a join big b on a.score = b.score and a.id < b.id;
with t as (select id, score from customers) select (select count(*) from t) as n, (select max(score) from t) as m;
with s as (select customer_id, sum(amount) as total from orders group by customer_id) select a.customer_id from s a where a.total > (select avg(total) * 3 from s);
with c as (select id, region from customers where age > 90) select a.id, b.id from c a join c b on a.region = b.region and a.id < b.id;
with o as (select customer_id, id, amount from orders where customer_id = 7) select count(*) from o a join o b on b.id = a.id + 1 where b.amount > a.amount;
-- Aggregates inside.
with s as (select region, avg(score) as a from customers group by region) select c.id, c.score from customers c join s on s.region = c.region where c.score > s.a + 700;
with t as (select customer_id, sum(amount) as total from orders group by customer_id) select * from t where total > 500;
with t as (select customer_id, sum(amount) as total from orders group by customer_id) select max(total), min(total), count(*) from t;
with t as (select customer_id, count(*) as n from orders group by customer_id) select n, count(*) from t group by n;
with agg as (select count(*) as n, sum(score) as s, avg(age) as a from customers) select n, s, a from agg;
with x as (select key, count(*) as n from events group by key) select key, n from x where n > 10 order by n desc, key; -- ordered
with d as (select owner_id, count(*) as n from devices group by owner_id) select c.id, c.name, d.n from d join customers c on c.id = d.owner_id where d.n > 1;
with a as (select region, count(*) as n from customers group by region), b as (select code from regions) select b.code, a.n from b left join a on a.region = b.code;
-- ORDER BY and LIMIT inside: the top rows of the whole table.
with top as (select id, score from customers order by score desc nulls last, id limit 5) select * from top;
with top as (select id, score from customers order by score desc nulls last, id limit 5) select * from top order by id; -- ordered
with top as (select customer_id, id, amount from orders order by amount desc nulls last, id limit 10) select customer_id, count(*) from top group by customer_id;
with recent as (select customer_id, id, placed from orders where placed is not null order by placed desc, id limit 20) select c.name, r.id from recent r join customers c on c.id = r.customer_id;
with t as (select id from customers order by id limit 3) select * from t order by id desc; -- ordered
with t as (select id from customers order by id desc offset 2 limit 3) select count(*), min(id) from t;
with w as (select id, rank() over (order by score desc nulls last) as rk from customers) select id, rk from w where rk <= 5;
-- MATERIALIZED and NOT MATERIALIZED.
with m as materialized (select id, region from customers where age > 60) select region, count(*) from m group by region;
with m as not materialized (select id, region, age from customers where age > 60) select * from m where id = 42;
with m as materialized (select id, name from customers where id = 42) select * from m;
with m as not materialized (select customer_id, amount from orders) select sum(amount) from m where customer_id = 7;
with m as materialized (select customer_id, amount from orders) select m.customer_id, count(*) from m where m.amount > 250 group by m.customer_id;
with m as materialized (select id, score from customers) select a.id from m a join m b on b.id = a.id where a.score > 990;
-- Joined to a co-located table on the sharding column.
with o as (select customer_id, count(*) as n from orders group by customer_id) select c.id, c.name, o.n from customers c join o on o.customer_id = c.id where c.region = 'fr';
with c as (select id from customers where age between 20 and 25) select c.id, o.id, o.amount from c join orders o on o.customer_id = c.id where o.amount > 100;
with o as (select customer_id, max(amount) as top from orders group by customer_id) select c.id, o.top from customers c left join o on o.customer_id = c.id where c.region = 'de';
with t(a, b) as (values (1, 'x'), (2, 'y'), (42, 'z')) select t.a, t.b, c.name from t join customers c on c.id = t.a;
-- Recursive, without tables and joined to one shard.
with recursive n(i) as (select 1 union all select i + 1 from n where i < 10) select i from n order by i; -- ordered
with recursive f(n, fact) as (select 1, 1::numeric union all select n + 1, fact * (n + 1) from f where n < 20) select n, fact from f order by n; -- ordered
with recursive fib(a, b, k) as (select 0::int8, 1::int8, 0 union all select b, a + b, k + 1 from fib where k < 30) select k, a from fib order by k desc limit 5; -- ordered
with recursive t(n) as (values (1) union all select n * 2 from t where n < 1000) select sum(n) from t;
with recursive n(i) as (select 1 union all select i + 1 from n where i < 5) select n.i, c.id, c.name from n, customers c where c.id = 7;
with recursive n(i) as (select 12 union all select i + 1 from n where i < 21) select n.i, o.amount from n join orders o on o.customer_id = 7 and o.id = n.i order by n.i; -- ordered
with recursive d(day) as (select date '2021-03-01' union all select day + 1 from d where day < date '2021-03-31') select d.day, count(o.id) from d left join orders o on o.due = d.day and o.customer_id = 7 group by d.day order by d.day; -- ordered
with recursive n(i) as (select 1 union all select i + 1 from n where i < 300) select count(*) from n join customers c on c.id = n.i;
with recursive chain(id, depth) as (select id, 0 from customers where id = 7 union all select c.id, ch.depth + 1 from chain ch join customers c on c.id = ch.id + 100 where ch.depth < 2) select * from chain;
-- In subqueries.
select id, name from customers where id in (with o as (select customer_id from orders where amount > 290) select customer_id from o);
select c.id, (with o as (select count(*) as n from orders where customer_id = c.id) select n from o) from customers c where c.region = 'fr';
select * from (with t as (select region, count(*) as n from customers group by region) select * from t where n > 20) s;
select count(*) from (with c as (select id from customers where id = 42) select * from c) s;
