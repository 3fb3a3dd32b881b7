//! Shared harness for integration tests against the real services (`scripts/services.sh up`):
//! Postgres (127.0.0.1:5432, logical), MariaDB (127.0.0.1:3306, ROW binlog), a Kafka-protocol
//! broker (127.0.0.1:9092) and the real `rowstream` binary.
//!
//! Split by concern: `process` (the binary), `kafka` (reading topics, history assertions),
//! `pg` and `my` (each database's setup), `db` (one face over both databases, for the
//! scenarios written once and run for each source in `tests/both.rs`).
//! Each test owns its database, slot, publication, topics and state dir (named after the test),
//! and cleans up leftovers of earlier runs when it starts. Waits are on conditions with deadlines.
#![allow(dead_code, unused_imports)]

pub mod db;
pub mod kafka;
pub mod mariaserver;
pub mod my;
pub mod paimon;
pub mod pg;
pub mod pgserver;
pub mod process;
pub mod proxy;
pub mod tls;

pub use db::*;
pub use kafka::*;
pub use mariaserver::*;
pub use my::*;
pub use pg::*;
pub use pgserver::*;
pub use process::*;
pub use proxy::*;
pub use tls::*;

use std::time::{Duration, Instant};

/// A prefix unique to this test process, so topics of earlier runs never mix in.
pub fn run_id() -> u64 {
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    })
}

/// Wait for an async condition with a deadline.
pub async fn wait_for<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
