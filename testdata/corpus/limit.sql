-- LIMIT, OFFSET and FETCH FIRST across shards: each shard is asked for
-- LIMIT + OFFSET rows, the gateway merges and cuts. Every entry orders by a
-- unique column (or projects only its sort key), so the rows are fixed.
-- Traps: LIMIT 0, ALL and NULL, OFFSET past the end, int8-sized bounds,
-- non-integer and expression bounds, WITH TIES.
select id, name from customers order by id limit 10; -- ordered
select id, name from customers order by id desc limit 5; -- ordered
select id from customers order by id limit 0; -- ordered
select id from customers order by id limit 10 offset 5; -- ordered
select id from customers order by id offset 300; -- ordered
select id from customers order by id offset 1000; -- ordered
select id from customers order by id limit all; -- ordered
select id from customers order by id limit null; -- ordered
select id from customers order by id offset 0; -- ordered
select id from customers order by id limit 5 offset 0; -- ordered
select id from customers order by id fetch first 3 rows only; -- ordered
select id from customers order by id fetch first row only; -- ordered
select id from customers order by id offset 2 rows fetch next 4 rows only; -- ordered
select id from customers order by id limit 3 + 2; -- ordered
select id from customers order by id limit '5'; -- ordered
select id from customers order by id limit 5::int8; -- ordered
select id from customers order by id limit 2.5; -- ordered
select id from customers order by id limit (select 4); -- ordered
select id from customers order by id offset 9223372036854775807; -- ordered
select id from customers order by id limit 9223372036854775807 offset 5; -- ordered
select id from customers order by id limit 3 offset 9223372036854775806; -- ordered
select id, age from customers order by age, id limit 20; -- ordered
select id, age from customers order by age desc nulls last, id limit 20 offset 3; -- ordered
select age from customers order by age limit 10; -- ordered
select age from customers order by age desc limit 10 offset 10; -- ordered
select id, name from customers order by name, id limit 15; -- ordered
select id, name from customers order by name nulls first, id fetch first 4 rows only; -- ordered
select id, ratio from customers order by ratio desc, id limit 10; -- ordered
select id, weight from customers order by weight, id limit 12; -- ordered
select id, rating from customers order by rating desc nulls last, id limit 12; -- ordered
select id, born from customers order by born desc, id limit 6; -- ordered
select id, joined from customers order by joined nulls first, id limit 6; -- ordered
select id, token from customers order by token, id limit 4; -- ordered
select name from customers order by name fetch first 3 rows with ties; -- ordered
select id, name from customers order by id fetch first 3 rows with ties; -- ordered
select customer_id, id from orders order by id limit 25; -- ordered
select customer_id, id from orders order by customer_id, id limit 25 offset 240; -- ordered
select customer_id, id from orders order by customer_id desc, id desc limit 10; -- ordered
select customer_id, id, amount from orders where customer_id = 7 order by amount desc, id limit 5; -- ordered
select id from orders where customer_id = 7 order by id offset 245; -- ordered
select customer_id, id, amount from orders where customer_id in (1, 2, 3, 4, 7) order by amount, id limit 8; -- ordered
select key, seq from events order by key, seq limit 30; -- ordered
select key, seq from events order by seq desc limit 7; -- ordered
select key, seq, val from events order by val desc, seq limit 9; -- ordered
select id from devices order by id limit 3; -- ordered
select id from devices order by id desc offset 145; -- ordered
select code from regions order by code limit 2 offset 1; -- ordered
select id from customers where id in (1, 2, 3, 4, 5, 6) order by id limit 2 offset 2; -- ordered
select id from customers where id = 1 limit 1;
select * from customers where id = 7 limit 5;
select distinct region from customers order by region limit 3; -- ordered
select region, count(*) from customers group by region order by region limit 4; -- ordered
select count(*) from (select id from customers order by id limit 10) s;
select id from customers limit 1000;
select id from customers order by id limit 3 offset null; -- ordered
select id from customers order by id limit all offset 302; -- ordered
select id from customers order by id fetch first 0 rows only; -- ordered
select id from customers order by id fetch first (2 + 1) rows only; -- ordered
select id from customers order by id fetch next 2 row only; -- ordered
select id from customers order by id offset 3 row; -- ordered
select id, name from customers order by name collate "C.utf8", id limit 7; -- ordered
select name collate "und-x-icu" as n, id from customers order by n, id limit 7; -- ordered
select id, name from customers order by 2 desc, 1 limit 5 offset 5; -- ordered
select key, seq from events where key in ('a', 'A', 'ä', 'Ä') order by key desc, seq desc limit 10 offset 100; -- ordered
-- FETCH FIRST ... WITH TIES over sort keys with ties: all rows tied with
-- the last one come, so the set of rows is fixed even where their order is
-- not (those entries are compared as multisets); OFFSETs end where a tie
-- group ends, or skip into a group of identical rows. Ties are by value:
-- -0 and 0, 1.5 and 1.50, '1 day' and '24:00:00', '1 mon' and '30 days',
-- and under lower() or another collation.
select id, age from customers order by age fetch first 5 rows with ties;
select age from customers order by age fetch first 5 rows with ties; -- ordered
select region from customers order by region fetch first 1 row with ties; -- ordered
select region, id from customers order by region desc nulls last fetch first 2 rows with ties;
select id from customers order by region fetch first 0 rows with ties;
select status, id from orders order by status offset 110 rows fetch first 3 rows with ties;
select name, id from customers order by name nulls first fetch first 1 rows with ties;
select age from customers order by age desc nulls first offset 2 rows fetch next 3 rows with ties; -- ordered
select id, weight from customers order by weight fetch first 131 rows with ties;
select id, ratio from customers order by ratio fetch first 18 rows with ties;
select id, ratio from customers order by ratio offset 71 rows fetch first 2 rows with ties;
select id, trial from customers order by trial fetch first 109 rows with ties;
select id, trial from customers order by trial offset 170 rows fetch first 26 rows with ties;
select id, name from customers order by lower(name) fetch first 7 rows with ties;
select id, prefs from customers order by prefs fetch first 1 row with ties;
select id, name from customers order by name collate "C" desc fetch first 2 rows with ties;
select key, count(*) from events group by key order by count(*) desc fetch first 2 rows with ties;
