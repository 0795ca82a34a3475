-- Subqueries: scalar, IN, ANY/ALL and EXISTS subqueries and derived tables.
-- A subquery over a sharded table sees all shards unless it is correlated on
-- the sharding column of a co-located outer table or fixed to one shard.
-- Traps: scalar subqueries that need the whole table (avg, max), ones
-- returning no row (NULL), NOT IN with a NULL in the subquery (no rows at
-- all), subqueries matching on non-key columns or against devices.owner_id,
-- orders without customers, ORDER BY/LIMIT inside derived tables (the top
-- rows of the whole table, not of each shard).
-- Scalar subqueries over the whole table.
select id, score from customers where score > (select avg(score) from customers) order by score desc, id limit 20; -- ordered
select id, name, score from customers where score = (select max(score) from customers);
select id, age from customers where age = (select min(age) from customers where region = 'fr');
select customer_id, id, amount from orders where amount = (select max(amount) from orders);
select customer_id, id from orders where amount > (select avg(amount) * 1.9 from orders);
select (select max(score) from customers)::int8 - (select min(score) from customers) as spread;
select c.id, c.score from customers c where c.score > (select avg(c2.score) from customers c2 where c2.region = c.region) + 800;
select id, name from customers where id = (select customer_id from orders where id = 13);
select id, region from customers where region = (select code from regions where name = 'France');
-- Scalar subqueries that return no row: NULL.
select id from customers where score > (select score from customers where id = -12345);
select (select name from customers where id = 123456789) as missing;
select id, coalesce((select sum(amount) from orders o where o.customer_id = c.id), 0) as total from customers c where c.region = 'xx';
-- IN and NOT IN, co-located on the sharding column.
select id, name from customers where id in (select customer_id from orders where status = 'cancelled' and amount > 200);
select id, name from customers where id not in (select customer_id from orders);
select id from customers where id in (select customer_id from orders where qty = 10) and region = 'us';
select count(*) from orders o where o.customer_id not in (select id from customers);
-- IN and NOT IN on other columns.
select id from customers where region in (select code from regions where rank = 2);
select id from customers where region not in (select code from regions where rank is not null);
select id, region from customers where region not in (select code from regions);
select id, model from devices where owner_id in (select id from customers where region = 'de') order by model nulls first, id; -- ordered
select id, model from devices where owner_id not in (select id from customers);
select id from customers where id in (select owner_id from devices where model = 'gamma');
select id from customers where (region, active) in (select code, rank = 2 from regions);
select key, count(*) from events e where e.kind in (select status from orders where amount > 295) group by key;
-- NOT IN with a NULL in the subquery never holds.
select id from customers where id not in (select owner_id from devices);
select count(*) from customers where id not in (select owner_id from devices where owner_id is not null);
select id from customers where region not in (select region from customers where id between 1 and 50);
-- ANY and ALL.
select id, age from customers where age = any (select qty from orders where customer_id = 7);
select id, score from customers where score > all (select score from customers where region = 'fr');
select id, score from customers where score > all (select score from customers where region = 'fr' and score is not null);
select id from customers where region = any (select code from regions where tz like 'Europe/%');
select customer_id, id from orders where amount >= all (select amount from orders where amount is not null);
-- EXISTS and NOT EXISTS, correlated and not.
select c.id, c.name from customers c where exists (select 1 from orders o where o.customer_id = c.id and o.status = 'shipped' and o.amount > 250);
select c.id from customers c where not exists (select 1 from orders o where o.customer_id = c.id);
select c.id, c.region from customers c where not exists (select 1 from regions r where r.code = c.region);
select r.code from regions r where not exists (select 1 from customers c where c.region = r.code);
select r.code, r.name from regions r where exists (select 1 from customers c where c.region = r.code and c.age > 90);
select d.id, d.model from devices d where exists (select 1 from customers c where c.id = d.owner_id and c.active);
select o.customer_id, o.id from orders o where not exists (select 1 from customers c where c.id = o.customer_id) order by o.id; -- ordered
select count(*) from customers where exists (select 1 from orders where amount > 299);
select id from customers where id = 7 and exists (select 1 from devices where owner_id = 7);
-- Scalar subqueries in the select list.
select c.id, (select count(*) from orders o where o.customer_id = c.id) as n from customers c where c.region = 'fr' order by n desc, c.id; -- ordered
select c.id, (select sum(o.amount) from orders o where o.customer_id = c.id) as total from customers c where c.age > 95;
select c.id, (select o.id from orders o where o.customer_id = c.id order by o.amount desc nulls last, o.id limit 1) as top from customers c where c.region = 'de';
select o.id, (select c.name from customers c where c.id = o.customer_id) from orders o where o.status = 'new' and o.qty > 8;
select d.id, (select c.name from customers c where c.id = d.owner_id) from devices d where d.fw = 101;
select c.id, c.name from customers c where (select count(*) from orders o where o.customer_id = c.id) >= 4;
select c.id, (select r.name from regions r where r.code = c.region) from customers c where c.id < 20;
-- Derived tables.
select d.region, d.n from (select region, count(*) as n from customers group by region) d where d.n > 25;
select avg(t.total), max(t.total) from (select customer_id, sum(amount) as total from orders group by customer_id) t;
select * from (select id, name, score from customers where active) a where a.score > 900;
select t.status, count(*) from (select o.status, c.region from orders o join customers c on c.id = o.customer_id) t where t.region = 'jp' group by t.status;
-- ORDER BY and LIMIT inside: top N of the whole table, then filtered.
select avg(t.score) from (select score from customers order by score desc nulls last, id limit 10) t;
select t.region, count(*) from (select id, region from customers order by age desc nulls last, id limit 50) t group by t.region;
select * from (select customer_id, id, amount from orders order by amount desc nulls last, id limit 10) t where t.customer_id <> 7;
select * from (select id, name from customers order by id limit 10 offset 5) t order by t.name, t.id; -- ordered
-- Fixed to one shard everywhere.
select t.id, t.name from (select id, name from customers where id = 42) t;
select c.id, c.name, (select count(*) from orders o where o.customer_id = 42) from customers c where c.id = 42;
select c.id from customers c where c.id = 42 and exists (select 1 from orders o where o.customer_id = 42 and o.customer_id = c.id);
select id, amount from orders where customer_id = 7 and amount = (select max(amount) from orders where customer_id = 7);
-- A scalar subquery's column keeps its type modifier (numeric(10,2),
-- varchar(40)) when the gateway binds its value into the statement.
select c.id, (select o.amount from orders o where o.id = 13) as a, (select o.note from orders o where o.id = 13) as n from customers c where c.id between 1 and 4;
select (select max(balance) from customers) as top, (select min(nick) from customers) as least_nick;
