-- Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d),
-- in database `shop`: the replication user rowstream connects as, and the sample tables.
CREATE ROLE rowstream WITH LOGIN REPLICATION PASSWORD 'rowstream';
GRANT CONNECT ON DATABASE shop TO rowstream;
GRANT USAGE ON SCHEMA public TO rowstream;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO rowstream;
GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO rowstream;
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers(id),
                     amount numeric(10,2) NOT NULL, status text NOT NULL DEFAULT 'new');
GRANT SELECT ON ALL TABLES IN SCHEMA public TO rowstream;
INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', 'grace@example.com');
INSERT INTO orders (id, customer_id, amount) VALUES (100, 1, 19.90), (101, 2, 5.00);
-- FOR ALL TABLES needs a superuser: created here, so rowstream (not a superuser) uses it
CREATE PUBLICATION rowstream FOR ALL TABLES;
