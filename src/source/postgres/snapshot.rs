//! The Postgres half of a snapshot (the shared driver is `crate::source::snapshot`): tables read
//! from an exported snapshot with `COPY (SELECT .. WHERE ctid range) TO STDOUT`, in chunks of
//! heap pages.
//!
//! Consistency: the reading session runs `SET TRANSACTION SNAPSHOT '<exported>'` in REPEATABLE
//! READ, so it sees exactly the transactions committed before the slot's consistent point, and
//! the stream drops this table's transactions that committed before it (the table's fence). No
//! gap, no duplicate, and no lock beyond the ACCESS SHARE every SELECT takes.
//!
//! Invariants:
//! - Memory is bounded whatever the table size: COPY output is parsed as it arrives and rows go
//!   out through the bounded batcher; a slow broker stops the read.
//! - Chunks are ctid page ranges (TID range scans): no chunk scans the whole table, and the
//!   cursor (the next page) is where an interrupted read would resume.
//! - A permission error names the table and the GRANT that fixes it.
//! - A partitioned table is read through its root (all its partitions, as the stream names
//!   their changes with `publish_via_partition_root`): a chunk is the same page range of every
//!   leaf partition, over as many pages as the largest leaf has.

use super::error::SourceError;
use super::replication::quote_ident;
use super::tables::{TableDecoder, Tables};
use crate::error::SetupError;
use crate::model::schema::TableSchema;
use crate::model::value::Value;
use crate::source::snapshot::{RowOut, TableReader};
use futures_util::StreamExt;
use std::sync::Arc;

