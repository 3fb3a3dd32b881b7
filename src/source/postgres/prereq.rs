//! The Postgres prerequisites, each defined once: `run` stops on the failed ones it needs (with
//! these words and fixes), `check` prints them all.
//!
//! Invariant: every function here states one prerequisite as a [`Finding`]; callers decide
//! whether it blocks (`Finding::required`) or is reported (`check`).

use super::error::SourceError;
use super::replication::quote_ident;
use crate::check::Finding;
use crate::config::redact_url;
use crate::error::SetupError;

pub(crate) const TLS_FIX: &str = "fix source.ssl_root_cert (a PEM CA file) or remove it";

/// The server cannot be reached or refuses the login.
/// A failed connection: unreachable (no answer, or a server starting, stopping or full), or a
/// setup problem (authentication, a missing database).
pub(crate) fn connect_failed(url: &str, e: &tokio_postgres::Error) -> SourceError {
    let f = connect_finding(url, e);
    let err = SetupError::new(f.what, f.fix.unwrap_or_default());
    match e.code().map(|c| c.code()) {
        None | Some("57P01" | "57P02" | "57P03" | "53300") => SourceError::Unreachable(err),
        Some(_) => SourceError::Setup(err),
    }
}

pub(crate) fn connect_finding(url: &str, e: &tokio_postgres::Error) -> Finding {
    Finding::fail(
        format!(
            "cannot connect to postgres at {}: {}",
            redact_url(url),
            crate::error::chain(e)
        ),
        "check source.url, that the server runs, and that pg_hba.conf admits this user",
    )
}

/// What `run` cannot start without (evaluated on every start).
pub(crate) async fn required_for_run(c: &tokio_postgres::Client) -> Result<(), SourceError> {
    server_version(c).await?.required()?;
    wal_level(c).await?.required()?;
    Ok(())
}

pub(crate) async fn server_version(c: &tokio_postgres::Client) -> Result<Finding, SourceError> {
    let v: i32 = c
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await?
        .get(0);
    Ok(if v >= 140000 {
        Finding::ok(format!("server version {v}"))
    } else {
        Finding::fail(
            format!("server version {v} is older than 14 (pgoutput messages need 14+)"),
            "upgrade postgres to 14 or newer",
        )
    })
}

pub(crate) async fn wal_level(c: &tokio_postgres::Client) -> Result<Finding, SourceError> {
    let level: String = c.query_one("SHOW wal_level", &[]).await?.get(0);
    Ok(if level == "logical" {
        Finding::ok("wal_level = logical")
    } else {
        Finding::fail(
            format!("wal_level = {level}: logical replication needs wal_level = logical"),
            "ALTER SYSTEM SET wal_level = logical; then restart postgres",
        )
    })
}

/// An existing slot's state: right plugin and database, WAL not lost, not held by another.
pub(crate) fn slot_state(
    slot: &str,
    plugin: &str,
    slot_db: &str,
    db: &str,
    wal_status: Option<&str>,
    active: bool,
) -> Finding {
    if plugin != "pgoutput" || slot_db != db {
        Finding::fail(
            format!("replication slot `{slot}` exists for plugin `{plugin}` on database `{slot_db}`, not pgoutput on `{db}`"),
            format!("set source.slot to another name, or drop that slot: SELECT pg_drop_replication_slot('{slot}');"),
        )
    } else if wal_status == Some("lost") {
        Finding::fail(
            format!("replication slot `{slot}` lost required WAL (wal_status = lost)"),
            "start over with `rowstream run --resnapshot` (drops and recreates the slot, snapshots every table again)".to_string(),
        )
    } else if active {
        Finding::warn(
            format!("replication slot `{slot}` is in use by another connection"),
            "stop the other rowstream (or consumer) using it, or set another source.slot",
        )
    } else {
        Finding::ok(format!("replication slot `{slot}` exists (pgoutput)"))
    }
}

/// The role may open a replication connection.
pub(crate) fn replication_role(user: &str, is_super: bool, is_repl: bool) -> Finding {
    if is_super || is_repl {
        Finding::ok(format!("role {user} may replicate"))
    } else {
        Finding::fail(
            format!("role {user} has neither REPLICATION nor SUPERUSER"),
            format!("ALTER ROLE {} WITH REPLICATION;", quote_ident(user)),
        )
    }
}
