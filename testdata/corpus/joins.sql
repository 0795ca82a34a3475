-- Joins: customers and orders are co-located (id = customer_id), so their
-- join can run on each shard; regions is on every shard; devices.owner_id
-- refers to customers.id on other shards, and events meet customers only on
-- non-key columns, so those joins need rows from several shards. Traps:
-- customers without orders and orders without customers (outer joins on
-- both sides), region 'xx' missing from regions and region 'zz' without
-- customers, devices with no owner or an unknown one, USING on a column
-- that is not the key, LATERAL, semi- and anti-joins.
-- Co-located: customers and orders on id = customer_id.
select c.id, c.name, o.id, o.amount from customers c join orders o on o.customer_id = c.id;
select c.id, o.id from customers c left join orders o on o.customer_id = c.id;
select c.id, o.customer_id, o.id from customers c right join orders o on o.customer_id = c.id;
select c.id, o.customer_id, o.id from customers c full join orders o on o.customer_id = c.id;
select c.id, o.customer_id, o.id from customers c full join orders o on o.customer_id = c.id where c.id is null or o.id is null;
select customer_id, c.name, o.id from (select id as customer_id, name from customers) c join orders o using (customer_id) where c.name like 'cust 0%';
select c.id, c.name, o.id from customers c left join orders o on o.customer_id = c.id and o.status = 'cancelled' where c.region = 'fr';
select c.name, o.id, o.status from customers c join orders o on o.customer_id = c.id and o.status = 'paid' where c.region = 'fr';
select c.id, o.id, o.qty, c.age from customers c join orders o on o.customer_id = c.id and o.qty > c.age where c.region = 'jp';
select c.id, o.id from customers c join orders o on o.customer_id = c.id where c.id in (1, 2, 3, 42);
select c.id, o.id from customers c inner join orders o on o.customer_id = c.id where c.id = 7 order by o.id limit 5 offset 10; -- ordered
-- With aggregates, ORDER BY and LIMIT.
select c.region, count(*), sum(o.amount) from customers c join orders o on o.customer_id = c.id group by c.region;
select c.id, c.name, count(o.id), coalesce(sum(o.amount), 0) from customers c left join orders o on o.customer_id = c.id group by c.id, c.name;
select c.id, count(o.id) as n from customers c left join orders o on o.customer_id = c.id group by c.id order by n desc, c.id limit 10; -- ordered
select c.id, c.name, o.id, o.amount from customers c join orders o on o.customer_id = c.id order by o.amount desc nulls last, o.id limit 10; -- ordered
select o.status, count(distinct c.id), max(o.amount) from customers c join orders o on o.customer_id = c.id where c.active group by o.status;
select c.active, count(o.id), avg(o.amount) from customers c left join orders o on o.customer_id = c.id group by c.active order by c.active nulls first; -- ordered
-- The reference table regions, from either side.
select c.id, c.name, r.name from customers c join regions r on r.code = c.region;
select c.id, c.region, r.name, r.tz from customers c left join regions r on r.code = c.region;
select r.code, r.name, c.id from regions r left join customers c on c.region = r.code;
select r.code, count(c.id) from regions r left join customers c on c.region = r.code group by r.code;
select r.name, count(*) from customers c join regions r on r.code = c.region group by r.name order by r.name; -- ordered
select c.id, r.code from customers c right join regions r on r.code = c.region where c.id is null;
select r.code, c.id from regions r full join customers c on c.region = r.code where r.code is null or c.id is null;
select o.id, c.name, r.name from orders o join customers c on c.id = o.customer_id join regions r on r.code = c.region where o.amount > 280;
select c.region, r.rank, count(*) from customers c join orders o on o.customer_id = c.id left join regions r on r.code = c.region group by c.region, r.rank;
select c.id, r.name from customers c join regions r on r.code = c.region and r.rank = 1 where c.id = 42 or c.age > 95;
-- Not co-located: devices.owner_id against customers.id.
select d.id, d.model, c.id, c.name from devices d join customers c on c.id = d.owner_id;
select d.id, c.name from devices d left join customers c on c.id = d.owner_id;
select d.id, d.owner_id from devices d left join customers c on c.id = d.owner_id where c.id is null;
select d.id, c.name, c.region from devices d join customers c on c.id = d.owner_id where c.region = 'us';
select d.id, d.fw, c.id from devices d join customers c on c.id = d.owner_id where d.fw = 104;
select d.id, c.id, c.name from devices d join customers c on c.id = d.owner_id order by c.id, d.id; -- ordered
select d.id, c.id, c.score from devices d join customers c on c.id = d.owner_id where c.score > 500 order by c.score desc, d.id limit 10; -- ordered
select c.region, count(d.id) from customers c join devices d on d.owner_id = c.id group by c.region;
select c.id, count(d.id) from customers c left join devices d on d.owner_id = c.id group by c.id having count(d.id) > 1;
select d.model, count(*), count(distinct c.region) from devices d join customers c on c.id = d.owner_id group by d.model;
select d.id, d.model, c.name from devices d join customers c on c.id = d.owner_id where c.id = 7;
select c.id, o.id, d.id from customers c join orders o on o.customer_id = c.id join devices d on d.owner_id = c.id where o.amount > 250;
-- events against customers on non-key columns.
select e.key, e.seq, c.id from events e join customers c on c.name = e.key;
select c.id, count(*) from customers c join events e on e.key = c.nick group by c.id;
select e.key, e.seq, c.id from events e left join customers c on c.name = e.key where e.kind = 'buy';
select c.id, o.id from customers c join orders o on o.qty = c.age where c.region = 'fr' and o.status = 'new';
select c.id, count(*) from customers c join orders o using (id) where c.region = 'de' group by c.id;
-- Semi-joins and anti-joins.
select c.id from customers c where exists (select 1 from orders o where o.customer_id = c.id and o.status = 'new');
select c.id, c.name from customers c where c.id in (select d.owner_id from devices d where d.model = 'beta');
select c.id from customers c where not exists (select 1 from devices d where d.owner_id = c.id);
select c.id from customers c left join orders o on o.customer_id = c.id where o.id is null;
select o.customer_id, o.id from orders o left join customers c on c.id = o.customer_id where c.id is null;
-- LATERAL.
select c.id, l.id, l.amount from customers c, lateral (select o.id, o.amount from orders o where o.customer_id = c.id order by o.id limit 2) l;
select c.id, l.id from customers c left join lateral (select o.id from orders o where o.customer_id = c.id order by o.amount desc nulls last, o.id limit 1) l on true;
select c.id, l.n, l.total from customers c cross join lateral (select count(*) as n, sum(o.amount) as total from orders o where o.customer_id = c.id) l where c.region = 'de';
select c.id, r.name from customers c, lateral (select name from regions where code = c.region) r;
select c.id, r.tz from customers c left join lateral (select tz from regions where code = c.region and rank <= 2) r on true where c.age > 90;
select r.code, l.id from regions r, lateral (select c.id from customers c where c.region = r.code order by c.id limit 3) l;
-- Self-joins and cross joins.
select a.id, a.name, b.nick from customers a join customers b on b.id = a.id where a.age > 90;
select o1.customer_id, o1.id, o2.id from orders o1 join orders o2 on o2.customer_id = o1.customer_id and o2.id = o1.id + 1;
select a.id, b.id from customers a join customers b on b.id = a.id + 100 where a.id between 1 and 200;
select c.id, r.code from customers c cross join regions r where c.id = 42;
select a.id, b.id from customers a cross join customers b where a.id in (1, 2) and b.id in (3, 4);
-- A join at the gateway on a char(n) column: Postgres compares it as text,
-- trailing spaces dropped, which its printed value keeps.
select count(*) from customers c join events e on e.key = c.code;
select c.id, c.code, e.seq from customers c left join events e on e.key = c.code where c.id between 1 and 40 order by c.id, e.seq; -- ordered
