-- Schema of the differential corpus, created the same on one plain Postgres
-- and through shardgate in keyspace corpus (testdata/vschema/corpus.yaml).
-- Statements end with a semicolon at the end of a line.

-- Reference table: copied to every shard.
CREATE TABLE regions (
  code char(2) PRIMARY KEY,
  name text NOT NULL,
  tz text,
  rank int2
);

-- Sharded by the bigint id.
CREATE TABLE customers (
  id int8 PRIMARY KEY,
  name text,
  nick varchar(20),
  code char(4),
  region char(2),
  age int2,
  score int4,
  balance numeric(12,2),
  ratio numeric,
  rating float4,
  weight float8,
  active bool,
  avatar bytea,
  token uuid,
  born date,
  seen timestamp,
  joined timestamptz,
  trial interval,
  prefs jsonb
);

-- Co-located with customers (sharded by customer_id); id is unique on its
-- own in the data, so ORDER BY ..., id fixes the order.
CREATE TABLE orders (
  customer_id int8 NOT NULL,
  id int8 NOT NULL,
  qty int2,
  amount numeric(10,2),
  status text,
  placed timestamptz,
  due date,
  discount float8,
  note varchar(40),
  PRIMARY KEY (customer_id, id)
);

-- Sharded by a text key with case and unicode twins; seq is unique.
CREATE TABLE events (
  key text NOT NULL,
  seq int4 NOT NULL,
  kind varchar(16),
  val numeric,
  at timestamp,
  dur interval,
  ok bool,
  payload jsonb,
  PRIMARY KEY (key, seq)
);

-- Sharded by uuid.
CREATE TABLE devices (
  id uuid PRIMARY KEY,
  owner_id int8,
  model varchar(30),
  serial char(8),
  fw int4,
  temp float4,
  mac bytea,
  seen timestamptz
);
