//! Incremental snapshots, shared by every source: a table read in chunks *while the stream goes
//! on*, without locks, keeping every key's order (the watermark-chunk method of Netflix's DBLog,
//! as Debezium's incremental snapshots and Flink CDC use it). Used to resume an interrupted
//! snapshot after its last delivered chunk, and to snapshot tables again on request.
//!
//! One chunk, the source doing the database parts:
//! 1. between two transactions of the stream, the source reads the rows after the job's cursor
//!    and makes a **high watermark**: a point of its log after which no change is visible to
//!    that read (Postgres: a logical message written after the read; MySQL: the binlog end after
//!    the read); [`Incremental::open`] holds the rows.
//! 2. until the stream reaches the watermark, each streamed change of the table that the read
//!    may not contain (Postgres: a transaction the read's snapshot does not see; MySQL: any
//!    change streamed after the read began) removes its keys, old and new, from the chunk
//!    ([`Incremental::touched`]): the stream's record is the newer image.
//! 3. at the watermark, the chunk rows left go out as snapshot rows, then
//!    `Marker::Snapshot { step: At(next cursor) }`, or `Done` after the last chunk
//!    ([`Incremental::close`]).
//!
//! Invariants:
//! - A chunk row goes out after every change its read saw and before every change it did not:
//!   each key's records stay in log order, and a key's last record is its newest image.
//! - Memory is one chunk of rows.
//! - A stop (or a crash) with a chunk open drops the chunk; it is read again from the stored
//!   cursor. Rows delivered twice are equal or newer images, in order: at-least-once.
//! - Only keyed tables: without a key a streamed change cannot be matched to a chunk row.
//! - The table's fence is unchanged: the stream covers it throughout.

use super::batch::{Batcher, Closed};
use super::snapshot::snapshot_row;
use crate::model::event::{ChangeEvent, Marker, SnapshotStep, SourceEvent};
use crate::model::schema::TableSchema;
use crate::model::value::Row;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// A table to snapshot incrementally, from after `cursor` (`null`: from its start).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Job {
    /// pattern name (`schema.table` / `db.table`)
    pub(crate) table: String,
    pub(crate) cursor: serde_json::Value,
    /// rows sent for this job so far
    rows: u64,
    started: Instant,
    warned: bool,
}

impl Job {
    pub(crate) fn new(table: String, cursor: serde_json::Value) -> Job {
        Job {
            table,
            cursor,
            rows: 0,
            started: Instant::now(),
            warned: false,
        }
    }
}

/// A chunk read, waiting for its high watermark `W`.
struct Chunk<W> {
    schema: Arc<TableSchema>,
    rows: Vec<Option<Row>>,
    /// key → index in `rows`
    index: HashMap<Vec<u8>, usize>,
    /// the cursor after this chunk; None when it was the table's last
    next: Option<serde_json::Value>,
    high: W,
}

/// The queue of tables to snapshot incrementally and the chunk in flight.
pub(crate) struct Incremental<W> {
    queue: VecDeque<Job>,
    open: Option<Chunk<W>>,
}

impl<W> Default for Incremental<W> {
    fn default() -> Self {
        Incremental {
            queue: VecDeque::new(),
            open: None,
        }
    }
}

impl<W> Incremental<W> {
    /// Queue `job` unless its table is queued already; returns whether it was queued.
    pub(crate) fn add(&mut self, job: Job) -> bool {
        if self.queue.iter().any(|j| j.table == job.table) {
            return false;
        }
        tracing::info!(table = %job.table, resume_after = %job.cursor, "incremental snapshot queued");
        self.queue.push_back(job);
        true
    }

    /// The job whose next chunk should be read now: `None` while a chunk is open or when idle.
    pub(crate) fn next_job(&self) -> Option<&Job> {
        match self.open {
            Some(_) => None,
            None => self.queue.front(),
        }
    }

