-- The schema of a small SaaS application, as its migrations made it, one
-- file run with psql. Keyspace saas (testdata/vschema/saas.yaml) shards the
-- accounts' rows by account id and keeps the rest as reference tables.
-- The role app_reader exists on every server beforehand: roles belong to
-- the server, not to its databases.

-- 0001: extensions, schemas and types.
CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA IF NOT EXISTS billing;
CREATE SCHEMA IF NOT EXISTS audit;

CREATE TYPE account_status AS ENUM ('trial', 'active', 'suspended');
CREATE DOMAIN email_address AS citext CHECK (VALUE ~ '^[^@[:space:]]+@[^@[:space:]]+$');
CREATE TYPE billing.money_amount AS (amount numeric(12, 2), currency char(3));
CREATE TYPE billing.period AS RANGE (subtype = date);

-- 0002: tables.
CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    email email_address NOT NULL,
    status account_status NOT NULL DEFAULT 'trial',
    api_key text NOT NULL DEFAULT encode(gen_random_bytes(16), 'hex'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX accounts_id_email ON accounts (id, email);

CREATE TABLE projects (
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    title text NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE plans (
    code text PRIMARY KEY,
    title text NOT NULL,
    monthly billing.money_amount
);

CREATE SEQUENCE billing.invoice_numbers START 1000;
CREATE TABLE billing.invoices (
    account_id bigint NOT NULL REFERENCES accounts (id),
    number bigint NOT NULL DEFAULT nextval('billing.invoice_numbers'),
    plan_code text REFERENCES plans (code),
    total billing.money_amount,
    covers billing.period,
    issued_on date NOT NULL DEFAULT current_date,
    PRIMARY KEY (account_id, number)
);

CREATE TABLE audit.events (
    account_id bigint NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    what text NOT NULL,
    detail jsonb
);
CREATE INDEX events_account_at ON audit.events (account_id, at);

-- 0003: functions, procedures, triggers.
CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER accounts_touch BEFORE UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE FUNCTION audit.record_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit.events (account_id, what, detail)
    VALUES (NEW.id, 'status', jsonb_build_object('from', OLD.status, 'to', NEW.status));
    RETURN NEW;
END
$$;
CREATE TRIGGER accounts_status AFTER UPDATE OF status ON accounts
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION audit.record_status();

CREATE FUNCTION billing.total_of(m billing.money_amount) RETURNS numeric
    LANGUAGE sql IMMUTABLE RETURN (m).amount;

CREATE PROCEDURE billing.suspend(account bigint) LANGUAGE sql
    BEGIN ATOMIC
        UPDATE accounts SET status = 'suspended' WHERE id = account;
    END;

CREATE FUNCTION billing.add_money(total numeric, m billing.money_amount) RETURNS numeric
    LANGUAGE sql IMMUTABLE RETURN total + coalesce((m).amount, 0);
CREATE AGGREGATE billing.sum_money(billing.money_amount) (
    sfunc = billing.add_money,
    stype = numeric,
    initcond = '0'
);
CREATE FUNCTION billing.same_currency(a billing.money_amount, b billing.money_amount) RETURNS boolean
    LANGUAGE sql IMMUTABLE RETURN (a).currency = (b).currency;
CREATE OPERATOR billing.~~~ (
    leftarg = billing.money_amount,
    rightarg = billing.money_amount,
    function = billing.same_currency
);

-- 0004: views, privileges, comments, row security.
CREATE VIEW active_accounts AS
    SELECT id, name, email FROM accounts WHERE status = 'active';
CREATE MATERIALIZED VIEW billing.invoices_by_plan AS
    SELECT plan_code, count(*) AS invoices FROM billing.invoices GROUP BY plan_code;
CREATE UNIQUE INDEX invoices_by_plan_code ON billing.invoices_by_plan (plan_code);

COMMENT ON TABLE accounts IS 'Customers: one row per account.';
COMMENT ON COLUMN accounts.api_key IS 'Secret; rotate it from the console.';
COMMENT ON SCHEMA billing IS 'Invoices and what they are billed by.';

GRANT USAGE ON SCHEMA billing TO app_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA billing TO app_reader;
GRANT SELECT ON accounts, projects, plans TO app_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA billing GRANT SELECT ON TABLES TO app_reader;

ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
CREATE POLICY projects_of_account ON projects
    USING (account_id = nullif(current_setting('app.account_id', true), '')::bigint);

-- 0005: later changes.
ALTER TABLE projects RENAME COLUMN title TO name;
ALTER TABLE projects ADD COLUMN archived boolean NOT NULL DEFAULT false;
ALTER TYPE account_status ADD VALUE 'closed';
ALTER TABLE accounts ADD CONSTRAINT accounts_name_length CHECK (length(name) <= 200);
ALTER SEQUENCE billing.invoice_numbers INCREMENT BY 10;
ALTER FUNCTION touch_updated_at() SET search_path = public;
ALTER VIEW active_accounts RENAME TO current_accounts;
CREATE INDEX CONCURRENTLY projects_live ON projects (account_id) WHERE NOT archived;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'priority') THEN
        CREATE TYPE priority AS ENUM ('low', 'normal', 'high');
    END IF;
END
$$;
ALTER TABLE projects ADD COLUMN priority priority NOT NULL DEFAULT 'normal';

-- 0006: a table the vschema does not list, and data the migrations ship.
CREATE TABLE feature_flags (
    id integer GENERATED ALWAYS AS IDENTITY,
    name text PRIMARY KEY,
    enabled boolean NOT NULL DEFAULT false
);
INSERT INTO feature_flags (name, enabled) VALUES ('new_billing', true), ('dark_mode', false);
INSERT INTO plans (code, title, monthly) VALUES ('free', 'Free', ROW(0, 'EUR')), ('pro', 'Pro', ROW(20, 'EUR'));
REFRESH MATERIALIZED VIEW billing.invoices_by_plan;
