//! Catalog look-ups on a normal (non-replication) connection: type kinds for OIDs that are not
//! built in (arrays, domains, enums, composites, extension types), primary keys, table lists.
//!
//! Invariants:
//! - Type kinds are cached per (OID, typmod); a domain resolves to its base type's kind, an array
//!   to an array of its element's kind; anything else unknown is `Text` (its text form).
//! - Connections made here use the same session settings as the replication connection.

use super::replication::SESSION_SETTINGS;
use super::tls::PgTls;
use super::types::{builtin_kind, PgKind};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use tokio_postgres::Client;

/// Connect a normal session with rowstream's session settings; the connection task is spawned.
pub(crate) async fn connect(
    cfg: &tokio_postgres::Config,
    tls: &PgTls,
    app: &str,
) -> Result<Client, tokio_postgres::Error> {
    let mut cfg = cfg.clone();
    cfg.application_name(app);
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(std::time::Duration::from_secs(10));
    }
    let (client, conn) = cfg.connect(tls.make.clone()).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    let mut sets = String::new();
    for (k, v) in SESSION_SETTINGS {
        if *k != "client_encoding" {
            sets.push_str(&format!("SET {k} = '{v}';"));
        }
    }
    client.batch_execute(&sets).await?;
    Ok(client)
}

#[derive(Clone, Debug)]
pub(crate) struct TableRow {
    pub(crate) oid: u32,
    pub(crate) schema: String,
    pub(crate) name: String,
    /// `d` default, `n` nothing, `f` full, `i` index
    pub(crate) replica_identity: char,
    pub(crate) has_pk: bool,
    /// a partitioned table (its partitions are not listed: their rows and changes are its own)
    pub(crate) partitioned: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct ColumnRow {
    pub(crate) name: String,
    pub(crate) type_oid: u32,
    pub(crate) typmod: i32,
}

pub(crate) struct Catalog {
    pub(crate) client: Client,
    kinds: HashMap<(u32, i32), PgKind>,
    /// columns and primary keys read ahead for many tables at once ([`Catalog::prefetch`]),
    /// each taken by its first reader
    pre_columns: HashMap<u32, Vec<ColumnRow>>,
    pre_keys: HashMap<u32, Vec<String>>,
}

impl Catalog {
    pub(crate) fn new(client: Client) -> Catalog {
        Catalog {
            client,
            kinds: HashMap::new(),
            pre_columns: HashMap::new(),
            pre_keys: HashMap::new(),
        }
    }

    /// Read the columns and primary keys of `rels` in two queries (not two per table: 10,000
    /// tables took 11 s that way); [`Catalog::columns`] and [`Catalog::primary_key`] hand each
    /// out once. [`Catalog::forget_prefetched`] drops what was not taken, so a later read of a
    /// table (after a DDL) asks the server again.
    pub(crate) async fn prefetch(&mut self, rels: &[u32]) -> Result<(), tokio_postgres::Error> {
        let rels: Vec<u32> = rels.to_vec();
        let rows = self
            .client
            .query(
                "SELECT attrelid, attname::text, atttypid, atttypmod FROM pg_attribute \
                 WHERE attrelid = ANY($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = '' \
                 ORDER BY attrelid, attnum",
                &[&rels],
            )
            .await?;
        for r in &rows {
            self.pre_columns
                .entry(r.get(0))
                .or_default()
                .push(ColumnRow {
                    name: r.get(1),
                    type_oid: r.get(2),
                    typmod: r.get(3),
                });
        }
        let rows = self
            .client
            .query(
                "SELECT i.indrelid, a.attname::text FROM pg_index i \
                 JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE i.indrelid = ANY($1) AND i.indisprimary ORDER BY i.indrelid, k.ord",
                &[&rels],
            )
            .await?;
        for rel in &rels {
            self.pre_keys.insert(*rel, Vec::new());
        }
        for r in &rows {
            self.pre_keys.entry(r.get(0)).or_default().push(r.get(1));
        }
        Ok(())
    }

    /// Drop what [`Catalog::prefetch`] read and nobody took.
    pub(crate) fn forget_prefetched(&mut self) {
        self.pre_columns.clear();
        self.pre_keys.clear();
    }

