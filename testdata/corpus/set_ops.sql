-- Set operations across shards: UNION ALL only concatenates, but UNION,
-- INTERSECT and EXCEPT (and their ALL forms, which count duplicates) must
-- see every shard's rows at once. Traps: the same value on several shards,
-- arms fixed to one shard next to arms over all shards, arms over the
-- reference table or constants, column types resolved across arms (int2
-- with int8, numeric(12,2) with numeric(10,2) or int, varchar with text,
-- unknown literals), NULLs that are equal here, ORDER BY, LIMIT and OFFSET
-- on the whole result. Values equal but printed apart (1.5, 1.50) stay out.
select id from customers union all select customer_id from orders;
select id from customers union select customer_id from orders;
select id from customers intersect select customer_id from orders;
select id from customers except select customer_id from orders;
select customer_id from orders except select id from customers;
select customer_id from orders except all select id from customers;
select customer_id from orders intersect all select customer_id from orders where status = 'paid';
select region from customers union select region from customers;
select region from customers union select code from regions;
select region from customers except select code from regions;
select code from regions except select region from customers;
select region from customers intersect select code from regions;
select region from customers intersect all select region from customers where active;
select region from customers except all select region from customers where active;
-- Arms fixed to one shard, or to a few, next to arms over all shards.
select id, name from customers where id = 42 union all select id, name from customers where id = 7;
select id from customers where id = 42 intersect select customer_id from orders;
select customer_id, id, amount from orders where customer_id = 42 union all select customer_id, id, amount from orders where customer_id = 7 order by id; -- ordered
select id, 'customer' as kind from customers where id = 42 union all select 0, name from regions where code = 'de';
select customer_id from orders where customer_id = 7 except select id from customers where id = 7;
-- Constant rows and aggregates in an arm.
select 1 union all select count(*) from customers;
select count(*) from customers union all select count(*) from orders union all select count(*) from events;
select 'customers' as t, count(*) from customers union all select 'orders', count(*) from orders order by t; -- ordered
select max(score) from customers union select min(score) from customers;
select region, count(*) from customers group by region union all select code, 0 from regions;
select status, sum(amount) from orders group by status union all select 'all', sum(amount) from orders;
select 1 as x union select 2 union select 1 order by x; -- ordered
-- Column types that differ between the arms.
select age from customers union select qty from orders;
select age from customers where age < 10 union select id from customers where id < 5;
select balance from customers where id < 10 union all select amount from orders where customer_id = 7 and id < 20;
select balance from customers where id = 42 union all select 1;
select score from customers where id = 42 union select 1.5;
select nick from customers where id between 1 and 20 union select name from customers where id between 10 and 30;
select nick from customers where id < 15 union all select note from orders where customer_id = 7 and id < 30;
select 'none' union all select name from customers where id = 42;
select code from regions union all select 'xy';
select status from orders union select kind from events;
select status from orders except select kind from events;
select key from events intersect select name from customers;
select id from devices where fw = 100 union all select token from customers where id < 10;
select born from customers where id < 20 union select due from orders where customer_id < 20;
select active from customers union select ok from events;
-- NULLs: set operations treat NULLs as equal, so one NULL survives.
select id, name from customers where name is null union select id, nick from customers where nick is null;
select name from customers where name is null union select null;
select nick from customers intersect select null::varchar;
select owner_id from devices except select id from customers;
-- Nested set operations.
(select id from customers where region = 'us' union select id from customers where region = 'de') except select customer_id from orders;
select id from customers where region = 'us' union (select id from customers where age > 50 intersect select customer_id from orders where amount > 200);
(select region from customers except select code from regions) union all (select code from regions except select region from customers);
(select customer_id from orders where status = 'new' intersect select customer_id from orders where status = 'paid') except all select owner_id from devices;
-- ORDER BY, LIMIT and OFFSET on the whole result, by name and by ordinal.
select id, name from customers where region = 'fr' union select id, name from customers where region = 'de' order by id; -- ordered
select id, name from customers where region = 'fr' union all select id, name from customers where region = 'de' order by name, id; -- ordered
select id, age from customers where age > 95 union select customer_id, qty from orders where qty > 9 order by 2 desc, 1; -- ordered
select id from customers union select customer_id from orders order by id limit 10; -- ordered
select id from customers union select customer_id from orders order by 1 desc limit 5 offset 3; -- ordered
select region from customers union select code from regions order by region nulls first; -- ordered
select customer_id, id from orders where customer_id < 10 union all select id, 0 from customers where id < 10 order by 1, 2 limit 12; -- ordered
select name from customers where id < 50 intersect select key from events order by name desc; -- ordered
-- Set operations inside derived tables, subqueries and aggregates.
select count(*) from (select region from customers union select code from regions) u;
select u.region, count(*) from (select region from customers union all select code from regions) u group by u.region;
select id, name from customers where id in (select customer_id from orders where status = 'new' intersect select customer_id from orders where status = 'paid');
