//! Change sources: Postgres (logical replication, pgoutput) and MySQL/MariaDB (ROW binlog).
pub mod mysql;
pub mod postgres;
