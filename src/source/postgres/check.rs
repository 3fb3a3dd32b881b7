//! `rowstream check` for Postgres: every prerequisite, each problem with its exact fix.
//!
//! Invariants: `check` reports everything it finds (it does not stop at the first problem);
//! `Fail` means `run` cannot work; `Warn` means it runs but something is degraded (null keys,
//! TOAST placeholders, no DDL records). With `--fix` it applies the fixes that are safe to apply
//! (publication, DDL trigger) and reports the rest.

use super::catalog;
use super::ddl;
use super::prereq;
use super::replication::quote_ident;
use super::SourceError;
use crate::check::Finding;
use crate::config::{redact_url, Config};
use crate::schema::TableFilter;

pub(crate) async fn check(cfg: &Config, apply_fixes: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let pg: tokio_postgres::Config = match cfg.source.url.parse() {
        Ok(c) => c,
        Err(e) => {
            out.push(Finding::fail(
                format!("source.url is not a Postgres URL: {e}"),
                "postgres://user[:password]@host:5432/db",
            ));
            return out;
        }
    };
    let user = pg.get_user().unwrap_or("postgres").to_string();
    let tls = match super::tls::PgTls::new(cfg.source.ssl_root_cert.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            out.push(Finding::fail(e.to_string(), prereq::TLS_FIX));
            return out;
        }
    };
    let client = match catalog::connect(&pg, &tls, "rowstream-check").await {
        Ok(c) => c,
        Err(e) => {
            out.push(prereq::connect_finding(&cfg.source.url, &e));
            return out;
        }
    };
    out.push(Finding::ok(format!(
        "connected to {}",
        redact_url(&cfg.source.url)
    )));
    if let Err(e) = run_checks(cfg, &client, &user, apply_fixes, &mut out).await {
        out.push(Finding::fail(
            format!("a check query failed: {e}"),
            "run check as a user that can read the catalogs",
        ));
    }
    out
}

