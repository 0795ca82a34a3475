-- IN lists, = ANY and ORs of the sharding column: each value goes to its
-- own shard. Traps: duplicates, NULL members, empty arrays, keys absent
-- from the data, mixed spellings of the same uuid.
select * from customers where id in (1, 2, 3);
select * from customers where id in (1, 301, 100000);
select * from customers where id in (-9223372036854775808, 9223372036854775807);
select * from customers where id in (0, -1, -2);
select * from customers where id in ('1', '2');
select * from customers where id in (7);
select * from customers where id in (7, 7, 7);
select * from customers where id in (1, null);
select * from customers where id in (1::int2, 2::int4, 3::int8);
select * from customers where id not in (1, 2, 3);
select id, name from customers where id in (10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160);
select * from customers where id = any('{1,2,3}');
select * from customers where id = any('{1,2,3}'::bigint[]);
select * from customers where id = any(array[1, 2, 3]);
select * from customers where id = any(array[4]::int8[]);
select * from customers where id = any(array[1, null]);
select * from customers where id = any('{-9223372036854775808,0}'::int8[]);
select * from customers where id <> all(array[1, 2]);
select * from customers where id = some(array[5, 6]);
select * from customers where id = 5 or id = 6;
select * from customers where id = 5 or id = 9223372036854775807;
select * from customers where id = 5 or name = 'a';
select * from customers where (id = 5 or id = 6) and active;
select * from customers where (id = 5 or id = 6) and (name is null or age > 10);
select * from customers where id in (5, 6) and id in (6, 7);
select * from customers where id = 5 or id in (6, 7) or id = any('{8}');
select * from customers where id in (1, 2) order by id; -- ordered
select * from customers where id in (1, 2, 3, 4, 5) order by name, id; -- ordered
select * from orders where customer_id in (1, 2, 7);
select * from orders where customer_id in (100000, -5, 424242);
select * from orders where customer_id = any('{3,4}');
select * from orders where customer_id in (3, 4) and id > 10;
select * from events where key in ('a', 'A', 'ä', 'Ä');
select * from events where key in ('', ' ', 'a ');
select * from events where key = any('{a,ß,SS}');
select * from events where key = any(array['日本', '😀']);
select * from events where key in ('nope', 'key-03');
select * from events where key in ('a'::varchar, 'A'::varchar(1));
select * from events where key = 'ss' or key = 'SS';
select * from events where key in ('key-01', 'key-02', 'key-03', 'key-04', 'key-05', 'key-06', 'key-07', 'key-08');
select * from devices where id in ('00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff');
select * from devices where id = any('{00000000-0000-0000-0000-000000000000,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}');
select * from devices where id in ('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{ffffffff-ffff-ffff-ffff-ffffffffffff}');
select * from devices where id in ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11');
select * from regions where code in ('us', 'de');
select c.id, o.id from customers c join orders o on o.customer_id = c.id where c.id in (1, 2, 3, 4);
select c.id, count(o.id) from customers c left join orders o on o.customer_id = c.id where c.id in (1, 2, 3, 4, 7) group by c.id;
select id from customers where id in (select 1);
select * from customers where id = any('{1,2}') or id = 3;
select * from customers where id in (2, 4, 6) and id = any('{4,6,8}');
