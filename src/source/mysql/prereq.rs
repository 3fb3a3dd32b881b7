//! The MySQL/MariaDB prerequisites, each defined once: `run` stops on the failed ones it needs
//! (with these words and fixes), `check` prints them all, and `check --fix` applies those a
//! running server accepts (`SET GLOBAL`), saying what it could not do and why.
//!
//! Invariant: one row of [`SETTINGS`] per binlog setting; nothing else states these rules.

use super::error::MySqlError;
use crate::check::{Finding, Level};
use crate::config::redact_url;
use mysql_async::prelude::*;
use mysql_async::Conn;

/// A server variable rowstream needs at a value.
pub(crate) struct Setting {
    pub(crate) name: &'static str,
    /// what it must be (upper case)
    pub(crate) want: &'static str,
    /// `Fail`: `run` cannot work without it; `Warn`: degraded
    pub(crate) level: Level,
    /// why rowstream needs it
    pub(crate) why: &'static str,
    /// `SET GLOBAL` can change it on a running server
    pub(crate) online: bool,
}

pub(crate) const SETTINGS: &[Setting] = &[
    Setting {
        name: "log_bin",
        want: "ON",
        level: Level::Fail,
        why: "rowstream reads the binary log",
        online: false,
    },
    Setting {
        name: "binlog_format",
        want: "ROW",
        level: Level::Fail,
        why: "only ROW events carry the changed rows",
        online: true,
    },
    Setting {
        name: "binlog_row_image",
        want: "FULL",
        level: Level::Fail,
        why: "before images would lack columns",
        online: true,
    },
    Setting {
        name: "binlog_row_metadata",
        want: "FULL",
        level: Level::Warn,
        why: "events then carry column names; without it rowstream relies on its schema history alone",
        online: true,
    },
];

/// Where the server's config file is, for fixes that must survive a restart.
fn cnf(mariadb: bool) -> &'static str {
    if mariadb {
        "/etc/mysql/mariadb.conf.d/60-cdc.cnf [mariadbd]"
    } else {
        "my.cnf [mysqld]"
    }
}

pub(crate) fn connect_failed(url: &str, e: &mysql_async::Error) -> Finding {
    let text = crate::error::chain(e);
    let tls = ["TLS", "SSL", "certificate", "handshake"]
        .iter()
        .any(|w| text.contains(w));
    Finding::fail(
        format!("cannot connect to {}: {text}", redact_url(url)),
        match tls {
            true => "check source.ssl_mode and source.ssl_root_cert: the CA must be the one that signed the server's certificate (verify_identity also needs the certificate to name the host)",
            false => "check source.url, that the server runs, and the user's password and host grants",
        },
    )
}

/// The server's global variables rowstream looks at (names lower case).
pub(crate) async fn variables(conn: &mut Conn) -> Result<Vec<(String, String)>, MySqlError> {
    let vars: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image', \
             'binlog_row_metadata', 'gtid_mode', 'enforce_gtid_consistency', 'gtid_strict_mode', 'expire_logs_days', \
             'binlog_expire_logs_seconds', 'server_id', 'binlog_row_value_options')",
        )
        .await?;
    Ok(vars
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect())
}

pub(crate) fn var<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One setting as a finding.
pub(crate) fn setting(s: &Setting, have: Option<&str>, mariadb: bool) -> Finding {
    let have_up = have.map(str::to_ascii_uppercase);
    if have_up.as_deref() == Some(s.want) {
        return Finding::ok(format!("{} = {}", s.name, s.want));
    }
    let Some(have) = have else {
        return Finding::ok(format!(
            "{} is not supported by this server (MySQL < 8.0.1 / MariaDB < 10.5): {}",
            s.name, s.why
        ));
    };
    let fix = if s.online {
        format!(
            "SET GLOBAL {} = '{}'; and {} = {} in {}",
            s.name,
            s.want,
            s.name,
            s.want,
            cnf(mariadb)
        )
    } else {
        format!(
            "set {} in {} (with server_id), then restart the server",
            s.name,
            cnf(mariadb)
        )
    };
    let what = format!(
        "{} = {have}: rowstream needs {} ({})",
        s.name, s.want, s.why
    );
    match s.level {
        Level::Fail => Finding::fail(what, fix),
        _ => Finding::warn(what, fix),
    }
}

