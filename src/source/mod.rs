//! Change sources: Postgres (logical replication, pgoutput) and MySQL/MariaDB (ROW binlog).
pub mod mysql;
pub mod postgres;
pub mod render;

use crate::check::Finding;
use crate::config::{Config, SourceType};

/// `rowstream check`: the source's prerequisites, then the broker's.
pub(crate) async fn check(cfg: &Config, fix: bool) -> Vec<Finding> {
    let mut findings = match cfg.source.kind {
        SourceType::Postgres => postgres::check::check(cfg, fix).await,
        SourceType::Mysql => mysql::check::check(cfg).await,
    };
    findings.push(crate::sink::kafka::check(&cfg.kafka));
    findings
}