/// Undo COPY text escaping of one field; None for `\N`.
pub(crate) fn unescape_copy(raw: &[u8], out: &mut Vec<u8>) -> bool {
    if raw == b"\\N" {
        return false;
    }
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' || i + 1 >= raw.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let n = raw[i + 1];
        i += 2;
        match n {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = (n - b'0') as u32;
                let mut k = 0;
                while k < 2 && i < raw.len() && (b'0'..=b'7').contains(&raw[i]) {
                    v = v * 8 + (raw[i] - b'0') as u32;
                    i += 1;
                    k += 1;
                }
                out.push(v as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut k = 0;
                while k < 2 && i < raw.len() && raw[i].is_ascii_hexdigit() {
                    v = v * 16 + (raw[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    k += 1;
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    true
}

/// A table to snapshot: its decoder and OID.
pub(crate) struct SnapTable {
    pub(crate) decoder: TableDecoder,
    pub(crate) oid: u32,
}

/// Reads tables with `COPY` over ctid page ranges, inside the exported snapshot that
/// `tables.catalog` (the snapshot session) has open.
pub(crate) struct PgTableReader<'a> {
    pub(crate) tables: &'a mut Tables,
    pub(crate) chunk_pages: u32,
    /// heap pages of the table being read (of its largest leaf partition)
    pages: i64,
    /// the table being read is partitioned: read through the root, not `ONLY` it
    partitioned: bool,
    field: Vec<u8>,
    carry: Vec<u8>,
    /// pages, row estimate and partitioned, read ahead for many tables
    /// ([`PgTableReader::prefetch`]); each taken by the table's `begin`
    sizes: std::collections::HashMap<u32, (i64, i64, bool)>,
}

/// A table's heap pages (of its largest leaf partition), its row estimate (-1: unknown) and
/// whether it is partitioned, for the tables whose oids are `$1`.
const SIZES: &str = "SELECT c.oid, (CASE WHEN c.relkind = 'p' \
      THEN (SELECT coalesce(max(pg_relation_size(p.relid)), 0) FROM pg_partition_tree(c.oid) p WHERE p.isleaf) \
      ELSE pg_relation_size(c.oid) END / current_setting('block_size')::bigint)::bigint, \
    (CASE WHEN c.relkind = 'p' \
      THEN (SELECT coalesce(sum(greatest(x.reltuples, 0)), -1) FROM pg_partition_tree(c.oid) p JOIN pg_class x ON x.oid = p.relid WHERE p.isleaf) \
      ELSE c.reltuples END)::bigint, \
    c.relkind = 'p' \
  FROM pg_class c WHERE c.oid = ANY($1)";

impl<'a> PgTableReader<'a> {
    pub(crate) fn new(tables: &'a mut Tables, chunk_pages: u32) -> PgTableReader<'a> {
        PgTableReader {
            tables,
            chunk_pages,
            pages: 0,
            partitioned: false,
            field: Vec::new(),
            carry: Vec::new(),
            sizes: Default::default(),
        }
    }

    /// Read the sizes of many tables in one query (one per table took 3 s for 10,000 tables).
    pub(crate) async fn prefetch(&mut self, oids: &[u32]) -> Result<(), SourceError> {
        let oids = oids.to_vec();
        let rows = self.tables.catalog.client.query(SIZES, &[&oids]).await?;
        for r in rows {
            self.sizes.insert(r.get(0), (r.get(1), r.get(2), r.get(3)));
        }
        Ok(())
    }

    fn parse_line(&mut self, t: &TableDecoder, line: &[u8]) -> Vec<Value> {
        let mut row = Vec::with_capacity(t.kinds.len());
        for (i, raw) in line.split(|&c| c == b'\t').enumerate() {
            if i >= t.kinds.len() {
                break;
            }
            if unescape_copy(raw, &mut self.field) {
                row.push(self.tables.decode(t, i, &self.field));
            } else {
                row.push(Value::Null);
            }
        }
        while row.len() < t.kinds.len() {
            row.push(Value::Null);
        }
        row
    }

    /// Rows of the COPY output, line by line (a line may span network chunks).
    async fn copy_rows(
        &mut self,
        t: &TableDecoder,
        sql: &str,
        out: &mut RowOut<'_>,
    ) -> Result<(), SourceError> {
        let stream = self.tables.catalog.client.copy_out(sql).await?;
        futures_util::pin_mut!(stream);
        self.carry.clear();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            let mut data: &[u8] = &chunk;
            while let Some(nl) = data.iter().position(|&c| c == b'\n') {
                let row = if self.carry.is_empty() {
                    self.parse_line(t, &data[..nl])
                } else {
                    let mut line = std::mem::take(&mut self.carry);
                    line.extend_from_slice(&data[..nl]);
                    let row = self.parse_line(t, &line);
                    self.carry = line;
                    self.carry.clear();
                    row
                };
                out.row(row).await?;
                data = &data[nl + 1..];
            }
            self.carry.extend_from_slice(data);
        }
        Ok(())
    }
}

impl TableReader for PgTableReader<'_> {
    type Table = SnapTable;
    type Cursor = i64;
    type Error = SourceError;

    fn schema(t: &SnapTable) -> &Arc<TableSchema> {
        &t.decoder.schema
    }

    async fn begin(&mut self, t: &SnapTable) -> Result<Option<u64>, SourceError> {
        let (pages, tuples, partitioned) = match self.sizes.remove(&t.oid) {
            Some(s) => s,
            None => {
                let row = (self.tables.catalog.client)
                    .query_one(SIZES, &[&vec![t.oid]])
                    .await
                    .map_err(|e| read_error(&t.decoder.schema, e))?;
                (row.get(1), row.get(2), row.get(3))
            }
        };
        self.pages = pages;
        self.partitioned = partitioned;
        Ok((tuples >= 0).then_some(tuples as u64))
    }

    async fn read_chunk(
        &mut self,
        t: &SnapTable,
        cursor: Option<i64>,
        out: &mut RowOut<'_>,
    ) -> Result<Option<i64>, SourceError> {
        if self.pages == 0 {
            // an empty file holds no row, under any snapshot: no COPY (10,000 empty tables
            // took 8 s of round trips)
            return Ok(None);
        }
        let id = &t.decoder.schema.id;
        let start = cursor.unwrap_or(0);
        let chunk = self.chunk_pages as i64;
        let last = start + chunk >= self.pages;
        let cond = if start == 0 && last {
            String::new()
        } else if last {
            format!(" WHERE ctid >= '({start},0)'::tid")
        } else {
            format!(
                " WHERE ctid >= '({start},0)'::tid AND ctid < '({},0)'::tid",
                start + chunk
            )
        };
        let cols: Vec<String> = t
            .decoder
            .schema
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        let sql = format!(
            "COPY (SELECT {} FROM {}{}.{}{cond}) TO STDOUT",
            cols.join(","),
            if self.partitioned { "" } else { "ONLY " },
            quote_ident(id.schema.as_deref().unwrap_or("public")),
            quote_ident(&id.table)
        );
        match self.copy_rows(&t.decoder, &sql, out).await {
            Err(SourceError::Query(e)) => return Err(read_error(&t.decoder.schema, e)),
            r => r?,
        }
        Ok((!last).then_some(start + chunk))
    }
}

/// A failed read of `table`: a missing privilege is a setup error with its GRANT.
fn read_error(table: &TableSchema, e: tokio_postgres::Error) -> SourceError {
    if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
        let id = &table.id;
        let q = format!(
            "{}.{}",
            quote_ident(id.schema.as_deref().unwrap_or("public")),
            quote_ident(&id.table)
        );
        return SourceError::Setup(SetupError::new(
            format!("cannot snapshot {q}: permission denied (the snapshot reads every row)"),
            format!("GRANT SELECT ON {q} TO <rowstream's user>; (run `rowstream check` to list every missing grant)"),
        ));
    }
    SourceError::Query(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_unescape() {
        let mut out = Vec::new();
        assert!(!unescape_copy(b"\\N", &mut out));
        assert!(unescape_copy(b"a\\tb\\nc\\\\d\\101\\x41", &mut out));
        assert_eq!(out, b"a\tb\nc\\dAA");
        assert!(unescape_copy(b"", &mut out));
        assert_eq!(out, b"");
    }
}