async fn run_checks(
    cfg: &Config,
    client: &tokio_postgres::Client,
    user: &str,
    apply_fixes: bool,
    out: &mut Vec<Finding>,
) -> Result<(), SourceError> {
    out.push(prereq::server_version(client).await?);
    out.push(prereq::wal_level(client).await?);
    let row = client
        .query_one(
            "SELECT current_setting('max_replication_slots')::int, \
                    (SELECT count(*)::int FROM pg_replication_slots), \
                    current_setting('max_wal_senders')::int",
            &[],
        )
        .await?;
    let (max_slots, used, senders): (i32, i32, i32) = (row.get(0), row.get(1), row.get(2));
    let slot_exists = client
        .query_opt(
            "SELECT plugin::text, database::text, active, wal_status FROM pg_replication_slots WHERE slot_name = $1",
            &[&cfg.source.slot],
        )
        .await?;
    if slot_exists.is_none() && used >= max_slots {
        out.push(Finding::fail(
            format!("all {max_slots} replication slots are in use"),
            "raise max_replication_slots in postgresql.conf and restart, or drop unused slots",
        ));
    }
    if senders < 1 {
        out.push(Finding::fail(
            "max_wal_senders = 0",
            "ALTER SYSTEM SET max_wal_senders = 10; then restart postgres",
        ));
    }
    let role = client
        .query_one(
            "SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?;
    let (is_super, is_repl): (bool, bool) = (role.get(0), role.get(1));
    out.push(prereq::replication_role(user, is_super, is_repl));
    // slot
    match slot_exists {
        None => out.push(Finding::ok(format!(
            "slot {} will be created on first run",
            cfg.source.slot
        ))),
        Some(r) => {
            let want_db: String = client
                .query_one("SELECT current_database()::text", &[])
                .await?
                .get(0);
            let (plugin, db): (String, String) = (r.get(0), r.get(1));
            let wal_status: Option<String> = r.get(3);
            out.push(prereq::slot_state(
                &cfg.source.slot,
                &plugin,
                &db,
                &want_db,
                wal_status.as_deref(),
                r.get(2),
            ));
        }
    }
    // tables
    let filter = TableFilter {
        include: cfg.source.tables.clone(),
        exclude: cfg.source.exclude.clone(),
    };
    let db: String = client
        .query_one("SELECT current_database()::text", &[])
        .await?
        .get(0);
    let tables: Vec<_> = catalog::list_tables(client)
        .await?
        .into_iter()
        .filter(|t| {
            filter.matches(&crate::schema::TableId {
                db: db.clone(),
                schema: Some(t.schema.clone()),
                table: t.name.clone(),
            })
        })
        .collect();
    if tables.is_empty() {
        out.push(Finding::warn(
            format!("no table matches source.tables {:?}", cfg.source.tables),
            "fix source.tables / source.exclude (patterns over schema.table)",
        ));
    } else {
        out.push(Finding::ok(format!(
            "{} table(s) match source.tables",
            tables.len()
        )));
    }
    for t in &tables {
        let q = format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name));
        let can: bool = client
            .query_one("SELECT has_table_privilege($1::oid, 'SELECT')", &[&t.oid])
            .await?
            .get(0);
        if !can {
            out.push(Finding::fail(
                format!("no SELECT privilege on {q} (needed for the snapshot)"),
                format!("GRANT SELECT ON {q} TO {};", quote_ident(user)),
            ));
        }
        let custom = cfg
            .source
            .keys
            .contains_key(&format!("{}.{}", t.schema, t.name));
        if !t.has_pk && !custom {
            if t.replica_identity == 'f' {
                out.push(Finding::warn(
                    format!("{q} has no primary key: its records get a null Kafka key (order kept only on a single-partition topic)"),
                    format!("add a primary key, or set source.keys.\"{}.{}\" = [\"col\", ...]", t.schema, t.name),
                ));
            } else {
                out.push(Finding::warn(
                    format!("{q} has no primary key: null Kafka keys, and postgres rejects its UPDATE/DELETE once published"),
                    format!("ALTER TABLE {q} ADD PRIMARY KEY (...); or ALTER TABLE {q} REPLICA IDENTITY FULL;"),
                ));
            }
        }
        if t.replica_identity != 'f' {
            let toast: Vec<String> = client
                .query(
                    "SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 \
                     AND NOT attisdropped AND attstorage IN ('x', 'e') ORDER BY attnum",
                    &[&t.oid],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !toast.is_empty() {
                out.push(Finding::warn(
                    format!(
                        "{q} has TOASTable column(s) {}: an UPDATE that leaves them unchanged carries no value, so rowstream writes source.toast_placeholder (\"{}\")",
                        toast.join(", "),
                        cfg.source.toast_placeholder
                    ),
                    format!("ALTER TABLE {q} REPLICA IDENTITY FULL;"),
                ));
            }
        }
    }
    // publication
    let pubrow = client
        .query_opt("SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1", &[&cfg.source.publication])
        .await?;
    let pq = quote_ident(&cfg.source.publication);
    match pubrow {
        None if apply_fixes && is_super => match client.batch_execute(&format!("CREATE PUBLICATION {pq} FOR ALL TABLES")).await {
            Ok(()) => out.push(Finding::ok(format!("created publication {pq} FOR ALL TABLES"))),
            Err(e) => out.push(Finding::fail(format!("cannot create publication {pq}: {e}"), format!("CREATE PUBLICATION {pq} FOR ALL TABLES;"))),
        },
        None if is_super => out.push(Finding::ok(format!("publication {pq} will be created FOR ALL TABLES on first run"))),
        None => out.push(Finding::warn(
            format!("publication {pq} is missing and {user} is not a superuser: rowstream will create it FOR TABLE over today's tables (tables created later are not published)"),
            format!("as a superuser: CREATE PUBLICATION {pq} FOR ALL TABLES;"),
        )),
        Some(r) => {
            let (all, i, u, d, tr): (bool, bool, bool, bool, bool) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            if !(i && u && d && tr) {
                out.push(Finding::fail(
                    format!("publication {pq} does not publish every operation (insert {i}, update {u}, delete {d}, truncate {tr})"),
                    format!("ALTER PUBLICATION {pq} SET (publish = 'insert, update, delete, truncate');"),
                ));
            }
            if !all {
                let published: Vec<(String, String)> = client
                    .query("SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1", &[&cfg.source.publication])
                    .await?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                for t in &tables {
                    if !published.iter().any(|(s, n)| s == &t.schema && n == &t.name) {
                        out.push(Finding::fail(
                            format!("{}.{} is not in publication {pq}: its changes would never arrive", t.schema, t.name),
                            format!("ALTER PUBLICATION {pq} ADD TABLE {}.{};", quote_ident(&t.schema), quote_ident(&t.name)),
                        ));
                    }
                }
            }
            out.push(Finding::ok(format!("publication {pq} exists")));
        }
    }
    // DDL capture
    if cfg.source.capture_ddl {
        let present =
            ddl::installed_version(client).await.as_deref() == Some(ddl::MIGRATION_VERSION);
        if present {
            out.push(Finding::ok("DDL capture event triggers installed"));
        } else if apply_fixes {
            match client.batch_execute(ddl::MIGRATION).await {
                Ok(()) => out.push(Finding::ok("installed the DDL capture event triggers")),
                Err(e) => out.push(Finding::warn(
                    format!("cannot install the DDL capture event triggers: {e}"),
                    "as a superuser: psql -d <db> -f migrations/postgres/001_ddl_capture.sql",
                )),
            }
        } else if is_super {
            out.push(Finding::ok(
                "DDL capture event triggers will be installed on first run",
            ));
        } else {
            out.push(Finding::warn(
                "DDL capture event triggers are missing and need a superuser to install: no DDL records",
                "as a superuser: psql -d <db> -f migrations/postgres/001_ddl_capture.sql (or rowstream check --fix)",
            ));
        }
    }
    let can_emit: bool = client
        .query_one("SELECT has_function_privilege('pg_logical_emit_message(boolean,text,text)', 'EXECUTE')", &[])
        .await?
        .get(0);
    if !can_emit {
        out.push(Finding::warn(
            format!("{user} cannot call pg_logical_emit_message: an idle database's slot will not advance (WAL piles up)"),
            format!("GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean,text,text) TO {};", quote_ident(user)),
        ));
    }
    Ok(())
}
