-- NULL against '' and against JSON null, three-valued logic, NULL
-- groups and sort positions, outer joins that make NULLs, orphan orders.
select id from customers where name is null;
select id from customers where name is not null;
select id from customers where name = '';
select id from customers where name <> '';
select id from customers where nick is null and name is null;
select id, coalesce(name, '<null>') from customers;
select id, nullif(name, '') from customers;
select id from customers where name is distinct from 'a';
select id from customers where name is not distinct from null;
select id from customers where active is unknown;
select id from customers where active is not true;
select id from customers where active is false;
select id from customers where not active;
select id from customers where region is null or region = 'xx';
select id from customers where avatar = '\x';
select id from customers where avatar is null;
select id from customers where prefs = 'null';
select id from customers where prefs is null;
select id from customers where prefs -> 'a' is null;
select id from customers where code = '';
select id, code is null, code = '' from customers;
select id, name = nick, name < nick from customers;
select customer_id, id from orders where status is null;
select customer_id, id from orders where status = '';
select customer_id, id from orders where note is null and discount is null;
select key, seq from events where kind is null;
select key, seq from events where kind = '';
select key, seq from events where payload is null;
select key, seq from events where payload = 'null';
select key, seq from events where ok is not false;
select id from devices where serial is null;
select id from devices where serial = '';
select id from devices where owner_id is null;
select count(*), count(name), count(nick), count(region) from customers;
select sum(age), avg(age), max(name) from customers where age is null;
select null::int, null::text from customers where id = 1;
select id, name from customers where id = -2;
select id, greatest(age, score), least(age, score) from customers;
select name, count(*) from customers where name is null group by name;
select case when name is null then 'none' when name = '' then 'empty' else 'some' end as k, count(*) from customers group by 1;
select id, name from customers order by name nulls first, id; -- ordered
select id, name from customers order by name desc nulls first, id; -- ordered
select customer_id, id, discount from orders order by discount nulls last, id; -- ordered
select id, coalesce(nick, name, 'none') from customers;
select c.id, o.id from customers c left join orders o on o.customer_id = c.id where o.id is null;
select o.customer_id, o.id, c.id from orders o left join customers c on c.id = o.customer_id where c.id is null;
select c.id, r.code from customers c left join regions r on r.code = c.region where r.code is null;
select c.id, o.id from customers c full join orders o on o.customer_id = c.id where c.id is null or o.id is null;
select id, array_remove(array[name, nick], null) from customers;
select id, prefs -> 'b' -> 2 -> 'c', prefs -> 'b' -> 2 ->> 'c' from customers where prefs ? 'b';
-- NULLs into and out of expressions over aggregates, variances, DISTINCT
-- and jsonb ordering: NULL-only groups, SQL NULL next to JSON null.
select region, coalesce(max(nick), '-'), count(nick) + 0 from customers where nick is null group by region;
select distinct name, nick from customers where name is null or nick is null;
select variance(age), stddev(age), var_pop(score) from customers where age is null;
select count(distinct nick), count(*) from customers where nick is null;
select key, seq, payload from events where payload is null or payload = '[]' or payload = 'null' order by payload desc, seq; -- ordered
