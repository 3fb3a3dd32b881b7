//! The Postgres half of incremental snapshots (the shared part is
//! `crate::source::incremental`): chunks of heap pages read on the catalog session while the
//! stream runs, closed by a logical message.
//!
//! A chunk is read in a REPEATABLE READ transaction whose snapshot rowstream records
//! (`txid_current_snapshot()`, taken before the read). The high watermark is a non-transactional
//! `pg_logical_emit_message` written after the read: every transaction the read saw committed
//! before it, so it streams before the watermark. A streamed transaction the snapshot does not
//! see (in progress at the read, or started after) touches the chunk: its keys leave it.
//!
//! Invariants:
//! - Chunks are ctid page ranges, as in the initial snapshot, so an interrupted initial snapshot
//!   resumes at its stored page. A row that moves to an already-read page is moved by an UPDATE,
//!   which the stream carries with its whole new image: no row is missed.
//! - Visibility is decided on full 64-bit transaction ids (the 32-bit xid of the stream widened
//!   by the snapshot's epoch).
//! - If a transaction the stream already passed is not visible to the read (its commit record
//!   was written but not yet visible), the chunk is read again: it could hold that key's older
//!   image.

use super::catalog::TableRow;
use super::replication::quote_literal;
use super::snapshot::{PgTableReader, SnapTable};
use super::{decoder_for, setup, SourceError, Tables};
use crate::source::incremental::Job;
use crate::source::snapshot::{read_chunk_into, TableReader};
use std::collections::VecDeque;

/// At most this many heap pages per incremental chunk (`snapshot.chunk_pages` when smaller): a
/// chunk is held in memory until its watermark.
pub(crate) const MAX_CHUNK_PAGES: u32 = 256;
/// The logical-message prefix of high watermarks.
pub(crate) const WATERMARK_PREFIX: &str = "rowstream_watermark";
/// How many recently streamed transaction ids are checked against a chunk's snapshot.
const RECENT: usize = 256;

/// A chunk's high watermark: the message content to wait for, and the read's snapshot.
pub(crate) struct Watermark {
    pub(crate) token: String,
    snap: TxSnapshot,
}

/// `txid_current_snapshot()`: xmin:xmax:xip,...
#[derive(Debug, PartialEq)]
pub(crate) struct TxSnapshot {
    xmin: u64,
    xmax: u64,
    xip: Vec<u64>,
}

impl TxSnapshot {
    pub(crate) fn parse(s: &str) -> Option<TxSnapshot> {
        let mut it = s.split(':');
        let xmin = it.next()?.parse().ok()?;
        let xmax = it.next()?.parse().ok()?;
        let xip = match it.next()? {
            "" => vec![],
            l => l
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?,
        };
        Some(TxSnapshot { xmin, xmax, xip })
    }

    /// Did a read in this snapshot see committed transaction `xid` (the stream's 32 bits)?
    pub(crate) fn sees(&self, xid: u32) -> bool {
        let epoch = self.xmax >> 32;
        let mut full = (epoch << 32) | xid as u64;
        if full > self.xmax && epoch > 0 {
            full -= 1 << 32;
        }
        full < self.xmin || (full < self.xmax && !self.xip.contains(&full))
    }
}

/// Transaction ids the stream passed recently.
#[derive(Default)]
pub(crate) struct Recent(VecDeque<u32>);

impl Recent {
    pub(crate) fn push(&mut self, xid: u32) {
        if self.0.len() == RECENT {
            self.0.pop_front();
        }
        self.0.push_back(xid);
    }
}

impl Watermark {
    /// Is a change of transaction `xid` possibly missing from the chunk?
    pub(crate) fn touches(&self, xid: u32) -> bool {
        !self.snap.sees(xid)
    }
}

/// The catalog row of a table by pattern name, if it exists and is matched.
async fn table_row(tables: &Tables, name: &str) -> Result<Option<TableRow>, SourceError> {
    Ok(tables
        .catalog
        .tables()
        .await?
        .into_iter()
        .find(|t| tables.table_id(&t.schema, &t.name).pattern_name() == name))
}

