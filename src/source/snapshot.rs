//! The snapshot driver both sources use: tables one after another, each read in chunks by a
//! source-specific [`TableReader`], rows batched out as snapshot `INSERT`s, progress counted in
//! the metrics (whose one reader, `connect::progress`, shows it; the driver logs only a table's
//! start and finish),
//! shutdown honoured at every chunk boundary, and `Marker::Snapshot` progress after every chunk.
//!
//! Invariants:
//! - Rows are `ChangeEvent`s with `snapshot = true`, `op = Insert`, `event_time_ms = -1`
//!   (spec §4.5), in the order the reader yields them, through the bounded batcher: memory is
//!   bounded by one chunk's rows in flight, whatever the table size.
//! - `Marker::Snapshot { fence, step: At(cursor) }` follows each chunk but the last, and
//!   `step: Done` the table's last row: stored once every row before it was delivered, so a
//!   restart resumes after the last delivered chunk (`fence` is the snapshot's consistent point,
//!   see `plan`; the rest of the table is then read by `incremental` while streaming).
//! - A stop request is honoured after the chunk being read: the rows read so far and their
//!   progress marker are flushed, and the table resumes after that chunk on the next start.
//! - The reader runs inside the caller's consistent read (an exported Postgres snapshot, a MySQL
//!   `START TRANSACTION WITH CONSISTENT SNAPSHOT`); the driver never opens or ends it.

use super::batch::{Batcher, Closed};
use crate::model::event::{ChangeEvent, Marker, Op, SnapshotStep, SourceEvent};
use crate::model::position::SourcePosition;
use crate::model::schema::TableSchema;
use crate::model::value::Row;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// The database-specific half of a snapshot: reading one table in chunks.
pub(crate) trait TableReader: Send {
    /// A table to read, as the reader knows it (its schema and how to query it).
    type Table: Send + Sync;
    /// Where the next chunk starts (a page, a key); stored as JSON in the snapshot's progress.
    type Cursor: Send + serde::Serialize;
    type Error: From<Closed> + Send;

    fn schema(table: &Self::Table) -> &Arc<TableSchema>;

    /// Prepare reading `table`; the estimated row count, when the catalog knows one.
    fn begin(
        &mut self,
        table: &Self::Table,
    ) -> impl Future<Output = Result<Option<u64>, Self::Error>> + Send;

    /// Read the chunk that starts at `cursor` (the table's start when `None`), handing each row
    /// to `out`; returns where the next chunk starts, or `None` when the table is done.
    fn read_chunk(
        &mut self,
        table: &Self::Table,
        cursor: Option<Self::Cursor>,
        out: &mut RowOut<'_>,
    ) -> impl Future<Output = Result<Option<Self::Cursor>, Self::Error>> + Send;
}

/// Where a reader hands its rows: out as snapshot records, or into a chunk buffer (an
/// incremental snapshot holds a chunk until its high watermark).
pub(crate) struct RowOut<'a> {
    dest: Dest<'a>,
    schema: Arc<TableSchema>,
    rows: u64,
    /// the connector's metrics and the table's name: the row count is published there every
    /// [`PUBLISH_EVERY`] rows, so progress shows inside a large chunk too
    progress: Option<(Arc<crate::metrics::Metrics>, String)>,
}

/// Rows between two publications of a table's snapshot row count.
const PUBLISH_EVERY: u64 = 8192;

