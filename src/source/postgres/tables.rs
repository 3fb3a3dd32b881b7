//! Building [`TableSchema`]s for Postgres tables and decoding their values; shared by the
//! snapshot and the stream so both render a row identically.
//!
//! Invariants:
//! - A value that cannot be rendered becomes `Value::Unrendered` (written as null), is counted, and is logged once per
//!   (table, column), without the value itself.
//! - Keys and topics come from the shared `SchemaFactory` (custom key, else primary key, else
//!   none; a custom key naming a missing column is a setup error).

use super::catalog::Catalog;
use super::error::SourceError;
use super::types::{decode_text, DecodeCtx, PgKind};
use crate::model::schema::{TableFilter, TableId, TableSchema};
use crate::model::value::Value;
use crate::source::render::RenderWarnings;
use crate::source::schemas::SchemaFactory;
use std::sync::Arc;

pub(crate) struct Tables {
    pub(super) catalog: Catalog,
    db: String,
    pub(super) filter: TableFilter,
    pub(super) schemas: SchemaFactory,
    ctx: DecodeCtx,
    pub(super) toast_placeholder: String,
    warnings: RenderWarnings,
}

/// A table's schema and how to read each column.
#[derive(Clone)]
pub(crate) struct TableDecoder {
    pub(crate) schema: Arc<TableSchema>,
    pub(crate) kinds: Vec<PgKind>,
}

impl Tables {
    pub(crate) fn new(
        catalog: Catalog,
        db: String,
        filter: TableFilter,
        schemas: SchemaFactory,
        ctx: DecodeCtx,
        toast_placeholder: String,
    ) -> Tables {
        Tables {
            catalog,
            db,
            filter,
            schemas,
            ctx,
            toast_placeholder,
            warnings: RenderWarnings::default(),
        }
    }

    pub(crate) fn table_id(&self, schema: &str, name: &str) -> TableId {
        TableId {
            db: self.db.clone(),
            schema: Some(schema.to_string()),
            table: name.to_string(),
        }
    }

    /// Build a decoder from column names and types; `rel` is the table OID (for the primary key).
    pub(crate) async fn decoder(
        &mut self,
        rel: u32,
        id: TableId,
        cols: &[(String, u32, i32)],
    ) -> Result<TableDecoder, SourceError> {
        let mut kinds = Vec::with_capacity(cols.len());
        let mut columns = Vec::with_capacity(cols.len());
        for (name, oid, typmod) in cols {
            let k = self.catalog.kind(*oid, *typmod).await?;
            let mut c = k.column(name);
            c.refine = k.refine(*typmod);
            columns.push(c);
            kinds.push(k);
        }
        let pk = self.catalog.primary_key(rel).await?;
        Ok(TableDecoder {
            schema: self.schemas.build(id, columns, &pk)?,
            kinds,
        })
    }

    /// Decode one text value, null (counted, logged once per column) when it cannot be rendered.
    pub(crate) fn decode(&mut self, t: &TableDecoder, col: usize, text: &[u8]) -> Value {
        match t.kinds.get(col).map(|k| decode_text(k, text, &self.ctx)) {
            Some(Ok(v)) => v,
            Some(Err(reason)) => self.render_failed(&t.schema, col, &reason),
            None => Value::Null,
        }
    }

    /// Count and log a value that cannot be rendered; the `Unrendered` that replaces it.
    pub(crate) fn render_failed(&mut self, s: &TableSchema, col: usize, reason: &str) -> Value {
        let cname = s.columns.get(col).map(|c| c.name.as_str()).unwrap_or("");
        self.warnings.failed(&s.id.pattern_name(), cname, reason)
    }
}
