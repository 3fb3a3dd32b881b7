//! Postgres side of the harness: fresh databases (their slots dropped first), configs, topics,
//! and the slot's state as the server reports it.

use super::*;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

pub const PG: &str = "postgres://postgres@127.0.0.1:5432";

pub async fn connect(db: &str) -> Client {
    let (c, conn) = tokio_postgres::connect(&format!("{PG}/{db}"), NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {db}: {e} (run scripts/services.sh up)"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

/// A fresh database `name` (with its slots dropped first), returning a client on it.
pub async fn fresh_db(name: &str) -> Client {
    let admin = connect("postgres").await;
    // terminate walsenders on our slots, drop slots on this db, then the db
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = '{name}' AND active_pid IS NOT NULL"
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = admin
            .batch_execute(&format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{name}'"
            ))
            .await;
        if r.is_ok() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    connect(name).await
}

/// The topic of `table` (schema public) for test `name`.
pub fn topic(name: &str, table: &str) -> String {
    format!("{name}-{}.public.{table}", run_id())
}

/// A config for test `name`: database `name`, slot/publication `name`, topics
/// `name.{schema}.{table}`; `source_extra` lands in [source], `rest` after the other sections.
pub fn config(name: &str, source_extra: &str, rest: &str) -> String {
    format!(
        r#"
[source]
type = "postgres"
url = "{PG}/{name}"
slot = "{name}"
publication = "{name}"
{source_extra}
{tail}"#,
        tail = sink_sections(name, "{schema}", rest)
    )
}

/// The slot's confirmed_flush_lsn as a number.
pub async fn confirmed_lsn(c: &Client, slot: &str) -> Option<u64> {
    let r = c
        .query_opt("SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await
        .unwrap()?;
    r.get::<_, Option<i64>>(0).map(|x| x as u64)
}

/// The walsender pid streaming `slot`, once rowstream started replication.
pub async fn streaming_pid(c: &Client, slot: &str) -> Option<i32> {
    c.query_opt(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .unwrap()
    .and_then(|r| r.get::<_, Option<i32>>(0))
}

/// Wait until rowstream streams from `slot`.
pub async fn wait_streaming(c: &Client, slot: &str) {
    wait_for(60, "streaming", || async {
        streaming_pid(c, slot).await.is_some()
    })
    .await;
}
