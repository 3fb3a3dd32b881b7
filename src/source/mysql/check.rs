//! `rowstream check` for MySQL/MariaDB: binlog settings, GTIDs, retention, grants, tables.
//!
//! Invariant: every problem found is reported with its fix; `Fail` blocks running. The binlog
//! settings are `prereq`'s definitions (the ones `run` enforces); `--fix` applies those a running
//! server accepts.

use super::{connect, prereq, MySqlError};
use crate::check::{Finding, Level};
use crate::config::{redact_url, Config};
use mysql_async::prelude::*;
use mysql_async::Opts;

fn f(level: Level, what: impl Into<String>, fix: Option<String>) -> Finding {
    Finding {
        level,
        what: what.into(),
        fix,
    }
}

pub(crate) async fn check(
    cfg: &Config,
    my: &crate::config::MysqlOptions,
    apply_fixes: bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let opts = match super::opts(&cfg.source.url, my) {
        Ok(o) => o,
        Err(e) => {
            out.push(f(
                Level::Fail,
                e.to_string(),
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
    let flavour = if mariadb { "MariaDB" } else { "MySQL" };
    out.push(f(Level::Ok, format!("server {version} ({flavour})"), None));
    let vars = prereq::variables(conn).await?;
    out.extend(prereq::binlog_settings(&vars, mariadb));
    if apply_fixes {
        out.extend(prereq::fix_online(conn, &vars).await);
    }
    let var = |n: &str| prereq::var(&vars, n).map(str::to_string);
    out.push(gtids(mariadb, var));
    out.push(retention(var));
    let user = opts.user().unwrap_or("rowstream");
    grants(conn, user, mariadb, out).await?;
    tables(cfg, conn, out).await
}

fn gtids(mariadb: bool, var: impl Fn(&str) -> Option<String>) -> Finding {
    if mariadb {
        let strict = var("gtid_strict_mode").unwrap_or_default();
        return f(
            Level::Ok,
            format!("GTIDs: MariaDB domain-server-seq (gtid_strict_mode = {strict})"),
            None,
        );
    }
    match var("gtid_mode").as_deref() {
        Some("ON") => f(Level::Ok, "gtid_mode = ON", None),
        other => f(
            Level::Warn,
            format!("gtid_mode = {}: positions are file+offset only (no failover to another replica)", other.unwrap_or("OFF")),
            Some("SET GLOBAL enforce_gtid_consistency = ON; then step gtid_mode to ON (OFF_PERMISSIVE, ON_PERMISSIVE, ON)".into()),
        ),
    }
}

/// How long the server keeps binlogs: a rowstream stopped longer must re-snapshot.
fn retention(var: impl Fn(&str) -> Option<String>) -> Finding {
    let num = |n: &str| var(n).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let (days, secs) = (num("expire_logs_days"), num("binlog_expire_logs_seconds"));
    let retention = if secs > 0.0 { secs } else { days * 86400.0 };
    if retention > 0.0 && retention < 86400.0 {
        return f(
            Level::Warn,
            format!("binlogs are kept only {:.1} h: a rowstream stopped longer than that must re-snapshot", retention / 3600.0),
            Some("SET GLOBAL binlog_expire_logs_seconds = 604800; (expire_logs_days = 7 on MariaDB)".into()),
        );
    }
    let what = match retention == 0.0 {
        true => "binlogs are never purged automatically".to_string(),
        false => format!("binlogs are kept {:.1} days", retention / 86400.0),
    };
    f(Level::Ok, what, None)
}

async fn grants(
    conn: &mut mysql_async::Conn,
    user: &str,
    mariadb: bool,
    out: &mut Vec<Finding>,
) -> Result<(), MySqlError> {
    let grants: Vec<String> = conn.query("SHOW GRANTS").await?;
    let all = grants.join(" ").to_ascii_uppercase();
    let has = |p: &str| all.contains("ALL PRIVILEGES ON *.*") || all.contains(p);
    let lacks = |level, priv_: &str, why: &str| {
        f(
            level,
            format!("{user} lacks {priv_} ({why})"),
            Some(format!("GRANT {priv_} ON *.* TO '{user}'@'%';")),
        )
    };
    for (priv_, why) in [
        ("REPLICATION SLAVE", "to read the binlog"),
        ("SELECT", "for the snapshot"),
        (
            "RELOAD",
            "for FLUSH TABLES WITH READ LOCK during a MySQL snapshot",
        ),
    ] {
        out.push(match (has(priv_), priv_ == "RELOAD" && mariadb) {
            (true, _) => f(Level::Ok, format!("grant {priv_}"), None),
            (false, true) => lacks(Level::Warn, priv_, why),
            (false, false) => lacks(Level::Fail, priv_, why),
        });
    }
    let monitor = if mariadb {
        "BINLOG MONITOR"
    } else {
        "REPLICATION CLIENT"
    };
    out.push(
        match has(monitor) || has("REPLICATION CLIENT") || has("SUPER") {
            true => f(Level::Ok, format!("grant {monitor}"), None),
            false => lacks(Level::Fail, monitor, "to read the binlog position"),
        },
    );
    Ok(())
}

/// The tables `source.tables` selects, and those without a key.
async fn tables(
    cfg: &Config,
    conn: &mut mysql_async::Conn,
    out: &mut Vec<Finding>,
) -> Result<(), MySqlError> {
    let flt = crate::source::table_filter(cfg);
    // two scans, joined here: a subquery per table made the server open every table's key
    // usage once per table (10,000 tables: hours)
    const SYSTEM: &str = "('mysql', 'information_schema', 'performance_schema', 'sys')";
    let keyed: std::collections::HashSet<(String, String)> = conn
        .query::<(String, String), _>(format!(
            "SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME FROM information_schema.STATISTICS \
             WHERE INDEX_NAME = 'PRIMARY' AND TABLE_SCHEMA NOT IN {SYSTEM}"
        ))
        .await?
        .into_iter()
        .collect();
    let tables: Vec<(String, String, bool)> = conn
        .query::<(String, String), _>(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN {SYSTEM}"
        ))
        .await?
        .into_iter()
        .map(|(d, t)| {
            let pk = keyed.contains(&(d.clone(), t.clone()));
            (d, t, pk)
        })
        .collect();
    let matched: Vec<_> = tables
        .iter()
        .filter(|(d, t, _)| flt.matches(&super::table_id(d, t)))
        .collect();
    if let Err(e) = super::unmatched_patterns(conn, &flt).await? {
        out.push(f(Level::Fail, e.problem, Some(e.fix)));
    }
    out.push(match matched.len() {
        0 => f(
            Level::Warn,
            format!("no table matches source.tables {:?}", flt.include),
            Some("fix source.tables / source.exclude (patterns over db.table)".into()),
        ),
        n => f(Level::Ok, format!("{n} table(s) match source.tables"), None),
    });
    for (d, t, pk) in matched {
        if !*pk && !cfg.source.keys.contains_key(&format!("{d}.{t}")) {
            out.push(f(
                Level::Warn,
                format!("{d}.{t} has no primary key: its records get a null Kafka key (order kept only on a single-partition topic)"),
                Some(format!("add a primary key, or set source.keys.\"{d}.{t}\" = [\"col\", ...]")),
            ));
        }
    }
    Ok(())
}
