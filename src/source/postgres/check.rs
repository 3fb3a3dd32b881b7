//! `rowstream check` for Postgres: every prerequisite, each problem with its exact fix.
//!
//! Invariants: `check` reports everything it finds (it does not stop at the first problem);
//! `Fail` means `run` cannot work; `Warn` means it runs but something is degraded (null keys,
//! TOAST placeholders, no DDL records). With `--fix` it applies the fixes that are safe to apply
//! (publication, DDL trigger) and reports the rest.

use super::catalog;
use super::catalog::TableRow;
use super::ddl;
use super::error::SourceError;
use super::prereq;
use super::replication::quote_ident;
use crate::check::Finding;
use crate::config::{redact_url, Config, PostgresOptions};

pub(crate) async fn check(cfg: &Config, o: &PostgresOptions, apply_fixes: bool) -> Vec<Finding> {
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
    let tls = match super::tls::PgTls::new(o.ssl_root_cert.as_deref()) {
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
    let checker = Checker {
        cfg,
        o,
        client: &client,
        user: &user,
        apply_fixes,
        is_super: false,
    };
    if let Err(e) = checker.run(&mut out).await {
        out.push(Finding::fail(
            format!("a check query failed: {e}"),
            "run check as a user that can read the catalogs",
        ));
    }
    out
}

/// One `check` run over a catalog session.
struct Checker<'a> {
    cfg: &'a Config,
    o: &'a PostgresOptions,
    client: &'a tokio_postgres::Client,
    user: &'a str,
    apply_fixes: bool,
    /// whether the user is a superuser (known after `server`)
    is_super: bool,
}

