//! Change sources. Postgres today (logical replication, pgoutput); MySQL/MariaDB next.
pub mod postgres;