enum Dest<'a> {
    Out(&'a mut Batcher),
    Buffer(&'a mut Vec<Row>),
}

impl<'a> RowOut<'a> {
    /// Rows of `schema`'s table into `buf`.
    pub(crate) fn buffer(schema: Arc<TableSchema>, buf: &'a mut Vec<Row>) -> RowOut<'a> {
        RowOut {
            dest: Dest::Buffer(buf),
            schema,
            rows: 0,
            progress: None,
        }
    }

    /// A marker after the rows so far (a buffer holds rows only).
    async fn marker(&mut self, ev: SourceEvent) -> Result<(), Closed> {
        match &mut self.dest {
            Dest::Out(out) => out.push(ev).await,
            Dest::Buffer(_) => Ok(()),
        }
    }

    async fn flush(&mut self) -> Result<(), Closed> {
        match &mut self.dest {
            Dest::Out(out) => out.flush().await,
            Dest::Buffer(_) => Ok(()),
        }
    }

    /// One snapshot row, its values in table column order.
    pub(crate) async fn row(&mut self, after: Row) -> Result<(), Closed> {
        self.rows += 1;
        if self.rows % PUBLISH_EVERY == 0 {
            if let Some((m, table)) = &self.progress {
                m.snapshot_progress(table, self.rows, false);
            }
        }
        match &mut self.dest {
            Dest::Buffer(b) => {
                b.push(after);
                Ok(())
            }
            Dest::Out(out) => out.push(snapshot_row(self.schema.clone(), after)).await,
        }
    }
}

/// One chunk of `table` into memory: its rows, and where the next chunk starts (`None`: the
/// table is done). Incremental snapshots hold a chunk until its watermark; `verify` compares it.
pub(crate) async fn read_chunk_into<R: TableReader>(
    reader: &mut R,
    table: &R::Table,
    cursor: Option<R::Cursor>,
) -> Result<(Vec<Row>, Option<R::Cursor>), R::Error> {
    let mut rows = Vec::new();
    let next = reader
        .read_chunk(
            table,
            cursor,
            &mut RowOut::buffer(R::schema(table).clone(), &mut rows),
        )
        .await?;
    Ok((rows, next))
}

/// Every row of `table`, a chunk at a time into `f` (for `verify`; no markers).
pub(crate) async fn read_all<R: TableReader>(
    reader: &mut R,
    table: &R::Table,
    f: &mut (dyn FnMut(&[Row]) -> Result<(), crate::error::Error> + Send),
) -> Result<(), crate::error::Error>
where
    R::Error: Into<crate::error::Error>,
{
    reader.begin(table).await.map_err(Into::into)?;
    let mut cursor = None;
    loop {
        let (rows, next) = read_chunk_into(reader, table, cursor)
            .await
            .map_err(Into::into)?;
        f(&rows)?;
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

/// A snapshot row as the stream carries it: an `INSERT` with `snapshot = true`, no commit time.
pub(crate) fn snapshot_row(table: Arc<TableSchema>, after: Row) -> SourceEvent {
    SourceEvent::Change(ChangeEvent {
        table,
        op: Op::Insert,
        before: None,
        after: Some(after),
        event_time_ms: -1,
        snapshot: true,
        log_order: 0,
    })
}

/// Snapshot `tables` at consistent point `at`. Returns `false` when a stop request ended it
/// early (the unfinished table resumes after its last chunk on the next run), `true` when
/// every table finished.
pub(crate) async fn snapshot_tables<R: TableReader>(
    reader: &mut R,
    tables: &[R::Table],
    at: &SourcePosition,
    out: &mut Batcher,
    stop: &watch::Receiver<bool>,
) -> Result<bool, R::Error> {
    for t in tables {
        if *stop.borrow() || !snapshot_table(reader, t, at, out, stop).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn snapshot_table<R: TableReader>(
    reader: &mut R,
    table: &R::Table,
    at: &SourcePosition,
    out: &mut Batcher,
    stop: &watch::Receiver<bool>,
) -> Result<bool, R::Error> {
    let schema = R::schema(table).clone();
    let name = schema.id.pattern_name();
    let started = Instant::now();
    let estimate = reader.begin(table).await?;
    // a table the catalog says is empty logs at debug: a database of thousands of empty
    // tables would otherwise log two lines for each
    match estimate {
        Some(0) => tracing::debug!(table = %name, estimated_rows = 0, "snapshot started"),
        Some(e) => tracing::info!(table = %name, estimated_rows = e, "snapshot started"),
        None => tracing::info!(table = %name, "snapshot started"),
    }
    let metrics = out.metrics();
    if let Some(m) = &metrics {
        m.snapshot_started(&name, estimate);
    }
    let mut rows = RowOut {
        dest: Dest::Out(out),
        schema,
        rows: 0,
        progress: metrics.clone().map(|m| (m, name.clone())),
    };
    let mut cursor = None;
    loop {
        cursor = reader.read_chunk(table, cursor, &mut rows).await?;
        if let Some(m) = &metrics {
            m.snapshot_progress(&name, rows.rows, false);
        }
        let Some(c) = &cursor else { break };
        rows.marker(progress_marker(&name, at, c)).await?;
        if *stop.borrow() {
            rows.flush().await?;
            tracing::info!(table = %name, rows = rows.rows, "snapshot interrupted by shutdown; the table resumes after its last chunk on the next run");
            return Ok(false);
        }
    }
    let n = rows.rows;
    if let Some(m) = &metrics {
        m.snapshot_progress(&name, n, true);
    }
    out.push(SourceEvent::Marker(Marker::Snapshot {
        table: name.clone(),
        fence: Some(at.clone()),
        step: SnapshotStep::Done,
    }))
    .await?;
    out.flush().await?;
    let secs = started.elapsed().as_secs_f64();
    if n == 0 {
        tracing::debug!(table = %name, rows = 0, "snapshot finished");
    } else {
        tracing::info!(
            table = %name, rows = n, secs = (secs * 100.0).round() / 100.0,
            rows_per_sec = (n as f64 / secs.max(1e-6)) as u64,
            "snapshot finished"
        );
    }
    Ok(true)
}

/// "Rows before `cursor` are delivered": stored once they are, so a restart resumes there.
fn progress_marker<C: serde::Serialize>(
    table: &str,
    at: &SourcePosition,
    cursor: &C,
) -> SourceEvent {
    SourceEvent::Marker(Marker::Snapshot {
        table: table.to_string(),
        fence: Some(at.clone()),
        step: SnapshotStep::At(serde_json::to_value(cursor).unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::position::Lsn;
    use crate::model::schema::{DbType, TableId};
    use crate::model::value::Value;
    use tokio::sync::mpsc;

    /// A reader over an in-memory table: chunks of 2 rows, cursor = next row index.
    struct Mem {
        rows: usize,
        /// request a stop after this many chunks
        stop_after: Option<(usize, watch::Sender<bool>)>,
        chunks: usize,
    }

    impl TableReader for Mem {
        type Table = Arc<TableSchema>;
        type Cursor = usize;
        type Error = Closed;
        fn schema(t: &Self::Table) -> &Arc<TableSchema> {
            t
        }
        async fn begin(&mut self, _: &Self::Table) -> Result<Option<u64>, Closed> {
            Ok(Some(self.rows as u64))
        }
        async fn read_chunk(
            &mut self,
            _: &Self::Table,
            cursor: Option<usize>,
            out: &mut RowOut<'_>,
        ) -> Result<Option<usize>, Closed> {
            let start = cursor.unwrap_or(0);
            let end = (start + 2).min(self.rows);
            for i in start..end {
                out.row(vec![Value::Int(i as i64)]).await?;
            }
            self.chunks += 1;
            if let Some((n, tx)) = &self.stop_after {
                if self.chunks == *n {
                    let _ = tx.send(true);
                }
            }
            Ok((end < self.rows).then_some(end))
        }
    }

    fn table(name: &str) -> Arc<TableSchema> {
        TableSchema::new(
            DbType::PostgreSql,
            TableId {
                db: "d".into(),
                schema: Some("s".into()),
                table: name.into(),
            },
            vec![],
            None,
            "t".into(),
        )
    }

    fn drain(rx: &mut mpsc::Receiver<crate::model::event::Batch>) -> Vec<SourceEvent> {
        let mut out = vec![];
        while let Ok(b) = rx.try_recv() {
            out.extend(b);
        }
        out
    }

    #[tokio::test]
    async fn rows_then_done_marker_per_table() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut out = Batcher::new(tx);
        let (_stop_tx, stop) = watch::channel(false);
        let mut r = Mem {
            rows: 5,
            stop_after: None,
            chunks: 0,
        };
        let at = SourcePosition::Postgres { lsn: Lsn(7) };
        let done = snapshot_tables(&mut r, &[table("a"), table("b")], &at, &mut out, &stop)
            .await
            .unwrap();
        assert!(done);
        let evs = drain(&mut rx);
        // per table: 2 rows, progress (next chunk at row 2), 2 rows, progress (4), 1 row, done
        let shape: Vec<String> = evs
            .iter()
            .map(|e| match e {
                SourceEvent::Change(c) => {
                    assert!(c.snapshot && c.op == Op::Insert && c.event_time_ms == -1);
                    format!("{:?}", c.after.as_ref().unwrap()[0])
                }
                SourceEvent::Marker(Marker::Snapshot { table, fence, step }) => {
                    assert_eq!(fence.as_ref(), Some(&at));
                    match step {
                        SnapshotStep::At(c) => format!("{table}@{c}"),
                        SnapshotStep::Done => format!("{table} done"),
                    }
                }
                e => panic!("unexpected {e:?}"),
            })
            .collect();
        let per = |t: &str| {
            vec![
                "Int(0)".to_string(),
                "Int(1)".into(),
                format!("s.{t}@2"),
                "Int(2)".into(),
                "Int(3)".into(),
                format!("s.{t}@4"),
                "Int(4)".into(),
                format!("s.{t} done"),
            ]
        };
        assert_eq!(shape, [per("a"), per("b")].concat());
    }

    #[tokio::test]
    async fn a_stop_ends_at_the_chunk_boundary_after_its_progress() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut out = Batcher::new(tx);
        let (stop_tx, stop) = watch::channel(false);
        let mut r = Mem {
            rows: 9,
            stop_after: Some((2, stop_tx)),
            chunks: 0,
        };
        let at = SourcePosition::Postgres { lsn: Lsn(7) };
        let done = snapshot_tables(&mut r, &[table("a"), table("b")], &at, &mut out, &stop)
            .await
            .unwrap();
        assert!(!done);
        let evs = drain(&mut rx);
        assert_eq!(
            evs.len(),
            6,
            "two chunks of two rows and their progress, flushed"
        );
        assert!(matches!(
            &evs[5],
            SourceEvent::Marker(Marker::Snapshot { step: SnapshotStep::At(c), .. }) if c == &serde_json::json!(4)
        ));
        assert!(!evs.iter().any(|e| matches!(
            e,
            SourceEvent::Marker(Marker::Snapshot {
                step: SnapshotStep::Done,
                ..
            })
        )));
    }
}