impl Checker<'_> {
    async fn run(mut self, out: &mut Vec<Finding>) -> Result<(), SourceError> {
        self.server(out).await?;
        self.slot(out).await?;
        let tables = self.tables(out).await?;
        for t in &tables {
            self.table(t, out).await?;
        }
        self.publication(&tables, out).await?;
        if self.o.capture_ddl {
            self.ddl_capture(out).await;
        }
        self.emit_message(out).await
    }

    /// Version, wal_level, free slots and senders, the role's replication right.
    async fn server(&mut self, out: &mut Vec<Finding>) -> Result<(), SourceError> {
        let client = self.client;
        out.push(prereq::server_version(client).await?);
        out.push(prereq::wal_level(client).await?);
        let row = client
            .query_one(
                "SELECT current_setting('max_replication_slots')::int, \
                        (SELECT count(*)::int FROM pg_replication_slots), \
                        current_setting('max_wal_senders')::int, \
                        EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
                &[&self.o.slot],
            )
            .await?;
        let (max_slots, used, senders, exists): (i32, i32, i32, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if !exists && used >= max_slots {
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
        self.is_super = is_super;
        out.push(prereq::replication_role(self.user, is_super, is_repl));
        Ok(())
    }

    async fn slot(&self, out: &mut Vec<Finding>) -> Result<(), SourceError> {
        let slot = &self.o.slot;
        let row = self.client
            .query_opt(
                "SELECT plugin::text, database::text, active, wal_status, current_database()::text \
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[slot],
            )
            .await?;
        out.push(match row {
            None => Finding::ok(format!("slot {slot} will be created on first run")),
            Some(r) => {
                let (plugin, db, want_db): (String, String, String) =
                    (r.get(0), r.get(1), r.get(4));
                let wal_status: Option<String> = r.get(3);
                prereq::slot_state(
                    slot,
                    &plugin,
                    &db,
                    &want_db,
                    wal_status.as_deref(),
                    r.get(2),
                )
            }
        });
        Ok(())
    }

    /// The tables `source.tables` selects.
    async fn tables(&self, out: &mut Vec<Finding>) -> Result<Vec<TableRow>, SourceError> {
        let filter = crate::source::table_filter(self.cfg);
        let db: String = self
            .client
            .query_one("SELECT current_database()::text", &[])
            .await?
            .get(0);
        let tables: Vec<_> = catalog::list_tables(self.client)
            .await?
            .into_iter()
            .filter(|t| {
                filter.matches(&crate::model::schema::TableId {
                    db: db.clone(),
                    schema: Some(t.schema.clone()),
                    table: t.name.clone(),
                })
            })
            .collect();
        if let Err(e) = catalog::unmatched_patterns(self.client, &filter).await? {
            out.push(Finding::fail(e.problem, e.fix));
        }
        out.push(match tables.len() {
            0 => Finding::warn(
                format!(
                    "no table matches source.tables {:?}",
                    self.cfg.source.tables()
                ),
                "fix source.tables / source.exclude (patterns over schema.table)",
            ),
            n => Finding::ok(format!("{n} table(s) match source.tables")),
        });
        Ok(tables)
    }

    /// SELECT right, key, TOASTed columns of one table.
    async fn table(&self, t: &TableRow, out: &mut Vec<Finding>) -> Result<(), SourceError> {
        let q = format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name));
        let can: bool = self
            .client
            .query_one("SELECT has_table_privilege($1::oid, 'SELECT')", &[&t.oid])
            .await?
            .get(0);
        if !can {
            out.push(Finding::fail(
                format!("no SELECT privilege on {q} (needed for the snapshot)"),
                format!("GRANT SELECT ON {q} TO {};", quote_ident(self.user)),
            ));
        }
        let name = format!("{}.{}", t.schema, t.name);
        if !t.has_pk && !self.cfg.source.keys.contains_key(&name) {
            out.push(if t.replica_identity == 'f' {
                Finding::warn(
                    format!("{q} has no primary key: its records get a null Kafka key (order kept only on a single-partition topic)"),
                    format!("add a primary key, or set source.keys.\"{name}\" = [\"col\", ...]"),
                )
            } else {
                Finding::warn(
                    format!("{q} has no primary key: null Kafka keys, and postgres rejects its UPDATE/DELETE once published"),
                    format!("ALTER TABLE {q} ADD PRIMARY KEY (...); or ALTER TABLE {q} REPLICA IDENTITY FULL;"),
                )
            });
        }
        if t.replica_identity == 'f' {
            return Ok(());
        }
        let toast: Vec<String> = self
            .client
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
                    self.o.toast_placeholder
                ),
                format!("ALTER TABLE {q} REPLICA IDENTITY FULL;"),
            ));
        }
        Ok(())
    }

    async fn publication(
        &self,
        tables: &[TableRow],
        out: &mut Vec<Finding>,
    ) -> Result<(), SourceError> {
        let (client, user) = (self.client, self.user);
        let pubrow = client
            .query_opt("SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1", &[&self.o.publication])
            .await?;
        let pq = quote_ident(&self.o.publication);
        let Some(r) = pubrow else {
            out.push(match (self.apply_fixes, self.is_super) {
                (true, true) => match client.batch_execute(&format!("CREATE PUBLICATION {pq} FOR ALL TABLES WITH (publish_via_partition_root = true)")).await {
                    Ok(()) => Finding::ok(format!("created publication {pq} FOR ALL TABLES")),
                    Err(e) => Finding::fail(format!("cannot create publication {pq}: {e}"), format!("CREATE PUBLICATION {pq} FOR ALL TABLES WITH (publish_via_partition_root = true);")),
                },
                (false, true) => Finding::ok(format!("publication {pq} will be created FOR ALL TABLES on first run")),
                (_, false) => Finding::warn(
                    format!("publication {pq} is missing and {user} is not a superuser: rowstream will create it FOR TABLE over today's tables (tables created later are not published)"),
                    format!("as a superuser: CREATE PUBLICATION {pq} FOR ALL TABLES;"),
                ),
            });
            return Ok(());
        };
        let (all, i, u, d, tr): (bool, bool, bool, bool, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if !(i && u && d && tr) {
            out.push(Finding::fail(
                format!("publication {pq} does not publish every operation (insert {i}, update {u}, delete {d}, truncate {tr})"),
                format!("ALTER PUBLICATION {pq} SET (publish = 'insert, update, delete, truncate');"),
            ));
        }
        if !all {
            let published: Vec<(String, String)> = client
                .query("SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1", &[&self.o.publication])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            for t in tables {
                if !published
                    .iter()
                    .any(|(s, n)| s == &t.schema && n == &t.name)
                {
                    out.push(Finding::fail(
                        format!(
                            "{}.{} is not in publication {pq}: its changes would never arrive",
                            t.schema, t.name
                        ),
                        format!(
                            "ALTER PUBLICATION {pq} ADD TABLE {}.{};",
                            quote_ident(&t.schema),
                            quote_ident(&t.name)
                        ),
                    ));
                }
            }
        }
        out.push(Finding::ok(format!("publication {pq} exists")));
        Ok(())
    }

    async fn ddl_capture(&self, out: &mut Vec<Finding>) {
        let present =
            ddl::installed_version(self.client).await.as_deref() == Some(ddl::MIGRATION_VERSION);
        out.push(if present {
            Finding::ok("DDL capture event triggers installed")
        } else if self.apply_fixes {
            match self.client.batch_execute(ddl::MIGRATION).await {
                Ok(()) => Finding::ok("installed the DDL capture event triggers"),
                Err(e) => Finding::warn(
                    format!("cannot install the DDL capture event triggers: {e}"),
                    "as a superuser: psql -d <db> -f migrations/postgres/001_ddl_capture.sql",
                ),
            }
        } else if self.is_super {
            Finding::ok("DDL capture event triggers will be installed on first run")
        } else {
            Finding::warn(
                "DDL capture event triggers are missing and need a superuser to install: no DDL records",
                "as a superuser: psql -d <db> -f migrations/postgres/001_ddl_capture.sql (or rowstream check --fix)",
            )
        });
    }

    async fn emit_message(&self, out: &mut Vec<Finding>) -> Result<(), SourceError> {
        let can_emit: bool = self
            .client
            .query_one("SELECT has_function_privilege('pg_logical_emit_message(boolean,text,text)', 'EXECUTE')", &[])
            .await?
            .get(0);
        if !can_emit {
            out.push(Finding::warn(
                format!("{} cannot call pg_logical_emit_message: an idle database's slot will not advance (WAL piles up)", self.user),
                format!("GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean,text,text) TO {};", quote_ident(self.user)),
            ));
        }
        Ok(())
    }
}
