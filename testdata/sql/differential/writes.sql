-- Writes run on both sides; afterwards every table must hold the same rows.
insert into users (id, name, email, country, score) values (1001, 'new 1', 'n1@example.com', 'de', 10);
insert into users (id, name, email, country, score) values (1002, 'new 2', null, 'fr', 20), (1003, 'new 3', null, 'jp', 30), (1004, 'new 4', 'n4@example.com', 'us', 40);
insert into orders (user_id, id, amount) values (1002, 1, 5.00), (1003, 1, 6.00), (1004, 1, 7.00) returning user_id, amount;
update users set score = score + 1 where id = 1001;
update users set score = 0 where id in (1, 2, 3) returning id, score;
update users set name = name || '!' where score > 90;
update orders set status = 'paid' where user_id = 4 and id = 1;
delete from orders where user_id = 5;
delete from orders where amount > 250 returning user_id, id;
delete from users where id = 299;
insert into countries (code, name) values ('it', 'Italy');
update countries set name = 'Deutschland' where code = 'de';
delete from countries where code = 'it';
insert into users (id, name) values (1005, 'conflict') on conflict (id) do update set name = excluded.name;
insert into users (id, name) values (1005, 'conflict 2') on conflict (id) do update set name = excluded.name;
insert into users (id, name) values (1005, 'ignored') on conflict do nothing;
