-- Run once by the mysql image on an empty data directory (docker-entrypoint-initdb.d), in
-- database `shop`: the replication user rowstream connects as, and the sample tables.
CREATE USER 'rowstream'@'%' IDENTIFIED BY 'rowstream';
GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'rowstream'@'%';
CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(200));
CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, amount DECIMAL(10,2) NOT NULL,
                     status VARCHAR(20) NOT NULL DEFAULT 'new');
INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', 'grace@example.com');
INSERT INTO orders (id, customer_id, amount) VALUES (100, 1, 19.90), (101, 2, 5.00);
