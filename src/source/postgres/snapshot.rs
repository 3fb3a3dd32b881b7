//! Initial (and added-table) snapshots from an exported snapshot, read with
//! `COPY (SELECT .. WHERE ctid range) TO STDOUT` in chunks of heap pages.
//!
//! Consistency: the reading session runs `SET TRANSACTION SNAPSHOT '<exported>'` in REPEATABLE
//! READ, so it sees exactly the transactions committed before the slot's consistent point, and
//! the stream (which starts at or before that point) drops this table's transactions that
//! committed before it (`Marker::SnapshotDone` carries the point). No gap, no duplicate, and no
//! lock beyond the ACCESS SHARE every SELECT takes.
//!
//! Invariants:
//! - Memory is bounded whatever the table size: COPY output is parsed as it arrives and rows go
//!   out in batches through the bounded channel; a slow broker stops the read.
//! - Chunks are ctid page ranges (TID range scans), so progress is measurable (pages done / pages
//!   total) and no chunk scans the whole table.
//! - Rows are `INSERT` events with `snapshot = true` (spec §4.5).

use super::tables::{TableDecoder, Tables};
use super::SourceError;
use crate::event::{Batch, ChangeEvent, Marker, Op, SourceEvent};
use crate::position::{Lsn, SourcePosition};
use crate::value::Value;
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub const BATCH: usize = 512;

/// Undo COPY text escaping of one field; None for `\N`.
pub fn unescape_copy(raw: &[u8], out: &mut Vec<u8>) -> bool {
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

fn parse_line(
    tables: &mut Tables,
    t: &TableDecoder,
    line: &[u8],
    field: &mut Vec<u8>,
) -> Vec<Value> {
    let mut row = Vec::with_capacity(t.kinds.len());
    for (i, raw) in line.split(|&c| c == b'\t').enumerate() {
        if i >= t.kinds.len() {
            break;
        }
        if unescape_copy(raw, field) {
            row.push(tables.decode(t, i, field));
        } else {
            row.push(Value::Null);
        }
    }
    while row.len() < t.kinds.len() {
        row.push(Value::Null);
    }
    row
}

async fn send(tx: &mpsc::Sender<Batch>, batch: &mut Batch) -> Result<(), SourceError> {
    if batch.is_empty() {
        return Ok(());
    }
    let b = std::mem::replace(batch, Vec::with_capacity(BATCH));
    tx.send(b).await.map_err(|_| SourceError::Closed)
}

/// Snapshot one table inside the caller's snapshot transaction on `tables.catalog.client`.
pub async fn snapshot_table(
    tables: &mut Tables,
    t: &TableDecoder,
    oid: u32,
    chunk_pages: u32,
    from: Lsn,
    tx: &mpsc::Sender<Batch>,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> Result<u64, SourceError> {
    use super::replication::quote_ident;
    let started = Instant::now();
    let id = &t.schema.id;
    let qname = format!(
        "{}.{}",
        quote_ident(id.schema.as_deref().unwrap_or("public")),
        quote_ident(&id.table)
    );
    let cols: Vec<String> = t
        .schema
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect();
    let pages: i64 = tables
        .catalog
        .client
        .query_one(
            "SELECT (pg_relation_size($1::oid) / current_setting('block_size')::bigint)::bigint",
            &[&oid],
        )
        .await?
        .get(0);
    tracing::info!(table = %id, pages, "snapshot started");
    let mut rows = 0u64;
    let mut batch: Batch = Vec::with_capacity(BATCH);
    let mut field = Vec::new();
    let mut carry: Vec<u8> = Vec::new();
    let mut last_log = Instant::now();
    let mut start_page = 0i64;
    let chunk = chunk_pages as i64;
    loop {
        let last = start_page + chunk >= pages;
        let cond = if start_page == 0 && last {
            String::new()
        } else if last {
            format!(" WHERE ctid >= '({start_page},0)'::tid")
        } else {
            format!(
                " WHERE ctid >= '({start_page},0)'::tid AND ctid < '({},0)'::tid",
                start_page + chunk
            )
        };
        let sql = format!(
            "COPY (SELECT {} FROM ONLY {qname}{cond}) TO STDOUT",
            cols.join(",")
        );
        let stream = tables.catalog.client.copy_out(sql.as_str()).await?;
        futures_util::pin_mut!(stream);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            let mut data: &[u8] = &chunk;
            while let Some(nl) = data.iter().position(|&c| c == b'\n') {
                let line_owned;
                let line: &[u8] = if carry.is_empty() {
                    &data[..nl]
                } else {
                    carry.extend_from_slice(&data[..nl]);
                    line_owned = std::mem::take(&mut carry);
                    &line_owned
                };
                let row = parse_line(tables, t, line, &mut field);
                batch.push(SourceEvent::Change(ChangeEvent {
                    table: t.schema.clone(),
                    op: Op::Insert,
                    before: None,
                    after: Some(row),
                    event_time_ms: -1,
                    snapshot: true,
                }));
                rows += 1;
                if batch.len() >= BATCH {
                    send(tx, &mut batch).await?;
                }
                data = &data[nl + 1..];
            }
            carry.extend_from_slice(data);
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            let done = (start_page + chunk).min(pages.max(1));
            tracing::info!(
                table = %id, rows, pct = (done * 100 / pages.max(1)),
                "snapshot progress"
            );
            last_log = Instant::now();
        }
        if last {
            break;
        }
        if *shutdown.borrow() {
            // no SnapshotDone marker: the next start snapshots this table again
            send(tx, &mut batch).await?;
            tracing::info!(table = %id, rows, "snapshot interrupted by shutdown; it restarts on the next run");
            return Ok(rows);
        }
        start_page += chunk;
    }
    batch.push(SourceEvent::Marker(Marker::SnapshotDone {
        table: id.pattern_name(),
        from: SourcePosition::Postgres { lsn: from },
    }));
    send(tx, &mut batch).await?;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        table = %id, rows, secs = format!("{secs:.2}"),
        rows_per_sec = (rows as f64 / secs.max(1e-6)) as u64,
        "snapshot finished"
    );
    Ok(rows)
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
