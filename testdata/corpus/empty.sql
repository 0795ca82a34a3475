-- Statements that return no rows: the RowDescription and command tag
-- must still match, from one shard, several, or none.
select * from customers where id = 301;
select * from customers where id = 100000;
select * from customers where id in (301, 302);
select * from customers where id = any('{}'::int8[]);
select * from customers where false;
select * from customers where id = 1 and id = 2;
select * from customers where id < -9223372036854775808;
select * from customers where id > 9223372036854775807;
select * from customers where id = 9223372036854775806;
select * from customers where name = 'no such name';
select * from customers where id not in (1, null);
select * from customers where name not in ('a', null);
select * from customers where id = null;
select * from customers where 1 = 0;
select * from customers where id between 10 and 5;
select id, name from customers where age > 40000 order by id; -- ordered
select id from customers order by id limit 0; -- ordered
select id from customers order by id offset 400; -- ordered
select id from customers where id = 7 offset 1;
select * from orders where customer_id = 301;
select * from orders where customer_id = 7 and id = -1;
select * from orders where customer_id = 1 and customer_id = 2;
select customer_id, count(*) from orders where customer_id = 301 group by customer_id;
select customer_id, count(*) from orders group by customer_id having count(*) > 1000;
select region, count(*) from customers group by region having count(*) > 10000;
select customer_id, id, count(*) from orders group by customer_id, id having count(*) > 1;
select count(*) from customers where false group by region;
select distinct region from customers where region = 'nope';
select * from events where key = 'nope';
select * from events where key = 'A ';
select * from events where key = 'a  ';
select * from events where key in ('b', 'c');
select * from events where key = 'ä' and seq < 0;
select key from events where key = 'a' and key = 'A';
select * from devices where id = '12345678-1234-1234-1234-123456789abc';
select * from devices where id in ('12345678-1234-1234-1234-123456789abc', '22345678-1234-1234-1234-123456789abc');
select * from devices where temp > 'NaN';
select * from regions where code = 'qq';
select * from regions where false;
select c.id from customers c join orders o on o.customer_id = c.id where c.id = 301;
select c.id from customers c join orders o on o.customer_id = c.id where o.amount < 0;
select * from customers where ratio > 'NaN';
select * from customers where weight < '-Infinity';
select * from customers where born < '-infinity';
select * from customers where trial < '-100 years';
select * from customers where seen > 'infinity';
select * from (select * from customers where id = 1) s where false;
select id, name from customers where name > 'zzzz' and name < 'a' order by id; -- ordered
-- No rows around expressions over aggregates, variances, DISTINCT and
-- WITH TIES: the RowDescription still comes from the evaluating shard.
select region, count(*) + 1 from customers where false group by region;
select region, 1 / (count(*) - count(*)) from customers where false group by region;
select status, variance(qty), stddev(amount) from orders where qty > 32766 and qty < 0 group by status;
select distinct payload from events where seq < 0;
select count(*) + 1 from customers having count(*) > 1000;
select age from customers where age > 32767 order by age fetch first 3 rows with ties; -- ordered
