//! Building [`TableSchema`]s for Postgres tables and decoding their values; shared by the
//! snapshot and the stream so both render a row identically.
//!
//! Invariants:
//! - A value that cannot be rendered becomes `Value::Null`, is counted, and is logged once per
//!   (table, column), without the value itself.
//! - The key is the configured custom key (`source.keys`) when given and valid, else the primary
//!   key, else none.

use super::catalog::Catalog;
use super::types::{decode_text, DecodeCtx, PgKind};
use crate::schema::{render_topic, DbType, TableFilter, TableId, TableSchema};
use crate::source::render::RenderWarnings;
use crate::value::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct Tables {
    pub catalog: Catalog,
    pub db: String,
    pub filter: TableFilter,
    pub topic_template: String,
    pub keys: BTreeMap<String, Vec<String>>,
    pub ctx: DecodeCtx,
    pub toast_placeholder: String,
    warnings: RenderWarnings,
}

/// A table's schema and how to read each column.
#[derive(Clone)]
pub struct TableDecoder {
    pub schema: Arc<TableSchema>,
    pub kinds: Vec<PgKind>,
}

impl Tables {
    pub fn new(
        catalog: Catalog,
        db: String,
        filter: TableFilter,
        topic_template: String,
        keys: BTreeMap<String, Vec<String>>,
        ctx: DecodeCtx,
        toast_placeholder: String,
    ) -> Tables {
        Tables {
            catalog,
            db,
            filter,
            topic_template,
            keys,
            ctx,
            toast_placeholder,
            warnings: RenderWarnings::default(),
        }
    }

    pub fn table_id(&self, schema: &str, name: &str) -> TableId {
        TableId {
            db: self.db.clone(),
            schema: Some(schema.to_string()),
            table: name.to_string(),
        }
    }

    /// Build a decoder from column names and types; `rel` is the table OID (for the primary key).
    pub async fn decoder(
        &mut self,
        rel: u32,
        id: TableId,
        cols: &[(String, u32, i32)],
        pk_hint: Option<Vec<String>>,
    ) -> Result<TableDecoder, tokio_postgres::Error> {
        let mut kinds = Vec::with_capacity(cols.len());
        let mut columns = Vec::with_capacity(cols.len());
        for (name, oid, typmod) in cols {
            let k = self.catalog.kind(*oid, *typmod).await?;
            columns.push(k.column(name));
            kinds.push(k);
        }
        let pname = id.pattern_name();
        let mut key = None;
        if let Some(custom) = self.keys.get(&pname) {
            let idx: Option<Vec<usize>> = custom
                .iter()
                .map(|c| columns.iter().position(|x| &x.name == c))
                .collect();
            match idx {
                Some(i) => key = Some(i),
                None => {
                    tracing::warn!(table = %pname, "source.keys names a column the table does not have; using the primary key")
                }
            }
        }
        if key.is_none() {
            let pk = match pk_hint {
                Some(p) => p,
                None => self.catalog.primary_key(rel).await?,
            };
            let idx: Option<Vec<usize>> = pk
                .iter()
                .map(|c| columns.iter().position(|x| &x.name == c))
                .collect();
            key = idx.filter(|i| !i.is_empty());
        }
        let topic = render_topic(&self.topic_template, &id);
        Ok(TableDecoder {
            schema: TableSchema::new(DbType::PostgreSql, id, columns, key, topic),
            kinds,
        })
    }

    /// Decode one text value, null (counted, logged once per column) when it cannot be rendered.
    pub fn decode(&mut self, t: &TableDecoder, col: usize, text: &[u8]) -> Value {
        match t.kinds.get(col).map(|k| decode_text(k, text, &self.ctx)) {
            Some(Ok(v)) => v,
            Some(Err(reason)) => {
                self.render_failed(&t.schema, col, &reason);
                Value::Null
            }
            None => Value::Null,
        }
    }

    pub fn render_failed(&mut self, s: &TableSchema, col: usize, reason: &str) {
        let cname = s.columns.get(col).map(|c| c.name.as_str()).unwrap_or("");
        self.warnings.failed(&s.id.pattern_name(), cname, reason);
    }
}
