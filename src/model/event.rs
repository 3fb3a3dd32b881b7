//! The events every source produces and the pipeline consumes.
//!
//! Invariants:
//! - Events of one source arrive in log order; a `Marker::Checkpoint` follows the last event of
//!   its transaction, so everything before a marker belongs to positions at or before it.
//! - `ChangeEvent::event_time_ms` is the source commit time, or -1 for snapshot rows.
//! - Row images line up with `table.columns` by index.

use crate::model::position::SourcePosition;
use crate::model::schema::TableSchema;
use crate::model::value::Row;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Insert,
    Update,
    Delete,
}

#[derive(Debug)]
pub(crate) struct ChangeEvent {
    pub(crate) table: Arc<TableSchema>,
    pub(crate) op: Op,
    pub(crate) before: Option<Row>,
    pub(crate) after: Option<Row>,
    /// Commit time in ms since the epoch; -1 for snapshot rows.
    pub(crate) event_time_ms: i64,
    pub(crate) snapshot: bool,
    /// Where the change's transaction lies in the source log, the same number every time the
    /// transaction is read (a replay after a restart too), increasing along the log of one
    /// source: Postgres the commit LSN, MySQL [`crate::model::position::binlog_log_order`] of
    /// the transaction's first event. 0 for snapshot rows.
    pub(crate) log_order: u64,
}

/// DDL operations of the envelope (spec §1 `op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DdlOp {
    Create,
    Alter,
    Erase,
    Rename,
    Truncate,
    CIndex,
    DIndex,
    Query,
}

impl DdlOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DdlOp::Create => "CREATE",
            DdlOp::Alter => "ALTER",
            DdlOp::Erase => "ERASE",
            DdlOp::Rename => "RENAME",
            DdlOp::Truncate => "TRUNCATE",
            DdlOp::CIndex => "CINDEX",
            DdlOp::DIndex => "DINDEX",
            DdlOp::Query => "QUERY",
        }
    }
}

#[derive(Debug)]
pub(crate) struct DdlEvent {
    /// The table as it is after the change.
    pub(crate) table: Arc<TableSchema>,
    pub(crate) op: DdlOp,
    pub(crate) text: String,
    pub(crate) event_time_ms: i64,
}

/// Points the checkpoint store folds into its state once everything before them is delivered.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Marker {
    /// A transaction end or heartbeat position: safe to resume after it.
    Checkpoint {
        position: SourcePosition,
        event_time_ms: i64,
    },
    /// A table's snapshot advanced (`step`): every row before the step was delivered. `fence`,
    /// when set, is the position the stream drops the table's earlier changes before (a
    /// consistent snapshot's point); an incremental snapshot keeps the stored fence (`None`).
    Snapshot {
        table: String,
        fence: Option<SourcePosition>,
        step: SnapshotStep,
    },
}

/// How far a table's snapshot got.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SnapshotStep {
    /// Rows up to this cursor are delivered; the snapshot resumes after it. The cursor is the
    /// source's own (a Postgres page, a MySQL key), as JSON; `null` is the table's start.
    At(serde_json::Value),
    /// Every row was delivered.
    Done,
}

#[derive(Debug)]
pub(crate) enum SourceEvent {
    Change(ChangeEvent),
    Ddl(DdlEvent),
    Marker(Marker),
    /// A table appears that records may be written for (its topic must exist).
    Table(Arc<TableSchema>),
}

/// Sources send events in batches to keep channel overhead off the per-row path.
pub(crate) type Batch = Vec<SourceEvent>;
