CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, email text, country text, score int);
CREATE TABLE orders (user_id bigint NOT NULL, id int NOT NULL, amount numeric(10,2) NOT NULL, status text NOT NULL DEFAULT 'new', PRIMARY KEY (user_id, id));