/// Partial JSON updates carry only diffs, which rowstream cannot turn into row images.
pub(crate) fn row_value_options(have: Option<&str>) -> Option<Finding> {
    have.filter(|v| v.to_ascii_uppercase().contains("PARTIAL_JSON"))
        .map(|_| {
            Finding::fail(
                "binlog_row_value_options = PARTIAL_JSON: JSON updates would carry only diffs",
                "SET GLOBAL binlog_row_value_options = '';",
            )
        })
}

/// Every binlog setting as findings.
pub(crate) fn binlog_settings(vars: &[(String, String)], mariadb: bool) -> Vec<Finding> {
    let mut out: Vec<Finding> = SETTINGS
        .iter()
        .map(|s| setting(s, var(vars, s.name), mariadb))
        .collect();
    out.extend(row_value_options(var(vars, "binlog_row_value_options")));
    out
}

/// What `run` cannot start without (evaluated on every start).
pub(crate) async fn required_for_run(conn: &mut Conn, mariadb: bool) -> Result<(), MySqlError> {
    let vars = variables(conn).await?;
    for f in binlog_settings(&vars, mariadb) {
        f.required()?;
    }
    Ok(())
}

/// `check --fix`: `SET GLOBAL` each failing setting a running server accepts; returns what was
/// done and what could not be, with why.
pub(crate) async fn fix_online(conn: &mut Conn, vars: &[(String, String)]) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in SETTINGS {
        let have = var(vars, s.name).map(str::to_ascii_uppercase);
        if have.is_none() || have.as_deref() == Some(s.want) {
            continue;
        }
        if !s.online {
            out.push(Finding::fail(
                format!(
                    "--fix cannot change {}: the server must restart for it",
                    s.name
                ),
                format!(
                    "set {} in the server config, then restart the server",
                    s.name
                ),
            ));
            continue;
        }
        let sql = format!("SET GLOBAL {} = '{}'", s.name, s.want);
        out.push(match conn.query_drop(&sql).await {
            Ok(()) => Finding::ok(format!(
                "set {} = {} for the running server (new sessions); also set it in the server config so it survives a restart",
                s.name, s.want
            )),
            Err(e) => Finding::fail(
                format!("--fix could not run `{sql}`: {e}"),
                "run it as a user with SUPER (MySQL: SYSTEM_VARIABLES_ADMIN), or set it in the server config and restart",
            ),
        });
    }
    if row_value_options(var(vars, "binlog_row_value_options")).is_some() {
        let sql = "SET GLOBAL binlog_row_value_options = ''";
        out.push(match conn.query_drop(sql).await {
            Ok(()) => Finding::ok("set binlog_row_value_options = '' for the running server"),
            Err(e) => Finding::fail(
                format!("--fix could not run `{sql}`: {e}"),
                "run it as a user with SUPER (MySQL: SYSTEM_VARIABLES_ADMIN)",
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_as_findings() {
        let vars: Vec<(String, String)> = [
            ("log_bin", "ON"),
            ("binlog_format", "STATEMENT"),
            ("binlog_row_image", "full"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let f = binlog_settings(&vars, true);
        assert_eq!(f[0].level, Level::Ok);
        assert_eq!(f[1].level, Level::Fail);
        assert!(f[1]
            .what
            .starts_with("binlog_format = STATEMENT: rowstream needs ROW"));
        assert!(f[1]
            .fix
            .as_deref()
            .unwrap()
            .starts_with("SET GLOBAL binlog_format = 'ROW';"));
        assert_eq!(f[2].level, Level::Ok, "case-insensitive");
        // binlog_row_metadata unknown to the server: informational
        assert_eq!(f[3].level, Level::Ok);
        assert_eq!(f.len(), 4);
        assert!(f[1].clone().required().is_err());
        assert!(f[0].clone().required().is_ok());
    }
}