    pub(crate) fn kind<'a>(
        &'a mut self,
        oid: u32,
        typmod: i32,
    ) -> Pin<Box<dyn Future<Output = Result<PgKind, tokio_postgres::Error>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(k) = builtin_kind(oid, typmod) {
                return Ok(k);
            }
            if let Some(k) = self.kinds.get(&(oid, typmod)) {
                return Ok(k.clone());
            }
            let row = self
                .client
                .query_opt(
                    "SELECT typtype::text, typcategory::text, typelem, typbasetype, typtypmod, typdelim::text \
                     FROM pg_type WHERE oid = $1",
                    &[&oid],
                )
                .await?;
            let kind = match row {
                None => PgKind::Text,
                Some(r) => {
                    let typtype: String = r.get(0);
                    let category: String = r.get(1);
                    let elem: u32 = r.get(2);
                    let base: u32 = r.get(3);
                    let base_mod: i32 = r.get(4);
                    let delim: String = r.get(5);
                    if typtype == "d" && base != 0 {
                        self.kind(base, if base_mod >= 0 { base_mod } else { typmod })
                            .await?
                    } else if category == "A" && elem != 0 {
                        let e = self.kind(elem, typmod).await?;
                        PgKind::Array {
                            elem: Box::new(e),
                            delim: delim.bytes().next().unwrap_or(b','),
                        }
                    } else {
                        PgKind::Text
                    }
                }
            };
            self.kinds.insert((oid, typmod), kind.clone());
            Ok(kind)
        })
    }

    /// Primary-key column names in key order; empty when the table has none.
    pub(crate) async fn primary_key(
        &mut self,
        rel: u32,
    ) -> Result<Vec<String>, tokio_postgres::Error> {
        if let Some(k) = self.pre_keys.remove(&rel) {
            return Ok(k);
        }
        let rows = self
            .client
            .query(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord",
                &[&rel],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Ordinary tables (leaf partitions included) outside system schemas.
    pub(crate) async fn tables(&self) -> Result<Vec<TableRow>, tokio_postgres::Error> {
        list_tables(&self.client).await
    }

    /// Columns as logical replication publishes them: not dropped, not generated.
    pub(crate) async fn columns(
        &mut self,
        rel: u32,
    ) -> Result<Vec<ColumnRow>, tokio_postgres::Error> {
        if let Some(c) = self.pre_columns.remove(&rel) {
            return Ok(c);
        }
        let rows = self
            .client
            .query(
                "SELECT attname::text, atttypid, atttypmod FROM pg_attribute \
                 WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' \
                 ORDER BY attnum",
                &[&rel],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ColumnRow {
                name: r.get(0),
                type_oid: r.get(1),
                typmod: r.get(2),
            })
            .collect())
    }
}

/// Ordinary tables (leaf partitions included) outside system schemas.
/// The schemas user tables can live in (what `source.tables` patterns are matched against).
pub(crate) async fn list_schemas(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_namespace \
             WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'rowstream') \
               AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%' ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// `source.tables` patterns that select nothing that exists (see
/// `source::unmatched_patterns`).
pub(crate) async fn unmatched_patterns(
    client: &Client,
    filter: &crate::model::schema::TableFilter,
) -> Result<Result<(), crate::error::SetupError>, tokio_postgres::Error> {
    let schemas = list_schemas(client).await?;
    let names: Vec<String> = list_tables(client)
        .await?
        .iter()
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect();
    Ok(crate::source::unmatched_patterns(
        filter, &schemas, &names, true,
    ))
}

pub(crate) async fn list_tables(client: &Client) -> Result<Vec<TableRow>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relreplident::text, \
                        EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), \
                        c.relkind = 'p' \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE ((c.relkind = 'r' AND NOT c.relispartition) OR c.relkind = 'p') \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'rowstream') \
                   AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
                 ORDER BY 2, 3",
                &[],
            )
            .await?;
    Ok(rows
        .iter()
        .map(|r| TableRow {
            oid: r.get(0),
            schema: r.get(1),
            name: r.get(2),
            replica_identity: r.get::<_, String>(3).chars().next().unwrap_or('d'),
            has_pk: r.get(4),
            partitioned: r.get(5),
        })
        .collect())
}
