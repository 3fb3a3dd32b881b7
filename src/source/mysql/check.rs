//! `rowstream check` for MySQL/MariaDB: binlog settings, GTIDs, retention, grants, tables.
//!
//! Invariant: every problem found is reported with its fix; `Fail` blocks running. The binlog
//! settings are `prereq`'s definitions (the ones `run` enforces); `--fix` applies those a running
//! server accepts.

use super::{connect, filter, prereq, MySqlError};
use crate::check::{Finding, Level};
use crate::config::{redact_url, Config};
use crate::schema::TableId;
use mysql_async::prelude::*;
use mysql_async::Opts;

fn f(level: Level, what: impl Into<String>, fix: Option<String>) -> Finding {
    Finding {
        level,
        what: what.into(),
        fix,
    }
}

pub(crate) async fn check(cfg: &Config, apply_fixes: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let opts = match Opts::from_url(&cfg.source.url) {
        Ok(o) => o,
        Err(e) => {
            out.push(f(
                Level::Fail,
                format!("source.url: {e}"),
                Some("mysql://user:password@host:3306/db".into()),
            ));
            return out;
        }
    };
    let mut conn = match connect(&opts).await {
        Ok(c) => c,
        Err(e) => {
            out.push(prereq::connect_failed(&cfg.source.url, &e));
            return out;
        }
    };
    out.push(f(
        Level::Ok,
        format!("connected to {}", redact_url(&cfg.source.url)),
        None,
    ));
    if let Err(e) = run_checks(cfg, &opts, &mut conn, apply_fixes, &mut out).await {
        out.push(f(
            Level::Fail,
            format!("a check query failed: {e}"),
            Some("grant the user SELECT on information_schema and performance_schema".into()),
        ));
    }
    let _ = conn.disconnect().await;
    out
}

async fn run_checks(
    cfg: &Config,
    opts: &Opts,
    conn: &mut mysql_async::Conn,
    apply_fixes: bool,
    out: &mut Vec<Finding>,
) -> Result<(), MySqlError> {
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await?
        .unwrap_or_default();
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    out.push(f(
        Level::Ok,
        format!(
            "server {version} ({})",
            if mariadb { "MariaDB" } else { "MySQL" }
        ),
        None,
    ));
    let vars = prereq::variables(conn).await?;
    let var = |n: &str| prereq::var(&vars, n).map(str::to_string);
    out.extend(prereq::binlog_settings(&vars, mariadb));
    if apply_fixes {
        out.extend(prereq::fix_online(conn, &vars).await);
    }
    if mariadb {
        out.push(f(
            Level::Ok,
            format!(
                "GTIDs: MariaDB domain-server-seq (gtid_strict_mode = {})",
                var("gtid_strict_mode").unwrap_or_default()
            ),
            None,
        ));
    } else {
        match var("gtid_mode").as_deref() {
            Some("ON") => out.push(f(Level::Ok, "gtid_mode = ON", None)),
            other => out.push(f(
                Level::Warn,
                format!("gtid_mode = {}: positions are file+offset only (no failover to another replica)", other.unwrap_or("OFF")),
                Some("SET GLOBAL enforce_gtid_consistency = ON; then step gtid_mode to ON (OFF_PERMISSIVE, ON_PERMISSIVE, ON)".into()),
            )),
        }
    }
    let days: f64 = var("expire_logs_days")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let secs: f64 = var("binlog_expire_logs_seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let retention = if secs > 0.0 { secs } else { days * 86400.0 };
    if retention > 0.0 && retention < 86400.0 {
        out.push(f(
            Level::Warn,
            format!("binlogs are kept only {:.1} h: a rowstream stopped longer than that must re-snapshot", retention / 3600.0),
            Some("SET GLOBAL binlog_expire_logs_seconds = 604800; (expire_logs_days = 7 on MariaDB)".into()),
        ));
    } else {
        out.push(f(
            Level::Ok,
            if retention == 0.0 {
                "binlogs are never purged automatically".to_string()
            } else {
                format!("binlogs are kept {:.1} days", retention / 86400.0)
            },
            None,
        ));
    }
    // grants
    let grants: Vec<String> = conn.query("SHOW GRANTS").await?;
    let all = grants.join(" ").to_ascii_uppercase();
    let has = |p: &str| all.contains("ALL PRIVILEGES ON *.*") || all.contains(p);
    let user = opts.user().unwrap_or("rowstream").to_string();
    for (priv_, why) in [
        ("REPLICATION SLAVE", "to read the binlog"),
        ("SELECT", "for the snapshot"),
        (
            "RELOAD",
            "for FLUSH TABLES WITH READ LOCK during a MySQL snapshot",
        ),
    ] {
        if has(priv_) {
            out.push(f(Level::Ok, format!("grant {priv_}"), None));
        } else {
            let level = if priv_ == "RELOAD" && mariadb {
                Level::Warn
            } else {
                Level::Fail
            };
            out.push(f(
                level,
                format!("{user} lacks {priv_} ({why})"),
                Some(format!("GRANT {priv_} ON *.* TO '{user}'@'%';")),
            ));
        }
    }
    let monitor = if mariadb {
        "BINLOG MONITOR"
    } else {
        "REPLICATION CLIENT"
    };
    if has(monitor) || has("REPLICATION CLIENT") || has("SUPER") {
        out.push(f(Level::Ok, format!("grant {monitor}"), None));
    } else {
        out.push(f(
            Level::Fail,
            format!("{user} lacks {monitor} (to read the binlog position)"),
            Some(format!("GRANT {monitor} ON *.* TO '{user}'@'%';")),
        ));
    }
    // tables
    let flt = filter(cfg, opts);
    let tables: Vec<(String, String, i64)> = conn
        .query(
            "SELECT t.TABLE_SCHEMA, t.TABLE_NAME, (SELECT COUNT(*) FROM information_schema.KEY_COLUMN_USAGE k \
               WHERE k.TABLE_SCHEMA = t.TABLE_SCHEMA AND k.TABLE_NAME = t.TABLE_NAME AND k.CONSTRAINT_NAME = 'PRIMARY') \
             FROM information_schema.TABLES t WHERE t.TABLE_TYPE = 'BASE TABLE' \
               AND t.TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
        )
        .await?;
    let matched: Vec<_> = tables
        .iter()
        .filter(|(d, t, _)| {
            flt.matches(&TableId {
                db: d.clone(),
                schema: None,
                table: t.clone(),
            })
        })
        .collect();
    if matched.is_empty() {
        out.push(f(
            Level::Warn,
            format!("no table matches source.tables {:?}", flt.include),
            Some("fix source.tables / source.exclude (patterns over db.table)".into()),
        ));
    } else {
        out.push(f(
            Level::Ok,
            format!("{} table(s) match source.tables", matched.len()),
            None,
        ));
    }
    for (d, t, pk) in matched {
        if *pk == 0 && !cfg.source.keys.contains_key(&format!("{d}.{t}")) {
            out.push(f(
                Level::Warn,
                format!("{d}.{t} has no primary key: its records get a null Kafka key (order kept only on a single-partition topic)"),
                Some(format!("add a primary key, or set source.keys.\"{d}.{t}\" = [\"col\", ...]")),
            ));
        }
    }
    Ok(())
}