    /// The chunk of the front job was read: `rows` (in cursor order), the cursor after them
    /// (`None`: the table is done), and the watermark that closes it.
    pub(crate) fn open(
        &mut self,
        schema: Arc<TableSchema>,
        rows: Vec<Row>,
        next: Option<serde_json::Value>,
        high: W,
    ) {
        if schema.key.is_none() {
            if let Some(j) = self.queue.front_mut().filter(|j| j.rows == 0 && !j.warned) {
                j.warned = true;
                tracing::warn!(table = %j.table, "table has no key: its resumed snapshot cannot match changes to rows, so its topic may repeat rows or keep one deleted meanwhile; give it a primary key or a source.keys entry");
            }
        }
        let mut index = HashMap::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            if let Some(k) = schema.key_bytes(r) {
                index.insert(k, i);
            }
        }
        self.open = Some(Chunk {
            schema,
            rows: rows.into_iter().map(Some).collect(),
            index,
            next,
            high,
        });
    }

    /// The watermark the open chunk waits for.
    pub(crate) fn waiting_for(&self) -> Option<&W> {
        self.open.as_ref().map(|c| &c.high)
    }

    /// A streamed change the open chunk's read may not contain: its keys leave the chunk.
    pub(crate) fn touched(&mut self, ev: &ChangeEvent) {
        let Some(c) = &mut self.open else { return };
        if c.schema.id != ev.table.id {
            return;
        }
        for img in [&ev.before, &ev.after].into_iter().flatten() {
            if let Some(i) = ev.table.key_bytes(img).and_then(|k| c.index.remove(&k)) {
                c.rows[i] = None;
            }
        }
    }

    /// `table` was truncated or changed shape while a chunk of it is open: read the chunk again.
    pub(crate) fn reread(&mut self, table: &crate::model::schema::TableId) {
        if self.open.as_ref().is_some_and(|c| &c.schema.id == table) {
            self.open = None;
        }
    }

    /// The front job's table is gone: its snapshot ends.
    pub(crate) fn drop_front(&mut self) {
        self.open = None;
        self.queue.pop_front();
    }

    /// Drop the open chunk (a stop): it is read again from the stored cursor.
    pub(crate) fn abandon(&mut self) {
        self.open = None;
    }

    /// The high watermark was reached: send the chunk's rows and its progress marker.
    pub(crate) async fn close(&mut self, out: &mut Batcher) -> Result<(), Closed> {
        let Some(c) = self.open.take() else {
            return Ok(());
        };
        let Some(job) = self.queue.front_mut() else {
            return Ok(());
        };
        for r in c.rows.into_iter().flatten() {
            job.rows += 1;
            out.push(snapshot_row(c.schema.clone(), r)).await?;
        }
        let step = match c.next {
            Some(next) => {
                job.cursor = next.clone();
                SnapshotStep::At(next)
            }
            None => SnapshotStep::Done,
        };
        let done = step == SnapshotStep::Done;
        out.push(SourceEvent::Marker(Marker::Snapshot {
            table: job.table.clone(),
            fence: None,
            step,
        }))
        .await?;
        if done {
            let secs = job.started.elapsed().as_secs_f64();
            tracing::info!(table = %job.table, rows = job.rows, secs = format!("{secs:.2}"), "incremental snapshot finished");
            self.queue.pop_front();
        }
        out.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::Op;
    use crate::model::schema::{Column, DbType, LogicalType, TableId};
    use crate::model::value::Value;
    use tokio::sync::mpsc;

    fn table() -> Arc<TableSchema> {
        TableSchema::new(
            DbType::PostgreSql,
            TableId {
                db: "d".into(),
                schema: Some("s".into()),
                table: "t".into(),
            },
            ["id", "v"]
                .iter()
                .map(|n| Column {
                    name: n.to_string(),
                    ltype: LogicalType::Long,
                    fsp: 0,
                    refine: Default::default(),
                })
                .collect(),
            Some(vec![0]),
            "t".into(),
        )
    }

    fn row(id: i64, v: i64) -> Row {
        vec![Value::Int(id), Value::Int(v)]
    }

    fn change(op: Op, before: Option<Row>, after: Option<Row>) -> ChangeEvent {
        ChangeEvent {
            table: table(),
            op,
            before,
            after,
            event_time_ms: 1,
            snapshot: false,
            log_order: 1,
        }
    }

    #[tokio::test]
    async fn keys_changed_in_the_window_leave_the_chunk() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut out = Batcher::new(tx);
        let mut inc = Incremental::<u32>::default();
        assert!(inc.add(Job::new("s.t".into(), serde_json::Value::Null)));
        assert!(!inc.add(Job::new("s.t".into(), serde_json::Value::Null)));
        assert!(inc.next_job().is_some());
        inc.open(
            table(),
            vec![row(1, 10), row(2, 20), row(3, 30), row(4, 40), row(7, 70)],
            Some(serde_json::json!(4)),
            7,
        );
        assert_eq!(inc.next_job(), None, "one chunk at a time");
        assert_eq!(inc.waiting_for(), Some(&7));
        // an update of 2, a delete of 3 (key-only old image), a key change 4 -> 9
        inc.touched(&change(Op::Update, None, Some(row(2, 21))));
        inc.touched(&change(
            Op::Delete,
            Some(vec![Value::Int(3), Value::Absent]),
            None,
        ));
        inc.touched(&change(Op::Update, Some(row(4, 40)), Some(row(9, 40))));
        // a key typed UInt by the log matches the same number typed Int by the read
        inc.touched(&change(
            Op::Delete,
            Some(vec![Value::UInt(7), Value::Absent]),
            None,
        ));
        inc.close(&mut out).await.unwrap();
        let evs: Vec<SourceEvent> = rx.try_recv().unwrap();
        assert_eq!(evs.len(), 2);
        match (&evs[0], &evs[1]) {
            (
                SourceEvent::Change(c),
                SourceEvent::Marker(Marker::Snapshot { table, fence, step }),
            ) => {
                assert!(c.snapshot && c.op == Op::Insert);
                assert_eq!(c.after, Some(row(1, 10)), "only key 1 is untouched");
                assert_eq!((table.as_str(), fence), ("s.t", &None));
                assert_eq!(step, &SnapshotStep::At(serde_json::json!(4)));
            }
            e => panic!("unexpected {e:?}"),
        }
        // the last chunk finishes the job
        inc.open(table(), vec![row(5, 50)], None, 8);
        inc.close(&mut out).await.unwrap();
        let evs: Vec<SourceEvent> = rx.try_recv().unwrap();
        assert!(matches!(
            &evs[1],
            SourceEvent::Marker(Marker::Snapshot {
                step: SnapshotStep::Done,
                ..
            })
        ));
        assert_eq!(inc.next_job(), None);
    }
}
