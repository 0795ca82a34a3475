#!/bin/sh
# Runs once per shard, when its data volume is new (postgres image,
# /docker-entrypoint-initdb.d): the role the gateway logs in as. It is no
# superuser; it owns the keyspace's database app, so it can create and change
# the keyspace's tables there and nothing else.
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres --set=password="$SHARD_PASSWORD" <<'SQL'
CREATE ROLE app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
CREATE DATABASE app OWNER app;
REVOKE ALL ON DATABASE app FROM PUBLIC;
SQL