/// Why `name` cannot be snapshotted incrementally, if it cannot.
pub(super) async fn refuse(tables: &mut Tables, name: &str) -> Result<Option<String>, SourceError> {
    let Some(t) = table_row(tables, name).await? else {
        return Ok(Some(format!("{name}: no such table")));
    };
    if !tables.filter.matches(&tables.table_id(&t.schema, &t.name)) {
        return Ok(Some(format!("{name}: not matched by source.tables")));
    }
    let d = decoder_for(tables, &t).await?;
    if d.schema.key.is_none() {
        return Ok(Some(format!(
            "{name}: has no primary key (or source.keys entry), so changes cannot be matched to snapshot rows"
        )));
    }
    Ok(None)
}

/// What reading a chunk needs of the stream: its tables and catalog connection, the queue of
/// incremental snapshots, the transactions it passed lately, and `snapshot.chunk_pages`.
pub(super) struct ChunkCtx<'a> {
    pub(super) tables: &'a mut Tables,
    pub(super) inc: &'a mut crate::source::incremental::Incremental<Watermark>,
    pub(super) recent: &'a Recent,
    pub(super) chunk_pages: u32,
}

/// Read the next chunk of `job`'s table and write its watermark; the chunk is opened in
/// `st.inc`, or dropped to be read again when a passed transaction was not visible to it.
pub(super) async fn read_chunk(st: ChunkCtx<'_>, job: &Job, seq: u64) -> Result<(), SourceError> {
    let Some(row) = table_row(st.tables, &job.table).await? else {
        tracing::warn!(table = %job.table, "table is gone: its incremental snapshot ends");
        st.inc.abandon();
        st.inc.drop_front();
        return Ok(());
    };
    let target = SnapTable {
        decoder: decoder_for(st.tables, &row).await?,
        oid: row.oid,
    };
    let schema = target.decoder.schema.clone();
    let cursor: Option<i64> = serde_json::from_value(job.cursor.clone()).unwrap_or(None);
    st.tables
        .catalog
        .client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let res = async {
        let snap: String = st
            .tables
            .catalog
            .client
            .query_one("SELECT txid_current_snapshot()::text", &[])
            .await?
            .get(0);
        let mut reader = PgTableReader::new(st.tables, st.chunk_pages.min(MAX_CHUNK_PAGES));
        reader.begin(&target).await?;
        let (rows, next) = read_chunk_into(&mut reader, &target, cursor).await?;
        Ok::<_, SourceError>((snap, rows, next))
    }
    .await;
    let client = &st.tables.catalog.client;
    client.batch_execute("COMMIT").await.ok();
    let (snap, rows, next) = res?;
    let snap = TxSnapshot::parse(&snap).ok_or_else(|| {
        SourceError::Protocol(super::PgError::Protocol(format!(
            "unreadable txid_current_snapshot `{snap}`"
        )))
    })?;
    if st.recent.0.iter().any(|&x| !snap.sees(x)) {
        // (not an error: the commit becomes visible within microseconds)
        tracing::debug!(table = %job.table, "a passed transaction is not visible yet: chunk read again");
        return Ok(());
    }
    let token = format!("{}-{seq}", std::process::id());
    client
        .simple_query(&format!(
            "SELECT pg_logical_emit_message(false, {}, {})",
            quote_literal(WATERMARK_PREFIX),
            quote_literal(&token)
        ))
        .await
        .map_err(|e| {
            setup(
                format!("cannot write the incremental snapshot's watermark: {e}"),
                "GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO <rowstream's user>; (or run as a superuser)",
            )
        })?;
    let next = next.map(serde_json::Value::from);
    st.inc.open(schema, rows, next, Watermark { token, snap });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_visibility() {
        let s = TxSnapshot::parse("100:105:101,103").unwrap();
        assert_eq!(s.xip, vec![101, 103]);
        assert!(s.sees(99) && s.sees(100) && s.sees(102) && s.sees(104));
        assert!(!s.sees(101) && !s.sees(103) && !s.sees(105) && !s.sees(4000));
        assert_eq!(TxSnapshot::parse("7:7:").unwrap().xip, Vec::<u64>::new());
        assert_eq!(TxSnapshot::parse("7:x:"), None);
        // epochs: the stream's 32-bit xid is widened by the snapshot's epoch
        let e = 3u64 << 32;
        let s = TxSnapshot::parse(&format!("{}:{}:", e + 5, e + 9)).unwrap();
        assert!(s.sees(4) && s.sees(8) && !s.sees(9));
        // an xid just below the epoch boundary belongs to the previous epoch: long committed
        assert!(s.sees(u32::MAX - 1));
    }
}
