-- Reads that shardgate must answer exactly as one Postgres does.
-- Statements are separated by a semicolon at the end of a line. Results are
-- compared in order when the statement has a top-level ORDER BY, else as
-- sets of rows.
select * from users where id = 7;
select * from users where id = '7';
select * from users where id = 7::bigint;
select * from users where 7 = id;
select * from users where id = 10000000000;
select * from users where id = -1;
select * from users where id in (1, 2, 3, 250, 299, 100000);
select * from users where id = 5 or id = 6;
select * from users where (id = 5 or id = 6) and name like 'user%';
select * from users where id = 5 and id = 6;
select * from users;
select id, name from users where score > 50;
select id, upper(name), score * 2 from users where email is null;
select * from users where id = 7.0;
select * from users where id between 10 and 20;
select * from users where country = 'de';
select u.id, u.name, o.id, o.amount from users u join orders o on o.user_id = u.id where u.id = 9;
select u.id, o.id from users u join orders o on o.user_id = u.id;
select u.id, o.id from users u left join orders o on o.user_id = u.id;
select u.id, o.id from users u left join orders o on o.user_id = u.id and o.user_id = 3;
select u.id, o.amount from users u, orders o where o.user_id = u.id and u.id in (4, 8, 15);
select u.name, c.name from users u join countries c on c.code = u.country where u.id = 11;
select u.name, c.name from users u join countries c on c.code = u.country;
select o.user_id, c.name from orders o join users u on u.id = o.user_id left join countries c on c.code = u.country;
select user_id, count(*), sum(amount), min(amount), max(amount), avg(amount) from orders group by user_id;
select user_id, count(*) from orders group by user_id having count(*) > 1;
select u.id, count(o.id) from users u left join orders o on o.user_id = u.id group by u.id;
select count(*) from users where id = 3;
select count(*) from users;
select count(*), count(email), count(1) from users where score > 10;
select count(*) from orders o join users u on u.id = o.user_id where u.country = 'de';
select id, name from users where id = 12 order by name;
select * from orders where user_id = 5 order by id desc limit 1;
select distinct status from orders where user_id = 8;
select id, row_number() over (order by id) from orders where user_id = 10;
select * from countries;
select * from countries order by name;
select count(*) from countries;
select code from countries where code in (select country from users where id = 1);
select * from users where id = 2 and exists (select 1 from orders where user_id = 2);
select * from users where id = 2 and score > (select avg(amount) from orders where user_id = 2);
select 1 + 1, 'x'::text, null::int;
select now() is not null;
select * from users where id = 1; select * from users where id = 2;
